"""Decide how scripts/setup_env.sh builds mmcv: with CPU ops only, or with
CUDA ops too, for which GPU architectures, with which nvcc, and under which
cache key. Run with the environment's python once torch is installed; prints
shell assignments for `eval`, or one error saying what to install or set and
exits 1, before any minutes are spent compiling.

Settings (environment variables):
  EVD_MMCV_CUDA          auto (default): CUDA ops when torch sees a GPU;
                         1: CUDA ops even without a GPU (a cluster's login
                         node; needs TORCH_CUDA_ARCH_LIST); 0: CPU ops only.
  TORCH_CUDA_ARCH_LIST   the architectures to compile for, as torch spells
                         them ("9.0", "8.0;9.0+PTX"); default: the GPUs present.
  CUDA_HOME              where to look for nvcc first.
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass


class PlanError(Exception):
    """What the user must install or set; printed as one message."""


@dataclass(frozen=True)
class TorchFacts:
    version: str                 # torch.__version__ without the local part
    cuda: str | None             # torch.version.cuda: '13.0', None for a CPU build
    capabilities: tuple[str, ...]  # '9.0' for each visible GPU


@dataclass(frozen=True)
class Plan:
    flavour: str                 # 'cpu' or 'cuda'
    wheel_key: str               # folder name in the wheel cache
    arch_list: str = ''          # TORCH_CUDA_ARCH_LIST for the build
    cuda_home: str = ''          # the toolkit whose nvcc compiles the ops

    def shell(self) -> str:
        return '\n'.join(f'{name}={shlex.quote(value)}' for name, value in (
            ('mmcv_flavour', self.flavour), ('mmcv_wheel_key', self.wheel_key),
            ('mmcv_arch_list', self.arch_list), ('mmcv_cuda_home', self.cuda_home)))


def torch_facts() -> TorchFacts:
    import torch
    capabilities = ()
    if torch.cuda.is_available():
        capabilities = tuple('{}.{}'.format(*torch.cuda.get_device_capability(i))
                             for i in range(torch.cuda.device_count()))
    return TorchFacts(torch.__version__.split('+')[0], torch.version.cuda, capabilities)


def normalise_arch_list(arch_list: str) -> list[str]:
    """'8.0;9.0+PTX' or '8.0 9.0' -> ['8.0', '9.0+PTX'], sorted, deduplicated."""
    archs = sorted(set(a for a in re.split(r'[;\s,]+', arch_list.strip()) if a))
    for arch in archs:
        if not re.fullmatch(r'\d+\.\d+a?(\+PTX)?', arch):
            raise PlanError(f'TORCH_CUDA_ARCH_LIST={arch_list!r}: {arch!r} is not an architecture as torch '
                            'spells them (e.g. "9.0", "8.0;9.0", "9.0+PTX"); `nvidia-smi --query-gpu='
                            'compute_cap --format=csv` prints the one of each GPU.')
    return archs


def nvcc_release(nvcc: str) -> str | None:
    """'13.0' from `nvcc --version`, None when it does not run."""
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+\.\d+)', out)
    return match.group(1) if match else None


# Where toolkits are installed when neither CUDA_HOME nor PATH names one.
SYSTEM_TOOLKITS = ('/usr/local/cuda', '/usr/local/cuda-*')


def nvcc_candidates(env: dict[str, str], system_toolkits=SYSTEM_TOOLKITS) -> list[str]:
    """Where nvcc may be, in the order torch's own build looks (CUDA_HOME,
    then PATH), then the usual install folders, newest first."""
    found = []
    if env.get('CUDA_HOME'):
        found.append(os.path.join(env['CUDA_HOME'], 'bin', 'nvcc'))
    on_path = shutil.which('nvcc', path=env.get('PATH', ''))
    if on_path:
        found.append(on_path)
    for pattern in system_toolkits:
        found += sorted(glob.glob(os.path.join(pattern, 'bin', 'nvcc')), reverse=True)
    unique = []
    for path in found:
        if os.path.isfile(path) and os.path.realpath(path) not in {os.path.realpath(u) for u in unique}:
            unique.append(path)
    return unique


def find_nvcc(torch_cuda: str, env: dict[str, str], system_toolkits=SYSTEM_TOOLKITS) -> str:
    """The CUDA_HOME of an nvcc whose major version is torch's (torch's
    extension build refuses another major; a newer minor of the same major is
    what NVIDIA's compatibility promise covers)."""
    major = torch_cuda.split('.')[0]
    seen = []
    for nvcc in nvcc_candidates(env, system_toolkits):
        release = nvcc_release(nvcc)
        # Resolved: /usr/local/bin/nvcc is often a link, or a wrapper script, outside the toolkit.
        root = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if not release:
            seen.append(f'{nvcc} (does not run)')
        elif release.split('.')[0] != major:
            seen.append(f'{nvcc} ({release})')
        elif not os.path.isfile(os.path.join(root, 'include', 'cuda_runtime.h')):
            seen.append(f'{nvcc} ({release}, but no toolkit headers under {root})')
        else:
            return root
    looked = '; '.join(seen) if seen else 'none on CUDA_HOME, PATH or /usr/local/cuda*'
    raise PlanError(
        f'torch is built with CUDA {torch_cuda}, so mmcv\'s CUDA ops need nvcc {major}.x. Found: {looked}. '
        f'Install the CUDA {torch_cuda} toolkit (NVIDIA\'s installer into /usr/local/cuda-{torch_cuda}, or '
        f'`conda install -c nvidia cuda-toolkit={torch_cuda}`) and set CUDA_HOME to it, then run `make setup` '
        'again; or build mmcv with CPU ops only: EVD_MMCV_CUDA=0 make setup.')


def plan(facts: TorchFacts, env: dict[str, str], system_toolkits=SYSTEM_TOOLKITS) -> Plan:
    wanted = env.get('EVD_MMCV_CUDA', 'auto').strip().lower() or 'auto'
    if wanted not in ('auto', '0', '1'):
        raise PlanError(f'EVD_MMCV_CUDA={wanted!r}: use auto (CUDA ops when torch sees a GPU), 1 or 0.')
    if wanted == '0' or (wanted == 'auto' and not facts.capabilities):
        # The key of CPU wheels is unchanged from earlier setups, so their cached wheels are reused.
        return Plan('cpu', f'torch-{facts.version}-cpu')
    if not facts.cuda:
        raise PlanError(f'torch {facts.version} is a CPU-only build, so mmcv cannot be built with CUDA ops; '
                        'install the CUDA build of torch, or build CPU ops only: EVD_MMCV_CUDA=0 make setup.')
    requested = env.get('TORCH_CUDA_ARCH_LIST', '').strip()
    if requested:
        archs = normalise_arch_list(requested)
    elif facts.capabilities:
        archs = sorted(set(facts.capabilities))
    else:
        raise PlanError('EVD_MMCV_CUDA=1 on a machine where torch sees no GPU: say which GPUs the wheel is for, '
                        'e.g. TORCH_CUDA_ARCH_LIST="9.0" for H100/H200, "8.0" for A100, "8.9" for L40S/RTX 4090 '
                        '(`nvidia-smi --query-gpu=compute_cap --format=csv` on a GPU node prints it).')
    cuda_home = find_nvcc(facts.cuda, env, system_toolkits)
    arch_key = '+'.join('sm' + a.replace('.', '').replace('+PTX', '-ptx') for a in archs)
    return Plan('cuda', f'torch-{facts.version}-cu{facts.cuda.replace(".", "")}-{arch_key}',
                ';'.join(archs), cuda_home)


def main() -> int:
    try:
        print(plan(torch_facts(), dict(os.environ)).shell())
    except PlanError as err:
        print(f'[setup] ERROR: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
