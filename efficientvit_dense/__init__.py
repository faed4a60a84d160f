"""EfficientViT for dense prediction on the OpenMMLab stack.

Layers, each importing only from those before it (docs/design.md):
``errors`` <- ``models`` <- ``engine`` <- ``analysis`` <- ``apps`` <- ``cli``.

Importing the package applies the compatibility shims (``engine.compat``)
and has the models, the metric, the checked image loader and the crash-safe
checkpoint hook registered with mmengine before its registries are first
searched (``engine.registration``), which is what a config's
``custom_imports = dict(imports=['efficientvit_dense'])`` relies on.
"""
from .engine import compat, registration

compat.apply()
registration.register_at_first_lookup()  # the models, metric, loader and hook: engine/registration.py

__version__ = '0.2.0'
