"""Accuracy against throughput, from work dirs: the last evaluation each
run logged (box/mask AP, mIoU, top-1) and the benchmark records saved next
to it (tools/benchmark.py --work-dir, or the demos' own), as a markdown
table and a PNG plot with one labelled point per model.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import re

from ..engine.checkpointing import latest_checkpoint
from ..errors import DataError
from .records import file_digest

# Metric keys as mmdet, mmseg and mmpretrain log them -> (label, factor to percent), in order of preference:
# a Mask R-CNN run logs box AP and mask AP on one line, and its headline metric is mask AP.
ACCURACY_KEYS = {'coco/segm_mAP': ('mask AP', 100.0), 'coco/bbox_mAP': ('box AP', 100.0),
                 'mIoU': ('mIoU', 1.0), 'accuracy/top1': ('top-1', 1.0)}
# What a speed depends on besides the model: rows that differ in one of these are marked in the table.
SETTINGS = {'device': 'device', 'isa': 'instruction sets', 'threads': 'threads', 'allocator': 'memory allocator',
            'versions.torch': 'torch', 'input_size': 'input', 'batch_size': 'batch', 'what': 'what was timed'}

# The time stamp in a record's name (benchmark_20260101_120000_1.json) or a log's run folder (mmengine's).
_STAMP = re.compile(r'(\d{8}_\d{6})(?:_(\d+))?')


def _written(path: str, work_dir: str) -> tuple:
    """When a file under ``work_dir`` was written, for ordering: the time
    stamp in its path there, which a copy of the work dir (cp -r, rsync, a
    download) keeps and its mtime does not; files without one come first,
    by mtime."""
    found = _STAMP.search(osp.relpath(path, work_dir))
    return (found[1], int(found[2] or 0), 0.0) if found else ('', 0, osp.getmtime(path))


def _newest(pattern: str, work_dir: str) -> str | None:
    files = glob.glob(osp.join(work_dir, pattern), recursive=True)
    return max(files, key=lambda path: _written(path, work_dir), default=None)


def last_accuracy(work_dir: str) -> tuple[str, float] | None:
    """The last accuracy a run in ``work_dir`` logged, where mmengine logs
    it (``work_dir/<time stamp>/vis_data/scalars.json``): logs are read
    oldest first and every evaluation replaces the one before. Logs deeper
    down are other runs' (the work dirs in a folder of them, a run in a
    subfolder), whose accuracy is not this work dir's."""
    logs = sorted((path for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
                   if _STAMP.fullmatch(osp.basename(osp.dirname(osp.dirname(path))))),
                  key=lambda path: _written(path, work_dir))
    found = None
    for path in logs:
        for record in _logged(path):
            for key, (label, factor) in ACCURACY_KEYS.items():
                if isinstance(record.get(key), (int, float)):
                    found = (label, record[key] * factor)
                    break
    return found


def _logged(path: str) -> list[dict]:
    """The records of mmengine's ``scalars.json`` (one JSON object a line),
    but a last line cut off by a kill while it was written."""
    with open(path) as f:
        text = f.read()
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith('\n'):
                break  # the run was killed while logging: that line never was a record
            raise DataError(f'{path}, line {number}, is not a JSON record (the file is damaged); move the file '
                            'away to report without that run\'s accuracy.') from None
    return records


def _records(path: str, what: str) -> list[dict]:
    """The records a benchmark or precision JSON holds, or one line saying
    which file is damaged."""
    try:
        with open(path) as f:
            records = json.load(f)
    except json.JSONDecodeError as err:
        records = err
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise DataError(f'{path} holds no {what} records (cut off or damaged?); move it away, or measure again.')
    return records


def last_benchmark(work_dir: str) -> dict | None:
    """The first record of the newest benchmark JSON in ``work_dir``."""
    newest = _newest('benchmark*.json', work_dir)
    return None if newest is None else _records(newest, 'benchmark')[0]


def precision_records(work_dir: str) -> tuple[list[dict], str | None]:
    """The records of the newest ``precision_*.json`` in ``work_dir``
    (tools/precision_cost.py), one per precision, each with its accuracy
    and its speed, and that file; ``([], None)`` if there is none."""
    newest = _newest('precision_*.json', work_dir)
    return ([], None) if newest is None else (_records(newest, 'precision'), newest)


def _why_superseded(records: list[dict], path: str, work_dir: str) -> str | None:
    """Why a precision record no longer stands for its work dir, or None:
    it evaluated another config than the one trained there, or neither the
    newest checkpoint nor a best one (a resumed training saved one after
    it; another run's), or a newer benchmark (the comparison's, other
    --modes) is the figure asked for."""
    record = records[0]  # one evaluation of one checkpoint per precision
    trained = _trained_configs(work_dir)
    if trained and osp.basename(record.get('model') or '') not in trained:
        return f'evaluated {record.get("model")}, not the config trained there'
    other = _other_checkpoint(record, work_dir)
    if other:
        return f'evaluated {other}'
    benchmark = _newest('benchmark*.json', work_dir)
    if benchmark is not None and _written(benchmark, work_dir) > _written(path, work_dir):
        return f'is older than {osp.basename(benchmark)}'
    return None


def _trained_configs(work_dir: str) -> set[str]:
    """The config trained in ``work_dir``: mmengine writes it there under its own file name."""
    return {osp.basename(path) for path in glob.glob(osp.join(work_dir, '*.py'))}


def _other_checkpoint(record: dict, work_dir: str) -> str | None:
    """The weights a record measured where they are neither the newest
    checkpoint in ``work_dir`` nor a best one (save_best's, kept), else
    None; None too for a folder without checkpoints (measurements only) and
    for a record that names no weights. Compared by content where the
    record has its digest: every run of a recipe saves an ``epoch_12.pth``."""
    newest = latest_checkpoint(work_dir)
    if newest is None or not record.get('checkpoint'):
        return None
    ours = [newest, *sorted(glob.glob(osp.join(work_dir, 'best_*.pth')))]
    measured = record['checkpoint']
    if record.get('checkpoint_sha256'):
        if record['checkpoint_sha256'] in {file_digest(path) for path in ours}:
            return None
        return (f'{measured}, whose contents are neither the newest checkpoint here ({osp.basename(newest)}) '
                'nor a best one')
    if osp.basename(measured) in {osp.basename(path) for path in ours}:  # a record from before the digests
        return None
    return f'{osp.basename(measured)}, not the newest checkpoint {osp.basename(newest)}'


def collect(work_dirs: list[str]) -> list[dict]:
    """One row per work dir (its last evaluation and newest benchmark), or
    one per precision where tools/precision_cost.py's record evaluated the
    work dir's newest checkpoint and is newer than its benchmarks. Newest
    is read from the time stamps in the files' names."""
    rows = []
    for work_dir in work_dirs:
        name = osp.basename(osp.normpath(work_dir))
        by_precision, precision_file = precision_records(work_dir)
        superseded = _why_superseded(by_precision, precision_file, work_dir) if by_precision else None
        if by_precision and not superseded:
            rows += [dict(name=f'{name} ({r["precision"]})', work_dir=work_dir, metric=r['metric'], value=r['value'],
                          speed=r) for r in by_precision]
            continue
        accuracy, speed = last_accuracy(work_dir), last_benchmark(work_dir)
        if accuracy is None and speed is None and not by_precision:
            continue
        unpaired = None
        if accuracy is not None and speed is not None:
            unpaired = _why_not_paired(speed, work_dir)
            speed = None if unpaired else speed  # not a speed beside an accuracy it may not belong to
        # Training validates in float32: its accuracy is not a bfloat16 or int8 model's (precision_cost.py
        # measures those).
        other_precision = accuracy is not None and speed is not None and _precision(speed) != 'float32'
        rows.append(dict(name=name, work_dir=work_dir, speed=speed, float32_accuracy_only=other_precision,
                         unpaired=unpaired,
                         superseded=(precision_file, superseded) if superseded else None,
                         metric=accuracy[0] if accuracy and not other_precision else None,
                         value=accuracy[1] if accuracy and not other_precision else None))
    return rows


def _why_not_paired(speed: dict, work_dir: str) -> str | None:
    """Why a benchmark record's speed may not stand beside the accuracy of
    the run in ``work_dir``, and what to do; None when it timed the config
    trained there (mmengine writes that config into the work dir under its
    own file name)."""
    trained = _trained_configs(work_dir)
    if not trained:
        return (f'no config in it says what was trained there, so its newest benchmark record ({speed["model"]}) '
                'is not paired with its accuracy; put that config in the work dir, as mmengine does')
    if osp.basename(speed['model']) not in trained:
        return (f'its newest benchmark record timed {speed["model"]}, not the config trained there; time that config '
                f'with tools/benchmark.py --work-dir {work_dir}')
    if 'checkpoint' in speed and not speed['checkpoint']:  # tools/benchmark.py without --checkpoint
        return (f'its newest benchmark record timed {speed["model"]} with random weights, whose post-processing is '
                'not the trained model\'s (a random detector keeps almost no boxes for NMS); time it with '
                f'tools/benchmark.py --checkpoint CKPT --work-dir {work_dir}')
    other = _other_checkpoint(speed, work_dir)
    if other:
        return (f'its newest benchmark record timed {other}; time the newest with tools/benchmark.py --checkpoint '
                f'{latest_checkpoint(work_dir)} --work-dir {work_dir}')
    return None


def _precision(speed: dict) -> str:
    return speed.get('precision', 'float32')  # records from before precisions were float32


def _setting(speed: dict, key: str):
    for part in key.split('.'):  # 'versions.torch'
        speed = speed.get(part) if isinstance(speed, dict) else None
    return speed


def _other_settings(speed: dict, reference: dict) -> list[str]:
    """The settings (:data:`SETTINGS`) ``speed`` was measured with unlike ``reference``."""
    return [label for key, label in SETTINGS.items() if _setting(speed, key) != _setting(reference, key)]


def to_markdown(rows: list[dict]) -> str:
    """The table; rows measured under other settings than the first timed
    row are marked, so unlike figures are not read as like."""
    reference = next((r for r in rows if r['speed']), None)
    unlike = [_other_settings(r['speed'], reference['speed']) if r['speed'] else [] for r in rows]
    lines = ['| model | accuracy | images/s | batch | input | device | threads | mode | precision | timed |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row, other_settings in zip(rows, unlike):
        accuracy = f'{row["metric"]} {row["value"]:.2f}' if row['metric'] else '—'
        if row.get('float32_accuracy_only'):
            accuracy = '— ‡'
        s = row['speed']
        if s is None:
            elsewhere = ' §' if row.get('unpaired') else ''
            lines.append(f'| {row["name"]} | {accuracy} | not measured{elsewhere} | | | | | | | |')
            continue
        mark = ' †' if other_settings else ''
        size = 'x'.join(map(str, s.get('input_size') or [])) or '?'
        lines.append(f'| {row["name"]} | {accuracy} | {s["images_per_s"]:.1f}{mark} | {s.get("batch_size")} | '
                     f'{size} | {s.get("device")} | {s.get("threads")} | {"+".join(s.get("modes") or [])} | '
                     f'{_precision(s)} | {s.get("what", "")} |')
    if any(unlike):
        lines.append(f'\n† measured with other settings than the first timed row ({reference["name"]}): '
                     + '; '.join(f'{row["name"]}: {", ".join(labels)}' for row, labels in zip(rows, unlike) if labels)
                     + '.')
    for row in rows:
        if row.get('unpaired'):
            lines.append(f'\n§ {row["name"]}: {row["unpaired"]}.')
    for row in rows:
        if row.get('superseded'):
            record, why = row['superseded']
            lines.append(f'\n¶ {row["name"]}: {osp.basename(record)} (tools/precision_cost.py) {why}; run '
                         'precision_cost.py again for a row per precision.')
    if any(r.get('float32_accuracy_only') for r in rows):
        lines.append('\n‡ the run validated in float32 only; tools/precision_cost.py measures the accuracy in '
                     'bfloat16 and int8 (its record, while the newest, replaces this row).')
    return '\n'.join(lines) + '\n'


def plot(rows: list[dict], path: str) -> str:
    """Accuracy against images/s, one panel per metric (box AP and top-1 are
    not one scale), one labelled point per model with both; hollow where
    the table marks the speed as measured under other settings."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    points = [r for r in rows if r['speed'] and r['metric']]
    metrics = sorted({r['metric'] for r in points}) or ['accuracy']
    reference = next((r['speed'] for r in rows if r['speed']), None)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), dpi=120, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for row in (r for r in points if r['metric'] == metric):
            x, y = row['speed']['images_per_s'], row['value']
            unlike = bool(_other_settings(row['speed'], reference))
            ax.scatter(x, y, facecolors='none' if unlike else None, edgecolors='C0', color='C0')
            ax.annotate(row['name'] + (' †' if unlike else ''), (x, y), textcoords='offset points', xytext=(4, 4),
                        fontsize=8)
        ax.set_xlabel('images/s (see the table for device, batch and input)')
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
