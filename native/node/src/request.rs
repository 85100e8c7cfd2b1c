//! Reading the request objects that src/backends/native.ts sends into moe-core's types. The objects are the
//! ones of src/backends/backend.ts, read property by property with `napi_get_named_property`:
//!
//! - fit / fitSync: `RestartsRequest & { backend: 'cpu' | 'cuda' }` (threads come from `fit.threads`);
//! - evaluate / posterior / information: `{ data, model, params, backend, threads, method?, steps? }`;
//! - predict: the same with `data` = `{ x, n, d }` (no labels).
//!
//! Typed arrays are borrowed zero-copy; the caller keeps them alive (a napi_ref for async work).
use crate::js::{Env, Failure, JsResult};
use crate::sys::napi_value;
use moe_core::{Algorithm, Data, ExpertKind, FitSpec, InfoMethod, MStepSpec, ModelSpec, Noise, Solver};

/// Which moe-core backend runs the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

pub fn read_device(env: Env, request: napi_value) -> JsResult<Device> {
    match env.get_opt(request, "backend", "request")? {
        None => Ok(Device::Cpu),
        Some(v) => match env.string(v, "backend")?.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(Failure::option(format!("backend must be 'cpu' or 'cuda', got '{other}'"))),
        },
    }
}

fn count_prop(env: Env, obj: napi_value, name: &str, what: &str) -> JsResult<usize> {
    env.count(env.get(obj, name, what)?, &format!("{what}.{name}"))
}

fn number_prop(env: Env, obj: napi_value, name: &str, what: &str) -> JsResult<f64> {
    env.number(env.get(obj, name, what)?, &format!("{what}.{name}"))
}

fn string_prop(env: Env, obj: napi_value, name: &str, what: &str) -> JsResult<String> {
    env.string(env.get(obj, name, what)?, &format!("{what}.{name}"))
}

/// The rows of a prediction: `{ x, n, d }`, x's length checked against the shape. Returns x's JS value too.
///
/// # Safety
/// The returned slice borrows the JS array: see `Env::f64_view`.
pub unsafe fn read_design<'a>(env: Env, data: napi_value) -> JsResult<(&'a [f64], usize, usize, napi_value)> {
    // A malformed shape is E_SHAPE (as in src/input.ts), not E_OPTION.
    let as_shape = |e: Failure| match e {
        Failure::Coded { code, message } if code == "E_OPTION" => Failure::shape(message),
        other => other,
    };
    let n = count_prop(env, data, "n", "data").map_err(as_shape)?;
    let d = count_prop(env, data, "d", "data").map_err(as_shape)?;
    let x_value = env.get(data, "x", "data")?;
    let x = env.f64_view(x_value, "data.x")?;
    if n.checked_mul(d) != Some(x.len()) {
        return Err(Failure::shape(format!("data.x has {} values, expected n·d = {n}·{d}", x.len())));
    }
    Ok((x, n, d, x_value))
}

/// `ProblemData`: `{ x, n, d, y, s }`, with the lengths checked against the shape (so every later index
/// is in bounds whatever moe-core's own validation does).
///
/// # Safety
/// The returned slices borrow the JS arrays: see `Env::f64_view`.
pub unsafe fn read_data<'a>(env: Env, data: napi_value) -> JsResult<(Data<'a>, Vec<napi_value>)> {
    let (x, n, d, x_value) = read_design(env, data)?;
    let y_value = env.get(data, "y", "data")?;
    let y = env.f64_view(y_value, "data.y")?;
    if y.len() != n {
        return Err(Failure::shape(format!("data.y has {} values, expected n = {n}", y.len())));
    }
    let mut arrays = vec![x_value, y_value];
    let s = match env.get_opt(data, "s", "data")? {
        None => None,
        Some(s_value) => {
            let s = env.f64_view(s_value, "data.s")?;
            if s.len() != n {
                return Err(Failure::shape(format!("data.s has {} values, expected n = {n}", s.len())));
            }
            arrays.push(s_value);
            Some(s)
        }
    };
    Ok((Data { x, n, d, y, s }, arrays))
}

/// `ModelSpec`.
pub fn read_model(env: Env, model: napi_value) -> JsResult<ModelSpec> {
    let what = "model";
    let experts = match string_prop(env, model, "experts", what)?.as_str() {
        "linear" => ExpertKind::Linear,
        "logistic" => ExpertKind::Logistic,
        "multinomial" => ExpertKind::Multinomial,
        other => return Err(Failure::option(format!("model.experts: unknown expert kind '{other}'"))),
    };
    let noise_value = env.get(model, "noise", what)?;
    let noise = if env.is_absent(noise_value)? {
        Noise::Fitted
    } else if env.type_of(noise_value)? == crate::sys::NAPI_STRING {
        match env.string(noise_value, "model.noise")?.as_str() {
            "fitted" => Noise::Fitted,
            other => return Err(Failure::option(format!("model.noise must be 'fitted' or a number, got '{other}'"))),
        }
    } else {
        Noise::Known(env.number(noise_value, "model.noise")?)
    };
    Ok(ModelSpec {
        experts,
        symmetric: env.boolean(env.get(model, "symmetric", what)?, "model.symmetric")?,
        k: count_prop(env, model, "k", what)?,
        d: count_prop(env, model, "d", what)?,
        n_classes: count_prop(env, model, "nClasses", what)?,
        noise,
        ridge: number_prop(env, model, "ridge", what)?,
        intercept: env.boolean(env.get(model, "intercept", what)?, "model.intercept")?,
    })
}

/// `FitSpec` and its thread count (`fit.threads`, 0 = all cores).
pub fn read_fit_spec(env: Env, fit: napi_value) -> JsResult<(FitSpec, usize)> {
    let what = "fit";
    let algorithm = match string_prop(env, fit, "algorithm", what)?.as_str() {
        "em" => Algorithm::Em,
        "gradient-em" => Algorithm::GradientEm,
        "gd" => Algorithm::Gd,
        other => return Err(Failure::option(format!("fit.algorithm: unknown algorithm '{other}'"))),
    };
    let mstep_value = env.get(fit, "mstep", what)?;
    let m = "fit.mstep";
    let solver = match string_prop(env, mstep_value, "solver", m)?.as_str() {
        "auto" => Solver::Auto,
        "newton" => Solver::Newton,
        "newton-cg" => Solver::NewtonCg,
        "gradient" => Solver::Gradient,
        other => return Err(Failure::option(format!("fit.mstep.solver: unknown solver '{other}'"))),
    };
    let mstep = MStepSpec {
        solver,
        max_iter: count_prop(env, mstep_value, "maxIter", m)?,
        tol: number_prop(env, mstep_value, "tol", m)?,
        cg_max_iter: count_prop(env, mstep_value, "cgMaxIter", m)?,
        inner_steps: count_prop(env, mstep_value, "innerSteps", m)?,
    };
    let steps = env.get(fit, "stepSize", what)?;
    let spec = FitSpec {
        algorithm,
        mstep,
        step_gate: number_prop(env, steps, "gate", "fit.stepSize")?,
        step_experts: number_prop(env, steps, "experts", "fit.stepSize")?,
        inner_steps: count_prop(env, fit, "innerSteps", what)?,
        batch_size: count_prop(env, fit, "batchSize", what)?,
        max_iter: count_prop(env, fit, "maxIter", what)?,
        tol: number_prop(env, fit, "tol", what)?,
        on_empty_error: match string_prop(env, fit, "onEmpty", what)?.as_str() {
            "reseed" => false,
            "error" => true,
            other => return Err(Failure::option(format!("fit.onEmpty must be 'reseed' or 'error', got '{other}'"))),
        },
    };
    let threads = match env.get_opt(fit, "threads", what)? {
        None => 0,
        Some(v) => env.count(v, "fit.threads")?,
    };
    Ok((spec, threads))
}

/// A fit's seed: an integer in [0, 2³²).
/// One start (restart) of a fit: its seed, and its starting parameters where it has explicit ones.
pub struct Start<'a> {
    pub seed: u32,
    pub init: Option<&'a [f64]>,
}

/// `seed` of `obj` (a start, or a request that takes one), an integer in [0, 2³²).
pub fn read_seed(env: Env, obj: napi_value, what: &str) -> JsResult<u32> {
    let seed = env.number(env.get(obj, "seed", what)?, &format!("{what}.seed"))?;
    if !(seed >= 0.0 && seed <= u32::MAX as f64 && seed.fract() == 0.0) {
        return Err(Failure::option(format!("{what}.seed must be an integer in [0, 2^32), got {seed}")));
    }
    Ok(seed as u32)
}

/// `starts` of a fit request: one or more `{ seed, init? }`, fitted in order over the same data; also the
/// `init` arrays, which the caller keeps alive.
///
/// # Safety
/// See `Env::f64_view`.
pub unsafe fn read_starts<'a>(env: Env, request: napi_value) -> JsResult<(Vec<Start<'a>>, Vec<napi_value>)> {
    let items = env.elements(env.get(request, "starts", "request")?, "request.starts")?;
    if items.is_empty() {
        return Err(Failure::option("request.starts must hold at least one start"));
    }
    let mut arrays = Vec::new();
    let mut starts = Vec::with_capacity(items.len());
    for (r, item) in items.into_iter().enumerate() {
        let what = format!("request.starts[{r}]");
        let seed = read_seed(env, item, &what)?;
        let init = match env.get_opt(item, "init", &what)? {
            None => None,
            Some(v) => {
                arrays.push(v);
                Some(env.f64_view(v, &format!("{what}.init"))?)
            }
        };
        starts.push(Start { seed, init });
    }
    Ok((starts, arrays))
}

/// An optional Float64Array property (`trueParams`), with the JS value to keep alive.
///
/// # Safety
/// See `Env::f64_view`.
pub unsafe fn read_optional_array<'a>(
    env: Env,
    obj: napi_value,
    name: &str,
) -> JsResult<Option<(&'a [f64], napi_value)>> {
    match env.get_opt(obj, name, "request")? {
        None => Ok(None),
        Some(v) => Ok(Some((env.f64_view(v, &format!("request.{name}"))?, v))),
    }
}

/// `threads` of an evaluate/posterior/information request (0 = all cores).
pub fn read_threads(env: Env, request: napi_value) -> JsResult<usize> {
    match env.get_opt(request, "threads", "request")? {
        None => Ok(0),
        Some(v) => env.count(v, "threads"),
    }
}

/// `method` and `steps` of an information request.
pub fn read_info_method(env: Env, request: napi_value) -> JsResult<(InfoMethod, usize)> {
    let method = match env.get_opt(request, "method", "request")? {
        None => InfoMethod::Auto,
        Some(v) => match env.string(v, "method")?.as_str() {
            "auto" => InfoMethod::Auto,
            "dense" => InfoMethod::Dense,
            "lanczos" => InfoMethod::Lanczos,
            other => {
                return Err(Failure::option(format!("method must be 'auto', 'dense' or 'lanczos', got '{other}'")))
            }
        },
    };
    let steps = match env.get_opt(request, "steps", "request")? {
        None => 60,
        Some(v) => env.count(v, "steps")?,
    };
    Ok((method, steps))
}
