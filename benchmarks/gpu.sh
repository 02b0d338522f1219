#!/usr/bin/env bash
# The project's one-shot device check: every step under its own timeout inside a global
# deadline (BUDGET seconds, default 480), full logs under $OUT, a short summary on stdout.
# Needs torch with CUDA (plus numpy, pandas, click, pytest, pyyaml); not Ray, Optuna or
# Plotly, so the tests run by file (the whole tree does not collect without them).
#
#   OUT=gpu-out bash benchmarks/gpu.sh
#
# 1. the CUDA tests (tests/test_cuda.py); 2. the crash-prone paths (graphs, bf16, NCHW,
# step_flops, populations up to K = 64: benchmarks/gpu_checks.py); 3. single-trial rates
# against the conventional loop and per-layer times (benchmarks/trainer.py); 4. the
# population table for K = 1, 4, 16, 64 with the 64 x 100k-step projection
# (benchmarks/population.py); 5. torch.compile, the slowest and least certain, last.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "error: benchmarks/gpu.sh needs torch with a CUDA device; none is visible here" >&2
  exit 2
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export BETASTUDY_CACHE=${BETASTUDY_CACHE:-${TMPDIR:-/tmp}/betastudy-gpu-cache}
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-${TMPDIR:-/tmp}/betastudy-inductor}
out=${OUT:-gpu-out}
mkdir -p "$out" "$BETASTUDY_CACHE"
deadline=$((SECONDS + ${BUDGET:-480}))

step() { # NAME CAP LOG CMD...: CMD under min(CAP, the time left), appended to LOG
  local name=$1 cap=$2 log=$3 left rc
  shift 3
  left=$((deadline - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped (${left} s left)" | tee -a "$out/$log"
    return
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "== $name: start at ${SECONDS} s, cap ${cap} s" >>"$out/$log"
  timeout -k 10 "$cap" "$@" >>"$out/$log" 2>&1
  rc=$?
  echo "== $name: rc=$rc at ${SECONDS} s" | tee -a "$out/$log"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
  echo "cpus $(nproc)"
} >"$out/env.txt" 2>&1
# the packed grid for the benchmarks, built while the tests run (they build their own)
(timeout 300 python3 -c 'from trainables import grid; grid.load(progress=False); print("grid ready")' >>"$out/env.txt" 2>&1 &)

step "cuda tests" 200 tests.log python3 -m pytest -v -rA -p no:cacheprovider --durations=10 tests/test_cuda.py
step "paths" 120 paths.log python3 benchmarks/gpu_checks.py paths
step "trainer rates" 110 rates.log python3 benchmarks/trainer.py --steps 1200 --window 200
step "population" 150 population.log python3 benchmarks/population.py --sizes 1,4,16,64 --steps 50
step "compile" 90 compile.log python3 benchmarks/gpu_checks.py compile

echo "---- summary (full logs under $out)"
grep -hE '^tests/test_cuda.py::.*(PASSED|FAILED|ERROR|SKIPPED)|^=+ .*(passed|failed|error).* =+$' "$out/tests.log" 2>/dev/null | sed 's/^tests\/test_cuda.py:://' | cut -c1-160
grep -hE '^\[(ok|FAIL)\]' "$out/paths.log" "$out/compile.log" 2>/dev/null | cut -c1-200
grep -hE '^(betastudy trainer|conventional loop|ratio|arithmetic|whole step)' "$out/rates.log" 2>/dev/null
grep -hE '^variant|^ +[0-9]+ +vmap|^best aggregate' "$out/population.log" 2>/dev/null
head -4 "$out/env.txt"
