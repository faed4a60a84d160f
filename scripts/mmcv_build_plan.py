"""Decide how scripts/setup_env.sh gets mmcv: with CPU ops only, or with
CUDA ops too, for which GPU architectures, under which cache key, and, when
the wheel must be built, with which nvcc. Run with the environment's python
once torch is installed; prints shell assignments for `eval`, or one error
saying what to install or set and exits 1, before any minutes are spent.

    mmcv_build_plan.py wheel WHEELS_DIR   which wheel (a cached one whose architectures cover the GPUs present
                                          is reused); needs no compiler
    mmcv_build_plan.py build WHEELS_DIR   the same, and the toolkit to build it with; exits 3, printing the pip
                                          requirement of NVIDIA's nvcc, when there is no nvcc of torch's CUDA
                                          version (the setup installs it into the environment and asks again)

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
    cudart: str = ''             # libcudart.so.N to link as libcudart.so, where the toolkit has only the versioned one

    def shell(self) -> str:
        return '\n'.join(f'{name}={shlex.quote(value)}' for name, value in (
            ('mmcv_flavour', self.flavour), ('mmcv_wheel_key', self.wheel_key),
            ('mmcv_arch_list', self.arch_list), ('mmcv_cuda_home', self.cuda_home),
            ('mmcv_include_dirs', self.include_dirs), ('mmcv_cudart', self.cudart)))


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
    for pattern in system_toolkits:  # newest first: cuda-13.10 before cuda-13.9
        found += sorted(glob.glob(os.path.join(pattern, 'bin', 'nvcc')), reverse=True,
                        key=lambda path: [int(n) for n in re.findall(r'\d+', path)])
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


def pip_header_folders(nvidia_root: str | None) -> list[str]:
    """The header folders of torch's pip CUDA packages (site-packages/nvidia/*/include)."""
    return sorted(glob.glob(os.path.join(nvidia_root, '*', 'include'))) if nvidia_root else []


def toolkit_headers(root: str, nvidia_root: str | None) -> bool:
    """Whether ``root`` is a toolkit: the CUDA runtime's headers in it, or,
    for NVIDIA's pip nvcc, in the pip packages beside it."""
    if os.path.isfile(os.path.join(root, 'include', 'cuda_runtime.h')):
        return True
    beside = nvidia_root and os.path.realpath(root).startswith(os.path.realpath(nvidia_root) + os.sep)
    return bool(beside) and any(os.path.isfile(os.path.join(f, 'cuda_runtime.h'))
                                for f in pip_header_folders(nvidia_root))


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
        elif not toolkit_headers(root, nvidia_root):
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
    folders = [os.path.join(cuda_home, 'include'), *pip_header_folders(nvidia_root)]
    missing = [h for h in LIBRARY_HEADERS if not any(os.path.isfile(os.path.join(f, h)) for f in folders)]
    if missing:
        raise PlanError(f'{", ".join(missing)} (which torch\'s CUDA headers include) are in neither '
                        f'{folders[0]} nor torch\'s pip CUDA packages; install the CUDA toolkit with its '
                        'libraries (cuBLAS, cuSOLVER, cuSPARSE) and set CUDA_HOME to it.')
    extra = [f for f in folders[1:] if os.path.realpath(f) != os.path.realpath(folders[0])]
    needed = [h for h in (*LIBRARY_HEADERS, 'cuda_runtime.h') if not os.path.isfile(os.path.join(folders[0], h))]
    return ':'.join(extra) if needed else ''


def cudart_to_link(cuda_home: str, nvidia_root: str | None) -> str:
    """torch links CUDA extensions with -lcudart from CUDA_HOME/lib64 (or
    lib); NVIDIA's pip packages hold only libcudart.so.N (there, or in their
    cuda_runtime package)."""
    folders = [os.path.join(cuda_home, lib) for lib in ('lib64', 'lib')]
    if any(os.path.exists(os.path.join(folder, 'libcudart.so')) for folder in folders):
        return ''
    if nvidia_root:
        folders += sorted(glob.glob(os.path.join(nvidia_root, '*', 'lib')))
    versioned = sorted(p for folder in folders for p in glob.glob(os.path.join(folder, 'libcudart.so.*')))
    if not versioned:
        raise PlanError(f'{cuda_home} has no libcudart.so in lib64/ or lib/ to link mmcv\'s CUDA ops against; '
                        'install the CUDA toolkit of torch\'s CUDA version and set CUDA_HOME to it.')
    return versioned[0]


def arch_key(archs: list[str]) -> str:
    """['8.0', '9.0+PTX'] -> 'sm80+sm90-ptx'."""
    return '+'.join('sm' + a.replace('.', '').replace('+PTX', '-ptx') for a in archs)


def key_archs(key: str) -> set[str]:
    """'sm80+sm90-ptx' -> {'8.0', '9.0'}: the GPUs a wheel runs on."""
    archs = set()
    for part in key.split('+'):
        digits = re.fullmatch(r'sm(\d+)(\d)a?(-ptx)?', part)
        if digits:
            archs.add(f'{digits.group(1)}.{digits.group(2)}')
    return archs


def cached_covering(wheels_dir: str | None, prefix: str, archs: list[str]) -> str | None:
    """A cached wheel's key for the same torch and CUDA whose architectures
    cover ``archs`` (a login node's 8.0+9.0 wheel serves a 9.0 node): the
    one with the fewest architectures."""
    if not wheels_dir or not os.path.isdir(wheels_dir):
        return None
    covering = []
    for key in os.listdir(wheels_dir):
        if key.startswith(prefix) and glob.glob(os.path.join(wheels_dir, key, 'mmcv-*.whl')):
            built_for = key_archs(key[len(prefix):])
            if {a.split('+')[0] for a in archs} <= built_for:
                covering.append((len(built_for), key))
    return min(covering)[1] if covering else None


def plan(facts: TorchFacts, env: dict[str, str], wheels_dir: str | None = None, build: bool = True,
         system_toolkits=SYSTEM_TOOLKITS) -> Plan:
    """Which wheel, and (``build``) the toolkit to build it with; PlanError
    (NvccMissing: installable from the package index) otherwise."""
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
    prefix = f'torch-{facts.version}-cu{facts.cuda.replace(".", "")}-'
    if requested:
        archs = normalise_arch_list(requested)
        key = prefix + arch_key(archs)
    elif facts.capabilities:
        archs = sorted(set(facts.capabilities))
        key = cached_covering(wheels_dir, prefix, archs) or prefix + arch_key(archs)
    else:
        raise PlanError('EVD_MMCV_CUDA=1 on a machine where torch sees no GPU: say which GPUs the wheel is for, '
                        'e.g. TORCH_CUDA_ARCH_LIST="9.0" for H100/H200, "8.0" for A100, "8.9" for L40S/RTX 4090 '
                        '(`nvidia-smi --query-gpu=compute_cap --format=csv` on a GPU node prints it).')
    if not build:
        return Plan('cuda', key, ';'.join(archs))
    cuda_home = find_nvcc(facts.cuda, env, facts.nvidia_root, system_toolkits)
    return Plan('cuda', key, ';'.join(archs), cuda_home, header_folders(cuda_home, facts.nvidia_root),
                cudart_to_link(cuda_home, facts.nvidia_root))


def main(argv: list[str]) -> int:
    """Exit 0: the plan's assignments; 3: no nvcc, and the assignment of
    the pip requirement that installs one; 1: an error to show the user."""
    if len(argv) != 2 or argv[0] not in ('wheel', 'build'):
        print('usage: mmcv_build_plan.py {wheel,build} WHEELS_DIR', file=sys.stderr)
        return 2
    try:
        print(plan(torch_facts(), dict(os.environ), argv[1], build=argv[0] == 'build').shell())
    except NvccMissing as err:
        print(f'[setup] {err}', file=sys.stderr)
        print(f'mmcv_nvcc_requirement={shlex.quote(err.requirement)}')
        return 3
    except PlanError as err:
        print(f'[setup] ERROR: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
