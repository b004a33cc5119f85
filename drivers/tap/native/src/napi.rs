//! Hand-written Node-API declarations: only the calls this addon uses.
//!
//! Reference: `node_api.h` / `js_native_api.h` (Node-API version 8, Node >= 12.22).
//! The symbols are resolved at load time from the `node` executable, so the cdylib is
//! linked without them (Linux allows undefined symbols in shared objects by default).
//! Small safe-ish helpers below turn status codes into `Result` and JS values into Rust.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};
use std::ptr;

/// Opaque `napi_env`.
pub type napi_env = *mut c_void;
/// Opaque `napi_value`.
pub type napi_value = *mut c_void;
/// Opaque `napi_callback_info`.
pub type napi_callback_info = *mut c_void;
/// Opaque `napi_threadsafe_function`.
pub type napi_threadsafe_function = *mut c_void;
/// `napi_status` (0 = napi_ok).
pub type napi_status = i32;
/// A native function callable from JavaScript.
pub type napi_callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;
/// Called when the value wrapping native data is garbage collected.
pub type napi_finalize = unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void);

pub const NAPI_OK: napi_status = 0;
/// `napi_tsfn_nonblocking`: a call fails with napi_queue_full instead of waiting.
pub const NAPI_TSFN_NONBLOCKING: i32 = 0;
/// `napi_tsfn_abort`: pending calls are dropped and further calls fail.
pub const NAPI_TSFN_ABORT: i32 = 1;

// napi_typedarray_type: we accept only Uint8Array (1) and Int32Array (5).
pub const NAPI_UINT8_ARRAY: i32 = 1;
pub const NAPI_INT32_ARRAY: i32 = 5;

extern "C" {
    pub fn napi_get_cb_info(
        env: napi_env,
        info: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    pub fn napi_create_function(
        env: napi_env,
        name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_set_named_property(
        env: napi_env,
        object: napi_value,
        name: *const c_char,
        value: napi_value,
    ) -> napi_status;
    pub fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_create_object(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_create_int32(env: napi_env, value: i32, result: *mut napi_value) -> napi_status;
    pub fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    pub fn napi_get_boolean(env: napi_env, value: bool, result: *mut napi_value) -> napi_status;
    pub fn napi_create_string_utf8(
        env: napi_env,
        s: *const c_char,
        len: usize,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_value_string_utf8(
        env: napi_env,
        value: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    pub fn napi_get_value_int32(env: napi_env, value: napi_value, result: *mut i32) -> napi_status;
    pub fn napi_get_value_bool(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_create_external(
        env: napi_env,
        data: *mut c_void,
        finalize_cb: Option<napi_finalize>,
        finalize_hint: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_value_external(
        env: napi_env,
        value: napi_value,
        result: *mut *mut c_void,
    ) -> napi_status;
    pub fn napi_get_array_length(env: napi_env, value: napi_value, result: *mut u32)
        -> napi_status;
    pub fn napi_get_element(
        env: napi_env,
        object: napi_value,
        index: u32,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_typedarray_info(
        env: napi_env,
        typedarray: napi_value,
        kind: *mut i32,
        length: *mut usize,
        data: *mut *mut c_void,
        arraybuffer: *mut napi_value,
        byte_offset: *mut usize,
    ) -> napi_status;
    pub fn napi_create_buffer_copy(
        env: napi_env,
        length: usize,
        data: *const c_void,
        result_data: *mut *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_create_error(
        env: napi_env,
        code: napi_value,
        msg: napi_value,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_throw(env: napi_env, error: napi_value) -> napi_status;
    pub fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    pub fn napi_create_threadsafe_function(
        env: napi_env,
        func: napi_value,
        async_resource: napi_value,
        async_resource_name: napi_value,
        max_queue_size: usize,
        initial_thread_count: usize,
        thread_finalize_data: *mut c_void,
        thread_finalize_cb: Option<napi_finalize>,
        context: *mut c_void,
        call_js_cb: *mut c_void,
        result: *mut napi_threadsafe_function,
    ) -> napi_status;
    pub fn napi_call_threadsafe_function(
        func: napi_threadsafe_function,
        data: *mut c_void,
        is_blocking: i32,
    ) -> napi_status;
    pub fn napi_release_threadsafe_function(
        func: napi_threadsafe_function,
        mode: i32,
    ) -> napi_status;
    pub fn napi_ref_threadsafe_function(
        env: napi_env,
        func: napi_threadsafe_function,
    ) -> napi_status;
    pub fn napi_unref_threadsafe_function(
        env: napi_env,
        func: napi_threadsafe_function,
    ) -> napi_status;
    pub fn napi_add_env_cleanup_hook(
        env: napi_env,
        fun: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
    ) -> napi_status;
    pub fn napi_remove_env_cleanup_hook(
        env: napi_env,
        fun: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
    ) -> napi_status;
}

/// An error to be thrown into JavaScript: `Error(message)` with `code` (e.g. `EPERM`),
/// `errno` and `syscall` properties, like Node's own system errors.
pub struct JsError {
    pub message: String,
    pub code: String,
    pub errno: i32,
    pub syscall: &'static str,
}

impl JsError {
    /// A usage error (bad argument) with code `ERR_INVALID_ARG`.
    pub fn arg(message: impl Into<String>) -> JsError {
        JsError {
            message: message.into(),
            code: "ERR_INVALID_ARG".into(),
            errno: 0,
            syscall: "",
        }
    }
}

/// Result of a helper; `Err` is thrown by [`finish`].
pub type JsResult<T> = Result<T, JsError>;

fn check(status: napi_status, what: &str) -> JsResult<()> {
    if status == NAPI_OK {
        Ok(())
    } else {
        Err(JsError::arg(format!(
            "napi call failed ({what}, status {status})"
        )))
    }
}

/// Reads up to `N` arguments of the current call (missing ones are `undefined`).
pub unsafe fn args<const N: usize>(
    env: napi_env,
    info: napi_callback_info,
) -> JsResult<[napi_value; N]> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    check(
        napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        ),
        "get_cb_info",
    )?;
    Ok(argv)
}

/// `undefined`.
pub unsafe fn undefined(env: napi_env) -> napi_value {
    let mut v = ptr::null_mut();
    napi_get_undefined(env, &mut v);
    v
}

/// A JS number from an i32.
pub unsafe fn int(env: napi_env, x: i32) -> napi_value {
    let mut v = ptr::null_mut();
    napi_create_int32(env, x, &mut v);
    v
}

/// A JS number from an f64 (counters that may pass 2^31).
pub unsafe fn double(env: napi_env, x: f64) -> napi_value {
    let mut v = ptr::null_mut();
    napi_create_double(env, x, &mut v);
    v
}

/// A JS boolean.
pub unsafe fn boolean(env: napi_env, x: bool) -> napi_value {
    let mut v = ptr::null_mut();
    napi_get_boolean(env, x, &mut v);
    v
}

/// A JS string.
pub unsafe fn string(env: napi_env, s: &str) -> napi_value {
    let mut v = ptr::null_mut();
    napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut v);
    v
}

/// A new Buffer holding a copy of `bytes`.
pub unsafe fn buffer_copy(env: napi_env, bytes: &[u8]) -> napi_value {
    let mut v = ptr::null_mut();
    let mut data = ptr::null_mut();
    napi_create_buffer_copy(
        env,
        bytes.len(),
        bytes.as_ptr() as *const c_void,
        &mut data,
        &mut v,
    );
    v
}

/// A new plain object.
pub unsafe fn object(env: napi_env) -> napi_value {
    let mut v = ptr::null_mut();
    napi_create_object(env, &mut v);
    v
}

/// `obj[name] = value`; `name` must end in a NUL byte.
pub unsafe fn set(env: napi_env, obj: napi_value, name: &[u8], value: napi_value) {
    debug_assert!(name.last() == Some(&0));
    napi_set_named_property(env, obj, name.as_ptr() as *const c_char, value);
}

/// A JS string argument as UTF-8 (at most 255 bytes: interface names are 15).
pub unsafe fn get_string(env: napi_env, v: napi_value, what: &str) -> JsResult<String> {
    let mut buf = [0u8; 256];
    let mut len = 0usize;
    if napi_get_value_string_utf8(env, v, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len)
        != NAPI_OK
    {
        return Err(JsError::arg(format!("{what} must be a string")));
    }
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// A JS number argument as i32.
pub unsafe fn get_i32(env: napi_env, v: napi_value, what: &str) -> JsResult<i32> {
    let mut x = 0i32;
    if napi_get_value_int32(env, v, &mut x) != NAPI_OK {
        return Err(JsError::arg(format!("{what} must be a number")));
    }
    Ok(x)
}

/// A JS boolean argument.
pub unsafe fn get_bool(env: napi_env, v: napi_value, what: &str) -> JsResult<bool> {
    let mut x = false;
    if napi_get_value_bool(env, v, &mut x) != NAPI_OK {
        return Err(JsError::arg(format!("{what} must be a boolean")));
    }
    Ok(x)
}

/// The bytes of a typed array of the given kind (pointer, length in elements).
pub unsafe fn typed_array(
    env: napi_env,
    v: napi_value,
    want: i32,
    what: &str,
) -> JsResult<(*mut u8, usize)> {
    let mut kind = -1i32;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    let st = napi_get_typedarray_info(
        env,
        v,
        &mut kind,
        &mut len,
        &mut data,
        ptr::null_mut(),
        ptr::null_mut(),
    );
    if st != NAPI_OK || kind != want {
        let name = if want == NAPI_UINT8_ARRAY {
            "a Uint8Array"
        } else {
            "an Int32Array"
        };
        return Err(JsError::arg(format!("{what} must be {name}")));
    }
    Ok((data as *mut u8, len))
}

/// Element `i` of a JS array.
pub unsafe fn element(env: napi_env, arr: napi_value, i: u32) -> JsResult<napi_value> {
    let mut v = ptr::null_mut();
    check(napi_get_element(env, arr, i, &mut v), "get_element")?;
    Ok(v)
}

/// Turns a helper's result into the value returned to JavaScript, throwing on `Err`.
pub unsafe fn finish(env: napi_env, r: JsResult<napi_value>) -> napi_value {
    match r {
        Ok(v) => v,
        Err(e) => {
            let mut pending = false;
            napi_is_exception_pending(env, &mut pending);
            if !pending {
                let mut err = ptr::null_mut();
                napi_create_error(env, string(env, &e.code), string(env, &e.message), &mut err);
                if e.errno != 0 {
                    set(env, err, b"errno\0", int(env, e.errno));
                }
                if !e.syscall.is_empty() {
                    set(env, err, b"syscall\0", string(env, e.syscall));
                }
                napi_throw(env, err);
            }
            ptr::null_mut()
        }
    }
}
