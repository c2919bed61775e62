#!/usr/bin/env node
// Writes small TF.js layers models with random weights (seeded) that exercise every Keras layer
// scalpel's importer reads, for tests/import/test_tfjs_reference.cpp:
//
//   node tfjs_make_models.js OUT_DIR     -> OUT_DIR/<name>/model.json + weights.bin
//
// convs:  functional, odd input 17x19x3: TF "same" padding with strides 2 (asymmetric), dilation,
//         depthwise with a multiplier, separable, transposed conv, cropping, zero padding,
//         upsampling, pooling (same/valid), merges, BatchNormalization without scale/center
// dense:  sequential, Rescaling, Flatten of a channels-last map into Dense, BatchNormalization
//         of features, Reshape back into an image
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function convs() {
  const L = tf.layers;
  const input = tf.input({ shape: [17, 19, 3], name: 'image' });
  let x = L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c1' }).apply(input);
  x = L.batchNormalization({ name: 'bn1', epsilon: 0.001 }).apply(x);
  x = L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, name: 'dw' }).apply(x);
  x = L.reLU({ maxValue: 6, name: 'relu6' }).apply(x);
  x = L.separableConv2d({ filters: 12, kernelSize: 3, padding: 'same', name: 'sep' }).apply(x);
  x = L.leakyReLU({ alpha: 0.2, name: 'leaky' }).apply(x);
  x = L.conv2dTranspose({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', name: 'deconv' }).apply(x);
  x = L.cropping2D({ cropping: [[1, 0], [0, 2]], name: 'crop' }).apply(x);
  x = L.zeroPadding2d({ padding: [[0, 1], [2, 0]], name: 'zpad' }).apply(x);
  x = L.upSampling2d({ size: [2, 2], name: 'up' }).apply(x);
  x = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'maxpool' }).apply(x);
  x = L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avgpool' }).apply(x);
  const a = L.conv2d({ filters: 8, kernelSize: 1, activation: 'hardSigmoid', name: 'branch_a' }).apply(x);
  const b = L.conv2d({ filters: 8, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'swish', name: 'branch_b' })
    .apply(x);
  const m = L.multiply({ name: 'mul' }).apply([a, b]);
  const s = L.add({ name: 'add' }).apply([a, m]);
  const mx = L.maximum({ name: 'max' }).apply([s, b]);
  const mn = L.minimum({ name: 'min' }).apply([mx, m]);
  const av = L.average({ name: 'avg' }).apply([mn, a]);
  let y = L.concatenate({ axis: -1, name: 'cat' }).apply([av, s, x]);
  y = L.batchNormalization({ scale: false, center: false, name: 'bn_plain' }).apply(y);
  const pooled = L.averagePooling2d({ poolSize: 2, padding: 'valid', name: 'avg_valid' }).apply(y);
  const g1 = L.globalAveragePooling2d({ name: 'gap' }).apply(pooled);
  const g2 = L.globalMaxPooling2d({ name: 'gmp' }).apply(y);
  let z = L.concatenate({ name: 'heads' }).apply([g1, g2]);
  z = L.activation({ activation: 'tanh', name: 'tanh' }).apply(z);
  z = L.dense({ units: 7, activation: 'softmax', name: 'logits' }).apply(z);
  return tf.model({ inputs: input, outputs: z, name: 'convs' });
}

function dense() {
  const L = tf.layers;
  const model = tf.sequential({ name: 'dense' });
  model.add(L.rescaling({ inputShape: [6, 5, 2], scale: 0.5, offset: -0.25, name: 'rescale' }));
  model.add(L.conv2d({ filters: 3, kernelSize: 3, activation: 'elu', name: 'conv' }));
  model.add(L.flatten({ name: 'flat' }));
  model.add(L.dense({ units: 16, activation: 'sigmoid', name: 'fc1' }));
  model.add(L.batchNormalization({ name: 'bn_fc' }));
  model.add(L.dropout({ rate: 0.3, name: 'drop' }));
  model.add(L.reshape({ targetShape: [4, 4, 1], name: 'reshape' }));
  model.add(L.conv2d({ filters: 2, kernelSize: 2, padding: 'same', activation: 'relu', name: 'conv2' }));
  model.add(L.flatten({ name: 'flat2' }));
  model.add(L.dense({ units: 3, name: 'fc2' }));
  model.add(L.softmax({ name: 'probs' }));
  return model;
}

// Deterministic weights: BatchNormalization statistics non-trivial, variances positive.
function randomize(model, seed) {
  let s = seed;
  for (const layer of model.layers) {
    const values = layer.getWeights().map((w) => {
      s += 1;
      const name = w.name || '';
      const lo = /variance/.test(name) ? 0.5 : -0.6;
      const hi = /variance/.test(name) ? 1.5 : 0.6;
      return tf.randomUniform(w.shape, lo, hi, 'float32', s);
    });
    const names = layer.weights.map((w) => w.originalName);
    layer.setWeights(values.map((v, i) => (/moving_variance/.test(names[i]) ? tf.abs(v).add(0.5) : v)));
  }
}

async function save(model, dir) {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(artifacts.weightData));
    const json = {
      format: 'layers-model',
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

async function main() {
  const out = process.argv[2];
  if (!out) throw new Error('usage: tfjs_make_models.js OUT_DIR');
  await tf.setBackend('cpu');
  const models = { convs: convs(), dense: dense() };
  let seed = 1;
  for (const [name, model] of Object.entries(models)) {
    randomize(model, 1000 * seed++);
    await save(model, path.join(out, name));
  }
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
