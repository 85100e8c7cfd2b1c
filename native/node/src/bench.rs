//! Benchmark exports: the FLOP rate of moe-core's weighted-Gram kernel (the hot loop of every M-step and
//! information matrix) and, in the same process, OpenBLAS DGEMM at the same shape as the reference rate.
//! Inputs are synthetic and deterministic; each timing is repeated and the median reported.
use crate::blas::OpenBlas;
use crate::js::{guard, Env, Failure, JsResult};
use crate::sys::*;
use std::time::Instant;

struct Shape {
    n: usize,
    d: usize,
    m: usize,
    threads: usize,
    reps: usize,
}

fn read_shape(env: Env, opts: napi_value) -> JsResult<Shape> {
    let count = |name: &str, default: usize| -> JsResult<usize> {
        match env.get_opt(opts, name, "options")? {
            None => Ok(default),
            Some(v) => env.count(v, name),
        }
    };
    let shape = Shape {
        n: count("n", 100_000)?,
        d: count("d", 50)?,
        m: count("m", 4)?,
        threads: count("threads", 0)?,
        reps: count("reps", 5)?.max(1),
    };
    if shape.n == 0 || shape.d == 0 || shape.m == 0 {
        return Err(Failure::option("n, d and m must be positive"));
    }
    Ok(shape)
}

/// Deterministic values in [-1, 1) (a 64-bit LCG: the benchmark needs data, not statistics).
fn synthetic(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64) / ((1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        0.5 * (xs[mid - 1] + xs[mid])
    }
}

/// Times `run` once to warm up, then `reps` times; returns `{ seconds, medianSeconds, flops, gflops }`.
fn timed(env: Env, reps: usize, flops: f64, mut run: impl FnMut() -> JsResult<()>) -> JsResult<napi_value> {
    run()?;
    let mut seconds = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        run()?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    let med = median(seconds.clone());
    let obj = env.object()?;
    env.set(obj, "seconds", env.number_array(&seconds)?)?;
    env.set(obj, "medianSeconds", env.num(med)?)?;
    env.set(obj, "flops", env.num(flops)?)?;
    env.set(obj, "gflops", env.num(flops / med / 1e9)?)?;
    Ok(obj)
}

/// `benchWeightedGram({ n, d, m, threads, reps })`: m weighted Gram matrices Σ_i w_ij x_i x_iᵀ over n rows.
/// FLOPs counted as moe-core counts them: m·n·d·(d+1) (symmetric half, one multiply-add per entry).
pub unsafe extern "C" fn bench_weighted_gram(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let s = read_shape(env, argv[0])?;
        let x = synthetic(s.n * s.d, 1);
        let w: Vec<f64> = synthetic(s.n * s.m, 2).iter().map(|v| 0.5 * (v + 1.0)).collect();
        let flops = (s.m * s.n * s.d * (s.d + 1)) as f64;
        timed(env, s.reps, flops, || {
            moe_core::weighted_gram(&x, s.n, s.d, &w, s.m, s.threads).map(|_| ()).map_err(Failure::from)
        })
    })
}

/// `benchDgemm({ n, d, m, reps })`: OpenBLAS `C (d × m·d) = Xᵀ [W_1 X … W_m X]`, the same products as m
/// Gram matrices done by a general GEMM (2·n·d·m·d FLOPs, no symmetry saving). Returns
/// `{ available: false, reason }` when OpenBLAS is not installed.
pub unsafe extern "C" fn bench_dgemm(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let s = read_shape(env, argv[0])?;
        let blas = match OpenBlas::load() {
            Ok(blas) => blas,
            Err(reason) => {
                let obj = env.object()?;
                env.set(obj, "available", env.bool(false)?)?;
                env.set(obj, "reason", env.str(&reason)?)?;
                return Ok(obj);
            }
        };
        let x = synthetic(s.n * s.d, 1);
        let b = synthetic(s.n * s.d * s.m, 3);
        let mut c = vec![0.0; s.d * s.d * s.m];
        let flops = 2.0 * (s.n * s.d * s.d * s.m) as f64;
        let obj = timed(env, s.reps, flops, || {
            blas.gram_shaped_dgemm(&x, s.n, s.d, &b, s.d * s.m, &mut c);
            Ok(())
        })?;
        env.set(obj, "available", env.bool(true)?)?;
        env.set(obj, "library", env.str(blas.library)?)?;
        if let Some(t) = blas.threads() {
            env.set(obj, "threads", env.num(t as f64)?)?;
        }
        Ok(obj)
    })
}
