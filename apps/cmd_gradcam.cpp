// scalpel gradcam: a Grad-CAM heatmap of one image written as a PNG overlay (apps/gradcam.h).
#include <cstdio>

#include "apps/cli.h"
#include "apps/gradcam.h"
#include "apps/image_inputs.h"
#include "apps/model_flags.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/npy.h"

namespace scalpel::cli {
namespace {

int run_gradcam(const std::vector<std::string>& argv) {
  Args args("gradcam", "--weights W [--model M] --image F --out PNG [--class K] [--layer NAME] [--npy RAW.npy]");
  add_model_flags(args);
  args.option("image", "image file to explain")
      .option("out", "PNG to write: the heatmap blended over the image, at the image's size")
      .option("class", "class index to explain, 0..classes-1 (default: the predicted class)")
      .option("layer", "module whose activation is used (default: the model's last feature map)")
      .option("npy", "also write the heatmap as float32 [H, W] .npy (the image's height and width)")
      .option("alpha", "weight of the heatmap colours in the overlay", "0.45");
  add_max_pixels_flag(args);
  if (!args.parse(argv)) return 0;
  apply_max_pixels_flag(args);
  const std::string image_path = args.require("image"), out = args.require("out");
  SCALPEL_CHECK(!args.get("weights").empty(), "--weights is required for 'scalpel gradcam' (see scalpel gradcam --help)");
  SCALPEL_CHECK(out.ends_with(".png") || out.ends_with(".PNG"), "--out {}: expected a .png path", out);

  ModelSetup s = load_model_from_flags(args);
  SCALPEL_CHECK(s.info.task == "classification", "gradcam: {} is a {} model; Grad-CAM needs a classifier",
                s.info.name, s.info.task);
  const data::Preprocess p = eval_preprocess(s);
  const data::Image image = data::load_image(image_path);
  const int64_t class_index = args.has("class") ? args.get_int("class") : -1;
  SCALPEL_CHECK(!args.has("class") || class_index >= 0, "--class {}: expected a class index 0..classes-1", class_index);
  const GradCamResult cam = heatmap_on_image(
      gradcam(*s.model, data::preprocess(image, p).to(s.device), class_index, args.get("layer")),
      image.width, image.height, p);
  const std::vector<uint8_t> png = data::encode_png(gradcam_overlay(image, cam, args.get_double("alpha")));
  std::vector<std::pair<std::string, std::string>> files = {{out, std::string(png.begin(), png.end())}};
  if (args.has("npy")) {
    std::vector<double> v(cam.heatmap.begin(), cam.heatmap.end());
    files.push_back({args.get("npy"), serialize_npy(Tensor::from_vector(v, {cam.height, cam.width}).to(DType::F32))});
  }
  write_files_atomic(files);  // both or neither
  const std::string name = s.class_names.empty() ? std::to_string(cam.class_index) : s.class_names[cam.class_index];
  std::printf("class %lld (%s, p = %.4f), layer %s -> %s\n", static_cast<long long>(cam.class_index), name.c_str(),
              cam.probability, cam.layer.c_str(), out.c_str());
  return 0;
}

SCALPEL_REGISTER_COMMAND({"gradcam", "Grad-CAM heatmap of an image as a PNG overlay", run_gradcam});

}  // namespace
}  // namespace scalpel::cli
