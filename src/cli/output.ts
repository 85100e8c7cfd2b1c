/**
 * Where the tool writes. Commands never touch process.stdout / process.stderr directly: they receive an
 * `Output`, so tests can run a command in-process and read what it printed.
 */
export interface Output {
  /** Results (reports, tables, CSV written to standard output). */
  out(text: string): void;
  /** Diagnostics and progress messages. */
  err(text: string): void;
  /** Whether progress bars may be drawn (stderr is a terminal and we are not in CI). */
  interactive: boolean;
}

export function processOutput(): Output {
  return {
    out: (text) => { process.stdout.write(text.endsWith('\n') ? text : text + '\n'); },
    err: (text) => { process.stderr.write(text.endsWith('\n') ? text : text + '\n'); },
    interactive: Boolean(process.stderr.isTTY) && !process.env['CI'],
  };
}

/** An Output that keeps everything in memory (tests, and callers that want the text). */
export function bufferedOutput(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (text) => { stdout.push(text); },
    err: (text) => { stderr.push(text); },
    interactive: false,
  };
}
