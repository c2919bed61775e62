#!/usr/bin/python3
"""Training throughput of the MedMNIST ResNet-18 step, scalpel against PyTorch, in the same run.

    /usr/bin/python3 scripts/medmnist_throughput.py [--scalpel build/bin/scalpel] [--threads 2]
        [--stem imagenet|small] [--size S] [--batch B]

Both time the same step: a batch of random 1xSxS images through ResNet-18 (--stem imagenet:
torchvision's resnet18 with a 1-channel conv1, as docs/results.md trains it at S = 32; --stem
small: MedMNIST's ResNet-18 (28), 3x3/1 conv and no max pool, at S = 28), 2 classes, cross
entropy, backward and an SGD step (momentum 0.9), in training mode. `scalpel bench --train` gives the median of
--iters steps; PyTorch (Debian's python3-torch) the median of as many steps, after warm-up.
Rounds alternate between the two (so both see the same machine load) and the script prints
each round's images/s and the ratio scalpel / PyTorch of the medians.
"""
import argparse
import json
import statistics
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18Small(nn.Module):
    """MedMNIST's ResNet-18 for 28x28 inputs (experiments/MedMNIST2D/models.py)."""

    def __init__(self, in_channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for stage, cout in enumerate([64, 128, 256, 512]):
            for b in range(2):
                layers.append(BasicBlock(cin, cout, 2 if (b == 0 and stage > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        y = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def torch_model(stem):
    if stem == "small":
        return ResNet18Small(1, 2)
    model = torchvision.models.resnet18(num_classes=2)
    model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return model


def torch_images_per_s(stem, size, batch, iters, warmup):
    model = torch_model(stem).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, size, size)
    target = torch.arange(batch) % 2
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def scalpel_images_per_s(binary, stem, size, batch, iters, warmup, threads):
    out = subprocess.run([binary, "bench", "--model", "resnet18", "--stem", stem, "--in-channels", "1",
                          "--classes", "2", "--size", str(size), str(size), "--batch", str(batch), "--train",
                          "--iters", str(iters), "--warmup", str(warmup), "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scalpel", default="build/bin/scalpel")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stem", choices=["imagenet", "small"], default="imagenet")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours, theirs = [], []
    for r in range(args.rounds):
        ours.append(scalpel_images_per_s(args.scalpel, args.stem, args.size, args.batch, args.iters, args.warmup,
                                         args.threads))
        theirs.append(torch_images_per_s(args.stem, args.size, args.batch, args.iters, args.warmup))
        print(f"round {r + 1}: scalpel {ours[-1]:.1f} images/s, PyTorch {torch.__version__} {theirs[-1]:.1f} images/s")
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"median: scalpel {a:.1f} images/s, PyTorch {b:.1f} images/s, ratio scalpel/PyTorch {a / b:.2f} "
          f"({args.threads} threads, batch {args.batch}, ResNet-18 {args.stem} stem, 1x{args.size}x{args.size}, "
          "train step)")


if __name__ == "__main__":
    main()
