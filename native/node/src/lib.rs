//! moe-node: the Node-API binding of moe-em, written against a hand-declared Node-API (no crates).
//!
//! Layout: `sys` (raw declarations) → `js` (safe layer: argument readers, zero-copy Float64Array views,
//! result builders, coded errors, the panic guard) → the exports: `fit` (Promise, libuv pool, progress and
//! abort), `queries` (evaluate / posterior / information / predict), `design` (the intercept column, the
//! NaN scan), `cancel` (cancel tokens), `bench` (+ `blas`), `gpu` (moe-cuda). `request` and `results`
//! convert between JS objects and moe-core's types.
//!
//! Exports (the request shapes are documented in `request`):
//!   fit(request, onIteration?, cancelToken?) → Promise<FitResult[]> (one per start of `request.starts`)
//!   fitSync(request, onIteration?, cancelToken?) → FitResult[]
//!   createCancelToken() → { cancel() }
//!   evaluate(query) → { nll, objective };  posterior(query) → Float64Array;  information(query) → InformationResult
//!   predict(query) → Float64Array (n × width: the mixture mean, or class probabilities)
//!   gateOnlyEm({ data, model, fit, params, backend }) → Float64Array (after init 'moments'' EM stage)
//!   startFromAssignment({ data, model, fit, assignment, backend }) → Float64Array (one M-step from clusters)
//!   kmeansClusters({ data, model, seed, threads }) → Uint32Array (init 'kmeans'' clusters, CPU threads)
//!   momentSums({ data, model, threads }) → MomentSums (init 'moments'' data passes, CPU threads)
//!   withIntercept({ x, n, d }) → Float64Array (X with a first column of ones, copied on all cores)
//!   firstNonFinite(x) → number (the index of the first NaN or ±Inf, −1 if none; all cores)
//!   deviceInfo() → { available, name?, memoryBytes?, computeCapability?, reason? }
//!   benchWeightedGram(shape) / benchDgemm(shape) → timings;  version → the crate version
//!   testPanic() → throws E_INTERNAL (proves that a Rust panic never crosses the boundary)
//! Every failure is thrown (or rejected) as an Error whose `code` is one of src/errors.ts.
mod bench;
mod blas;
mod cancel;
mod design;
mod device;
mod fit;
mod gpu;
mod js;
mod queries;
mod request;
mod results;
mod sys;

use js::{guard, Env, JsResult};
use sys::*;

/// `deviceInfo()`: the GPU moe-cuda would use, or why there is none.
unsafe extern "C" fn device_info(env: napi_env, _info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let obj = env.object()?;
        match gpu::device_info() {
            Ok(info) => {
                env.set(obj, "available", env.bool(true)?)?;
                env.set(obj, "name", env.str(&info.name)?)?;
                env.set(obj, "memoryBytes", env.num(info.memory_bytes)?)?;
                env.set(obj, "computeCapability", env.str(&info.compute_capability)?)?;
            }
            Err(e) => {
                env.set(obj, "available", env.bool(false)?)?;
                env.set(obj, "reason", env.str(&format!("{}: {}", e.code.as_str(), e.message))?)?;
            }
        }
        Ok(obj)
    })
}

unsafe extern "C" fn test_panic(env: napi_env, _info: napi_callback_info) -> napi_value {
    guard(env, |_| panic!("deliberate panic (testPanic)"))
}

fn register(env: Env, exports: napi_value) -> JsResult<()> {
    let functions: [(&str, napi_callback); 17] = [
        ("fit", Some(fit::fit_async)),
        ("fitSync", Some(fit::fit_sync)),
        ("createCancelToken", Some(cancel::create_cancel_token)),
        ("evaluate", Some(queries::evaluate)),
        ("posterior", Some(queries::posterior)),
        ("information", Some(queries::information)),
        ("predict", Some(queries::predict)),
        ("gateOnlyEm", Some(queries::gate_only_em)),
        ("startFromAssignment", Some(queries::start_from_assignment)),
        ("kmeansClusters", Some(queries::kmeans_clusters)),
        ("momentSums", Some(queries::moment_sums)),
        ("withIntercept", Some(design::with_intercept)),
        ("firstNonFinite", Some(design::first_non_finite)),
        ("deviceInfo", Some(device_info)),
        ("benchWeightedGram", Some(bench::bench_weighted_gram)),
        ("benchDgemm", Some(bench::bench_dgemm)),
        ("testPanic", Some(test_panic)),
    ];
    for (name, cb) in functions {
        env.set(exports, name, env.function(name, cb, std::ptr::null_mut())?)?;
    }
    env.set(exports, "version", env.str(env!("CARGO_PKG_VERSION"))?)?;
    Ok(())
}

/// The addon's entry point, called by Node when it loads the `.node` file.
///
/// # Safety
/// Only Node calls this, on the JS thread, with a live `env` and the module's `exports` object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    guard(env, |env| register(env, exports).map(|_| exports))
}

/// The Node-API version this addon needs (thread-safe functions and finalizers: 8 covers all of it).
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
