# Entry points. Each target first makes sure .venv/ is set up (seconds when
# it already is; about 30 minutes on a fresh machine, mostly building mmcv).
PYTHON_VENV := .venv/bin/python

.PHONY: setup demo demo-seg demo-cls compare test gpu-check

setup:
	bash scripts/setup_env.sh

demo: setup
	$(PYTHON_VENV) tools/demo.py

demo-seg: setup
	$(PYTHON_VENV) tools/demo.py --task segmentation

demo-cls: setup
	$(PYTHON_VENV) tools/demo.py --task classification

compare: setup
	$(PYTHON_VENV) tools/compare_backbones.py

# A worker process a core this process may use (at most four), each test file on one worker: 10.5 minutes on
# 2 cores where one process took 15. `pytest` alone runs the suite in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))

test: setup
	$(PYTHON_VENV) -m pytest --numprocesses=$(TEST_WORKERS) --dist=loadfile

# On a machine with an NVIDIA GPU: mmcv's CUDA ops, mixed-precision training,
# a test pass and the GPU speed figures (tools/gpu_check.py).
gpu-check: setup
	$(PYTHON_VENV) tools/gpu_check.py
