#!/usr/bin/env bash
# The GPU check in one short script: the accelerator tests, then the benchmark on CUDA.
#
#   bash benchmarks/gpu_check.sh [DATA_ROOT]
#
# Run from the repository root on a machine with a CUDA GPU, torch and torch_geometric (the
# package is used from the checkout, nothing is installed). DATA_ROOT holds gowalla/train.txt
# and gowalla/test.txt (default: $LIGHTGCN_DATA_ROOT, else ../shared/datasets). Results go to
# $OUT (default ./gpu_out): env.txt, tests.txt, bench_cuda.json, bench_cuda.txt.
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export LIGHTGCN_DATA_ROOT=${1:-${LIGHTGCN_DATA_ROOT:-../shared/datasets}}
python3 - <<'PY' 2>&1 | tee "$out/env.txt"
import torch, torch_geometric
print("torch", torch.__version__, "| torch_geometric", torch_geometric.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
python3 -m pytest -q -rs -p no:cacheprovider tests/test_accelerators.py \
    tests/evaluation/test_evaluator.py 2>&1 | tee "$out/tests.txt"
tests=${PIPESTATUS[0]}
python3 benchmarks/bench_gowalla.py --quick --device cuda --json \
    >"$out/bench_cuda.json" 2>"$out/bench_cuda.txt"
bench=$?
tail -n 3 "$out/bench_cuda.txt"
echo "tests exit $tests, benchmark exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
