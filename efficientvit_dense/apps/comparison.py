"""The offline backbone comparison behind `make compare`: RetinaNet with
EfficientViT-M0, EfficientViT-M4, MobileNetV2 and ResNet-18 trained on the
synthetic shapes dataset with one budget, their predict paths timed in turns
in one run, and the accuracy-against-throughput table and plot written."""
from __future__ import annotations

import os.path as osp
import time

from ..analysis.benchmark import benchmark_together, timed_target
from ..analysis.records import new_stem, save_records
from ..analysis.report import collect, plot, to_markdown
from ..engine.checkpointing import latest_checkpoint
from ..engine.config import load_config, resolve_config_path
from ..engine.runner import train
from ..errors import ConfigError
from . import REPO_ROOT
from .synthetic import SyntheticSpec, generate

COMPARISON_CONFIGS = tuple(
    osp.join(REPO_ROOT, 'configs', 'demo', 'compare', f'retinanet_{backbone}_synthetic.py')
    for backbone in ('efficientvit_m0', 'efficientvit_m4', 'mobilenetv2', 'resnet18'))


def compare_backbones(configs=COMPARISON_CONFIGS, work_root: str = 'work_dirs/compare',
                      data_root: str = 'data/synthetic', modes=('deploy',), batch_size: int = 8,
                      warmup: int = 2, repeats: int = 10, cfg_options: dict | None = None,
                      spec: SyntheticSpec = SyntheticSpec()) -> dict:
    """Train each config in its own work dir under ``work_root`` (a finished
    run is resumed, so not trained again), time every predict path in
    ``modes`` on the CPU at the configs' image size, then write a new
    ``report_<time>.md`` and ``.png`` there. Returns the table and paths."""
    start = time.perf_counter()
    configs = [resolve_config_path(config) for config in configs]  # a missing one stops before any work
    generate(data_root, spec)
    runs = []
    for config in configs:
        work_dir = osp.join(work_root, osp.splitext(osp.basename(config))[0])
        cfg = load_config(config, cfg_options, work_dir=work_dir, data_root=data_root)
        train(cfg, resume=True)
        runs.append((config, work_dir, latest_checkpoint(work_dir), tuple(cfg.image_size)))
    sizes = {size for *_, size in runs}
    if len(sizes) > 1:
        raise ConfigError(f'The compared configs train at different image sizes {sorted(sizes)}; one is needed.')
    # One run, models in turns: the ratios between them are what the comparison is for.
    targets = [timed_target(config, size, batch_size, modes, 'cpu', checkpoint, work_dir, cfg_options)
               for config, work_dir, checkpoint, size in runs]
    records = benchmark_together(targets, batch_size, 'cpu', warmup, repeats)
    for record, (config, work_dir, *_) in zip(records, runs):
        record['model'] = osp.relpath(config, REPO_ROOT)
        save_records([record], work_dir)
    rows = collect([work_dir for _, work_dir, *_ in runs])
    table = to_markdown(rows)
    stem = new_stem(work_root, 'report', extensions=('.md', '.png'))
    with open(stem + '.md', 'x') as f:
        f.write(table)
    return dict(table=table, markdown=stem + '.md', plot=plot(rows, stem + '.png'),
                wall_s=time.perf_counter() - start)
