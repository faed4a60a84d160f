"""The offline demos behind `make demo` (detection), `make demo-seg`
(segmentation) and `make demo-cls` (classification): generate the synthetic
dataset, train an EfficientViT-M0 model on it from scratch, evaluate it and
time its predict path."""
from __future__ import annotations

import os.path as osp
import time
from dataclasses import dataclass

from ..analysis.records import checkpoint_fields, environment, save_records
from ..analysis.timing import predict_images_per_second
from ..engine.checkpointing import latest_checkpoint
from ..engine.config import load_config
from . import REPO_ROOT
from .synthetic import SyntheticSpec, generate


@dataclass(frozen=True)
class Demo:
    config: str
    work_dir: str
    title: str
    metric_keys: tuple[tuple[str, str], ...]  # (column, key in runner.test()'s metrics)
    timed: str  # what the predict-path figure covers
    decimals: int = 2  # how the metrics print (COCO AP is a fraction, the others percentages)


DEMOS = {
    'detection': Demo(
        config=osp.join(REPO_ROOT, 'configs', 'demo', 'retinanet_efficientvit_m0_synthetic.py'),
        work_dir='work_dirs/demo_retinanet_efficientvit_m0',
        title='RetinaNet + EfficientViT-M0 on the synthetic shapes dataset (val split, COCO box AP)',
        metric_keys=(('mAP', 'coco/bbox_mAP'), ('AP50', 'coco/bbox_mAP_50'), ('AP75', 'coco/bbox_mAP_75'),
                     ('AP_small', 'coco/bbox_mAP_s'), ('AP_medium', 'coco/bbox_mAP_m'),
                     ('AP_large', 'coco/bbox_mAP_l')),
        timed='preprocess + forward + NMS', decimals=3),
    'segmentation': Demo(
        config=osp.join(REPO_ROOT, 'configs', 'demo', 'fpn_efficientvit_m0_synthetic.py'),
        work_dir='work_dirs/demo_fpn_efficientvit_m0',
        title='Semantic FPN + EfficientViT-M0 on the synthetic shapes dataset (val split, IoU in %)',
        metric_keys=(('mIoU', 'mIoU'), ('mAcc', 'mAcc'), ('aAcc', 'aAcc')),
        timed='preprocess + forward + resize to the image'),
    'classification': Demo(
        config=osp.join(REPO_ROOT, 'configs', 'demo', 'cls_efficientvit_m0_synthetic.py'),
        work_dir='work_dirs/demo_cls_efficientvit_m0',
        title='EfficientViT-M0 on the synthetic shapes dataset\'s object crops (val split, accuracy in %)',
        metric_keys=(('top-1', 'accuracy/top1'), ('top-5', 'accuracy/top5')),
        timed='preprocess + forward + softmax'),
}


def run_demo(task: str = 'detection', work_dir: str | None = None, data_root: str = 'data/synthetic',
             cfg_options: dict | None = None, spec: SyntheticSpec = SyntheticSpec()) -> dict:
    """Returns the metrics, predict images/s and wall time. A finished
    earlier run in ``work_dir`` is resumed (so only re-evaluated), never
    overwritten."""
    from ..engine.runner import train  # here, not above: tools/demo.py reads DEMOS before the stack loads

    demo = DEMOS[task]
    work_dir = work_dir or demo.work_dir
    start = time.perf_counter()
    generate(data_root, spec)
    cfg = load_config(demo.config, cfg_options, work_dir=work_dir, data_root=data_root)
    runner = train(cfg, resume=True)
    metrics = runner.test()
    images_per_s = predict_images_per_second(runner.model, runner.test_dataloader)
    device = next(runner.model.parameters()).device
    input_size = list(next(iter(runner.test_dataloader))['inputs'][0].shape[-2:])
    save_records([dict(model=osp.relpath(demo.config, REPO_ROOT), what=f'predict path ({demo.timed}), files '
                       'loaded beforehand', modes=['eager'], input_size=input_size,
                       batch_size=cfg.test_dataloader.batch_size, images_per_s=images_per_s,
                       **checkpoint_fields(latest_checkpoint(work_dir)), **environment(device))], work_dir)
    per_class = {key[len('IoU.'):]: value for key, value in metrics.items() if key.startswith('IoU.')}
    return dict(task=task, metrics={name: metrics[key] for name, key in demo.metric_keys}, per_class=per_class,
                images_per_s=images_per_s, wall_s=time.perf_counter() - start,
                batch_size=cfg.test_dataloader.batch_size, device=str(device),
                work_dir=work_dir)


def format_report(result: dict) -> str:
    demo = DEMOS[result['task']]
    names = [name for name, _ in demo.metric_keys]
    lines = [demo.title,
             ' '.join(f'{n:>9}' for n in names),
             ' '.join(f'{result["metrics"][n]:>9.{demo.decimals}f}' for n in names)]
    if result['per_class']:
        width = max(len(name) for name in result['per_class'])
        lines.append('IoU per class:')
        lines += [f'  {name:<{width}} {iou:6.2f}' for name, iou in result['per_class'].items()]
    lines += [f'predict path ({demo.timed}), batch {result["batch_size"]}, {result["device"]}: '
              f'{result["images_per_s"]:.1f} images/s',
              f'wall time: {result["wall_s"] / 60:.1f} min; checkpoints and logs in {result["work_dir"]}']
    return '\n'.join(lines)
