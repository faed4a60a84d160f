"""The classifier's drawings of ``tools/test.py --show-dir``."""
from __future__ import annotations

from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmpretrain.engine.hooks import VisualizationHook


@HOOKS.register_module()
class RGBVisualizationHook(VisualizationHook):
    """mmpretrain's VisualizationHook draws the network's inputs taken for
    RGB, but a pipeline gives images in file order (BGR) wherever the data
    preprocessor turns them (``to_rgb``): every drawing had red and blue
    swapped (open-mmlab/mmpretrain#1799). This one turns them first."""

    bgr_inputs = False

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.bgr_inputs = bool(getattr(model.data_preprocessor, 'to_rgb', False))  # mmpretrain's preprocessor

    def _draw_samples(self, batch_idx, data_batch, data_samples, step=0) -> None:
        if self.enable and self.bgr_inputs:
            # A list of CHW images, or a batch of them; the preprocessor turns three-channel ones only.
            turn = lambda image: image.flip(-3) if image.shape[-3] == 3 else image  # noqa: E731
            inputs = data_batch['inputs']
            data_batch = {**data_batch, 'inputs': turn(inputs) if hasattr(inputs, 'flip') else list(map(turn, inputs))}
        super()._draw_samples(batch_idx, data_batch, data_samples, step)
