#!/usr/bin/env node
// GPU benchmark through the package API (plain Node, no node_modules: only dist/ and the built .node).
// EM per-iteration time, backend 'cuda' vs backend 'cpu', at (n, d, k) = (1e6, 100, 8) linear experts
// (target: ≥ 50×) and at the Fashion-MNIST shape (60000×784, 2 multinomial experts × 10 classes), and a sweep
// of small problems for the CPU/CUDA crossover that src/backends/select.ts uses (CUDA_CROSSOVER_ND), with the
// one-off cost of a CUDA fit's start-up (context, cuBLAS handle, kernel module, uploads) that the
// per-iteration figures leave out. Run: `node bench/gpu.mjs` (or imported by scripts/gpu-check.mjs). Without
// a GPU it says so and exits 0.
import { loadNativeBackend, nativeInfo, resolveFitSpec, sampleLinear, sampleMultinomial } from '../dist/index.js';

function fitSpec(maxIter) {
  return resolveFitSpec({ maxIter, tol: 0 /* every iteration runs: the timing counts them */ });
}

/** Milliseconds per EM iteration (iterations 1..last; iteration 0 holds the initialisation). */
function perIteration(result) {
  const it = result.iterations;
  const last = it.length - 1;
  if (last < 2) return it[last].elapsedMs;
  return (it[last].elapsedMs - it[1].elapsedMs) / (last - 1);
}

function timeFit(backend, data, model, maxIter) {
  const start = performance.now();
  const result = backend.fitSync({ data, model, fit: fitSpec(maxIter), seed: 1, init: null, trueParams: null }, {});
  return { msPerIter: perIteration(result), wallMs: performance.now() - start, nll: result.iterations.at(-1).nll, result };
}

/**
 * The CUDA backend's other kernel choices, switched through the environment the backend reads when a fit
 * creates it (bench/GPU.md): the unfused narrow passes (the fused kernel is the default), the opt-in
 * probability store of Newton-CG and the opt-in overlap of the E-step's Grams with the gate's M-step.
 */
export const OTHER_KERNELS = { MOE_CUDA_FUSED: '0', MOE_CUDA_STORED_P: '1', MOE_CUDA_OVERLAP: '1' };

export function envLabel(env) {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** Runs `f` with the environment variables `env` set, restoring them afterwards. */
export function withEnv(env, f) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function linearProblem(n, d, k, seed) {
  const { X, y } = sampleLinear({ n, d, k, seed });
  return {
    data: { x: X.data, n, d, y, s: null },
    model: { experts: 'linear', symmetric: false, k, d, nClasses: 0, noise: 'fitted', ridge: 0, intercept: false },
  };
}

/** Runs the benchmark; returns table rows { what, value, unit, note }. */
export async function runGpuBench({ log = console.log } = {}) {
  const info = nativeInfo();
  if (!info.cudaAvailable) {
    log(`bench/gpu.mjs: no usable GPU (${info.reason ?? 'the addon sees no CUDA device'}); nothing to measure`);
    return [];
  }
  const cuda = loadNativeBackend('cuda');
  const cpu = loadNativeBackend('cpu');
  const rows = [];

  // 0. Start-up: wall time of a one-iteration fit of a tiny problem. Every CUDA fit creates its backend (a
  // context on the device's primary context, a stream, a cuBLAS handle, the kernel module) and uploads X; the
  // first in the process also pays the driver's lazy initialisation. The CPU's figure is the same fit's work.
  {
    const { data, model } = linearProblem(2_000, 10, 3, 6);
    const first = timeFit(cuda, data, model, 1).wallMs;
    const later = Math.min(...[0, 1, 2].map(() => timeFit(cuda, data, model, 1).wallMs));
    const onCpu = Math.min(...[0, 1, 2].map(() => timeFit(cpu, data, model, 1).wallMs));
    log(`start-up (2000×10, k=3, one iteration): cuda first fit ${first.toFixed(1)} ms, later fits ${later.toFixed(1)} ms, cpu ${onCpu.toFixed(1)} ms`);
    rows.push({ what: 'one-iteration fit 2000×10 k=3, cuda, first in process', value: first, unit: 'ms', note: 'start-up included' });
    rows.push({ what: 'one-iteration fit 2000×10 k=3, cuda, later', value: later, unit: 'ms', note: 'best of 3' });
    rows.push({ what: 'one-iteration fit 2000×10 k=3, cpu', value: onCpu, unit: 'ms', note: 'best of 3' });
  }

  // 1. The target shape: EM, linear experts, (1e6, 100, 8).
  {
    const { data, model } = linearProblem(1_000_000, 100, 8, 3);
    timeFit(cuda, data, model, 1); // warm-up: module load, allocations
    const g = timeFit(cuda, data, model, 5);
    const other = withEnv(OTHER_KERNELS, () => timeFit(cuda, data, model, 5));
    const c = timeFit(cpu, data, model, 3);
    const gap = Math.abs(g.result.iterations[2].nll - c.result.iterations[2].nll) / Math.abs(c.result.iterations[2].nll);
    const otherGap = Math.abs(other.result.iterations[2].nll - c.result.iterations[2].nll) / Math.abs(c.result.iterations[2].nll);
    log(`EM (1e6,100,8): cuda ${g.msPerIter.toFixed(1)} ms/iter (other kernels ${other.msPerIter.toFixed(1)}), `
      + `cpu ${c.msPerIter.toFixed(1)} ms/iter, nll gap ${gap.toExponential(1)} (other kernels ${otherGap.toExponential(1)})`);
    rows.push({ what: 'EM iter, linear (1e6,100,8), cuda', value: g.msPerIter, unit: 'ms', note: 'default kernels' });
    rows.push({ what: 'EM iter, linear (1e6,100,8), cuda, other kernels', value: other.msPerIter, unit: 'ms', note: envLabel(OTHER_KERNELS) });
    rows.push({ what: 'EM iter, linear (1e6,100,8), cpu', value: c.msPerIter, unit: 'ms', note: 'all cores' });
    rows.push({ what: 'speed-up cuda / cpu', value: c.msPerIter / g.msPerIter, unit: '×', note: `target ≥ 50×; nll gap ${gap.toExponential(1)}` });
    rows.push({ what: 'speed-up cuda (other kernels) / cpu', value: c.msPerIter / other.msPerIter, unit: '×', note: `target ≥ 50×; nll gap ${otherGap.toExponential(1)}` });
  }

  // 1b. Restarts: a fit's restarts go to the backend in one request, so X is uploaded once per fit, not once
  // per restart. Three one-iteration restarts at (1e6, 100, 8), in one request and as three requests: the
  // difference is two uploads of X (and two backends' set-up).
  {
    const { data, model } = linearProblem(1_000_000, 100, 8, 3);
    const shared = { data, model, fit: fitSpec(1), trueParams: null };
    const starts = [1, 2, 3].map((seed) => ({ seed, init: null }));
    const wall = (f) => { const t = performance.now(); f(); return performance.now() - t; };
    const together = Math.min(...[0, 1].map(() => wall(() => cuda.fitRestartsSync({ ...shared, starts }, {}))));
    const apart = Math.min(...[0, 1].map(() => wall(() => starts.forEach((s) => cuda.fitSync({ ...shared, ...s }, {})))));
    log(`restarts (1e6,100,8), 3 × one iteration: one request ${together.toFixed(1)} ms, three requests ${apart.toFixed(1)} ms`);
    rows.push({ what: '3 one-iteration restarts (1e6,100,8), cuda, one request', value: together, unit: 'ms', note: 'X uploaded once; best of 2' });
    rows.push({ what: '3 one-iteration restarts (1e6,100,8), cuda, three requests', value: apart, unit: 'ms', note: `saved per restart ${((apart - together) / 2).toFixed(1)} ms (an upload of 800 MB)` });
  }

  // 2. Fashion-MNIST shape.
  {
    const n = 60_000, d = 784, k = 2, nClasses = 10;
    const { X, y } = sampleMultinomial({ n, d, k, nClasses, seed: 4, coefScale: 0.1, gateScale: 0.1 });
    const data = { x: X.data, n, d, y, s: null };
    const model = { experts: 'multinomial', symmetric: false, k, d, nClasses, noise: 'fitted', ridge: 1e-2, intercept: false };
    const g = timeFit(cuda, data, model, 3);
    const c = timeFit(cpu, data, model, 2);
    log(`EM Fashion-MNIST shape (60000×784, k=2, C=10): cuda ${g.msPerIter.toFixed(1)} ms/iter, cpu ${c.msPerIter.toFixed(1)} ms/iter`);
    rows.push({ what: 'EM iter, multinomial 60000×784 k=2 C=10, cuda', value: g.msPerIter, unit: 'ms', note: 'default kernels' });
    rows.push({ what: 'EM iter, multinomial 60000×784 k=2 C=10, cpu', value: c.msPerIter, unit: 'ms', note: 'all cores' });
    rows.push({ what: 'speed-up cuda / cpu, multinomial 60000×784', value: c.msPerIter / g.msPerIter, unit: '×', note: '' });
  }

  // 3. Crossover: small linear problems (k = 3), EM per iteration on both backends.
  let crossover = null;
  for (const [n, d] of [[2_000, 10], [20_000, 10], [100_000, 10], [200_000, 50]]) {
    const { data, model } = linearProblem(n, d, 3, 5);
    timeFit(cuda, data, model, 1);
    const g = timeFit(cuda, data, model, 4);
    const c = timeFit(cpu, data, model, 4);
    log(`crossover n·d=${n * d}: cuda ${g.msPerIter.toFixed(2)} ms, cpu ${c.msPerIter.toFixed(2)} ms`);
    rows.push({ what: `EM iter (n·d=${n * d}, k=3) cuda / cpu`, value: g.msPerIter, unit: 'ms', note: `cpu ${c.msPerIter.toFixed(2)} ms` });
    if (crossover === null && g.msPerIter < c.msPerIter) crossover = n * d;
  }
  rows.push({ what: 'crossover n·d (cuda faster from)', value: crossover ?? NaN, unit: '', note: 'CUDA_CROSSOVER_ND in src/backends/select.ts' });
  return rows;
}

function formatValue(v) {
  if (!Number.isFinite(v)) return '—';
  return v !== 0 && Math.abs(v) < 0.01 ? v.toExponential(1) : v.toFixed(2);
}

export function formatTable(rows) {
  const lines = ['| what | value | unit | note |', '|---|---:|---|---|'];
  for (const r of rows) lines.push(`| ${r.what} | ${formatValue(r.value)} | ${r.unit} | ${r.note} |`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runGpuBench();
  console.log(`\n${formatTable(rows)}`);
}
