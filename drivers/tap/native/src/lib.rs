//! pathsplice TAP addon: the syscalls of the TAP driver and nothing above them.
//!
//! Exports (see `../index.d.ts` for the JavaScript view):
//! - `open(name, flags, mtu, mac, ringSlots, slotSize, onReadable, posted, postOffset)` → `{ handle, name, ifindex, mtu, mac }`
//! - `recv(handle, small, big, meta)` → frames delivered: copied into `small` buffers, or
//!   (posted rings) handed over in place and replaced by `big` buffers
//! - `send(handle, bufs, meta, count)` → frames written (per-frame status in `meta`)
//! - `setRef(handle, on)`, `info(handle)`, `close(handle)`
//!
//! The module registers itself the Node-API way: Node looks up `napi_register_module_v1`.

mod napi;
mod sys;
mod tap;

use napi::*;
use std::ffi::c_void;
use tap::{OpenOptions, RecvLimits, Tap};

/// `open` flag bits (mirrored in index.d.ts).
const OPEN_CREATE: i32 = 1;
const OPEN_VNET: i32 = 2;
const OPEN_TSO: i32 = 4;
const OPEN_UP: i32 = 8;

/// `recv` meta header: inputs [0..7) (max, small count/offset/capacity, big
/// count/offset/capacity), outputs overwrite [1..4) (ring empty, oversize drops, reader
/// errno); frame records of `REC` ints follow.
const RX_HDR: usize = 8;
/// Ints per frame record in `recv` and `send` meta arrays.
const REC: usize = 8;

unsafe extern "C" fn finalize(env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // The hook must not outlive the Tap it points to (a no-op if close() removed it).
    napi_remove_env_cleanup_hook(env, cleanup_hook, data);
    let mut tap = Box::from_raw(data as *mut Tap);
    // GC only reaches an open device during environment teardown (the threadsafe function
    // holds its callback, which holds the device); Node finalizes the function itself then.
    tap.shutdown(false);
}

/// Environment cleanup hook: stop the reader before Node tears down the threadsafe
/// function it calls (hooks run in reverse order of registration; ours is added after
/// the function is created, so it runs first).
unsafe extern "C" fn cleanup_hook(arg: *mut c_void) {
    (*(arg as *mut Tap)).shutdown(false);
}

unsafe fn get_tap<'a>(env: napi_env, v: napi_value) -> JsResult<&'a mut Tap> {
    let mut p: *mut c_void = std::ptr::null_mut();
    if napi_get_value_external(env, v, &mut p) != NAPI_OK || p.is_null() {
        return Err(JsError::arg("not a TAP handle"));
    }
    Ok(&mut *(p as *mut Tap))
}

unsafe extern "C" fn js_open(env: napi_env, info: napi_callback_info) -> napi_value {
    let r = (|| {
        let a = args::<9>(env, info)?;
        let flags = get_i32(env, a[1], "flags")?;
        let mac = match typed_array(env, a[3], NAPI_UINT8_ARRAY, "mac") {
            Ok((p, 6)) => std::slice::from_raw_parts(p, 6).to_vec(),
            Ok((_, 0)) => Vec::new(),
            _ => {
                return Err(JsError::arg(
                    "mac must be a 6-byte Uint8Array (or empty to keep the kernel's)",
                ))
            }
        };
        let o = OpenOptions {
            name: get_string(env, a[0], "name")?,
            create: flags & OPEN_CREATE != 0,
            vnet: flags & OPEN_VNET != 0,
            tso: flags & OPEN_TSO != 0,
            up: flags & OPEN_UP != 0,
            mtu: get_i32(env, a[2], "mtu")?,
            mac,
            ring_slots: get_i32(env, a[4], "ringSlots")?.max(0) as usize,
            slot_size: get_i32(env, a[5], "slotSize")?.max(0) as usize,
            posted: Vec::new(),
        };
        let mut o = o;
        // Optional posted buffers: a[7] an array of one Uint8Array per slot, a[8] the offset
        // where frames start in them (the vnet header goes just before it).
        let mut n_posted = 0u32;
        if napi_get_array_length(env, a[7], &mut n_posted) == NAPI_OK && n_posted > 0 {
            if n_posted as usize != o.ring_slots {
                return Err(JsError::arg("post exactly one buffer per ring slot"));
            }
            let off = get_i32(env, a[8], "postOffset")?.max(0) as usize;
            let hdr = if o.vnet { tap::VNET_HDR_LEN } else { 0 };
            if off < hdr {
                return Err(JsError::arg(
                    "postOffset leaves no room for the vnet header",
                ));
            }
            for i in 0..n_posted {
                let (p, l) = typed_array(
                    env,
                    element(env, a[7], i)?,
                    NAPI_UINT8_ARRAY,
                    "posted buffer",
                )?;
                if off - hdr + o.slot_size > l {
                    return Err(JsError::arg(
                        "posted buffer shorter than offset + slot size",
                    ));
                }
                o.posted.push(p.add(off - hdr));
            }
        }
        let (tap, inf) = Tap::open(env, &o, a[6])?;
        let raw = Box::into_raw(tap);
        let mut handle = std::ptr::null_mut();
        napi_create_external(
            env,
            raw as *mut c_void,
            Some(finalize),
            std::ptr::null_mut(),
            &mut handle,
        );
        napi_add_env_cleanup_hook(env, cleanup_hook, raw as *mut c_void);
        let res = object(env);
        set(env, res, b"handle\0", handle);
        set(env, res, b"name\0", string(env, &inf.name));
        set(env, res, b"ifindex\0", int(env, inf.ifindex));
        set(env, res, b"mtu\0", int(env, inf.mtu));
        set(env, res, b"mac\0", buffer_copy(env, &inf.mac));
        Ok(res)
    })();
    finish(env, r)
}

unsafe extern "C" fn js_recv(env: napi_env, info: napi_callback_info) -> napi_value {
    let r = (|| {
        let a = args::<4>(env, info)?;
        let tap = get_tap(env, a[0])?;
        let (mp, ml) = typed_array(env, a[3], NAPI_INT32_ARRAY, "meta")?;
        let meta = std::slice::from_raw_parts_mut(mp as *mut i32, ml);
        if ml < RX_HDR {
            return Err(JsError::arg("meta too short"));
        }
        let max = (meta[0].max(0) as usize).min((ml - RX_HDR) / REC);
        let lim = RecvLimits {
            max,
            small: meta[1].max(0) as usize,
            small_off: meta[2].max(0) as usize,
            small_cap: meta[3].max(0) as usize,
            big: meta[4].max(0) as usize,
            big_off: meta[5].max(0) as usize,
            big_cap: meta[6].max(0) as usize,
        };
        let (small_arr, big_arr) = (a[1], a[2]);
        let mut small = |i: usize| -> JsResult<(*mut u8, usize)> {
            typed_array(
                env,
                element(env, small_arr, i as u32)?,
                NAPI_UINT8_ARRAY,
                "small buffer",
            )
        };
        let mut big = |i: usize| -> JsResult<(*mut u8, usize)> {
            typed_array(
                env,
                element(env, big_arr, i as u32)?,
                NAPI_UINT8_ARRAY,
                "big buffer",
            )
        };
        let (hdr, recs) = meta.split_at_mut(RX_HDR);
        let res = tap.recv(&mut small, &mut big, lim, recs)?;
        // Outputs overwrite the input limits, which the caller sets afresh each call.
        hdr[1] = res.empty as i32;
        hdr[2] = res.oversize;
        hdr[3] = tap
            .sh
            .reader_errno
            .load(std::sync::atomic::Ordering::SeqCst);
        Ok(int(env, res.frames as i32))
    })();
    finish(env, r)
}

unsafe extern "C" fn js_send(env: napi_env, info: napi_callback_info) -> napi_value {
    let r = (|| {
        let a = args::<4>(env, info)?;
        let tap = get_tap(env, a[0])?;
        let (mp, ml) = typed_array(env, a[2], NAPI_INT32_ARRAY, "meta")?;
        let meta = std::slice::from_raw_parts_mut(mp as *mut i32, ml);
        let count = (get_i32(env, a[3], "count")?.max(0) as usize).min(ml / REC);
        let mut ok = 0;
        for i in 0..count {
            let rec = &mut meta[i * REC..i * REC + REC];
            let (p, l) = typed_array(
                env,
                element(env, a[1], i as u32)?,
                NAPI_UINT8_ARRAY,
                "frame buffer",
            )?;
            let (off, len) = (rec[0], rec[1]);
            if off < 0 || len <= 0 || off as usize + len as usize > l {
                rec[0] = -2; // bad range: counted as a drop by the caller
                continue;
            }
            let bytes = std::slice::from_raw_parts_mut(p.add(off as usize), len as usize);
            let st = tap.write_frame(bytes, &rec[2..8]);
            rec[0] = st;
            if st == 0 {
                ok += 1;
            }
        }
        Ok(int(env, ok))
    })();
    finish(env, r)
}

unsafe extern "C" fn js_set_ref(env: napi_env, info: napi_callback_info) -> napi_value {
    let r = (|| {
        let a = args::<2>(env, info)?;
        let tap = get_tap(env, a[0])?;
        tap.set_ref(env, get_bool(env, a[1], "on")?);
        Ok(undefined(env))
    })();
    finish(env, r)
}

unsafe extern "C" fn js_info(env: napi_env, info: napi_callback_info) -> napi_value {
    let r = (|| {
        let a = args::<1>(env, info)?;
        let tap = get_tap(env, a[0])?;
        let o = object(env);
        set(env, o, b"closed\0", boolean(env, tap.closed));
        set(env, o, b"queued\0", double(env, tap.queued() as f64));
        set(
            env,
            o,
            b"readerErrno\0",
            int(
                env,
                tap.sh
                    .reader_errno
                    .load(std::sync::atomic::Ordering::SeqCst),
            ),
        );
        set(
            env,
            o,
            b"fd\0",
            int(env, if tap.closed { -1 } else { tap.sh.fd }),
        );
        Ok(o)
    })();
    finish(env, r)
}

unsafe extern "C" fn js_close(env: napi_env, info: napi_callback_info) -> napi_value {
    let r = (|| {
        let a = args::<1>(env, info)?;
        let tap = get_tap(env, a[0])?;
        if !tap.closed {
            napi_remove_env_cleanup_hook(env, cleanup_hook, tap as *mut Tap as *mut c_void);
            tap.shutdown(true);
        }
        Ok(undefined(env))
    })();
    finish(env, r)
}

/// Module entry point looked up by Node (node_api.h `NAPI_MODULE_INIT`).
///
/// # Safety
/// Called by Node only, with a valid `env` and `exports` object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let fns: [(&[u8], napi_callback); 6] = [
        (b"open\0", js_open),
        (b"recv\0", js_recv),
        (b"send\0", js_send),
        (b"setRef\0", js_set_ref),
        (b"info\0", js_info),
        (b"close\0", js_close),
    ];
    for (name, cb) in fns {
        let mut f = std::ptr::null_mut();
        napi_create_function(
            env,
            name.as_ptr() as *const _,
            name.len() - 1,
            cb,
            std::ptr::null_mut(),
            &mut f,
        );
        set(env, exports, name, f);
    }
    exports
}

/// Node-API version this addon needs (node_api.h `node_api_module_get_api_version_v1`):
/// 8 covers everything used here.
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
