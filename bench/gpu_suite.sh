#!/usr/bin/env bash
# The `sam3` preset on one GPU (H100 / H200), bf16, in one run of about 8 minutes and one
# table: batched vs per-frame training frames/s at T = 4 and 8 with MFU against the
# device's bf16 peak and peak GPU memory per frame (bench/train_throughput.py), the longest
# clip a training step fits for a full, a frozen-trunk and a LoRA fine-tune
# (bench/sam3_memory.py --longest-clip), and evaluation frames/s (bench/eval_throughput.py).
#
#   bench/gpu_suite.sh [PEAK_BF16_TFLOPS]     # default: from the GPU's name (H100/H200 989)
#
# Each part's own output is kept under $OUT (default bench-gpu-<time>/). Random init: no
# weights are needed. Every part has a time limit, so a slow part cannot eat the others'.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench-gpu-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
peak=${1:-}
if [[ -z "$peak" ]]; then
  case "$gpu" in
    *H100*|*H200*) peak=989 ;;     # dense bf16 tensor-core peak, SXM
    *B200*) peak=2250 ;;
    *A100*) peak=312 ;;
    *) echo "unknown GPU '$gpu': pass its bf16 peak TFLOP/s as the first argument" >&2; exit 2 ;;
  esac
fi
echo "GPU: $gpu, bf16 peak $peak TFLOP/s; outputs in $OUT" >&2

part() {  # part NAME SECONDS COMMAND...: run a part under a time limit, its output kept
  local name=$1 limit=$2; shift 2
  echo "== $name (at most ${limit}s): $*" >&2
  if ! timeout "$limit" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
    echo "$name failed or ran out of time; see $OUT/$name.err" >&2
  fi
}

part train 200 "$PY" bench/train_throughput.py --device cuda --preset sam3 --amp bf16 \
  --frames 4 8 --clips 1 --reps 3 --peak-tflops "$peak" --out "$OUT/train.md"
part longest 200 "$PY" bench/sam3_memory.py --device cuda --amp bf16 --longest-clip \
  --configs full frozen lora --max-frames 32
part eval 60 "$PY" bench/eval_throughput.py --preset sam3 --device cuda --videos 2 \
  --frames 8 --repeats 1

"$PY" - "$OUT" "$gpu" <<'EOF'
"""The parts' tables, as one."""
import re
import sys
from pathlib import Path

out, gpu = Path(sys.argv[1]), sys.argv[2]
rows = []

def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]

train = out / "train.md"
if train.exists():
    lines = [l for l in train.read_text().splitlines() if l.startswith("|")]
    head = cells(lines[0])
    for line in lines[2:]:
        row = dict(zip(head, cells(line)))
        t = row["T"]
        rows += [(f"training, T={t}: batched frames/s", row["batched frames/s"]),
                 (f"training, T={t}: per-frame frames/s", row["per-frame frames/s"]),
                 (f"training, T={t}: MFU (batched)", row.get("mfu", "-")),
                 (f"training, T={t}: peak GPU memory per frame (MB)", row.get("peak_mem_mb_per_frame", "-"))]
longest = (out / "longest.txt").read_text() if (out / "longest.txt").exists() else ""
for name, what in (("full", "full fine-tune"), ("frozen", "trunk + text frozen"), ("lora", "LoRA rank 16")):
    found = re.search(rf"^\| {name} \|.*\| (\d+) \|$", longest, re.M)
    rows.append((f"longest clip that fits (frames), {what}", found.group(1) if found else "-"))
evaluation = (out / "eval.txt").read_text() if (out / "eval.txt").exists() else ""
found = re.search(r"^total\s+\S+\s+(\S+)", evaluation, re.M)
rows.append(("evaluation frames/s (end to end)", found.group(1) if found else "-"))

print(f"sam3 preset, bf16, 1008 px, {gpu}\n")
print("| figure | value |\n|---|---:|")
for figure, value in rows:
    print(f"| {figure} | {value} |")
EOF
