#!/usr/bin/env bash
# GPU validation on one H100/H200 in under 8 minutes (issue 15): tools/gpu_validate.py with the project's venv
# and offline hubs; every argument is passed on (--dry-run prints the plan without CUDA, --help lists the rest).
# The venv needs a CUDA build of torch: the development pins (constraints.txt) install the CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec "$python" tools/gpu_validate.py "$@"
