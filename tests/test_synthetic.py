"""The synthetic dataset the demos and tests run on: the same seed gives the
same files, byte for byte, wherever it is generated; and the COCO-sized one
that times the data checks."""
from dataclasses import replace
from pathlib import Path

from helpers import run_tool

from efficientvit_dense.apps.check_cost import CLASSES, CONFIG, make_coco_sized
from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.data_checks import check_inputs


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


def test_the_coco_sized_dataset_passes_the_checks_and_its_timer_reaches_training(tmp_path):
    root = tmp_path / 'coco'
    make_coco_sized(str(root), images=30, boxes=120)
    cfg = load_config(CONFIG, {f'{loader}.dataset.metainfo.classes': CLASSES
                               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')},
                      data_root=str(root))
    summaries = check_inputs(cfg)
    assert [(s.images, s.instances, s.classes) for s in summaries] == [(30, 120, 80), (30, 120, 80)]
    # A dataset of other sizes is not timed as if it were train2017's
    result = run_tool('time_data_checks.py', root, timeout=600)
    assert result.returncode == 1 and 'made with 30 images and 120 boxes, not 118287 and 860068' in result.stderr
    result = run_tool('time_data_checks.py', root, '--images', '30', '--boxes', '120', timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    first, *lines = result.stdout.splitlines()
    assert first == f'reused {root}: 30 images, 120 boxes'
    assert [line.split(':')[0] for line in lines] == ['checks, first pass', 'checks, remembered',
                                                      "mmdet's CocoDataset build", 'first start', 'later start']
    assert all(float(line.split(': ')[1].split()[0]) >= 0 for line in lines[:3])  # a tiny file: 0.0 s remembered
    assert all(line.endswith(' s to training') and float(line.split()[2]) > 0 for line in lines[3:])
