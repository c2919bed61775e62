#include "data/preprocess.h"

#include <cmath>

#include "tensor/error.h"

namespace scalpel::data {

Fit parse_fit(const std::string& name) {
  if (name == "stretch") return Fit::stretch;
  if (name == "crop") return Fit::crop;
  if (name == "letterbox") return Fit::letterbox;
  fail("unknown resize mode '{}' (stretch, crop, letterbox)", name);
}

namespace {
template <typename T>
ImageT<T> fit_geometry(const ImageT<T>& image, const Preprocess& p, Interp interp) {
  SCALPEL_CHECK(p.width > 0 && p.height > 0, "input size {}x{} must be positive", p.width, p.height);
  switch (p.fit) {
    case Fit::stretch: return resize(image, p.width, p.height, interp);
    case Fit::letterbox: return letterbox(image, p.width, p.height, interp);
    case Fit::crop: {
      SCALPEL_CHECK(p.crop_fraction > 0 && p.crop_fraction <= 1, "crop fraction {} must be in (0, 1]",
                    p.crop_fraction);
      const int side = static_cast<int>(std::round(std::max(p.width, p.height) / p.crop_fraction));
      return center_crop(resize_short_side(image, side, interp), p.width, p.height);
    }
  }
  fail("bad fit mode");
}
}  // namespace

Image fit_image(const Image& image, const Preprocess& p) {
  return fit_geometry(convert_channels(image, p.channels), p, p.interp);
}

Image fit_mask(const Image& mask, int image_width, int image_height, const Preprocess& p) {
  Image m = convert_channels(mask, 1);
  if (m.width != image_width || m.height != image_height)
    m = resize(m, image_width, image_height, Interp::nearest);
  return fit_geometry(m, p, Interp::nearest);
}

Tensor preprocess(const Image& image, const Preprocess& p) { return to_tensor(fit_image(image, p), p.norm); }

Tensor preprocess_file(const std::string& path, const Preprocess& p) { return preprocess(load_image(path), p); }

}  // namespace scalpel::data
