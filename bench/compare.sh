#!/usr/bin/env bash
# Side-by-side CPU timings: scalpel vs PyTorch (Debian's 1.13) vs ONNX Runtime 1.20.1 (npm),
# in one run, 2 threads each, best of N iterations. Prints the CPU model, then a table of ms and
# ratios (ours / best peer). With --rounds R the three run R times, interleaved (ours, PyTorch,
# ONNX Runtime, then again), and each cell is the min and median over the rounds; the ratio
# column is min / min, then the range of the per-round ratios.
#
#   bench/compare.sh [--models resnet50,mobilenet_v2,efficientnet_b0,densenet121] [--batches 1,8]
#                    [--size 224] [--iters 5] [--rounds 1] [--train] [--build build-perf]
#                    [--ours auto|cli|fused] [--precision fp32|bf16]
# Ours: `<build>/bin/scalpel bench --model M --batch N --size H W --iters K [--train] --json`
# (--ours cli; its ms_min, as the peers report their best), or <build>/bin/bench_models
# (--ours fused: bench/bench_models.cpp); both run models::fuse_for_inference. auto: cli when
# that command exists, else fused. --precision bf16 runs our inference GEMMs in bf16
# (tensor/gemm_bf16.h; the peers stay fp32); the table's variant column says which.
# Raw JSON lines are kept in $OUT_DIR (default: a temporary folder, printed at the end).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
models=resnet50,mobilenet_v2,efficientnet_b0,densenet121 batches=1,8 size=224 iters=5 rounds=1 train="" build="$root/build-perf" ours=auto precision=fp32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --train) train=1; shift ;;
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --ours) ours="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 1 ;;
  esac
done
out="${OUT_DIR:-$(mktemp -d /tmp/scalpel-compare.XXXXXX)}"
mkdir -p "$out/onnx"
results="$out/results.jsonl"
: > "$results"
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2

# Figures only mean something next to the CPU they were taken on (issue 21: the same binary
# was 2x vs 8x ONNX Runtime on two machines): name it, in the table's header and the results.
cpu_model="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
cpu_family="$(lscpu 2>/dev/null | sed -n 's/^CPU family: *//p' | head -1)"
cpu_number="$(lscpu 2>/dev/null | sed -n 's/^Model: *//p' | head -1)"
cpu_isa="$(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_tile' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ')"
cpu_line="CPU: ${cpu_model:-unknown} (family ${cpu_family:-?}, model ${cpu_number:-?}), $(nproc) logical CPUs, ${cpu_isa:-no AVX2}"
[[ "$(lscpu 2>/dev/null)" == *Hypervisor* ]] && cpu_line+="(virtual machine)"
echo "$cpu_line" | tee "$out/cpu.txt" >&2
# On a shared, loaded machine libgomp's default spin-waiting makes PyTorch (and our OpenMP
# loops) 10-60x slower; run with OMP_WAIT_POLICY=PASSIVE there (ONNX Runtime has its own pool).

# Every JSON line gets the round it came from.
tag_round() { /usr/bin/python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip(): d = json.loads(l); d["round"] = int(sys.argv[1]); print(json.dumps(d))' "$round"; }

for round in $(seq 1 "$rounds"); do
  export_onnx=""; [[ "$round" == 1 ]] && export_onnx=1
  echo "== round $round: ours" >&2
  if [[ "$ours" == auto ]]; then
    if "$build/bin/scalpel" bench --help > /dev/null 2>&1; then ours=cli; else ours=fused; fi
  fi
  if [[ "$ours" == cli ]]; then
    for m in ${models//,/ }; do
      for b in ${batches//,/ }; do
        "$build/bin/scalpel" bench --model "$m" --batch "$b" --size "$size" "$size" --iters "$iters" --threads 2 \
          --precision "$precision" --json |
          /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d.update(peer="scalpel", model=sys.argv[1], batch=int(sys.argv[2]), mode="inference"); d.update(ms=d["ms_min"], rss_mb=d["peak_rss_mib"], variant="scalpel bench (BN folded, conv+act fused, " + d["precision"] + ")"); print(json.dumps(d))' "$m" "$b" | tag_round >> "$results"
      done
      if [[ -n "$train" ]]; then
        "$build/bin/scalpel" bench --model "$m" --batch 8 --size "$size" "$size" --iters "$iters" --threads 2 --train --json |
          /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d.update(peer="scalpel", model=sys.argv[1], batch=8, mode="train"); d.update(ms=d["ms_min"], rss_mb=d["peak_rss_mib"], variant="scalpel bench (train, unfused)"); print(json.dumps(d))' "$m" | tag_round >> "$results"
      fi
    done
  elif [[ "$ours" == fused && -x "$build/bin/bench_models" ]]; then
    # One process per model, so that each row's peak RSS is that model's.
    for m in ${models//,/ }; do
      "$build/bin/bench_models" --models "$m" --batches "$batches" --size "$size" --iters "$iters" \
        --precision "$precision" ${train:+--train} | tag_round >> "$results"
    done
  else
    echo "compare.sh: no $build/bin/bench_models (--ours $ours); build it with" >&2
    echo "  cmake -S $root -B $build -DCMAKE_BUILD_TYPE=Release -DSCALPEL_BUILD_BENCH=ON && cmake --build $build -j2 --target bench_models" >&2
    exit 1
  fi

  echo "== round $round: pytorch (round 1 also exports the ONNX models)" >&2
  for m in ${models//,/ }; do  # one process per model, as ours (peak RSS per model)
    /usr/bin/python3 "$here/peers/torch_bench.py" --models "$m" --batches "$batches" --size "$size" \
      --iters "$iters" ${train:+--train} ${export_onnx:+--export "$out/onnx"} 2>> "$out/torch.log" | tag_round >> "$results"
  done

  echo "== round $round: onnxruntime" >&2
  if [[ ! -d "$here/peers/node_modules/onnxruntime-node" ]]; then
    (cd "$here/peers" && npm install --ignore-scripts --no-save --no-audit --no-fund onnxruntime-node@1.20.1 >&2)
  fi
  for m in ${models//,/ }; do
    node "$here/peers/ort_bench.js" "$out/onnx" "$m" "$batches" "$size" "$iters" | tag_round >> "$results"
  done
done

/usr/bin/python3 - "$results" "$cpu_line" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = int(sys.argv[3])
print(sys.argv[2])
print()
keys = sorted({(r["model"], r["mode"], r["batch"]) for r in rows}, key=lambda k: (k[1] != "inference", k[0], k[2]))
def runs(peer, k):
    return [r for r in rows if (r["model"], r["mode"], r["batch"]) == k and r["peer"] == peer]
def cell(rs):  # min, or "min / median" over the rounds
    if not rs: return "-"
    ms = [r["ms"] for r in rs]
    return f"{min(ms):.1f}" if len(ms) == 1 else f"{min(ms):.1f} / {statistics.median(ms):.1f}"
head = "ms" if rounds == 1 else f"ms (min / median of {rounds})"
print(f"| model | mode | batch | scalpel {head} | PyTorch {head} | ONNX Runtime {head} | ratio (ours / best peer){'' if rounds == 1 else ', min; per-round range'} | RSS MB ours / torch / ort |")
print("|---|---|---|---|---|---|---|---|")
for k in keys:
    ours, pt, ort = (runs(p, k) for p in ("scalpel", "pytorch", "onnxruntime"))
    peers = [min(r["ms"] for r in rs) for rs in (pt, ort) if rs]
    ratio = "-"
    if ours and peers:
        ratio = f"{min(r['ms'] for r in ours) / min(peers):.2f}"
        per_round = []
        for n in sorted({r["round"] for r in ours}):
            o = [r["ms"] for r in ours if r["round"] == n]
            p = [r["ms"] for rs in (pt, ort) for r in rs if r["round"] == n]
            if o and p: per_round.append(o[0] / min(p))
        if len(per_round) > 1: ratio += f" ({min(per_round):.2f}-{max(per_round):.2f})"
    rss = " / ".join(f"{max(r['rss_mb'] for r in rs):.0f}" if rs and rs[0].get("rss_mb") else "-" for rs in (ours, pt, ort))
    print(f"| {k[0]} | {k[1]} | {k[2]} | {cell(ours)} | {cell(pt)} | {cell(ort)} | {ratio} | {rss} |")
PY
echo "raw results: $results" >&2
