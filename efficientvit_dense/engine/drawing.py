"""The drawings of ``tools/test.py --show-dir``: the three toolboxes' own
visualisation hooks, each in its own layout, with what they lose mended.

* Under a distributed launcher only the first process drew: every drawing
  method of mmengine's visualisers is ``master_only``
  (open-mmlab/mmengine#1081), so the other processes' images went undrawn.
  Here each process draws the images it evaluated, into files (never through
  the visualiser's backends, which log from one process); files written
  whole (engine/runner.py), since two processes draw the images that a
  distributed sampler repeats to even out their shares, at the same time.
* A drawing was named after its image's file name, so same-named images in
  two folders (``cat/1.jpg``, ``dog/1.jpg``; a dataset's subfolders) drew
  over each other. Here it keeps the image's path under the dataset's image
  folder; for images without a path (CIFAR) mmpretrain counted positions
  from the current batch size, which restarts the count of a smaller last
  batch: here it is the image's index in the dataset.
"""
from __future__ import annotations

import contextlib
import os.path as osp

import mmcv
import mmengine.dist.utils
from mmdet.engine.hooks import DetVisualizationHook
from mmengine.dist import get_world_size
from mmengine.fileio import get
from mmengine.registry import HOOKS
from mmpretrain.engine.hooks import VisualizationHook
from mmseg.engine.hooks import SegVisualizationHook

from .checkpoint_fit import bare_model


def image_folders(dataset) -> list[str]:
    """The folders a dataset's image paths start with: its image prefix
    (mmengine joins ``data_root`` to it), else ``data_root``; through
    dataset wrappers (``dataset``, ``datasets``), each part's."""
    if hasattr(dataset, 'datasets'):  # ConcatDataset
        return [folder for part in dataset.datasets for folder in image_folders(part)]
    if hasattr(dataset, 'dataset'):  # RepeatDataset, ClassBalancedDataset, MultiImageMixDataset
        return image_folders(dataset.dataset)
    prefix = getattr(dataset, 'data_prefix', None) or {}
    folder = prefix.get('img_path') or prefix.get('img') or getattr(dataset, 'data_root', None)
    return [folder] if folder else []


def path_under(img_path: str, folders) -> str:
    """``img_path`` under the first of ``folders`` that holds it
    (``cat/1.jpg``), or its file name where none does."""
    for folder in folders:
        relative = osp.relpath(img_path, folder)
        if relative != osp.pardir and not relative.startswith(osp.pardir + osp.sep):
            return relative
    return osp.basename(img_path)


@contextlib.contextmanager
def drawing_in_every_process(into_file: bool = True):
    """Let this process draw (into a file): each ``master_only`` drawing
    method asks ``mmengine.dist.utils.is_main_process`` at the call. The
    answer changes for the whole process meanwhile (no other thread of a test
    run asks it). A drawing not ``into_file`` goes to the visualiser's
    backends, which log from the first process only, as mmengine has it."""
    if not into_file or get_world_size() == 1:
        yield
        return
    main = mmengine.dist.utils.is_main_process
    mmengine.dist.utils.is_main_process = lambda group=None: True
    try:
        yield
    finally:
        mmengine.dist.utils.is_main_process = main


class _EveryProcess:
    """Finds the image folders of the loop's dataset, for :func:`path_under`,
    and gives every process's visualiser the dataset's classes and palette
    (the runner's setting of them is ``master_only`` too)."""

    image_folders = ()  # until a loop starts

    def before_val(self, runner) -> None:
        self._prepare(runner.visualizer, runner.val_dataloader.dataset)

    def before_test(self, runner) -> None:
        self._prepare(runner.visualizer, runner.test_dataloader.dataset)

    def _prepare(self, visualizer, dataset) -> None:
        self.image_folders = image_folders(dataset)
        if hasattr(dataset, 'metainfo'):
            with drawing_in_every_process():
                visualizer.dataset_meta = dataset.metainfo


@HOOKS.register_module()
class EveryImageDetVisualizationHook(_EveryProcess, DetVisualizationHook):
    """mmdet's hook: ``WORK_DIR/<time>/SHOW_DIR/<image path>`` (an absolute
    SHOW_DIR as it is), from every process."""

    def after_test_iter(self, runner, batch_idx, data_batch, outputs) -> None:
        if not self.draw:
            return
        if self.test_out_dir is not None:  # as mmdet: under the run's log folder; joined once, being absolute then
            self.test_out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        for data_sample in outputs:
            self._test_index += 1
            image = mmcv.imfrombytes(get(data_sample.img_path, backend_args=self.backend_args), channel_order='rgb')
            name = path_under(data_sample.img_path, self.image_folders)
            out_file = osp.join(self.test_out_dir, name) if self.test_out_dir is not None else None
            with drawing_in_every_process(out_file is not None):
                self._visualizer.add_datasample(name if self.show else 'test_img', image, data_sample=data_sample,
                                                show=self.show, wait_time=self.wait_time,
                                                pred_score_thr=self.score_thr, out_file=out_file,
                                                step=self._test_index)


@HOOKS.register_module()
class EveryImageSegVisualizationHook(_EveryProcess, SegVisualizationHook):
    """mmseg's hook, in mmseg's test layout:
    ``SHOW_DIR/vis_data/vis_image/<image folder>/test_<image name>_0.png``,
    from every process and into files (``out_dir``) rather than through the
    visualiser's backends."""

    def __init__(self, out_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.out_dir = out_dir

    def _after_iter(self, runner, batch_idx, data_batch, outputs, mode='val') -> None:
        if self.out_dir is None or mode != 'test':
            return super()._after_iter(runner, batch_idx, data_batch, outputs, mode)
        if not self.draw or not self.every_n_inner_iters(batch_idx, self.interval):
            return
        for data_sample in outputs:
            image = mmcv.imfrombytes(get(data_sample.img_path, backend_args=self.backend_args), channel_order='rgb')
            folder, name = osp.split(path_under(data_sample.img_path, self.image_folders))
            # step 0, as mmseg's hook gives in a test: its runner.iter would build the training loop and split
            out_file = osp.join(self.out_dir, 'vis_data', 'vis_image', folder, f'test_{name}_0.png')
            with drawing_in_every_process():
                self._visualizer.add_datasample(f'test_{name}', image, data_sample=data_sample, show=self.show,
                                                wait_time=self.wait_time, out_file=out_file)


@HOOKS.register_module()
class RGBVisualizationHook(_EveryProcess, VisualizationHook):
    """mmpretrain's hook: ``OUT_DIR/<image path>_<step>.png``, every
    ``interval``-th image of the dataset, from every process.

    It also turns the inputs it draws to RGB: mmpretrain's draws the
    network's inputs taken for RGB, but a pipeline gives images in file order
    (BGR) wherever the data preprocessor turns them (``to_rgb``): every
    drawing had red and blue swapped (open-mmlab/mmpretrain#1799)."""

    bgr_inputs = False

    def before_run(self, runner) -> None:
        preprocessor = bare_model(runner.model).data_preprocessor
        self.bgr_inputs = bool(getattr(preprocessor, 'to_rgb', False))  # mmpretrain's preprocessor

    def _draw_samples(self, batch_idx, data_batch, data_samples, step=0) -> None:
        if not self.enable:
            return
        for position, (image, data_sample) in enumerate(zip(data_batch['inputs'], data_samples)):
            # mmpretrain's PackInputs keeps sample_idx; a pipeline that drops it gets mmpretrain's count
            index = data_sample.get('sample_idx', batch_idx * len(data_samples) + position)
            if index % self.interval:
                continue
            if self.bgr_inputs and image.shape[0] == 3:  # the preprocessor turns three-channel images only
                image = image.flip(0)
            image = image.permute(1, 2, 0).cpu().numpy().astype('uint8')
            name = path_under(data_sample.img_path, self.image_folders) if 'img_path' in data_sample else str(index)
            draw_args = dict(self.draw_args)
            if self.out_dir is not None:
                draw_args['out_file'] = osp.join(self.out_dir, f'{name}_{step}.png')
            with drawing_in_every_process('out_file' in draw_args):
                self._visualizer.visualize_cls(image=image, data_sample=data_sample, step=step, name=name,
                                               **draw_args)


# The toolboxes' hooks, by the name a config gives them, and this module's version of each.
EVERY_IMAGE_HOOKS = {'DetVisualizationHook': EveryImageDetVisualizationHook.__name__,
                     'SegVisualizationHook': EveryImageSegVisualizationHook.__name__,
                     'VisualizationHook': RGBVisualizationHook.__name__}
