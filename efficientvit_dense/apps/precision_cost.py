"""What a precision costs in accuracy and gives in speed: a trained
checkpoint evaluated on its config's test split in its deploy form in each
precision (float32, bfloat16, int8), then the predict paths of all of them
timed in turns on one test batch, side by side (tools/precision_cost.py).
"""
from __future__ import annotations

import json
import os.path as osp
import statistics
import time

import numpy as np
import torch

from ..analysis.modes import CALIBRATION_IMAGES, PRECISIONS
from ..analysis.precision import DeployHook, check_precision, float32_parts_note
from ..analysis.records import checkpoint_fields, environment, new_stem
from ..analysis.report import ACCURACY_KEYS
from ..analysis.timing import interleaved_times
from ..engine.config import load_config
from ..engine.runner import test
from ..errors import ConfigError, OutputExistsError, UnsupportedError
from . import REPO_ROOT

# How each precision's predict path runs (int8's parts compiled: analysis/quantize.py), as the records say.
RUN_AS = {'float32': ['deploy'], 'bfloat16': ['deploy', 'bfloat16'], 'int8': ['deploy', 'compile', 'int8']}


class _KeepRunner(DeployHook):
    """The deploy hook, keeping its runner for the timing that follows."""

    def before_test(self, runner) -> None:
        super().before_test(runner)
        self.runner = runner


def headline(metrics: dict) -> tuple[str, float]:
    """The metric a task is judged by (mask AP, box AP, mIoU, top-1), in points."""
    for key, (label, factor) in ACCURACY_KEYS.items():
        if key in metrics:
            return label, metrics[key] * factor
    raise ConfigError(f'None of {", ".join(ACCURACY_KEYS)} is among the metrics ({", ".join(metrics)}).')


def precision_cost(config: str, checkpoint: str, work_dir: str, precisions=PRECISIONS,
                   cfg_options: dict | None = None, data_root: str | None = None,
                   calibration_images: int = CALIBRATION_IMAGES, warmup: int = 2, repeats: int = 5) -> list[dict]:
    """One JSON-ready record per precision: the headline metric, every
    metric, and images/s of the predict path (one test batch, the models
    timed in turns). Logs go to ``work_dir/<precision>``; the records to a
    new ``work_dir/precision_<time>.json`` (tools/report.py reads it)."""
    precisions = [check_precision(p) for p in precisions]
    if len(set(precisions)) != len(precisions):
        raise ConfigError(f'Precisions {precisions} name one twice.')
    if 'int8' in precisions and torch.cuda.is_available():
        raise UnsupportedError("int8 runs on the CPU (oneDNN's int8 kernels), and mmengine puts the model on the "
                               'GPU: run with CUDA_VISIBLE_DEVICES= (empty), or leave int8 out of --precisions.')
    identity = checkpoint_fields(checkpoint)  # before the evaluations: a file that cannot be read stops them
    evaluated = {}
    # int8 first: it is the one that can refuse the data (its parts are built for one input size).
    for precision in sorted(precisions, key=lambda p: p != 'int8'):
        cfg = load_config(config, cfg_options, work_dir=osp.join(work_dir, precision), data_root=data_root)
        cfg.experiment_name = f'{precision}_{time.strftime("%Y%m%d_%H%M%S")}'  # a logger of its own per run
        hook = _KeepRunner(precision, calibration_images)
        metrics = test(cfg, checkpoint, hooks=[hook])
        headline(metrics)  # a task without a known metric stops after one evaluation, not after all of them
        evaluated[precision] = (metrics, hook.runner, hook.calibrated_on)
    evaluated = [(p, *evaluated[p]) for p in precisions]
    batch = next(iter(evaluated[0][2].test_dataloader))
    device = next(evaluated[0][2].model.parameters()).device
    calls = [lambda model=runner.model: model.test_step(batch) for _, _, runner, _ in evaluated]
    # As mmengine's test loop runs them: test_step itself keeps autograd on, under which the deploy form's layers
    # skip oneDNN's packed weights (models/deploy.py) while int8's parts run without it: an unequal ratio.
    with torch.no_grad():
        times = interleaved_times(calls, warmup, repeats, device)
    images = len(batch['inputs'])
    env = environment(device)
    records = []
    for (precision, metrics, runner, calibrated_on), seconds in zip(evaluated, times):
        label, value = headline(metrics)
        records.append(dict(
            model=osp.relpath(config, REPO_ROOT) if config.startswith(REPO_ROOT) else config,
            **identity, precision=precision, metric=label, value=float(value),
            metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating))},
            what='predict path (normalisation, forward, post-processing), one test batch, models timed in turns',
            modes=RUN_AS[precision],
            input_size=list(batch['inputs'][0].shape[-2:]),
            batch_size=images, images_per_s=images / statistics.median(seconds), warmup=warmup, repeats=repeats,
            float32_parts=float32_parts_note(runner.model, precision),
            **(dict(calibration=calibrated_on) if calibrated_on else {}), **env))
    path = new_stem(work_dir, 'precision') + '.json'
    try:
        with open(path, 'x') as f:
            json.dump(records, f, indent=1)
    except FileExistsError as err:
        raise OutputExistsError(f'{path} appeared meanwhile; run again.') from err
    for record in records:
        record['saved'] = path
    return records


def format_cost(records: list[dict]) -> str:
    first = records[0]
    base = next((r for r in records if r['precision'] == 'float32'), first)  # what the differences are to
    isa = ' '.join(first.get('isa', [])) or 'none of the relevant flags'
    lines = [f'{first["model"]} ({first["checkpoint"]}), test split; {first["device"]} ({isa}), '
             f'{first["threads"]} threads; speed: batch {first["batch_size"]} at '
             f'{first["input_size"][0]}x{first["input_size"][1]}, median of {first["repeats"]}, timed in turns',
             f'{"precision":<10} {first["metric"]:>8} {"vs " + base["precision"]:>11} {"images/s":>9} {"speed":>7}  '
             'run as']
    for r in records:
        lines.append(f'{r["precision"]:<10} {r["value"]:>8.2f} {r["value"] - base["value"]:>+11.2f} '
                     f'{r["images_per_s"]:>9.1f} {r["images_per_s"] / base["images_per_s"]:>6.2f}x  '
                     + '+'.join(r['modes']))
    notes = sorted({r['float32_parts'] for r in records if r['float32_parts']})
    notes += [f'{r["precision"]}: calibrated on {r["calibration"]}' for r in records if r.get('calibration')]
    return '\n'.join(lines + notes + [f'saved {first.get("saved", "")}'])
