#!/usr/bin/python3
"""Extra PyTorch parity cases for the layer ops, beside scripts/make_fixtures.py: corner cases
of PyTorch's index rules that the main set does not reach. Run with Debian's python3-torch:

    /usr/bin/python3 scripts/make_op_extra_fixtures.py

Writes tests/fixtures/ops_extra/<case>/ in the same format as tests/fixtures/ops (meta.json and
float64 .npy files: inputs, consts, y, gy, grad_<input>; see tests/fixtures/README.md), and
tests/fixtures/ops_extra/index.json. Cases:

  upsample_nearest_float32_index   26x6 -> 22x74: PyTorch's float32 kernel computes the 'nearest'
                                   source index in float32 (floor(dst * float(in/out))), which
                                   differs from the exact floor(dst * in / out) at these sizes.
                                   (Its float64 kernel on several channels uses double index
                                   arithmetic instead, so this reference is computed in float32
                                   and widened; scalpel uses the float32 rule for every dtype.)
  upsample_bilinear_down_align_{false,true}   7x9 -> 4x5 (downsampling)
  max_pool2d_ties_k2_s1            integer-valued input with ties: the gradient goes to the
                                   first maximum in row-major window order
  adaptive_avg_pool2d_5x7_to_3x4   bins that overlap in both directions
  batch_norm1d_train               [N, C] input (classifier heads), training mode
  softmax_4d_dim3, log_softmax_4d_dim0   other axes than 1
  cross_entropy_2d_weight_ignore_smoothing_sum   segmentation logits with every option
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures import common  # noqa: E402
from fixtures.common import generator, randint, randn, uniform  # noqa: E402
from fixtures.runner import run_case  # noqa: E402

GROUP, SUBSET = "ops_extra", "ops_extra"


def _case(name, op, fn, inputs, consts=None, attrs=None):
    return run_case(GROUP, SUBSET, name, op, fn, inputs, consts, attrs)


def upsample_cases():
    names = []
    x = randn(generator("upsample_nearest_float32_index"), 1, 2, 26, 6)
    names.append(_case("upsample_nearest_float32_index", "upsample",
                       lambda x: F.interpolate(x.float(), size=(22, 74), mode="nearest").double(),
                       {"x": x},
                       attrs={"mode": "nearest", "size": [22, 74], "align_corners": None,
                              "computed_in": "float32",
                              "rule": "src = min(floor(float32(dst) * float32(in / out)), in - 1)"}))
    for align in (False, True):
        name = f"upsample_bilinear_down_align_{str(align).lower()}"
        x = randn(generator(name), 2, 2, 7, 9)
        names.append(_case(name, "upsample",
                           lambda x, align=align: F.interpolate(x, size=(4, 5), mode="bilinear",
                                                                align_corners=align),
                           {"x": x}, attrs={"mode": "bilinear", "size": [4, 5], "align_corners": align}))
    return names


def pool_cases():
    g = generator("max_pool2d_ties_k2_s1")
    x = randint(g, 3, 2, 2, 5, 6).double()  # values 0, 1, 2: many ties
    ties = _case("max_pool2d_ties_k2_s1", "max_pool2d",
                 lambda x: F.max_pool2d(x, 2, 1), {"x": x},
                 attrs={"kernel": [2, 2], "stride": [1, 1], "padding": [0, 0], "ceil_mode": False,
                        "ties": "first maximum in row-major window order gets the gradient"})
    x = randn(generator("adaptive_avg_pool2d_5x7_to_3x4"), 2, 3, 5, 7)
    adaptive = _case("adaptive_avg_pool2d_5x7_to_3x4", "adaptive_avg_pool2d",
                     lambda x: F.adaptive_avg_pool2d(x, (3, 4)), {"x": x},
                     attrs={"output_size": [3, 4]})
    return [ties, adaptive]


def batch_norm_cases():
    g = generator("batch_norm1d_train")
    inputs = {"x": randn(g, 6, 3, scale=1.5, shift=0.5), "weight": uniform(g, 3, low=0.5, high=1.5),
              "bias": randn(g, 3, scale=0.2)}
    consts = {"running_mean": randn(g, 3, scale=0.3), "running_var": uniform(g, 3, low=0.5, high=2.0)}

    def fn(x, weight, bias, running_mean, running_var):
        y = F.batch_norm(x, running_mean, running_var, weight, bias, True, 0.1, 1e-5)
        return y, {"running_mean_after": running_mean, "running_var_after": running_var}

    return [_case("batch_norm1d_train", "batch_norm", fn, inputs, consts,
                  {"training": True, "eps": 1e-5, "momentum": 0.1})]


def softmax_cases():
    x = randn(generator("softmax_4d_dim3"), 2, 3, 4, 5, scale=2.0)
    a = _case("softmax_4d_dim3", "softmax", lambda x: F.softmax(x, dim=3), {"x": x}, attrs={"dim": 3})
    x = randn(generator("log_softmax_4d_dim0"), 3, 2, 4, 5, scale=2.0)
    b = _case("log_softmax_4d_dim0", "log_softmax", lambda x: F.log_softmax(x, dim=0), {"x": x},
              attrs={"dim": 0})
    return [a, b]


def loss_cases():
    name = "cross_entropy_2d_weight_ignore_smoothing_sum"
    g = generator(name)
    x = randn(g, 2, 4, 3, 5, scale=2.0)
    target = randint(g, 4, 2, 3, 5)
    target[0, 1, 2] = 255
    target[1, 0, 0] = 255
    weight = uniform(g, 4, low=0.3, high=2.0)

    def fn(x, target, weight):
        return F.cross_entropy(x, target, weight=weight, ignore_index=255, reduction="sum",
                               label_smoothing=0.2)

    return [_case(name, "cross_entropy", fn, {"x": x}, {"target": target, "weight": weight},
                  {"reduction": "sum", "label_smoothing": 0.2, "ignore_index": 255,
                   "class_weight": "vector"})]


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.use_deterministic_algorithms(True)
    written = upsample_cases() + pool_cases() + batch_norm_cases() + softmax_cases() + loss_cases()
    common.finish_subset(GROUP, SUBSET, written)
    print(f"{len(written)} cases in tests/fixtures/{GROUP}")


if __name__ == "__main__":
    main()
