/**
 * Preconditioned conjugate gradients for the Newton-CG M-step (docs/ALGORITHMS.md §3): solves A Δ = g with
 * A given only through products and the preconditioner through its inverse, start Δ = 0, stop when
 * ‖r‖ ≤ η‖g‖ or after `maxIter` iterations, and stop at the first non-positive curvature (returning the preconditioned gradient
 * when that happens on the first iteration).
 */
export interface CgOptions {
  maxIter: number;
  /** Relative residual target η. */
  eta: number;
}

/** The Jacobi preconditioner z = r / diag(A) (non-positive entries are treated as 1). */
export function jacobi(diag: Float64Array): (src: Float64Array, dst: Float64Array) => void {
  return (src, dst) => {
    for (let i = 0; i < diag.length; i++) dst[i] = diag[i]! > 0 ? src[i]! / diag[i]! : src[i]!;
  };
}

/**
 * @param applyA writes A·v into out
 * @param precondition writes M⁻¹·r into z (M the preconditioner: `jacobi(diag(A))`, or the gate's Kronecker)
 * @returns the number of CG iterations run; the solution is written to `delta`
 */
export function preconditionedCg(applyA: (v: Float64Array, out: Float64Array) => void, g: Float64Array,
  precondition: (r: Float64Array, z: Float64Array) => void, opts: CgOptions, delta: Float64Array): number {
  const p = g.length;
  delta.fill(0);
  const norm = (v: Float64Array): number => {
    let s = 0;
    for (let i = 0; i < p; i++) s += v[i]! * v[i]!;
    return Math.sqrt(s);
  };
  const target = opts.eta * norm(g);
  const r = Float64Array.from(g);
  if (opts.maxIter <= 0 || norm(r) <= target) return 0;
  const z = new Float64Array(p);
  const q = new Float64Array(p);
  const aq = new Float64Array(p);
  precondition(r, z);
  q.set(z);
  let rz = 0;
  for (let i = 0; i < p; i++) rz += r[i]! * z[i]!;
  let it = 0;
  for (;;) {
    applyA(q, aq);
    let curvature = 0;
    for (let i = 0; i < p; i++) curvature += q[i]! * aq[i]!;
    if (!(curvature > 0)) {
      if (it === 0) delta.set(z); // M⁻¹g: r is still g
      break;
    }
    const alpha = rz / curvature;
    for (let i = 0; i < p; i++) {
      delta[i] += alpha * q[i]!;
      r[i] -= alpha * aq[i]!;
    }
    it++;
    // The stopping tests before the next preconditioner apply, which a finished CG would not use.
    if (it >= opts.maxIter || norm(r) <= target) break;
    precondition(r, z);
    let rzNew = 0;
    for (let i = 0; i < p; i++) rzNew += r[i]! * z[i]!;
    const beta = rzNew / rz;
    rz = rzNew;
    for (let i = 0; i < p; i++) q[i] = z[i]! + beta * q[i]!;
  }
  return it;
}
