#!/usr/bin/env python3
"""Training-parity fixture for tests/train: `make_train_fixtures.py OUT_DIR` writes

  OUT_DIR/data/<class>/<i>.png   3 classes x 8 RGB 64x64 PNGs (ImageFolder layout)
  OUT_DIR/resnet18.pt            torchvision resnet18(num_classes=3) initial weights (torch.save zip)
  OUT_DIR/losses.json            {"losses": [...]}: the per-step training losses of torchvision on
                                 that data: batch 8, ImageFolder order (shuffle=False), ToTensor +
                                 Normalize(ImageNet), SGD lr 0.001 momentum 0.9, 2 epochs, train mode

With --adam it also writes, for the Adam study of docs/numerics.md:

  OUT_DIR/x<i>.npy, y<i>.npy     the 3 batches as torchvision feeds them (float32 after
                                 ToTensor + Normalize, int64 labels)
  OUT_DIR/adam.json              {"float32": [...], "float64": [...]}: per-step losses of Adam
                                 (lr 0.001, torch's defaults otherwise) over those batches, 2 epochs,
                                 with the model in float32 and in float64 (inputs cast from the
                                 same float32 values)

The weights are 45 MB, so the tests run this script into a temporary folder (and skip when
/usr/bin/python3 has no torch) instead of committing its output.
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

CLASSES = ["a_red", "b_green", "c_blue"]
PER_CLASS = 8
EPOCHS = 2


def adam_study(out, ds):
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    batches = list(loader)
    for i, (x, y) in enumerate(batches):
        np.save(os.path.join(out, f"x{i}.npy"), x.numpy())
        np.save(os.path.join(out, f"y{i}.npy"), y.numpy())
    losses = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        model = torchvision.models.resnet18(num_classes=len(CLASSES))
        model.load_state_dict(torch.load(os.path.join(out, "resnet18.pt")))
        model = model.to(dtype)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=0.001)
        losses[name] = []
        for _ in range(EPOCHS):
            for x, y in batches:
                loss = torch.nn.functional.cross_entropy(model(x.to(dtype)), y)
                losses[name].append(loss.item())
                opt.zero_grad()
                loss.backward()
                opt.step()
    with open(os.path.join(out, "adam.json"), "w") as f:
        json.dump(losses, f)


def main(out, adam=False):
    rng = np.random.default_rng(7)
    for c, name in enumerate(CLASSES):
        os.makedirs(os.path.join(out, "data", name), exist_ok=True)
        for i in range(PER_CLASS):
            img = rng.integers(0, 120, size=(64, 64, 3), dtype=np.int64)
            img[:, :, c] += 120  # the class is the dominant channel
            Image.fromarray(img.astype(np.uint8)).save(os.path.join(out, "data", name, f"{i:02d}.png"))

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(CLASSES))
    torch.save(model.state_dict(), os.path.join(out, "resnet18.pt"))

    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = torchvision.datasets.ImageFolder(os.path.join(out, "data"), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    model.train()
    losses = []
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
    with open(os.path.join(out, "losses.json"), "w") as f:
        json.dump({"losses": losses}, f)
    if adam:
        adam_study(out, ds)


if __name__ == "__main__":
    main(sys.argv[1], adam="--adam" in sys.argv[2:])
