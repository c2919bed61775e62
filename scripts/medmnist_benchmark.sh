#!/bin/bash
# Reproduces the MedMNIST rows of docs/results.md: a model trained from scratch on
# PneumoniaMNIST and RetinaMNIST (official splits), seeds 0 1 2, each evaluated on the official
# test split; prints the per-run and mean +- std table. RECIPE=resnet18 (default; MedMNIST v2's
# recipe, below) or RECIPE=mobilenet_v2 (MobileNetV2 width 0.5 at 32x32, Adam lr 3e-3 with the
# default --augment xray, 10 epochs; the best rows of docs/results.md). For resnet18: STEM=imagenet (default: torchvision's
# 7x7/2 conv + max pool, with the 28x28 images resized to SIZE=32) or STEM=small (MedMNIST's own
# ResNet-18 (28): 3x3/1 conv, no pool, SIZE=28; about 2.2x the compute per image).
#
#   scripts/medmnist_benchmark.sh [MEDMNIST_DIR] [OUT_DIR]
#
# MEDMNIST_DIR holds pneumoniamnist.npz and retinamnist.npz (default ../shared/samples/medmnist);
# OUT_DIR gets one run folder per dataset and seed (train logs, history.csv, checkpoints,
# report/metrics.json) and summary.csv. Environment: SCALPEL (binary, default build/bin/scalpel),
# RECIPE, PNEUMONIA_EPOCHS, RETINA_EPOCHS, BATCH, SEEDS, DATASETS, STEM, SIZE, THREADS (OMP_NUM_THREADS,
# default 2), PARALLEL (below).
set -euo pipefail
SCALPEL=${SCALPEL:-build/bin/scalpel}
DATA=${1:-../shared/samples/medmnist}
OUT=${2:-/tmp/scalpel-medmnist}
RECIPE=${RECIPE:-resnet18}
if [ "$RECIPE" = mobilenet_v2 ]; then default_epochs=(10 10); else default_epochs=(2 4); fi
PNEUMONIA_EPOCHS=${PNEUMONIA_EPOCHS:-${default_epochs[0]}}
RETINA_EPOCHS=${RETINA_EPOCHS:-${default_epochs[1]}}
BATCH=${BATCH:-64}
SEEDS=${SEEDS:-"0 1 2"}
DATASETS=${DATASETS:-"pneumoniamnist retinamnist"}
STEM=${STEM:-imagenet}
SIZE=${SIZE:-32}
export OMP_NUM_THREADS=${THREADS:-2}
mkdir -p "$OUT"
# One training run and its test evaluation: run DATASET SEED.
run() {
  local name=$1 seed=$2 channels epochs
  case $name in
    pneumoniamnist) channels=1; epochs=$PNEUMONIA_EPOCHS ;;
    retinamnist) channels=3; epochs=$RETINA_EPOCHS ;;
  esac
  local dir=$OUT/$name-seed$seed start
  start=$(date +%s)
  # MedMNIST v2's recipe (Yang et al. 2023): Adam lr 1e-3, no augmentation, inputs scaled to
  # [-1, 1]; here with a smaller batch and a cosine schedule for the much shorter run, and the
  # epoch with the lowest validation loss kept (best.safetensors).
  local recipe=(--model resnet18 --stem "$STEM" --no-augment --optimizer adam --lr 0.001)
  if [ "$RECIPE" = mobilenet_v2 ]; then recipe=(--model mobilenet_v2 --width 0.5 --optimizer adam --lr 0.003); fi
  "$SCALPEL" train "${recipe[@]}" --in-channels $channels --data "$DATA/$name.npz" \
    --size "$SIZE" "$SIZE" --normalize tf --batch "$BATCH" \
    --schedule cosine --epochs "$epochs" --seed "$seed" --workers 1 --out "$dir" > "$dir.train.log" 2>&1
  "$SCALPEL" eval --weights "$dir/best.safetensors" --data "$DATA/$name.npz" --split test \
    --report "$dir/report" --gallery 0 > "$dir.eval.log" 2>&1
  echo "$name seed $seed: $(( $(date +%s) - start )) s"
}

# PARALLEL=1 starts every run at once, one thread each (on a loaded shared machine the runs then
# progress together); otherwise seeds go outermost, so an interrupted run still leaves complete
# seeds of both datasets.
for seed in $SEEDS; do
  for name in $DATASETS; do
    if [ "${PARALLEL:-0}" = 1 ]; then
      OMP_NUM_THREADS=1 run "$name" "$seed" &
    else
      run "$name" "$seed"
    fi
  done
done
wait

/usr/bin/python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = ["dataset,seed,test_auc,test_acc"]
for name in ("pneumoniamnist", "retinamnist"):
    aucs, accs = [], []
    for run in sorted(out.glob(f"{name}-seed*/report/metrics.json")):
        m = json.loads(run.read_text())
        seed = run.parent.parent.name.split("seed")[1]
        aucs.append(m["macro_auc"]); accs.append(m["accuracy"])
        rows.append(f"{name},{seed},{m['macro_auc']:.4f},{m['accuracy']:.4f}")
        print(f"{name} seed {seed}: test AUC {m['macro_auc']:.4f}, ACC {m['accuracy']:.4f}")
    if len(aucs) > 1:
        print(f"{name}: AUC {statistics.mean(aucs):.3f} +- {statistics.stdev(aucs):.3f}, "
              f"ACC {statistics.mean(accs):.3f} +- {statistics.stdev(accs):.3f} (mean +- sample std, {len(aucs)} seeds)")
(out / "summary.csv").write_text("\n".join(rows) + "\n")
PY
