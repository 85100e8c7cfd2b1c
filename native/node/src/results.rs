//! Building the JS result objects of src/backends/backend.ts from moe-core's outputs.
use crate::js::{Env, JsResult};
use crate::sys::napi_value;
use moe_core::{Event, FitOutput, Information, IterationRecord, MomentSums, StopReason};

/// `RecoveryEvent` of src/types.ts.
fn event(env: Env, e: &Event) -> JsResult<napi_value> {
    let obj = env.object()?;
    match e {
        Event::RidgeFallback { block, ridge } => {
            env.set(obj, "type", env.str("ridge-fallback")?)?;
            env.set(obj, "block", env.str(block)?)?;
            env.set(obj, "ridge", env.num(*ridge)?)?;
        }
        Event::VarianceFloor { expert, floor } => {
            env.set(obj, "type", env.str("variance-floor")?)?;
            env.set(obj, "expert", env.num(*expert as f64)?)?;
            env.set(obj, "floor", env.num(*floor)?)?;
        }
        Event::Reseed { expert, from } => {
            env.set(obj, "type", env.str("reseed")?)?;
            env.set(obj, "expert", env.num(*expert as f64)?)?;
            env.set(obj, "from", env.num(*from as f64)?)?;
        }
    }
    Ok(obj)
}

/// `IterationRecord`; `paramError` and `events` are present only when there is something to report.
pub fn iteration_record(env: Env, r: &IterationRecord) -> JsResult<napi_value> {
    let obj = env.object()?;
    env.set(obj, "iter", env.num(r.iter as f64)?)?;
    env.set(obj, "nll", env.num(r.nll)?)?;
    env.set(obj, "objective", env.num(r.objective)?)?;
    env.set(obj, "elapsedMs", env.num(r.elapsed_ms)?)?;
    if let Some(e) = r.param_error {
        env.set(obj, "paramError", env.num(e)?)?;
    }
    if !r.events.is_empty() {
        let events = r.events.iter().map(|e| event(env, e)).collect::<JsResult<Vec<_>>>()?;
        env.set(obj, "events", env.array(&events)?)?;
    }
    Ok(obj)
}

/// `FitResult`.
pub fn fit_result(env: Env, out: &FitOutput) -> JsResult<napi_value> {
    let obj = env.object()?;
    env.set(obj, "params", env.float64_array(&out.params)?)?;
    let records = out.iterations.iter().map(|r| iteration_record(env, r)).collect::<JsResult<Vec<_>>>()?;
    env.set(obj, "iterations", env.array(&records)?)?;
    env.set(obj, "converged", env.bool(out.converged)?)?;
    let reason = match out.reason {
        StopReason::Tol => "tol",
        StopReason::MaxIter => "max-iter",
    };
    env.set(obj, "reason", env.str(reason)?)?;
    Ok(obj)
}

/// `FitResult[]`: one per start of the request, in order.
pub fn fit_results(env: Env, outs: &[FitOutput]) -> JsResult<napi_value> {
    let items = outs.iter().map(|out| fit_result(env, out)).collect::<JsResult<Vec<_>>>()?;
    env.array(&items)
}

/// `{ nll, objective }`.
pub fn evaluation(env: Env, nll: f64, objective: f64) -> JsResult<napi_value> {
    let obj = env.object()?;
    env.set(obj, "nll", env.num(nll)?)?;
    env.set(obj, "objective", env.num(objective)?)?;
    Ok(obj)
}

/// `InformationResult` (`rate = lambdaMax`, `alpha = 1 − lambdaMax`, ALGORITHMS.md §7).
pub fn information(env: Env, info: &Information) -> JsResult<napi_value> {
    let obj = env.object()?;
    env.set(obj, "p", env.num(info.p as f64)?)?;
    let names = info.names.iter().map(|s| env.str(s)).collect::<JsResult<Vec<_>>>()?;
    env.set(obj, "names", env.array(&names)?)?;
    for (name, matrix) in [("complete", &info.complete), ("missing", &info.missing), ("observed", &info.observed)] {
        if let Some(m) = matrix {
            env.set(obj, name, env.float64_array(m)?)?;
        }
    }
    env.set(obj, "eigenvalues", env.number_array(&info.eigenvalues)?)?;
    env.set(obj, "lambdaMax", env.num(info.lambda_max)?)?;
    env.set(obj, "rate", env.num(info.lambda_max)?)?;
    env.set(obj, "alpha", env.num(1.0 - info.lambda_max)?)?;
    let se = match &info.standard_errors {
        Some(se) => env.number_array(se)?,
        None => env.null()?,
    };
    env.set(obj, "standardErrors", se)?;
    env.set(obj, "method", env.str(if info.dense { "dense" } else { "lanczos" })?)?;
    Ok(obj)
}

/// `MomentSums` of src/algorithms/init-moments.ts.
pub fn moment_sums(env: Env, m: &MomentSums) -> JsResult<napi_value> {
    let obj = env.object()?;
    env.set(obj, "rows", env.num(m.rows as f64)?)?;
    env.set(obj, "weight", env.num(m.weight)?)?;
    env.set(obj, "mean", env.float64_array(&m.mean)?)?;
    env.set(obj, "yShift", env.num(m.y_shift)?)?;
    env.set(obj, "cov", env.float64_array(&m.cov)?)?;
    env.set(obj, "second", env.float64_array(&m.second)?)?;
    env.set(obj, "yy", env.num(m.yy)?)?;
    Ok(obj)
}
