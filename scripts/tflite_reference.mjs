// TFLite's own kernels on one image, for checking scalpel's TFLite importer (docs/tflite.md).
// Runs the model with LiteRT.js (npm @litertjs/core 2.5.3: TFLite compiled to WebAssembly,
// XNNPACK CPU kernels) under Node, with the browser loader shimmed:
//
//   npm install --ignore-scripts --prefix /tmp/litert @litertjs/core@2.5.3
//   NODE_PATH=/tmp/litert/node_modules node scripts/tflite_reference.mjs MODEL.tflite IMAGE.rgb [TOPK]
//
// IMAGE.rgb: the model's input as raw bytes, H x W x 3 uint8 (NHWC, square), already resized.
// Prints the top classes as "index raw_output raw_output/256" (a uint8 softmax output has
// scale 1/256).
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import {createRequire} from 'node:module';
import {pathToFileURL} from 'node:url';

const require = createRequire(import.meta.url);
const wasmDir = path.join(path.dirname(require.resolve('@litertjs/core')), '..', 'wasm');
// The Emscripten loader expects a browser worker: give it importScripts, self and require.
globalThis.self = globalThis;
globalThis.require = require;
globalThis.__dirname = wasmDir;
globalThis.__filename = path.join(wasmDir, 'loader.js');
globalThis.importScripts = (url) => vm.runInThisContext(fs.readFileSync(url.toString(), 'utf8'));

const [modelPath, imagePath, topk = '5'] = process.argv.slice(2);
if (!modelPath || !imagePath) {
  console.error('usage: node scripts/tflite_reference.mjs MODEL.tflite IMAGE.rgb [TOPK]');
  process.exit(1);
}
// Resolved through NODE_PATH (CommonJS resolution; ESM import() ignores NODE_PATH).
const core = await import(pathToFileURL(require.resolve('@litertjs/core')).href);
await core.loadLiteRt(wasmDir + '/');
const model = await core.loadAndCompile(new Uint8Array(fs.readFileSync(modelPath)), {accelerator: 'wasm'});
const pixels = new Uint8Array(fs.readFileSync(imagePath));
const side = Math.round(Math.sqrt(pixels.length / 3));
const outputs = await model.run(new core.Tensor(pixels, [1, side, side, 3]));
const scores = outputs[0].toTypedArray();
const order = [...scores.keys()].sort((a, b) => scores[b] - scores[a]).slice(0, Number(topk));
for (const i of order) console.log(`${i} ${scores[i]} ${(scores[i] / 256).toFixed(4)}`);
