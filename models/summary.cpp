#include "models/summary.h"

#include <algorithm>
#include <unordered_map>

#include "autograd/autograd.h"
#include "tensor/error.h"

namespace scalpel::models {

std::string thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

Summary summarize(nn::Module& model, const Shape& input_shape) {
  Summary s;
  s.input = input_shape;
  const auto modules = model.named_modules();  // (name, module); the root first, named ""
  std::unordered_map<const nn::Module*, size_t> index;
  for (size_t i = 0; i < modules.size(); ++i) index.emplace(modules[i].second, i);

  std::vector<Shape> outputs(modules.size());
  std::vector<int64_t> own_macs(modules.size(), 0);
  const bool was_training = model.is_training();
  model.eval();
  try {
    NoGradGuard no_grad;
    nn::ForwardHookGuard hook([&](nn::Module& m, const Tensor& in, const Tensor& out) {
      auto it = index.find(&m);
      if (it == index.end()) return;  // a module outside this tree
      outputs[it->second] = out.shape();
      own_macs[it->second] += m.macs(in.shape(), out.shape());
    });
    // The input follows the parameters' dtype and device (a float64 or CUDA model).
    const auto params = model.parameters();
    const DType dtype = params.empty() ? DType::F32 : params.front().dtype();
    const Device device = params.empty() ? Device{} : params.front().device();
    s.output = model(Tensor::zeros(input_shape, dtype, device)).shape();
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);

  // A module's MACs include its descendants': names of descendants start with "<name>.".
  for (size_t i = 0; i < modules.size(); ++i) s.macs += own_macs[i];
  for (size_t i = 1; i < modules.size(); ++i) {
    const auto& [name, module] = modules[i];
    SummaryRow row;
    row.name = name;
    row.type = module->type();
    row.description = module->describe();
    row.depth = static_cast<int>(std::count(name.begin(), name.end(), '.')) + 1;
    row.output = outputs[i];
    row.params = module->count_parameters();
    const std::string prefix = name + ".";
    row.macs = own_macs[i];
    for (size_t j = i + 1; j < modules.size() && modules[j].first.compare(0, prefix.size(), prefix) == 0; ++j)
      row.macs += own_macs[j];
    s.rows.push_back(std::move(row));
  }
  s.trainable_params = model.count_parameters(/*trainable_only=*/true);
  s.non_trainable_params = model.count_buffers() + (model.count_parameters() - s.trainable_params);
  s.total_params = s.trainable_params + s.non_trainable_params;
  return s;
}

std::string format_summary(const Summary& s, int max_depth) {
  struct Line {
    std::string name, type, shape, params, macs;
  };
  std::vector<Line> lines;
  lines.push_back({"Layer", "Type", "Output shape", "Params", "MACs"});
  for (const SummaryRow& r : s.rows) {
    if (max_depth > 0 && r.depth > max_depth) continue;
    lines.push_back({std::string(2 * (r.depth - 1), ' ') + r.name, r.type, r.output.empty() ? "-" : shape_str(r.output),
                     thousands(r.params), thousands(r.macs)});
  }
  size_t w[5] = {0, 0, 0, 0, 0};
  for (const Line& l : lines) {
    w[0] = std::max(w[0], l.name.size());
    w[1] = std::max(w[1], l.type.size());
    w[2] = std::max(w[2], l.shape.size());
    w[3] = std::max(w[3], l.params.size());
    w[4] = std::max(w[4], l.macs.size());
  }
  std::string out = fmt::format("Input: {}\n", shape_str(s.input));
  const size_t width = w[0] + w[1] + w[2] + w[3] + w[4] + 8;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:>{}}\n", l.name, w[0], l.type, w[1], l.shape, w[2], l.params,
                       w[3], l.macs, w[4]);
    if (i == 0) out += std::string(width, '-') + "\n";
  }
  out += std::string(width, '-') + "\n";
  out += fmt::format("Output: {}\n", shape_str(s.output));
  out += fmt::format("Total params: {}\n", thousands(s.total_params));
  out += fmt::format("Trainable params: {}\n", thousands(s.trainable_params));
  out += fmt::format("Non-trainable params: {}\n", thousands(s.non_trainable_params));
  out += fmt::format("MACs: {}\n", thousands(s.macs));
  return out;
}

}  // namespace scalpel::models
