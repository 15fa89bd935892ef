#!/usr/bin/env bash
# Training benchmark on a lent GPU machine, bf16, as one short prepared script (under 8 minutes).
# Run from the repository root: bash benchmarks/gpu.sh   (results in benchmarks/results/training-gpu*.json)
set -euo pipefail
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q -c constraints.txt -e '.[models]'
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
nvidia-smi --query-gpu=name,memory.total --format=csv
.venv-gpu/bin/python benchmarks/bench_training.py --model tiny --steps 200 --batch 64 --device cuda --precision bf16 \
    --output benchmarks/results/training-gpu-tiny.json
.venv-gpu/bin/python benchmarks/bench_training.py --model minilm --steps 100 --batch 64 --device cuda --precision bf16 \
    --output benchmarks/results/training-gpu-minilm.json
