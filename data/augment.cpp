#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "data/transforms.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {

bool AugmentConfig::enabled() const {
  return zoom > 0 || rotation > 0 || translate > 0 || hflip > 0 || vflip > 0 || crop_scale < 1 ||
         brightness > 0 || contrast > 0 || saturation > 0 || hue > 0 || gamma > 0 || blur > 0 ||
         noise > 0;
}

namespace {

// One table of the tunable fields, shared by parsing and describe().
struct Field { const char* key; double AugmentConfig::*ptr; };
constexpr Field kFields[] = {
    {"zoom", &AugmentConfig::zoom},           {"rotation", &AugmentConfig::rotation},
    {"translate", &AugmentConfig::translate}, {"hflip", &AugmentConfig::hflip},
    {"vflip", &AugmentConfig::vflip},         {"crop_scale", &AugmentConfig::crop_scale},
    {"brightness", &AugmentConfig::brightness}, {"contrast", &AugmentConfig::contrast},
    {"saturation", &AugmentConfig::saturation}, {"hue", &AugmentConfig::hue},
    {"gamma", &AugmentConfig::gamma},         {"blur", &AugmentConfig::blur},
    {"blur_sigma", &AugmentConfig::blur_sigma}, {"noise", &AugmentConfig::noise},
    {"noise_std", &AugmentConfig::noise_std},
};

AugmentConfig preset(const std::string& name) {
  AugmentConfig c;
  c.name = name;
  if (name == "none") return c;
  if (name == "xray") {
    c.zoom = 0.1;
    c.rotation = 10;
    c.translate = 0.05;
    c.brightness = 0.1;
    c.contrast = 0.1;
  } else if (name == "dermoscopy") {
    c.hflip = 0.5;
    c.vflip = 0.5;
    c.rotation = 180;
    c.zoom = 0.1;
    c.brightness = 0.1;
    c.contrast = 0.1;
    c.saturation = 0.1;
    c.hue = 0.02;
  } else {
    fail("unknown augmentation preset '{}' (xray, dermoscopy, none)", name);
  }
  return c;
}

}  // namespace

std::string AugmentConfig::describe() const {
  std::ostringstream out;
  out << name << ":";
  const AugmentConfig defaults;
  bool any = false;
  for (const Field& f : kFields) {
    if (this->*f.ptr == defaults.*f.ptr) continue;
    out << " " << f.key << "=" << this->*f.ptr;
    any = true;
  }
  if (fill_edge) out << " fill=edge";
  if (!any) out << " (no augmentation)";
  return out.str();
}

AugmentConfig parse_augment(const std::string& spec) {
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ',');) parts.push_back(part);
  SCALPEL_CHECK(!parts.empty() && !parts[0].empty(), "--augment: empty specification");
  AugmentConfig c = preset(parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& kv = parts[i];
    auto eq = kv.find('=');
    SCALPEL_CHECK(eq != std::string::npos, "--augment: '{}' is not key=value", kv);
    std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "fill") {
      SCALPEL_CHECK(value == "edge" || value == "black", "--augment: fill={} (edge or black)", value);
      c.fill_edge = value == "edge";
      continue;
    }
    const Field* field = nullptr;
    for (const Field& f : kFields)
      if (key == f.key) field = &f;
    SCALPEL_CHECK(field, "--augment: unknown key '{}'", key);
    double v = 0;
    size_t used = 0;
    try {
      v = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SCALPEL_CHECK(used == value.size() && used > 0 && std::isfinite(v) && v >= 0,
                  "--augment: {}={} is not a non-negative number", key, value);
    c.*field->ptr = v;
  }
  SCALPEL_CHECK(c.hflip <= 1 && c.vflip <= 1 && c.blur <= 1 && c.noise <= 1,
                "--augment: probabilities must be in [0, 1] ({})", spec);
  SCALPEL_CHECK(c.zoom < 1 && c.brightness < 1 && c.contrast < 1 && c.saturation < 1 && c.gamma < 1,
                "--augment: zoom/brightness/contrast/saturation/gamma ranges must be below 1 ({})", spec);
  SCALPEL_CHECK(c.hue <= 0.5, "--augment: hue must be at most 0.5 turns ({})", spec);
  SCALPEL_CHECK(c.crop_scale > 0 && c.crop_scale <= 1, "--augment: crop_scale must be in (0, 1]");
  SCALPEL_CHECK(c.blur_sigma >= 0.1, "--augment: blur_sigma must be at least 0.1");
  return c;
}

bool Geometry::identity() const {
  return scale == 1 && angle_deg == 0 && tx == 0 && ty == 0 && !hflip && !vflip;
}

Geometry sample_geometry(const AugmentConfig& c, int width, int height, Generator& gen) {
  Geometry g;
  if (c.hflip > 0) g.hflip = gen.uniform() < c.hflip;
  if (c.vflip > 0) g.vflip = gen.uniform() < c.vflip;
  if (c.rotation > 0) g.angle_deg = gen.uniform(-c.rotation, c.rotation);
  if (c.zoom > 0) g.scale = gen.uniform(1 - c.zoom, 1 + c.zoom);
  if (c.translate > 0) {
    g.tx = gen.uniform(-c.translate, c.translate) * width;
    g.ty = gen.uniform(-c.translate, c.translate) * height;
  }
  return g;
}

template <typename T>
ImageT<T> warp(const ImageT<T>& image, const Geometry& g, bool nearest, bool fill_edge) {
  if (g.identity()) return image;
  const int W = image.width, H = image.height, C = image.channels;
  const double rad = g.angle_deg * std::numbers::pi / 180.0;
  const double cs = std::cos(rad), sn = std::sin(rad);
  const double cx = W / 2.0, cy = H / 2.0;
  ImageT<T> out(W, H, C);
  // Reads input (x, y) into v; outside the image v keeps its 0, or reads the nearest edge.
  auto fetch = [&](int x, int y, int c, float& v) {
    if (x < 0 || x >= W || y < 0 || y >= H) {
      if (!fill_edge) return;
      x = std::clamp(x, 0, W - 1);
      y = std::clamp(y, 0, H - 1);
    }
    v = static_cast<float>(image.at(y, x, c));
  };
  auto put = [&](int y, int x, int c, float v) {
    if constexpr (std::is_same_v<T, uint8_t>) {
      out.at(y, x, c) = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f) + 0.5f);
    } else {
      out.at(y, x, c) = v;
    }
  };
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      // Undo translation and scale, then the (screen counter-clockwise) rotation, then flips.
      const double u = (x + 0.5 - cx - g.tx) / g.scale, v = (y + 0.5 - cy - g.ty) / g.scale;
      double su = cs * u - sn * v, sv = sn * u + cs * v;
      if (g.hflip) su = -su;
      if (g.vflip) sv = -sv;
      const double sx = su + cx - 0.5, sy = sv + cy - 0.5;
      if (nearest) {
        const int ix = static_cast<int>(std::floor(sx + 0.5)), iy = static_cast<int>(std::floor(sy + 0.5));
        for (int c = 0; c < C; ++c) {
          float p = 0;
          fetch(ix, iy, c, p);
          put(y, x, c, p);
        }
        continue;
      }
      const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
      const float fx = static_cast<float>(sx - x0), fy = static_cast<float>(sy - y0);
      const float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < W && y0 + 1 < H) {  // all four taps inside: no checks
        const T* p0 = &image.pixels[image.index(y0, x0)];
        const T* p1 = &image.pixels[image.index(y0 + 1, x0)];
        for (int c = 0; c < C; ++c)
          put(y, x, c, w00 * static_cast<float>(p0[c]) + w01 * static_cast<float>(p0[C + c]) +
                           w10 * static_cast<float>(p1[c]) + w11 * static_cast<float>(p1[C + c]));
        continue;
      }
      for (int c = 0; c < C; ++c) {
        float p00 = 0, p01 = 0, p10 = 0, p11 = 0;
        fetch(x0, y0, c, p00);
        fetch(x0 + 1, y0, c, p01);
        fetch(x0, y0 + 1, c, p10);
        fetch(x0 + 1, y0 + 1, c, p11);
        put(y, x, c, w00 * p00 + w01 * p01 + w10 * p10 + w11 * p11);
      }
    }
  }
  return out;
}

template Image warp(const Image&, const Geometry&, bool, bool);
template ImageF warp(const ImageF&, const Geometry&, bool, bool);

namespace {
void clamp255(ImageF& image) {
  for (float& v : image.pixels) v = std::clamp(v, 0.0f, 255.0f);
}
float luma(const float* p) { return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]; }
}  // namespace

void adjust_brightness(ImageF& image, double factor) {
  for (float& v : image.pixels) v = static_cast<float>(v * factor);
  clamp255(image);
}

void adjust_contrast(ImageF& image, double factor) {
  const size_t n = static_cast<size_t>(image.width) * image.height;
  if (n == 0) return;
  double mean = 0;
  for (size_t p = 0; p < n; ++p) {
    const float* px = &image.pixels[p * image.channels];
    mean += image.channels >= 3 ? luma(px) : px[0];
  }
  mean /= static_cast<double>(n);
  for (size_t p = 0; p < n; ++p)
    for (int c = 0; c < std::min(image.channels, 3); ++c) {
      float& v = image.pixels[p * image.channels + c];
      v = static_cast<float>(mean + factor * (v - mean));
    }
  clamp255(image);
}

void adjust_saturation(ImageF& image, double factor) {
  if (image.channels < 3) return;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  for (size_t p = 0; p < n; ++p) {
    float* px = &image.pixels[p * image.channels];
    const float gray = luma(px);
    for (int c = 0; c < 3; ++c) px[c] = static_cast<float>(gray + factor * (px[c] - gray));
  }
  clamp255(image);
}

void adjust_hue(ImageF& image, double shift) {
  SCALPEL_CHECK(shift >= -0.5 && shift <= 0.5, "adjust_hue: shift {} not in [-0.5, 0.5]", shift);
  if (image.channels < 3) return;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  for (size_t p = 0; p < n; ++p) {
    float* px = &image.pixels[p * image.channels];
    // RGB -> HSV (h in turns), shift h, HSV -> RGB.
    const double r = px[0], g = px[1], b = px[2];
    const double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
    if (d <= 0) continue;  // gray: hue undefined, unchanged
    double h;
    if (mx == r) h = (g - b) / d / 6.0;
    else if (mx == g) h = ((b - r) / d + 2.0) / 6.0;
    else h = ((r - g) / d + 4.0) / 6.0;
    h += shift;
    h -= std::floor(h);
    const double s = d / mx, v = mx;
    const double h6 = h * 6.0;
    const int sector = static_cast<int>(h6) % 6;
    const double f = h6 - std::floor(h6);
    const double pp = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double rgb[6][3] = {{v, t, pp}, {q, v, pp}, {pp, v, t}, {pp, q, v}, {t, pp, v}, {v, pp, q}};
    for (int c = 0; c < 3; ++c) px[c] = static_cast<float>(rgb[sector][c]);
  }
}

void adjust_gamma(ImageF& image, double gamma) {
  SCALPEL_CHECK(gamma > 0, "adjust_gamma: gamma {} must be positive", gamma);
  for (float& v : image.pixels) v = static_cast<float>(255.0 * std::pow(std::max(v, 0.0f) / 255.0, gamma));
}

void gaussian_blur(ImageF& image, double sigma) {
  SCALPEL_CHECK(sigma > 0, "gaussian_blur: sigma {} must be positive", sigma);
  const int radius = static_cast<int>(std::ceil(3 * sigma));
  std::vector<float> k(2 * radius + 1);
  double total = 0;
  for (int i = -radius; i <= radius; ++i) total += k[i + radius] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
  for (float& w : k) w = static_cast<float>(w / total);
  const int W = image.width, H = image.height, C = image.channels;
  auto reflect = [](int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  ImageF tmp(W, H, C);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        float acc = 0;
        for (int i = -radius; i <= radius; ++i) acc += k[i + radius] * image.at(y, reflect(x + i, W), c);
        tmp.at(y, x, c) = acc;
      }
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        float acc = 0;
        for (int i = -radius; i <= radius; ++i) acc += k[i + radius] * tmp.at(reflect(y + i, H), x, c);
        image.at(y, x, c) = acc;
      }
}

ImageF augment(const ImageF& input, const AugmentConfig& c, Generator& gen, Image* mask) {
  ImageF image = input;
  if (c.crop_scale < 1) {
    Rect r = random_resized_crop_rect(image.width, image.height, gen, {c.crop_scale, 1.0});
    image = resize(crop(image, r.x, r.y, r.width, r.height), input.width, input.height);
    if (mask)
      *mask = resize(crop(*mask, r.x, r.y, r.width, r.height), mask->width, mask->height, Interp::nearest);
  }
  const Geometry g = sample_geometry(c, image.width, image.height, gen);
  image = warp(image, g, /*nearest=*/false, c.fill_edge);
  if (mask) *mask = warp(*mask, g, /*nearest=*/true, c.fill_edge);
  if (c.brightness > 0) adjust_brightness(image, gen.uniform(1 - c.brightness, 1 + c.brightness));
  if (c.contrast > 0) adjust_contrast(image, gen.uniform(1 - c.contrast, 1 + c.contrast));
  if (c.saturation > 0) adjust_saturation(image, gen.uniform(1 - c.saturation, 1 + c.saturation));
  if (c.hue > 0) adjust_hue(image, gen.uniform(-c.hue, c.hue));
  if (c.gamma > 0) adjust_gamma(image, gen.uniform(1 - c.gamma, 1 + c.gamma));
  if (c.blur > 0 && gen.uniform() < c.blur) gaussian_blur(image, gen.uniform(0.1, std::max(c.blur_sigma, 0.1)));
  if (c.noise > 0 && gen.uniform() < c.noise) {
    for (float& v : image.pixels) v = std::clamp(static_cast<float>(v + gen.normal() * c.noise_std), 0.0f, 255.0f);
  }
  return image;
}

}  // namespace scalpel::data
