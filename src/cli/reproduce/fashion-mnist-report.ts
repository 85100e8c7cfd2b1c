/**
 * The report of `moe-em reproduce fashion-mnist`: tables (final values, per-iteration curves), the plot and
 * summary.md, from the measured results (results.json). Kept apart from the computation so that runs made
 * elsewhere (e.g. on a GPU machine, with --no-plots) or split by method can be merged and re-rendered here.
 */
import { readFileSync } from 'node:fs';
import { ioError } from '../errors.js';
import type { Output } from '../output.js';
import { linePlotSpec, type LinePoint } from '../plot.js';
import { toMarkdown, type Table } from '../tables.js';
import { ArtifactWriter } from './artifacts.js';
import type { MethodResult } from './fashion-mnist.js';

/** Everything a Fashion-MNIST run measured: what `--render` turns into tables and a plot again. */
export interface FashionRun {
  settings: {
    trainRows: number; testRows: number; pixels: number; pool: number; iterations: number; evalEvery: number;
    stepSize: number; seed: number; backend: string; alterationSeed: number;
  };
  methods: MethodResult[];
  baseline: { method: string; accuracy: number; testNll: number; trainNll: number; seconds: number } | null;
  /** Merged reports: the settings of every run that went into it. */
  runs?: FashionRun['settings'][];
}

/** Re-render the tables and the plot of earlier runs (their results.json files, merged in order). */
export async function renderFashionFromResults(paths: string[], out: string, plots: boolean, output: Output): Promise<void> {
  const runs = paths.map((p) => {
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as FashionRun;
    } catch (e) {
      throw ioError(p, `cannot read a Fashion-MNIST results file (${(e as Error).message})`);
    }
  });
  const merged: FashionRun = {
    settings: runs[0]!.settings,
    methods: runs.flatMap((r) => r.methods),
    baseline: runs.map((r) => r.baseline).find((b) => b !== null) ?? null,
    runs: runs.map((r) => r.settings),
  };
  const writer = new ArtifactWriter(out, plots);
  writer.text('results.json', JSON.stringify(merged) + '\n');
  await renderFashionReport(merged, writer, output);
}

export async function renderFashionReport(run: FashionRun, writer: ArtifactWriter, output: Output): Promise<void> {
  const { settings: st, methods: results, baseline } = run;
  const finalTable: Table = {
    columns: ['method', 'train NLL (final)', 'test NLL (final)', 'test accuracy (final)', 'best test accuracy', 'seconds'],
    rows: results.map((r) => {
      const last = r.test[r.test.length - 1]!;
      return [r.method, r.trainNll[r.trainNll.length - 1]!, last[2], last[1], Math.max(...r.test.map((t) => t[1])), r.seconds];
    }),
  };
  if (baseline) {
    finalTable.rows.push([baseline.method, baseline.trainNll, baseline.testNll, baseline.accuracy, baseline.accuracy, baseline.seconds]);
  }
  writer.table('final-table', finalTable);
  writer.table('curves', {
    columns: ['method', 'iteration', 'train_nll', 'test_accuracy', 'test_nll'],
    rows: results.flatMap((r) => r.trainNll.map((nll, t) => {
      const ev = r.test.find((e) => e[0] === t);
      return [r.method, t, nll, ev ? ev[1] : null, ev ? ev[2] : null];
    })),
  });
  const title = `Altered Fashion-MNIST: ${st.trainRows} train rows, ${st.testRows} test rows, ${st.iterations} iterations, backend ${st.backend}`;
  {
    const nllPoints: LinePoint[] = results.flatMap((r) => r.trainNll.map((y, x) => ({ x, y, series: r.method })));
    const accPoints: LinePoint[] = results.flatMap((r) => r.test.map(([x, y]) => ({ x, y, series: r.method })));
    if (baseline) {
      accPoints.push({ x: 1, y: baseline.accuracy, series: 'baseline (k = 1)' },
        { x: st.iterations, y: baseline.accuracy, series: 'baseline (k = 1)' });
    }
    await writer.plot('fashion-mnist', linePlotSpec(title, [
      { title: 'train NLL', xTitle: 'iteration', yTitle: 'mean NLL', points: nllPoints, logY: true },
      { title: 'test accuracy', xTitle: 'iteration', yTitle: 'accuracy', points: accPoints },
    ]));
  }
  const summary = [
    `# ${title}`,
    '', toMarkdown(finalTable),
    `Start: unit-norm gate and experts (seed ${st.seed}); data altered with seed ${st.alterationSeed} (train) and ${st.alterationSeed + 1} (test)`
      + `; features: ${st.pool === 1 ? '784 pixels' : `${st.pool}×${st.pool}-pooled pixels (${st.pixels})`} + bias`
      + `; test accuracy every ${st.evalEvery} iteration(s).`,
    ...(run.runs && run.runs.length > 1
      ? ['', `Merged from ${run.runs.length} runs: ${run.runs.map((r) => `η = ${r.stepSize}, test accuracy every ${r.evalEvery} iteration(s), backend ${r.backend}`).join('; ')}.`]
      : []),
    '',
  ].join('\n');
  writer.text('summary.md', summary);
  output.out(summary);
  output.out(`Files written to ${writer.dir}: ${writer.written.length}`);
}
