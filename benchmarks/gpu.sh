#!/usr/bin/env bash
# One prepared script for a lent GPU machine (under 8 minutes): install, run the GPU tests, then benchmark a LoRA
# fine-tune of a generated ~100M-parameter Llama in bf16 beside full fine-tuning, and the classification loop.
# Run from the repository root:   bash benchmarks/gpu.sh [OUT_DIR]
# Results: OUT_DIR (default benchmarks/results)/lora-gpu.json, training-gpu-*.json, gpu-tests.txt.
set -euo pipefail
OUT="${1:-${OUT:-benchmarks/results}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
export TOKENIZERS_PARALLELISM=false TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""
start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu-device.txt"
# torch==2.13.0 from constraints.txt: on a Linux x86_64 machine with CUDA, PyPI's wheel is the CUDA build.
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,models,qlora]'
.venv-gpu/bin/python -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)"
.venv-gpu/bin/python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
echo "installed in $(( $(date +%s) - start )) s"
# The GPU tests (marked gpu; they skip without CUDA) and the trainer tests that need no ../shared/data.
.venv-gpu/bin/python -m pytest -q -p no:cacheprovider -m gpu tests/gpu 2>&1 | tee "$OUT/gpu-tests.txt" | tail -5
.venv-gpu/bin/python benchmarks/bench_lora.py --size 100m --steps 30 --batch 16 --block 512 --device cuda \
    --output "$OUT/lora-gpu.json"
.venv-gpu/bin/python benchmarks/bench_training.py --model tiny --steps 200 --batch 64 --device cuda --precision bf16 \
    --output "$OUT/training-gpu-tiny.json" || echo "bench_training (tiny) failed"
echo "done in $(( $(date +%s) - start )) s"
