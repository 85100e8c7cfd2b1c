/**
 * The moe-em command-line tool, run in-process through `run(argv, output)`: fit → model JSON → predict
 * round trips, clear errors with the right exit codes, and small runs of the reproductions.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../src/cli/main.js';
import { bufferedOutput } from '../src/cli/output.js';
import { parseCsvTable } from '../src/cli/data-file.js';
import { measuredRate } from '../src/cli/reproduce/rate.js';
import { informationWithFallback } from '../src/cli/information.js';
import { formatFitSummary } from '../src/cli/report.js';
import { MoEError } from '../src/errors.js';
import { DEFAULT_FASHION_MNIST_DIR } from '../src/data/fashion-mnist.js';
import { sampleLinear, sampleMultinomial, sampleSymMoLinE } from '../src/data/samplers.js';
import { MixtureOfExperts } from '../src/estimator.js';

let dir: string;

beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'moe-em-cli-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

async function cli(...argv: string[]) {
  const output = bufferedOutput();
  const code = await run(argv, output);
  return { code, stdout: output.stdout.join('\n'), stderr: output.stderr.join('\n') };
}

function writeCsv(path: string, X: { data: Float64Array; rows: number; cols: number }, y: Float64Array, target = 'target'): void {
  const header = [...Array.from({ length: X.cols }, (_, j) => `f${j}`), target].join(',');
  const lines = [header];
  for (let i = 0; i < X.rows; i++) {
    lines.push([...X.data.subarray(i * X.cols, (i + 1) * X.cols), y[i]].join(','));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

function parseCsvOutput(text: string): { columns: string[]; rows: number[][] } {
  const lines = text.trim().split('\n');
  return { columns: lines[0]!.split(','), rows: lines.slice(1).map((l) => l.split(',').map(Number)) };
}

describe('fit → model JSON → predict', () => {
  it('round-trips a linear mixture through a CSV file', async () => {
    const problem = sampleLinear({ n: 300, d: 3, k: 2, seed: 11 });
    const data = join(dir, 'linear.csv');
    const model = join(dir, 'linear.json');
    writeCsv(data, problem.X, problem.y);
    const fit = await cli('fit', data, '--target', 'target', '--experts', 'linear', '-k', '2', '--intercept',
      '--seed', '3', '--max-iter', '100', '--backend', 'js', '--out', model);
    expect(fit.stderr).toBe('');
    expect(fit.code).toBe(0);
    expect(fit.stdout).toMatch(/NLL \(mean\): -?\d/);
    expect(fit.stdout).toMatch(/AIC: .* BIC: /);
    expect(fit.stdout).toMatch(/MIM λ_max: \d/);
    expect(fit.stdout).toMatch(/Expert 1:/);
    expect(fit.stdout).toMatch(/, backend js\n/); // the GPU is named only when the CUDA backend ran the fit
    const saved = JSON.parse(readFileSync(model, 'utf8'));
    expect(saved.format).toBe('moe-em-model');
    expect(saved.features).toEqual(['f0', 'f1', 'f2']);

    const pred = await cli('predict', model, data);
    expect(pred.code).toBe(0);
    const table = parseCsvOutput(pred.stdout);
    expect(table.columns).toEqual(['prediction']);
    expect(table.rows).toHaveLength(300);
    // The CLI's predictions are the library's predictions from the same saved model.
    const direct = MixtureOfExperts.fromJSON(saved.model).predict(problem.X);
    table.rows.forEach((r, i) => expect(r[0]).toBeCloseTo(direct[i]!, 12));
    // A mixture of the true experts explains the data far better than the mean does.
    let sse = 0;
    let sst = 0;
    const ybar = problem.y.reduce((a, b) => a + b, 0) / 300;
    table.rows.forEach((r, i) => { sse += (r[0]! - problem.y[i]!) ** 2; sst += (problem.y[i]! - ybar) ** 2; });
    expect(sse).toBeLessThan(sst);

    const post = join(dir, 'posterior.csv');
    const postRun = await cli('predict', model, data, '--posterior', '--out', post);
    expect(postRun.code).toBe(0);
    const h = parseCsvOutput(readFileSync(post, 'utf8'));
    expect(h.columns).toEqual(['expert_0', 'expert_1']);
    expect(h.rows).toHaveLength(300);
    for (const r of h.rows) expect(r[0]! + r[1]!).toBeCloseTo(1, 12);
  });

  it("--posterior of a model fitted on a GPU runs on this machine's backend", async () => {
    const problem = sampleLinear({ n: 200, d: 2, k: 2, seed: 12 });
    const data = join(dir, 'gpu-fitted.csv');
    const model = join(dir, 'gpu-fitted.json');
    writeCsv(data, problem.X, problem.y);
    const fit = await cli('fit', data, '--target', 'target', '--experts', 'linear', '-k', '2', '--max-iter', '20',
      '--backend', 'js', '--out', model);
    expect(fit.stderr).toBe('');
    expect(fit.code).toBe(0);
    const saved = JSON.parse(readFileSync(model, 'utf8'));
    saved.model.options.backend = 'cuda'; // as a fit with --backend cuda writes it
    writeFileSync(model, JSON.stringify(saved));
    const onJs = await cli('predict', model, data, '--posterior', '--backend', 'js');
    expect(onJs.stderr).toBe('');
    expect(onJs.code).toBe(0);
    const direct = MixtureOfExperts.fromJSON(saved.model, { backend: 'js' }).posterior(problem.X, problem.y);
    expect(parseCsvOutput(onJs.stdout).rows.flat()).toEqual(Array.from(direct.data));
    // The default, 'auto', runs wherever this test does (the native CPU backend, a GPU, or the reference).
    const onAuto = await cli('predict', model, data, '--posterior');
    expect(onAuto.code).toBe(0);
    expect(parseCsvOutput(onAuto.stdout).rows).toHaveLength(200);
  });

  it('fits multinomial experts from JSON rows and writes class probabilities', async () => {
    const problem = sampleMultinomial({ n: 240, d: 2, k: 2, nClasses: 3, seed: 5 });
    const rows = Array.from({ length: problem.X.rows }, (_, i) => ({
      a: problem.X.data[2 * i]!, b: problem.X.data[2 * i + 1]!, label: problem.y[i]!,
    }));
    const data = join(dir, 'multi.json');
    const model = join(dir, 'multi-model.json');
    writeFileSync(data, JSON.stringify(rows));
    const fit = await cli('fit', data, '--target', 'label', '--experts', 'multinomial', '-k', '2', '--backend', 'js',
      '--max-iter', '30', '--out', model);
    expect(fit.stderr).toBe('');
    expect(fit.code).toBe(0);
    const pred = await cli('predict', model, data);
    expect(pred.code).toBe(0);
    const table = parseCsvOutput(pred.stdout);
    expect(table.columns).toEqual(['prediction', 'p_0', 'p_1', 'p_2']);
    for (const r of table.rows) {
      expect(r[1]! + r[2]! + r[3]!).toBeCloseTo(1, 12);
      expect([0, 1, 2]).toContain(r[0]);
      expect(r[1 + r[0]!]).toBeCloseTo(Math.max(r[1]!, r[2]!, r[3]!), 12);
    }
  });

  it('fits the symmetric SymMoLinE model from {X, y} JSON and names its posterior columns z_plus, z_minus', async () => {
    const problem = sampleSymMoLinE({ n: 800, d: 3, seed: 9, norm: 3 });
    const X = Array.from({ length: 800 }, (_, i) => Array.from(problem.X.data.subarray(3 * i, 3 * i + 3)));
    const data = join(dir, 'sym.json');
    const model = join(dir, 'sym-model.json');
    writeFileSync(data, JSON.stringify({ X, y: Array.from(problem.y) }));
    const fit = await cli('fit', data, '--target', 'y', '--experts', 'linear', '--symmetric', '--backend', 'js', '--out', model);
    expect(fit.code).toBe(0);
    expect(fit.stdout).toContain('symmetric 2-expert linear model');
    // (w, β) and (−w, −β) are the same model: compare up to sign.
    const fitted = JSON.parse(readFileSync(model, 'utf8')).model.params as { w: number[]; beta: number[] };
    const truth = [...problem.params.w!, ...problem.params.beta!];
    const est = [...fitted.w, ...fitted.beta];
    const dist = Math.min(Math.hypot(...est.map((v, i) => v - truth[i]!)), Math.hypot(...est.map((v, i) => v + truth[i]!)));
    expect(dist).toBeLessThan(0.2 * Math.hypot(...truth));
    const post = await cli('predict', model, data, '--posterior');
    expect(post.code).toBe(0);
    const h = parseCsvOutput(post.stdout);
    expect(h.columns).toEqual(['z_plus', 'z_minus']);
    for (const r of h.rows) expect(r[0]! + r[1]!).toBeCloseTo(1, 12);
  });

  it('--init moments starts the fit from the moments start; on a symmetric model it is a usage error', async () => {
    const problem = sampleLinear({ n: 400, d: 3, k: 2, seed: 12 });
    const data = join(dir, 'moments.csv');
    const model = join(dir, 'moments.json');
    writeCsv(data, problem.X, problem.y);
    const fit = await cli('fit', data, '--target', 'target', '--experts', 'linear', '--init', 'moments', '--backend', 'js',
      '--no-information', '--out', model);
    expect(fit.stderr).toBe('');
    expect(fit.code).toBe(0);
    expect(JSON.parse(readFileSync(model, 'utf8')).model.history.settings.init).toBe('moments');
    const sym = await cli('fit', data, '--target', 'target', '--experts', 'linear', '--symmetric', '--init', 'moments',
      '--backend', 'js', '--out', model);
    expect(sym.code).toBe(2);
    expect(sym.stderr).toMatch(/\[E_OPTION\] init 'moments' does not apply: symmetric/);
  });
});

describe('the fit summary', () => {
  it('names the GPU when the CUDA backend ran the fit', () => {
    const { X, y } = sampleLinear({ n: 200, d: 2, k: 2, seed: 4 });
    const estimator = new MixtureOfExperts({ experts: 'linear', k: 2, maxIter: 3, backend: 'js' });
    const history = { ...estimator.fitSync(X, y), backend: 'cuda' as const };
    const text = formatFitSummary({ params: estimator.params, history, rows: 200, features: ['a', 'b'], aic: 1, bic: 2,
      nParams: estimator.nParams, information: { error: 'skipped' }, gpu: 'NVIDIA H100 80GB HBM3' });
    expect(text).toMatch(/, backend cuda \(NVIDIA H100 80GB HBM3\)\n/);
  });
});

describe('errors', () => {
  it('a missing data file is a one-line E_IO error with exit code 1', async () => {
    const r = await cli('fit', join(dir, 'nope.csv'), '--target', 'y', '--experts', 'linear', '--backend', 'js');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^moe-em: error: \[E_IO\] .*nope\.csv: no such file$/);
  });

  it('a non-numeric cell names its line and column', async () => {
    const data = join(dir, 'bad.csv');
    writeFileSync(data, 'x,y\n1,2\n3,oops\n');
    const r = await cli('fit', data, '--target', 'y', '--experts', 'linear', '--backend', 'js');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("[E_IO]");
    expect(r.stderr).toContain("line 3, column 'y': 'oops' is not a number");
  });

  it('an unknown target column is E_SHAPE and lists the columns', async () => {
    const data = join(dir, 'ok.csv');
    writeFileSync(data, 'x,y\n1,2\n3,4\n');
    const r = await cli('fit', data, '--target', 'label', '--experts', 'linear', '--backend', 'js');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[E_SHAPE\] .*no column named 'label' \(columns: x, y\)/);
  });

  it('bad options and unknown commands are usage errors (exit 2)', async () => {
    const data = join(dir, 'ok2.csv');
    writeFileSync(data, 'x,y\n1,2\n3,4\n');
    const k0 = await cli('fit', data, '--target', 'y', '--experts', 'linear', '-k', '0');
    expect(k0.code).toBe(2);
    expect(k0.stderr).toMatch(/moe-em: error: .*-k.*Must be between 1/);
    const kind = await cli('fit', data, '--target', 'y', '--experts', 'poisson');
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain('poisson');
    const missing = await cli('fit', data, '--experts', 'linear');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--target');
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('reproduce', 'cifar')).code).toBe(2);
  });

  it('a corrupt model file is a clear error', async () => {
    const model = join(dir, 'corrupt.json');
    writeFileSync(model, '{"format": "moe-em-model", ');
    const data = join(dir, 'ok3.csv');
    writeFileSync(data, 'x,y\n1,2\n');
    const r = await cli('predict', model, data);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^moe-em: error: \[E_IO\] .*corrupt\.json: not a model file/);
  });

  it('help is a success', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('reproduce');
  });
});

describe('CSV parsing', () => {
  it('reads quoted headers, skips blank lines and rejects ragged rows and non-finite values', () => {
    const t = parseCsvTable('t.csv', '"a, b",c\n1,2\n\n 3 , 4 \n');
    expect(t.columns).toEqual(['a, b', 'c']);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4]);
    expect(() => parseCsvTable('t.csv', 'a,b\n1\n')).toThrowError(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => parseCsvTable('t.csv', 'a,b\n1,Infinity\n')).toThrowError(expect.objectContaining({ code: 'E_NON_FINITE' }));
    expect(() => parseCsvTable('t.csv', '1,2\n3,4\n')).toThrowError(/header row/);
  });
});

describe('reproduce', () => {
  it('synthetic: 3 instances write tables, curves and an SVG plot', async () => {
    const out = join(dir, 'synthetic');
    const r = await cli('reproduce', 'synthetic', '--instances', '3', '--backend', 'js', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const f of ['error-table.md', 'error-table.csv', 'nll-table.md', 'step-size-grid.csv', 'curves.csv', 'summary.md']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const svg = readFileSync(join(out, 'synthetic.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('parameter error');
    const table = readFileSync(join(out, 'error-table.md'), 'utf8');
    expect(table).toMatch(/\| EM \|/);
    expect(table).toMatch(/GD \(η=/);
    const em = readFileSync(join(out, 'curves.csv'), 'utf8').split('\n').filter((l) => l.startsWith('EM,'))
      .map((l) => l.split(',').map(Number));
    expect(em).toHaveLength(51);
    // EM from a start near θ* ends much closer to θ* than it began (error is column 2).
    expect(em[50]![2]!).toBeLessThan(0.5 * em[0]![2]!);
  }, 60_000);

  it('init: success fractions and per-instance runs for each start', async () => {
    const out = join(dir, 'init');
    const r = await cli('reproduce', 'init', '--instances', '2', '--rows', '600', '--iterations', '30',
      '--methods', 'random,moments', '--backend', 'js', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const table = readFileSync(join(out, 'init-table.md'), 'utf8');
    expect(table).toMatch(/\| orthogonal \| moments \|/);
    expect(table).toMatch(/\| general \| random \|/);
    const runs = readFileSync(join(out, 'init-runs.csv'), 'utf8').trim().split('\n');
    expect(runs).toHaveLength(1 + 2 * 2 * 2);
    expect((await cli('reproduce', 'init', '--methods', 'spectral', '--out', out)).code).toBe(2);
  }, 60_000);

  it('rate: λ_max and a measured contraction per ‖β*‖', async () => {
    const out = join(dir, 'rate');
    const r = await cli('reproduce', 'rate', '--instances', '1', '--snr', '2,8', '--backend', 'js', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = readFileSync(join(out, 'rate-instances.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
    expect(rows).toHaveLength(2);
    for (const [, lambda, measured] of rows) {
      expect(lambda).toBeGreaterThanOrEqual(0);
      expect(lambda).toBeLessThan(1);
      expect(Math.abs(measured! - lambda!)).toBeLessThan(0.1);
    }
    // λ_max falls as the SNR grows.
    expect(rows[1]![1]!).toBeLessThan(rows[0]![1]!);
    expect(readFileSync(join(out, 'rate.svg'), 'utf8').startsWith('<svg')).toBe(true);
  }, 60_000);

  it('measuredRate: geometric-mean ratio inside the window', () => {
    const distances = Array.from({ length: 40 }, (_, t) => 2 * 0.6 ** t);
    expect(measuredRate(distances).rate).toBeCloseTo(0.6, 12);
    expect(Number.isNaN(measuredRate([1, 0.5]).rate)).toBe(true);
  });

  const haveFashion = existsSync(join(DEFAULT_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  if (!haveFashion) console.log(`Fashion-MNIST test skipped: no dataset in ${DEFAULT_FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)`);
  it.skipIf(!haveFashion)('fashion-mnist: a small slice runs end to end', async () => {
    const out = join(dir, 'fashion');
    // 4×4 pooling (49 pixels + bias) keeps the slice small: an expert then has 9 × 50 free parameters.
    const r = await cli('reproduce', 'fashion-mnist', '--rows', '600', '--test-rows', '200', '--iterations', '2',
      '--pool', '4', '--backend', 'js', '--out', out);
    expect(r.stderr).toMatch(/49 pixels \+ bias, 600 train rows, 200 test rows/);
    expect(r.code).toBe(0);
    const final = readFileSync(join(out, 'final-table.csv'), 'utf8').trim().split('\n');
    expect(final).toHaveLength(1 + 5); // header, 4 methods, baseline
    for (const line of final.slice(1)) {
      const cells = line.split(',');
      const accuracy = Number(cells[cells.length - 3]);
      expect(accuracy).toBeGreaterThanOrEqual(0);
      expect(accuracy).toBeLessThanOrEqual(1);
    }
    const curves = readFileSync(join(out, 'curves.csv'), 'utf8').trim().split('\n');
    expect(curves).toHaveLength(1 + 4 * 3); // iterations 0..2 for each method
    // Split runs merge: GD alone without plots, then re-rendered together with the full run's baseline.
    const gdOnly = join(dir, 'fashion-gd');
    const gd = await cli('reproduce', 'fashion-mnist', '--rows', '600', '--test-rows', '200', '--iterations', '2',
      '--pool', '4', '--backend', 'js', '--methods', 'gd', '--no-plots', '--out', gdOnly);
    expect(gd.code).toBe(0);
    expect(existsSync(join(gdOnly, 'fashion-mnist.svg'))).toBe(false);
    const merged = join(dir, 'fashion-merged');
    const render = await cli('reproduce', 'fashion-mnist', '--render', join(gdOnly, 'results.json'), join(out, 'results.json'),
      '--out', merged);
    expect(render.code).toBe(0);
    const mergedTable = readFileSync(join(merged, 'final-table.csv'), 'utf8').trim().split('\n');
    expect(mergedTable).toHaveLength(1 + 1 + 4 + 1); // header, GD, the 4 methods of the full run, baseline
    // The same start, data and iterations: GD alone reproduces the full run's GD curve exactly.
    const gdRows = mergedTable.filter((l) => l.startsWith('GD'));
    expect(gdRows[0]!.split(',').slice(1, 5)).toEqual(gdRows[1]!.split(',').slice(1, 5));
    expect(readFileSync(join(merged, 'fashion-mnist.svg'), 'utf8').startsWith('<svg')).toBe(true);
    expect(readFileSync(join(out, 'fashion-mnist.svg'), 'utf8').startsWith('<svg')).toBe(true);
  }, 60_000);

  it('fashion-mnist: a missing directory says how to install the data', async () => {
    const r = await cli('reproduce', 'fashion-mnist', '--data', join(dir, 'no-such-dir'), '--backend', 'js',
      '--rows', '20', '--iterations', '1', '--out', join(dir, 'fm-missing'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[E_IO\].*apt-get install dataset-fashion-mnist/);
  });
});

describe('the built executable', () => {
  // Compiled once into a private folder inside node_modules (so the CLI's imports resolve), then run as a
  // real process: the entry-point check, stdout/stderr and the process exit codes.
  const outDir = resolve('node_modules/.cache/moe-em-cli-test');
  const main = join(outDir, 'cli', 'main.js');

  beforeAll(() => {
    const tsc = spawnSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json',
      '--outDir', outDir, '--declaration', 'false', '--sourceMap', 'false'], { encoding: 'utf8' });
    // Type errors elsewhere in the tree still emit JavaScript; only a missing entry point is fatal here.
    if (!existsSync(main)) throw new Error(`tsc did not emit the CLI: ${tsc.stdout}${tsc.stderr}`);
  }, 120_000);

  function exec(...argv: string[]) {
    return spawnSync(process.execPath, [main, ...argv], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  }

  it('fits and predicts from the command line with exit code 0', () => {
    const problem = sampleLinear({ n: 120, d: 2, k: 2, seed: 21 });
    const data = join(dir, 'spawn.csv');
    const model = join(dir, 'spawn-model.json');
    writeCsv(data, problem.X, problem.y, 'y');
    const fit = exec('fit', data, '--target', 'y', '--experts', 'linear', '--backend', 'js', '--out', model);
    expect(fit.status).toBe(0);
    expect(fit.stdout).toContain(`Model written to ${model}`);
    const pred = exec('predict', model, data);
    expect(pred.status).toBe(0);
    expect(pred.stdout.trim().split('\n')).toHaveLength(121);
  });

  it('exits 1 on a bad file and 2 on a bad option, with one error line', () => {
    const missing = exec('predict', join(dir, 'missing-model.json'), join(dir, 'x.csv'));
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^moe-em: error: \[E_IO\] .*missing-model\.json: no such file$/);
    const usage = exec('reproduce', 'synthetic', '--instances', 'many');
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/moe-em: error: option '--instances <n>' argument 'many' is invalid/);
  });
});

describe('MIM diagnostics', () => {
  it('fall back to the TypeScript reference when the fitting backend cannot compute them', () => {
    const problem = sampleLinear({ n: 200, d: 2, k: 2, seed: 31 });
    const fitted = new MixtureOfExperts({ experts: 'linear', k: 2, backend: 'js', seed: 1 });
    fitted.fitSync(problem.X, problem.y);
    const expected = fitted.information(problem.X, problem.y).lambdaMax;
    // A stand-in for a native estimator whose backend has no `information`.
    const failing = (code: 'E_INTERNAL' | 'E_SHAPE') => ({
      options: { ...fitted.options, backend: 'cpu' },
      information: () => { throw new MoEError(code, 'information: not implemented yet'); },
      toJSON: () => fitted.toJSON(),
    }) as unknown as MixtureOfExperts;
    const outcome = informationWithFallback(failing('E_INTERNAL'), problem.X, problem.y);
    expect(outcome.result.lambdaMax).toBe(expected);
    expect(outcome.fallbackReason).toContain('E_INTERNAL');
    // Errors about the input itself are not hidden by the fallback.
    expect(() => informationWithFallback(failing('E_SHAPE'), problem.X, problem.y)).toThrowError(/not implemented/);
  });
});
