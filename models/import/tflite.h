#pragma once
// TensorFlow Lite models (.tflite, a FlatBuffer with identifier "TFL3", schema version 3) read
// into a GraphSpec: subgraph 0, run in float. docs/tflite.md lists the supported operators.
//
// - Layout: TFLite is NHWC, scalpel NCHW. The graph input is taken as NCHW once; every 4-D
//   activation stays NCHW and each operator's axes, paddings and constants are translated
//   (a RESHAPE or FULLY_CONNECTED of a map larger than 1x1 transposes back to NHWC first, so
//   the element order is TFLite's). Weights are transposed at import: CONV_2D [out, kh, kw, in]
//   -> [out, in, kh, kw], DEPTHWISE_CONV_2D [1, kh, kw, in * mult] -> [in * mult, 1, kh, kw].
// - Quantized models (uint8 / int8, per-tensor or per-channel along quantized_dimension) run
//   in float: constants are dequantized (value = scale * (q - zero_point)), activations are
//   computed in float, QUANTIZE / DEQUANTIZE pass values through. A quantized image input
//   becomes a float input: ImportedGraph.preprocess names the normalization whose range
//   matches the input quantization ("tf", [-1, 1], for scale 1/128 and zero point 128), and
//   the graph starts with the exact affine map from that normalization to the input's real
//   values. A float model states no preprocessing (preprocess is null).
// - Bad input (truncated file, wrong identifier or version, unknown builtin or custom op, a
//   tensor of absurd size, data that does not match its shape) is one Error naming the source
//   and the operator index / tensor; nothing is returned half-built.
#include <string>
#include <string_view>

#include "models/import/import.h"

namespace scalpel::models {

// `bytes` is a whole .tflite file; `source` names it in errors.
ImportedGraph import_tflite(std::string_view bytes, const std::string& source);
ImportedGraph import_tflite_file(const std::string& path);

}  // namespace scalpel::models
