import pytest

import efficientvit_dense  # noqa: F401  (shims and registrations, as users get them)
from efficientvit_dense.reference import random_timm_model


@pytest.fixture(scope='session')
def timm_model():
    """timm's efficientvit_m* with random weights, built once per arch."""
    cache = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = random_timm_model(arch)
        return cache[arch]

    return get
