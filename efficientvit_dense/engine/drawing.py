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
        preprocessor = model.data_preprocessor  # mmpretrain's says to_rgb; mmengine's, _channel_conversion
        self.bgr_inputs = bool(getattr(preprocessor, 'to_rgb', getattr(preprocessor, '_channel_conversion', False)))

    def _draw_samples(self, batch_idx, data_batch, data_samples, step=0) -> None:
        if self.enable and self.bgr_inputs:
            inputs = data_batch['inputs']  # a list of CHW images, or a batch of them
            data_batch = {**data_batch, 'inputs': inputs.flip(-3) if hasattr(inputs, 'flip')
                          else [image.flip(-3) for image in inputs]}
        super()._draw_samples(batch_idx, data_batch, data_samples, step)
