/**
 * The native backends ('cpu': moe-core's multi-threaded Rust backend; 'cuda': moe-cuda) behind the
 * ComputeBackend interface, and the loader of the Node-API addon that provides them.
 *
 * Where the addon is looked for, in order:
 *   1. the path in the environment variable MOE_EM_NATIVE_PATH (a `.node` file);
 *   2. `moe-em.linux-x64-gnu.node` at the package root (what `npm run build:native` produces);
 *   3. the optional platform package `moe-em-linux-x64-gnu` (installed by npm on Linux x64 glibc).
 * The addon is optional: when none loads, `nativeInfo()` says why and `loadNativeBackend` throws
 * E_BACKEND_UNAVAILABLE, so the estimator can fall back to the TypeScript backend.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, MoEError, type ErrorCode } from '../errors.js';
import { firstNonFinite, type DenseMatrix } from '../input.js';
import type { InformationResult, IterationRecord } from '../types.js';
import {
  asRestarts,
  type ComputeBackend, type FitHooks, type FitRequest, type FitResult, type FitSpec, type ModelSpec, type MomentSums,
  type ProblemData, type RestartsRequest,
} from './backend.js';

export const NATIVE_PATH_ENV = 'MOE_EM_NATIVE_PATH';
export const PLATFORM_PACKAGE = 'moe-em-linux-x64-gnu';
const LOCAL_BINARY = 'moe-em.linux-x64-gnu.node';

type NativeKind = 'cpu' | 'cuda';

/** A cancel token of the addon: `cancel()` makes a running fit stop with E_ABORTED after its current iteration. */
export interface CancelToken {
  cancel(): void;
}

/** `evaluate` / `posterior` / `information` requests of the addon. */
export interface NativeQuery {
  data: ProblemData;
  model: ModelSpec;
  params: Float64Array;
  backend: NativeKind;
  /** 0 = all cores. */
  threads: number;
  method?: 'auto' | 'dense' | 'lanczos';
  steps?: number;
}

export interface NativeTiming {
  seconds: number[];
  medianSeconds: number;
  flops: number;
  gflops: number;
}

/** The addon's exports (native/node/src/lib.rs documents them). */
export interface NativeBinding {
  version: string;
  /** The restarts in order on one backend (the CUDA backend uploads the data once); one result per start. */
  fit(req: RestartsRequest & { backend: NativeKind }, onIteration?: (r: IterationRecord) => void,
    token?: CancelToken): Promise<FitResult[]>;
  fitSync(req: RestartsRequest & { backend: NativeKind }, onIteration?: (r: IterationRecord) => void,
    token?: CancelToken): FitResult[];
  createCancelToken(): CancelToken;
  evaluate(q: NativeQuery): { nll: number; objective: number };
  posterior(q: NativeQuery): Float64Array;
  information(q: NativeQuery): InformationResult;
  /** The index of the first NaN or ±Inf of x, or −1. */
  firstNonFinite(x: Float64Array): number;
  /** X (n×d) with a first column of ones, n × (d + 1). */
  withIntercept(design: { x: Float64Array; n: number; d: number }): Float64Array;
  /** n × width predictions (the mixture mean, or class probabilities): the rows need no labels. */
  predict(q: Omit<NativeQuery, 'data'> & { data: { x: Float64Array; n: number; d: number } }): Float64Array;
  /** init 'moments'' EM stage from `params` (moe_core::gate_only_em); threads from `fit.threads`. */
  gateOnlyEm(q: NativeQuery & { fit: FitSpec }): Float64Array;
  /** θ_0 by one M-step from a hard assignment (moe_core::start_from_assignment); threads from `fit.threads`. */
  startFromAssignment(q: Omit<NativeQuery, 'params'> & { fit: FitSpec; assignment: Uint32Array }): Float64Array;
  /** init 'kmeans'' clusters (moe_core::kmeans_clusters), on the CPU's threads. */
  kmeansClusters(q: { data: ProblemData; model: ModelSpec; seed: number; threads: number }): Uint32Array;
  /** init 'moments'' data passes (moe_core::moment_sums), on the CPU's threads. */
  momentSums(q: { data: ProblemData; model: ModelSpec; threads: number }): MomentSums;
  /** The GPU the CUDA backend would run on, or why it cannot run here. */
  deviceInfo(): { available: boolean; name?: string; memoryBytes?: number; computeCapability?: string; reason?: string };
  /** m weighted Gram matrices over n×d rows with moe-core's kernel. */
  benchWeightedGram(shape: { n: number; d: number; m: number; threads?: number; reps?: number }): NativeTiming;
  /** OpenBLAS DGEMM of the same shape (loaded with dlopen when installed). */
  benchDgemm(shape: { n: number; d: number; m: number; reps?: number }):
    (NativeTiming & { available: true; library: string; threads?: number }) | { available: false; reason: string };
  /** Throws E_INTERNAL from a deliberate Rust panic (tests that panics never cross the boundary). */
  testPanic(): never;
}

type LoadOutcome = { binding: NativeBinding; from: string } | { binding: null; reason: string };
let loaded: LoadOutcome | null = null;

function packageRoot(): string {
  // This file is src/backends/native.ts or dist/backends/native.js: the package root is two levels up.
  return fileURLToPath(new URL('../../', import.meta.url));
}

function loadAddon(): LoadOutcome {
  const require = createRequire(import.meta.url);
  const attempts: string[] = [];
  const tryLoad = (spec: string): NativeBinding | null => {
    try {
      return require(spec) as NativeBinding;
    } catch (e) {
      attempts.push(`${spec}: ${(e as Error).message.split('\n')[0]}`);
      return null;
    }
  };
  const override = process.env[NATIVE_PATH_ENV];
  if (override) {
    const binding = tryLoad(override);
    return binding ? { binding, from: override }
      : { binding: null, reason: `${NATIVE_PATH_ENV} is set but did not load: ${attempts.join('; ')}` };
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { binding: null, reason: `no native build for ${process.platform}-${process.arch} (only linux-x64-gnu)` };
  }
  const local = packageRoot() + LOCAL_BINARY;
  if (existsSync(local)) {
    const binding = tryLoad(local);
    if (binding) return { binding, from: local };
  }
  const binding = tryLoad(PLATFORM_PACKAGE);
  if (binding) return { binding, from: PLATFORM_PACKAGE };
  return { binding: null, reason: `the native addon did not load (${attempts.join('; ') || `${LOCAL_BINARY} not built`})` };
}

function addon(): LoadOutcome {
  loaded ??= loadAddon();
  return loaded;
}

/** The loaded addon, or E_BACKEND_UNAVAILABLE with the reason. */
export function loadNativeBinding(): NativeBinding {
  const outcome = addon();
  if (outcome.binding === null) throw new MoEError('E_BACKEND_UNAVAILABLE', outcome.reason);
  return outcome.binding;
}

/** The GPU that backend 'cuda' (and 'auto', for large problems) runs on. */
export interface GpuInfo {
  name: string;
  memoryBytes: number;
  /** 'major.minor', e.g. '9.0' for an H100. */
  computeCapability: string;
}

export interface NativeInfo {
  /** Whether the native addon loaded. */
  loaded: boolean;
  /** Whether it sees a usable GPU (backend 'cuda' can run). */
  cudaAvailable: boolean;
  /** Which GPU, where there is one. */
  gpu?: GpuInfo;
  /** Why no usable GPU was found (no driver, no device, ...), where the addon loaded. */
  gpuUnavailable?: string;
  /** Why the addon did not load. */
  reason?: string;
  /** Where the addon was loaded from. */
  from?: string;
}

/** Whether the addon loaded (and from where), and whether it sees a usable GPU (and which). Never throws. */
export function nativeInfo(): NativeInfo {
  const outcome = addon();
  if (outcome.binding === null) return { loaded: false, cudaAvailable: false, reason: outcome.reason };
  let gpuUnavailable: string;
  try {
    const device = outcome.binding.deviceInfo();
    if (device.available && device.name !== undefined) {
      const gpu = { name: device.name, memoryBytes: device.memoryBytes ?? 0, computeCapability: device.computeCapability ?? '' };
      return { loaded: true, cudaAvailable: true, gpu, from: outcome.from };
    }
    gpuUnavailable = device.reason ?? 'unknown reason';
  } catch (e) {
    gpuUnavailable = `the device query failed: ${(e as Error).message}`;
  }
  return { loaded: true, cudaAvailable: false, gpuUnavailable, from: outcome.from };
}

/** A native error (an Error with a `code` of src/errors.ts) as a MoEError; anything else passes through. */
export function toMoEError(e: unknown, details?: Record<string, unknown>): unknown {
  if (e instanceof MoEError || !(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code in ERROR_CODES) return new MoEError(code as ErrorCode, e.message, details);
  return e;
}

/**
 * From this many values on, the addon copies and scans X (below, one thread in TypeScript is as fast); the
 * addon itself goes multi-threaded from the same size (moe_core::cpu::streaming_threads).
 */
const NATIVE_FROM = 1 << 20;

/**
 * The estimator's scan of X for NaN/±Inf: the addon's, on all cores, where it loads and X is large (the scan
 * every native fit and query makes again in Rust); src/input.ts's one-thread loop otherwise. The same index.
 */
export function scanNonFinite(data: Float64Array): number {
  const binding = addon().binding;
  return binding === null || data.length < NATIVE_FROM ? firstNonFinite(data) : mapped(() => binding.firstNonFinite(data));
}

/**
 * X with a first column of ones, copied by the addon on all cores (at 10⁸ values the one-threaded TypeScript
 * copy takes seconds, mostly first touches of the new memory); null where the addon does not load or X is
 * small, and the caller copies in TypeScript (src/input.ts `withIntercept`, the same values).
 */
export function withInterceptNative(m: DenseMatrix): DenseMatrix | null {
  const binding = addon().binding;
  if (binding === null || m.rows * m.cols < NATIVE_FROM) return null;
  return { data: mapped(() => binding.withIntercept({ x: m.data, n: m.rows, d: m.cols })), rows: m.rows, cols: m.cols + 1 };
}

/** Runs a native call, rethrowing its coded errors as MoEError. */
function mapped<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw toMoEError(e);
  }
}

/**
 * A fit's connection to its hooks: forwards records to `onIteration`, keeps them for `error.details.partial`
 * on abort, and turns the AbortSignal into the addon's cancel token.
 */
class FitSession {
  readonly token: CancelToken;
  /** The records of the latest restart to begin (the index of which is `restart`). */
  private readonly records: IterationRecord[] = [];
  private restart = -1;
  private readonly detach: () => void;

  constructor(binding: NativeBinding, private readonly hooks: FitHooks) {
    const token = binding.createCancelToken();
    this.token = token;
    const signal = hooks.signal;
    const onAbort = (): void => token.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.detach = () => signal?.removeEventListener('abort', onAbort);
  }

  readonly onIteration = (record: IterationRecord): void => {
    if (record.iter === 0) { // every restart begins with its iteration 0
      this.restart++;
      this.records.length = 0;
    }
    this.records.push(record);
    this.hooks.onIteration?.(record);
  };

  /**
   * The error a failed fit throws: coded native errors as MoEError with `details.partial`, as the reference:
   * `{ params, iterations }` when the native fit stopped with a state to report (E_ABORTED, E_NON_FINITE),
   * else the records of the failing restart (the addon's `error.restart`) received so far, or null before its
   * first record.
   */
  fail(e: unknown): unknown {
    const failed = e as { partial?: FitResult; restart?: number } | null;
    const native = failed?.partial;
    const ownRecords = this.records.length > 0 && (failed?.restart ?? this.restart) === this.restart;
    const partial = native ? { params: native.params, iterations: native.iterations }
      : ownRecords ? { iterations: this.records } : null;
    return toMoEError(e, { partial });
  }

  close(): void {
    this.detach();
  }
}

/** An already-aborted signal stops a fit before any native work (the reference does the same). */
function throwIfAborted(hooks: FitHooks): void {
  if (hooks.signal?.aborted) throw new MoEError('E_ABORTED', 'the fit was aborted', { partial: null });
}

/** The Rust CPU backend or the CUDA backend, through the addon. */
export class NativeBackend implements ComputeBackend {
  constructor(readonly name: NativeKind, private readonly binding: NativeBinding, private readonly threads = 0) {}

  async fit(req: FitRequest, hooks: FitHooks): Promise<FitResult> {
    return (await this.fitRestarts(asRestarts(req), hooks))[0]!;
  }

  fitSync(req: FitRequest, hooks: FitHooks): FitResult {
    return this.fitRestartsSync(asRestarts(req), hooks)[0]!;
  }

  async fitRestarts(req: RestartsRequest, hooks: FitHooks): Promise<FitResult[]> {
    throwIfAborted(hooks);
    const session = new FitSession(this.binding, hooks);
    try {
      return await this.binding.fit({ ...req, backend: this.name }, session.onIteration, session.token);
    } catch (e) {
      throw session.fail(e);
    } finally {
      session.close();
    }
  }

  fitRestartsSync(req: RestartsRequest, hooks: FitHooks): FitResult[] {
    throwIfAborted(hooks);
    const session = new FitSession(this.binding, hooks);
    try {
      return this.binding.fitSync({ ...req, backend: this.name }, session.onIteration, session.token);
    } catch (e) {
      throw session.fail(e);
    } finally {
      session.close();
    }
  }

  private query(data: ProblemData, model: ModelSpec, params: Float64Array): NativeQuery {
    return { data, model, params, backend: this.name, threads: this.threads };
  }

  evaluate(data: ProblemData, model: ModelSpec, params: Float64Array): { nll: number; objective: number } {
    return mapped(() => this.binding.evaluate(this.query(data, model, params)));
  }

  posterior(data: ProblemData, model: ModelSpec, params: Float64Array): Float64Array {
    return mapped(() => this.binding.posterior(this.query(data, model, params)));
  }

  information(data: ProblemData, model: ModelSpec, params: Float64Array,
    opts: { method: 'auto' | 'dense' | 'lanczos'; steps: number }): InformationResult {
    return mapped(() => this.binding.information({ ...this.query(data, model, params), ...opts }));
  }

  /**
   * On the CPU backend whichever native backend this is. A prediction is one pass over X with few FLOPs per
   * byte; on the GPU it would first have to copy X there (8·n·d bytes over the bus), about as long as the
   * CPU's own pass takes, so the CUDA backend has no prediction kernel (bench/RESULTS.md, predictions).
   */
  predict(x: Float64Array, n: number, model: ModelSpec, params: Float64Array): Float64Array {
    const d = model.d;
    return mapped(() => this.binding.predict({ data: { x, n, d }, model, params, backend: 'cpu', threads: this.threads }));
  }

  gateOnlyEm(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): Float64Array {
    return mapped(() => this.binding.gateOnlyEm({ ...this.query(data, model, params), fit }));
  }

  startFromAssignment(data: ProblemData, model: ModelSpec, fit: FitSpec, assignment: Uint32Array): Float64Array {
    return mapped(() => this.binding.startFromAssignment({ data, model, fit, assignment, backend: this.name, threads: this.threads }));
  }

  /** On the CPU's threads whichever native backend this is (like `predict`). */
  kmeansClusters(data: ProblemData, model: ModelSpec, seed: number): Uint32Array {
    return mapped(() => this.binding.kmeansClusters({ data, model, seed, threads: this.threads }));
  }

  /** On the CPU's threads whichever native backend this is (two Gram passes, like `kmeansClusters`). */
  momentSums(data: ProblemData, model: ModelSpec): MomentSums {
    return mapped(() => this.binding.momentSums({ data, model, threads: this.threads }));
  }
}

/**
 * The native backend of the given kind. Throws MoEError E_BACKEND_UNAVAILABLE when the addon does not
 * load, or (for 'cuda') when no usable GPU is found. `options.threads` sets the CPU threads of
 * evaluate/posterior/information (fits use `FitSpec.threads`); 0 = all cores.
 */
export function loadNativeBackend(kind: NativeKind, options: { threads?: number } = {}): ComputeBackend {
  const binding = loadNativeBinding();
  if (kind === 'cuda') {
    const device = mapped(() => binding.deviceInfo());
    if (!device.available) {
      throw new MoEError('E_BACKEND_UNAVAILABLE', `no usable GPU for backend 'cuda': ${device.reason ?? 'unknown reason'}`);
    }
  }
  return new NativeBackend(kind, binding, options.threads ?? 0);
}
