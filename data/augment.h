#pragma once
// Seeded random augmentations for the training split. Every random draw comes from the
// Generator passed in, in a fixed order, so (config, image, generator state) decides the
// output exactly; the loader gives each sample its own generator (see loader.h).
#include <string>

#include "data/image.h"

namespace scalpel {
class Generator;
}

namespace scalpel::data {

// Ranges are symmetric: `rotation = 10` draws an angle in [-10, 10] degrees, `zoom = 0.1` a
// scale in [0.9, 1.1], `brightness = 0.2` a factor in [0.8, 1.2] (torchvision ColorJitter),
// `gamma = 0.2` an exponent in [0.8, 1.2]. Probabilities are in [0, 1]. 0 disables an op.
struct AugmentConfig {
  std::string name = "none";
  // geometry (one affine warp about the image centre, bilinear; masks use nearest)
  double zoom = 0;         // scale factor range 1 +- zoom (> 1 magnifies)
  double rotation = 0;     // degrees
  double translate = 0;    // fraction of width/height
  double hflip = 0;        // probability of a horizontal flip
  double vflip = 0;        // probability of a vertical flip
  bool fill_edge = false;  // pixels from outside: replicate the edge (else 0 = black)
  double crop_scale = 1;   // RandomResizedCrop area fraction in [crop_scale, 1]; 1 disables
  // photometric (on 0..255 values, clamped after each step)
  double brightness = 0;   // v * f
  double contrast = 0;     // mean_gray + f * (v - mean_gray)
  double saturation = 0;   // gray + f * (v - gray)             (colour images only)
  double hue = 0;          // hue shift in [-hue, hue] turns, <= 0.5 (colour images only)
  double gamma = 0;        // 255 * (v / 255)^g
  double blur = 0;         // probability of a Gaussian blur ...
  double blur_sigma = 1;   // ... with sigma drawn in [0.1, blur_sigma] pixels
  double noise = 0;        // probability of additive Gaussian noise ...
  double noise_std = 5;    // ... with this standard deviation (0..255 scale)

  bool enabled() const;
  std::string describe() const;  // "xray: zoom=0.1 rotation=10 ..." (non-zero fields)
};

// Presets: "none"; "xray" (zoom, small rotation and translation, brightness/contrast, no
// flips: anatomy is not left-right symmetric); "dermoscopy" (both flips, any rotation, zoom,
// colour jitter). A spec is a preset optionally followed by overrides:
// "xray,rotation=5,noise=0.2". Error names an unknown preset or key, or a bad value.
AugmentConfig parse_augment(const std::string& spec);

// The geometric part of one augmentation draw.
struct Geometry {
  double scale = 1, angle_deg = 0, tx = 0, ty = 0;  // tx, ty in pixels
  bool hflip = false, vflip = false;
  bool identity() const;
};
Geometry sample_geometry(const AugmentConfig& config, int width, int height, Generator& gen);
// Output pixel p (centred coordinates) reads input A^-1 (p - t) where A rotates by angle_deg
// (counter-clockwise on screen), scales by `scale` and flips; bilinear for images, nearest
// for masks (`nearest`). Pixels mapping outside read 0 or, with fill_edge, the nearest edge.
template <typename T>
ImageT<T> warp(const ImageT<T>& image, const Geometry& g, bool nearest, bool fill_edge);

// Photometric ops in the order brightness, contrast, saturation, hue, gamma, blur, noise.
void adjust_brightness(ImageF& image, double factor);
void adjust_contrast(ImageF& image, double factor);
void adjust_saturation(ImageF& image, double factor);
void adjust_hue(ImageF& image, double shift);  // shift in turns, [-0.5, 0.5]
void adjust_gamma(ImageF& image, double gamma);
// Separable Gaussian blur, kernel radius ceil(3 sigma), reflected borders (as torchvision).
void gaussian_blur(ImageF& image, double sigma);

// Applies the whole config: optional random resized crop (resized back to the input size),
// the warp, then the photometric ops. `mask`, when given, gets the same geometry (nearest).
ImageF augment(const ImageF& image, const AugmentConfig& config, Generator& gen,
               Image* mask = nullptr);

}  // namespace scalpel::data
