/** The human-readable summary `moe-em fit` prints: fit statistics, parameters per expert, MIM diagnostics. */
import type { FitHistory, InformationResult, MoEParams } from '../types.js';
import { formatNumber } from './tables.js';

export interface FitSummary {
  params: MoEParams;
  history: FitHistory;
  rows: number;
  features: string[];
  aic: number;
  bic: number;
  nParams: number;
  /** The MIM diagnostics, or why they are missing. */
  information: InformationResult | { error: string };
  /** The GPU's name, when the CUDA backend ran the fit. */
  gpu?: string;
}

function vec(v: ArrayLike<number>): string {
  return `[${Array.from(v, (x) => formatNumber(x)).join(', ')}]`;
}

export function formatFitSummary(s: FitSummary): string {
  const p = s.params;
  const h = s.history;
  const last = h.iterations[h.iterations.length - 1];
  const names = p.intercept ? ['(intercept)', ...s.features] : s.features;
  const lines: string[] = [];
  const model = p.symmetric ? `symmetric 2-expert ${p.experts} model` : `${p.k} ${p.experts} expert${p.k === 1 ? '' : 's'}`;
  lines.push(`Model: ${model}; ${s.rows} rows × ${names.length} columns; algorithm ${String(h.settings['algorithm'] ?? '?')}, backend ${h.backend}`
    + (s.gpu !== undefined ? ` (${s.gpu})` : ''));
  lines.push(`Iterations: ${h.nIter} (${h.converged ? 'converged' : 'stopped'}: ${h.reason})`
    + (h.restarts.length > 1 ? `; best of ${h.restarts.length} restarts (#${h.bestRestart})` : ''));
  if (last) lines.push(`NLL (mean): ${formatNumber(last.nll, 6)}   objective: ${formatNumber(last.objective, 6)}`);
  lines.push(`AIC: ${formatNumber(s.aic, 6)}   BIC: ${formatNumber(s.bic, 6)}   free parameters: ${s.nParams}`);
  if ('error' in s.information) {
    lines.push(`MIM: not computed (${s.information.error})`);
  } else {
    const info = s.information;
    lines.push(`MIM λ_max: ${formatNumber(info.lambdaMax)}   predicted EM rate: ${formatNumber(info.rate)} per iteration`
      + `   α = 1 − λ_max = ${formatNumber(info.alpha)}   (${info.method}, p = ${info.p})`);
  }
  lines.push(`Columns: ${names.join(', ')}`);
  if (p.symmetric) {
    lines.push(`Gate w: ${vec(p.w ?? [])}`);
    lines.push(`Expert β: ${vec(p.beta ?? [])}` + (p.sigma !== undefined ? `   σ = ${formatNumber(p.sigma)}` : ''));
    return lines.join('\n') + '\n';
  }
  for (let j = 0; j < p.k; j++) {
    lines.push(`Expert ${j}:`);
    if (p.gate) lines.push(`  gate:  ${vec(p.gate[j] ?? [])}${j === p.k - 1 && p.k > 1 ? '  (reference, fixed 0)' : ''}`);
    const coef = p.coef?.[j];
    if (coef !== undefined && Array.isArray(coef[0])) {
      (coef as number[][]).forEach((row, c) => lines.push(`  class ${c}: ${vec(row)}`));
    } else if (coef !== undefined) {
      lines.push(`  coef:  ${vec(coef as number[])}`);
    }
    if (p.sigma2) lines.push(`  σ²:    ${formatNumber(p.sigma2[j]!)}`);
  }
  return lines.join('\n') + '\n';
}
