/** Dense linear algebra used by the reference implementation (see docs/ALGORITHMS.md §6). */
export * from './dense.js';
export * from './cholesky.js';
export * from './cg.js';
export * from './gram.js';
export * from './eigen.js';
export * from './lanczos.js';
