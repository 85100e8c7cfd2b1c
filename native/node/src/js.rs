//! The thin safe layer over `crate::sys`: reading arguments (numbers, strings, named properties, zero-copy
//! Float64Array views), building results (objects, arrays, new Float64Arrays) and throwing errors that carry
//! a `code` property. Every exported function body runs inside `guard`, which turns a `Failure` or a Rust
//! panic into a thrown JS error, so nothing unwinds into C.
use crate::sys::*;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

/// Why a call failed, as JS will see it.
#[derive(Debug)]
pub enum Failure {
    /// Thrown as `Error(message)` with `error.code = code` (the codes of src/errors.ts).
    Coded { code: String, message: String },
    /// A JS exception is already pending (a user callback threw): leave it in place.
    PendingException,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Failure::Coded { code: code.to_string(), message: message.into() }
    }
    pub fn shape(message: impl Into<String>) -> Self {
        Self::new("E_SHAPE", message)
    }
    pub fn option(message: impl Into<String>) -> Self {
        Self::new("E_OPTION", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("E_INTERNAL", message)
    }
}

impl From<moe_core::Error> for Failure {
    fn from(e: moe_core::Error) -> Self {
        Failure::new(e.code.as_str(), e.message)
    }
}

pub type JsResult<T> = Result<T, Failure>;

/// Text of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// A Rust string as a NUL-terminated C string (interior NULs, which Node never needs, are dropped).
pub fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs were removed")
}

/// The environment of the current call; only valid on the JS thread, for the duration of that call.
#[derive(Clone, Copy)]
pub struct Env(pub napi_env);

impl Env {
    /// Turns a Node-API status into a `Failure`: a pending JS exception stays pending, anything else is a bug.
    pub fn check(self, status: napi_status, what: &str) -> JsResult<()> {
        if status == NAPI_OK {
            return Ok(());
        }
        let mut pending = false;
        unsafe { napi_is_exception_pending(self.0, &mut pending) };
        if pending || status == NAPI_PENDING_EXCEPTION {
            return Err(Failure::PendingException);
        }
        Err(Failure::internal(format!("Node-API call failed ({what}, status {status})")))
    }

    // ---- arguments -------------------------------------------------------------------------------------

    /// The first `N` arguments of the call (missing ones are `undefined`) and the function's data pointer.
    pub fn args<const N: usize>(self, info: napi_callback_info) -> JsResult<([napi_value; N], *mut c_void)> {
        let mut argc = N;
        let mut argv = [null_mut(); N];
        let mut data = null_mut();
        self.check(
            unsafe { napi_get_cb_info(self.0, info, &mut argc, argv.as_mut_ptr(), null_mut(), &mut data) },
            "napi_get_cb_info",
        )?;
        Ok((argv, data))
    }

    pub fn type_of(self, v: napi_value) -> JsResult<napi_valuetype> {
        let mut t = NAPI_UNDEFINED;
        self.check(unsafe { napi_typeof(self.0, v, &mut t) }, "napi_typeof")?;
        Ok(t)
    }

    /// `undefined` or `null` (an omitted optional argument or property).
    pub fn is_absent(self, v: napi_value) -> JsResult<bool> {
        Ok(v.is_null() || matches!(self.type_of(v)?, NAPI_UNDEFINED | NAPI_NULL))
    }

    /// Property `name` of object `obj` (`undefined` when missing). `what` names `obj` in error messages.
    pub fn get(self, obj: napi_value, name: &str, what: &str) -> JsResult<napi_value> {
        if self.type_of(obj)? != NAPI_OBJECT {
            return Err(Failure::shape(format!("{what} must be an object")));
        }
        let key = c_string(name);
        let mut v = null_mut();
        self.check(unsafe { napi_get_named_property(self.0, obj, key.as_ptr(), &mut v) }, "napi_get_named_property")?;
        Ok(v)
    }

    /// The elements of a JS array. `what` names it in error messages.
    pub fn elements(self, v: napi_value, what: &str) -> JsResult<Vec<napi_value>> {
        let mut is_array = false;
        self.check(unsafe { napi_is_array(self.0, v, &mut is_array) }, "napi_is_array")?;
        if !is_array {
            return Err(Failure::shape(format!("{what} must be an array")));
        }
        let mut len = 0u32;
        self.check(unsafe { napi_get_array_length(self.0, v, &mut len) }, "napi_get_array_length")?;
        (0..len)
            .map(|i| {
                let mut item = null_mut();
                self.check(unsafe { napi_get_element(self.0, v, i, &mut item) }, "napi_get_element")?;
                Ok(item)
            })
            .collect()
    }

    /// Property `name`, or `None` when it is `undefined` or `null`.
    pub fn get_opt(self, obj: napi_value, name: &str, what: &str) -> JsResult<Option<napi_value>> {
        let v = self.get(obj, name, what)?;
        Ok(if self.is_absent(v)? { None } else { Some(v) })
    }

    pub fn number(self, v: napi_value, what: &str) -> JsResult<f64> {
        if self.type_of(v)? != NAPI_NUMBER {
            return Err(Failure::option(format!("{what} must be a number")));
        }
        let mut x = 0.0;
        self.check(unsafe { napi_get_value_double(self.0, v, &mut x) }, "napi_get_value_double")?;
        Ok(x)
    }

    /// A non-negative integer that fits in `usize` (counts, sizes, iteration limits).
    pub fn count(self, v: napi_value, what: &str) -> JsResult<usize> {
        let x = self.number(v, what)?;
        if !(x >= 0.0 && x.fract() == 0.0 && x <= 9007199254740991.0) {
            return Err(Failure::option(format!("{what} must be a non-negative integer, got {x}")));
        }
        Ok(x as usize)
    }

    pub fn boolean(self, v: napi_value, what: &str) -> JsResult<bool> {
        if self.type_of(v)? != NAPI_BOOLEAN {
            return Err(Failure::option(format!("{what} must be a boolean")));
        }
        let mut b = false;
        self.check(unsafe { napi_get_value_bool(self.0, v, &mut b) }, "napi_get_value_bool")?;
        Ok(b)
    }

    pub fn string(self, v: napi_value, what: &str) -> JsResult<String> {
        if self.type_of(v)? != NAPI_STRING {
            return Err(Failure::option(format!("{what} must be a string")));
        }
        let mut len = 0usize;
        self.check(unsafe { napi_get_value_string_utf8(self.0, v, null_mut(), 0, &mut len) }, "string length")?;
        let mut buf = vec![0u8; len + 1];
        self.check(
            unsafe { napi_get_value_string_utf8(self.0, v, buf.as_mut_ptr() as *mut c_char, len + 1, &mut len) },
            "string value",
        )?;
        buf.truncate(len);
        String::from_utf8(buf).map_err(|_| Failure::option(format!("{what} is not valid UTF-8")))
    }

    /// Zero-copy view of a Float64Array's elements.
    ///
    /// # Safety
    /// The slice borrows memory owned by the JS heap: it is valid while `v` is alive and not detached, i.e.
    /// for the current call, or longer while a `napi_ref` to `v` is held (see `Env::reference`).
    pub unsafe fn f64_view<'a>(self, v: napi_value, what: &str) -> JsResult<&'a [f64]> {
        self.typed_view(v, NAPI_FLOAT64_ARRAY, "Float64Array", what)
    }

    /// Zero-copy view of a Uint32Array's elements (safety as `f64_view`).
    ///
    /// # Safety
    /// See `f64_view`.
    pub unsafe fn u32_view<'a>(self, v: napi_value, what: &str) -> JsResult<&'a [u32]> {
        self.typed_view(v, NAPI_UINT32_ARRAY, "Uint32Array", what)
    }

    /// `T` must be the element type of typed arrays of kind `kind`.
    unsafe fn typed_view<'a, T>(
        self,
        v: napi_value,
        kind: napi_typedarray_type,
        kind_name: &str,
        what: &str,
    ) -> JsResult<&'a [T]> {
        let mut is_typed = false;
        self.check(napi_is_typedarray(self.0, v, &mut is_typed), "napi_is_typedarray")?;
        if !is_typed {
            return Err(Failure::shape(format!("{what} must be a {kind_name}")));
        }
        let (mut ty, mut len, mut data, mut offset) = (0, 0usize, null_mut::<c_void>(), 0usize);
        self.check(
            napi_get_typedarray_info(self.0, v, &mut ty, &mut len, &mut data, null_mut(), &mut offset),
            "napi_get_typedarray_info",
        )?;
        if ty != kind {
            return Err(Failure::shape(format!("{what} must be a {kind_name}")));
        }
        // `data` already includes the byte offset; an empty or detached array may report a null pointer.
        if len == 0 || data.is_null() {
            return Ok(&[]);
        }
        Ok(std::slice::from_raw_parts(data as *const T, len))
    }

    // ---- results ---------------------------------------------------------------------------------------

    pub fn num(self, x: f64) -> JsResult<napi_value> {
        let mut v = null_mut();
        self.check(unsafe { napi_create_double(self.0, x, &mut v) }, "napi_create_double")?;
        Ok(v)
    }

    pub fn bool(self, b: bool) -> JsResult<napi_value> {
        let mut v = null_mut();
        self.check(unsafe { napi_get_boolean(self.0, b, &mut v) }, "napi_get_boolean")?;
        Ok(v)
    }

    pub fn null(self) -> JsResult<napi_value> {
        let mut v = null_mut();
        self.check(unsafe { napi_get_null(self.0, &mut v) }, "napi_get_null")?;
        Ok(v)
    }

    pub fn undefined(self) -> JsResult<napi_value> {
        let mut v = null_mut();
        self.check(unsafe { napi_get_undefined(self.0, &mut v) }, "napi_get_undefined")?;
        Ok(v)
    }

    pub fn str(self, s: &str) -> JsResult<napi_value> {
        let mut v = null_mut();
        self.check(
            unsafe { napi_create_string_utf8(self.0, s.as_ptr() as *const c_char, s.len(), &mut v) },
            "napi_create_string_utf8",
        )?;
        Ok(v)
    }

    pub fn object(self) -> JsResult<napi_value> {
        let mut v = null_mut();
        self.check(unsafe { napi_create_object(self.0, &mut v) }, "napi_create_object")?;
        Ok(v)
    }

    pub fn set(self, obj: napi_value, name: &str, v: napi_value) -> JsResult<()> {
        let key = c_string(name);
        self.check(unsafe { napi_set_named_property(self.0, obj, key.as_ptr(), v) }, "napi_set_named_property")
    }

    /// A JS array of the given values.
    pub fn array(self, items: &[napi_value]) -> JsResult<napi_value> {
        let mut arr = null_mut();
        self.check(unsafe { napi_create_array_with_length(self.0, items.len(), &mut arr) }, "napi_create_array")?;
        for (i, &item) in items.iter().enumerate() {
            self.check(unsafe { napi_set_element(self.0, arr, i as u32, item) }, "napi_set_element")?;
        }
        Ok(arr)
    }

    /// A plain `number[]`.
    pub fn number_array(self, xs: &[f64]) -> JsResult<napi_value> {
        let items = xs.iter().map(|&x| self.num(x)).collect::<JsResult<Vec<_>>>()?;
        self.array(&items)
    }

    /// A new Float64Array holding a copy of `xs` (one memcpy into memory the JS engine owns).
    pub fn float64_array(self, xs: &[f64]) -> JsResult<napi_value> {
        self.float64_array_with(xs.len(), |out| out.copy_from_slice(xs))
    }

    /// A new Float64Array of `len` values that `fill` writes in place (no intermediate Rust buffer). The
    /// ArrayBuffer comes zeroed from Node; `fill` must write every value it wants to differ from 0.
    pub fn float64_array_with(self, len: usize, fill: impl FnOnce(&mut [f64])) -> JsResult<napi_value> {
        self.typed_array_with(len, NAPI_FLOAT64_ARRAY, fill)
    }

    /// A new Uint32Array holding a copy of `xs`.
    pub fn uint32_array(self, xs: &[u32]) -> JsResult<napi_value> {
        self.typed_array_with(xs.len(), NAPI_UINT32_ARRAY, |out| out.copy_from_slice(xs))
    }

    /// A new typed array of kind `kind` (whose elements must be `T`) and `len` elements, filled in place.
    fn typed_array_with<T>(
        self,
        len: usize,
        kind: napi_typedarray_type,
        fill: impl FnOnce(&mut [T]),
    ) -> JsResult<napi_value> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Failure::shape(format!("{len} values do not fit in memory")))?;
        let (mut data, mut buffer, mut out) = (null_mut::<c_void>(), null_mut(), null_mut());
        self.check(
            unsafe { napi_create_arraybuffer(self.0, bytes, &mut data, &mut buffer) },
            "napi_create_arraybuffer",
        )?;
        if len > 0 {
            // Node allocates ArrayBuffers 8-byte aligned, and this one is ours until it is returned.
            fill(unsafe { std::slice::from_raw_parts_mut(data as *mut T, len) });
        }
        self.check(
            unsafe { napi_create_typedarray(self.0, kind, len, buffer, 0, &mut out) },
            "napi_create_typedarray",
        )?;
        Ok(out)
    }

    /// An `Error(message)` object with `error.code = code`.
    pub fn error(self, code: &str, message: &str) -> JsResult<napi_value> {
        let (code_v, msg_v) = (self.str(code)?, self.str(message)?);
        let mut err = null_mut();
        self.check(unsafe { napi_create_error(self.0, code_v, msg_v, &mut err) }, "napi_create_error")?;
        Ok(err)
    }

    /// The JS value to reject with / throw for `failure` (a pending exception is taken off the stack).
    pub fn failure_value(self, failure: &Failure) -> napi_value {
        match failure {
            Failure::Coded { code, message } => self.error(code, message).unwrap_or(null_mut()),
            Failure::PendingException => {
                let mut exc = null_mut();
                unsafe { napi_get_and_clear_last_exception(self.0, &mut exc) };
                exc
            }
        }
    }

    /// Throws `failure` as a JS exception and returns the null value a callback returns after throwing.
    pub fn throw(self, failure: Failure) -> napi_value {
        if let Failure::Coded { .. } = failure {
            let err = self.failure_value(&failure);
            if !err.is_null() {
                unsafe { napi_throw(self.0, err) };
            }
        }
        null_mut()
    }

    /// Calls `func(args...)` with `this = undefined`.
    pub fn call(self, func: napi_value, args: &[napi_value]) -> JsResult<napi_value> {
        let recv = self.undefined()?;
        let mut result = null_mut();
        self.check(
            unsafe { napi_call_function(self.0, recv, func, args.len(), args.as_ptr(), &mut result) },
            "napi_call_function",
        )?;
        Ok(result)
    }

    /// A strong reference that keeps `v` alive (and its buffer attached) until `release`.
    pub fn reference(self, v: napi_value) -> JsResult<napi_ref> {
        let mut r = null_mut();
        self.check(unsafe { napi_create_reference(self.0, v, 1, &mut r) }, "napi_create_reference")?;
        Ok(r)
    }

    pub fn release(self, r: napi_ref) {
        unsafe { napi_delete_reference(self.0, r) };
    }

    /// Adds `exports[name] = function` calling `cb` with `data` as its data pointer.
    pub fn function(self, name: &str, cb: napi_callback, data: *mut c_void) -> JsResult<napi_value> {
        let mut f = null_mut();
        self.check(
            unsafe { napi_create_function(self.0, name.as_ptr() as *const c_char, name.len(), cb, data, &mut f) },
            "napi_create_function",
        )?;
        Ok(f)
    }
}

/// Runs an exported function's body: a `Failure` becomes a thrown error, and a panic becomes `E_INTERNAL`
/// instead of unwinding into Node (undefined behaviour).
pub fn guard(env: napi_env, body: impl FnOnce(Env) -> JsResult<napi_value>) -> napi_value {
    let env = Env(env);
    match catch_unwind(AssertUnwindSafe(|| body(env))) {
        Ok(Ok(v)) => v,
        Ok(Err(failure)) => env.throw(failure),
        Err(payload) => env.throw(Failure::internal(format!("Rust panic: {}", panic_message(&*payload)))),
    }
}
