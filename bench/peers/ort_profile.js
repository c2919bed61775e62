#!/usr/bin/env node
// ONNX Runtime's own time per node kind, to set beside `bench_models --profile`: where the peer
// spends its time layer by layer. Usage: node ort_profile.js MODEL.onnx [batch] [runs] [size]
// Prints one line per (op, kernel, input plane) with ms per run, then the total.
//
// onnxruntime-node has no profiling switch (its startProfiling/endProfiling are empty), but ORT
// reads session options from the model's metadata under the key "ort_config" when the
// environment has ORT_LOAD_CONFIG_FROM_MODEL=1. This copy of the model gets that entry (a
// ModelProto metadata_props field appended to the file: protobuf fields may come in any
// order), and this script re-runs itself with the variable set, in a scratch folder: ORT writes
// the profile (Chrome trace JSON, onnxruntime_profile_*.json) into the working folder when the
// session is released (the config's profile_file_prefix is not honoured). Profiling adds a
// little per node: compare kinds, not the total, with our figures.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

function varint(n) {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return Buffer.from(out);
}
const field = (number, payload) => Buffer.concat([varint(number * 8 + 2), varint(payload.length), payload]);

async function profile(model, batch, runs, size, dir) {
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
  });
  const data = new Float32Array(batch * 3 * size * size).map(() => Math.random() * 2 - 1);
  const feeds = { input: new ort.Tensor('float32', data, [batch, 3, size, size]) };
  for (let i = 0; i < runs + 2; ++i) await session.run(feeds);  // the first 2 are left out below
  await session.release();
  const trace = fs.readdirSync(dir).find((f) => f.startsWith('onnxruntime_profile') && f.endsWith('.json'));
  if (!trace) throw new Error(`ONNX Runtime wrote no profile in ${dir}`);
  const events = JSON.parse(fs.readFileSync(path.join(dir, trace), 'utf8'));
  const starts = events.filter((e) => e.name === 'model_run').map((e) => e.ts).sort((a, b) => a - b);
  const from = starts[2];
  const kinds = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
    const a = e.args, inputs = a.input_type_shape || [];
    const x = inputs[0] && inputs[0].float, w = inputs[1] && inputs[1].float;
    let kind = a.op_name;
    if (kind.includes('Conv') && x && w && x.length === 4)
      kind += ` ${w[2]}x${w[3]}${w[1] === 1 && w[0] > 1 ? ' depthwise' : ''} @${x[2]}x${x[3]}`;
    kinds.set(kind, (kinds.get(kind) || 0) + e.dur / 1000 / runs);
  }
  let total = 0;
  for (const [kind, ms] of [...kinds].sort((p, q) => q[1] - p[1])) {
    console.log(`${kind.padEnd(40)} ${ms.toFixed(3)} ms`);
    total += ms;
  }
  console.log(`${'total'.padEnd(40)} ${total.toFixed(3)} ms per run (${runs} runs, batch ${batch})`);
}

async function main() {
  const [model, batch = '1', runs = '20', size = '224'] = process.argv.slice(2);
  if (!model) throw new Error('usage: ort_profile.js MODEL.onnx [batch] [runs] [size]');
  if (process.env.ORT_PROFILE_DIR) {
    return profile(model, Number(batch), Number(runs), Number(size), process.env.ORT_PROFILE_DIR);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
  try {
    const config = JSON.stringify({ session_options: { enable_profiling: 1 } });
    const copy = path.join(dir, path.basename(model));
    fs.writeFileSync(copy, Buffer.concat([fs.readFileSync(model),
      field(14, Buffer.concat([field(1, Buffer.from('ort_config')), field(2, Buffer.from(config))]))]));
    const child = spawnSync(process.execPath, [__filename, copy, batch, runs, size], {
      cwd: dir, stdio: 'inherit', env: { ...process.env, ORT_LOAD_CONFIG_FROM_MODEL: '1', ORT_PROFILE_DIR: dir },
    });
    if (child.status !== 0) process.exitCode = child.status || 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(`ort_profile.js: ${e.message}`); process.exit(1); });
