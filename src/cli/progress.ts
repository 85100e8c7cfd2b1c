/**
 * Progress reporting for long commands. A cli-progress bar is drawn only on an interactive terminal
 * (never in CI or when stderr is piped, where it would litter logs); otherwise progress is silent and the
 * command's result lines are the only output.
 */
import { createRequire } from 'node:module';
import type * as CliProgress from 'cli-progress';
import type { Output } from './output.js';

export interface Progress {
  /** Advance by `steps` (default 1), optionally with a short status text. */
  tick(steps?: number, status?: string): void;
  stop(): void;
}

const SILENT: Progress = { tick() { /* nothing */ }, stop() { /* nothing */ } };

export function startProgress(output: Output, label: string, total: number): Progress {
  if (!output.interactive || total <= 0) return SILENT;
  // Loaded only for a terminal: batch runs need nothing beyond the package's core dependencies.
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted} | {status}`,
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { status: '' });
  return {
    tick(steps = 1, status = '') { bar.increment(steps, { status }); },
    stop() { bar.stop(); },
  };
}
