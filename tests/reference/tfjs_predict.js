#!/usr/bin/env node
// Reference outputs of @tensorflow/tfjs 4.22 (CPU backend) for scalpel's TF.js / Keras import
// tests (tests/import/test_tfjs_reference.cpp). Offline: the modules come from
// `make reference` (npm install --ignore-scripts into build/reference), found through NODE_PATH.
//
//   node tfjs_predict.js --model model.json --input x.npy --output y.npy
//        [--logits] [--resize H W] [--scale S] [--save-input z.npy]
//
// --model     a TF.js layers model.json; its shards are read from beside it (each group's
//             paths concatenated, groups in manifest order), loaded with tf.io.fromMemory
// --input     float32 .npy, NHWC (channels last, as the model takes it)
// --output    float32 .npy of the model's output
// --logits    replaces the last layer's softmax activation by linear (outputs pre-softmax)
// --resize    tf.image.resizeBilinear(x, [H, W], alignCorners = true) on the input first
// --scale     multiplies the (resized) input by S
// --save-input  the input as the model received it (after --resize / --scale), float32 NHWC
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${file}: expected float32 ('<f4'), header ${header}`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order is not read`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s.length)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(start + 4 * i);
  return tf.tensor(data, shape, 'float32');
}

function writeNpy(file, tensor) {
  const data = tensor.dataSync();
  const shape = tensor.shape;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(tmp, file);
}

// The output layer's config (Sequential: the last layer; Functional: the output_layers one).
function outputLayer(config) {
  const c = config.config;
  const layers = Array.isArray(c) ? c : c.layers;
  if (config.class_name === 'Sequential') return layers[layers.length - 1];
  const name = c.output_layers[0][0];
  return layers.find((l) => l.name === name || (l.config && l.config.name === name));
}

async function loadModel(modelJson, logits) {
  const json = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const topology = json.modelTopology;
  if (logits) {
    const modelConfig = topology.model_config || topology;
    const last = outputLayer(modelConfig);
    if (last.class_name === 'Activation' || last.class_name === 'Softmax') {
      last.class_name = 'Activation';
      last.config = { name: last.config.name, activation: 'linear' };
    } else {
      last.config.activation = 'linear';
    }
  }
  const specs = [];
  const parts = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) parts.push(fs.readFileSync(path.join(path.dirname(modelJson), p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(parts);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs: specs, weightData }));
}

function parseArgs(argv) {
  const args = { logits: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--model') args.model = argv[++i];
    else if (a === '--input') args.input = argv[++i];
    else if (a === '--output') args.output = argv[++i];
    else if (a === '--logits') args.logits = true;
    else if (a === '--resize') args.resize = [Number(argv[++i]), Number(argv[++i])];
    else if (a === '--scale') args.scale = Number(argv[++i]);
    else if (a === '--save-input') args.saveInput = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.model || !args.input || !args.output) throw new Error('--model, --input and --output are required');
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend('cpu');
  const model = await loadModel(args.model, args.logits);
  let x = readNpy(args.input);
  if (args.resize) x = tf.image.resizeBilinear(x, args.resize, true);
  if (args.scale !== undefined) x = tf.mul(x, args.scale);
  if (args.saveInput) writeNpy(args.saveInput, x);
  const y = model.predict(x);
  writeNpy(args.output, y);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
