"""The EfficientViT family: the paper's widths, depths and heads, by name.

Kept apart from the modules so that weight handling (which infers an arch
from a file) and the backbone (which builds one) both import it, and never
each other in a circle.
"""
from __future__ import annotations

from ..errors import ConfigError

# Paper Table 1. Every model uses key_dim 16; the per-head value width is
# embed_dim / num_heads, so that a head's output can feed the next head. The
# query kernels are the authors' classification/model/build.py ones, which
# their ImageNet weights and timm's have; their downstream/efficientvit.py
# lists (7, 5, 3, 3) for M0, which no released M0 file fits.
ARCH_SETTINGS: dict[str, dict] = {
    'm0': dict(embed_dims=(64, 128, 192), depths=(1, 2, 3), num_heads=(4, 4, 4), kernels=(5, 5, 5, 5)),
    'm1': dict(embed_dims=(128, 144, 192), depths=(1, 2, 3), num_heads=(2, 3, 3), kernels=(7, 5, 3, 3)),
    'm2': dict(embed_dims=(128, 192, 224), depths=(1, 2, 3), num_heads=(4, 3, 2), kernels=(7, 5, 3, 3)),
    'm3': dict(embed_dims=(128, 240, 320), depths=(1, 2, 3), num_heads=(4, 3, 4), kernels=(5, 5, 5, 5)),
    'm4': dict(embed_dims=(128, 256, 384), depths=(1, 2, 3), num_heads=(4, 4, 4), kernels=(7, 5, 3, 3)),
    'm5': dict(embed_dims=(192, 288, 384), depths=(1, 3, 4), num_heads=(3, 3, 4), kernels=(7, 5, 3, 3)),
}
KEY_DIM = 16
STEM_STRIDE = 16
MIN_INPUT_SIZE = 32  # the stride-64 map must be at least 1x1 after the stride-32 one
# timm's ImageNet models clamp each window to the stage size: at 224 the
# stage maps are 14, 7 and 4, so their windows are 7, 7 and 4.
IMAGENET_224_WINDOWS = (7, 7, 4)


def resolve_arch(arch: str | dict) -> dict:
    """Return the full arch dict for a name ('m0'..'m5') or a custom dict."""
    if isinstance(arch, str):
        key = arch.lower()
        if key not in ARCH_SETTINGS:
            raise ConfigError(f'Unknown EfficientViT arch {arch!r}; choose one of '
                              f'{sorted(ARCH_SETTINGS)} or pass a dict with keys '
                              "'embed_dims', 'depths', 'num_heads', 'kernels'.")
        return dict(ARCH_SETTINGS[key])
    required = {'embed_dims', 'depths', 'num_heads', 'kernels'}
    if not isinstance(arch, dict) or not required <= set(arch):
        raise ConfigError(f'A custom EfficientViT arch must be a dict with keys {sorted(required)}, got {arch!r}.')
    for dim, heads in zip(arch['embed_dims'], arch['num_heads']):
        if dim % heads:
            raise ConfigError(f'embed_dim {dim} is not divisible by its {heads} heads in arch {arch!r}.')
    return dict(arch)
