/**
 * `moe-em demo`: runs the package's demo (src/demo.ts: EM, Gradient EM and GD on the paper's synthetic
 * SymMoLinE problem). The demo module prints its own table; it is loaded lazily so the other commands do not
 * pay for it.
 */
import { MoEError } from '../../errors.js';
import type { Output } from '../output.js';

type DemoModule = { runDemo?: (log?: (line: string) => void) => unknown; main?: () => unknown };

export async function demoCommand(output: Output): Promise<void> {
  // A variable specifier keeps the compiler from requiring the module at build time.
  const specifier = '../../demo.js';
  let mod: DemoModule;
  try {
    mod = (await import(specifier)) as DemoModule;
  } catch (e) {
    throw new MoEError('E_INTERNAL', `the demo module could not be loaded (${(e as Error).message})`);
  }
  if (typeof mod.runDemo === 'function') await mod.runDemo((line) => output.out(line));
  else if (typeof mod.main === 'function') await mod.main();
}
