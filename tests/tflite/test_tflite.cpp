// The TFLite importer (models/import/tflite.h): a small quantized network written with the
// test FlatBuffers writer and checked against plain NHWC loops, bad files, and the two coral
// models of the shared samples against TFLite's own kernels.
#include "models/import/tflite.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/preprocess.h"
#include "models/checkpoint.h"
#include "support/errors.h"
#include "support/flatbuffer_builder.h"
#include "tensor/ops.h"

namespace scalpel::models {
namespace {

namespace fb = fbtest;
using test::error_of;
using test::expect_error;

// ---- writing .tflite files (schema.fbs field ids, as models/import/tflite.cpp reads them) ----
enum : int8_t { kF32 = 0, kI32 = 2, kU8 = 3, kI8 = 9 };
enum : int32_t {
  kAdd = 0, kAvgPool = 1, kConv = 3, kDepthwise = 4, kFullyConnected = 9, kReshape = 22,
  kResizeBilinear = 23, kSoftmax = 25, kCustom = 32, kMean = 40
};

struct TfTensorDef {
  std::vector<int32_t> shape;
  int8_t type = kF32;
  std::string name;
  std::string data;  // raw little-endian elements; empty for activations
  std::vector<float> scale;
  std::vector<int64_t> zero;
  int32_t quantized_dimension = 0;
};
struct TfOpDef {
  int32_t code = 0;
  std::vector<int32_t> inputs, outputs;
  uint8_t options_type = 0;  // BuiltinOptions union member
  std::vector<fb::Field> options;
  std::string custom_code;
};
struct TfModelDef {
  std::vector<TfTensorDef> tensors;
  std::vector<TfOpDef> ops;
  int32_t input = 0, output = 0;
  uint32_t version = 3;
};

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string write_tflite(const TfModelDef& m, const std::string& identifier = "TFL3") {
  std::vector<fb::ObjPtr> buffers = {fb::table({})};
  std::vector<fb::ObjPtr> tensors;
  for (const TfTensorDef& t : m.tensors) {
    std::vector<fb::Field> fields = {fb::child(0, fb::vec(t.shape)), fb::scalar<int8_t>(1, t.type),
                                     fb::child(3, fb::str(t.name))};
    if (!t.data.empty()) {
      fields.push_back(fb::scalar<uint32_t>(2, static_cast<uint32_t>(buffers.size())));
      buffers.push_back(fb::table({fb::child(0, fb::bytes(t.data))}));
    }
    if (!t.scale.empty()) {
      fields.push_back(fb::child(4, fb::table({fb::child(2, fb::vec(t.scale)), fb::child(3, fb::vec(t.zero)),
                                               fb::scalar<int32_t>(6, t.quantized_dimension)})));
    }
    tensors.push_back(fb::table(fields));
  }
  std::vector<fb::ObjPtr> codes, ops;
  for (const TfOpDef& op : m.ops) {
    std::vector<fb::Field> code = {fb::scalar<int8_t>(0, static_cast<int8_t>(std::min(op.code, 127))),
                                   fb::scalar<int32_t>(3, op.code)};
    if (!op.custom_code.empty()) code.push_back(fb::child(1, fb::str(op.custom_code)));
    std::vector<fb::Field> fields = {fb::scalar<uint32_t>(0, static_cast<uint32_t>(codes.size())),
                                     fb::child(1, fb::vec(op.inputs)), fb::child(2, fb::vec(op.outputs))};
    if (op.options_type != 0) {
      fields.push_back(fb::scalar<uint8_t>(3, op.options_type));
      fields.push_back(fb::child(4, fb::table(op.options)));
    }
    codes.push_back(fb::table(code));
    ops.push_back(fb::table(fields));
  }
  const fb::ObjPtr subgraph =
      fb::table({fb::child(0, fb::list(tensors)), fb::child(1, fb::vec(std::vector<int32_t>{m.input})),
                 fb::child(2, fb::vec(std::vector<int32_t>{m.output})), fb::child(3, fb::list(ops))});
  return fb::serialize(fb::table({fb::scalar<uint32_t>(0, m.version), fb::child(1, fb::list(codes)),
                                  fb::child(2, fb::list({subgraph})), fb::child(4, fb::list(buffers))}),
                       identifier);
}

// ---- a small quantized network and its reference ----
// input uint8 [1, 5, 5, 2] (scale 1/128, zero point 128)
// -> CONV_2D 3x3 stride 2 SAME, int8 per-channel weights, int32 bias, RELU6   [1, 3, 3, 3]
// -> DEPTHWISE_CONV_2D 3x3 multiplier 2 SAME, uint8 per-tensor weights, float bias [1, 3, 3, 6]
// -> ADD a float constant per channel                                         [1, 3, 3, 6]
// -> AVERAGE_POOL_2D 2x2 stride 1 VALID                                       [1, 2, 2, 6]
// -> RESHAPE [1, 24] (NHWC element order) -> FULLY_CONNECTED 24 -> 4 -> SOFTMAX
struct TinyNet {
  std::vector<uint8_t> pixels;  // the uint8 image, NHWC
  std::vector<int8_t> conv_q;   // [3, 3, 3, 2]
  std::vector<float> conv_scales = {0.02f, 0.05f, 0.03f};
  std::vector<int32_t> conv_bias_q = {40, -25, 7};
  std::vector<uint8_t> dw_q;    // [1, 3, 3, 6]
  float dw_scale = 0.01f;
  int64_t dw_zero = 120;
  std::vector<float> dw_bias = {0.1f, -0.2f, 0.05f, 0.0f, 0.3f, -0.1f};
  std::vector<float> add_constant = {0.5f, -0.5f, 0.25f, -0.25f, 1.0f, 0.0f};
  std::vector<float> fc_w;      // [4, 24]
  std::vector<float> fc_b = {0.1f, 0.0f, -0.1f, 0.2f};

  TinyNet() {
    for (int i = 0; i < 5 * 5 * 2; ++i) pixels.push_back(static_cast<uint8_t>((i * 37 + 11) % 256));
    for (int i = 0; i < 3 * 3 * 3 * 2; ++i) conv_q.push_back(static_cast<int8_t>((i * 29) % 255 - 127));
    for (int i = 0; i < 9 * 6; ++i) dw_q.push_back(static_cast<uint8_t>((i * 53 + 7) % 256));
    for (int i = 0; i < 4 * 24; ++i) fc_w.push_back(static_cast<float>(((i * 13) % 17) - 8) * 0.05f);
  }

  TfModelDef model() const {
    TfModelDef m;
    m.tensors = {
        {{1, 5, 5, 2}, kU8, "image", "", {1.0f / 128}, {128}},
        {{3, 3, 3, 2}, kI8, "conv/filter", raw(conv_q), conv_scales, {0, 0, 0}, 0},
        {{3}, kI32, "conv/bias", raw(conv_bias_q), {0.001f, 0.002f, 0.003f}, {0, 0, 0}, 0},
        {{1, 3, 3, 3}, kU8, "conv/Relu6;conv/BiasAdd", "", {6.0f / 255}, {0}},
        {{1, 3, 3, 6}, kU8, "dw/filter", raw(dw_q), {dw_scale}, {dw_zero}},
        {{6}, kF32, "dw/bias", raw(dw_bias)},
        {{1, 3, 3, 6}, kF32, "dw/out"},
        {{6}, kF32, "shift", raw(add_constant)},
        {{1, 3, 3, 6}, kF32, "shifted"},
        {{1, 2, 2, 6}, kF32, "pool"},
        {{1, 24}, kF32, "flat"},
        {{4, 24}, kF32, "fc/w", raw(fc_w)},
        {{4}, kF32, "fc/b", raw(fc_b)},
        {{1, 4}, kF32, "logits"},
        {{1, 4}, kF32, "probs"},
    };
    m.ops = {
        {kConv, {0, 1, 2}, {3}, 1,
         {fb::scalar<int8_t>(0, 0), fb::scalar<int32_t>(1, 2), fb::scalar<int32_t>(2, 2), fb::scalar<int8_t>(3, 3)}},
        {kDepthwise, {3, 4, 5}, {6}, 2,
         {fb::scalar<int8_t>(0, 0), fb::scalar<int32_t>(1, 1), fb::scalar<int32_t>(2, 1), fb::scalar<int32_t>(3, 2)}},
        {kAdd, {6, 7}, {8}},
        {kAvgPool, {8}, {9}, 5,
         {fb::scalar<int8_t>(0, 1), fb::scalar<int32_t>(1, 1), fb::scalar<int32_t>(2, 1), fb::scalar<int32_t>(3, 2),
          fb::scalar<int32_t>(4, 2)}},
        {kReshape, {9}, {10}},
        {kFullyConnected, {10, 11, 12}, {13}},
        {kSoftmax, {13}, {14}, 9, {fb::scalar<float>(0, 1.0f)}},
    };
    m.input = 0;
    m.output = 14;
    return m;
  }

  // The logits by plain NHWC loops over the dequantized values.
  std::vector<float> reference_logits() const {
    auto at = [](const std::vector<float>& v, int h, int w, int c, int W, int C) { return v[(h * W + w) * C + c]; };
    std::vector<float> x(pixels.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = (pixels[i] - 128.0f) / 128.0f;
    // TF SAME, stride 2, 5 -> 3: total padding 2, one pixel on each side.
    std::vector<float> a(3 * 3 * 3);
    for (int oh = 0; oh < 3; ++oh)
      for (int ow = 0; ow < 3; ++ow)
        for (int o = 0; o < 3; ++o) {
          float s = conv_bias_q[static_cast<size_t>(o)] * (0.001f * static_cast<float>(o + 1));
          for (int kh = 0; kh < 3; ++kh)
            for (int kw = 0; kw < 3; ++kw)
              for (int i = 0; i < 2; ++i) {
                const int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                if (ih < 0 || ih >= 5 || iw < 0 || iw >= 5) continue;
                const float wq = conv_q[static_cast<size_t>(((o * 3 + kh) * 3 + kw) * 2 + i)];
                s += wq * conv_scales[static_cast<size_t>(o)] * at(x, ih, iw, i, 5, 2);
              }
          a[static_cast<size_t>((oh * 3 + ow) * 3 + o)] = std::clamp(s, 0.0f, 6.0f);
        }
    std::vector<float> b(3 * 3 * 6);
    for (int oh = 0; oh < 3; ++oh)
      for (int ow = 0; ow < 3; ++ow)
        for (int o = 0; o < 6; ++o) {
          float s = dw_bias[static_cast<size_t>(o)];
          for (int kh = 0; kh < 3; ++kh)
            for (int kw = 0; kw < 3; ++kw) {
              const int ih = oh - 1 + kh, iw = ow - 1 + kw;
              if (ih < 0 || ih >= 3 || iw < 0 || iw >= 3) continue;
              const float w = dw_scale * (dw_q[static_cast<size_t>((kh * 3 + kw) * 6 + o)] - static_cast<float>(dw_zero));
              s += w * at(a, ih, iw, o / 2, 3, 3);  // output o reads input channel o / multiplier
            }
          b[static_cast<size_t>((oh * 3 + ow) * 6 + o)] = s + add_constant[static_cast<size_t>(o)];
        }
    std::vector<float> pooled;  // NHWC [1, 2, 2, 6], flattened in that order
    for (int oh = 0; oh < 2; ++oh)
      for (int ow = 0; ow < 2; ++ow)
        for (int c = 0; c < 6; ++c) {
          float s = 0;
          for (int kh = 0; kh < 2; ++kh)
            for (int kw = 0; kw < 2; ++kw) s += at(b, oh + kh, ow + kw, c, 3, 6);
          pooled.push_back(s / 4);
        }
    std::vector<float> logits(4);
    for (size_t o = 0; o < 4; ++o) {
      logits[o] = fc_b[o];
      for (size_t i = 0; i < 24; ++i) logits[o] += fc_w[o * 24 + i] * pooled[i];
    }
    return logits;
  }

  // The image as the imported graph takes it: NCHW, "tf" normalization (p / 127.5 - 1).
  Tensor input() const {
    Tensor t = Tensor::empty({1, 2, 5, 5});
    for (int h = 0; h < 5; ++h)
      for (int w = 0; w < 5; ++w)
        for (int c = 0; c < 2; ++c)
          t.data<float>()[(c * 5 + h) * 5 + w] = pixels[static_cast<size_t>((h * 5 + w) * 2 + c)] / 127.5f - 1.0f;
    return t;
  }
};

TEST(TfliteImport, QuantizedNetMatchesNhwcLoops) {
  const TinyNet net;
  const ImportedGraph g = import_tflite(write_tflite(net.model()), "tiny.tflite");
  EXPECT_EQ(g.spec.source, "tflite");
  EXPECT_EQ(g.spec.input_shape, (std::vector<int64_t>{2, 5, 5}));
  ASSERT_FALSE(g.preprocess.is_null());
  EXPECT_EQ(g.preprocess.at("normalize").as_string(), "tf");
  EXPECT_EQ(g.preprocess.at("width").as_int(), 5);
  // Conv weights are [out, in, kh, kw]: element (o=1, i=1, kh=2, kw=0) was [o, kh, kw, i].
  const auto conv = std::find_if(g.weights.begin(), g.weights.end(),
                                 [](const auto& w) { return w.first == "conv_Relu6.weight"; });
  ASSERT_NE(conv, g.weights.end());
  EXPECT_EQ(conv->second.shape(), (Shape{3, 2, 3, 3}));
  EXPECT_FLOAT_EQ(conv->second.data<float>()[((1 * 2 + 1) * 3 + 2) * 3 + 0],
                  net.conv_q[((1 * 3 + 2) * 3 + 0) * 2 + 1] * net.conv_scales[1]);

  const auto model = build_imported_model(g);
  EXPECT_TRUE(model->ends_in_softmax());
  const Tensor logits = model->forward(net.input());
  ASSERT_EQ(logits.shape(), (Shape{1, 4}));
  const std::vector<float> expected = net.reference_logits();
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(logits.data<float>()[i], expected[i], 1e-4) << "logit " << i;

  // Any batch size: the reshape keeps the batch dimension.
  const Tensor two = model->forward(ops::concat({net.input(), net.input()}, 0));
  ASSERT_EQ(two.shape(), (Shape{2, 4}));
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(two.data<float>()[4 + i], expected[i], 1e-4);
}

// ---- a float network over the other operators ----
// x [1, 4, 4, 3] -> PAD (1 top, 1 right) -> MAX_POOL_2D 2x2 stride 2 SAME [1, 3, 3, 3] ->
// (MUL by a per-channel constant with fused RELU_N1_TO_1 -> LOGISTIC) and HARD_SWISH ->
// CONCATENATION axis -1 [1, 3, 3, 6] -> QUANTIZE -> DEQUANTIZE -> MEAN over H, W [1, 6] ->
// FULLY_CONNECTED (float16 weights through DEQUANTIZE, no bias) [1, 2] -> SOFTMAX beta 0.5.
uint16_t half_bits(float v) {  // exact for the small dyadic values used here
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7FFFFFFF) == 0) return static_cast<uint16_t>(bits >> 16);
  const uint32_t sign = (bits >> 16) & 0x8000, exponent = ((bits >> 23) & 0xFF) - 127 + 15;
  return static_cast<uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 0x3FF));
}

struct OpsNet {
  std::vector<float> x, mul_constant = {0.5f, -1.5f, 2.0f}, fc_w;
  OpsNet() {
    for (int i = 0; i < 4 * 4 * 3; ++i) x.push_back(static_cast<float>((i * 7) % 11) * 0.5f - 2.5f);
    for (int i = 0; i < 12; ++i) fc_w.push_back(static_cast<float>(i % 5) * 0.25f - 0.5f);
  }
  TfModelDef model() const {
    std::vector<uint16_t> w16;
    for (float v : fc_w) w16.push_back(half_bits(v));
    TfModelDef m;
    m.tensors = {
        {{1, 4, 4, 3}, kF32, "x"},
        {{4, 2}, kI32, "paddings", raw(std::vector<int32_t>{0, 0, 1, 0, 0, 1, 0, 0})},
        {{1, 5, 5, 3}, kF32, "padded"},
        {{1, 3, 3, 3}, kF32, "pooled"},
        {{3}, kF32, "mul_constant", raw(mul_constant)},
        {{1, 3, 3, 3}, kF32, "scaled"},
        {{1, 3, 3, 3}, kF32, "sigmoid"},
        {{1, 3, 3, 3}, kF32, "hard_swish"},
        {{1, 3, 3, 6}, kF32, "concat"},
        {{1, 3, 3, 6}, kU8, "quantized", "", {0.1f}, {0}},
        {{1, 3, 3, 6}, kF32, "dequantized"},
        {{2}, kI32, "axes", raw(std::vector<int32_t>{1, 2})},
        {{1, 6}, kF32, "mean"},
        {{2, 6}, 1 /* FLOAT16 */, "fc/w16", raw(w16)},
        {{2, 6}, kF32, "fc/w"},
        {{1, 2}, kF32, "logits"},
        {{1, 2}, kF32, "probs"},
    };
    m.ops = {
        {34 /* PAD */, {0, 1}, {2}},
        {17 /* MAX_POOL_2D */, {2}, {3}, 5,
         {fb::scalar<int8_t>(0, 0), fb::scalar<int32_t>(1, 2), fb::scalar<int32_t>(2, 2), fb::scalar<int32_t>(3, 2),
          fb::scalar<int32_t>(4, 2)}},
        {18 /* MUL */, {3, 4}, {5}, 21, {fb::scalar<int8_t>(0, 2)}},
        {14 /* LOGISTIC */, {5}, {6}},
        {117 /* HARD_SWISH */, {3}, {7}},
        {2 /* CONCATENATION */, {6, 7}, {8}, 10, {fb::scalar<int32_t>(0, -1)}},
        {114 /* QUANTIZE */, {8}, {9}},
        {6 /* DEQUANTIZE */, {9}, {10}},
        {kMean, {10, 11}, {12}, 27, {fb::scalar<uint8_t>(0, 0)}},
        {6 /* DEQUANTIZE */, {13}, {14}},
        {kFullyConnected, {12, 14, -1}, {15}},
        {kSoftmax, {15}, {16}, 9, {fb::scalar<float>(0, 0.5f)}},
    };
    m.input = 0;
    m.output = 16;
    return m;
  }
  // beta * logits: what the graph returns before its trailing softmax.
  std::vector<float> reference_scaled_logits() const {
    auto at = [&](int h, int w, int c) { return x[static_cast<size_t>((h * 4 + w) * 3 + c)]; };
    // Padded [5, 5]: row 0 and column 4 are zeros; SAME 2x2 stride 2 on 5 pads one more at the end.
    auto padded = [&](int h, int w, int c) { return (h < 1 || w > 3) ? 0.0f : at(h - 1, w, c); };
    std::vector<float> concat;  // [3, 3, 6]
    for (int oh = 0; oh < 3; ++oh)
      for (int ow = 0; ow < 3; ++ow) {
        float pooled[3];
        for (int c = 0; c < 3; ++c) {
          float best = -1e30f;
          for (int kh = 0; kh < 2; ++kh)
            for (int kw = 0; kw < 2; ++kw) {
              const int h = oh * 2 + kh, w = ow * 2 + kw;
              if (h < 5 && w < 5) best = std::max(best, padded(h, w, c));
            }
          pooled[c] = best;
        }
        for (int c = 0; c < 3; ++c) {
          const float scaled = std::clamp(pooled[c] * mul_constant[static_cast<size_t>(c)], -1.0f, 1.0f);
          concat.push_back(1.0f / (1.0f + std::exp(-scaled)));
        }
        for (int c = 0; c < 3; ++c) concat.push_back(pooled[c] * std::clamp(pooled[c] + 3.0f, 0.0f, 6.0f) / 6.0f);
      }
    std::vector<float> mean(6, 0.0f);
    for (size_t i = 0; i < concat.size(); ++i) mean[i % 6] += concat[i] / 9.0f;
    std::vector<float> out(2, 0.0f);
    for (size_t o = 0; o < 2; ++o)
      for (size_t i = 0; i < 6; ++i) out[o] += 0.5f * fc_w[o * 6 + i] * mean[i];
    return out;
  }
  Tensor input() const {
    Tensor t = Tensor::empty({1, 3, 4, 4});
    for (int h = 0; h < 4; ++h)
      for (int w = 0; w < 4; ++w)
        for (int c = 0; c < 3; ++c) t.data<float>()[(c * 4 + h) * 4 + w] = x[static_cast<size_t>((h * 4 + w) * 3 + c)];
    return t;
  }
};

TEST(TfliteImport, FloatNetOverTheOtherOpsMatchesNhwcLoops) {
  const OpsNet net;
  const ImportedGraph g = import_tflite(write_tflite(net.model()), "ops.tflite");
  EXPECT_TRUE(g.preprocess.is_null());  // a float input states no normalization
  const auto model = build_imported_model(g);
  const Tensor out = model->forward(net.input());
  ASSERT_EQ(out.shape(), (Shape{1, 2}));
  const std::vector<float> expected = net.reference_scaled_logits();
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(out.data<float>()[i], expected[i], 1e-5) << i;
  EXPECT_GT(std::abs(expected[0] - expected[1]), 0.05f);  // not a degenerate case
}

// ---- bad files: one Error naming the culprit, nothing returned ----
TEST(TfliteImport, RefusesWrongIdentifierAndVersion) {
  const TinyNet net;
  expect_error([&] { import_tflite(write_tflite(net.model(), "TFL2"), "m.tflite"); },
               {"m.tflite", "not a TFLite model"});
  TfModelDef old = net.model();
  old.version = 2;
  expect_error([&] { import_tflite(write_tflite(old), "m.tflite"); }, {"m.tflite", "schema version 2"});
}

TEST(TfliteImport, EveryTruncationIsAnError) {
  const std::string bytes = write_tflite(TinyNet().model());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(import_tflite(std::string_view(bytes).substr(0, n), "cut.tflite"), Error) << n << " bytes";
  }
}

// Fuzz-style: every byte of a valid file flipped three ways imports or throws Error, never
// crashes or allocates absurdly (the reader fuzz tests of tests/io do the same).
TEST(TfliteImport, CorruptBytesNeverCrash) {
  const std::string bytes = write_tflite(TinyNet().model());
  size_t refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(static_cast<uint8_t>(corrupt[i]) ^ flip);
      try {
        import_tflite(corrupt, "fuzz.tflite");
      } catch (const Error& e) {
        ++refused;
        EXPECT_EQ(std::string(e.what()).rfind("fuzz.tflite: ", 0), 0u) << e.what();
      }
    }
  }
  EXPECT_GT(refused, bytes.size());  // most corruptions are noticed
}

TEST(TfliteImport, UnknownAndCustomOpsAreNamedWithTheirIndex) {
  TfModelDef m = TinyNet().model();
  m.ops[1].code = kResizeBilinear;
  m.ops[1].options_type = 0;
  expect_error([&] { import_tflite(write_tflite(m), "m.tflite"); },
               {"m.tflite: operator 1 (RESIZE_BILINEAR)", "not supported"});
  m.ops[1].code = kCustom;
  m.ops[1].custom_code = "TFLite_Detection_PostProcess";
  expect_error([&] { import_tflite(write_tflite(m), "m.tflite"); },
               {"operator 1 (custom op 'TFLite_Detection_PostProcess')"});
  m.ops[1].code = 150;  // a code above 127 (written in the 32-bit field)
  m.ops[1].custom_code.clear();
  expect_error([&] { import_tflite(write_tflite(m), "m.tflite"); }, {"operator 1 (builtin code 150)"});
}

TEST(TfliteImport, RefusesAbsurdOrInconsistentTensors) {
  const TinyNet net;
  TfModelDef huge = net.model();
  huge.tensors[6].shape = {1, 100000, 100000, 1000};
  expect_error([&] { import_tflite(write_tflite(huge), "m.tflite"); },
               {"m.tflite: tensor 6 'dw/out'", "absurdly large"});
  TfModelDef huge_image = net.model();  // under 2^31 elements, but no image is that large
  huge_image.tensors[0].shape = {1, 20000, 20000, 2};
  expect_error([&] { import_tflite(write_tflite(huge_image), "m.tflite"); },
               {"m.tflite: the input 'image' of shape [1, 20000, 20000, 2]", "at most 8192x8192"});
  TfModelDef no_channels = net.model();  // a CONV_2D over a map declared with 0 channels
  no_channels.tensors[3].shape = {1, 3, 3, 0};
  no_channels.ops[1].code = kConv;
  no_channels.ops[1].options_type = 1;
  expect_error([&] { import_tflite(write_tflite(no_channels), "m.tflite"); },
               {"m.tflite: operator 1 (CONV_2D)", "does not fit 0 input channels"});
  TfModelDef negative = net.model();
  negative.tensors[9].shape = {1, -1, 2, 6};
  expect_error([&] { import_tflite(write_tflite(negative), "m.tflite"); }, {"tensor 9 'pool'", "negative"});
  TfModelDef short_data = net.model();
  short_data.tensors[11].data.resize(40);
  expect_error([&] { import_tflite(write_tflite(short_data), "m.tflite"); },
               {"tensor 11 'fc/w'", "40 bytes of data for shape [4, 24]"});
  TfModelDef scales = net.model();
  scales.tensors[1].scale = {0.1f, 0.2f};
  scales.tensors[1].zero = {0, 0};
  expect_error([&] { import_tflite(write_tflite(scales), "m.tflite"); },
               {"tensor 1 'conv/filter'", "2 per-channel scales along dimension 0"});
  TfModelDef unwritten = net.model();
  unwritten.ops[2].inputs = {9, 7};  // reads the pool output before the pool runs
  expect_error([&] { import_tflite(write_tflite(unwritten), "m.tflite"); },
               {"operator 2 (ADD)", "reads tensor 9 'pool' before any operator writes it"});
}

TEST(TfliteImport, FileEntryPointDetectsTheFormat) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("scalpel_tflite_" + std::to_string(::getpid()) + ".tflite")).string();
  {
    std::ofstream out(path, std::ios::binary);
    const std::string bytes = write_tflite(TinyNet().model());
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  EXPECT_EQ(graph_file_format(path), "tflite");
  // The CLI asks first whether --weights is a scalpel checkpoint: a graph file is not one (this
  // used to be "unknown weights format").
  EXPECT_FALSE(read_checkpoint(path).has_value());
  EXPECT_EQ(import_graph_file(path).spec.nodes.size(), import_tflite_file(path).spec.nodes.size());
  std::filesystem::remove(path);
}

// ---- the coral models of the shared samples against TFLite's own kernels ----
// Reference: TFLite (LiteRT.js 2.5.3, XNNPACK CPU kernels, the quantized uint8 path) on
// chelsea.png resized to the model's size by PIL's Image.resize default (bicubic,
// antialiased), as TFLite's label_image.py example does; the uint8 outputs (scale 1/256) were
// 211, 24, 20 for mobilenet_v2 and 123, 73, 29 for mobilenet_v1 0.25. scalpel runs the model
// in float with dequantized weights on the same resize (data::resize bicubic with antialias
// equals PIL's), normalized as the import states ("tf": the exact affine map to the input
// quantization follows in the graph). Indices are into labels/imagenet_1001_tflite.txt.
struct SampleCase {
  const char* file;
  int size;
  float egyptian_cat, tiger_cat, tabby;
};

class TfliteSamples : public ::testing::TestWithParam<SampleCase> {};

TEST_P(TfliteSamples, ClassifiesChelseaAsEgyptianCatLikeTflite) {
  const SampleCase& c = GetParam();
  const std::filesystem::path samples = SCALPEL_SAMPLES;
  const std::filesystem::path weights = samples / "weights/tflite" / c.file;
  const std::filesystem::path image = samples / "images/chelsea.png";
  const std::filesystem::path labels = samples / "labels/imagenet_1001_tflite.txt";
  if (!std::filesystem::exists(weights) || !std::filesystem::exists(image) || !std::filesystem::exists(labels)) {
    GTEST_SKIP() << "shared samples absent (" << samples << ")";
  }
  std::ifstream label_file(labels);
  std::vector<std::string> names;
  for (std::string line; std::getline(label_file, line);) names.push_back(line);
  ASSERT_GT(names.size(), 286u);
  EXPECT_EQ(names[286], "Egyptian cat");
  EXPECT_EQ(names[283], "tiger cat");
  EXPECT_EQ(names[282], "tabby, tabby cat");

  const ImportedGraph g = import_graph_file(weights.string());
  ASSERT_FALSE(g.preprocess.is_null());
  data::Preprocess p;
  p.width = static_cast<int>(g.preprocess.at("width").as_int());
  p.height = static_cast<int>(g.preprocess.at("height").as_int());
  EXPECT_EQ(p.width, c.size);
  p.fit = data::parse_fit(g.preprocess.at("fit").as_string());
  p.interp = data::parse_interp(g.preprocess.at("interp").as_string());
  p.norm = data::normalization_preset(g.preprocess.at("normalize").as_string());
  EXPECT_EQ(p.interp, data::Interp::bicubic);

  const auto model = build_imported_model(g);
  const Tensor logits = model->forward(data::preprocess_file(image.string(), p));
  ASSERT_EQ(logits.shape(), (Shape{1, 1001}));
  std::vector<float> probs(logits.data<float>(), logits.data<float>() + 1001);
  const float top = *std::max_element(probs.begin(), probs.end());
  float sum = 0;
  for (float& v : probs) sum += (v = std::exp(v - top));
  for (float& v : probs) v /= sum;
  const auto best = std::max_element(probs.begin(), probs.end()) - probs.begin();
  std::printf("%s: Egyptian cat %.4f, tiger cat %.4f, tabby %.4f (TFLite %.3f, %.3f, %.3f)\n", c.file,
              probs[286], probs[283], probs[282], c.egyptian_cat, c.tiger_cat, c.tabby);
  EXPECT_EQ(best, 286) << names[static_cast<size_t>(best)];
  EXPECT_NEAR(probs[286], c.egyptian_cat, 0.03);
  EXPECT_NEAR(probs[283], c.tiger_cat, 0.03);
  EXPECT_NEAR(probs[282], c.tabby, 0.03);
}

INSTANTIATE_TEST_SUITE_P(Coral, TfliteSamples,
                         ::testing::Values(SampleCase{"mobilenet_v2_1.0_224_quant.tflite", 224, 211 / 256.0f,
                                                      24 / 256.0f, 20 / 256.0f},
                                           SampleCase{"mobilenet_v1_0.25_128_quant.tflite", 128, 123 / 256.0f,
                                                      73 / 256.0f, 29 / 256.0f}),
                         [](const auto& info) { return std::string(info.param.size == 224 ? "MobilenetV2" : "MobilenetV1"); });

}  // namespace
}  // namespace scalpel::models
