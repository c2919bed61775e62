// scalpel predict: run a model in evaluation mode on preprocessed arrays (raw logits out) or
// on image files (top-k classes out). See ../shared/interface.md.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "apps/cli.h"
#include "apps/image_inputs.h"
#include "apps/model_flags.h"
#include "autograd/autograd.h"
#include "data/image.h"
#include "layers/functional.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/npy.h"

namespace scalpel::cli {
namespace {

// One class name per line (blank lines kept as names would shift indices: refused).
std::vector<std::string> read_labels(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();  // trailing newlines
  for (size_t i = 0; i < names.size(); ++i)
    SCALPEL_CHECK(!names[i].empty(), "--labels {}: line {} is empty", path, i + 1);
  return names;
}

Tensor run_eval(models::Model& model, const Tensor& x, Device device) {
  NoGradGuard no_grad;
  return model(x.to(device)).to(Device::cpu()).contiguous();
}

int predict_npy(const Args& args, ModelSetup& s) {
  const std::string in = args.get("input-npy"), out = args.require("output-npy");
  Tensor x = load_npy(in);
  SCALPEL_CHECK(is_floating(x.dtype()), "--input-npy {}: expected float32 NCHW, got a non-float array", in);
  x = x.to(DType::F32);
  const Tensor logits = run_eval(*s.model, x, s.device);
  save_npy(out, logits.to(DType::F32));
  std::fprintf(stderr, "%s: %s -> %s %s\n", s.model->name().c_str(), shape_str(x.shape()).c_str(), out.c_str(),
               shape_str(logits.shape()).c_str());
  return 0;
}

struct Ranked {
  int64_t index;
  double p;
};

int predict_images(const Args& args, ModelSetup& s) {
  SCALPEL_CHECK(s.info.task == "classification",
                "predict --image: {} is a {} model; use --input-npy/--output-npy for its raw output", s.info.name,
                s.info.task);
  const int64_t classes = s.model->options().classes;
  std::vector<std::string> names = s.class_names;
  if (args.has("labels")) names = read_labels(args.get("labels"));
  SCALPEL_CHECK(names.empty() || static_cast<int64_t>(names.size()) == classes,
                "--labels {}: {} names for a model with {} classes", args.get("labels"), names.size(), classes);
  const int64_t topk = args.get_int("topk");
  SCALPEL_CHECK(topk > 0, "--topk must be positive, got {}", topk);

  // The checkpoint's preprocessing, else the model's reference one; --preprocess swaps the
  // normalization preset.
  data::Preprocess p = eval_preprocess(s);
  if (args.has("preprocess")) p.norm = data::normalization_preset(args.get("preprocess"));

  Json predictions = Json::array();
  for (const std::string& path : expand_image_inputs(args.get_all("image"))) {
    const Tensor probs = nn::softmax(run_eval(*s.model, data::preprocess_file(path, p), s.device), 1);
    const std::vector<double> v = probs.to_vector();
    std::vector<int64_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(static_cast<size_t>(topk), order.size());
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
    Json top = Json::array();
    for (size_t i = 0; i < k; ++i) {
      Json entry = Json::object();
      entry["index"] = order[i];
      entry["class"] = names.empty() ? std::to_string(order[i]) : names[order[i]];
      entry["p"] = v[order[i]];
      top.push_back(entry);
    }
    Json item = Json::object();
    item["image"] = path;
    item["top"] = top;
    predictions.push_back(item);
  }

  if (args.has("json")) {
    Json out = Json::object();
    out["predictions"] = predictions;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  for (const Json& item : predictions.as_array()) {
    std::printf("%s\n", item.at("image").as_string().c_str());
    for (const Json& t : item.at("top").as_array())
      std::printf("  %4lld  %.4f  %s\n", static_cast<long long>(t.at("index").as_int()), t.at("p").as_number(),
                  t.at("class").as_string().c_str());
  }
  return 0;
}

int run_predict(const std::vector<std::string>& argv) {
  Args args("predict",
            "--weights W [--model M] (--input-npy X.npy --output-npy Y.npy | --image F... [--topk K] [--labels FILE] "
            "[--json] [--preprocess PRESET])");
  add_model_flags(args);
  args.option("input-npy", "float32 NCHW array, already preprocessed")
      .option("output-npy", "where to write the raw logits, float32 [N, classes]")
      .option("image",
              "image file(s) to classify; a folder stands for every image in it and its subfolders (sorted by "
              "path), a .csv file for the paths in its 'path' column (header row first, one image per row, "
              "relative paths from the working directory; split.csv and predictions.csv work as they are)",
              "", -1)
      .option("topk", "classes to show per image", "5")
      .option("labels", "class names, one per line (default: the checkpoint's, else indices)")
      .flag("json", "print {\"predictions\": [{\"image\", \"top\": [{\"index\", \"class\", \"p\"}]}]}")
      .option("preprocess", "normalization preset instead of the model's: imagenet|tf|unit|caffe|none");
  add_max_pixels_flag(args);
  add_precision_flag(args);
  if (!args.parse(argv)) return 0;
  apply_max_pixels_flag(args);
  apply_precision_flag(args, parse_device(args.get("device")));
  const bool npy = args.has("input-npy"), images = args.has("image");
  SCALPEL_CHECK(npy != images, "predict needs exactly one of --input-npy or --image (see scalpel predict --help)");
  SCALPEL_CHECK(!args.get("weights").empty(), "--weights is required for 'scalpel predict' (see scalpel predict --help)");

  ModelSetup s = load_model_from_flags(args);
  s.model->eval();
  return npy ? predict_npy(args, s) : predict_images(args, s);
}

SCALPEL_REGISTER_COMMAND({"predict", "classify images or run a model on a .npy batch", run_predict});

}  // namespace
}  // namespace scalpel::cli
