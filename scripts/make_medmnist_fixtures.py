#!/usr/bin/python3
"""Writes the small .npz fixtures of tests/io and tests/data (NumPy only, deterministic).

    /usr/bin/python3 scripts/make_medmnist_fixtures.py

- io/savez_stored.npz, io/savez_compressed.npz: np.savez and np.savez_compressed of the same
  arrays: a float32 (2, 3), b uint8 (5,) and c int64 (2, 2, 2), plus a non-.npy entry
  "notes.txt" appended to the compressed one (ignored by the reader).
- data/medmnist_gray.npz: the MedMNIST layout (np.savez_compressed like the official files),
  uint8 gray images (N, 6, 5) where image i of split s has every pixel equal to
  10 * split_index + i (train 0, val 1, test 2), labels (N, 1) uint8; train 4 images with
  labels 0 1 2 0, val 2 with 1 2, test 3 with 2 0 1.
- data/medmnist_rgb.npz: as above but RGB (N, 4, 4, 3), pixel (y, x, c) = i + c, two classes.
- data/medmnist_multilabel.npz: ChestMNIST-style labels (N, 3) (refused).
"""
import os
import pathlib
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def io_fixtures():
    arrays = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
        "b": np.array([0, 1, 127, 128, 255], dtype=np.uint8),
        "c": np.arange(8, dtype=np.int64).reshape(2, 2, 2) - 3,
    }
    np.savez(ROOT / "io" / "savez_stored.npz", **arrays)
    compressed = ROOT / "io" / "savez_compressed.npz"
    np.savez_compressed(compressed, **arrays)
    with zipfile.ZipFile(compressed, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("notes.txt", "not an array")


def medmnist_fixtures():
    labels = {"train": [0, 1, 2, 0], "val": [1, 2], "test": [2, 0, 1]}
    gray, rgb, multi = {}, {}, {}
    for s, (split, ls) in enumerate(labels.items()):
        n = len(ls)
        gray[f"{split}_images"] = np.stack([np.full((6, 5), 10 * s + i, np.uint8) for i in range(n)])
        gray[f"{split}_labels"] = np.array(ls, np.uint8).reshape(n, 1)
        rgb[f"{split}_images"] = np.stack(
            [np.broadcast_to(np.arange(3, dtype=np.uint8) + i, (4, 4, 3)) for i in range(n)])
        rgb[f"{split}_labels"] = (np.array(ls, np.uint8) % 2).reshape(n, 1)
        multi[f"{split}_images"] = gray[f"{split}_images"]
        multi[f"{split}_labels"] = np.eye(3, dtype=np.uint8)[ls]
    np.savez_compressed(ROOT / "data" / "medmnist_gray.npz", **gray)
    np.savez_compressed(ROOT / "data" / "medmnist_rgb.npz", **rgb)
    np.savez_compressed(ROOT / "data" / "medmnist_multilabel.npz", **multi)


if __name__ == "__main__":
    io_fixtures()
    medmnist_fixtures()
    for p in sorted(ROOT.glob("*/*.npz")):
        print(p.relative_to(ROOT), os.path.getsize(p), "bytes")
