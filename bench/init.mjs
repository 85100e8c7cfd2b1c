#!/usr/bin/env node
// `npm run bench:init` (after `npm run build`): what a fit with `init: 'moments'` or `'kmeans'` waits for
// before its first iteration, side by side in one run. Each start has a part in TypeScript and a part that
// runs on the fit's backend (docs/ALGORITHMS.md §5.1, §5.2), timed here on the TypeScript reference and on the
// native CPU backend (all cores):
//   - moments: the moments themselves (covariance and M2, O(n·p²); T, O(n·p·k); the decomposition) in
//     TypeScript, then the EM stage with the expert slopes fixed (≤ 25 E-steps, intercept/σ² passes and gate
//     M-steps) on the backend;
//   - kmeans: k-means++ and Lloyd's iterations in TypeScript, then one M-step from the clusters on the backend.
// For scale, one EM iteration of the fit that follows (native CPU backend, all cores). Linear experts, no
// intercept, the package's default M-step solver.
// Shapes (n, d, k): (2e4, 20, 3), (1e5, 50, 4), and with --full (2e5, 100, 8) (the TypeScript stage takes
// minutes there). One run each (they take seconds to minutes); the load average is printed with the table.
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(root, 'dist', p));
const { jsBackend } = await dist('backends/js.js');
const { loadNativeBackend, nativeInfo } = await dist('backends/native.js');
const { sampleLinear } = await dist('data/samplers.js');
const { momentsInit } = await dist('algorithms/init-moments.js');
const { kmeansInit } = await dist('algorithms/init-kmeans.js');
const { computeInit } = await dist('algorithms/named-init.js');
const { resolveFitSpec } = await dist('input.js');

if (!nativeInfo().loaded) {
  console.error(`the native addon is not available (${nativeInfo().reason}): nothing to compare`);
  process.exit(1);
}
const loadBefore = loadavg()[0];
const native = loadNativeBackend('cpu');
const shapes = [[20_000, 20, 3], [100_000, 50, 4]];
if (process.argv.includes('--full')) shapes.push([200_000, 100, 8]);

const wall = (f) => {
  const t0 = performance.now();
  const out = f();
  return { ms: performance.now() - t0, out };
};
const ms = (x) => (x < 10 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : x.toFixed(0));
const relErr = (a, b) => {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
};

const rows = [];
for (const [n, d, k] of shapes) {
  const { X, y } = sampleLinear({ n, d, k, seed: 11 });
  const data = { x: X.data, n, d, y, s: null };
  const model = { experts: 'linear', symmetric: false, k, d, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false };
  const fit = resolveFitSpec({});
  const name = `(${n.toExponential(0).replace('+', '')}, ${d}, ${k})`;
  // The moments alone: the EM stage replaced by the identity.
  const moments = wall(() => momentsInit(data, model, fit, 1, (_d, _m, _f, p) => p));
  const stageJs = wall(() => jsBackend.gateOnlyEm(data, model, fit, moments.out));
  const stageNative = wall(() => native.gateOnlyEm(data, model, fit, moments.out));
  const iteration = native.fitSync({ data, model, fit: resolveFitSpec({ maxIter: 3, tol: 0 }), seed: 1, init: moments.out,
    trueParams: null }, {}).iterations;
  const perIteration = (iteration[3].elapsedMs - iteration[1].elapsedMs) / 2;
  // k-means alone: the M-step replaced by a no-op; then the whole start with its M-step on each backend.
  const clusters = wall(() => kmeansInit(data, model, fit, 1, () => new Float64Array(0)));
  const kmeansJs = wall(() => computeInit('kmeans', data, model, fit, 1, jsBackend));
  const kmeansNative = wall(() => computeInit('kmeans', data, model, fit, 1, native));
  const agreement = Math.max(relErr(stageNative.out, stageJs.out), relErr(kmeansNative.out, kmeansJs.out));
  console.log(`${name}: moments ${ms(moments.ms)} ms + EM stage js ${ms(stageJs.ms)} / native ${ms(stageNative.ms)} ms; `
    + `k-means ${ms(clusters.ms)} ms, whole kmeans start js ${ms(kmeansJs.ms)} / native ${ms(kmeansNative.ms)} ms; `
    + `fit iteration ${ms(perIteration)} ms; rel ${agreement.toExponential(1)}`);
  rows.push(`| ${name} | ${ms(moments.ms)} | ${ms(stageJs.ms)} | ${ms(stageNative.ms)} | ${ms(moments.ms + stageJs.ms)} → `
    + `${ms(moments.ms + stageNative.ms)} (${((moments.ms + stageJs.ms) / (moments.ms + stageNative.ms)).toFixed(1)}×) | `
    + `${ms(clusters.ms)} | ${ms(kmeansJs.ms)} → ${ms(kmeansNative.ms)} (${(kmeansJs.ms / kmeansNative.ms).toFixed(1)}×) | `
    + `${ms(perIteration)} | ${agreement.toExponential(1)} |`);
}

console.log(`\n${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadBefore.toFixed(2)} → ${loadavg()[0].toFixed(2)}; ms\n`);
console.log('| (n, d, k) | moments (TS) | EM stage, TS | EM stage, native | moments start, TS → native stage | k-means (TS) '
  + '| kmeans start, TS → native M-step | fit EM iteration (native) | stages\' agreement (rel) |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
