"""Decide how scripts/setup_env.sh builds mmcv: with CPU ops only, or with
CUDA ops too, for which GPU architectures, with which nvcc, and under which
cache key. Run with the environment's python once torch is installed; prints
shell assignments for `eval`, or one error saying what to install or set and
exits 1, before any minutes are spent compiling. Without an nvcc of torch's
CUDA version it exits 3 with the pip requirement of NVIDIA's (the setup
installs it into the environment and asks again).

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
    nvidia_root: str | None = None  # site-packages/nvidia: torch's CUDA libraries (and headers) as pip packages


@dataclass(frozen=True)
class Plan:
    flavour: str                 # 'cpu' or 'cuda'
    wheel_key: str               # folder name in the wheel cache
    arch_list: str = ''          # TORCH_CUDA_ARCH_LIST for the build
    cuda_home: str = ''          # the toolkit whose nvcc compiles the ops
    include_dirs: str = ''       # more header folders (':'-separated): the libraries' headers torch's pip packages hold

    def shell(self) -> str:
        return '\n'.join(f'{name}={shlex.quote(value)}' for name, value in (
            ('mmcv_flavour', self.flavour), ('mmcv_wheel_key', self.wheel_key),
            ('mmcv_arch_list', self.arch_list), ('mmcv_cuda_home', self.cuda_home),
            ('mmcv_include_dirs', self.include_dirs)))


class NvccMissing(PlanError):
    """No usable nvcc here; ``requirement`` installs NVIDIA's from the package index."""

    def __init__(self, message: str, requirement: str):
        super().__init__(message)
        self.requirement = requirement


def torch_facts() -> TorchFacts:
    import sysconfig

    import torch
    capabilities = ()
    if torch.cuda.is_available():
        capabilities = tuple('{}.{}'.format(*torch.cuda.get_device_capability(i))
                             for i in range(torch.cuda.device_count()))
    nvidia_root = os.path.join(sysconfig.get_paths()['purelib'], 'nvidia')
    return TorchFacts(torch.__version__.split('+')[0], torch.version.cuda, capabilities,
                      nvidia_root if os.path.isdir(nvidia_root) else None)


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


def nvcc_candidates(env: dict[str, str], nvidia_root: str | None = None,
                    system_toolkits=SYSTEM_TOOLKITS) -> list[str]:
    """Where nvcc may be, in the order torch's own build looks (CUDA_HOME,
    then PATH), then NVIDIA's pip package of it next to torch's CUDA
    libraries, then the usual install folders, newest first."""
    found = []
    if env.get('CUDA_HOME'):
        found.append(os.path.join(env['CUDA_HOME'], 'bin', 'nvcc'))
    on_path = shutil.which('nvcc', path=env.get('PATH', ''))
    if on_path:
        found.append(on_path)
    if nvidia_root:
        found += sorted(glob.glob(os.path.join(nvidia_root, '*', 'bin', 'nvcc')))
    for pattern in system_toolkits:
        found += sorted(glob.glob(os.path.join(pattern, 'bin', 'nvcc')), reverse=True)
    unique = []
    for path in found:
        if os.path.isfile(path) and os.path.realpath(path) not in {os.path.realpath(u) for u in unique}:
            unique.append(path)
    return unique


def nvcc_requirement(torch_cuda: str) -> str:
    """NVIDIA's pip package of nvcc for torch's CUDA version (named with a
    -cuXX suffix up to CUDA 12)."""
    major = torch_cuda.split('.')[0]
    name = 'nvidia-cuda-nvcc' if int(major) >= 13 else f'nvidia-cuda-nvcc-cu{major}'
    return f'{name}=={torch_cuda}.*'


def find_nvcc(torch_cuda: str, env: dict[str, str], nvidia_root: str | None = None,
              system_toolkits=SYSTEM_TOOLKITS) -> str:
    """The CUDA_HOME of an nvcc whose major version is torch's (torch's
    extension build refuses another major; a newer minor of the same major is
    what NVIDIA's compatibility promise covers)."""
    major = torch_cuda.split('.')[0]
    seen = []
    for nvcc in nvcc_candidates(env, nvidia_root, system_toolkits):
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
    raise NvccMissing(
        f'torch is built with CUDA {torch_cuda}, so mmcv\'s CUDA ops need nvcc {major}.x. Found: {looked}.',
        nvcc_requirement(torch_cuda))


# What torch's CUDA headers (ATen/cuda) include besides the CUDA runtime's.
LIBRARY_HEADERS = ('cublas_v2.h', 'cublasLt.h', 'cusolverDn.h', 'cusparse.h')


def header_folders(cuda_home: str, nvidia_root: str | None) -> str:
    """The folders of torch's pip CUDA packages with headers, when the
    toolkit lacks some of the library headers torch includes (an nvcc-only
    toolkit, or NVIDIA's pip nvcc); refuses when neither has them."""
    folders = [os.path.join(cuda_home, 'include')]
    if nvidia_root:
        folders += sorted(glob.glob(os.path.join(nvidia_root, '*', 'include')))
    missing = [h for h in LIBRARY_HEADERS if not any(os.path.isfile(os.path.join(f, h)) for f in folders)]
    if missing:
        raise PlanError(f'{", ".join(missing)} (which torch\'s CUDA headers include) are in neither '
                        f'{folders[0]} nor torch\'s pip CUDA packages; install the CUDA toolkit with its '
                        'libraries (cuBLAS, cuSOLVER, cuSPARSE) and set CUDA_HOME to it.')
    extra = [f for f in folders[1:] if os.path.realpath(f) != os.path.realpath(folders[0])]
    needed = [h for h in LIBRARY_HEADERS if not os.path.isfile(os.path.join(folders[0], h))]
    return ':'.join(extra) if needed else ''


def plan(facts: TorchFacts, env: dict[str, str], system_toolkits=SYSTEM_TOOLKITS) -> Plan:
    """The build, or PlanError (NvccMissing: installable from the package index)."""
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
    cuda_home = find_nvcc(facts.cuda, env, facts.nvidia_root, system_toolkits)
    arch_key = '+'.join('sm' + a.replace('.', '').replace('+PTX', '-ptx') for a in archs)
    return Plan('cuda', f'torch-{facts.version}-cu{facts.cuda.replace(".", "")}-{arch_key}',
                ';'.join(archs), cuda_home, header_folders(cuda_home, facts.nvidia_root))


def main() -> int:
    """Exit 0: the plan's assignments; 3: no nvcc, and the assignment of
    the pip requirement that installs one; 1: an error to show the user."""
    try:
        print(plan(torch_facts(), dict(os.environ)).shell())
    except NvccMissing as err:
        print(f'[setup] {err}', file=sys.stderr)
        print(f'mmcv_nvcc_requirement={shlex.quote(err.requirement)}')
        return 3
    except PlanError as err:
        print(f'[setup] ERROR: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
