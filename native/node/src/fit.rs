//! `fit` (a Promise; the work runs on the libuv thread pool) and `fitSync` (on the JS thread). A request holds
//! the restarts of one fit (`starts`): they run in order on ONE backend, so the CUDA backend uploads X, y and
//! s once per fit rather than once per restart; the result is one FitResult per start.
//!
//! Async design: the request is parsed on the JS thread into a `FitInputs` whose slices borrow the input
//! Float64Arrays, which are kept alive by references until the fit has finished. The worker (napi async
//! work) runs moe-core's fit and sends every iteration record, then the outcome, through ONE thread-safe
//! function: messages arrive on the JS thread in order, so `onIteration` has seen every record before the
//! Promise settles (settling from the async-work completion callback could overtake queued records).
//! Abort: a cancel token's flag is read between iterations; a throwing `onIteration` also aborts the fit,
//! and the Promise rejects with what it threw. An E_ABORTED / E_NON_FINITE error carries `error.partial`
//! (`{ params, iterations, ... }`, the state when the fit stopped), as the reference's `details.partial`.
use crate::cancel::{read_cancel_token, CancelFlag};
use crate::js::{guard, panic_message, Env, Failure, JsResult};
use crate::request::{self, Device, Start};
use crate::results;
use crate::sys::*;
use moe_core::{Control, Data, FitOutput, FitSpec, IterationRecord, ModelSpec};
use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use std::sync::atomic::Ordering;

/// Everything a fit needs, parsed from the request. `'a` is the lifetime of the borrowed JS arrays.
struct FitInputs<'a> {
    device: Device,
    data: Data<'a>,
    model: ModelSpec,
    spec: FitSpec,
    threads: usize,
    starts: Vec<Start<'a>>,
    truth: Option<&'a [f64]>,
}

/// Parses a `RestartsRequest & { backend }`; also returns the JS arrays the slices borrow.
unsafe fn read_fit_request<'a>(env: Env, req: napi_value) -> JsResult<(FitInputs<'a>, Vec<napi_value>)> {
    let device = request::read_device(env, req)?;
    let (data, mut arrays) = request::read_data(env, env.get(req, "data", "request")?)?;
    let model = request::read_model(env, env.get(req, "model", "request")?)?;
    let (spec, threads) = request::read_fit_spec(env, env.get(req, "fit", "request")?)?;
    let (starts, inits) = request::read_starts(env, req)?;
    arrays.extend(inits);
    let truth = request::read_optional_array(env, req, "trueParams")?.map(|(slice, value)| {
        arrays.push(value);
        slice
    });
    Ok((FitInputs { device, data, model, spec, threads, starts, truth }, arrays))
}

/// A failed fit: the error, the restart that failed (an index into `starts`; None before any restart ran),
/// and its state when it stopped (aborted or non-finite fits only).
struct FitFailure {
    failure: Failure,
    restart: Option<usize>,
    partial: Option<FitOutput>,
}

impl From<Failure> for FitFailure {
    fn from(failure: Failure) -> Self {
        FitFailure { failure, restart: None, partial: None }
    }
}

/// Runs the restarts in order on one backend; `on_iter` sees each record of each and says whether to go on.
/// The first restart that fails ends the call with its error (and its partial state). Panics become E_INTERNAL.
fn run_fit(
    inputs: &FitInputs,
    on_iter: &mut dyn FnMut(&IterationRecord) -> Control,
) -> Result<Vec<FitOutput>, FitFailure> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let before_any_restart = |e: moe_core::Error| FitFailure { failure: e.into(), restart: None, partial: None };
        moe_core::validate(&inputs.data, &inputs.model).map_err(before_any_restart)?;
        // Not `with_backend`: the partial state travels with the error, which its plain `Result` cannot carry.
        let backend =
            crate::device::new_backend(inputs.device, inputs.data, inputs.threads).map_err(before_any_restart)?;
        inputs
            .starts
            .iter()
            .enumerate()
            .map(|(r, start)| {
                moe_core::fit_with_partial(
                    &*backend,
                    &inputs.model,
                    &inputs.spec,
                    start.seed,
                    start.init,
                    inputs.truth,
                    &mut *on_iter,
                )
                .map_err(|(e, partial)| FitFailure { failure: e.into(), restart: Some(r), partial })
            })
            .collect::<Result<Vec<_>, _>>()
    }));
    outcome.unwrap_or_else(|payload| Err(Failure::internal(format!("Rust panic: {}", panic_message(&*payload))).into()))
}

/// The JS value a failed fit throws or rejects with: the coded error, with `restart` (the index of the failing
/// start) and `partial` where there are.
fn failure_value(env: Env, failed: &FitFailure) -> napi_value {
    let error = env.failure_value(&failed.failure);
    if error.is_null() {
        return error;
    }
    if let Some(restart) = failed.restart {
        let _ = env.num(restart as f64).and_then(|r| env.set(error, "restart", r));
    }
    if let Some(partial) = &failed.partial {
        if let Ok(value) = results::fit_result(env, partial) {
            let _ = env.set(error, "partial", value);
        }
    }
    error
}

fn optional_function(env: Env, v: napi_value) -> JsResult<Option<napi_value>> {
    if env.is_absent(v)? {
        return Ok(None);
    }
    if env.type_of(v)? != NAPI_FUNCTION {
        return Err(Failure::option("onIteration must be a function"));
    }
    Ok(Some(v))
}

fn optional_value(env: Env, v: napi_value) -> JsResult<Option<napi_value>> {
    Ok(if env.is_absent(v)? { None } else { Some(v) })
}

// ---- fitSync ---------------------------------------------------------------------------------------------

/// `fitSync(request, onIteration?, cancelToken?) → FitResult[]`
pub unsafe extern "C" fn fit_sync(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<3>(info)?;
        let (inputs, _arrays) = read_fit_request(env, argv[0])?; // the arrays are alive for this whole call
        let callback = optional_function(env, argv[1])?;
        let cancel = read_cancel_token(env, optional_value(env, argv[2])?)?;
        let mut thrown: Option<napi_value> = None;
        let mut on_iter = |record: &IterationRecord| -> Control {
            if let Some(cb) = callback {
                let delivered = results::iteration_record(env, record).and_then(|r| env.call(cb, &[r]));
                if let Err(failure) = delivered {
                    thrown = Some(env.failure_value(&failure));
                    return Control::Abort;
                }
            }
            if cancel.load(Ordering::SeqCst) {
                Control::Abort
            } else {
                Control::Continue
            }
        };
        let outcome = run_fit(&inputs, &mut on_iter);
        if let Some(exception) = thrown {
            napi_throw(env.0, exception);
            return Ok(null_mut());
        }
        match outcome {
            Ok(outs) => results::fit_results(env, &outs),
            Err(failed) => {
                let error = failure_value(env, &failed);
                if !error.is_null() {
                    napi_throw(env.0, error);
                }
                Ok(null_mut())
            }
        }
    })
}

// ---- fit (async) -----------------------------------------------------------------------------------------

enum Message {
    Iteration(IterationRecord),
    Done(Result<Vec<FitOutput>, FitFailure>),
}

/// State of one async fit that only the JS thread touches; owned by the thread-safe function.
struct JsSide {
    deferred: napi_deferred,
    keep_alive: Vec<napi_ref>,
    cancel: CancelFlag,
    /// What `onIteration` threw: the Promise rejects with it.
    thrown: Option<napi_ref>,
}

/// State the worker thread uses.
struct Job {
    inputs: FitInputs<'static>,
    cancel: CancelFlag,
    messages: napi_threadsafe_function,
    work: napi_async_work,
}

fn post(messages: napi_threadsafe_function, message: Message) {
    let data = Box::into_raw(Box::new(message)) as *mut c_void;
    // Unbounded queue: never blocks. Failure means the environment is shutting down; free the message.
    if unsafe { napi_call_threadsafe_function(messages, data, NAPI_TSFN_NONBLOCKING) } != NAPI_OK {
        drop(unsafe { Box::from_raw(data as *mut Message) });
    }
}

/// `fit(request, onIteration?, cancelToken?) → Promise<FitResult[]>`
pub unsafe extern "C" fn fit_async(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (argv, _) = env.args::<3>(info)?;
        let (inputs, arrays) = read_fit_request(env, argv[0])?;
        let callback = optional_function(env, argv[1])?;
        let cancel = read_cancel_token(env, optional_value(env, argv[2])?)?;

        let mut deferred = null_mut();
        let mut promise = null_mut();
        env.check(napi_create_promise(env.0, &mut deferred, &mut promise), "napi_create_promise")?;
        let mut keep_alive = Vec::with_capacity(arrays.len());
        for array in arrays {
            keep_alive.push(env.reference(array)?);
        }
        let js_side = Box::into_raw(Box::new(JsSide { deferred, keep_alive, cancel: cancel.clone(), thrown: None }));

        let name = env.str("moe-em:fit")?;
        let mut messages = null_mut();
        let status = napi_create_threadsafe_function(
            env.0,
            callback.unwrap_or(null_mut()),
            null_mut(),
            name,
            0,
            1,
            js_side as *mut c_void,
            Some(drop_js_side),
            js_side as *mut c_void,
            Some(deliver),
            &mut messages,
        );
        if status != NAPI_OK {
            let js_side = Box::from_raw(js_side);
            for r in js_side.keep_alive {
                env.release(r);
            }
            return Err(Failure::internal("napi_create_threadsafe_function failed"));
        }

        let job = Box::into_raw(Box::new(Job {
            inputs: std::mem::transmute::<FitInputs<'_>, FitInputs<'static>>(inputs),
            cancel,
            messages,
            work: null_mut(),
        }));
        let status = napi_create_async_work(
            env.0,
            null_mut(),
            name,
            Some(execute),
            Some(complete),
            job as *mut c_void,
            &mut (*job).work,
        );
        if status != NAPI_OK || napi_queue_async_work(env.0, (*job).work) != NAPI_OK {
            // Settle through the normal path so that the references are released in one place.
            post(messages, Message::Done(Err(Failure::internal("could not queue the fit on the thread pool").into())));
            napi_release_threadsafe_function(messages, NAPI_TSFN_RELEASE);
            if !(*job).work.is_null() {
                napi_delete_async_work(env.0, (*job).work);
            }
            drop(Box::from_raw(job));
        }
        Ok(promise)
    })
}

/// Worker thread: no Node-API calls here except the thread-safe function.
unsafe extern "C" fn execute(_env: napi_env, data: *mut c_void) {
    let job = &*(data as *const Job);
    let mut on_iter = |record: &IterationRecord| -> Control {
        post(job.messages, Message::Iteration(record.clone()));
        if job.cancel.load(Ordering::SeqCst) {
            Control::Abort
        } else {
            Control::Continue
        }
    };
    let outcome = run_fit(&job.inputs, &mut on_iter);
    post(job.messages, Message::Done(outcome));
    napi_release_threadsafe_function(job.messages, NAPI_TSFN_RELEASE);
}

/// JS thread, after `execute` (or instead of it, when the work was cancelled before it started).
unsafe extern "C" fn complete(env: napi_env, status: napi_status, data: *mut c_void) {
    let job = Box::from_raw(data as *mut Job);
    if status != NAPI_OK {
        post(job.messages, Message::Done(Err(Failure::internal("the fit was cancelled before it started").into())));
        napi_release_threadsafe_function(job.messages, NAPI_TSFN_RELEASE);
    }
    napi_delete_async_work(env, job.work);
}

/// JS thread: one message from the worker. `env` is null while Node tears the environment down.
unsafe extern "C" fn deliver(env: napi_env, callback: napi_value, context: *mut c_void, data: *mut c_void) {
    let message = Box::from_raw(data as *mut Message);
    if env.is_null() {
        return;
    }
    let env = Env(env);
    let js_side = &mut *(context as *mut JsSide);
    let _ = catch_unwind(AssertUnwindSafe(|| match *message {
        Message::Iteration(record) => deliver_record(env, js_side, callback, &record),
        Message::Done(outcome) => settle(env, js_side, outcome),
    }));
}

fn deliver_record(env: Env, js_side: &mut JsSide, callback: napi_value, record: &IterationRecord) {
    if callback.is_null() || js_side.thrown.is_some() {
        return;
    }
    let delivered = results::iteration_record(env, record).and_then(|r| env.call(callback, &[r]));
    if let Err(failure) = delivered {
        let exception = env.failure_value(&failure);
        js_side.thrown = env.reference(exception).ok();
        js_side.cancel.store(true, Ordering::SeqCst);
    }
}

fn settle(env: Env, js_side: &mut JsSide, outcome: Result<Vec<FitOutput>, FitFailure>) {
    for r in js_side.keep_alive.drain(..) {
        env.release(r);
    }
    let rejection = if let Some(thrown) = js_side.thrown.take() {
        let mut exception = null_mut();
        unsafe { napi_get_reference_value(env.0, thrown, &mut exception) };
        env.release(thrown);
        Some(exception)
    } else {
        match outcome.and_then(|outs| results::fit_results(env, &outs).map_err(FitFailure::from)) {
            Ok(result) => {
                unsafe { napi_resolve_deferred(env.0, js_side.deferred, result) };
                None
            }
            Err(failed) => Some(failure_value(env, &failed)),
        }
    };
    if let Some(value) = rejection {
        let value = if value.is_null() { env.error("E_INTERNAL", "fit failed").unwrap_or(null_mut()) } else { value };
        unsafe { napi_reject_deferred(env.0, js_side.deferred, value) };
    }
}

unsafe extern "C" fn drop_js_side(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(Box::from_raw(data as *mut JsSide));
}
