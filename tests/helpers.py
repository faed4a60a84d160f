"""What several test modules share: the repository root, tiny runs of the
demo configs, model input batches and running a tool as a user would.
(Fixtures live in conftest.py.)"""
from __future__ import annotations

import io
import json
import os
import os.path as osp
import runpy
import subprocess
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout

import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample

from efficientvit_dense.apps.synthetic import SyntheticSpec

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

TINY_SPEC = SyntheticSpec(num_train=8, num_val=4, max_objects=3)


def in_process_loaders(batch_size: int = 2) -> dict:
    """--cfg-options for every dataloader: small batches, no worker processes."""
    return {f'{loader}.{key}': value for loader in LOADERS
            for key, value in (('batch_size', batch_size), ('num_workers', 0), ('persistent_workers', False))}


# Two iterations of the detection demo, validated and saved at the end.
DETECTION_TINY_RUN = {**in_process_loaders(), 'train_dataloader.batch_size': 4,
                      'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2, 'default_hooks.checkpoint.interval': 2,
                      # Two iterations teach nothing: keep every score so the metric has predictions to rank.
                      'model.test_cfg.score_thr': 0.0}


def detection_batch(height: int = 128, width: int = 160, with_mask: bool = False) -> dict:
    """Two random images with two boxes (and masks) each, as mmdet's data preprocessor takes them."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                             scale_factor=(1.0, 1.0)))
        boxes = torch.tensor([[8.0, 10.0, 60.0, 70.0], [70.0, 40.0, 150.0, 120.0]])
        instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]))
        if with_mask:
            masks = torch.zeros(2, height, width, dtype=torch.uint8)
            for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
                mask[y0:y1, x0:x1] = 1
            instances.masks = BitmapMasks(masks.numpy(), height, width)
        sample.gt_instances = instances
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=inputs, data_samples=samples)


SEGMENTATION_SIZE = (96, 128)  # the configs crop 512 px and more; a step at that size is slow on a CPU


def segmentation_batch(num_classes: int, ignore_index: int = 255) -> dict:
    """Two random images with random label maps, an unlabelled band on top."""
    gen = torch.Generator().manual_seed(0)
    samples, inputs = [], []
    for _ in range(2):
        labels = torch.randint(0, num_classes, SEGMENTATION_SIZE, generator=gen)
        labels[:8] = ignore_index  # an unlabelled band, as real label maps have
        sample = SegDataSample(metainfo=dict(img_shape=SEGMENTATION_SIZE, ori_shape=SEGMENTATION_SIZE,
                                             pad_shape=SEGMENTATION_SIZE))
        sample.gt_sem_seg = PixelData(data=labels[None])
        samples.append(sample)
        inputs.append(torch.randint(0, 256, (3, *SEGMENTATION_SIZE), generator=gen, dtype=torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def run_tool(tool: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python tools/<tool> ARGS`` from the repository root, as a user runs it;
    a hang fails the test after ``timeout`` seconds."""
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _warning_to_stderr(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_tool_in_process(tool: str, *args: str) -> subprocess.CompletedProcess:
    """``tools/<tool> ARGS`` as :func:`run_tool` runs it, with the same exit
    code and output, but in this process: a new Python spends about 5 s
    importing the stack before the tool starts. For runs that need no process
    of their own (as a kill, a lock held by another run or a data worker do).
    tests/test_console.py starts every tool in a new Python for --help; train
    and check_dataset also run whole as a child in a test, test and infer up
    to a refusal. A bug's exception propagates and fails the test (with the
    tool's output in its notes), as its traceback in the child's stderr would."""
    main = runpy.run_path(osp.join(REPO, 'tools', tool))['main']
    stdout, stderr = io.StringIO(), io.StringIO()
    environ, cwd = dict(os.environ), os.getcwd()  # the tools set LOCAL_RANK, as a launcher would
    loggers = set(MMLogger._instance_dict)
    returncode = 0
    os.chdir(REPO)
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr), warnings.catch_warnings():
            warnings.simplefilter('default')  # every warning once per run, on the tool's stderr (not pytest's record)
            warnings.showwarning = _warning_to_stderr
            MMLogger.get_instance(f'{tool} in process')  # mmengine's 'current' logger writes to the captured stdout
            try:
                main(list(map(str, args)))
            except SystemExit as exit:  # sys.exit(message) prints it and exits 1
                if isinstance(exit.code, str):
                    print(exit.code, file=sys.stderr)
                returncode = 1 if isinstance(exit.code, str) else exit.code or 0
    except BaseException as err:
        err.add_note(f'{tool} wrote to stdout:\n{stdout.getvalue()[-2000:]}\n'
                     f'and to stderr:\n{stderr.getvalue()[-2000:]}')
        raise
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        for name in set(MMLogger._instance_dict) - loggers:  # writing to this run's captured output and log file
            for handler in MMLogger._instance_dict.pop(name).handlers:
                handler.close()
    return subprocess.CompletedProcess([tool, *map(str, args)], returncode, stdout.getvalue(), stderr.getvalue())


def edit_annotations(data, split: str, edit):
    """Apply ``edit`` to the synthetic COCO file of ``split`` under ``data``
    (a copy to break); returns its path."""
    path = data / 'annotations' / f'instances_{split}.json'
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))
    return path


class ModelUnderTest(Hook):
    """Keeps the model a test run evaluates and its test pipeline, for a test to look into."""
    model = pipeline = None

    def before_test(self, runner) -> None:
        self.model, self.pipeline = runner.model, runner.test_dataloader.dataset.pipeline
