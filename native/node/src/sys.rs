//! Raw Node-API declarations: the subset of `js_native_api.h` / `node_api.h` this addon uses, declared by
//! hand (no crates are available). The symbols stay undefined in the cdylib and are resolved from the
//! `node` executable when it loads the addon. Nothing here is safe to call directly: `crate::js` wraps it.
#![allow(non_camel_case_types, dead_code)]
use std::os::raw::{c_char, c_void};

macro_rules! opaque {
    ($($name:ident => $ptr:ident),* $(,)?) => {
        $( #[repr(C)] pub struct $name { _private: [u8; 0] } pub type $ptr = *mut $name; )*
    };
}
opaque!(
    napi_env__ => napi_env,
    napi_value__ => napi_value,
    napi_callback_info__ => napi_callback_info,
    napi_deferred__ => napi_deferred,
    napi_async_work__ => napi_async_work,
    napi_ref__ => napi_ref,
    napi_threadsafe_function__ => napi_threadsafe_function,
);

pub type napi_status = i32;
pub const NAPI_OK: napi_status = 0;
pub const NAPI_PENDING_EXCEPTION: napi_status = 10;

/// `napi_valuetype`
pub type napi_valuetype = i32;
pub const NAPI_UNDEFINED: napi_valuetype = 0;
pub const NAPI_NULL: napi_valuetype = 1;
pub const NAPI_BOOLEAN: napi_valuetype = 2;
pub const NAPI_NUMBER: napi_valuetype = 3;
pub const NAPI_STRING: napi_valuetype = 4;
pub const NAPI_OBJECT: napi_valuetype = 6;
pub const NAPI_FUNCTION: napi_valuetype = 7;

/// `napi_typedarray_type`
pub type napi_typedarray_type = i32;
pub const NAPI_UINT32_ARRAY: napi_typedarray_type = 6;
pub const NAPI_FLOAT64_ARRAY: napi_typedarray_type = 8;

/// `napi_threadsafe_function_call_mode` and `napi_threadsafe_function_release_mode`
pub const NAPI_TSFN_NONBLOCKING: i32 = 0;
pub const NAPI_TSFN_RELEASE: i32 = 0;

pub type napi_callback = Option<unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value>;
pub type napi_finalize = Option<unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void)>;
pub type napi_async_execute_callback = Option<unsafe extern "C" fn(napi_env, *mut c_void)>;
pub type napi_async_complete_callback = Option<unsafe extern "C" fn(napi_env, napi_status, *mut c_void)>;
pub type napi_threadsafe_function_call_js =
    Option<unsafe extern "C" fn(napi_env, napi_value, *mut c_void, *mut c_void)>;

extern "C" {
    // Values in, values out.
    pub fn napi_typeof(env: napi_env, v: napi_value, result: *mut napi_valuetype) -> napi_status;
    pub fn napi_get_value_double(env: napi_env, v: napi_value, result: *mut f64) -> napi_status;
    pub fn napi_get_value_bool(env: napi_env, v: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_get_value_string_utf8(
        env: napi_env,
        v: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    pub fn napi_create_double(env: napi_env, v: f64, result: *mut napi_value) -> napi_status;
    pub fn napi_get_boolean(env: napi_env, v: bool, result: *mut napi_value) -> napi_status;
    pub fn napi_get_null(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_create_string_utf8(env: napi_env, s: *const c_char, len: usize, result: *mut napi_value)
        -> napi_status;

    // Objects and arrays.
    pub fn napi_create_object(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_get_named_property(
        env: napi_env,
        obj: napi_value,
        name: *const c_char,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_set_named_property(env: napi_env, obj: napi_value, name: *const c_char, v: napi_value) -> napi_status;
    pub fn napi_create_array_with_length(env: napi_env, len: usize, result: *mut napi_value) -> napi_status;
    pub fn napi_set_element(env: napi_env, obj: napi_value, index: u32, v: napi_value) -> napi_status;
    pub fn napi_is_array(env: napi_env, v: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_get_array_length(env: napi_env, v: napi_value, result: *mut u32) -> napi_status;
    pub fn napi_get_element(env: napi_env, obj: napi_value, index: u32, result: *mut napi_value) -> napi_status;

    // Typed arrays.
    pub fn napi_is_typedarray(env: napi_env, v: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_get_typedarray_info(
        env: napi_env,
        v: napi_value,
        ty: *mut napi_typedarray_type,
        length: *mut usize,
        data: *mut *mut c_void,
        arraybuffer: *mut napi_value,
        byte_offset: *mut usize,
    ) -> napi_status;
    pub fn napi_create_arraybuffer(
        env: napi_env,
        byte_len: usize,
        data: *mut *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_create_typedarray(
        env: napi_env,
        ty: napi_typedarray_type,
        length: usize,
        arraybuffer: napi_value,
        byte_offset: usize,
        result: *mut napi_value,
    ) -> napi_status;

    // Functions and callbacks.
    pub fn napi_create_function(
        env: napi_env,
        name: *const c_char,
        len: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_cb_info(
        env: napi_env,
        info: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    pub fn napi_call_function(
        env: napi_env,
        recv: napi_value,
        func: napi_value,
        argc: usize,
        argv: *const napi_value,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_wrap(
        env: napi_env,
        obj: napi_value,
        native: *mut c_void,
        cb: napi_finalize,
        hint: *mut c_void,
        result: *mut napi_ref,
    ) -> napi_status;
    pub fn napi_unwrap(env: napi_env, obj: napi_value, result: *mut *mut c_void) -> napi_status;
    pub fn napi_add_finalizer(
        env: napi_env,
        obj: napi_value,
        data: *mut c_void,
        cb: napi_finalize,
        hint: *mut c_void,
        result: *mut napi_ref,
    ) -> napi_status;

    // Errors.
    pub fn napi_create_error(env: napi_env, code: napi_value, msg: napi_value, result: *mut napi_value) -> napi_status;
    pub fn napi_throw(env: napi_env, error: napi_value) -> napi_status;
    pub fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    pub fn napi_get_and_clear_last_exception(env: napi_env, result: *mut napi_value) -> napi_status;

    // References (keep JS values alive while a worker thread reads them).
    pub fn napi_create_reference(env: napi_env, v: napi_value, initial: u32, result: *mut napi_ref) -> napi_status;
    pub fn napi_delete_reference(env: napi_env, r: napi_ref) -> napi_status;
    pub fn napi_get_reference_value(env: napi_env, r: napi_ref, result: *mut napi_value) -> napi_status;

    // Promises and async work on the libuv pool.
    pub fn napi_create_promise(env: napi_env, deferred: *mut napi_deferred, promise: *mut napi_value) -> napi_status;
    pub fn napi_resolve_deferred(env: napi_env, d: napi_deferred, v: napi_value) -> napi_status;
    pub fn napi_reject_deferred(env: napi_env, d: napi_deferred, v: napi_value) -> napi_status;
    pub fn napi_create_async_work(
        env: napi_env,
        resource: napi_value,
        resource_name: napi_value,
        execute: napi_async_execute_callback,
        complete: napi_async_complete_callback,
        data: *mut c_void,
        result: *mut napi_async_work,
    ) -> napi_status;
    pub fn napi_queue_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    pub fn napi_delete_async_work(env: napi_env, work: napi_async_work) -> napi_status;

    // Thread-safe functions: how a worker thread hands messages to the JS thread.
    pub fn napi_create_threadsafe_function(
        env: napi_env,
        func: napi_value,
        async_resource: napi_value,
        async_resource_name: napi_value,
        max_queue_size: usize,
        initial_thread_count: usize,
        thread_finalize_data: *mut c_void,
        thread_finalize_cb: napi_finalize,
        context: *mut c_void,
        call_js_cb: napi_threadsafe_function_call_js,
        result: *mut napi_threadsafe_function,
    ) -> napi_status;
    pub fn napi_call_threadsafe_function(func: napi_threadsafe_function, data: *mut c_void, mode: i32) -> napi_status;
    pub fn napi_release_threadsafe_function(func: napi_threadsafe_function, mode: i32) -> napi_status;
}
