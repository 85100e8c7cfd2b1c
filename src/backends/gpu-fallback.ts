/**
 * What `backend: 'auto'` runs when it picks the GPU: the CUDA backend, until it cannot serve a call. 'auto'
 * promises the fastest backend that can run, so two failures of the CUDA backend are not the caller's errors:
 * - E_GPU_OOM: the problem does not fit in the GPU's memory, while it still fits on the CPU;
 * - E_BACKEND_UNAVAILABLE from a call: the GPU is there but the backend cannot start on it (a library or the
 *   kernels for this device missing in a way the cheap availability check did not see).
 * Then that call is re-run on the CPU backend, and every later call of this backend goes to the CPU directly
 * (its `name` says which one ran). The CPU backend computes the same iterates (tested against each other to
 * relative 1e-9), so the switch changes no result beyond that tolerance. A process warning (code
 * MOE_EM_GPU_FALLBACK) says so, once per process, with the reason.
 *
 * A fit that fails after it has delivered iteration records is re-run from its start on the CPU (every
 * restart of it: the CPU backend computes the same iterates); the caller's `onIteration` is not given again
 * the iterations it already received, so it sees one unbroken sequence, and the returned history is the CPU
 * run's. Every other error — E_GPU (a CUDA failure that is a fault to report), E_ABORTED, bad input — is
 * thrown as it is. `backend: 'cuda'` never falls back.
 */
import { isMoEError } from '../errors.js';
import type { InformationResult } from '../types.js';
import {
  asRestarts,
  type ComputeBackend, type FitHooks, type FitRequest, type FitResult, type FitSpec, type ModelSpec, type MomentSums,
  type ProblemData, type RestartsRequest,
} from './backend.js';

export const GPU_FALLBACK_WARNING = 'MOE_EM_GPU_FALLBACK';
let warned = false;

/** The failures after which the CPU backend serves instead (see above). */
function gpuCannotServe(e: unknown): boolean {
  return isMoEError(e) && (e.code === 'E_GPU_OOM' || e.code === 'E_BACKEND_UNAVAILABLE');
}

export class GpuWithCpuFallback implements ComputeBackend {
  private active: ComputeBackend;

  /** `cpu` is made only when needed (loading it cannot fail where the CUDA backend loaded: same addon). */
  constructor(private readonly gpu: ComputeBackend, private readonly cpu: () => ComputeBackend) {
    this.active = gpu;
  }

  /** The backend that ran the last call: 'cuda', or 'cpu' once the CUDA backend could not serve one. */
  get name(): ComputeBackend['name'] {
    return this.active.name;
  }

  async fit(req: FitRequest, hooks: FitHooks): Promise<FitResult> {
    return (await this.fitRestarts(asRestarts(req), hooks))[0]!;
  }

  fitSync(req: FitRequest, hooks: FitHooks): FitResult {
    return this.fitRestartsSync(asRestarts(req), hooks)[0]!;
  }

  async fitRestarts(req: RestartsRequest, hooks: FitHooks): Promise<FitResult[]> {
    if (this.fellBack()) return this.active.fitRestarts(req, hooks);
    const delivered = counting(hooks);
    try {
      return await this.gpu.fitRestarts(req, delivered.hooks);
    } catch (e) {
      if (!gpuCannotServe(e)) throw e;
      this.fallBack(e);
      return this.active.fitRestarts(req, delivered.skippingDelivered());
    }
  }

  fitRestartsSync(req: RestartsRequest, hooks: FitHooks): FitResult[] {
    if (this.fellBack()) return this.active.fitRestartsSync(req, hooks);
    const delivered = counting(hooks);
    try {
      return this.gpu.fitRestartsSync(req, delivered.hooks);
    } catch (e) {
      if (!gpuCannotServe(e)) throw e;
      this.fallBack(e);
      return this.active.fitRestartsSync(req, delivered.skippingDelivered());
    }
  }

  evaluate(data: ProblemData, model: ModelSpec, params: Float64Array): { nll: number; objective: number } {
    return this.call((b) => b.evaluate(data, model, params));
  }

  posterior(data: ProblemData, model: ModelSpec, params: Float64Array): Float64Array {
    return this.call((b) => b.posterior(data, model, params));
  }

  information(data: ProblemData, model: ModelSpec, params: Float64Array,
    opts: { method: 'auto' | 'dense' | 'lanczos'; steps: number }): InformationResult {
    return this.call((b) => b.information(data, model, params, opts));
  }

  predict(x: Float64Array, n: number, model: ModelSpec, params: Float64Array): Float64Array {
    return this.call((b) => b.predict(x, n, model, params));
  }

  gateOnlyEm(data: ProblemData, model: ModelSpec, fit: FitSpec, params: Float64Array): Float64Array {
    return this.call((b) => b.gateOnlyEm(data, model, fit, params));
  }

  startFromAssignment(data: ProblemData, model: ModelSpec, fit: FitSpec, assignment: Uint32Array): Float64Array {
    return this.call((b) => b.startFromAssignment(data, model, fit, assignment));
  }

  kmeansClusters(data: ProblemData, model: ModelSpec, seed: number): Uint32Array {
    return this.call((b) => b.kmeansClusters(data, model, seed));
  }

  momentSums(data: ProblemData, model: ModelSpec): MomentSums {
    return this.call((b) => b.momentSums(data, model));
  }

  /** A query (no state, no records): on the active backend, re-run on the CPU where the GPU cannot serve it. */
  private call<T>(query: (b: ComputeBackend) => T): T {
    if (this.fellBack()) return query(this.active);
    try {
      return query(this.gpu);
    } catch (e) {
      if (!gpuCannotServe(e)) throw e;
      this.fallBack(e);
      return query(this.active);
    }
  }

  private fellBack(): boolean {
    return this.active !== this.gpu;
  }

  private fallBack(cause: unknown): void {
    if (!this.fellBack()) this.active = this.cpu();
    if (!warned) {
      warned = true;
      const why = isMoEError(cause) && cause.code === 'E_GPU_OOM' ? 'the GPU ran out of memory'
        : 'the CUDA backend cannot run here';
      process.emitWarning(`moe-em: ${why} (${(cause as Error).message}); backend 'auto' runs this and later calls `
        + 'on the CPU backend', { code: GPU_FALLBACK_WARNING });
    }
  }
}

/** The caller's hooks, counting the records delivered, and the same hooks that skip those on a re-run. */
function counting(hooks: FitHooks): { hooks: FitHooks; skippingDelivered: () => FitHooks } {
  let delivered = 0;
  const onIteration = hooks.onIteration;
  if (onIteration === undefined) return { hooks, skippingDelivered: () => hooks };
  return {
    hooks: {
      ...hooks,
      onIteration: (record) => {
        delivered++;
        onIteration(record);
      },
    },
    skippingDelivered: () => {
      let seen = 0;
      return {
        ...hooks,
        onIteration: (record) => {
          if (seen++ >= delivered) onIteration(record);
        },
      };
    },
  };
}
