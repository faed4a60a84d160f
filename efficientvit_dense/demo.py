"""The offline detection demo behind `make demo`: generate the synthetic
dataset, train RetinaNet + EfficientViT-M0 on it, evaluate with the COCO
metric and time the predict path."""
from __future__ import annotations

import os.path as osp
import time

from .benchmark import predict_images_per_second
from .datasets.synthetic import SyntheticSpec, generate
from .runner import load_config, train

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_efficientvit_m0_synthetic.py')
AP_KEYS = (('mAP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75', 'bbox_mAP_75'),
           ('AP_small', 'bbox_mAP_s'), ('AP_medium', 'bbox_mAP_m'), ('AP_large', 'bbox_mAP_l'))


def run_detection_demo(work_dir: str = 'work_dirs/demo_retinanet_efficientvit_m0',
                       data_root: str = 'data/synthetic', cfg_options: dict | None = None,
                       spec: SyntheticSpec = SyntheticSpec()) -> dict:
    """Returns the COCO box metrics, predict images/s and wall time. A
    finished earlier run in ``work_dir`` is resumed (so only re-evaluated),
    never overwritten."""
    start = time.perf_counter()
    generate(data_root, spec)
    cfg = load_config(DEMO_CONFIG, cfg_options, work_dir=work_dir, data_root=data_root)
    runner = train(cfg, resume=True)
    metrics = runner.test()
    images_per_s = predict_images_per_second(runner.model, runner.test_dataloader)
    return dict(metrics={name: metrics[f'coco/{key}'] for name, key in AP_KEYS},
                images_per_s=images_per_s, wall_s=time.perf_counter() - start,
                batch_size=cfg.test_dataloader.batch_size, work_dir=work_dir)


def format_report(result: dict) -> str:
    names = [name for name, _ in AP_KEYS]
    lines = ['RetinaNet + EfficientViT-M0 on the synthetic shapes dataset (val split, COCO box AP)',
             ' '.join(f'{n:>9}' for n in names),
             ' '.join(f'{result["metrics"][n]:>9.3f}' for n in names),
             f'predict path (preprocess + forward + NMS), batch {result["batch_size"]}, CPU: '
             f'{result["images_per_s"]:.1f} images/s',
             f'wall time: {result["wall_s"] / 60:.1f} min; checkpoints and logs in {result["work_dir"]}']
    return '\n'.join(lines)
