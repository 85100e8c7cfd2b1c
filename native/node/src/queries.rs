//! `evaluate`, `posterior` and `information`: synchronous queries at given parameters. Each takes
//! `{ data, model, params, backend?, threads?, method?, steps? }`.
use crate::device::with_backend;
use crate::js::{guard, panic_message, Env, Failure, JsResult};
use crate::request::{self, Device};
use crate::results;
use crate::sys::*;
use moe_core::{Backend, Data, ModelSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Query<'a> {
    device: Device,
    data: Data<'a>,
    model: ModelSpec,
    params: &'a [f64],
    threads: usize,
}

/// Parses the query and runs `work` on its backend; the JS arrays stay alive for the whole call.
fn run_query<R>(env: Env, req: napi_value,
                work: impl FnOnce(&dyn Backend, &ModelSpec, &[f64]) -> moe_core::Result<R>) -> JsResult<R> {
    let query = unsafe {
        let (data, _) = request::read_data(env, env.get(req, "data", "request")?)?;
        Query {
            device: request::read_device(env, req)?,
            data,
            model: request::read_model(env, env.get(req, "model", "request")?)?,
            params: env.f64_view(env.get(req, "params", "request")?, "request.params")?,
            threads: request::read_threads(env, req)?,
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        moe_core::validate_query(&query.data, &query.model)?;
        with_backend(query.device, query.data, query.threads, |b| work(b, &query.model, query.params))
    }));
    match outcome {
        Ok(result) => result.map_err(Failure::from),
        Err(payload) => Err(Failure::internal(format!("Rust panic: {}", panic_message(&*payload)))),
    }
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
        let result = run_query(env, argv[0], |b, model, params| moe_core::information(b, model, params, method, steps))?;
        results::information(env, &result)
    })
}
