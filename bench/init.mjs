#!/usr/bin/env node
// `npm run bench:init` (after `npm run build`): what a fit with `init: 'moments'` or `'kmeans'` waits for
// before its first iteration, side by side in one run. The stages of each start that read every row many
// times run on the fit's backend (docs/ALGORITHMS.md §5.1, §5.2), timed here on the TypeScript reference and
// on the native CPU backend (all cores):
//   - moments: the moments (their data passes, covariance and M2 sums, O(n·p²), on the backend; T, O(n·p·k),
//     and the decomposition in TypeScript), then the EM stage with the expert slopes fixed (≤ 25 E-steps,
//     intercept/σ² passes and gate M-steps) on the backend;
//   - kmeans: the clusters (k-means++ and Lloyd's iterations; the native backends compute them on the CPU's
//     threads), then one M-step from them on the backend.
// For scale, one EM iteration of the fit that follows (native CPU backend, all cores). Linear experts, no
// intercept, the package's default M-step solver.
// Shapes (n, d, k): (2e4, 20, 3), (1e5, 50, 4), and with --full (3e5, 50, 4) (the TypeScript stage takes
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
const { resolveFitSpec } = await dist('input.js');

if (!nativeInfo().loaded) {
  console.error(`the native addon is not available (${nativeInfo().reason}): nothing to compare`);
  process.exit(1);
}
const loadBefore = loadavg()[0];
const native = loadNativeBackend('cpu');
const shapes = [[20_000, 20, 3], [100_000, 50, 4]];
if (process.argv.includes('--full')) shapes.push([300_000, 50, 4]);

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
  // The moments alone (their data passes in TypeScript, then on the native backend): the EM stage replaced by
  // the identity.
  const moments = wall(() => momentsInit(data, model, fit, 1, { momentSums: (dd, mm) => jsBackend.momentSums(dd, mm), gateOnlyEm: (_d, _m, _f, p) => p }));
  const momentsNative = wall(() => momentsInit(data, model, fit, 1, {
    momentSums: (dd, mm) => native.momentSums(dd, mm), gateOnlyEm: (_d, _m, _f, p) => p }));
  const stageJs = wall(() => jsBackend.gateOnlyEm(data, model, fit, moments.out));
  const stageNative = wall(() => native.gateOnlyEm(data, model, fit, moments.out));
  const iteration = native.fitSync({ data, model, fit: resolveFitSpec({ maxIter: 3, tol: 0 }), seed: 1, init: moments.out,
    trueParams: null }, {}).iterations;
  const perIteration = (iteration[3].elapsedMs - iteration[1].elapsedMs) / 2;
  // k-means, then the M-step from its clusters, on each backend.
  const clustersJs = wall(() => jsBackend.kmeansClusters(data, model, 1));
  const clustersNative = wall(() => native.kmeansClusters(data, model, 1));
  const moved = clustersNative.out.reduce((acc, j, i) => acc + (j === clustersJs.out[i] ? 0 : 1), 0);
  const mstepJs = wall(() => jsBackend.startFromAssignment(data, model, fit, clustersJs.out));
  const mstepNative = wall(() => native.startFromAssignment(data, model, fit, clustersJs.out));
  const agreement = Math.max(relErr(stageNative.out, stageJs.out), relErr(mstepNative.out, mstepJs.out));
  const kmeansJs = clustersJs.ms + mstepJs.ms, kmeansNative = clustersNative.ms + mstepNative.ms;
  console.log(`${name}: moments js ${ms(moments.ms)} / native ${ms(momentsNative.ms)} ms, EM stage js ${ms(stageJs.ms)} / native ${ms(stageNative.ms)} ms; `
    + `k-means js ${ms(clustersJs.ms)} / native ${ms(clustersNative.ms)} ms (${moved} rows clustered differently), `
    + `M-step js ${ms(mstepJs.ms)} / native ${ms(mstepNative.ms)} ms; fit iteration ${ms(perIteration)} ms; rel ${agreement.toExponential(1)}`);
  rows.push(`| ${name} | ${ms(moments.ms)} + ${ms(stageJs.ms)} → ${ms(momentsNative.ms)} + ${ms(stageNative.ms)} `
    + `| ${((moments.ms + stageJs.ms) / (momentsNative.ms + stageNative.ms)).toFixed(1)}× `
    + `| ${ms(clustersJs.ms)} + ${ms(mstepJs.ms)} → ${ms(clustersNative.ms)} + ${ms(mstepNative.ms)} `
    + `| ${(kmeansJs / kmeansNative).toFixed(1)}× | ${ms(perIteration)} | ${agreement.toExponential(1)}, ${moved} |`);
}

console.log(`\n${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadBefore.toFixed(2)} → ${loadavg()[0].toFixed(2)}; ms\n`);
console.log('| (n, d, k) | moments start: moments + EM stage, TS → native | speed-up '
  + '| kmeans start: k-means + M-step, TS → native | speed-up | fit EM iteration (native) '
  + '| agreement of the stages (rel), rows clustered differently |');
console.log('|---|---:|---:|---:|---:|---:|---|');
for (const r of rows) console.log(r);
