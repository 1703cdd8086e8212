#!/usr/bin/env bash
# The GPU checks of issue 7 as one short run (about 5 minutes on an H100), for a session lent a device:
#   FlexAttention forward/backward against eager, bf16 training, and the three benchmarks on CUDA.
# Tables land in ${OUT:-runs/_benchmarks}; each step is time-limited so one hang cannot eat the budget.
set -u
out="${OUT:-runs/_benchmarks}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
timeout 180 python -m pytest -q -x tests/model/test_backends.py -k cuda -p no:cacheprovider
timeout 240 python benchmarks/train_throughput.py --device cuda --compile --repeat 20 --out "$out"
timeout 120 python benchmarks/train_throughput.py --device cuda --out "$out/uncompiled"
timeout 120 python benchmarks/local_attention.py --device cuda --backend flex --seq 8192 --window 1024 --out "$out"
timeout 120 python benchmarks/inference.py --device cuda --out "$out"
