#!/usr/bin/env node
// `npm run bench` (after `npm run build`): the TypeScript reference and the native CPU backend side by side
// in one run, on the same data and the same starting parameters:
//   - per E-step, per M-step and per full EM iteration, for linear experts at (n, d, k) ∈ {(1e4, 10, 2),
//     (1e5, 50, 4), (1e6, 50, 8)} and the Fashion-MNIST shape (60000×784, 2 multinomial experts, 10 classes;
//     synthetic data of that shape when the dataset is not installed);
//   - moe-core's weighted-Gram kernel in GFLOP/s next to OpenBLAS DGEMM at the same shape (when installed);
//   - the floor of one EM iteration at (1e5, 50, 4) from its FLOPs and bytes.
// Method: an E-step is timed as `evaluate` (the same fused pass over the rows the E-step makes); an EM
// iteration as the difference of consecutive `elapsedMs` in the fit history (M-step + the E-step after it),
// from fixed starting parameters with tol = 0; the M-step as iteration − E-step. Medians throughout.
// Options: --quick (small sizes, for a smoke run), --write (write bench/RESULTS.md), --json FILE,
// --fashion-reference (also time one reference EM iteration at the Fashion-MNIST shape: many minutes).
import { execSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(root, 'dist', p));
const { jsBackend } = await dist('backends/js.js');
const { loadNativeBackend, loadNativeBinding, nativeInfo } = await dist('backends/native.js');
const { resolveFitSpec } = await dist('input.js');
const { sampleLinear, sampleMultinomial } = await dist('data/samplers.js');
const { loadFashionMnist, alterFashionMnist, DEFAULT_FASHION_MNIST_DIR } = await dist('data/fashion-mnist.js');
const { weightedGrams } = await dist('linalg/gram.js');
const loadBefore = loadavg()[0];

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const write = argv.includes('--write');
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : join(root, 'bench', 'out', 'results.json');

const native = nativeInfo();
if (!native.loaded) console.warn(`native backend unavailable (${native.reason}): timing the reference only`);
const cpu = native.loaded ? loadNativeBackend('cpu') : null;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => (x === null ? '—' : x < 10 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : x.toFixed(0));
const ratio = (a, b) => (a === null || b === null ? '—' : `${(a / b).toFixed(1)}×`);

function fitSpec(maxIter, mstep = {}) {
  return resolveFitSpec({ maxIter, tol: 0, mstep });
}

/** Median E-step (ms) over `reps` evaluate calls, after one warm-up. */
function timeEStep(backend, c, params, reps) {
  backend.evaluate(c.data, c.model, params);
  const times = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    backend.evaluate(c.data, c.model, params);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Median EM iteration (ms) over `iters` iterations from `params`. */
function timeIteration(backend, c, params, iters) {
  const result = backend.fitSync({ data: c.data, model: c.model, fit: fitSpec(iters, c.mstep), seed: 0, init: params, trueParams: null }, {});
  const rec = result.iterations;
  const diffs = [];
  for (let t = 1; t < rec.length; t++) diffs.push(rec[t].elapsedMs - rec[t - 1].elapsedMs);
  return median(diffs);
}

function linearCase(n, d, k) {
  const { X, y } = sampleLinear({ n, d, k, seed: 1 });
  return {
    name: `linear (${n.toExponential(0).replace('+', '')}, ${d}, ${k})`, n, d, k,
    data: { x: X.data, n, d, y, s: null },
    model: { experts: 'linear', symmetric: false, k, d, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false },
  };
}

function fashionCase(rows) {
  let X;
  let y;
  let source;
  if (existsSync(join(DEFAULT_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    const altered = alterFashionMnist(loadFashionMnist({ splits: ['train'], limit: rows }).train, 0);
    ({ X, y } = altered);
    source = 'Fashion-MNIST (altered, MATH §6)';
  } else {
    ({ X, y } = sampleMultinomial({ n: rows, d: 784, k: 2, nClasses: 10, seed: 1, coefScale: 0.05, gateScale: 0.05 }));
    source = 'synthetic data of the Fashion-MNIST shape';
  }
  const d = X.cols;
  return {
    name: `Fashion-MNIST shape (${X.rows}×${d}, k=2, C=10)`, n: X.rows, d, k: 2, source,
    // Newton-CG capped at 2 outer × 10 CG iterations per block: with the defaults (25 × 50) one EM iteration
    // is thousands of passes over X and takes many minutes even natively on this machine.
    mstep: { solver: 'newton-cg', maxIter: 2, cgMaxIter: 10 },
    data: { x: X.data, n: X.rows, d, y, s: null },
    model: { experts: 'multinomial', symmetric: false, k: 2, d, nClasses: 10, noise: 'fitted', ridge: 1, intercept: false },
  };
}

/** The first `rows` rows of a case (the reference is timed on a subsample where a full iteration takes minutes). */
function subsample(c, rows) {
  return { ...c, n: rows, name: c.name.replace(/\(\d+×/, `(${rows}×`), data: { ...c.data, n: rows, x: c.data.x.subarray(0, rows * c.d), y: c.data.y.subarray(0, rows) } };
}

// A reference EM iteration at the Fashion-MNIST shape takes many minutes (Newton-CG on 2 × 7056 free
// parameters; the validation needs ≥ 7056 rows, so no small subsample is possible): by default only its
// E-step is timed; --fashion-reference adds one full reference iteration.
const fullFashionReference = argv.includes('--fashion-reference');
const FMNIST_NOTE = 'M-step = Newton-CG capped at 2 outer × 10 CG iterations per block; reference: E-step only (one reference EM iteration takes many minutes; --fashion-reference times it)';
const plans = quick
  ? [{ make: () => linearCase(1e4, 10, 2), js: { iters: 3, reps: 3 }, cpu: { iters: 5, reps: 5 } },
    { make: () => linearCase(2e4, 50, 4), js: { iters: 2, reps: 2 }, cpu: { iters: 5, reps: 5 } },
    { make: () => fashionCase(8000), js: { iters: 0, reps: 1 }, cpu: { iters: 2, reps: 2 }, note: FMNIST_NOTE }]
  : [{ make: () => linearCase(1e4, 10, 2), js: { iters: 5, reps: 5 }, cpu: { iters: 10, reps: 10 } },
    { make: () => linearCase(1e5, 50, 4), js: { iters: 3, reps: 3 }, cpu: { iters: 10, reps: 10 } },
    { make: () => linearCase(1e6, 50, 8), js: { iters: 1, reps: 1 }, cpu: { iters: 4, reps: 5 },
      note: 'reference timed on 1 iteration and 1 E-step' },
    { make: () => fashionCase(60000), js: { iters: fullFashionReference ? 1 : 0, reps: 2 }, cpu: { iters: 3, reps: 3 },
      note: fullFashionReference ? 'reference timed on 1 iteration' : FMNIST_NOTE }];

/** Times one case on both backends (the native one only when `nativeOnly`). */
function measure(c, plan, start, nativeOnly) {
  const row = { case: c.name, n: c.n, d: c.d, k: c.k, source: c.source, note: nativeOnly ? 'native only' : plan.note,
    jsE: null, jsM: null, jsIter: null, cpuE: null, cpuM: null, cpuIter: null };
  if (cpu) {
    row.cpuE = timeEStep(cpu, c, start, plan.cpu.reps);
    row.cpuIter = timeIteration(cpu, c, start, nativeOnly ? plan.cpu.iters : Math.max(plan.js.iters, plan.cpu.iters));
    row.cpuM = row.cpuIter - row.cpuE;
  }
  if (!nativeOnly) {
    row.jsE = timeEStep(jsBackend, c, start, plan.js.reps);
    if (plan.js.iters > 0) {
      row.jsIter = timeIteration(jsBackend, c, start, plan.js.iters);
      row.jsM = row.jsIter - row.jsE;
    }
  }
  return row;
}

const rows = [];
for (const plan of plans) {
  const full = plan.make();
  // Where the reference takes minutes per iteration, it is compared on the first rows only, and the full
  // size is timed on the native backend alone.
  const cases = plan.js.rows ? [[subsample(full, plan.js.rows), false], [full, true]] : [[full, false]];
  for (const [c, nativeOnly] of cases) {
    process.stdout.write(`${c.name} ...`);
    // Common starting point: the 'random' initialisation (one M-step from random hard assignments).
    const start = (cpu ?? jsBackend).fitSync({ data: c.data, model: c.model, fit: fitSpec(0, c.mstep), seed: 3, init: null, trueParams: null }, {}).params;
    const row = measure(c, plan, start, nativeOnly);
    rows.push(row);
    console.log(` reference ${ms(row.jsIter)} ms/iter, native ${ms(row.cpuIter)} ms/iter`);
  }
}

// Weighted Gram (moe-core) vs OpenBLAS DGEMM at the same shapes.
const gramShapes = quick ? [{ n: 20000, d: 50, m: 4 }] : [{ n: 100000, d: 50, m: 4 }, { n: 1000000, d: 50, m: 8 }, { n: 60000, d: 784, m: 2 }];
const grams = [];
/** The reference's own Gram kernel (src/linalg/gram.ts, one thread), timed only where it takes seconds, not minutes. */
function referenceGramRate({ n, d, m }) {
  if (m * n * d * (d + 1) > 2e9) return null;
  const x = new Float64Array(n * d).map((_, i) => Math.sin(i));
  const w = new Float64Array(n * m).fill(0.5);
  const out = new Float64Array(m * d * d);
  weightedGrams(x, n, d, w, m, out);
  const times = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    weightedGrams(x, n, d, w, m, out);
    times.push(performance.now() - t0);
  }
  return (m * n * d * (d + 1)) / (median(times) / 1e3) / 1e9;
}
if (native.loaded) {
  const binding = loadNativeBinding();
  // The two kernels alternate (each call warms up once, then times one run), so that a burst of other load
  // on the shared cores hits both alike; medians of the timed runs.
  const rounds = quick ? 2 : 4;
  for (const shape of gramShapes) {
    const gramSeconds = [];
    const dgemmSeconds = [];
    let dgemm = null;
    let gramFlops = 0;
    for (let r = 0; r < rounds; r++) {
      const gram = binding.benchWeightedGram({ ...shape, reps: 1 });
      gramSeconds.push(...gram.seconds);
      gramFlops = gram.flops;
      dgemm = binding.benchDgemm({ ...shape, reps: 1 });
      if (dgemm.available) dgemmSeconds.push(...dgemm.seconds);
    }
    grams.push({ ...shape, gram: gramFlops / median(gramSeconds) / 1e9,
      dgemm: dgemm.available ? dgemm.flops / median(dgemmSeconds) / 1e9 : null, js: referenceGramRate(shape),
      dgemmNote: dgemm.available ? `${dgemm.library}, ${dgemm.threads ?? '?'} threads` : dgemm.reason });
  }
}

// Memory bandwidth (a large copy: read + write) for the floor.
function copyBandwidth() {
  const len = quick ? 1 << 23 : 1 << 25;
  const src = new Float64Array(len).fill(1);
  const dst = new Float64Array(len);
  const times = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    dst.set(src);
    times.push(performance.now() - t0);
  }
  return (2 * 8 * len) / (median(times) / 1e3) / 1e9;
}
const bandwidth = copyBandwidth();

// Floor of one EM iteration, linear experts (n, d, k), with one Newton step for the gate (a lower bound:
// the gate solver takes several): FLOPs = E-step projections 2·n·d·(2k−1) + k expert Grams n·d·(d+1) +
// XᵀR 2·n·d·k + per gate Newton step k(k−1)/2 Gram blocks n·d·(d+1) + gradient 2·n·d·(k−1);
// bytes = X read once per pass (E-step, experts, gate) = 3·8·n·d.
function floor(n, d, k, gflops) {
  const flops = 2 * n * d * (2 * k - 1) + k * n * d * (d + 1) + 2 * n * d * k + (k * (k - 1) / 2) * n * d * (d + 1) + 2 * n * d * (k - 1);
  const bytes = 3 * 8 * n * d;
  return { flops, bytes, ms: Math.max(flops / (gflops * 1e9), bytes / (bandwidth * 1e9)) * 1e3 };
}
const ref = grams.find((g) => g.n === 100000 && g.d === 50) ?? grams[0];
const target = rows.find((r) => r.n === 1e5 && r.d === 50 && r.k === 4);
const floorAt = ref && ref.dgemm ? floor(1e5, 50, 4, ref.dgemm) : null;

let commit = 'unknown';
try {
  commit = execSync('git rev-parse --short HEAD', { cwd: root, encoding: 'utf8' }).trim();
  if (execSync('git status --porcelain --untracked-files=no', { cwd: root, encoding: 'utf8' }).trim()) commit += ' (+ local changes)';
} catch { /* not a git checkout */ }
const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;

const table = [
  '| case | E-step ref (ms) | E-step native (ms) | M-step ref (ms) | M-step native (ms) | EM iter ref (ms) | EM iter native (ms) | speed-up per iteration |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.case} | ${ms(r.jsE)} | ${ms(r.cpuE)} | ${ms(r.jsM)} | ${ms(r.cpuM)} | ${ms(r.jsIter)} | `
    + `${ms(r.cpuIter)} | ${ratio(r.jsIter, r.cpuIter)} |`),
];
const gramTable = [
  '| shape (n, d, m) | weighted Gram, moe-core (GFLOP/s) | DGEMM, OpenBLAS (GFLOP/s) | Gram / DGEMM | reference Gram, TypeScript (GFLOP/s) |',
  '|---|---:|---:|---:|---:|',
  ...grams.map((g) => `| (${g.n}, ${g.d}, ${g.m}) | ${g.gram.toFixed(1)} | ${g.dgemm === null ? `— (${g.dgemmNote})` : g.dgemm.toFixed(1)} | `
    + `${g.dgemm === null ? '—' : `${((100 * g.gram) / g.dgemm).toFixed(0)}%`} | ${g.js === null ? '—' : g.js.toFixed(2)} |`),
];
const loadAfter = loadavg()[0];
const load = `load average ${loadBefore.toFixed(1)} at the start, ${loadAfter.toFixed(1)} at the end (on ${cpus().length} cores)`;
console.log(`\n${machine}; commit ${commit}${quick ? ' (--quick)' : ''}; ${load}\n`);
console.log(table.join('\n'));
for (const r of rows) if (r.note || r.source) console.log(`- ${r.case}: ${[r.source, r.note].filter(Boolean).join('; ')}`);
console.log(`\n${gramTable.join('\n')}`);
console.log(`\ncopy bandwidth ${bandwidth.toFixed(1)} GB/s`);
if (floorAt && target?.cpuIter) {
  console.log(`floor at (1e5, 50, 4): ${(floorAt.flops / 1e9).toFixed(2)} GFLOP, ${(floorAt.bytes / 1e6).toFixed(0)} MB → `
    + `${floorAt.ms.toFixed(1)} ms; native ${target.cpuIter.toFixed(1)} ms = ${(target.cpuIter / floorAt.ms).toFixed(1)}× the floor`);
}

mkdirSync(dirname(jsonOut), { recursive: true });
writeFileSync(jsonOut, JSON.stringify({ machine, commit, quick, load, rows, grams, bandwidth, floor: floorAt }, null, 2));
console.log(`\nraw results: ${jsonOut}`);

if (write) {
  const speedup = target && target.cpuIter ? target.jsIter / target.cpuIter : null;
  const measured = grams.filter((g) => g.dgemm);
  const gramShare = measured.length ? Math.min(...measured.map((g) => g.gram / g.dgemm)) : null;
  const verdict = (ok, text) => `${ok === null ? 'not measured' : ok ? 'met' : 'NOT met'}: ${text}`;
  const md = `# Benchmark results (CPU)

Produced by \`node bench/run.mjs --write\` (\`npm run bench\` prints the same without writing this file).

- Machine: ${machine}; ${load} (other work shared the cores during the run, so absolute times are noisy)
- Commit: ${commit}
- Native backend: ${native.loaded ? `moe-core CPU backend, all cores (threads = 0), addon ${native.from.startsWith(root) ? 'built at the package root' : `from ${native.from}`}` : 'unavailable'}

## Per EM iteration: TypeScript reference vs native CPU backend

${table.join('\n')}

${rows.filter((r) => r.note || r.source).map((r) => `- ${r.case}: ${[r.source, r.note].filter(Boolean).join('; ')}.`).join('\n')}
- E-step = one \`evaluate\` pass; EM iteration = difference of consecutive \`elapsedMs\` of a fit from the same
  starting parameters (tol = 0); M-step = iteration − E-step. Medians.

## Weighted Gram (moe-core) vs DGEMM (OpenBLAS), same shapes, same run

${gramTable.join('\n')}

FLOPs: the Gram kernel is credited m·n·d·(d+1) (symmetric half); DGEMM 2·n·d·m·d (the full product). Copy
bandwidth measured in the same run: ${bandwidth.toFixed(1)} GB/s.

## Floor of one EM iteration at (1e5, 50, 4)

${floorAt ? `FLOPs (E-step, 4 expert Grams, XᵀR, one gate Newton step): ${(floorAt.flops / 1e9).toFixed(2)} GFLOP; bytes (X read
three times): ${(floorAt.bytes / 1e6).toFixed(0)} MB. At the DGEMM rate above and the copy bandwidth: ${floorAt.ms.toFixed(1)} ms.
Measured native iteration: ${target?.cpuIter ? `${target.cpuIter.toFixed(1)} ms = ${(target.cpuIter / floorAt.ms).toFixed(1)}× the floor` : 'not measured'}
(the gate takes several Newton steps per M-step, each one more pass over X).` : 'Not computed (no DGEMM reference in this run).'}

## Targets

- ${verdict(speedup === null ? null : speedup >= 30, `native ≥ 30× the reference per EM iteration at (1e5, 50, 4): ${speedup === null ? '—' : `${speedup.toFixed(1)}×, ${(100 * speedup / 30).toFixed(0)}% of the target`}`)}
- ${verdict(gramShare === null ? null : gramShare >= 0.5, `weighted Gram ≥ 50% of DGEMM's rate: ${grams.filter((g) => g.dgemm).map((g) => `${(100 * g.gram / g.dgemm).toFixed(0)}% at (${g.n}, ${g.d}, ${g.m})`).join(', ') || '—'}`)}
${ref && ref.js ? `
Why the speed-up is what it is: both backends spend most of an EM iteration at this shape in weighted Gram
accumulation (the expert M-steps and every gate Newton step's Hessian), so the per-iteration speed-up is
bounded by the ratio of the two Gram kernels measured above: ${ref.gram.toFixed(1)} / ${ref.js.toFixed(2)} =
${(ref.gram / ref.js).toFixed(1)}× on this machine (${cpus().length} cores, shared; the reference's kernel is a
register-blocked Float64Array loop on one thread).
` : ''}`;
  // Everything from the KEEP marker on (hand-written notes, the GPU section measured on another machine) is
  // carried over from the existing file, so regenerating the CPU tables never erases it.
  const resultsPath = join(root, 'bench', 'RESULTS.md');
  const KEEP = '<!-- kept by bench/run.mjs --write: edit below by hand -->';
  const previous = existsSync(resultsPath) ? readFileSync(resultsPath, 'utf8') : '';
  const kept = previous.includes(KEEP) ? previous.slice(previous.indexOf(KEEP)) : `${KEEP}\n`;
  writeFileSync(resultsPath, `${md.trimEnd()}\n\n${kept}`);
  console.log('wrote bench/RESULTS.md');
}
