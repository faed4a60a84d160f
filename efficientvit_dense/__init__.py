"""EfficientViT for dense prediction on the OpenMMLab stack.

Importing the package applies the compatibility shims (``compat``) and
registers the models with mmengine, which is what a config's
``custom_imports = dict(imports=['efficientvit_dense'])`` relies on.
"""
from . import compat

compat.apply()

from . import evaluation, models  # noqa: E402,F401  (registers the modules)

__version__ = '0.1.0'
