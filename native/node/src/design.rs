//! The estimator's preparation of a large X, on all cores (src/input.ts does the same on one thread, the
//! fallback without the addon):
//! - `withIntercept({ x, n, d }) → Float64Array`: X with a first column of ones (n × (d + 1), row-major), the
//!   design for `intercept: true`. The copy is memory-bound, and at 10⁸–10⁹ values the time is mostly the
//!   first touch of the new pages;
//! - `firstNonFinite(x) → number`: the index of the first NaN or ±Inf, or −1 (moe-core's input check).
use crate::js::{guard, Env, Failure};
use crate::request;
use crate::sys::*;

pub unsafe extern "C" fn with_intercept(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env: Env| {
        let (argv, _) = env.args::<1>(info)?;
        let (x, n, d, _) = request::read_design(env, argv[0])?;
        let width = d.checked_add(1).ok_or_else(|| Failure::shape("d + 1 overflows"))?;
        let len = n
            .checked_mul(width)
            .ok_or_else(|| Failure::shape(format!("{n} rows of {width} values do not fit in memory")))?;
        env.float64_array_with(len, |out| prepend_ones(x, d, out))
    })
}

pub unsafe extern "C" fn first_non_finite(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env: Env| {
        let (argv, _) = env.args::<1>(info)?;
        let x = env.f64_view(argv[0], "x")?;
        env.num(moe_core::first_non_finite(x).map_or(-1.0, |i| i as f64))
    })
}

/// Writes the rows of `x` (d values each) into `out` (d + 1 values each) after a 1.
fn prepend_ones(x: &[f64], d: usize, out: &mut [f64]) {
    let width = d + 1;
    let n = out.len() / width;
    let threads = moe_core::cpu::streaming_threads(n * d);
    let rows_per_thread = n.div_ceil(threads).max(1);
    let copy = |first_row: usize, rows: &mut [f64]| {
        for (r, row) in rows.chunks_exact_mut(width).enumerate() {
            let i = first_row + r;
            row[0] = 1.0;
            row[1..].copy_from_slice(&x[i * d..(i + 1) * d]);
        }
    };
    if threads == 1 {
        return copy(0, out);
    }
    std::thread::scope(|scope| {
        for (t, rows) in out.chunks_mut(rows_per_thread * width).enumerate() {
            scope.spawn(move || copy(t * rows_per_thread, rows));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::prepend_ones;

    #[test]
    fn rows_gain_a_leading_one_whatever_the_split() {
        for (n, d) in [(1, 1), (3, 2), (1 << 11, 1 << 9), ((1 << 11) + 3, 1 << 9)] {
            let x: Vec<f64> = (0..n * d).map(|i| i as f64 * 0.5 - 7.0).collect();
            let mut out = vec![f64::NAN; n * (d + 1)];
            prepend_ones(&x, d, &mut out);
            for i in 0..n {
                assert_eq!(out[i * (d + 1)], 1.0);
                assert_eq!(
                    &out[i * (d + 1) + 1..(i + 1) * (d + 1)],
                    &x[i * d..(i + 1) * d],
                    "n = {n}, d = {d}, row {i}"
                );
            }
        }
    }
}
