/**
 * Backend resolution: 'js' is the TypeScript reference; 'cpu' and 'cuda' are the native backends (they throw
 * E_BACKEND_UNAVAILABLE when they cannot run here); 'auto' picks CUDA for large problems when a GPU is usable
 * (moving to the CPU backend if the GPU runs out of memory or the CUDA backend cannot start on it:
 * src/backends/gpu-fallback.ts), else the CPU
 * backend when the native addon loads, else the TypeScript reference with a one-time warning.
 */
import type { BackendKind } from '../types.js';
import type { ComputeBackend } from './backend.js';
import { GpuWithCpuFallback } from './gpu-fallback.js';
import { jsBackend } from './js.js';
import { loadNativeBackend, nativeInfo } from './native.js';

/**
 * 'auto' uses CUDA only when n·d is at least this. bench/GPU.md (H100, EM, linear k = 3) measured CUDA faster
 * per iteration at every size from n·d = 2e4 (0.62 vs 3.71 ms against 16 CPU threads), but a fit also pays
 * the GPU's one-off start-up (context, cuBLAS handle, module load). From n·d = 2e5 on a fit saves ≈ 4.5 ms
 * per iteration (≈ 1 s over the default 200 iterations), which covers that start-up; below, the CPU backend
 * finishes small fits sooner.
 */
export const CUDA_CROSSOVER_ND = 200_000;

let warnedFallback = false;

export interface BackendChoiceOptions {
  /** CPU threads for the native backend's evaluate/posterior/information (0 = all cores). */
  threads?: number;
}

/** The backend for `kind` and a problem of n·d = `problemSize`. */
export function resolveBackend(kind: BackendKind, problemSize: number, opts: BackendChoiceOptions = {}): ComputeBackend {
  if (kind === 'js') return jsBackend;
  if (kind === 'cpu' || kind === 'cuda') return loadNativeBackend(kind, { threads: opts.threads ?? 0 });
  const info = nativeInfo();
  if (info.loaded) {
    if (info.cudaAvailable && problemSize >= CUDA_CROSSOVER_ND) {
      try {
        const cuda = loadNativeBackend('cuda', { threads: opts.threads ?? 0 });
        return new GpuWithCpuFallback(cuda, () => loadNativeBackend('cpu', { threads: opts.threads ?? 0 }));
      } catch {
        // A GPU that was visible but cannot be used: the CPU backend computes the same iterates.
      }
    }
    return loadNativeBackend('cpu', { threads: opts.threads ?? 0 });
  }
  if (!warnedFallback) {
    warnedFallback = true;
    process.emitWarning(`moe-em: native backend unavailable (${info.reason ?? 'unknown reason'}); using the `
      + 'TypeScript reference backend', { code: 'MOE_EM_JS_FALLBACK' });
  }
  return jsBackend;
}
