#!/usr/bin/python3
"""Browser test of `scalpel serve`: headless Chromium loads the page, a user uploads an image
through its file input, the probability bars and the Grad-CAM overlay appear, the opacity
slider changes the overlay, Grad-CAM is asked to explain another class than the top one and
the overlay is downloaded as a PNG, the decision-aid notice is visible, no request leaves
loopback, and a screenshot is taken. Exit status 0 pass, 1 fail, 77 skipped (no Chromium).

    serve_browser_test.py --scalpel BIN                  the test (trains a tiny model first)
    serve_browser_test.py --scalpel BIN --weights W --image F --screenshot OUT.png
                                                         the same steps on a given model (README)

Driver: Chromium's DevTools protocol over --remote-debugging-pipe (JSON messages ended by a
NUL byte on file descriptors 3 and 4), spoken with the Python standard library alone. That
needs neither a WebSocket client (node 20 and Python's stdlib have none) nor chromedriver,
Selenium or an npm package: the only dependency is Debian's chromium.
"""
import argparse
import base64
import fcntl
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SKIP = 77
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--no-default-browser-check", "--remote-debugging-pipe"]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Failure(Exception):
    pass


def find_chromium():
    explicit = os.environ.get("SCALPEL_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """One headless Chromium and a DevTools session on one page."""

    def __init__(self, chromium, workdir, width, height):
        commands_read, self.commands = os.pipe()
        self.replies, replies_write = os.pipe()
        # Move the child's ends above 3 and 4 so that placing them there cannot clobber one another.
        child_read = fcntl.fcntl(commands_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_write = fcntl.fcntl(replies_write, fcntl.F_DUPFD_CLOEXEC, 10)

        def place_pipe_ends():  # runs in the child: Chromium reads fd 3 and writes fd 4
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        with open(os.path.join(workdir, "chromium.log"), "wb") as log:
            self.process = subprocess.Popen(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={os.path.join(workdir, 'profile')}",
                 f"--window-size={width},{height}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=place_pipe_ends, pass_fds=(3, 4))
        for fd in (commands_read, replies_write, child_read, child_write):
            os.close(fd)
        self.buffer = b""
        self.next_id = 0
        self.answers = {}
        self.events = []
        self.session = None
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 page=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log", "DOM"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _read_messages(self, timeout):
        ready, _, _ = select.select([self.replies], [], [], max(timeout, 0))
        if not ready:
            return
        chunk = os.read(self.replies, 1 << 20)
        if not chunk:
            raise Failure("Chromium exited")
        self.buffer += chunk
        *messages, self.buffer = self.buffer.split(b"\0")
        for text in messages:
            message = json.loads(text)
            if "id" in message:
                self.answers[message["id"]] = message
            else:
                self.events.append(message)

    def call(self, method, params=None, page=True, timeout=20):
        """Sends one command (to the page's session unless page=False) and returns its result."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while self.next_id not in self.answers:
            if time.monotonic() > deadline:
                raise Failure(f"{method}: no answer from Chromium in {timeout} s")
            self._read_messages(deadline - time.monotonic())
        answer = self.answers.pop(self.next_id)
        if "error" in answer:
            raise Failure(f"{method}: {answer['error']}")
        return answer["result"]

    def pump(self, seconds):
        """Collects the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read_messages(deadline - time.monotonic())

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise Failure(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def page_errors(self):
        """JavaScript exceptions, console errors and failed loads reported so far."""
        errors = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text"))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                if not entry.get("url", "").endswith("/favicon.ico"):  # the page has none; not its fault
                    errors.append(f"{entry['text']} ({entry.get('url', '')})")
        return errors

    def requested_urls(self):
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def wait_until(self, expression, what, timeout):
        """Polls `expression` until it is truthy; fails at once on a page error."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            errors = self.page_errors()
            if errors:
                raise Failure(f"page error while waiting for {what}: {errors}")
            if value:
                return value
            if time.monotonic() > deadline:
                raise Failure(f"timed out after {timeout} s waiting for {what}")
            self.pump(0.1)

    def click(self, x, y):
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def close(self):
        try:
            self.call("Browser.close", page=False, timeout=5)
        except Failure:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.commands)
        os.close(self.replies)


def run(command, what):
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise Failure(f"{what} failed ({' '.join(command)}):\n{done.stdout}")
    return done.stdout


def tiny_model(scalpel, workdir):
    """A checkpoint and a lesion image from a one-epoch `scalpel demo` at 32x32 (a few seconds)."""
    out = os.path.join(workdir, "demo")
    run([scalpel, "demo", "--out", out, "--images", "8", "--epochs", "1", "--size", "32"], "scalpel demo")
    lesions = os.path.join(out, "data", "test", "malignant")
    return os.path.join(out, "run", "best.safetensors"), os.path.join(lesions, sorted(os.listdir(lesions))[0])


class ServeProcess:
    """`scalpel serve` on a free loopback port."""

    def __init__(self, scalpel, weights, workdir):
        with open(os.path.join(workdir, "serve.log"), "wb") as log:
            self.process = subprocess.Popen([scalpel, "serve", "--weights", weights, "--port", "0"],
                                            stdout=subprocess.PIPE, stderr=log)
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        line = self.process.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.process.kill()
            raise Failure(f"scalpel serve did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}/"

    def stop(self):
        """SIGTERM must stop the server cleanly: exit status 0 within a few seconds."""
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise Failure("scalpel serve ignored SIGTERM for 10 s")
        if status != 0:
            raise Failure(f"scalpel serve exited with status {status} on SIGTERM")


# The newest result card: its error, bars and images, as the user sees them.
RESULT_STATE = """(() => {
  const card = document.querySelector('#results .card');
  if (!card) return null;
  const loaded = (img) => !!img && img.complete && img.naturalWidth > 0;
  const heat = card.querySelector('img.heat'), base = card.querySelector('.stack img:not(.heat)');
  const box = (img) => img ? JSON.stringify(img.getBoundingClientRect()) : null;
  return {
    error: (card.querySelector('.err') || {}).textContent || null,
    top: (card.querySelector('.top') || {}).textContent || null,
    bars: [...card.querySelectorAll('.bar')].map((b) => ({label: b.querySelector('.label').textContent,
                                                         width: parseFloat(b.querySelector('.fill').style.width)})),
    overlay: loaded(heat) && loaded(base),
    aligned: box(heat) === box(base),  // the heatmap lies exactly over the model's view
    opacity: heat ? parseFloat(getComputedStyle(heat).opacity) : null,
    heatSrc: heat ? heat.src : null,
    heatLoaded: loaded(heat),
    baseSize: loaded(base) ? [base.naturalWidth, base.naturalHeight] : null,
    caption: (card.querySelector('figure:last-child figcaption') || {}).textContent || null,
    camClasses: [...card.querySelectorAll('select.camclass option')].map((o) => [o.value, o.textContent]),
  };
})()"""

NOTICE_STATE = """(() => {
  const n = document.querySelector('.notice');
  if (!n) return null;
  const r = n.getBoundingClientRect(), s = getComputedStyle(n);
  return {text: n.textContent, shown: r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight &&
                                      s.visibility === 'visible' && parseFloat(s.opacity) > 0};
})()"""


def png_size(data):
    """Width and height from a PNG's IHDR."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return None
    return [int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")]


def check_class_choice_and_download(browser, classes, state, download_dir):
    """Grad-CAM of another class than the top one, picked in the card's menu; then the overlay
    downloaded through the card's button, as a PNG of the model's view."""
    offered = [name for _, name in state["camClasses"][1:]]
    if offered != classes:
        raise Failure(f"the Grad-CAM class menu offers {state['camClasses']}, expected the top class and {classes}")
    top_name = state["bars"][0]["label"]
    other = next(i for i, name in enumerate(classes) if name != top_name)
    # A native <select> popup cannot be clicked in headless Chromium; choose as the menu would.
    browser.evaluate("(() => { const s = document.querySelector('#results .card select.camclass');"
                     f" s.value = '{other}'; s.dispatchEvent(new Event('change')); }})()")
    expected_caption = f"Grad-CAM ({classes[other]})"
    browser.wait_until(f"(() => {{ const s = {RESULT_STATE}; return s.caption === {json.dumps(expected_caption)} && "
                       f"s.heatLoaded && s.heatSrc !== {json.dumps(state['heatSrc'])}; }})()",
                       f"the overlay of class {classes[other]!r}", 20)

    browser.call("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir}, page=False)
    button = browser.evaluate("(() => { const b = document.querySelector('#results .card button.download');"
                              " if (!b) return null; b.scrollIntoView(); const r = b.getBoundingClientRect();"
                              " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()")
    if not button:
        raise Failure("the result card has no download button")
    browser.click(button["x"], button["y"])
    deadline = time.monotonic() + 15
    saved = []
    while not saved:
        saved = [f for f in os.listdir(download_dir) if f.endswith(".png")]
        if time.monotonic() > deadline:
            raise Failure(f"no PNG was downloaded (folder holds {os.listdir(download_dir)})")
        browser.pump(0.2)
    name = saved[0]
    with open(os.path.join(download_dir, name), "rb") as f:
        data = f.read()
    size = png_size(data)
    if size != state["baseSize"]:
        raise Failure(f"the download {name} is {size}, not a PNG of the image's size {state['baseSize']}")
    if classes[other] not in name:
        raise Failure(f"the download {name!r} does not name the class it explains ({classes[other]!r})")
    return classes[other], name, len(data)


def check_page(browser, server_url, image, screenshot, slider_at, download_dir):
    classes = json.load(urllib.request.urlopen(server_url + "api/models", timeout=10))[0]["classes"]
    browser.call("Page.navigate", {"url": server_url})
    browser.wait_until("document.querySelectorAll('#model option').length > 0", "the model list", 10)

    notice = browser.evaluate(NOTICE_STATE)
    if not notice or "not a diagnosis" not in notice["text"] or not notice["shown"]:
        raise Failure(f"the decision-aid notice is missing or hidden: {notice}")

    # The user's choice of a file, as DevTools does it for the page's <input type=file>.
    root = browser.call("DOM.getDocument")["root"]["nodeId"]
    file_input = browser.call("DOM.querySelector", {"nodeId": root, "selector": "#file"})["nodeId"]
    if not file_input:
        raise Failure("the page has no #file input")
    browser.call("DOM.setFileInputFiles", {"nodeId": file_input, "files": [os.path.abspath(image)]})

    state = browser.wait_until(f"(() => {{ const s = {RESULT_STATE}; return s && (s.error || "
                               f"(s.bars.length === {len(classes)} && s.overlay)) ? s : null; }})()",
                               "the probability bars and the Grad-CAM overlay", 30)
    if state["error"]:
        raise Failure(f"the page shows an error: {state['error']}")
    if not state["aligned"]:
        raise Failure("the Grad-CAM heatmap is not laid exactly over the image")
    if sorted(bar["label"] for bar in state["bars"]) != sorted(classes):
        raise Failure(f"bars {state['bars']} do not name the classes {classes}")
    widths = [bar["width"] for bar in state["bars"]]
    if abs(sum(widths) - 100) > 1 or widths != sorted(widths, reverse=True):
        raise Failure(f"bar widths {widths} are not probabilities in decreasing order")
    if not state["top"] or state["bars"][0]["label"] not in state["top"]:
        raise Failure(f"the top class line {state['top']!r} does not name the longest bar")

    # Move the opacity slider up by clicking on it, as a user would.
    before = state["opacity"]
    slider = browser.evaluate("(() => { const r = document.getElementById('alpha').getBoundingClientRect();"
                              f" return {{x: r.left + {slider_at} * r.width, y: r.top + r.height / 2}}; }})()")
    browser.click(slider["x"], slider["y"])
    after = browser.wait_until(f"(() => {{ const s = {RESULT_STATE}; return s.opacity !== {before} ? "
                               f"s.opacity : null; }})()", "the overlay opacity to follow the slider", 5)
    if not (after > before and math.isclose(after, browser.evaluate("document.getElementById('alpha').value / 100"))):
        raise Failure(f"overlay opacity went from {before} to {after} after moving the slider up")

    explained, download, download_bytes = check_class_choice_and_download(browser, classes, state, download_dir)

    browser.pump(0.2)
    if browser.page_errors():
        raise Failure(f"page errors: {browser.page_errors()}")
    urls = browser.requested_urls()
    outside = [u for u in urls if urllib.parse.urlsplit(u).scheme in ("http", "https")
               and urllib.parse.urlsplit(u).hostname not in LOOPBACK_HOSTS]
    if outside:
        raise Failure(f"the page requested non-loopback hosts: {outside}")
    for route in ("api/predict", "api/gradcam"):
        if server_url + route not in urls:
            raise Failure(f"the page never called {route}; it requested {urls}")

    png = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"})["data"])
    if not png.startswith(b"\x89PNG"):
        raise Failure("the screenshot is not a PNG")
    temporary = screenshot + ".tmp"
    with open(temporary, "wb") as f:
        f.write(png)
    os.replace(temporary, screenshot)
    print(f"ok: {len(classes)} bars, top {state['top']!r}, overlay opacity {before} -> {after}, "
          f"Grad-CAM of {explained!r} downloaded as {download} ({download_bytes} bytes), "
          f"{len(urls)} requests all loopback, screenshot {screenshot} ({len(png)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scalpel", required=True, help="the scalpel binary")
    parser.add_argument("--weights", help="checkpoint to serve (default: train a tiny one)")
    parser.add_argument("--image", help="image to upload (with --weights)")
    parser.add_argument("--screenshot", help="where the screenshot goes (default: the temporary folder)")
    parser.add_argument("--size", default="1200x800", help="browser viewport, WIDTHxHEIGHT")
    parser.add_argument("--slider-at", type=float, default=0.9,
                        help="where along the opacity slider to click, 0..1 (above the initial 0.45)")
    args = parser.parse_args()
    if bool(args.weights) != bool(args.image):
        parser.error("--weights and --image go together")
    width, height = (int(v) for v in args.size.split("x"))

    chromium = find_chromium()
    if not chromium:
        print("SKIP: no Chromium found (install Debian's chromium, e.g. with `make deps`)")
        return SKIP

    workdir = tempfile.mkdtemp(prefix="scalpel_browser_")
    server = browser = None
    try:
        weights, image = (args.weights, args.image) if args.weights else tiny_model(args.scalpel, workdir)
        server = ServeProcess(args.scalpel, weights, workdir)
        browser = DevTools(chromium, workdir, width, height)
        download_dir = os.path.join(workdir, "downloads")
        os.makedirs(download_dir)
        check_page(browser, server.url, image, args.screenshot or os.path.join(workdir, "serve.png"),
                   args.slider_at, download_dir)
        browser.close()
        browser = None
        server.stop()
        server = None
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        for log in ("serve.log", "chromium.log"):  # the folder goes away below
            path = os.path.join(workdir, log)
            if os.path.exists(path):
                with open(path, errors="replace") as f:  # Chromium's D-Bus complaints are noise here
                    lines = [line for line in f if "dbus/" not in line]
                print(f"--- end of {log}:\n" + "".join(lines[-15:]), file=sys.stderr)
        return 1
    finally:
        if browser:
            browser.close()
        if server:
            server.process.kill()
            server.process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
