// The page `scalpel serve` answers at `/`: one self-contained file (inline CSS and script,
// no CDN, no web fonts) so it works on an offline hospital network.
#include "apps/serve/server.h"

#include <string_view>

namespace scalpel::serve {

namespace {
constexpr const char* kReportsLink = R"(<a href="/reports">Reports</a>)";
constexpr const char* kPage = R"PAGE(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>scalpel</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2630}
 header{background:#1d3557;color:#fff;padding:12px 20px;display:flex;gap:20px;align-items:center}
 header h1{font-size:20px;margin:0} header a{color:#cfe3ff}
 main{max-width:1100px;margin:0 auto;padding:16px}
 .notice{background:#fff4d6;border:1px solid #e0b84a;padding:10px 14px;border-radius:6px;font-weight:600}
 #drop{border:2px dashed #7a8a9a;border-radius:8px;padding:28px;text-align:center;background:#fff;margin:14px 0;cursor:pointer}
 #drop.over{background:#e3f0ff}
 .card{background:#fff;border-radius:8px;padding:14px;margin:12px 0;box-shadow:0 1px 3px #0002}
 .imgs{display:flex;gap:16px;flex-wrap:wrap}
 .imgs figure{margin:0}
 /* One box for every image, so a small model input (e.g. 48x48) is shown as large as the photo
    and the heatmap, laid over it in the same box, stays aligned. */
 .imgs img{width:256px;height:256px;object-fit:contain;display:block;background:#eef1f4}
 .stack{position:relative} .stack img.heat{position:absolute;left:0;top:0}
 .imgs figcaption{max-width:256px}
 .bar{display:flex;align-items:center;gap:8px;margin:3px 0;font-size:14px}
 .bar .label{width:160px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
 .bar .track{flex:1;background:#e6eaee;height:14px;border-radius:3px}
 .bar .fill{background:#457b9d;height:100%;border-radius:3px}
 .bar .pct{width:48px;text-align:right}
 .top{font-size:18px;margin:6px 0} .err{color:#b00020;font-weight:600}
 .camctl{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin:6px 0}
</style></head><body>
<header><h1>scalpel</h1><label>Model <select id="model"></select></label><a href="/reports">Reports</a></header>
<main>
<p class="notice">Decision aid, not a diagnosis. Results must be reviewed by a qualified clinician.</p>
<div id="drop">Drop image(s) here or click to choose<input id="file" type="file" accept="image/*" multiple hidden></div>
<label>Grad-CAM opacity <input id="alpha" type="range" min="0" max="100" value="45"></label>
<div id="results"></div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };

const classesOf = {};  // model name -> its class names, in index order

async function loadModels() {
  const r = await fetch("/api/models");
  for (const m of await r.json()) {
    const o = el("option", "", m.name + " (" + m.classes.length + " classes)");
    o.value = m.name; $("model").appendChild(o);
    classesOf[m.name] = m.classes;
  }
}

// `cls`: the class index Grad-CAM explains ("" or undefined: the top class).
function form(file, model, alpha, cls) {
  const f = new FormData();
  f.append("image", file); f.append("model", model);
  if (alpha !== undefined) f.append("alpha", alpha);
  if (cls !== undefined && cls !== "") f.append("class", cls);
  return f;
}

async function fetchPng(f) {
  const r = await fetch("/api/gradcam", {method: "POST", body: f});
  if (!r.ok) throw new Error("Grad-CAM: " + ((await r.json()).error || r.statusText));
  return r;
}

// The overlay as shown (the image, heatmap at the slider's opacity) as a PNG download.
function download(base, heat, name) {
  const c = document.createElement("canvas");
  c.width = base.naturalWidth; c.height = base.naturalHeight;
  const g = c.getContext("2d");
  g.drawImage(base, 0, 0);
  g.globalAlpha = parseFloat(heat.style.opacity); g.drawImage(heat, 0, 0, c.width, c.height);
  c.toBlob((blob) => {
    const a = el("a", "saved"); a.hidden = true;
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click();
  }, "image/png");
}

async function analyse(file) {
  const card = el("div", "card");
  card.appendChild(el("h3", "", file.name));
  $("results").prepend(card);
  const imgs = el("div", "imgs");
  const orig = el("figure"); const oi = el("img"); oi.src = URL.createObjectURL(file); oi.alt = "original";
  orig.append(oi, el("figcaption", "", "original"));
  imgs.appendChild(orig); card.appendChild(imgs);
  const model = $("model").value;
  try {
    const r = await fetch("/api/predict", {method: "POST", body: form(file, model)});
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || r.statusText);
    const best = j.top[0];
    card.appendChild(el("p", "top", "Top class: " + best.class + " (" + (100 * best.p).toFixed(1) + "% confidence)"));
    const names = Object.keys(j.probs).sort((a, b) => j.probs[b] - j.probs[a]);
    for (const n of names) {
      const bar = el("div", "bar"); const track = el("div", "track"); const fill = el("div", "fill");
      fill.style.width = (100 * j.probs[n]).toFixed(1) + "%"; track.appendChild(fill);
      bar.append(el("span", "label", n), track, el("span", "pct", (100 * j.probs[n]).toFixed(1) + "%"));
      card.appendChild(bar);
    }
    // alpha 1: the heatmap colours alone; alpha 0: the image itself (both at the image's size).
    const [g, v] = await Promise.all([fetchPng(form(file, model, 1)), fetchPng(form(file, model, 0))]);
    const fig = el("figure"); const stack = el("div", "stack");
    const base = el("img"); const heat = el("img", "heat");
    heat.src = URL.createObjectURL(await g.blob()); heat.alt = "Grad-CAM";
    base.src = URL.createObjectURL(await v.blob()); base.alt = "model input";
    heat.style.opacity = $("alpha").value / 100;
    stack.append(base, heat);
    const caption = el("figcaption", "", "Grad-CAM (" + (g.headers.get("X-Class") || "") + ")");
    fig.append(stack, caption);
    imgs.appendChild(fig);
    // Which class Grad-CAM explains (default the top one), and the overlay as a file.
    const pick = el("select", "camclass");
    const top = el("option", "", "top class (" + best.class + ")"); top.value = ""; pick.appendChild(top);
    (classesOf[model] || []).forEach((name, i) => { const o = el("option", "", name); o.value = i; pick.appendChild(o); });
    const label = el("label", "", "Grad-CAM explains "); label.appendChild(pick);
    const save = el("button", "download", "Download Grad-CAM PNG");
    const stem = file.name.replace(/\.[^.]*$/, "");
    let shown = g.headers.get("X-Class") || "";
    save.onclick = () => download(base, heat, stem + "_gradcam_" + shown + ".png");
    pick.onchange = async () => {
      try {
        const r = await fetchPng(form(file, model, 1, pick.value));
        shown = r.headers.get("X-Class") || "";
        heat.src = URL.createObjectURL(await r.blob());
        caption.textContent = "Grad-CAM (" + shown + ")"; caption.className = "";
      } catch (e) {
        caption.textContent = e.message; caption.className = "err";
      }
    };
    const controls = el("div", "camctl"); controls.append(label, save);
    card.appendChild(controls);
  } catch (e) {
    card.appendChild(el("p", "err", "Error: " + e.message));
  }
}

function handle(files) { for (const f of files) analyse(f); }
$("drop").onclick = () => $("file").click();
$("file").onchange = (e) => handle(e.target.files);
$("drop").ondragover = (e) => { e.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (e) => { e.preventDefault(); $("drop").classList.remove("over"); handle(e.dataTransfer.files); };
$("alpha").oninput = () => { for (const h of document.querySelectorAll("img.heat")) h.style.opacity = $("alpha").value / 100; };
loadModels();
</script></body></html>
)PAGE";
}  // namespace

std::string page_html(bool reports_link) {
  std::string page = kPage;
  if (!reports_link) page.erase(page.find(kReportsLink), std::string_view(kReportsLink).size());
  return page;
}

}  // namespace scalpel::serve
