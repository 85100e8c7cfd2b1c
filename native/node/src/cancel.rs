//! Cancel tokens: how an AbortSignal reaches a running fit. `createCancelToken()` returns an object whose
//! `cancel()` sets a shared `AtomicBool`; the fit loop reads it between iterations (moe-core's `on_iter`
//! returns `Control::Abort`, and the fit fails with E_ABORTED). The flag is shared through an `Arc`: one
//! count is owned by the token object (dropped by its finalizer), one by its `cancel` function, one by
//! each fit that uses it, so a token may outlive or be outlived by any fit.
use crate::js::{guard, Env, Failure, JsResult};
use crate::sys::*;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub type CancelFlag = Arc<AtomicBool>;

unsafe extern "C" fn drop_flag(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(Arc::from_raw(data as *const AtomicBool));
}

/// `createCancelToken(): { cancel(): void }`
pub unsafe extern "C" fn create_cancel_token(env: napi_env, _info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let flag: CancelFlag = Arc::new(AtomicBool::new(false));
        let token = env.object()?;
        let for_token = Arc::into_raw(flag.clone()) as *mut c_void;
        if let Err(e) =
            env.check(napi_wrap(env.0, token, for_token, Some(drop_flag), null_mut(), null_mut()), "napi_wrap")
        {
            drop_flag(env.0, for_token, null_mut());
            return Err(e);
        }
        let for_function = Arc::into_raw(flag) as *mut c_void;
        let cancel = match env.function("cancel", Some(cancel), for_function) {
            Ok(f) => f,
            Err(e) => {
                drop_flag(env.0, for_function, null_mut());
                return Err(e);
            }
        };
        env.check(
            napi_add_finalizer(env.0, cancel, for_function, Some(drop_flag), null_mut(), null_mut()),
            "napi_add_finalizer",
        )?;
        env.set(token, "cancel", cancel)?;
        Ok(token)
    })
}

/// `token.cancel()`: the function's data pointer is its own count of the flag.
unsafe extern "C" fn cancel(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, |env| {
        let (_, data) = env.args::<0>(info)?;
        (*(data as *const AtomicBool)).store(true, Ordering::SeqCst);
        env.undefined()
    })
}

/// The flag of a token passed to `fit`/`fitSync`, or a fresh one when none was given.
pub fn read_cancel_token(env: Env, token: Option<napi_value>) -> JsResult<CancelFlag> {
    let Some(token) = token else { return Ok(Arc::new(AtomicBool::new(false))) };
    let mut data = null_mut();
    let status = unsafe { napi_unwrap(env.0, token, &mut data) };
    if status != NAPI_OK || data.is_null() {
        return Err(Failure::option("cancelToken must come from createCancelToken()"));
    }
    // Take a new count for the fit; the token keeps its own.
    let flag = unsafe {
        Arc::increment_strong_count(data as *const AtomicBool);
        Arc::from_raw(data as *const AtomicBool)
    };
    Ok(flag)
}
