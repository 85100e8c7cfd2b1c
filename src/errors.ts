/**
 * Typed errors. Every failure that a caller can cause or recover from is a `MoEError` with a stable `code`;
 * the native backends map their failures onto the same codes, so callers never see a bare TypeError from
 * deep inside the numerics.
 */
export const ERROR_CODES = {
  /** An argument has the wrong type, shape or length (X not n×d, y of the wrong length, ...). */
  E_SHAPE: 'E_SHAPE',
  /** NaN or ±Infinity in X, y, sample weights or parameters. */
  E_NON_FINITE: 'E_NON_FINITE',
  /** A label outside its range: logistic y ∉ {0,1}, multinomial y ∉ {0..C−1}, symmetric logistic y ∉ {−1,+1}. */
  E_LABEL: 'E_LABEL',
  /** An option out of its domain (k < 1, negative ridge, unknown algorithm, ...). */
  E_OPTION: 'E_OPTION',
  /** Fewer (weighted) rows than the model has parameters per block, or Σ weights = 0. */
  E_TOO_FEW_ROWS: 'E_TOO_FEW_ROWS',
  /** A linear system stayed singular after the documented tiny-ridge recovery. */
  E_SINGULAR: 'E_SINGULAR',
  /** A component's responsibilities vanished and `onEmpty: 'error'` was chosen. */
  E_EMPTY_COMPONENT: 'E_EMPTY_COMPONENT',
  /** The fit was stopped through its AbortSignal. `error.partial` holds the last completed state. */
  E_ABORTED: 'E_ABORTED',
  /** The estimator was used before `fit` (predict, information, ...). */
  E_NOT_FITTED: 'E_NOT_FITTED',
  /**
   * The requested backend cannot run here: native binary missing, or no usable GPU (none, no driver, or the
   * CUDA libraries missing). Backend 'auto' then runs on another backend instead.
   */
  E_BACKEND_UNAVAILABLE: 'E_BACKEND_UNAVAILABLE',
  /**
   * The GPU ran out of memory (backend 'cuda'). The process stays usable; the CPU backend still works. Backend
   * 'auto' does not throw it: it re-runs the call on the CPU backend (src/backends/gpu-fallback.ts).
   */
  E_GPU_OOM: 'E_GPU_OOM',
  /** Any other CUDA / driver failure. */
  E_GPU: 'E_GPU',
  /** A file could not be read or parsed (data files, model JSON, IDX files). */
  E_IO: 'E_IO',
  /** A bug: an invariant of the library itself failed (a Rust panic lands here). Please report it. */
  E_INTERNAL: 'E_INTERNAL',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class MoEError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable context (e.g. the offending row, the partial fit on abort). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'MoEError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

export function isMoEError(e: unknown): e is MoEError {
  return e instanceof MoEError || (typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string'
    && (e as { code: string }).code in ERROR_CODES);
}
