//! `evaluate`, `posterior`, `information` and `predict`: synchronous queries at given parameters. Each takes
//! `{ data, model, params, backend?, threads?, method?, steps? }` (predict's `data` without labels). And
//! the stages of the named starts that run natively (the same, with `fit`): for init 'moments' `momentSums`
//! (its data passes, on the CPU's threads whatever the backend) and `gateOnlyEm` (its EM stage from given
//! parameters), for init 'kmeans' `kmeansClusters` (on the CPU's threads) and `startFromAssignment` (the
//! M-step from its clusters, `assignment` instead of `params`).
use crate::device::with_backend;
use crate::js::{guard, panic_message, Env, Failure, JsResult};
use crate::request::{self, Device};
use crate::results;
use crate::sys::*;
use moe_core::{Backend, Data, FitSpec, ModelSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What every query reads besides its data.
struct Query<'a> {
    device: Device,
    model: ModelSpec,
    params: &'a [f64],
    threads: usize,
}

unsafe fn read_query<'a>(env: Env, req: napi_value) -> JsResult<Query<'a>> {
    Ok(Query {
        device: request::read_device(env, req)?,
        model: request::read_model(env, env.get(req, "model", "request")?)?,
        params: env.f64_view(env.get(req, "params", "request")?, "request.params")?,
        threads: request::read_threads(env, req)?,
    })
}

/// Runs `work` with panics turned into E_INTERNAL (they never cross into Node).
fn run_guarded<R>(work: impl FnOnce() -> moe_core::Result<R>) -> JsResult<R> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.map_err(Failure::from),
        Err(payload) => Err(Failure::internal(format!("Rust panic: {}", panic_message(&*payload)))),
    }
}

/// Parses the query and runs `work` on its backend; the JS arrays stay alive for the whole call.
fn run_query<R>(
    env: Env,
    req: napi_value,
    work: impl FnOnce(&dyn Backend, &ModelSpec, &[f64]) -> moe_core::Result<R>,
) -> JsResult<R> {
    let (query, data) =
        unsafe { (read_query(env, req)?, request::read_data(env, env.get(req, "data", "request")?)?.0) };
    run_guarded(|| {
        moe_core::validate_query(&data, &query.model)?;
        with_backend(query.device, data, query.threads, |b| work(b, &query.model, query.params))
    })
}

/// `evaluate(query) → { nll, objective }`
pub unsafe extern "C" fn evaluate(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let (nll, objective) = run_query(env, argv[0], |b, model, params| moe_core::evaluate(b, model, params))?;
        results::evaluation(env, nll, objective)
    })
}

/// `posterior(query) → Float64Array` (n×k responsibilities, row-major)
pub unsafe extern "C" fn posterior(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let h = run_query(env, argv[0], |b, model, params| moe_core::posterior(b, model, params))?;
        env.float64_array(&h)
    })
}

/// `information(query) → InformationResult`
pub unsafe extern "C" fn information(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let (method, steps) = request::read_info_method(env, argv[0])?;
        let result =
            run_query(env, argv[0], |b, model, params| moe_core::information(b, model, params, method, steps))?;
        results::information(env, &result)
    })
}

/// `predict(query) → Float64Array`: n × width row-major (the mixture mean, or the class probabilities).
pub unsafe extern "C" fn predict(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let query = read_query(env, argv[0])?;
        let (x, n, d, _) = request::read_design(env, env.get(argv[0], "data", "request")?)?;
        let out = run_guarded(|| {
            moe_core::validate_design(x, n, d, &query.model)?;
            // A backend holds labels beside the rows; a prediction reads none, so they are zeros.
            let y = vec![0.0; n];
            let data = Data { x, n, d, y: &y, s: None };
            with_backend(query.device, data, query.threads, |b| moe_core::predict(b, &query.model, query.params))
        })?;
        env.float64_array(&out)
    })
}

/// Parses a named start's stage (`{ data, model, fit, backend }`) and runs `work` on its backend like a fit
/// (a fit's checks, `fit.threads`); the JS arrays stay alive for the whole call.
fn run_start_stage<R>(
    env: Env,
    req: napi_value,
    work: impl FnOnce(&dyn Backend, &ModelSpec, &FitSpec) -> moe_core::Result<R>,
) -> JsResult<R> {
    let (spec, threads) = request::read_fit_spec(env, env.get(req, "fit", "request")?)?;
    let device = request::read_device(env, req)?;
    let model = request::read_model(env, env.get(req, "model", "request")?)?;
    let data = unsafe { request::read_data(env, env.get(req, "data", "request")?)?.0 };
    run_guarded(|| {
        moe_core::validate(&data, &model)?;
        with_backend(device, data, threads, |b| work(b, &model, &spec))
    })
}

/// `gateOnlyEm({ data, model, fit, params, backend }) → Float64Array`: the parameters after init 'moments''
/// EM with the expert slopes fixed (moe_core::gate_only_em), from `params`.
pub unsafe extern "C" fn gate_only_em(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let start = env.f64_view(env.get(argv[0], "params", "request")?, "request.params")?;
        let params = run_start_stage(env, argv[0], |b, model, spec| {
            let mut params = start.to_vec();
            moe_core::gate_only_em(b, model, spec, &mut params).map(|()| params)
        })?;
        env.float64_array(&params)
    })
}

/// `startFromAssignment({ data, model, fit, assignment, backend }) → Float64Array`: θ_0 by one M-step from the
/// hard assignment (a Uint32Array of component indices, one per row; moe_core::start_from_assignment).
pub unsafe extern "C" fn start_from_assignment(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let assignment = env.u32_view(env.get(argv[0], "assignment", "request")?, "request.assignment")?;
        let params = run_start_stage(env, argv[0], |b, model, spec| {
            moe_core::start_from_assignment(b, model, spec, assignment)
        })?;
        env.float64_array(&params)
    })
}

/// Parses `{ data, model, threads }` and runs `work` on the CPU's threads, outside any backend, after a fit's
/// checks: the named starts' stages that are a few FLOPs per byte of X, or a pass a GPU would first have to
/// copy X for.
fn run_on_cpu_threads<R>(
    env: Env,
    req: napi_value,
    work: impl FnOnce(&Data, &ModelSpec, usize) -> moe_core::Result<R>,
) -> JsResult<R> {
    let model = request::read_model(env, env.get(req, "model", "request")?)?;
    let data = unsafe { request::read_data(env, env.get(req, "data", "request")?)?.0 };
    let threads = request::read_threads(env, req)?;
    run_guarded(|| {
        moe_core::validate(&data, &model)?;
        work(&data, &model, threads)
    })
}

/// `kmeansClusters({ data, model, seed, threads }) → Uint32Array`: init 'kmeans'' clusters, one per row
/// (moe_core::kmeans_clusters), on the CPU's threads.
pub unsafe extern "C" fn kmeans_clusters(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let seed = request::read_seed(env, argv[0], "request")?;
        let clusters = run_on_cpu_threads(env, argv[0], |data, model, threads| {
            moe_core::kmeans_clusters(data, model.intercept, model.k, seed, threads)
        })?;
        env.uint32_array(&clusters)
    })
}

/// `momentSums({ data, model, threads }) → { rows, weight, mean, yShift, cov, second, yy }`: init 'moments''
/// data passes (moe_core::moment_sums), on the CPU's threads.
pub unsafe extern "C" fn moment_sums(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<1>(info)?;
        let sums = run_on_cpu_threads(env, argv[0], |data, model, threads| {
            moe_core::moment_sums(data, model.intercept, threads)
        })?;
        results::moment_sums(env, &sums)
    })
}
