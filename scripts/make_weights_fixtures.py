#!/usr/bin/python3
"""Fixtures of the weights tests (tests/weights/), written at test time with Debian's python3-torch.

    /usr/bin/python3 scripts/make_weights_fixtures.py models --model-dir DIR --models resnet18,vgg16
        For each model, the folder of `make_fixtures.py models` (weights.pt in the zip format,
        input.npy, logits.npy, meta.json; random weights and BatchNorm statistics) plus
        weights_legacy.pt: the same state dict saved in the legacy format
        (_use_new_zipfile_serialization=False).

    /usr/bin/python3 scripts/make_weights_fixtures.py roundtrip --checkpoint CK --model NAME \\
            --input X.npy --logits Y.npy
        The PyTorch side of scalpel's checkpoint format: parses the safetensors file CK with
        struct + json only (Debian has no `safetensors` package), drops the "training/" entries,
        loads the rest into torchvision's NAME with load_state_dict(strict=True), runs it in eval
        mode on X and checks that the logits equal Y (scalpel's) within 1e-4 of max |logit|.
        Exits 1 with a message otherwise.
"""
import argparse
import fcntl
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures import models  # noqa: E402

SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
                      "I32": np.int32, "U8": np.uint8}


def write_models(model_dir, names):
    os.makedirs(model_dir, exist_ok=True)
    for name in names:
        # ctest runs tests in parallel: two tests may ask for the same model at once.
        with open(os.path.join(model_dir, f".{name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_model(model_dir, name)


def write_model(model_dir, name):
    folder = os.path.join(model_dir, name)
    if not os.path.exists(os.path.join(folder, "meta.json")):
        models.generate(model_dir, [name])
    legacy = os.path.join(folder, "weights_legacy.pt")
    if not os.path.exists(legacy):
        state = torch.load(os.path.join(folder, "weights.pt"))
        tmp = legacy + ".tmp"
        torch.save(state, tmp, _use_new_zipfile_serialization=False)
        os.replace(tmp, legacy)
    print(f"{name}: {folder}")


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=SAFETENSORS_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, header.get("__metadata__", {})


def roundtrip(args):
    tensors, metadata = read_safetensors(args.checkpoint)
    state = {k: v for k, v in tensors.items() if not k.startswith("training/")}
    classes = json.loads(metadata["options"])["classes"]
    model = torchvision.models.get_model(args.model, num_classes=classes).eval()
    model.load_state_dict(state, strict=True)
    x = torch.from_numpy(np.load(args.input))
    with torch.no_grad():
        ref = model.double()(x.double())
    ours = torch.from_numpy(np.load(args.logits)).double()
    err = (ours - ref).abs().max().item() / ref.abs().max().item()
    same_argmax = bool((ours.argmax(1) == ref.argmax(1)).all())
    print(f"{args.model}: {len(state)} tensors loaded strictly, relative error {err:.3g}, same argmax {same_argmax}")
    if err > 1e-4 or not same_argmax:
        sys.exit(f"error: logits of {args.checkpoint} in PyTorch differ from scalpel's")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models")
    m.add_argument("--model-dir", required=True)
    m.add_argument("--models", required=True, help="comma-separated torchvision names")
    r = sub.add_parser("roundtrip")
    for flag in ("--checkpoint", "--model", "--input", "--logits"):
        r.add_argument(flag, required=True)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.command == "models":
        write_models(args.model_dir, [n for n in args.models.split(",") if n])
    else:
        roundtrip(args)


if __name__ == "__main__":
    main()
