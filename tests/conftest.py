import pytest
import timm
import torch

import efficientvit_dense  # noqa: F401  (shims and registrations, as users get them)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic a random value, so that
    a wrong mapping or an ignored tensor cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


@pytest.fixture(scope='session')
def timm_model():
    """timm's efficientvit_m* with random weights, built once per arch."""
    cache = {}

    def get(arch: str) -> torch.nn.Module:
        if arch not in cache:
            cache[arch] = randomize_(timm.create_model(f'efficientvit_{arch}', pretrained=False)).eval()
        return cache[arch]

    return get
