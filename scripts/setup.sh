#!/usr/bin/env bash
# Installs what adgan needs into the project (idempotent): a Python virtual environment in
# .venv holding PyPI's torch==2.11.0 wheel, whose libtorch tch 0.24 links against.
#   scripts/setup.sh            CPU-only set: torch without its CUDA libraries (0.53 GB wheel, 1.3 GB installed)
#   scripts/setup.sh --full     torch with all its dependencies (CUDA libraries; 4.7 GB installed) and
#                               safetensors: needed to run the PyTorch scripts in bench/, to check
#                               exports, and to use a GPU
# Source scripts/env.sh afterwards to get LIBTORCH for cargo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
torch_version=2.11.0
want=cpu
[ "${1:-}" = "--full" ] && want=full

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

if [ ! -f "$venv/.adgan-libtorch-$torch_version" ]; then
  echo "setup: installing torch==$torch_version (libtorch) without its CUDA libraries" >&2
  # libtorch_cpu needs only the CUDA runtime and CUPTI; these are the versions that torch's
  # cuda-toolkit==13.0.2 pin selects.
  "${pip[@]}" --no-deps "torch==$torch_version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
  touch "$venv/.adgan-libtorch-$torch_version"
fi

# The CUDA runtime's compiler headers (crt/, 0.2 MB): build.rs compiles the CUDA graph shim
# (csrc/cuda_graph.cpp) against libtorch's CUDA headers, which include them. Without them the
# build leaves the shim out and says so when a CUDA graph is asked for.
if [ ! -f "$venv/.adgan-cuda-headers-13.0.88" ]; then
  echo "setup: installing the CUDA runtime's compiler headers (nvidia-cuda-crt)" >&2
  "${pip[@]}" --no-deps "nvidia-cuda-crt==13.0.88"
  touch "$venv/.adgan-cuda-headers-13.0.88"
fi

# Build and test tools of the Python package (python/): maturin builds it into .venv.
if [ ! -f "$venv/.adgan-python-tools-1" ]; then
  echo "setup: installing maturin, numpy and pytest (the Python package and its tests)" >&2
  "${pip[@]}" "maturin>=1.9,<2" numpy pytest
  touch "$venv/.adgan-python-tools-1"
fi

if [ "$want" = full ] && [ ! -f "$venv/.adgan-pytorch-$torch_version-safetensors" ]; then
  echo "setup: installing torch==$torch_version with all its dependencies, numpy and safetensors (for bench/, exports and GPUs)" >&2
  "${pip[@]}" "torch==$torch_version" numpy safetensors
  touch "$venv/.adgan-pytorch-$torch_version-safetensors"
fi
