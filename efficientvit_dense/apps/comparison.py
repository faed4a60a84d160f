"""The offline backbone comparison behind `make compare`: RetinaNet with
EfficientViT-M0, EfficientViT-M4, MobileNetV2 and ResNet-18 trained on the
synthetic shapes dataset with one budget, their predict paths timed in turns
in one run, and the accuracy-against-throughput table and plot written."""
from __future__ import annotations

import os.path as osp
import time

from ..analysis.benchmark import benchmark_together, check_modes, timed_target
from ..analysis.records import new_stem, save_records
from ..analysis.report import collect, plot, to_markdown
from ..engine.checkpointing import check_resume_from, latest_checkpoint
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
    run is resumed, so not trained again; configs with other input sizes or
    training budgets are refused first), time every predict path in
    ``modes`` on the CPU at the configs' test scale, then write a new
    ``report_<time>.md`` and ``.png`` there. Returns the table and paths."""
    start = time.perf_counter()
    check_modes(modes, 'cpu', predict_path=True)  # timing comes after every training, which takes half an hour
    configs = [resolve_config_path(config) for config in configs]  # a missing one stops before any work
    work_dirs = [osp.join(work_root, osp.splitext(osp.basename(config))[0]) for config in configs]
    for work_dir in set(work_dirs):
        sharing = [config for config, other in zip(configs, work_dirs) if other == work_dir]
        if len(sharing) > 1:
            raise ConfigError(f'The compared configs need file names of their own: each trains in {work_root}/<name>, '
                              f'and {" and ".join(sharing)} would share {work_dir}.')
    cfgs = [load_config(config, cfg_options, work_dir=work_dir, data_root=data_root)
            for config, work_dir in zip(configs, work_dirs)]
    # Differences found after hours of training would be too late; a table of unequal runs would be wrong.
    for what, setting in (('input sizes', _input_sizes), ('training budgets', _budget)):
        values = {config: setting(cfg) for config, cfg in zip(configs, cfgs)}
        if len(set(values.values())) > 1:
            shown = '; '.join(f'{osp.basename(config)}: {value}' for config, value in values.items())
            raise ConfigError(f'The compared configs train with different {what} ({shown}); one is needed, '
                              'or the table compares unequal runs.')
    for cfg in cfgs:  # a run here trained another way would stop the comparison halfway, after hours
        if earlier := latest_checkpoint(cfg.work_dir):
            check_resume_from(cfg, earlier)
    generate(data_root, spec)
    for cfg in cfgs:
        train(cfg, resume=True)
    # One run, models in turns: the ratios between them are what the comparison is for.
    width, height = _resize_scale(cfgs[0], 'test_dataloader')
    size = (height, width)
    targets = [timed_target(config, size, batch_size, modes, 'cpu', latest_checkpoint(work_dir), work_dir,
                            cfg_options) for config, work_dir in zip(configs, work_dirs)]
    records = benchmark_together(targets, batch_size, 'cpu', warmup, repeats)
    for record, config, work_dir in zip(records, configs, work_dirs):
        record['model'] = osp.relpath(config, REPO_ROOT)
        save_records([record], work_dir)
    rows = collect(work_dirs)
    table = to_markdown(rows)
    stem = new_stem(work_root, 'report', extensions=('.md', '.png'))
    with open(stem + '.md', 'x') as f:
        f.write(table)
    return dict(table=table, markdown=stem + '.md', plot=plot(rows, stem + '.png'),
                wall_s=time.perf_counter() - start)


def _resize_scale(cfg, loader: str) -> tuple[int, int]:
    """The (width, height) its pipeline's Resize gives the images: what the
    model trains or is timed at (the config's ``image_size`` variable may
    say otherwise, as in a config that sets the pipelines itself)."""
    scales = [tuple(step['scale']) for step in cfg[loader].dataset.pipeline
              if step.get('type') == 'Resize' and 'scale' in step]
    if len(scales) != 1:
        raise ConfigError(f'The comparison trains and times each config at the one scale of its pipelines\' Resize; '
                          f'the {loader} pipeline of {cfg.filename} has {len(scales)}.')
    return scales[0]


def _input_sizes(cfg) -> str:
    return (f'training at {"x".join(map(str, _resize_scale(cfg, "train_dataloader")))}, '
            f'testing at {"x".join(map(str, _resize_scale(cfg, "test_dataloader")))}')


def _budget(cfg) -> str:
    """How long a config trains and on how many images a step."""
    loop = cfg.train_cfg
    length = f'{loop.max_iters} iterations' if loop.get('max_iters') else f'{loop.get("max_epochs")} epochs'
    return f'{length} of batch {cfg.train_dataloader.batch_size}'
