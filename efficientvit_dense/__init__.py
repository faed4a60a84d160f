"""EfficientViT for dense prediction on the OpenMMLab stack.

Layers, each importing only from those before it (docs/design.md):
``errors`` <- ``models`` <- ``engine`` <- ``analysis`` <- ``apps`` <- ``cli``.

Importing the package applies the compatibility shims (``engine.compat``)
and registers the models, the metric, the checked image loader and the
crash-safe checkpoint hook with mmengine, which is what a config's
``custom_imports = dict(imports=['efficientvit_dense'])`` relies on.
"""
from .engine import compat

compat.apply()

from . import models  # noqa: E402,F401  (registers the modules)
from .engine import checkpointing, data_checks, evaluation  # noqa: E402,F401  (registers hook, transform, metric)

__version__ = '0.2.0'
