// The HTML report's charts: label room, axis ticks, both confusion matrices, training curves
// and the Grad-CAM gallery (tests/browser/report_browser_test.py checks the page in Chromium).
#include <gtest/gtest.h>

#include <regex>

#include "apps/report/html_report.h"
#include "data/image.h"

namespace scalpel::report {
namespace {

EvalResult make_result(const std::vector<std::string>& classes, const std::vector<int64_t>& labels,
                       const std::vector<std::vector<double>>& probs) {
  EvalResult r;
  r.model_name = "tiny";
  r.classes = classes;
  r.labels = labels;
  r.probs = probs;
  for (size_t i = 0; i < labels.size(); ++i) {
    r.paths.push_back(std::to_string(i) + ".png");
    r.preds.push_back(argmax(probs[i]));
  }
  r.metrics = compute_metrics(labels, probs, classes);
  return r;
}

// Every <svg ...>...</svg> of `html`.
std::vector<std::string> svgs(const std::string& html) {
  std::vector<std::string> out;
  for (size_t at = 0; (at = html.find("<svg", at)) != std::string::npos;) {
    const size_t end = html.find("</svg>", at) + 6;
    out.push_back(html.substr(at, end - at));
    at = end;
  }
  return out;
}

double attribute(const std::string& element, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(element, m, std::regex(" " + name + "='([-0-9.]+)'"))) return NAN;
  return std::stod(m[1]);
}

struct Label {
  std::string opening, text;  // the <text ...> tag and its own text (without a <title>)
};
std::vector<Label> labels_in(const std::string& svg) {
  std::vector<Label> out;
  const std::regex text("(<text[^>]*>)([^<]*)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), text); it != std::sregex_iterator(); ++it)
    out.push_back({(*it)[1], (*it)[2]});
  return out;
}

std::string unescape(std::string s) {
  for (const auto& [from, to] :
       {std::pair{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&#39;", "'"}, {"&quot;", "\""}})
    for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, std::string(from).size(), to);
  return s;
}

const std::vector<std::string> kLongNames = {
    "nevus", "carcinoma & <other>",
    "melanocytic nevi, benign keratosis-like lesions and dermatofibroma of the trunk and limbs"};

EvalResult long_names_result() {
  return make_result(
      kLongNames, {0, 0, 1, 1, 2, 2, 2},
      {{.7, .2, .1}, {.3, .6, .1}, {.1, .8, .1}, {.2, .3, .5}, {.1, .1, .8}, {.2, .1, .7}, {.6, .2, .2}});
}

TEST(HtmlReport, NiceAxisHasRoundTicksCoveringTheData) {
  Axis a = nice_axis(0, 1);
  EXPECT_EQ(a.ticks, (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  EXPECT_EQ(a.label(a.ticks[3]), "0.6");
  a = nice_axis(0.43, 1.21);
  EXPECT_DOUBLE_EQ(a.lo, 0.4);
  EXPECT_DOUBLE_EQ(a.hi, 1.4);
  EXPECT_EQ(a.ticks.size(), 6u);
  a = nice_axis(0, 7, 5, true);  // counts: whole steps
  EXPECT_EQ(a.ticks, (std::vector<double>{0, 2, 4, 6, 8}));
  EXPECT_EQ(a.label(4), "4");
  a = nice_axis(1, 1, 6, true);  // one epoch
  EXPECT_EQ(a.ticks, (std::vector<double>{0, 1, 2}));
  a = nice_axis(1e-5, 1e-3);  // a learning-rate schedule
  EXPECT_EQ(a.label(a.ticks[1]), "0.0002");
  EXPECT_EQ(nice_axis(0, 1e-5).label(2e-6), "2e-06");
  // A narrow range far from zero: labels tell the ticks apart.
  a = nice_axis(0.5444, 0.5448);
  EXPECT_EQ(a.label(a.ticks[1]), "0.5445");
  a = nice_axis(2e6, 2.0004e6);
  EXPECT_EQ(a.label(a.ticks[1]), "2.0001e+06");
  EXPECT_NE(a.label(a.ticks[1]), a.label(a.ticks[2]));
}

TEST(HtmlReport, FitTextShortensOnWholeCodePoints) {
  EXPECT_EQ(fit_text("nevus", 100), "nevus");
  const std::string accents = "\u0153d\u00e8me \u0153d\u00e8me \u0153d\u00e8me \u0153d\u00e8me";
  const std::string fitted = fit_text(accents, 60);
  ASSERT_TRUE(fitted.ends_with("\u2026")) << fitted;
  EXPECT_LE(text_width(fitted), 60);
  const std::string prefix = fitted.substr(0, fitted.size() - std::string("\u2026").size());
  EXPECT_TRUE(accents.starts_with(prefix));
  EXPECT_FALSE(prefix.empty());
  EXPECT_NE(static_cast<unsigned char>(prefix.back()) & 0xC0, 0xC0u) << "cut inside a character";
  // Wide letters are estimated wider than narrow ones.
  EXPECT_GT(text_width("WWWW"), text_width("iiii") * 2);
}

TEST(HtmlReport, ConfusionMatricesShowCountsAndRowFractions) {
  // True a: predicted a, a, b; true b: predicted b.
  const EvalResult r = make_result({"a", "b"}, {0, 0, 0, 1}, {{.9, .1}, {.8, .2}, {.3, .7}, {.1, .9}});
  const std::string html = render_html_report(r, "t", {}, {});
  std::vector<std::string> matrices;
  for (const std::string& svg : svgs(html))
    if (svg.find("class='chart confusion'") != std::string::npos) matrices.push_back(svg);
  ASSERT_EQ(matrices.size(), 2u);
  auto cells = [](const std::string& svg) {
    std::vector<std::string> v;
    for (const Label& l : labels_in(svg))
      if (l.opening.find("fill=") != std::string::npos) v.push_back(l.text);
    return v;
  };
  EXPECT_EQ(cells(matrices[0]), (std::vector<std::string>{"2", "1", "0", "1"}));
  EXPECT_EQ(cells(matrices[1]), (std::vector<std::string>{"0.67", "0.33", "0.00", "1.00"}));
  EXPECT_NE(matrices[1].find("rows sum to 1"), std::string::npos);
}

// Every label's estimated extent (its anchor, width and rotation) lies inside its <svg>: room
// is made for names up to a cap, longer ones are shortened with the full name in a tooltip.
TEST(HtmlReport, LabelsFitInsideTheirChart) {
  History history;
  history.series = {{"train_loss", {1.2, 0.9, 0.7}}, {"val_loss", {1.3, 1.0, 0.9}}, {"lr", {1e-3, 5e-4, 1e-4}}};
  const std::string html = render_html_report(long_names_result(), "t", history, {});
  int checked = 0, shortened = 0, full_middle_name = 0;
  for (const std::string& svg : svgs(html)) {
    const double width = attribute(svg, "width"), height = attribute(svg, "height");
    for (const Label& l : labels_in(svg)) {
      const std::string text = unescape(l.text);
      const double w = text_width(text), x = attribute(l.opening, "x"), y = attribute(l.opening, "y");
      const bool end = l.opening.find("text-anchor='end'") != std::string::npos;
      const bool middle = l.opening.find("text-anchor='middle'") != std::string::npos;
      if (l.opening.find("rotate(-45") != std::string::npos) {  // column names hang down-left
        EXPECT_GE(x - 0.7072 * w, 0) << text;
        EXPECT_LE(y + 0.7072 * w, height) << text;
      } else if (l.opening.find("rotate(-90") != std::string::npos) {  // y axis titles
        EXPECT_GE(y - w / 2, 0) << text;
        EXPECT_LE(y + w / 2, height) << text;
      } else {
        const double from = end ? x - w : middle ? x - w / 2 : x, to = end ? x : middle ? x + w / 2 : x + w;
        EXPECT_GE(from, 0) << text << " in " << l.opening;
        EXPECT_LE(to, width) << text << " in " << l.opening << " of an svg " << width << " px wide";
      }
      EXPECT_LE(y, height) << text;
      ++checked;
      shortened += text.ends_with("\u2026");
      full_middle_name += text.starts_with(kLongNames[1]);
    }
  }
  EXPECT_GT(checked, 50);
  EXPECT_GT(shortened, 0);             // the longest name, in the matrices, the ROC legend, the bars
  EXPECT_GE(full_middle_name, 4);      // a medium name stays whole: 2 matrices x (row + column), legend, bars
  EXPECT_NE(html.find("<title>" + html_escape(kLongNames[2])), std::string::npos);  // its full text
}

TEST(HtmlReport, EveryChartHasTicksOnBothAxes) {
  History history;
  history.series = {{"train_loss", {1.2, 0.9}}, {"val_loss", {1.3, 1.0}}};
  const std::string html = render_html_report(long_names_result(), "t", history, {});
  int charts = 0;
  for (const std::string& svg : svgs(html)) {
    if (svg.find("confusion") != std::string::npos) continue;
    ++charts;
    const size_t x_axis = svg.find("<g class='x-axis'>"), y_axis = svg.find("<g class='y-axis'>");
    ASSERT_NE(x_axis, std::string::npos) << svg.substr(0, 200);
    ASSERT_NE(y_axis, std::string::npos);
    const std::vector<Label> x_ticks = labels_in(svg.substr(x_axis, svg.find("</g>", x_axis) - x_axis));
    const std::vector<Label> y_ticks = labels_in(svg.substr(y_axis, svg.find("</g>", y_axis) - y_axis));
    ASSERT_GE(x_ticks.size(), 2u) << svg.substr(0, 200);
    EXPECT_GE(y_ticks.size(), 2u);
    for (size_t i = 1; i < x_ticks.size(); ++i) {
      EXPECT_GT(std::stod(x_ticks[i].text), std::stod(x_ticks[i - 1].text));
      EXPECT_GT(attribute(x_ticks[i].opening, "x"), attribute(x_ticks[i - 1].opening, "x"));
    }
  }
  EXPECT_EQ(charts, 4);  // ROC, per-class bars, confidence histogram, loss
}

TEST(HtmlReport, TrainingCurvesOverlayTrainAndValidationAndSummarizeTiming) {
  History history;
  history.series = {{"train_loss", {1.2, 0.9, 0.7}},   {"train_accuracy", {0.4, 0.6, 0.7}},
                    {"val_loss", {1.3, 1.0, 0.9}},     {"val_accuracy", {0.3, 0.5, 0.6}},
                    {"val_macro_f1", {0.2, 0.4, 0.5}}, {"lr", {1e-3, 1e-3, 1e-4}},
                    {"seconds", {1.5, 2.0, 2.5}},      {"images_per_s", {100, 150, 200}}};
  const std::string html = training_curves_html(history);
  const std::vector<std::string> panels = svgs(html);
  ASSERT_EQ(panels.size(), 4u);
  const std::vector<std::string> titles = {"loss", "accuracy", "macro_f1", "learning rate"};
  const size_t curves[] = {2, 2, 1, 1};
  for (size_t i = 0; i < panels.size(); ++i) {
    EXPECT_NE(panels[i].find("class='chart-title' text-anchor='middle'>" + titles[i] + "<"), std::string::npos)
        << titles[i];
    size_t polylines = 0;
    for (size_t at = 0; (at = panels[i].find("<polyline", at)) != std::string::npos; ++at) ++polylines;
    EXPECT_EQ(polylines, curves[i]) << titles[i];
  }
  EXPECT_NE(panels[0].find(">train<"), std::string::npos);
  EXPECT_NE(panels[0].find(">validation<"), std::string::npos);
  EXPECT_EQ(html.find(">seconds<"), std::string::npos);
  EXPECT_EQ(html.find(">images_per_s<"), std::string::npos);
  EXPECT_NE(html.find("Training time: 3 epochs, 6.0 s in all (2.0 s per epoch, 150 images/s)."), std::string::npos)
      << html;
}

TEST(HtmlReport, GalleryThumbnailsAreLargeKeepTheirShapeAndEnlargeOnClick) {
  const std::vector<GalleryItem> items = {{"square <a>.png", data::encode_png(data::Image(32, 32, 3))},
                                          {"wide.png", data::encode_png(data::Image(64, 32, 3))}};
  const std::string html = gallery_html(items, 224);
  EXPECT_NE(html.find("width='224' height='224'"), std::string::npos) << html.substr(0, 400);
  EXPECT_NE(html.find("width='448' height='224'"), std::string::npos);
  size_t toggles = 0;
  for (size_t at = 0; (at = html.find("<label class='zoom'", at)) != std::string::npos; ++at) ++toggles;
  EXPECT_EQ(toggles, 2u);
  EXPECT_NE(html.find("<input type='checkbox'"), std::string::npos);
  EXPECT_NE(html.find("<figcaption>square &lt;a&gt;.png</figcaption>"), std::string::npos);
  // The style that enlarges a checked thumbnail to the window.
  EXPECT_NE(page_head("t").find(".zoom input:checked+img{position:fixed"), std::string::npos);
}

}  // namespace
}  // namespace scalpel::report
