#!/usr/bin/python3
"""Writes the fixtures of scalpel's composite blocks (layers/blocks.h) that the main fixture
script (scripts/make_fixtures.py, subset "blocks") does not cover. Run with Debian's python3-torch:

    /usr/bin/python3 scripts/make_block_fixtures.py

Output, under tests/fixtures/blocks/:
  layouts.json  for each block configuration: its state-dict keys in order with shapes
                (num_batches_tracked included), trainable parameter and buffer counts
                (buffers = BatchNorm running mean + var), and a few whole-network counts
                assembled from the same references.
  <case>/       forward/backward parity cases in the format of tests/fixtures/README.md
                ("blocks" subset): param.*, the inputs (meta "inputs"), gy, and per mode in
                {eval, train}: y_<mode>, grad_<input>_<mode>, grad_<mode>.<param>; train also
                state_train.<buffer>.

References: torchvision 0.14 modules where torchvision has the block; otherwise the small
PyTorch modules below, written after the code they imitate (Keras applications' ResNetV2
block2 and MobileNet _depthwise_conv_block, milesial/Pytorch-UNet's unet_parts.py).
"""
import copy
import os
import sys
import zlib

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import efficientnet, mobilenetv2, resnet
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures.common import FIXTURES, f32, finish_subset, generator, randn, write_case, write_json  # noqa: E402
from fixtures.blocks import randomize_batchnorm  # noqa: E402

GROUP, SUBSET = "blocks", "blocks_extra"


# ---------------------------------------------------------------- reference modules

class PreActBottleneck(nn.Module):
    """Keras applications ResNetV2 block2 (BN eps 1.001e-5, Keras momentum 0.99)."""

    def __init__(self, cin, filters, stride, conv_shortcut, eps=1.001e-5, momentum=0.01):
        super().__init__()
        self.stride = stride
        self.preact_bn = nn.BatchNorm2d(cin, eps=eps, momentum=momentum)
        self.shortcut = nn.Conv2d(cin, 4 * filters, 1, stride) if conv_shortcut else None
        self.conv1 = nn.Conv2d(cin, filters, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters, eps=eps, momentum=momentum)
        self.conv2 = nn.Conv2d(filters, filters, 3, stride, padding=1, bias=False)  # ZeroPadding 1 + valid
        self.bn2 = nn.BatchNorm2d(filters, eps=eps, momentum=momentum)
        self.conv3 = nn.Conv2d(filters, 4 * filters, 1)

    def forward(self, x):
        preact = F.relu(self.preact_bn(x))
        if self.shortcut is not None:
            skip = self.shortcut(preact)
        elif self.stride > 1:
            skip = F.max_pool2d(x, 1, self.stride)
        else:
            skip = x
        y = F.relu(self.bn1(self.conv1(preact)))
        y = F.relu(self.bn2(self.conv2(y)))
        return self.conv3(y) + skip


def depthwise_separable(cin, cout, stride, act, keras_padding, multiplier=1, eps=1e-3, momentum=0.01):
    """Keras MobileNet _depthwise_conv_block as the usual PyTorch conv_dw Sequential. The Keras
    pad is applied by a forward pre-hook on the depthwise conv, so the names stay 0..5."""
    dw_padding = 0 if keras_padding and stride == 2 else 1
    dw = nn.Conv2d(cin, cin * multiplier, 3, stride, dw_padding, groups=cin, bias=False)
    if keras_padding and stride == 2:
        dw.register_forward_pre_hook(lambda m, inp: (F.pad(inp[0], [0, 1, 0, 1]),))
    return nn.Sequential(
        dw, nn.BatchNorm2d(cin * multiplier, eps=eps, momentum=momentum), act(),
        nn.Conv2d(cin * multiplier, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=eps, momentum=momentum), act())


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout, bilinear=False):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(cin, cout, cin // 2)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy = x2.size(2) - x1.size(2)
        dx = x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class UNet(nn.Module):
    """milesial/Pytorch-UNet's UNet, used here for its parameter count only."""

    def __init__(self, n_channels, n_classes, bilinear=False):
        super().__init__()
        factor = 2 if bilinear else 1
        self.inc = DoubleConv(n_channels, 64)
        self.down1, self.down2, self.down3 = Down(64, 128), Down(128, 256), Down(256, 512)
        self.down4 = Down(512, 1024 // factor)
        self.up1, self.up2 = Up(1024, 512 // factor, bilinear), Up(512, 256 // factor, bilinear)
        self.up3, self.up4 = Up(256, 128 // factor, bilinear), Up(128, 64, bilinear)
        self.outc = nn.Conv2d(64, n_classes, 1)


def resnet_v2(blocks_per_stage):
    """Keras ResNet50V2/101V2/152V2 (stem conv with bias, post BN, 1000-way dense)."""
    layers = [nn.Conv2d(3, 64, 7, 2, 3)]
    cin = 64
    for filters, blocks, last_stride in zip((64, 128, 256, 512), blocks_per_stage, (2, 2, 2, 1)):
        for i in range(blocks):
            layers.append(PreActBottleneck(cin, filters, last_stride if i == blocks - 1 else 1, i == 0))
            cin = 4 * filters
    layers += [nn.BatchNorm2d(cin, eps=1.001e-5), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers)


def mobilenet_v1():
    """Keras MobileNet (alpha 1): stem conv3x3/2 + BN, 13 depthwise-separable blocks, conv_preds."""
    layers = [nn.Conv2d(3, 32, 3, 2, bias=False), nn.BatchNorm2d(32, eps=1e-3)]
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    cin = 32
    for cout, stride in plan:
        layers.append(depthwise_separable(cin, cout, stride, nn.ReLU6, True))
        cin = cout
    layers.append(nn.Conv2d(cin, 1000, 1))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- layouts and counts

def counts(module):
    trainable = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return trainable, buffers


def layout(module):
    trainable, buffers = counts(module)
    return {"keys": [[k, list(v.shape)] for k, v in module.state_dict().items()],
            "trainable": trainable, "buffers": buffers}


def _mbconv(expand, kernel, stride, cin, cout):
    return efficientnet.MBConv(efficientnet.MBConvConfig(expand, kernel, stride, cin, cout, 1), 0.0,
                               nn.BatchNorm2d)


def layouts():
    torch.manual_seed(0)
    blocks = {
        "conv_bn_act_k3_s2": Conv2dNormActivation(3, 32, 3, stride=2),
        "conv_bn_act_no_act": Conv2dNormActivation(16, 24, 1, activation_layer=None),
        "conv_act_no_norm": Conv2dNormActivation(8, 8, 3, norm_layer=None),
        "squeeze_excite_96_4": SqueezeExcitation(96, 4, activation=nn.SiLU),
        "mbconv_e1_k3_s1_32_16": _mbconv(1, 3, 1, 32, 16),
        "mbconv_e6_k5_s2_40_80": _mbconv(6, 5, 2, 40, 80),
        "mbconv_e6_k3_s1_80_80": _mbconv(6, 3, 1, 80, 80),
        "inverted_residual_e1_32_16": mobilenetv2.InvertedResidual(32, 16, 1, 1),
        "inverted_residual_e6_s2_24_32": mobilenetv2.InvertedResidual(24, 32, 2, 6),
        "basic_block_64_64": resnet.BasicBlock(64, 64),
        "basic_block_64_128_s2": resnet.BasicBlock(
            64, 128, 2, nn.Sequential(resnet.conv1x1(64, 128, 2), nn.BatchNorm2d(128))),
        "bottleneck_64_64": resnet.Bottleneck(
            64, 64, 1, nn.Sequential(resnet.conv1x1(64, 256, 1), nn.BatchNorm2d(256))),
        "bottleneck_256_128_s2": resnet.Bottleneck(
            256, 128, 2, nn.Sequential(resnet.conv1x1(256, 512, 2), nn.BatchNorm2d(512))),
        "bottleneck_256_64_g32_w4": resnet.Bottleneck(
            256, 64, 1, None, groups=32, base_width=4),
        "preact_bottleneck_64_64_shortcut": PreActBottleneck(64, 64, 1, True),
        "preact_bottleneck_256_64_s2": PreActBottleneck(256, 64, 2, False),
        "depthwise_separable_32_64": depthwise_separable(32, 64, 1, nn.ReLU6, True),
        "depthwise_separable_64_128_s2_x2": depthwise_separable(64, 128, 2, nn.ReLU6, True, multiplier=2),
        "double_conv_3_64": DoubleConv(3, 64),
        "down_64_128": Down(64, 128),
        "up_1024_512": Up(1024, 512),
        "up_1024_256_bilinear": Up(1024, 256, bilinear=True),
    }
    networks = {"unet_3_2": UNet(3, 2), "resnet50_v2": resnet_v2((3, 4, 6, 3)), "mobilenet_v1": mobilenet_v1()}
    return {"format": 1,
            "blocks": {name: layout(m) for name, m in blocks.items()},
            "networks": {name: dict(zip(("trainable", "buffers"), counts(m))) for name, m in networks.items()}}


# ---------------------------------------------------------------- parity cases

def _run(module, inputs, gy, training):
    m = copy.deepcopy(module).train(training)
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    y = m(*leaves)
    if gy is None:
        return y.detach(), None, None, None
    y.backward(gy)
    grads = {n: p.grad for n, p in m.named_parameters()}
    buffers = {n: b for n, b in m.named_buffers() if not n.endswith("num_batches_tracked")}
    return y.detach(), [x.grad for x in leaves], grads, buffers


def parity_case(name, build, input_shapes, attrs):
    """As fixtures/blocks.py's block_case, with several inputs (named in meta "inputs")."""
    torch.manual_seed(zlib.crc32(name.encode()))
    module = build().double()
    g = generator(name)
    with torch.no_grad():
        randomize_batchnorm(module, g)
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(f32(t))
    names = list(input_shapes)
    inputs = [randn(g, *input_shapes[n]) for n in names]
    arrays = dict(zip(names, inputs))
    arrays.update({"param." + k: v.clone() for k, v in module.state_dict().items()
                   if not k.endswith("num_batches_tracked")})
    gy = randn(generator(name + "/gy"), *_run(module, inputs, None, False)[0].shape)
    arrays["gy"] = gy
    for mode in ("eval", "train"):
        y, gx, grads, buffers = _run(module, inputs, gy, mode == "train")
        arrays["y_" + mode] = y
        arrays.update({f"grad_{n}_{mode}": gx_n for n, gx_n in zip(names, gx)})
        arrays.update({f"grad_{mode}.{k}": v for k, v in grads.items()})
        if mode == "train":
            arrays.update({"state_train." + k: v for k, v in buffers.items()})
    meta = {"op": "block", "block": name, "inputs": names}
    meta.update(attrs)
    return write_case(GROUP, name, SUBSET, meta, arrays)


def parity_cases():
    bn_keras = dict(eps=1e-3, momentum=0.01)
    leaky = lambda: nn.LeakyReLU(0.1)  # noqa: E731
    return [
        parity_case("preact_bottleneck_s2", lambda: PreActBottleneck(16, 4, 2, False), {"x": (2, 16, 7, 6)},
                    {"in": 16, "filters": 4, "stride": 2, "conv_shortcut": False}),
        parity_case("preact_bottleneck_conv_shortcut", lambda: PreActBottleneck(8, 4, 1, True), {"x": (2, 8, 5, 6)},
                    {"in": 8, "filters": 4, "stride": 1, "conv_shortcut": True}),
        parity_case("bottleneck_stride_on_1x1", lambda: _stride_on_1x1(resnet.Bottleneck(
            8, 4, 2, nn.Sequential(resnet.conv1x1(8, 16, 2), nn.BatchNorm2d(16)))), {"x": (2, 8, 9, 7)},
                    {"in": 8, "planes": 4, "stride": 2, "stride_on_3x3": False}),
        parity_case("depthwise_separable_keras_s2", lambda: depthwise_separable(6, 8, 2, nn.ReLU6, True, **bn_keras),
                    {"x": (2, 6, 9, 8)}, {"in": 6, "out": 8, "stride": 2, "keras_padding": True,
                                          "activation": "relu6", "bn_eps": 1e-3, "bn_momentum": 0.01}),
        parity_case("depthwise_separable_torch_s2_leaky",
                    lambda: depthwise_separable(4, 8, 2, leaky, False, eps=1e-5, momentum=0.1),
                    {"x": (2, 4, 9, 8)}, {"in": 4, "out": 8, "stride": 2, "keras_padding": False,
                                          "activation": "leaky_relu:0.1", "bn_eps": 1e-5, "bn_momentum": 0.1}),
        parity_case("squeeze_excite_silu", lambda: SqueezeExcitation(12, 3, activation=nn.SiLU),
                    {"x": (2, 12, 5, 4)}, {"channels": 12, "squeeze": 3, "activation": "silu"}),
        parity_case("double_conv", lambda: DoubleConv(3, 6), {"x": (2, 3, 7, 6)}, {"in": 3, "out": 6}),
        parity_case("down", lambda: Down(4, 8), {"x": (2, 4, 9, 8)}, {"in": 4, "out": 8}),
        parity_case("up_transposed_odd", lambda: Up(8, 4), {"x1": (2, 8, 3, 4), "x2": (2, 4, 7, 9)},
                    {"in": 8, "out": 4, "bilinear": False}),
        parity_case("up_bilinear_odd", lambda: Up(8, 4, bilinear=True), {"x1": (2, 4, 3, 4), "x2": (2, 4, 7, 9)},
                    {"in": 8, "out": 4, "bilinear": True}),
    ]


def _stride_on_1x1(block):
    """torchvision's Bottleneck with the stride moved from the 3x3 to the first 1x1."""
    block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
    return block


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(os.path.join(FIXTURES, GROUP), exist_ok=True)
    write_json(os.path.join(FIXTURES, GROUP, "layouts.json"), layouts())
    finish_subset(GROUP, SUBSET, parity_cases())
    print("wrote", os.path.join(FIXTURES, GROUP))


if __name__ == "__main__":
    main()
