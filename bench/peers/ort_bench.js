#!/usr/bin/env node
// ONNX Runtime peer for bench/compare.sh: best-of-N inference times (ms) of the ONNX models
// torch_bench.py --export wrote. Usage: node ort_bench.js DIR models batches size iters
// Prints one JSON object per line, as torch_bench.py. ORT_SPIN=0 turns off the spinning of
// ORT's thread pool (what OMP_WAIT_POLICY=PASSIVE does for OpenMP): fairer on a loaded machine.
'use strict';
const ort = require('onnxruntime-node');

function randomInput(batch, size) {
  const data = new Float32Array(batch * 3 * size * size);
  for (let i = 0; i < data.length; ++i) data[i] = Math.random() * 2 - 1;
  return new ort.Tensor('float32', data, [batch, 3, size, size]);
}

async function main() {
  const [dir, models = 'resnet50,mobilenet_v2,efficientnet_b0,densenet121', batches = '1,8', size = '224', iters = '5'] =
    process.argv.slice(2);
  if (!dir) throw new Error('usage: ort_bench.js ONNX_DIR [models] [batches] [size] [iters]');
  for (const model of models.split(',')) {
    const session = await ort.InferenceSession.create(`${dir}/${model}.onnx`, {
      intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
      ...(process.env.ORT_SPIN === '0' ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    });
    for (const batch of batches.split(',').map(Number)) {
      const feeds = { input: randomInput(batch, Number(size)) };
      for (let i = 0; i < 2; ++i) await session.run(feeds);  // warm-up
      let best = Infinity;
      for (let i = 0; i < Number(iters); ++i) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
      }
      console.log(JSON.stringify({
        peer: 'onnxruntime', model, batch, mode: 'inference', ms: best, variant: `ort ${ort.env.versions.common}${process.env.ORT_SPIN === '0' ? ' no spinning' : ''}`,
        // Peak RSS (KiB), as ours and torch_bench.py report it; current RSS under-reports.
        rss_mb: process.resourceUsage().maxRSS / 1024, rss_now_mb: process.memoryUsage().rss / 1048576,
      }));
    }
    await session.release();
  }
}

main().catch((e) => { console.error(`ort_bench.js: ${e.message}`); process.exit(1); });
