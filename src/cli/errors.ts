/**
 * How the command-line tool reports failures. Usage mistakes (bad options, unknown commands) exit with 2;
 * data and I/O failures exit with 1. Library failures arrive as `MoEError`s and keep their code in the
 * one-line message, so a user can look the code up in the package's documentation.
 */
import { readFileSync } from 'node:fs';
import { isMoEError, MoEError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A mistake in how the tool was called (an option value out of range, a missing argument). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The exit status for a failure: usage errors and bad options (E_OPTION) are usage (2), the rest 1. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE;
  if (isMoEError(error) && error.code === 'E_OPTION') return EXIT_USAGE;
  return EXIT_FAILURE;
}

/** One line, `moe-em: error: [CODE] message`, with the code only when the library supplied one. */
export function formatError(error: unknown): string {
  if (error instanceof UsageError) return `moe-em: error: ${error.message}`;
  if (isMoEError(error)) return `moe-em: error: [${error.code}] ${firstLine(error.message)}`;
  if (error instanceof Error) return `moe-em: error: ${firstLine(error.message)}`;
  return `moe-em: error: ${String(error)}`;
}

function firstLine(text: string): string {
  const i = text.indexOf('\n');
  return i < 0 ? text : text.slice(0, i);
}

/** An I/O failure with the file name in the message. */
export function ioError(path: string, what: string): MoEError {
  return new MoEError('E_IO', `${path}: ${what}`, { path });
}

/** A text file's contents, or E_IO naming the file and why it could not be read. */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw ioError(path, code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? String(e)})`);
  }
}
