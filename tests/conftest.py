import os
import shutil

import pytest
import torch
from helpers import TINY_SPEC

import efficientvit_dense  # noqa: F401  (shims and registrations, as users get them)
from efficientvit_dense.analysis.reference import random_timm_model
from efficientvit_dense.apps.synthetic import generate


def pytest_configure(config):
    """Under pytest-xdist (``make test``), each worker gets its share of the cores: two workers with two OpenMP
    threads each on two cores spin against each other. The tools the tests start inherit the share."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', 0))
    if workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ['OMP_NUM_THREADS'] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope='session', autouse=True)
def data_check_cache(tmp_path_factory):
    """The data checks remember what passed under $EVD_CACHE_DIR; tests
    (and the tools they start) keep that memory in a temporary folder, not
    in the user's cache."""
    folder = tmp_path_factory.mktemp('evd-cache')
    previous = os.environ.get('EVD_CACHE_DIR')
    os.environ['EVD_CACHE_DIR'] = str(folder)
    yield folder
    if previous is None:
        del os.environ['EVD_CACHE_DIR']
    else:
        os.environ['EVD_CACHE_DIR'] = previous


@pytest.fixture(scope='session')
def timm_model():
    """timm's efficientvit_m* with random weights, built once per arch."""
    cache = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = random_timm_model(arch)
        return cache[arch]

    return get


@pytest.fixture
def train_and_predict_step():
    """One loss step with backward (gradients must reach the backbone's first
    layer) and one predict step of an mmengine model on ``batch``; returns
    the predictions."""
    def run(model, batch):
        model.train()
        data = model.data_preprocessor(batch, training=True)
        total, _ = model.parse_losses(model(**data, mode='loss'))
        assert torch.isfinite(total)
        total.backward()
        first = next(p for p in model.backbone.parameters() if p.requires_grad)
        assert first.grad is not None
        model.eval()
        with torch.no_grad():
            return model.test_step(batch)

    return run


@pytest.fixture(scope='session')
def pristine(tmp_path_factory):
    """The tiny synthetic dataset, generated once; never to be changed."""
    root = tmp_path_factory.mktemp('pristine') / 'data'
    generate(str(root), TINY_SPEC)
    return root


@pytest.fixture
def data(pristine, tmp_path):
    """A copy of the tiny synthetic dataset, for a test to break."""
    return shutil.copytree(pristine, tmp_path / 'data')


@pytest.fixture
def uncompiled_int8(monkeypatch):
    """int8's parts as PT2E's converted graphs, uncompiled: compiling a backbone or a detector's parts takes a
    minute or more on 2 cores, and a test in tests/test_precision.py compiles a small part to check that
    compiling keeps what the graph computes, on oneDNN's int8 kernels."""
    from efficientvit_dense.analysis import quantize
    monkeypatch.setattr(quantize, 'compile_int8', lambda graph, **settings: graph)
