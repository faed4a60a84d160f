"""Data transforms the configs name."""
from __future__ import annotations

from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS


@TRANSFORMS.register_module()
class DatasetRGBToBGR(BaseTransform):
    """A dataset's in-memory RGB image (mmpretrain's CIFAR datasets hold the
    release's arrays in RGB) in the channel order an image file is read in
    (BGR), so that the data preprocessor's ``to_rgb`` gives the RGB the
    ImageNet weights expect from both. Images that an inferencer read from
    files run through the same test pipeline already in BGR: only a
    dataset's in-memory samples (mmengine numbers them, ``sample_idx``; no
    ``img_path``) are turned."""

    def transform(self, results: dict) -> dict:
        if 'sample_idx' in results and 'img_path' not in results:  # a dataset's array, not a file's
            results['img'] = results['img'][..., ::-1].copy()
        return results
