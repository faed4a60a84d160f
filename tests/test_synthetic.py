"""The synthetic dataset the demos and tests run on: the same seed gives the
same files, byte for byte, wherever it is generated."""
from dataclasses import replace
from pathlib import Path

from efficientvit_dense.apps.synthetic import SyntheticSpec, generate


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_the_same_seed_gives_the_same_files_and_another_seed_other_images(tmp_path):
    spec = SyntheticSpec(num_train=3, num_val=2, max_objects=3, image_size=64)
    generate(str(tmp_path / 'a'), spec)
    generate(str(tmp_path / 'b'), spec)
    first, second = _files(tmp_path / 'a'), _files(tmp_path / 'b')
    kinds = {name.split('/')[0] for name in first}
    assert {'annotations', 'train', 'val', 'semantic', 'classification'} <= kinds
    assert first == second

    generate(str(tmp_path / 'c'), replace(spec, seed=1))
    other = _files(tmp_path / 'c')
    assert other.keys() >= {'train/000000.jpg'} and other['train/000000.jpg'] != first['train/000000.jpg']
