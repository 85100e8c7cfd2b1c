//! Time per EM iteration, the host work outside the passes, and time per pass kind, on a synthetic problem:
//! `cargo run --release -p moe-core --example em_bench -- n d k threads iterations [classes]`. Linear experts
//! by default; `classes` ≥ 2: multinomial experts with that many classes on planted data, ridge 1e-2 (gpu_bench's
//! Fashion-MNIST shape is `60000 784 2 0 3 10`).
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use moe_core::backend::{RowOp, Rows, Watched};
use moe_core::rng::Rng;
use moe_core::*;

/// A pass's label for the table: the op names (softmax ops with their task), joined for a fused pass.
fn pass_label(ops: &[(&[f64], &RowOp)]) -> String {
    ops.iter().map(|(_, op)| op.label()).collect::<Vec<_>>().join(" + ")
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let get = |i: usize, default: usize| *args.get(i).unwrap_or(&default);
    let (n, d, k, threads, iters) = (get(0, 100_000), get(1, 50), get(2, 4), get(3, 0), get(4, 5));
    let classes = get(5, 0);
    let (x, y) = if classes >= 2 { planted_multinomial(n, d, k, classes) } else { random_gate_linear(n, d, k) };
    let data = Data { x: &x, n, d, y: &y, s: None };
    let cpu = CpuBackend::new(data, threads).unwrap();
    // Count and time per pass kind.
    let stats: RefCell<BTreeMap<String, (usize, f64)>> = RefCell::new(BTreeMap::new());
    // Time inside passes since the last record: the rest of an iteration is the algorithm's host work (the
    // solves, the preconditioner), which a GPU backend waits for between its passes.
    let in_passes = std::cell::Cell::new(0.0);
    let b = Watched::new(&cpu, |_: Rows, ops: &[(&[f64], &RowOp)], took: Duration| {
        in_passes.set(in_passes.get() + took.as_secs_f64() * 1e3);
        let mut s = stats.borrow_mut();
        let e = s.entry(pass_label(ops)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += took.as_secs_f64() * 1e3;
    });
    let model = if classes >= 2 {
        ModelSpec {
            experts: ExpertKind::Multinomial,
            symmetric: false,
            k,
            d,
            n_classes: classes,
            noise: Noise::Fitted,
            ridge: 1e-2,
            intercept: false,
        }
    } else {
        ModelSpec {
            experts: ExpertKind::Linear,
            symmetric: false,
            k,
            d,
            n_classes: 0,
            noise: Noise::Fitted,
            ridge: 0.0,
            intercept: true,
        }
    };
    let spec = FitSpec { max_iter: iters, tol: 0.0, ..FitSpec::default() };
    let mut last = Instant::now();
    let (mut per_iter, mut host) = (Vec::new(), Vec::new());
    let mut nll = f64::NAN;
    fit(&b, &model, &spec, 1, None, None, &mut |record| {
        nll = record.nll;
        let wall = last.elapsed().as_secs_f64() * 1e3;
        per_iter.push(wall);
        host.push(wall - in_passes.replace(0.0));
        last = Instant::now();
        Control::Continue
    })
    .unwrap();
    let steady: Vec<f64> = per_iter[1..].to_vec();
    let mean = steady.iter().sum::<f64>() / steady.len().max(1) as f64;
    let host_mean = host[1..].iter().sum::<f64>() / steady.len().max(1) as f64;
    println!("n={n} d={d} k={k} threads={}: init {:.1} ms, EM iteration mean {mean:.1} ms {:?}, of which host work outside the passes {host_mean:.2} ms; final NLL {nll:.10}",
             cpu.threads(), per_iter[0], steady.iter().map(|v| v.round()).collect::<Vec<_>>());
    for (name, (count, ms)) in stats.borrow().iter() {
        println!("  {name:20} {count:4} passes {ms:9.1} ms ({:.2} ms/pass)", ms / *count as f64);
    }
}

/// Linear experts, an intercept column, and each row's expert drawn uniformly (a gate that does not depend on x).
fn random_gate_linear(n: usize, d: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(3);
    let x: Vec<f64> = (0..n * d).map(|i| if i % d == 0 { 1.0 } else { rng.uniform() * 2.0 - 1.0 }).collect();
    let truth: Vec<f64> = (0..k * d).map(|_| rng.uniform() * 4.0 - 2.0).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let j = rng.int(k);
            (0..d).map(|f| truth[j * d + f] * x[i * d + f]).sum::<f64>() + 0.3 * (rng.uniform() - 0.5)
        })
        .collect();
    (x, y)
}

/// gpu_bench's planted multinomial mixture, on one thread: x uniform in [−1, 1]^d, the expert the argmax of a
/// linear gate plus noise, the class the argmax of that expert's class scores plus noise.
fn planted_multinomial(n: usize, d: usize, k: usize, classes: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(7);
    let gate: Vec<f64> = (0..k * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let experts: Vec<f64> = (0..k * classes * d).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let argmax = |v: &mut dyn Iterator<Item = f64>| {
        v.enumerate().fold((0, f64::NEG_INFINITY), |b, (i, x)| if x > b.1 { (i, x) } else { b }).0
    };
    let mut x = vec![0.0; n * d];
    let mut y = vec![0.0; n];
    for (xi, yi) in x.chunks_mut(d).zip(y.iter_mut()) {
        xi.iter_mut().for_each(|v| *v = 2.0 * rng.uniform() - 1.0);
        let dot = |w: &[f64]| w.iter().zip(xi.iter()).map(|(a, b)| a * b).sum::<f64>();
        let z = argmax(&mut (0..k).map(|j| dot(&gate[j * d..(j + 1) * d]) + 0.5 * rng.uniform()));
        *yi = argmax(
            &mut (0..classes).map(|l| dot(&experts[(z * classes + l) * d..(z * classes + l + 1) * d]) + rng.uniform()),
        ) as f64;
    }
    (x, y)
}
