#!/usr/bin/python3
"""PyTorch peer for bench/compare.sh: best-of-N times (ms) of torchvision models.

Inference: eager and torch.jit.freeze + optimize_for_inference, the faster one is reported.
Training: one SGD step (forward, cross-entropy, backward, step).
With --export DIR, also writes DIR/<model>.onnx (opset 13, batch axis dynamic) for ort_bench.js.
Prints one JSON object per line: {"peer", "model", "batch", "mode", "ms", "variant", "rss_mb"}.
"""
import argparse
import json
import resource
import time

import torch
import torchvision


def best_ms(fn, iters, warmup=2):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,mobilenet_v2,efficientnet_b0,densenet121")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--train", action="store_true", help="also time an SGD step at batch 8")
    ap.add_argument("--export", metavar="DIR", help="write DIR/<model>.onnx for ort_bench.js")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for name in args.models.split(","):
        model = getattr(torchvision.models, name)().eval()
        if args.export:
            torch.onnx.export(model, torch.randn(1, 3, args.size, args.size), f"{args.export}/{name}.onnx",
                              opset_version=13, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        for batch in map(int, args.batches.split(",")):
            x = torch.randn(batch, 3, args.size, args.size)
            with torch.no_grad():
                eager = best_ms(lambda: model(x), args.iters)
                frozen_model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
                frozen = best_ms(lambda: frozen_model(x), args.iters)
            ms, variant = (eager, "eager") if eager <= frozen else (frozen, "jit.freeze+optimize_for_inference")
            print(json.dumps({"peer": "pytorch", "model": name, "batch": batch, "mode": "inference", "ms": ms,
                              "variant": variant, "eager_ms": eager, "frozen_ms": frozen, "rss_mb": rss_mb()}),
                  flush=True)
        if args.train:
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = torch.randn(8, 3, args.size, args.size)
            y = torch.randint(0, 1000, (8,))

            def step():
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()

            print(json.dumps({"peer": "pytorch", "model": name, "batch": 8, "mode": "train",
                              "ms": best_ms(step, max(2, args.iters // 2), warmup=1), "variant": "eager",
                              "rss_mb": rss_mb()}), flush=True)


if __name__ == "__main__":
    main()
