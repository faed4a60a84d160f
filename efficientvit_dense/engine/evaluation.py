"""Evaluation metrics the toolboxes lack."""
from __future__ import annotations

import numpy as np
from mmengine.registry import METRICS
from mmseg.evaluation import IoUMetric


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's IoUMetric that also returns each class's IoU (``IoU.<class>``,
    in percent like mIoU) instead of only printing the table, so that demos,
    the report and ``runner.test()`` callers can read it."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        intersect, union, _, _ = (sum(parts) for parts in zip(*results))
        iou = (intersect / union).numpy() * 100  # NaN for a class absent from prediction and truth
        for name, value in zip(self.dataset_meta['classes'], iou):
            metrics[f'IoU.{name}'] = float(np.round(value, 2))
        return metrics
