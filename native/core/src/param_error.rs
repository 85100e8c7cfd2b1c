//! Distance between fitted and true parameters, invariant to the model's symmetries (ALGORITHMS §8;
//! src/data/param-error.ts).

use crate::api::{ExpertKind, ModelSpec};
use crate::model::Layout;

const EXHAUSTIVE_MAX_K: usize = 8;

fn centred_gate(params: &[f64], k: usize, d: usize) -> Vec<f64> {
    let mut g = params[..k * d].to_vec();
    for f in 0..d {
        let mut mean = 0.0;
        for j in 0..k {
            mean += g[j * d + f];
        }
        mean /= k as f64;
        for j in 0..k {
            g[j * d + f] -= mean;
        }
    }
    g
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn best_permutation_cost(cost: &[f64], k: usize) -> f64 {
    fn visit(row: usize, acc: f64, k: usize, cost: &[f64], used: &mut [bool], best: &mut f64) {
        if acc >= *best {
            return;
        }
        if row == k {
            *best = acc;
            return;
        }
        for col in 0..k {
            if used[col] {
                continue;
            }
            used[col] = true;
            visit(row + 1, acc + cost[row * k + col], k, cost, used, best);
            used[col] = false;
        }
    }
    let mut best = f64::INFINITY;
    visit(0, 0.0, k, cost, &mut vec![false; k], &mut best);
    best
}

fn greedy_matching_cost(cost: &[f64], coef_cost: &[f64], k: usize) -> f64 {
    let (mut row_used, mut col_used) = (vec![false; k], vec![false; k]);
    let mut total = 0.0;
    for _ in 0..k {
        let (mut br, mut bc, mut bv) = (0, 0, f64::INFINITY);
        for r in 0..k {
            if row_used[r] {
                continue;
            }
            for c in 0..k {
                if !col_used[c] && coef_cost[r * k + c] < bv {
                    bv = coef_cost[r * k + c];
                    br = r;
                    bc = c;
                }
            }
        }
        row_used[br] = true;
        col_used[bc] = true;
        total += cost[br * k + bc];
    }
    total
}

pub fn parameter_error(model: &ModelSpec, params: &[f64], truth: &[f64]) -> f64 {
    if model.symmetric {
        let d = model.d;
        let len = 2 * d;
        let (mut minus, mut plus) = (0.0, 0.0);
        // SymMoLogE is also unchanged when w and β trade places (its density is symmetric in them).
        let swaps = matches!(model.experts, ExpertKind::Logistic);
        let (mut swap_minus, mut swap_plus) = (0.0, 0.0);
        for q in 0..len {
            minus += (params[q] - truth[q]) * (params[q] - truth[q]);
            plus += (params[q] + truth[q]) * (params[q] + truth[q]);
            if swaps {
                let swapped = truth[(q + d) % len];
                swap_minus += (params[q] - swapped) * (params[q] - swapped);
                swap_plus += (params[q] + swapped) * (params[q] + swapped);
            }
        }
        let best = f64::min(minus, plus);
        return if swaps { best.min(swap_minus).min(swap_plus).sqrt() } else { best.sqrt() };
    }
    let (k, d) = (model.k, model.d);
    let lay = Layout::new(model);
    let g = centred_gate(params, k, d);
    let g_star = centred_gate(truth, k, d);
    let len = lay.coef_per_expert;
    let mut cost = vec![0.0; k * k];
    let mut coef_cost = vec![0.0; k * k];
    for a in 0..k {
        for bb in 0..k {
            let cc = squared_distance(
                &params[lay.coef + a * len..lay.coef + (a + 1) * len],
                &truth[lay.coef + bb * len..lay.coef + (bb + 1) * len],
            );
            coef_cost[a * k + bb] = cc;
            cost[a * k + bb] = cc + squared_distance(&g[a * d..(a + 1) * d], &g_star[bb * d..(bb + 1) * d]);
        }
    }
    let total = if k <= EXHAUSTIVE_MAX_K {
        best_permutation_cost(&cost, k)
    } else {
        greedy_matching_cost(&cost, &coef_cost, k)
    };
    total.sqrt()
}
