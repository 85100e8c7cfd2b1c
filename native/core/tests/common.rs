//! Shared fixtures: small synthetic problems with fixed seeds.
#![allow(dead_code)]

use moe_core::model::Layout;
use moe_core::rng::Rng;
use moe_core::*;

pub struct Problem {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub s: Option<Vec<f64>>,
    pub n: usize,
    pub d: usize,
    pub model: ModelSpec,
}

impl Problem {
    pub fn data(&self) -> Data<'_> {
        Data { x: &self.x, n: self.n, d: self.d, y: &self.y, s: self.s.as_deref() }
    }
}

/// A problem of the given family with an intercept column, labels from a random true model.
pub fn problem(
    experts: ExpertKind,
    symmetric: bool,
    k: usize,
    n: usize,
    d_raw: usize,
    seed: u32,
    weighted: bool,
) -> Problem {
    let mut rng = Rng::new(seed);
    let d = d_raw + 1;
    let classes = match experts {
        ExpertKind::Linear => 0,
        ExpertKind::Logistic => 2,
        ExpertKind::Multinomial => 3,
    };
    let mut x = vec![0.0; n * d];
    for i in 0..n {
        x[i * d] = 1.0;
        for f in 1..d {
            x[i * d + f] = rng.normal();
        }
    }
    let gate: Vec<f64> = (0..k * d).map(|_| 1.5 * rng.normal()).collect();
    let rows = if experts == ExpertKind::Multinomial { classes } else { 1 };
    let coef: Vec<f64> = (0..k * rows * d).map(|_| 2.0 * rng.normal()).collect();
    let mut y = vec![0.0; n];
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        let dot = |v: &[f64]| v.iter().zip(xi).map(|(a, b)| a * b).sum::<f64>();
        // Sample a component from the gate.
        let scores: Vec<f64> = (0..k).map(|j| dot(&gate[j * d..(j + 1) * d])).collect();
        let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ps: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
        let tot: f64 = ps.iter().sum();
        let mut u = rng.uniform() * tot;
        let mut j = 0;
        while j + 1 < k && u > ps[j] {
            u -= ps[j];
            j += 1;
        }
        let sign = if symmetric {
            if j == 0 {
                1.0
            } else {
                -1.0
            }
        } else {
            1.0
        };
        let bj = if symmetric { &coef[..d] } else { &coef[j * rows * d..(j + 1) * rows * d] };
        y[i] = match experts {
            ExpertKind::Linear => sign * dot(&bj[..d]) + 0.5 * rng.normal(),
            ExpertKind::Logistic => {
                let p = 1.0 / (1.0 + (-sign * dot(&bj[..d])).exp());
                let one = rng.uniform() < p;
                if symmetric {
                    if one {
                        1.0
                    } else {
                        -1.0
                    }
                } else if one {
                    1.0
                } else {
                    0.0
                }
            }
            ExpertKind::Multinomial => {
                let sc: Vec<f64> =
                    (0..classes).map(|c| if c + 1 == classes { 0.0 } else { dot(&bj[c * d..(c + 1) * d]) }).collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ps: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
                let tot: f64 = ps.iter().sum();
                let mut u = rng.uniform() * tot;
                let mut c = 0;
                while c + 1 < classes && u > ps[c] {
                    u -= ps[c];
                    c += 1;
                }
                c as f64
            }
        };
    }
    let s = if weighted { Some((0..n).map(|_| 0.5 + rng.uniform()).collect()) } else { None };
    let model = ModelSpec {
        experts,
        symmetric,
        k: if symmetric { 2 } else { k },
        d,
        n_classes: classes,
        noise: if symmetric && experts == ExpertKind::Linear { Noise::Known(0.5) } else { Noise::Fitted },
        ridge: 0.0,
        intercept: true,
    };
    Problem { x, y, s, n, d, model }
}

/// Random parameters in the flat layout (σ² in [0.5, 1.5]).
pub fn random_params(model: &ModelSpec, seed: u32) -> Vec<f64> {
    let lay = moe_core::model::Layout::new(model);
    let mut rng = Rng::new(seed);
    let mut p: Vec<f64> = (0..lay.size).map(|_| rng.uniform() - 0.5).collect();
    if let Some(s) = lay.sigma2 {
        for j in 0..model.k {
            p[s + j] = 0.5 + rng.uniform();
        }
    }
    moe_core::mstep::reference_params(model, &mut p);
    p
}

pub fn all_families() -> Vec<(ExpertKind, bool)> {
    vec![
        (ExpertKind::Linear, false),
        (ExpertKind::Logistic, false),
        (ExpertKind::Multinomial, false),
        (ExpertKind::Linear, true),
        (ExpertKind::Logistic, true),
    ]
}

/// A copy of the full parameters with free parameter `q` (ALGORITHMS §1 order) moved by `delta`.
pub fn with_free(model: &ModelSpec, params: &[f64], q: usize, delta: f64) -> Vec<f64> {
    let lay = Layout::new(model);
    let mut p = params.to_vec();
    let d = model.d;
    if model.symmetric || q < lay.gate_free {
        p[q] += delta;
        return p;
    }
    let j = (q - lay.gate_free) / lay.expert_free;
    let r = (q - lay.gate_free) % lay.expert_free;
    if lay.fitted_sigma && r == d {
        p[lay.sigma2.unwrap() + j] += delta;
    } else {
        p[lay.coef + j * lay.coef_per_expert + r] += delta;
    }
    p
}
