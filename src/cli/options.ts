/**
 * Option-value parsers for commander. They throw commander's InvalidArgumentError, which commander turns
 * into `moe-em: error: option '...' argument '...' is invalid. <reason>` and a usage exit (2).
 */
import { InvalidArgumentError } from 'commander';
import type { AlgorithmKind, BackendKind, ExpertKind, InitKind, MStepSolver } from '../types.js';

export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const v = Number(raw);
    if (!/^[+-]?\d+$/.test(raw.trim()) || !Number.isSafeInteger(v)) throw new InvalidArgumentError('Not an integer.');
    if (v < min || v > max) throw new InvalidArgumentError(`Must be between ${min} and ${max}.`);
    return v;
  };
}

export function real(min: number, opts: { exclusive?: boolean } = {}) {
  return (raw: string): number => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v)) throw new InvalidArgumentError('Not a finite number.');
    if (opts.exclusive ? v <= min : v < min) {
      throw new InvalidArgumentError(`Must be ${opts.exclusive ? '>' : '≥'} ${min}.`);
    }
    return v;
  };
}

/** A comma-separated list of positive numbers (step-size grids, SNR lists). */
export function positiveList(raw: string): number[] {
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v <= 0)) {
    throw new InvalidArgumentError('Expected a comma-separated list of positive numbers.');
  }
  return values;
}

function oneOf<T extends string>(allowed: readonly T[]) {
  return (raw: string): T => {
    if (!(allowed as readonly string[]).includes(raw)) throw new InvalidArgumentError(`Expected one of: ${allowed.join(', ')}.`);
    return raw as T;
  };
}

export const EXPERT_KINDS: readonly ExpertKind[] = ['linear', 'logistic', 'multinomial'];
export const ALGORITHMS: readonly AlgorithmKind[] = ['em', 'gradient-em', 'gd'];
export const BACKENDS: readonly BackendKind[] = ['js', 'cpu', 'cuda', 'auto'];
export const SOLVERS: readonly MStepSolver[] = ['auto', 'newton', 'newton-cg', 'gradient'];
/** The named initialisations (`init` also takes a parameter object, which the command line does not offer). */
export const INITS: readonly InitKind[] = ['random', 'moments', 'kmeans'];

export const expertKind = oneOf(EXPERT_KINDS);
export const initKind = oneOf(INITS);
export const algorithmKind = oneOf(ALGORITHMS);
export const backendKind = oneOf(BACKENDS);
export const solverKind = oneOf(SOLVERS);
