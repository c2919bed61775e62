#!/usr/bin/env node
// Runs an ONNX model with ONNX Runtime (npm onnxruntime-node, found through NODE_PATH) on one
// float32 .npy input and writes its first output as a float32 .npy: the reference the ONNX
// import tests compare scalpel with.
//
//   NODE_PATH=build/reference/node_modules node tests/reference/ort_run.js model.onnx in.npy out.npy
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const bytes = fs.readFileSync(path);
  if (bytes.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = bytes[6];
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.toString('latin1', start, start + headerLength);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) {
    throw new Error(`${path}: expected a C-order float32 array, header ${header}`);
  }
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const dataStart = start + headerLength;
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + dataStart, bytes.byteOffset + bytes.length));
  return {data, shape};
}

function writeNpy(path, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const body = Buffer.from(new Float32Array(data).buffer);
  fs.writeFileSync(path, Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]));
}

async function main() {
  const [modelPath, inputPath, outputPath] = process.argv.slice(2);
  if (!outputPath) throw new Error('usage: ort_run.js MODEL.onnx INPUT.npy OUTPUT.npy');
  const input = readNpy(inputPath);
  const session = await ort.InferenceSession.create(modelPath, {graphOptimizationLevel: 'disabled'});
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', input.data, input.shape)};
  const results = await session.run(feeds);
  const output = results[session.outputNames[0]];
  writeNpy(outputPath, output.data, output.dims);
}

main().catch(error => {
  console.error(`error: ${error.message}`);
  process.exit(1);
});
