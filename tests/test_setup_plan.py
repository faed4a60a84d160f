"""How the setup decides to build mmcv (scripts/mmcv_build_plan.py): CPU or
CUDA ops, for which GPUs, with which nvcc, under which cache key, and the one
message that stops it before any compiling when something is missing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts'))
import mmcv_build_plan as build  # noqa: E402

NO_GPU = build.TorchFacts('2.14.1', '13.0', ())
H100_AND_A100 = build.TorchFacts('2.14.1', '13.0', ('9.0', '9.0', '8.0'))


def toolkit(root: Path, release: str, headers: bool = True, libraries: bool = True,
            cudart: str = 'libcudart.so') -> Path:
    """A CUDA toolkit folder whose nvcc reports ``release``, with the CUDA
    runtime's headers (``headers``), cuBLAS/cuSOLVER/cuSPARSE's
    (``libraries``) and the runtime library (``cudart``) in lib64/."""
    (root / 'bin').mkdir(parents=True)
    (root / 'lib64').mkdir()
    (root / 'lib64' / cudart).write_text('')
    nvcc = root / 'bin' / 'nvcc'
    nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.1"\n')
    nvcc.chmod(0o755)
    if headers:
        (root / 'include').mkdir()
        for header in ('cuda_runtime.h', *(build.LIBRARY_HEADERS if libraries else ())):
            (root / 'include' / header).write_text('')
    return root


def pip_cuda(nvidia_root: Path, with_nvcc: bool) -> Path:
    """torch's pip CUDA packages (site-packages/nvidia/cu13: headers, and nvcc once installed)."""
    folder = nvidia_root / 'cu13'
    if with_nvcc:
        return toolkit(folder, '13.0', cudart='libcudart.so.13')
    (folder / 'include').mkdir(parents=True)
    for header in ('cuda_runtime.h', *build.LIBRARY_HEADERS):
        (folder / 'include' / header).write_text('')
    return folder


def plan(facts, env, tmp_path, **options):
    # Only the toolkits a test makes are seen, not the machine's own.
    return build.plan(facts, {'PATH': '', **env}, system_toolkits=(str(tmp_path / 'system' / 'cuda*'),), **options)


def test_a_machine_without_gpu_builds_cpu_ops_under_the_key_earlier_setups_cached(tmp_path):
    result = plan(NO_GPU, {}, tmp_path)
    assert (result.flavour, result.wheel_key) == ('cpu', 'torch-2.14.1-cpu')
    assert plan(H100_AND_A100, {'EVD_MMCV_CUDA': '0'}, tmp_path).flavour == 'cpu'


def test_a_gpu_machine_builds_for_its_own_gpus_with_an_nvcc_of_torchs_cuda(tmp_path):
    cuda = toolkit(tmp_path / 'system' / 'cuda-13.0', '13.0')
    result = plan(H100_AND_A100, {}, tmp_path)
    assert result.flavour == 'cuda'
    assert result.arch_list == '8.0;9.0'
    assert result.cuda_home == str(cuda)
    assert result.wheel_key == 'torch-2.14.1-cu130-sm80+sm90'


def test_the_arch_list_overrides_the_gpus_present_and_builds_without_any_gpu(tmp_path):
    toolkit(tmp_path / 'system' / 'cuda-13.0', '13.0')
    on_gpus = plan(H100_AND_A100, {'TORCH_CUDA_ARCH_LIST': '9.0'}, tmp_path)
    login_node = plan(NO_GPU, {'EVD_MMCV_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0+PTX 8.9'}, tmp_path)
    assert on_gpus.arch_list == '9.0' and on_gpus.wheel_key.endswith('-sm90')
    assert login_node.arch_list == '8.9;9.0+PTX'
    assert login_node.wheel_key == 'torch-2.14.1-cu130-sm89+sm90-ptx'


def test_cuda_home_is_looked_at_first_and_an_nvcc_of_another_major_is_passed_over(tmp_path):
    toolkit(tmp_path / 'system' / 'cuda-13.0', '13.0')
    old = toolkit(tmp_path / 'old', '12.4')
    chosen = toolkit(tmp_path / 'mine', '13.1')
    result = plan(H100_AND_A100, {'CUDA_HOME': str(chosen), 'PATH': str(old / 'bin')}, tmp_path)
    assert result.cuda_home == str(chosen)
    result = plan(H100_AND_A100, {'PATH': str(old / 'bin')}, tmp_path)
    assert result.cuda_home == str(tmp_path / 'system' / 'cuda-13.0')


def test_an_nvcc_wrapper_outside_the_toolkit_is_passed_over_for_the_toolkit(tmp_path):
    """/usr/local/bin/nvcc is often a script that execs the real one: its
    folder has no CUDA headers, so it cannot be CUDA_HOME."""
    real = toolkit(tmp_path / 'system' / 'cuda-13.0', '13.0')
    wrapper = toolkit(tmp_path / 'usr-local', '13.0', headers=False)
    assert plan(H100_AND_A100, {'PATH': str(wrapper / 'bin')}, tmp_path).cuda_home == str(real)


def test_no_matching_nvcc_asks_for_nvidias_pip_nvcc_of_torchs_cuda(tmp_path):
    old = toolkit(tmp_path / 'old', '12.4')
    with pytest.raises(build.NvccMissing) as caught:
        plan(H100_AND_A100, {'PATH': str(old / 'bin')}, tmp_path)
    message = str(caught.value)
    assert 'CUDA 13.0' in message and 'nvcc 13.x' in message
    assert f'{old}/bin/nvcc (12.4)' in message
    assert caught.value.requirement == 'nvidia-cuda-nvcc==13.0.*'
    assert build.nvcc_requirement('12.8') == 'nvidia-cuda-nvcc-cu12==12.8.*'


def test_nvidias_pip_nvcc_next_to_torchs_cuda_libraries_is_used(tmp_path):
    pip = pip_cuda(tmp_path / 'site-packages' / 'nvidia', with_nvcc=True)
    facts = build.TorchFacts('2.14.1', '13.0', ('9.0',), str(tmp_path / 'site-packages' / 'nvidia'))
    result = plan(facts, {}, tmp_path)
    assert (result.cuda_home, result.include_dirs) == (str(pip), '')
    # torch links -lcudart; the pip package has only the versioned library, which the setup links under that name
    assert result.cudart == str(pip / 'lib64' / 'libcudart.so.13')


def test_an_nvcc_only_toolkit_takes_the_library_headers_from_torchs_pip_packages(tmp_path):
    """torch's ATen/cuda headers include cusparse.h and others, which an
    nvcc-only toolkit lacks (the first CUDA build here stopped on it)."""
    cuda = toolkit(tmp_path / 'system' / 'cuda-13.0', '13.0', libraries=False)
    with pytest.raises(build.PlanError, match='cublas_v2.h, cublasLt.h, cusolverDn.h, cusparse.h'):
        plan(H100_AND_A100, {}, tmp_path)
    pip = pip_cuda(tmp_path / 'site-packages' / 'nvidia', with_nvcc=False)
    facts = build.TorchFacts('2.14.1', '13.0', ('9.0',), str(tmp_path / 'site-packages' / 'nvidia'))
    result = plan(facts, {}, tmp_path)
    assert (result.cuda_home, result.include_dirs) == (str(cuda), str(pip / 'include'))


def test_the_setup_is_told_which_package_installs_nvcc(monkeypatch, capsys):
    def no_nvcc(*args, **kwargs):
        raise build.NvccMissing('no nvcc 13.x', 'nvidia-cuda-nvcc==13.0.*')
    monkeypatch.setattr(build, 'plan', no_nvcc)
    assert build.main(['build', '/nowhere']) == 3
    out, err = capsys.readouterr()
    assert out == "mmcv_nvcc_requirement='nvidia-cuda-nvcc==13.0.*'\n" and 'no nvcc 13.x' in err


@pytest.mark.parametrize('facts, env, names', [
    (NO_GPU, {'EVD_MMCV_CUDA': '1'}, 'TORCH_CUDA_ARCH_LIST'),
    (build.TorchFacts('2.14.1', None, ()), {'EVD_MMCV_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '9.0'}, 'CPU-only'),
    (H100_AND_A100, {'TORCH_CUDA_ARCH_LIST': 'hopper'}, "'hopper'"),
    (NO_GPU, {'EVD_MMCV_CUDA': 'yes'}, 'EVD_MMCV_CUDA'),
])
def test_settings_that_cannot_work_are_refused_by_name(tmp_path, facts, env, names):
    toolkit(tmp_path / 'system' / 'cuda-13.0', '13.0')
    with pytest.raises(build.PlanError, match=names):
        plan(facts, env, tmp_path)


def test_the_setup_reads_the_plan_as_shell_assignments():
    """What setup_env.sh evals: on this machine's torch, with CPU ops forced,
    and a refusal that exits 1 with one message and no assignments."""
    env = {**os.environ, 'EVD_MMCV_CUDA': '0'}
    script = 'eval "$("$0" scripts/mmcv_build_plan.py build /nowhere)" && echo "$mmcv_flavour $mmcv_wheel_key"'
    out = subprocess.run(['bash', '-c', script, sys.executable], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['cpu', f'torch-{build.torch_facts().version}-cpu']
    refused = subprocess.run([sys.executable, 'scripts/mmcv_build_plan.py', 'wheel', '/nowhere'], cwd=ROOT,
                             env={**env, 'EVD_MMCV_CUDA': 'maybe'}, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and refused.stdout == ''
    assert refused.stderr.startswith('[setup] ERROR: EVD_MMCV_CUDA=')


def test_a_cached_wheel_covering_the_gpus_present_is_reused_and_needs_no_nvcc(tmp_path):
    """A cluster's login node built for 8.0 and 9.0: an H100 node (no nvcc
    there) takes that wheel instead of building its own."""
    wheels = tmp_path / 'wheels'
    for key in ('torch-2.14.1-cu130-sm80+sm90-ptx', 'torch-2.14.1-cu130-sm75+sm80+sm90', 'torch-2.14.1-cu130-sm89'):
        (wheels / key).mkdir(parents=True)
        (wheels / key / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl').write_text('')
    (wheels / 'torch-2.14.1-cu130-sm90').mkdir()  # an interrupted build: no wheel in it
    h100 = build.TorchFacts('2.14.1', '13.0', ('9.0',))
    result = plan(h100, {}, tmp_path, wheels_dir=str(wheels), build=False)
    assert (result.flavour, result.wheel_key, result.cuda_home) == ('cuda', 'torch-2.14.1-cu130-sm80+sm90-ptx', '')
    assert plan(H100_AND_A100, {}, tmp_path, wheels_dir=str(wheels), build=False).wheel_key == (
        'torch-2.14.1-cu130-sm80+sm90-ptx')
    asked = plan(h100, {'TORCH_CUDA_ARCH_LIST': '9.0'}, tmp_path, wheels_dir=str(wheels), build=False)
    assert asked.wheel_key == 'torch-2.14.1-cu130-sm90'  # an explicit list names its own wheel
    with pytest.raises(build.NvccMissing):  # building it is another matter
        plan(h100, {'TORCH_CUDA_ARCH_LIST': '9.0'}, tmp_path, wheels_dir=str(wheels))
