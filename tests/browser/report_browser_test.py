#!/usr/bin/python3
"""Browser test of the evaluation report (`scalpel eval --report`): headless Chromium at
1280 px renders report.html and the DOM is checked as a reader would see it: no label sticks
out of its chart, no two horizontal labels overlap, every chart has numeric ticks on its x
axis, the page needs no horizontal scrolling, both confusion matrices (counts and row
fractions) sit side by side, train and validation curves share one panel per metric, epoch
timings are not plotted, and the Grad-CAM thumbnails are at least 192 px and enlarge on a
click. A full-page screenshot is taken. Exit status 0 pass, 1 fail, 77 skipped (no Chromium).

    report_browser_test.py --scalpel BIN                   the test: trains a tiny model on
                                                           generated images with long class
                                                           names, evaluates it, checks the page
    report_browser_test.py --report R/report.html --screenshot OUT.png
                                                           the same checks on a given report

The Chromium driver is the one of serve_browser_test.py (DevTools over a pipe, Python's
standard library only).
"""
import argparse
import base64
import os
import shutil
import struct
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_browser_test import SKIP, DevTools, Failure, find_chromium, run  # noqa: E402

# Long names (one beyond the report's label cap, so it is shortened), HTML-special characters
# and a non-ASCII letter: the names that used to be clipped.
CLASSES = ["basal cell carcinoma & <other> keratinocyte cancers",
           "melanocytic nevi, benign keratosis-like lesions and dermatofibroma of the trunk",
           "œdème"]
WIDTH = 1280


def write_png(path, width, height, rgb):
    """An 8-bit RGB PNG from a bytes object of width*height*3 values."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def class_image(label, index, size=32):
    """A class-dependent colour with a little deterministic noise."""
    seed = 1 + 97 * label + index
    values = bytearray()
    for k in range(size * size * 3):
        seed = (seed * 1664525 + 1013904223) % (1 << 32)
        values.append((160 if k % 3 == label else 50) + (seed >> 27))
    return bytes(values)


def tiny_report(scalpel, workdir):
    """Trains 2 epochs on data/{train,val}/<class>, evaluates on another folder in which one image
    is filed under two classes (so the model makes at least one error and the Grad-CAM gallery
    has an item); returns the report's path."""
    for split, count in (("train", 6), ("val", 2)):
        for label, name in enumerate(CLASSES):
            folder = os.path.join(workdir, "data", split, name)
            os.makedirs(folder)
            for i in range(count):
                write_png(os.path.join(folder, f"{i}.png"), 32, 32, class_image(label, i + 100 * (split == "val")))
    for label, name in enumerate(CLASSES):
        folder = os.path.join(workdir, "eval", name)
        os.makedirs(folder)
        for i in range(3):
            write_png(os.path.join(folder, f"{i}.png"), 32, 32, class_image(label, 200 + i))
    write_png(os.path.join(workdir, "eval", CLASSES[1], "same.png"), 32, 32, class_image(0, 200))
    run_dir, report = os.path.join(workdir, "run"), os.path.join(workdir, "report")
    run([scalpel, "train", "--model", "mobilenet_v2", "--width", "0.25", "--classes", str(len(CLASSES)),
         "--data", os.path.join(workdir, "data"), "--out", run_dir, "--epochs", "2", "--batch", "6",
         "--size", "32", "32", "--no-augment", "--seed", "1"], "scalpel train")
    run([scalpel, "eval", "--weights", os.path.join(run_dir, "best.safetensors"), "--data",
         os.path.join(workdir, "eval"), "--report", report, "--size", "32", "32"], "scalpel eval")
    return os.path.join(report, "report.html")


# Every problem a reader would see, as a list of strings (empty: the page reads well). With
# `complete` (the generated report), the sections of a classification report with a training
# history and validation are required; otherwise only the sections present are checked.
LAYOUT_PROBLEMS = """((complete) => {
  const problems = [];
  const own = (t) => (t.firstChild && t.firstChild.nodeValue) || '';
  const rect = (r) => `[${Math.round(r.left)}, ${Math.round(r.top)}, ${Math.round(r.right)}, ${Math.round(r.bottom)}]`;
  const inside = (r, box) => r.left >= box.left - 0.5 && r.right <= box.right + 0.5 &&
                             r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
                            Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  const svgs = [...document.querySelectorAll('svg')];
  if (svgs.length === 0) problems.push('no chart at all');
  for (const svg of svgs) {
    const box = svg.getBoundingClientRect();
    const name = svg.getAttribute('class') + ' "' + own(svg.querySelector('.chart-title') || svg) + '"';
    const horizontal = [];
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      if (!inside(r, box))
        problems.push(`${name}: label "${own(t)}" at ${rect(r)} is clipped by the chart ${rect(box)}`);
      if (!t.closest('[transform]')) horizontal.push([t, r]);
    }
    for (let i = 0; i < horizontal.length; ++i)
      for (let j = i + 1; j < horizontal.length; ++j)
        if (overlap(horizontal[i][1], horizontal[j][1]))
          problems.push(`${name}: labels "${own(horizontal[i][0])}" and "${own(horizontal[j][0])}" overlap`);
    if (svg.matches('.confusion')) continue;
    const ticks = [...svg.querySelectorAll('.x-axis text')].map((t) => [t.getBoundingClientRect().left, own(t)]);
    const values = ticks.sort((a, b) => a[0] - b[0]).map((t) => Number(t[1]));
    if (values.length < 2 || values.some((v, i) => isNaN(v) || (i > 0 && v <= values[i - 1])))
      problems.push(`${name}: x axis ticks ${JSON.stringify(ticks.map((t) => t[1]))} are not increasing numbers`);
    if (svg.querySelectorAll('.y-axis text').length < 2) problems.push(`${name}: fewer than 2 y axis labels`);
  }
  if (document.documentElement.scrollWidth > innerWidth)
    problems.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${innerWidth} px window`);
  const matrices = [...document.querySelectorAll('svg.confusion')].map((s) => s.getBoundingClientRect());
  if ((complete || matrices.length > 0) &&
      (matrices.length !== 2 || Math.abs(matrices[0].top - matrices[1].top) > 1 ||
       matrices[1].left < matrices[0].right))
    problems.push(`expected the count and the normalized confusion matrices side by side: ${matrices.map(rect)}`);
  const panels = {};
  for (const svg of document.querySelectorAll('svg.chart')) {
    const title = svg.querySelector('.chart-title');
    if (title) panels[own(title)] = svg;
  }
  for (const timing of ['seconds', 'images_per_s'])
    if (panels[timing]) problems.push(`the epoch timing "${timing}" is plotted as a training curve`);
  if (!complete) return problems;
  const loss = panels['loss'];
  if (!loss || loss.querySelectorAll('polyline.series').length !== 2)
    problems.push(`no "loss" panel with the train and validation curves overlaid (panels: ${Object.keys(panels)})`);
  if (!/Training time: \\d+ epochs/.test(document.body.textContent)) problems.push('no training time summary');
  return problems;
})"""

GALLERY = """(() => [...document.querySelectorAll('.gallery img')].map((img) => {
  const r = img.getBoundingClientRect();
  return {width: r.width, height: r.height, x: r.left + r.width / 2, y: r.top + r.height / 2,
          loaded: img.naturalWidth > 0};
}))()"""


def check_gallery(browser, complete):
    """Thumbnails of 192 px or more; a click shows one across the window, another click restores it."""
    thumbnails = browser.evaluate(GALLERY)
    if not thumbnails:
        if complete:
            raise Failure("the report has no Grad-CAM gallery (the evaluation data guarantee an error)")
        return 0, 0
    small = [t for t in thumbnails if not t["loaded"] or min(t["width"], t["height"]) < 192]
    if small:
        raise Failure(f"Grad-CAM thumbnails not loaded or under 192 px: {small}")
    browser.evaluate("document.querySelector('.gallery img').scrollIntoView(), true")
    first = browser.evaluate(GALLERY)[0]
    browser.click(first["x"], first["y"])
    zoomed = browser.evaluate(GALLERY)[0]
    viewport = browser.evaluate("[innerWidth, innerHeight]")
    if zoomed["width"] < 0.9 * viewport[0] or zoomed["height"] < 0.9 * viewport[1]:
        raise Failure(f"clicking a thumbnail did not enlarge it to the window {viewport}: {zoomed}")
    browser.click(viewport[0] / 2, viewport[1] / 2)
    restored = browser.evaluate(GALLERY)[0]
    if abs(restored["width"] - first["width"]) > 1:
        raise Failure(f"a second click did not restore the thumbnail: {restored}")
    return len(thumbnails), first["width"]


def full_page_screenshot(browser, path):
    browser.evaluate("window.scrollTo(0, 0), true")
    height = min(int(browser.evaluate("document.documentElement.scrollHeight")), 16000)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
    png = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"})["data"])
    if not png.startswith(b"\x89PNG"):
        raise Failure("the screenshot is not a PNG")
    with open(path + ".tmp", "wb") as f:
        f.write(png)
    os.replace(path + ".tmp", path)
    return height


def check_report(browser, report, screenshot, complete):
    browser.call("Page.navigate", {"url": "file://" + os.path.abspath(report)})
    browser.wait_until("document.readyState === 'complete' && document.querySelectorAll('svg').length > 0",
                       "the report to load", 20)
    problems = browser.evaluate(f"{LAYOUT_PROBLEMS}({'true' if complete else 'false'})")
    if problems:
        raise Failure("the report does not read well at 1280 px:\n  " + "\n  ".join(problems))
    thumbnails, thumbnail_width = check_gallery(browser, complete)
    if browser.page_errors():
        raise Failure(f"page errors: {browser.page_errors()}")
    outside = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:"))]
    if outside:
        raise Failure(f"the report requested {outside}; it must be self-contained")
    height = full_page_screenshot(browser, screenshot)
    charts = browser.evaluate("document.querySelectorAll('svg').length")
    print(f"ok: {charts} charts, no clipped or overlapping label, ticks on every axis, {thumbnails} Grad-CAM "
          f"thumbnails {thumbnail_width:.0f} px wide that enlarge on click; screenshot {screenshot} "
          f"({WIDTH}x{height})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scalpel", help="the scalpel binary (to generate the report)")
    parser.add_argument("--report", help="check this report.html instead of generating one")
    parser.add_argument("--screenshot", help="where the screenshot goes (default: the temporary folder)")
    args = parser.parse_args()
    if bool(args.scalpel) == bool(args.report):
        parser.error("give exactly one of --scalpel and --report")

    chromium = find_chromium()
    if not chromium:
        print("SKIP: no Chromium found (install Debian's chromium, e.g. with `make deps`)")
        return SKIP

    workdir = tempfile.mkdtemp(prefix="scalpel_report_browser_")
    browser = None
    try:
        report = args.report or tiny_report(args.scalpel, workdir)
        browser = DevTools(chromium, workdir, WIDTH, 900)
        check_report(browser, report, args.screenshot or os.path.join(workdir, "report.png"), not args.report)
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    finally:
        if browser:
            browser.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
