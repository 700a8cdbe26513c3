#!/usr/bin/env bash
# The prepared GPU check (see benchmarks/gpu_check.py and BENCHMARKS.md): five sections, each in its
# own process under its own timeout (≤ 560 s in all: fits 10 minutes on one GPU), then one table.
# Without a CUDA device the GPU sections print "skipped: no CUDA device" and the CPU parts still run.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default: benchmarks/results/gpu_check
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${1:-benchmarks/results/gpu_check}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.status
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
for spec in tests:100 train:90 latency:100 corrupt:130 ray:130; do
  section="${spec%%:*}"; limit="${spec##*:}"
  echo "== $section (timeout ${limit} s)"
  timeout --kill-after=10 "$limit" "$PYTHON" benchmarks/gpu_check.py "$section" --out "$OUT"
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "timed out after ${limit} s" > "$OUT/$section.status"
  elif [ "$rc" -ne 0 ]; then
    echo "exit code $rc" > "$OUT/$section.status"
  fi
done
"$PYTHON" benchmarks/gpu_check.py table "$OUT"
echo "total: $(( $(date +%s) - start )) s"
