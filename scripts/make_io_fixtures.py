#!/usr/bin/python3
"""Writes the weight-file fixtures of tests/io into tests/fixtures/io/.

Run with Debian's python3 (torch 1.13): /usr/bin/python3 scripts/make_io_fixtures.py
Everything is small (a few KB) and deterministic, and is committed.

- tiny_zip.pt / tiny_legacy.pt: the same checkpoint, torch.save'd in the zip and the legacy
  format: {"epoch", "arch", "best_acc1", "optimizer" (with its own tensors), "state_dict"}, the
  state dict an OrderedDict with "module." prefixes holding views into one shared storage
  (offset, transposed, strided), a Parameter, float16, bfloat16, float64, int64 (0-d) and an
  empty tensor. tiny_expected/<name>.npy holds each tensor as scalpel loads it (float32 or
  int64) and tiny_expected/names.txt the names in order, prefixes stripped.
- tiny_bare.pt: a bare state dict (no wrapper, no prefix), zip format.
- tiny_missing_entry.pt: tiny_zip.pt without the storage entry of "conv.weight".
- evil_zip.pt / evil_legacy.pt: checkpoints whose state dict holds an object that reduces to
  os.system("touch /tmp/scalpel_pickle_pwned"); loading must refuse them and run nothing.
- module_legacy.pt: a whole pickled nn.Module (torch.save(model)), which is refused.
- not_state_dict.pt, list.pt, duplicate_names.pt: wrong contents (a dict with a non-tensor
  entry, a list, names equal after stripping "module.").
- tiny.safetensors: written by hand (struct + json; the safetensors package is not in Debian)
  with F32, F16, BF16, F64, I64, I32, U8 and BOOL tensors, header order differing from data
  order, and __metadata__; its expected values are safetensors_expected/<name>.npy.
- deflated.zip: a zip with a compressed entry (refused: torch.save writes stored entries).
- zip64.zip: one stored entry whose sizes and offset live in ZIP64 extra fields, with ZIP64
  end records, as PyTorch writes for archives beyond 4 GB (built by hand).
- huge_numel.pt: a zip checkpoint whose persistent id claims 2**62 + 1 float elements for a
  4-byte storage entry (numel * 4 wraps around 2**64 to 4); refused.
- pickle_values_p{2,4,5}.pkl: plain Python values pickled with protocols 2, 4 and 5, covering
  the opcodes the unpickler accepts (checked value by value in test_pickle.cpp).
"""
import collections
import json
import os
import pathlib
import pickle
import struct
import zipfile
import zlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "io"
EVIL_MARKER = "/tmp/scalpel_pickle_pwned"


def tiny_state_dict():
    torch.manual_seed(0)
    base = torch.randn(4, 6)  # one storage shared by three views
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(3, 2, 3, 3)
    sd["shared.rows"] = base[1:3]          # storage offset 6
    sd["shared.transposed"] = base.t()     # non-contiguous, stride (1, 6)
    sd["shared.column"] = base[:, 2]       # offset 2, stride 6
    sd["param"] = torch.nn.Parameter(torch.randn(3))
    sd["half"] = torch.randn(5).half()
    sd["bfloat"] = torch.randn(4).bfloat16()
    sd["double"] = torch.randn(2, 3).double()
    sd["bn.num_batches_tracked"] = torch.tensor(7)
    sd["big_int"] = torch.tensor([-(2**40), 3, 2**50])
    sd["empty"] = torch.zeros(0, 3)
    return sd


def expected_array(t):
    t = t.detach()
    t = t.float() if t.is_floating_point() else t.long()
    return t.numpy().copy(order="C")  # scalpel's .npy reader refuses Fortran order


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + EVIL_MARKER,))


def write_tiny_checkpoints():
    sd = tiny_state_dict()
    prefixed = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    checkpoint = {
        "epoch": 3,
        "arch": "tiny",
        "best_acc1": 46.5,
        "optimizer": {"state": {0: {"momentum_buffer": torch.randn(3)}},
                      "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}]},
        "state_dict": prefixed,
    }
    torch.save(checkpoint, OUT / "tiny_zip.pt")
    torch.save(checkpoint, OUT / "tiny_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(sd, OUT / "tiny_bare.pt")

    expected = OUT / "tiny_expected"
    expected.mkdir(exist_ok=True)
    for name, t in sd.items():
        np.save(expected / f"{name}.npy", expected_array(t))
    (expected / "names.txt").write_text("".join(name + "\n" for name in sd))

    # The same zip without the storage of "conv.weight".
    with zipfile.ZipFile(OUT / "tiny_zip.pt") as src, \
            zipfile.ZipFile(OUT / "tiny_missing_entry.pt", "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            if not name.endswith("/data/1"):
                dst.writestr(name, src.read(name))

    evil = {"state_dict": {"weight": Evil()}}
    torch.save(evil, OUT / "evil_zip.pt")
    torch.save(evil, OUT / "evil_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(2, 2), OUT / "module_legacy.pt",
               _use_new_zipfile_serialization=False)

    t = torch.zeros(2)
    torch.save({"epoch": 3, "weights": {"w": t}}, OUT / "not_state_dict.pt")
    torch.save([t], OUT / "list.pt")
    torch.save({"module.w": t, "w": t}, OUT / "duplicate_names.pt")


def write_safetensors():
    rng = np.random.default_rng(1)
    # (name, safetensors dtype, stored array, expected array as scalpel loads it)
    half = rng.standard_normal(5).astype(np.float16)
    bf16_bits = (rng.standard_normal(4).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    f32 = rng.standard_normal((2, 3)).astype(np.float32)
    f64 = rng.standard_normal(3)
    i64 = np.array([-(2**60), 0, 2**40 + 7], dtype=np.int64)
    i32 = np.array([[-5, 2**31 - 1]], dtype=np.int32)
    u8 = np.arange(7, dtype=np.uint8) * 37
    flags = np.array([0, 1, 1], dtype=np.uint8)
    tensors = [
        ("b.f16", "F16", half, half.astype(np.float32)),
        ("a.f32", "F32", f32, f32),
        ("c.bf16", "BF16", bf16_bits, (bf16_bits.astype(np.uint32) << 16).view(np.float32)),
        ("d.f64", "F64", f64, f64),
        ("e.i64", "I64", i64, i64),
        ("f.i32", "I32", i32, i32.astype(np.int64)),
        ("g.u8", "U8", u8, u8),
        ("h.bool", "BOOL", flags, flags),
        ("i.scalar", "F32", np.array(2.5, dtype=np.float32), np.array(2.5, dtype=np.float32)),
    ]
    data = b""
    entries = {}
    for name, dtype, stored, _ in tensors:
        raw = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
        entries[name] = {"dtype": dtype, "shape": list(stored.shape),
                         "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    # Header keys sorted by name descending, so that header order differs from data order.
    header = {"__metadata__": {"format": "pt", "note": "written by make_io_fixtures.py"}}
    header.update(sorted(entries.items(), reverse=True))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (OUT / "tiny.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data)

    expected = OUT / "safetensors_expected"
    expected.mkdir(exist_ok=True)
    for name, _, _, value in tensors:
        np.save(expected / f"{name}.npy", value)


def write_pickles():
    shared = [7, "seven"]
    values = {
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31 - 1, 2**31, 2**62, -(2**63)],
        "big": 2**70,
        "floats": [0.5, -1e300, 1 / 3],
        "strings": ["", "abc", "caf\u00e9 \U0001F600", "x" * 300],
        "bytes": b"\x00\xff\x80abc",
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
        "consts": [True, False, None],
        "nested": {"a": {"b": [1, [2]]}, 5: "int key"},
        "shared": [shared, shared],
        "ordered": collections.OrderedDict([("z", 1), ("y", 2)]),
    }
    for protocol in (2, 4, 5):
        (OUT / f"pickle_values_p{protocol}.pkl").write_bytes(pickle.dumps(values, protocol))


def write_zips():
    with zipfile.ZipFile(OUT / "deflated.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"compressible " * 20)

    name, data = b"big/data.txt", b"zip64 entry contents"
    crc = zlib.crc32(data)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                        len(name), 20) + name + struct.pack("<HHQQ", 1, 16, len(data), len(data))
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(name), 28, 0, 0, 0, 0, 0xFFFFFFFF)
    central += name + struct.pack("<HHQQQ", 1, 24, len(data), len(data), 0)
    directory_offset = len(local) + len(data)
    zip64_end_offset = directory_offset + len(central)
    zip64_end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central),
                            directory_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, zip64_end_offset, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    (OUT / "zip64.zip").write_bytes(local + data + central + zip64_end + locator + end)

    # {"w": _rebuild_tensor_v2(storage '0' claiming 2**62 + 1 floats, 0, (1,), (1,), False, {})}
    numel = pickle.dumps(2**62 + 1, 2)[2:-1]  # the LONG1 opcode and its bytes
    pkl = (b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
           b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
           b"X\x03\x00\x00\x00cpu" + numel + b"tQK\x00K\x01\x85K\x01\x85\x89}tRs.")
    with zipfile.ZipFile(OUT / "huge_numel.pt", "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", b"\x00" * 4)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_tiny_checkpoints()
    write_safetensors()
    write_pickles()
    write_zips()
    print(f"wrote {len(list(OUT.rglob('*')))} files to {OUT}")


if __name__ == "__main__":
    main()
