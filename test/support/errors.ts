import { isMoEError, type ErrorCode } from '../../src/errors.js';

/** The `code` of the MoEError that `fn` throws, or a string saying it threw something else or nothing. */
export function codeOf(fn: () => unknown): ErrorCode | string {
  try {
    fn();
  } catch (e) {
    return isMoEError(e) ? e.code : `not a MoEError: ${String(e)}`;
  }
  return 'no error';
}
