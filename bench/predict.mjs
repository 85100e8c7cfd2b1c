#!/usr/bin/env node
// `npm run bench:predict` (after `npm run build`): predictions (`predict` / `predictProba`, i.e.
// ComputeBackend.predict) by the TypeScript reference and by the native CPU backend on 1 thread and on all
// cores, side by side in one run, with the floor of the work, and the estimator's preparation of X (its
// NaN/Inf scan and the intercept column) in TypeScript and in the addon:
//   - linear experts at (n, d, k) ∈ {(1e5, 50, 4), (1e6, 100, 8)}: the mixture mean;
//   - the Fashion-MNIST shape (60000×784, 2 multinomial experts, 10 classes): class probabilities.
// A prediction is one pass over X: projections A = X·Pᵀ (q = k + k·rows per expert rows of P, 2·n·d·q
// FLOPs) and a few exp per row, reading 8·n·d bytes of X once. Floor = max(bytes / copy bandwidth, FLOPs /
// the native weighted-Gram kernel's rate), both measured in this run. Medians of `reps` calls after a warm-up.
// Options: --quick (small sizes, for a smoke run).
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(root, 'dist', p));
const { jsBackend } = await dist('backends/js.js');
const { loadNativeBackend, loadNativeBinding, nativeInfo } = await dist('backends/native.js');
const { sampleLinear, sampleMultinomial } = await dist('data/samplers.js');
const { readableToParams } = await dist('models/layout.js');
const { firstNonFinite, withIntercept } = await dist('input.js');
const { scanNonFinite, withInterceptNative } = await dist('backends/native.js');

const quick = process.argv.includes('--quick');
const native = nativeInfo();
if (!native.loaded) {
  console.error(`the native addon is not available (${native.reason}): nothing to compare`);
  process.exit(1);
}
const loadBefore = loadavg()[0];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => (x < 10 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : x.toFixed(0));

function time(f, reps) {
  f();
  const times = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  return median(times);
}

const base = { symmetric: false, noise: 'fitted', ridge: 0, intercept: false };
function linearCase(n, d, k) {
  const { X, params } = sampleLinear({ n, d, k, seed: 1 });
  const model = { ...base, experts: 'linear', k, d, nClasses: 0 };
  return { name: `linear (${n.toExponential(0).replace('+', '')}, ${d}, ${k})`, n, d, q: 2 * k, x: X.data, model,
    params: readableToParams(model, params) };
}
function fashionCase(n) {
  const { X, params } = sampleMultinomial({ n, d: 784, k: 2, nClasses: 10, seed: 1, coefScale: 0.05, gateScale: 0.05 });
  const model = { ...base, experts: 'multinomial', k: 2, d: 784, nClasses: 10 };
  return { name: `Fashion-MNIST shape (${n}×784, k=2, C=10)`, n, d: 784, q: 2 + 2 * 10, x: X.data, model,
    params: readableToParams(model, params) };
}

// Copy bandwidth (read + write of a large array) and the native Gram kernel's rate: the two ceilings.
function copyBandwidth() {
  const len = 1 << 25;
  const src = new Float64Array(len).fill(1);
  const dst = new Float64Array(len);
  return (2 * 8 * len) / (time(() => dst.set(src), 5) / 1e3) / 1e9;
}
const bandwidth = copyBandwidth();
const gram = loadNativeBinding().benchWeightedGram({ n: 100000, d: 50, m: 4, reps: 3 });
const gflops = gram.flops / gram.medianSeconds / 1e9;

const plans = quick
  ? [{ make: () => linearCase(2e4, 50, 4), reps: 3, jsReps: 2 }]
  : [{ make: () => linearCase(1e5, 50, 4), reps: 7, jsReps: 3 },
    { make: () => linearCase(1e6, 100, 8), reps: 5, jsReps: 1 },
    { make: () => fashionCase(60000), reps: 5, jsReps: 1 }];

const one = loadNativeBackend('cpu', { threads: 1 });
const all = loadNativeBackend('cpu');
const rows = [];
for (const plan of plans) {
  const c = plan.make();
  process.stdout.write(`${c.name} ...`);
  const predict = (b) => () => b.predict(c.x, c.n, c.model, c.params);
  const js = time(predict(jsBackend), plan.jsReps);
  const cpu1 = time(predict(one), plan.reps);
  const cpuAll = time(predict(all), plan.reps);
  const bytes = 8 * c.n * c.d;
  const flops = 2 * c.n * c.d * c.q;
  const floor = Math.max(bytes / (bandwidth * 1e9), flops / (gflops * 1e9)) * 1e3;
  rows.push({ ...c, js, cpu1, cpuAll, floor });
  console.log(` reference ${ms(js)} ms, native ${ms(cpuAll)} ms`);
}

const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
console.log(`\n${machine}; load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end`);
console.log(`ceilings: copy ${bandwidth.toFixed(1)} GB/s, native weighted Gram ${gflops.toFixed(1)} GFLOP/s\n`);
console.log('| case | reference (ms) | native, 1 thread (ms) | native, all cores (ms) | reference / native | floor (ms) | native / floor |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.name} | ${ms(r.js)} | ${ms(r.cpu1)} | ${ms(r.cpuAll)} | ${(r.js / r.cpuAll).toFixed(1)}× | `
    + `${ms(r.floor)} | ${(r.cpuAll / r.floor).toFixed(1)}× |`);
}

// The estimator's preparation of X at 1e6 × 100 (2e4 × 100 with --quick): TypeScript on one thread against the
// addon on all cores (src/backends/native.ts: the estimator uses the addon from 2^20 values on).
const prep = { rows: quick ? 20000 : 1000000, cols: 100 };
const X = new Float64Array(prep.rows * prep.cols).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
const m = { data: X, rows: prep.rows, cols: prep.cols };
const scanTs = time(() => firstNonFinite(X), 7);
const scanNative = time(() => scanNonFinite(X), 7);
const copyTs = time(() => withIntercept(m, true), 5);
const copyNative = time(() => withInterceptNative(m), 5);
console.log(`\nThe estimator's preparation of X (${prep.rows} × ${prep.cols}):\n`);
console.log('| step | TypeScript, 1 thread (ms) | addon, all cores (ms) | ratio |');
console.log('|---|---:|---:|---:|');
console.log(`| NaN/Inf scan | ${ms(scanTs)} | ${ms(scanNative)} | ${(scanTs / scanNative).toFixed(1)}× |`);
console.log(`| intercept column (a copy) | ${ms(copyTs)} | ${ms(copyNative)} | ${(copyTs / copyNative).toFixed(1)}× |`);
