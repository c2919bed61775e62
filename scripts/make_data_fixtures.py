#!/usr/bin/python3
"""Writes tests/fixtures/data/: resize references from PIL and torchvision for tests/data.

Run with Debian's python (PIL, torch 1.13, torchvision 0.14):
    /usr/bin/python3 scripts/make_data_fixtures.py
Files (HWC layout, .npy):
  input.png                  37x29 RGB 8-bit source (smooth gradients plus noise)
  pil_<filter>_<W>x<H>.npy   uint8, PIL Image.resize (always antialiased when shrinking)
  tv_<filter>_<W>x<H>.npy    float32, torchvision F.resize(antialias=True) on the float image
  tv_bilinear_noaa_<W>x<H>.npy float32, torch interpolate bilinear, align_corners=False
  torch_area_<W>x<H>.npy     float32, torch interpolate mode="area"
  gray16.png / gray16.npy    16-bit grayscale PNG and its values (uint16 stored as float64)
  tv_preprocess_crop14.npy   float32 [1,3,14,14]: Resize(16), CenterCrop(14), ToTensor,
                             Normalize(ImageNet) on input.png (the eval/predict pipeline)
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")
SIZES = [(16, 11), (53, 41), (20, 40), (5, 3)]  # shrink, enlarge, mixed, strong shrink


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(6)
    h, w = 29, 37
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / (w - 1), y * 255.0 / (h - 1), 128 + 100 * np.sin(x / 3.0 + y / 5.0)], axis=-1)
    img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(img, "RGB").save(os.path.join(OUT, "input.png"))

    tensor = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1).contiguous()  # CHW
    pil = Image.fromarray(img, "RGB")
    filters = {"bilinear": (Image.BILINEAR, TF.InterpolationMode.BILINEAR),
               "bicubic": (Image.BICUBIC, TF.InterpolationMode.BICUBIC)}
    for (ow, oh) in SIZES:
        for name, (pil_filter, tv_mode) in filters.items():
            np.save(os.path.join(OUT, f"pil_{name}_{ow}x{oh}.npy"), np.asarray(pil.resize((ow, oh), pil_filter)))
            out = TF.resize(tensor, [oh, ow], interpolation=tv_mode, antialias=True)
            np.save(os.path.join(OUT, f"tv_{name}_{ow}x{oh}.npy"), out.permute(1, 2, 0).numpy().astype(np.float32))
        noaa = F.interpolate(tensor[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]
        np.save(os.path.join(OUT, f"tv_bilinear_noaa_{ow}x{oh}.npy"), noaa.permute(1, 2, 0).numpy())
        area = F.interpolate(tensor[None], size=(oh, ow), mode="area")[0]
        np.save(os.path.join(OUT, f"torch_area_{ow}x{oh}.npy"), area.permute(1, 2, 0).numpy())

    import torchvision.transforms as T
    pipeline = T.Compose([T.Resize(16), T.CenterCrop(14), T.ToTensor(),
                          T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    np.save(os.path.join(OUT, "tv_preprocess_crop14.npy"), pipeline(pil)[None].numpy())

    g16 = (np.mgrid[0:7, 0:9].sum(axis=0) * 4099 + 17).astype(np.uint16)
    Image.fromarray(g16.astype(np.int32), "I").convert("I;16").save(os.path.join(OUT, "gray16.png"))
    assert np.array_equal(np.asarray(Image.open(os.path.join(OUT, "gray16.png"))).astype(np.uint16), g16)
    np.save(os.path.join(OUT, "gray16.npy"), g16.astype(np.float64))


if __name__ == "__main__":
    main()
