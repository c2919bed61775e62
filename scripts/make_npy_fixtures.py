#!/usr/bin/python3
"""Writes the tiny .npy files the tensor tests read (run with Debian's python3-numpy)."""
import os
import numpy as np

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "npy")
os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "f32_2x3.npy"), np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
np.save(os.path.join(out, "f64_3.npy"), np.array([1.5, -2.25, 1e-300]))
np.save(os.path.join(out, "i64_2x2.npy"), np.array([[1, -2], [3, 2**40]], dtype=np.int64))
np.save(os.path.join(out, "u8_4.npy"), np.array([0, 1, 254, 255], dtype=np.uint8))
np.save(os.path.join(out, "f32_scalar.npy"), np.float32(3.5))
np.save(os.path.join(out, "f32_empty.npy"), np.zeros((0, 3), dtype=np.float32))
# Version 2.0 header (numpy writes it only when asked).
with open(os.path.join(out, "f32_v2.npy"), "wb") as f:
    np.lib.format.write_array(f, np.array([[1, 2], [3, 4]], dtype=np.float32), version=(2, 0))
np.save(os.path.join(out, "f32_fortran.npy"), np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
np.save(os.path.join(out, "f64_bigendian.npy"), np.array([1.0, 2.0], dtype=">f8"))
