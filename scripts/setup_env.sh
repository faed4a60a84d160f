#!/usr/bin/env bash
# Create .venv/ and install the whole stack into it, building mmcv 2.1.0 with
# its compiled ops when no usable wheel is cached. Safe to run again: once the
# environment matches this checkout it returns in seconds.
#
# mmcv gets CUDA ops when torch sees a GPU (for the GPUs present), or when
# asked on a machine without one, e.g. a cluster's login node:
#   EVD_MMCV_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" make setup
# EVD_MMCV_CUDA=0 forces CPU ops only; scripts/mmcv_build_plan.py has the rules.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-$repo/.venv}
# The mmcv wheel is compiled against torch's C++ ABI, so torch is pinned here
# and the cached wheel is keyed by the torch version it was built against.
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
MMCV_VERSION=2.1.0   # mmdet 3.3 and mmseg 1.2.2 refuse mmcv >= 2.2 at import
CACHE_DIR=${EVD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/efficientvit-dense}

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }

# The stamp records what the environment was built from, the mmcv wheel's key
# included (a venv made on a CPU machine is not up to date on a GPU node); a
# match means there is nothing to do.
stamp_file="$VENV/.efficientvit-dense-setup"
sources_hash=$(cat pyproject.toml scripts/setup_env.sh scripts/mmcv_build_plan.py | sha256sum | cut -d' ' -f1)
plan_mmcv() { "$VENV/bin/python" scripts/mmcv_build_plan.py "$1" "$CACHE_DIR/wheels"; }
if [ -f "$stamp_file" ] && wheel_plan=$(plan_mmcv wheel 2>/dev/null) && eval "$wheel_plan" \
   && [ "$(cat "$stamp_file")" = "$sources_hash-$mmcv_wheel_key" ] \
   && "$VENV/bin/python" -c 'import mmcv.ops, efficientvit_dense' 2>/dev/null; then
  log "environment in $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi

log "installing torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION and build tools"
pip_install --upgrade pip
# setuptools < 82 still ships pkg_resources, which mmcv's setup.py and
# mmengine's `mmdet::` config resolution import.
pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
  "setuptools>=64,<82" wheel ninja

# CPU or CUDA ops, for which GPUs: decided (or refused with what to set)
# before anything compiles; a cached wheel needs no compiler.
wheel_plan=$(plan_mmcv wheel) || exit 1
eval "$wheel_plan"
wheel_dir="$CACHE_DIR/wheels/$mmcv_wheel_key"
mmcv_wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)

# The toolkit to build with: an nvcc of torch's CUDA version, or NVIDIA's pip
# package of it installed into the environment.
plan_build() {
  local status=0
  build_plan=$(plan_mmcv build) || status=$?
  if [ "$status" -eq 3 ]; then
    eval "$build_plan"
    log "installing $mmcv_nvcc_requirement (NVIDIA's nvcc) into $VENV"
    pip_install "$mmcv_nvcc_requirement" \
      || die "could not install $mmcv_nvcc_requirement; install the CUDA toolkit of torch's CUDA version, set CUDA_HOME to it and run make setup again (or EVD_MMCV_CUDA=0 for CPU ops only)"
    status=0; build_plan=$(plan_mmcv build) || status=$?
    [ "$status" -ne 3 ] || die "$mmcv_nvcc_requirement was installed but gives no usable nvcc; install the CUDA toolkit of torch's CUDA version and set CUDA_HOME to it"
  fi
  [ "$status" -eq 0 ] || exit 1
  eval "$build_plan"
}

build_mmcv() {
  local work log_file pid start status
  work=$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")
  log_file="$CACHE_DIR/mmcv-build-$mmcv_wheel_key.log"
  mkdir -p "$wheel_dir"; rm -rf "$wheel_dir.partial"
  log "no cached mmcv $MMCV_VERSION wheel for $mmcv_wheel_key: building it from source; log: $log_file"
  if [ "$mmcv_flavour" = cuda ]; then
    log "CUDA ops for TORCH_CUDA_ARCH_LIST=$mmcv_arch_list with $mmcv_cuda_home/bin/nvcc: 136 files, about 40 minutes on 2 cores"
  else
    log "CPU ops: about 77 C++ files, ~10 minutes on 2 cores (AVX-512 Xeon) to ~27 (AVX2 EPYC)"
  fi
  "$VENV/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
    --no-binary mmcv --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work" \
    || die "could not download the mmcv $MMCV_VERSION source distribution"
  tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
  # mmcv pins -std=c++14/17 but torch >= 2.13 headers need C++20.
  sed -i -E "s/-std=c\+\+1[47]/-std=c++20/g" "$work/mmcv-$MMCV_VERSION/setup.py"
  grep -q -- '-std=c++20' "$work/mmcv-$MMCV_VERSION/setup.py" \
    || die "could not patch the C++ standard flag in mmcv's setup.py"

  start=$(date +%s)
  # mmcv's setup.py compiles CUDA ops whenever torch sees a GPU: hide it for CPU ops.
  local cuda_env=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
  if [ "$mmcv_flavour" = cuda ]; then
    # FORCE_CUDA makes mmcv's setup.py compile the CUDA ops even where no GPU is visible.
    cuda_env=(FORCE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$mmcv_arch_list" "CUDA_HOME=$mmcv_cuda_home"
              "PATH=$mmcv_cuda_home/bin:$PATH")
    if [ -n "$mmcv_include_dirs" ]; then
      # Library headers torch's CUDA headers include, from torch's pip CUDA packages: g++ reads CPATH, nvcc
      # takes NVCC_APPEND_FLAGS.
      cuda_env+=("CPATH=$mmcv_include_dirs${CPATH:+:$CPATH}"
                 "NVCC_APPEND_FLAGS=${NVCC_APPEND_FLAGS:-} -I${mmcv_include_dirs//:/ -I}")
    fi
    if [ -n "$mmcv_cudart" ]; then  # torch links -lcudart; pip's CUDA has only libcudart.so.N
      mkdir -p "$work/cudart" && ln -s "$mmcv_cudart" "$work/cudart/libcudart.so"
      cuda_env+=("LIBRARY_PATH=$work/cudart${LIBRARY_PATH:+:$LIBRARY_PATH}")
    fi
  fi
  (cd "$work/mmcv-$MMCV_VERSION" && env "${cuda_env[@]}" MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
     "$VENV/bin/python" -m pip wheel -v --no-deps --no-build-isolation . -w "$wheel_dir.partial") \
     >"$log_file" 2>&1 &
  pid=$!
  # A heartbeat so that a user (and CI) can see the build is alive.
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    progress=$(grep -oE '\[[0-9]+/[0-9]+\]' "$log_file" | tail -n1 || true)
    log "building mmcv: ${progress:-preparing} after $(( $(date +%s) - start ))s"
  done
  status=0; wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    printf '[setup] mmcv build failed (exit %s); last lines of %s:\n' "$status" "$log_file" >&2
    tail -n 40 "$log_file" >&2
    rm -rf "$work" "$wheel_dir.partial"
    exit 1
  fi
  # Move into place only once complete, so an interrupted build is never reused.
  mv "$wheel_dir.partial"/mmcv-*.whl "$wheel_dir"/
  rm -rf "$wheel_dir.partial" "$work"
  log "built mmcv in $(( $(date +%s) - start ))s; cached in $wheel_dir"
}

if [ -z "$mmcv_wheel" ]; then
  [ "$mmcv_flavour" = cpu ] || plan_build
  build_mmcv
  mmcv_wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)
else
  log "reusing cached $mmcv_wheel"
fi

log "installing mmcv and the project with its dependencies"
pip_install "$mmcv_wheel"
pip_install -e ".[test]"

"$VENV/bin/python" -c 'import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, efficientvit_dense' \
  || die "the stack was installed but does not import; see the error above"
if [ "$mmcv_flavour" = cuda ]; then
  "$VENV/bin/python" -c 'import sys, mmcv.ops; v = mmcv.ops.get_compiling_cuda_version(); print("[setup] mmcv CUDA ops compiled with CUDA", v); sys.exit(v == "not available")' \
    || die "mmcv was installed from $mmcv_wheel but has no CUDA ops; delete that wheel and run make setup again"
fi
echo "$sources_hash-$mmcv_wheel_key" >"$stamp_file"
log "done: activate with 'source $VENV/bin/activate'"
