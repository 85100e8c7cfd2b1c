/**
 * What `backend: 'auto'` runs when it picks the GPU: the CUDA backend, until the GPU runs out of memory.
 * 'auto' promises the fastest backend that can run, and a problem too large for the GPU's memory still fits
 * on the CPU, so an E_GPU_OOM there is not the caller's error: that call is re-run on the CPU backend, and
 * every later call of this backend goes to the CPU directly (its `name` says which one ran). The CPU backend
 * computes the same iterates (tested against each other to relative 1e-9), so the switch changes no result
 * beyond that tolerance. A process warning (code MOE_EM_GPU_OOM_FALLBACK) says so, once per process.
 *
 * A fit that runs out of memory after it has delivered iteration records is re-run from its start on the CPU;
 * the caller's `onIteration` is not given again the iterations it already received, so it sees one unbroken
 * sequence, and the returned history is the CPU run's. Every other error — E_GPU (a CUDA failure other than
 * memory), E_ABORTED, bad input — is thrown as it is: only running out of memory is a property of the problem's
 * size rather than a fault to report. `backend: 'cuda'` never falls back (E_GPU_OOM reaches the caller).
 */
import { isMoEError } from '../errors.js';
import type { InformationResult } from '../types.js';
import type { ComputeBackend, FitHooks, FitRequest, FitResult, ModelSpec, ProblemData } from './backend.js';

export const GPU_OOM_WARNING = 'MOE_EM_GPU_OOM_FALLBACK';
let warned = false;

function outOfGpuMemory(e: unknown): boolean {
  return isMoEError(e) && e.code === 'E_GPU_OOM';
}

export class GpuWithCpuFallback implements ComputeBackend {
  private active: ComputeBackend;
  private fellBack = false;

  /** `cpu` is made only when needed (loading it cannot fail where the CUDA backend loaded: same addon). */
  constructor(private readonly gpu: ComputeBackend, private readonly cpu: () => ComputeBackend) {
    this.active = gpu;
  }

  /** The backend that ran the last call: 'cuda', or 'cpu' once the GPU ran out of memory. */
  get name(): ComputeBackend['name'] {
    return this.active.name;
  }

  async fit(req: FitRequest, hooks: FitHooks): Promise<FitResult> {
    if (this.fellBack) return this.active.fit(req, hooks);
    const delivered = counting(hooks);
    try {
      return await this.gpu.fit(req, delivered.hooks);
    } catch (e) {
      if (!outOfGpuMemory(e)) throw e;
      this.fallBack(e);
      return this.active.fit(req, delivered.skippingDelivered());
    }
  }

  fitSync(req: FitRequest, hooks: FitHooks): FitResult {
    if (this.fellBack) return this.active.fitSync(req, hooks);
    const delivered = counting(hooks);
    try {
      return this.gpu.fitSync(req, delivered.hooks);
    } catch (e) {
      if (!outOfGpuMemory(e)) throw e;
      this.fallBack(e);
      return this.active.fitSync(req, delivered.skippingDelivered());
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

  /** A query (no state, no records): on the active backend, re-run on the CPU after an E_GPU_OOM. */
  private call<T>(query: (b: ComputeBackend) => T): T {
    if (this.fellBack) return query(this.active);
    try {
      return query(this.gpu);
    } catch (e) {
      if (!outOfGpuMemory(e)) throw e;
      this.fallBack(e);
      return query(this.active);
    }
  }

  private fallBack(cause: unknown): void {
    if (!this.fellBack) this.active = this.cpu();
    this.fellBack = true;
    if (!warned) {
      warned = true;
      process.emitWarning(`moe-em: the GPU ran out of memory (${(cause as Error).message}); backend 'auto' `
        + 'runs this and later calls on the CPU backend', { code: GPU_OOM_WARNING });
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
