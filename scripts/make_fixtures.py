#!/usr/bin/python3
"""Writes scalpel's PyTorch parity fixtures (golden files). Run with Debian's python3-torch:

    /usr/bin/python3 scripts/make_fixtures.py                  # every committed subset
    /usr/bin/python3 scripts/make_fixtures.py ops optim         # some subsets
    /usr/bin/python3 scripts/make_fixtures.py models --model-dir DIR [--models resnet18,vgg11]

Committed subsets (under tests/fixtures/, small, deterministic):
  ops        layer ops                             -> tests/fixtures/ops/<case>/
  losses     loss functions                        -> tests/fixtures/ops/loss_<case>/
  blocks     composite torch/torchvision modules   -> tests/fixtures/models/block_<case>/
  optim      10-step optimizer trajectories        -> tests/fixtures/optim/<case>/
  schedules  learning-rate schedules               -> tests/fixtures/optim/sched_<case>/
  zoo        whole-model forward + training step   -> tests/fixtures/models/zoo_<case>/
             with name-hashed weights (DenseNet, Inception V3)
  counts     torchvision parameter counts, shapes  -> tests/fixtures/models/*.json
Not committed (large), only when named:
  models     whole torchvision models with random weights, an input and the logits
             -> --model-dir (default /tmp/scalpel-model-fixtures)

The format and every case are described in tests/fixtures/README.md.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures import blocks, common, counts, losses, models, ops, optim, readme, schedules, zoo  # noqa: E402

COMMITTED = {
    "ops": (ops.GROUP, ops.SUBSET, ops.generate),
    "losses": (losses.GROUP, losses.SUBSET, losses.generate),
    "blocks": (blocks.GROUP, blocks.SUBSET, blocks.generate),
    "optim": (optim.GROUP, optim.SUBSET, optim.generate),
    "schedules": (schedules.GROUP, schedules.SUBSET, schedules.generate),
    "zoo": (zoo.GROUP, zoo.SUBSET, zoo.generate),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = list(COMMITTED) + ["counts", "models"]
    # No argparse `choices` here: with nargs="*" it rejects the empty (default) list.
    parser.add_argument("subsets", nargs="*", metavar="SUBSET",
                        help=f"one of {', '.join(choices)} (default: every committed one)")
    parser.add_argument("--model-dir", default="/tmp/scalpel-model-fixtures",
                        help="output folder of the 'models' subset")
    parser.add_argument("--models", default=",".join(models.MODELS),
                        help="comma-separated names for the 'models' subset")
    args = parser.parse_args()
    unknown = [s for s in args.subsets if s not in choices]
    if unknown:
        parser.error(f"unknown subset(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    subsets = args.subsets or list(COMMITTED) + ["counts"]

    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.use_deterministic_algorithms(True)
    for subset in subsets:
        start = time.time()
        if subset in COMMITTED:
            group, name, generate = COMMITTED[subset]
            written = generate()
            common.finish_subset(group, name, written)
            what = f"{len(written)} cases in tests/fixtures/{group}"
        elif subset == "counts":
            what = counts.generate()
        else:
            names = [m for m in args.models.split(",") if m]
            what = models.generate(args.model_dir, names)
        print(f"{subset}: {what} ({time.time() - start:.1f} s)")
    if any(s != "models" for s in subsets):
        readme.generate()


if __name__ == "__main__":
    main()
