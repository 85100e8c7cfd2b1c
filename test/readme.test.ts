/**
 * The README's quick start, run as written (on the reference backend and a small planted problem), so that
 * the first code a user copies keeps working: every call it shows exists and returns what its comment says.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as moeEm from '../src/index.js';
import { sampleLinear } from '../src/data/samplers.js';

const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8');

/** The first ```ts block after `## heading`. */
function codeBlock(heading: string): string {
  const section = readme.slice(readme.indexOf(`## ${heading}`));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (match === null) throw new Error(`README: no ts block under '## ${heading}'`);
  return match[1]!;
}

describe('README', () => {
  it('the quick start runs as written', async () => {
    const code = codeBlock('Quick start');
    expect(code).toContain("import { MixtureOfExperts } from 'moe-em';");
    const body = code
      .replace(/^import .*$/m, '')
      // The quick start fits linear experts; its predictProba line is for the classifiers.
      .replace(/^model\.predictProba\(Xnew\);.*$/m, '')
      // Its seconds-long settings, shortened: the reference backend, fewer restarts.
      .replace("backend: 'auto'", "backend: 'js'").replace('nInit: 5', 'nInit: 2')
      + '\nreturn { model, history, info, again, here };';
    const { X, y } = sampleLinear({ n: 400, d: 2, k: 3, seed: 7 });
    const Xnew = { data: X.data.subarray(0, 20), rows: 10, cols: 2 };
    const records: unknown[] = [];
    const console = { log: (...args: unknown[]) => records.push(args) };
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<unknown>;
    const run = new AsyncFunction('MixtureOfExperts', 'X', 'y', 'Xnew', 'console', body);
    const out = await run(moeEm.MixtureOfExperts, X, y, Xnew, console) as {
      model: moeEm.MixtureOfExperts; history: moeEm.FitHistory; info: moeEm.InformationResult;
      again: moeEm.MixtureOfExperts; here: moeEm.MixtureOfExperts;
    };
    expect(out.history.restarts).toHaveLength(2);
    expect(records.length).toBeGreaterThan(0);
    expect(out.info.lambdaMax).toBeGreaterThanOrEqual(0);
    expect(out.info.lambdaMax).toBeLessThanOrEqual(1);
    expect(out.info.standardErrors).toHaveLength(out.model.nParams);
    expect(Array.from(out.again.predict(Xnew))).toEqual(Array.from(out.model.predict(Xnew)));
    expect(out.here.score(X, y)).toBeCloseTo(out.model.score(X, y), 12);
    expect(out.here.options.backend).toBe('auto');
  });
});
