#!/usr/bin/env node
// The GPU check of the built package (plain Node: node:test and node:assert, no node_modules; needs dist/ and
// the built .node). On a machine with a GPU: backend 'cuda' against backend 'cpu' through the package API —
// whole fits for every family and algorithm (parameters and nll/objective histories to relative 1e-9), with
// the default kernels and with the other kernel choices (unfused narrow passes, stored probabilities;
// bench/GPU.md), the restarts of one request (one upload) against their separate fits, the named starts' stages,
// evaluate / posterior / information, the estimator with backend 'cuda' — then the GPU benchmark
// (bench/gpu.mjs), with a summary table printed last. Without a GPU it reports why and exits 0 (set
// MOE_GPU_CHECK_REQUIRE=1 to make that a failure).
//   . .device/node-up.sh && node scripts/gpu-check.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fullLayout, loadNativeBackend, MixtureOfExperts, nativeInfo, resolveFitSpec, sampleLinear, sampleLogistic, sampleMultinomial, sampleSymMoLinE,
  sampleSymMoLogE,
} from '../dist/index.js';
import { envLabel, formatTable, OTHER_KERNELS, runGpuBench, withEnv } from '../bench/gpu.mjs';

const TOL = 1e-9;
const info = nativeInfo();
if (!info.cudaAvailable) {
  console.log(`gpu-check: no usable GPU here (${info.loaded ? 'the addon sees no CUDA device' : info.reason})`);
  process.exit(process.env.MOE_GPU_CHECK_REQUIRE === '1' ? 1 : 0);
}
const cuda = loadNativeBackend('cuda', { threads: 0 });
const cpu = loadNativeBackend('cpu', { threads: 0 });
const summary = [];

/** max |a − b| / max |b|. */
function relErr(a, b) {
  assert.equal(a.length, b.length, 'length mismatch');
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff === 0 ? 0 : diff / scale;
}

function fitSpec(overrides = {}) {
  return resolveFitSpec({ stepSize: 0.3, maxIter: 15, tol: 0, ...overrides });
}

const n = 4000, d = 5;
const problems = {
  linear: () => ({ ...sampleLinear({ n, d, k: 3, seed: 21 }), model: { experts: 'linear', symmetric: false, k: 3, d, nClasses: 0, noise: 'fitted', ridge: 1e-3, intercept: false } }),
  logistic: () => ({ ...sampleLogistic({ n, d, k: 2, seed: 22 }), model: { experts: 'logistic', symmetric: false, k: 2, d, nClasses: 2, noise: 'fitted', ridge: 1e-3, intercept: false } }),
  multinomial: () => ({ ...sampleMultinomial({ n, d, k: 2, nClasses: 4, seed: 23 }), model: { experts: 'multinomial', symmetric: false, k: 2, d, nClasses: 4, noise: 'fitted', ridge: 1e-3, intercept: false } }),
  'sym-linear': () => ({ ...sampleSymMoLinE({ n, d, seed: 24 }), model: { experts: 'linear', symmetric: true, k: 2, d, nClasses: 0, noise: 1, ridge: 0, intercept: false } }),
  'sym-logistic': () => ({ ...sampleSymMoLogE({ n, d, seed: 25 }), model: { experts: 'logistic', symmetric: true, k: 2, d, nClasses: 2, noise: 'fitted', ridge: 0, intercept: false } }),
};
const algorithms = {
  em: {},
  'em-newton-cg': { mstep: { solver: 'newton-cg', maxIter: 25, tol: 1e-10, cgMaxIter: 50, innerSteps: 10 } },
  'gradient-em': { algorithm: 'gradient-em' },
  gd: { algorithm: 'gd' },
  'em-minibatch': { batchSize: 900 },
};

/** Whole fits of every family × algorithm on both backends; returns the worst relative error. */
function fitParity(tag) {
  let worst = 0;
  for (const [family, make] of Object.entries(problems)) {
    const { X, y, model } = make();
    const data = { x: X.data, n, d, y, s: null };
    for (const [name, overrides] of Object.entries(algorithms)) {
      const req = { data, model, fit: fitSpec(overrides), seed: 3, init: null, trueParams: null };
      const g = cuda.fitSync(req, {});
      const c = cpu.fitSync(req, {});
      assert.equal(g.iterations.length, c.iterations.length, `${family} ${name}${tag}: iteration counts`);
      const pe = relErr(g.params, c.params);
      const he = relErr(g.iterations.flatMap((r) => [r.nll, r.objective]), c.iterations.flatMap((r) => [r.nll, r.objective]));
      console.log(`  ${family.padEnd(13)} ${name.padEnd(13)} params rel ${pe.toExponential(1)}  history rel ${he.toExponential(1)}${tag}`);
      assert.ok(pe <= TOL && he <= TOL, `${family} ${name}${tag}: params ${pe}, history ${he}`);
      worst = Math.max(worst, pe, he);
    }
  }
  return worst;
}

await test('backend cuda matches backend cpu: whole fits, every family and algorithm', () => {
  const worst = fitParity('');
  summary.push({ what: 'fit parity cuda vs cpu (25 fits), worst rel error', value: worst, unit: '', note: `tolerance ${TOL}` });
});

await test('the same with the other CUDA kernel choices', () => {
  const worst = withEnv(OTHER_KERNELS, () => fitParity(' (other kernels)'));
  summary.push({ what: 'fit parity cuda (other kernels) vs cpu (25 fits), worst rel error', value: worst, unit: '', note: envLabel(OTHER_KERNELS) });
});

await test('the restarts of one request (one upload of the data) are the fits of their starts', () => {
  // What one start's fit leaves on the device (row stores, the mini-batch order, scratch) must not change the
  // next: each restart against its own fit on a fresh backend, for every family.
  let worst = 0;
  for (const [family, make] of Object.entries(problems)) {
    const { X, y, model } = make();
    const data = { x: X.data, n, d, y, s: null };
    for (const name of ['em', 'em-minibatch', 'gd']) {
      const shared = { data, model, fit: fitSpec(algorithms[name]), trueParams: null };
      const starts = [{ seed: 4, init: null }, { seed: 3, init: null }];
      const together = cuda.fitRestartsSync({ ...shared, starts }, {});
      starts.forEach((start, r) => {
        const alone = cuda.fitSync({ ...shared, ...start }, {});
        const e = Math.max(relErr(together[r].params, alone.params),
          relErr(together[r].iterations.map((it) => it.objective), alone.iterations.map((it) => it.objective)));
        assert.ok(e <= 1e-12, `${family} ${name}, restart ${r}: ${e}`);
        worst = Math.max(worst, e);
      });
    }
  }
  console.log(`  restarts in one request vs alone: worst rel ${worst.toExponential(1)} (0 = bit for bit)`);
  summary.push({ what: 'restarts in one request vs separate fits (15 × 2), worst rel', value: worst, unit: '', note: '0 = bit for bit; tolerance 1e-12' });
});

await test('the stages of the named starts agree (moments: gate-only EM; kmeans: M-step from clusters)', () => {
  const { X, y, model } = problems.linear();
  const data = { x: X.data, n, d, y, s: null };
  const start = cpu.fitSync({ data, model, fit: fitSpec({ maxIter: 3 }), seed: 3, init: null, trueParams: null }, {}).params;
  start.fill(0, 0, fullLayout(model).coef); // the gate at zero, as the moments leave it
  const moments = relErr(cuda.gateOnlyEm(data, model, fitSpec(), start), cpu.gateOnlyEm(data, model, fitSpec(), start));
  const clusters = Uint32Array.from({ length: n }, (_, i) => (i * 7 + (i >> 3)) % model.k);
  const kmeans = relErr(cuda.startFromAssignment(data, model, fitSpec(), clusters), cpu.startFromAssignment(data, model, fitSpec(), clusters));
  console.log(`  cuda vs cpu: gate-only EM rel ${moments.toExponential(1)}, M-step from clusters rel ${kmeans.toExponential(1)}`);
  assert.ok(moments <= TOL && kmeans <= TOL, `gate-only EM ${moments}, M-step from clusters ${kmeans}`);
  summary.push({ what: 'named starts\' stages cuda vs cpu, worst rel error', value: Math.max(moments, kmeans), unit: '', note: `tolerance ${TOL}` });
});

await test('evaluate, posterior and information agree', () => {
  const { X, y, model } = problems.linear();
  const data = { x: X.data, n, d, y, s: null };
  const fit = cpu.fitSync({ data, model, fit: fitSpec(), seed: 3, init: null, trueParams: null }, {});
  const ge = cuda.evaluate(data, model, fit.params), ce = cpu.evaluate(data, model, fit.params);
  assert.ok(Math.abs(ge.nll - ce.nll) <= TOL * Math.abs(ce.nll), 'nll');
  const pe = relErr(cuda.posterior(data, model, fit.params), cpu.posterior(data, model, fit.params));
  assert.ok(pe <= TOL, `posterior ${pe}`);
  const gi = cuda.information(data, model, fit.params, { method: 'dense', steps: 60 });
  const ci = cpu.information(data, model, fit.params, { method: 'dense', steps: 60 });
  const ie = relErr(Float64Array.from(gi.eigenvalues), Float64Array.from(ci.eigenvalues));
  assert.ok(ie <= 1e-8, `MIM eigenvalues ${ie}`);
  summary.push({ what: 'evaluate/posterior/MIM cuda vs cpu, worst rel error', value: Math.max(pe, ie), unit: '', note: '' });
});

await test("the estimator runs with backend: 'cuda' and matches backend 'cpu'", async () => {
  const { X, y } = sampleLinear({ n: 3000, d: 4, k: 2, seed: 31 });
  const opts = { experts: 'linear', k: 2, maxIter: 20, seed: 5 };
  const onGpu = new MixtureOfExperts({ ...opts, backend: 'cuda' });
  const onCpu = new MixtureOfExperts({ ...opts, backend: 'cpu' });
  const hg = await onGpu.fit(X, y);
  const hc = await onCpu.fit(X, y);
  assert.equal(hg.backend, 'cuda');
  assert.equal(hg.iterations.length, hc.iterations.length);
  const e = Math.abs(hg.iterations.at(-1).nll - hc.iterations.at(-1).nll) / Math.abs(hc.iterations.at(-1).nll);
  assert.ok(e <= TOL, `final nll ${e}`);
});

const rows = await runGpuBench({ log: (s) => console.log(`  ${s}`) });
// node:test prints its report when the event loop drains; print the table after it.
process.on('exit', () => console.log(`\ndevice via ${info.from}\n${formatTable([...summary, ...rows])}`));
