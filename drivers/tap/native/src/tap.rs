//! A TAP device: open/configure it, a reader thread filling a ring of frames, and the
//! batch copy/write operations the JavaScript side calls.
//!
//! ```text
//!   kernel tapX ──read()──▶ reader thread ──▶ ring [slot|slot|slot|...]  ──recv()──▶ Msg buffers (JS)
//!                  (blocking on poll(fd, eventfd))  head ▲        tail ▲       one call per batch
//!   kernel tapX ◀─write()/writev()── send(): one native call per batch, on the JS thread
//! ```
//!
//! Super-frames are not copied: on a device that takes them (TSO, jumbo MTU) JavaScript
//! *posts* a pooled 64 KiB Msg buffer for every ring slot at open, the reader reads straight
//! into it, and `recv` hands a full slot's buffer over in exchange for a fresh one (the
//! virtio-net header lands in the buffer's headroom). Frames that fit a framePool buffer are
//! still copied out (a cheap copy that keeps 64 KiB buffers from carrying 66-byte ACKs).
//!
//! The ring is single-producer (reader thread) / single-consumer (JS thread). When it is
//! full the reader stops reading (parks), so the kernel's own TAP queue fills and the
//! kernel drops and counts: backpressure, never an unbounded queue. The reader wakes
//! JavaScript through a threadsafe function, at most one pending call at a time
//! (`notified`), and JavaScript drains until the ring is empty, then re-arms.

use crate::napi::*;
use crate::sys;
use std::ffi::{c_int, c_ulong, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Size of `struct virtio_net_hdr` (no mergeable buffers): TUNSETVNETHDRSZ default.
pub const VNET_HDR_LEN: usize = 10;
/// Most frames the reader reads in one burst before waking JavaScript anyway.
const NOTIFY_EVERY: usize = 16;
/// virtio spec §5.1.6: VIRTIO_NET_HDR_F_NEEDS_CSUM.
const F_NEEDS_CSUM: u8 = 1;

/// Options of [`Tap::open`], decoded from the JS call.
pub struct OpenOptions {
    pub name: String,
    pub create: bool,
    pub vnet: bool,
    pub tso: bool,
    pub up: bool,
    /// 0 leaves the kernel's MTU.
    pub mtu: i32,
    /// Empty keeps the kernel's random MAC.
    pub mac: Vec<u8>,
    pub ring_slots: usize,
    pub slot_size: usize,
    /// Buffers posted for the slots (one per slot, each at least `slot_size` bytes from
    /// its pointer, which already points `VNET_HDR_LEN` before the frame on vnet devices);
    /// empty: the ring owns its memory.
    pub posted: Vec<*mut u8>,
}

/// What the kernel reports back after opening.
pub struct OpenInfo {
    pub name: String,
    pub ifindex: i32,
    pub mtu: i32,
    pub mac: [u8; 6],
}

/// State shared by the JS thread and the reader thread.
pub struct Shared {
    pub fd: c_int,
    /// eventfd written by `close` to wake the reader out of poll().
    evfd: c_int,
    pub vnet: bool,
    slot_size: usize,
    slots: usize,
    /// Memory of an internal ring (null with posted buffers).
    ring: *mut u8,
    ring_len: usize,
    /// Where each slot's read starts: into `ring`, or into a posted JS buffer.
    slot_ptr: Box<[AtomicPtr<u8>]>,
    /// Slots hold posted JS buffers that `recv` can hand over whole.
    pub posted: bool,
    lens: Box<[AtomicU32]>,
    /// Next slot the reader fills (only the reader stores it).
    head: AtomicUsize,
    /// Next slot JS drains (only JS stores it).
    tail: AtomicUsize,
    /// A wake-up call to JS is pending or JS is draining: the reader need not call again.
    notified: AtomicBool,
    /// The reader found the ring full and is parked until JS frees a slot.
    reader_waiting: AtomicBool,
    stop: AtomicBool,
    /// errno that stopped the reader (0 while it runs or after a clean stop).
    pub reader_errno: AtomicI32,
    tsfn: napi_threadsafe_function,
}

// The raw pointers are either immutable after construction (ring, tsfn) or guarded by
// the head/tail protocol (ring slots): each slot has one owner at a time.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // Frees the ring allocated in `Tap::open` (a Vec leaked into a raw pointer); posted
        // buffers belong to JavaScript.
        if !self.ring.is_null() {
            unsafe { drop(Vec::from_raw_parts(self.ring, self.ring_len, self.ring_len)) };
        }
    }
}

impl Shared {
    #[inline]
    fn slot(&self, i: usize) -> *mut u8 {
        // Acquire pairs with the Release store in `recv` that swaps in a fresh buffer.
        self.slot_ptr[i % self.slots].load(Acquire)
    }

    /// Reader side: wake JS unless a wake-up is already pending.
    fn notify(&self) {
        if !self.notified.swap(true, SeqCst) {
            unsafe {
                napi_call_threadsafe_function(
                    self.tsfn,
                    std::ptr::null_mut(),
                    NAPI_TSFN_NONBLOCKING,
                )
            };
        }
    }
}

/// The reader thread: read frames until the ring is full (then park) or the fd is empty
/// (then poll the fd and the shutdown eventfd).
fn reader(sh: Arc<Shared>) {
    let mut pfd = [
        sys::PollFd {
            fd: sh.fd,
            events: sys::POLLIN,
            revents: 0,
        },
        sys::PollFd {
            fd: sh.evfd,
            events: sys::POLLIN,
            revents: 0,
        },
    ];
    // Frames read since the last wake-up call: JS is woken when the fd runs dry, the ring
    // fills, or NOTIFY_EVERY frames arrived in one burst, not per frame (each wake-up is an
    // eventfd write and an event-loop turn: interrupt coalescing, as in NAPI drivers).
    let mut unannounced = 0usize;
    while !sh.stop.load(Acquire) {
        let head = sh.head.load(Relaxed);
        if head - sh.tail.load(SeqCst) == sh.slots {
            if unannounced > 0 {
                unannounced = 0;
                sh.notify();
            }
            // Ring full: backpressure. Announce we wait, re-check (JS may have drained in
            // between), then park; JS unparks after freeing slots. The timeout only guards
            // against a lost unpark racing with close.
            sh.reader_waiting.store(true, SeqCst);
            if head - sh.tail.load(SeqCst) == sh.slots && !sh.stop.load(SeqCst) {
                thread::park_timeout(Duration::from_millis(20));
            }
            sh.reader_waiting.store(false, SeqCst);
            continue;
        }
        let n = unsafe { sys::read(sh.fd, sh.slot(head) as *mut c_void, sh.slot_size) };
        if n > 0 {
            sh.lens[head % sh.slots].store(n as u32, Relaxed);
            sh.head.store(head + 1, SeqCst);
            unannounced += 1;
            if unannounced >= NOTIFY_EVERY {
                unannounced = 0;
                sh.notify();
            }
            continue;
        }
        let e = if n == 0 { sys::EAGAIN } else { sys::errno() };
        match e {
            sys::EAGAIN => {
                if unannounced > 0 {
                    unannounced = 0;
                    sh.notify();
                }
                let r = unsafe { sys::poll(pfd.as_mut_ptr(), 2, -1) };
                if r > 0 && pfd[1].revents != 0 {
                    break; // close() asked us to stop
                }
            }
            sys::EINTR => {}
            _ => {
                // e.g. EBADFD once the interface is deleted: stop and let JS report it.
                sh.reader_errno.store(e, SeqCst);
                sh.notify();
                break;
            }
        }
    }
}

/// The native device behind one JS handle.
pub struct Tap {
    pub sh: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    tsfn: napi_threadsafe_function,
    pub closed: bool,
}

fn sys_err(syscall: &'static str, what: &str) -> JsError {
    let e = sys::errno();
    JsError {
        message: format!("{what}: {}", sys::strerror(e)),
        code: sys::errno_name(e),
        errno: e,
        syscall,
    }
}

unsafe fn ioctl_ifreq(fd: c_int, req: c_ulong, ifr: &mut sys::IfReq) -> c_int {
    sys::ioctl(fd, req, ifr as *mut sys::IfReq)
}

/// Opens `/dev/net/tun`, attaches it to a TAP interface and applies the options.
/// Returns the fd and what the kernel reports; closes the fd on any failure.
unsafe fn open_fd(o: &OpenOptions) -> JsResult<(c_int, OpenInfo)> {
    if o.name.len() > 15 || o.name.contains('/') || o.name.contains(char::is_whitespace) {
        return Err(JsError::arg(format!(
            "bad interface name '{}': at most 15 characters, no '/' or spaces",
            o.name
        )));
    }
    let cname = CString::new(o.name.as_str())
        .map_err(|_| JsError::arg("interface name contains a NUL byte"))?;
    if !o.create && sys::if_nametoindex(cname.as_ptr()) == 0 {
        return Err(JsError {
            message: format!("{}: no such device (create: false)", o.name),
            code: "ENODEV".into(),
            errno: sys::ENODEV,
            syscall: "if_nametoindex",
        });
    }
    let fd = sys::open(
        c"/dev/net/tun".as_ptr(),
        sys::O_RDWR | sys::O_NONBLOCK | sys::O_CLOEXEC,
    );
    if fd < 0 {
        return Err(sys_err("open", "opening /dev/net/tun"));
    }
    let r = configure(fd, o);
    if r.is_err() {
        sys::close(fd);
    }
    r.map(|info| (fd, info))
}

unsafe fn configure(fd: c_int, o: &OpenOptions) -> JsResult<OpenInfo> {
    // tuntap.rst: TUNSETIFF with IFF_TAP | IFF_NO_PI attaches this fd to the interface,
    // creating it if needed; the kernel writes back the final name (for "tap%d").
    let mut ifr = sys::IfReq::new(&o.name);
    ifr.set_i16(sys::IFF_TAP | sys::IFF_NO_PI | if o.vnet { sys::IFF_VNET_HDR } else { 0 });
    if ioctl_ifreq(fd, sys::TUNSETIFF, &mut ifr) < 0 {
        return Err(sys_err(
            "ioctl",
            &format!("attaching to TAP device {} (TUNSETIFF)", o.name),
        ));
    }
    let name = ifr.name();
    if o.vnet {
        let hdr_len: c_int = VNET_HDR_LEN as c_int;
        if sys::ioctl(fd, sys::TUNSETVNETHDRSZ, &hdr_len as *const c_int) < 0 {
            return Err(sys_err("ioctl", &format!("{name}: TUNSETVNETHDRSZ")));
        }
        // virtio 1.0 headers are little-endian; legacy ones are host-endian. Ask for LE so
        // the parsing below is right on any host (fails harmlessly on old kernels).
        let le: c_int = 1;
        sys::ioctl(fd, sys::TUNSETVNETLE, &le as *const c_int);
        // TUNSETOFFLOAD says what *we* accept from the kernel: partial checksums always,
        // TCP segmentation super-frames (up to 64 KiB) when asked for TSO.
        let mut off = sys::TUN_F_CSUM;
        if o.tso {
            off |= sys::TUN_F_TSO4 | sys::TUN_F_TSO6 | sys::TUN_F_TSO_ECN;
        }
        if sys::ioctl(fd, sys::TUNSETOFFLOAD, off) < 0 {
            return Err(sys_err("ioctl", &format!("{name}: TUNSETOFFLOAD")));
        }
    }
    if o.mac.len() == 6 {
        let mut r = sys::IfReq::new(&name);
        r.data[..2].copy_from_slice(&sys::ARPHRD_ETHER.to_ne_bytes());
        r.data[2..8].copy_from_slice(&o.mac);
        if ioctl_ifreq(fd, sys::SIOCSIFHWADDR, &mut r) < 0 {
            return Err(sys_err(
                "ioctl",
                &format!("{name}: setting MAC address (SIOCSIFHWADDR)"),
            ));
        }
    }
    let mut r = sys::IfReq::new(&name);
    if ioctl_ifreq(fd, sys::SIOCGIFHWADDR, &mut r) < 0 {
        return Err(sys_err(
            "ioctl",
            &format!("{name}: reading MAC address (SIOCGIFHWADDR)"),
        ));
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&r.data[2..8]);

    // MTU, flags and ifindex go through an ordinary socket of the current namespace
    // (netdevice(7)); the interface is still here since we just attached to it.
    let s = sys::socket(sys::AF_INET, sys::SOCK_DGRAM | sys::SOCK_CLOEXEC, 0);
    if s < 0 {
        return Err(sys_err("socket", "socket for interface ioctls"));
    }
    let res = (|| {
        let mut r = sys::IfReq::new(&name);
        if ioctl_ifreq(s, sys::SIOCGIFINDEX, &mut r) < 0 {
            return Err(sys_err("ioctl", &format!("{name}: SIOCGIFINDEX")));
        }
        let ifindex = r.get_i32();
        if o.mtu > 0 {
            let mut r = sys::IfReq::new(&name);
            r.set_i32(o.mtu);
            if ioctl_ifreq(s, sys::SIOCSIFMTU, &mut r) < 0 {
                return Err(sys_err(
                    "ioctl",
                    &format!("{name}: setting MTU {} (SIOCSIFMTU)", o.mtu),
                ));
            }
        }
        let mut r = sys::IfReq::new(&name);
        if ioctl_ifreq(s, sys::SIOCGIFMTU, &mut r) < 0 {
            return Err(sys_err("ioctl", &format!("{name}: SIOCGIFMTU")));
        }
        let mtu = r.get_i32();
        if o.up {
            let mut r = sys::IfReq::new(&name);
            if ioctl_ifreq(s, sys::SIOCGIFFLAGS, &mut r) < 0 {
                return Err(sys_err("ioctl", &format!("{name}: SIOCGIFFLAGS")));
            }
            r.set_i16(r.get_i16() | sys::IFF_UP);
            if ioctl_ifreq(s, sys::SIOCSIFFLAGS, &mut r) < 0 {
                return Err(sys_err(
                    "ioctl",
                    &format!("{name}: bringing the interface up (SIOCSIFFLAGS)"),
                ));
            }
        }
        Ok(OpenInfo {
            name: name.clone(),
            ifindex,
            mtu,
            mac,
        })
    })();
    sys::close(s);
    res
}

impl Tap {
    /// Opens the device, creates the threadsafe function waking `on_readable` and starts
    /// the reader thread.
    pub unsafe fn open(
        env: napi_env,
        o: &OpenOptions,
        on_readable: napi_value,
    ) -> JsResult<(Box<Tap>, OpenInfo)> {
        if o.ring_slots < 2 || o.slot_size < 64 + if o.vnet { VNET_HDR_LEN } else { 0 } {
            return Err(JsError::arg(
                "ring needs at least 2 slots of at least 64 bytes",
            ));
        }
        let (fd, info) = open_fd(o)?;
        let evfd = sys::eventfd(0, sys::EFD_CLOEXEC | sys::EFD_NONBLOCK);
        if evfd < 0 {
            let e = sys_err("eventfd", "eventfd for the reader thread");
            sys::close(fd);
            return Err(e);
        }
        let mut tsfn: napi_threadsafe_function = std::ptr::null_mut();
        let st = napi_create_threadsafe_function(
            env,
            on_readable,
            std::ptr::null_mut(),
            string(env, "pathsplice-tap"),
            0,
            1,
            std::ptr::null_mut(),
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(), // no call_js_cb: Node calls on_readable() with no arguments
            &mut tsfn,
        );
        if st != NAPI_OK {
            sys::close(evfd);
            sys::close(fd);
            return Err(JsError::arg("onReadable must be a function"));
        }
        let posted = !o.posted.is_empty();
        let ring_len = if posted {
            0
        } else {
            o.ring_slots * o.slot_size
        };
        let ring_ptr = if posted {
            std::ptr::null_mut()
        } else {
            let mut ring = vec![0u8; ring_len];
            let p = ring.as_mut_ptr();
            std::mem::forget(ring);
            p
        };
        let slot_ptr: Box<[AtomicPtr<u8>]> = (0..o.ring_slots)
            .map(|i| {
                AtomicPtr::new(if posted {
                    o.posted[i]
                } else {
                    ring_ptr.add(i * o.slot_size)
                })
            })
            .collect();
        let sh = Arc::new(Shared {
            fd,
            evfd,
            vnet: o.vnet,
            slot_size: o.slot_size,
            slots: o.ring_slots,
            ring: ring_ptr,
            ring_len,
            slot_ptr,
            posted,
            lens: (0..o.ring_slots).map(|_| AtomicU32::new(0)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            notified: AtomicBool::new(false),
            reader_waiting: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            reader_errno: AtomicI32::new(0),
            tsfn,
        });
        let sh2 = sh.clone();
        let thread = thread::Builder::new()
            .name(format!("tap-rx-{}", info.name))
            .spawn(move || reader(sh2))
            .map_err(|e| JsError::arg(format!("cannot start the reader thread: {e}")));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                napi_release_threadsafe_function(tsfn, NAPI_TSFN_ABORT);
                sys::close(evfd);
                sys::close(fd);
                return Err(e);
            }
        };
        Ok((
            Box::new(Tap {
                sh,
                thread: Some(thread),
                tsfn,
                closed: false,
            }),
            info,
        ))
    }

    /// Stops and joins the reader thread; with `release`, also releases the threadsafe
    /// function (not during environment teardown, when Node finalizes it itself).
    pub unsafe fn shutdown(&mut self, release: bool) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.sh.stop.store(true, SeqCst);
        let one: u64 = 1;
        sys::write(self.sh.evfd, &one as *const u64 as *const c_void, 8);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if release {
            napi_release_threadsafe_function(self.tsfn, NAPI_TSFN_ABORT);
        }
        // Closing the last fd of a non-persistent TAP deletes the interface, in whatever
        // namespace it lives now.
        sys::close(self.sh.evfd);
        sys::close(self.sh.fd);
    }

    /// Keeps (or stops keeping) the Node event loop alive while the device is open.
    pub unsafe fn set_ref(&self, env: napi_env, on: bool) {
        if self.closed {
            return;
        }
        if on {
            napi_ref_threadsafe_function(env, self.tsfn);
        } else {
            napi_unref_threadsafe_function(env, self.tsfn);
        }
    }

    /// Frames waiting in the ring.
    pub fn queued(&self) -> usize {
        self.sh.head.load(SeqCst) - self.sh.tail.load(SeqCst)
    }

    /// Copies up to `max` frames from the ring into the caller's buffers (see lib.rs for
    /// the `meta` layout). Returns the number of frames copied and whether the ring ran
    /// empty (in which case the next arrival wakes JS again).
    pub unsafe fn recv(
        &self,
        small: &mut dyn FnMut(usize) -> JsResult<(*mut u8, usize)>,
        big: &mut dyn FnMut(usize) -> JsResult<(*mut u8, usize)>,
        lim: RecvLimits,
        out: &mut [i32],
    ) -> JsResult<RecvResult> {
        let sh = &*self.sh;
        let mut res = RecvResult {
            frames: 0,
            empty: false,
            oversize: 0,
        };
        if self.closed {
            res.empty = true;
            return Ok(res);
        }
        let mut tail = sh.tail.load(Relaxed);
        let (mut ns, mut nb) = (0usize, 0usize);
        while res.frames < lim.max {
            if tail == sh.head.load(SeqCst) {
                // Empty: publish what we consumed, re-arm the wake-up, and re-check so an
                // arrival racing with the re-arm is not lost (both sides use SeqCst).
                sh.tail.store(tail, SeqCst);
                sh.notified.store(false, SeqCst);
                if tail != sh.head.load(SeqCst) {
                    sh.notified.store(true, SeqCst);
                    continue;
                }
                res.empty = true;
                break;
            }
            let n = sh.lens[tail % sh.slots].load(Relaxed) as usize;
            let slot = sh.slot(tail);
            let hdr = if sh.vnet { VNET_HDR_LEN.min(n) } else { 0 };
            let len = n - hdr;
            // Pick the next small buffer if the frame fits, else the next big one; stop
            // (leaving the frame in the ring) when the needed kind has run out.
            if sh.posted && len > lim.small_cap && nb < lim.big {
                // Hand the slot's posted buffer over whole and post the next big buffer in
                // its place (kind 2 + slot index tells JS which Msg it is).
                let (p, l) = big(nb)?;
                // The read starts VNET_HDR_LEN before the frame on vnet devices.
                let start = lim
                    .big_off
                    .checked_sub(if sh.vnet { VNET_HDR_LEN } else { 0 });
                let start = match start {
                    Some(s) if s + sh.slot_size <= l => s,
                    _ => return Err(JsError::arg("big buffer too short to be posted")),
                };
                nb += 1;
                let o = &mut out[res.frames * 8..res.frames * 8 + 8];
                o[0] = 2 + (tail % sh.slots) as i32;
                o[1] = len as i32;
                parse_vnet(slot, hdr, o);
                sh.slot_ptr[tail % sh.slots].store(p.add(start), Release);
                tail += 1;
                res.frames += 1;
                continue;
            }
            let (dst, kind) = if ns < lim.small && len <= lim.small_cap {
                let (p, l) = small(ns)?;
                if lim.small_off + len > l {
                    return Err(JsError::arg(
                        "small buffer shorter than its declared capacity",
                    ));
                }
                ns += 1;
                (p.add(lim.small_off), 0)
            } else if !sh.posted && len <= lim.big_cap && nb < lim.big {
                // (Posted rings use big buffers only as replacements, never as copy targets.)
                let (p, l) = big(nb)?;
                if lim.big_off + len > l {
                    return Err(JsError::arg(
                        "big buffer shorter than its declared capacity",
                    ));
                }
                nb += 1;
                (p.add(lim.big_off), 1)
            } else if len > lim.big_cap && len > lim.small_cap {
                res.oversize += 1; // no buffer can ever hold it: drop
                tail += 1;
                continue;
            } else {
                break; // out of buffers of the needed kind
            };
            std::ptr::copy_nonoverlapping(slot.add(hdr), dst, len);
            let o = &mut out[res.frames * 8..res.frames * 8 + 8];
            o[0] = kind;
            o[1] = len as i32;
            parse_vnet(slot, hdr, o);
            tail += 1;
            res.frames += 1;
        }
        sh.tail.store(tail, SeqCst);
        if sh.reader_waiting.load(SeqCst) {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
        Ok(res)
    }

    /// Writes one frame (`bytes`), with a virtio-net header built from `v` on a vnet
    /// device. Returns 0, an errno, or -1 when a GSO frame cannot go out on a device
    /// without offloads.
    pub unsafe fn write_frame(&self, bytes: &mut [u8], v: &[i32]) -> i32 {
        let sh = &*self.sh;
        if self.closed {
            return sys::EBADF;
        }
        let r = if sh.vnet {
            let mut h = [0u8; VNET_HDR_LEN];
            h[0] = v[0] as u8;
            h[1] = v[1] as u8;
            h[2..4].copy_from_slice(&(v[2] as u16).to_le_bytes());
            h[4..6].copy_from_slice(&(v[3] as u16).to_le_bytes());
            h[6..8].copy_from_slice(&(v[4] as u16).to_le_bytes());
            h[8..10].copy_from_slice(&(v[5] as u16).to_le_bytes());
            let iov = [
                sys::IoVec {
                    base: h.as_ptr() as *const c_void,
                    len: VNET_HDR_LEN,
                },
                sys::IoVec {
                    base: bytes.as_ptr() as *const c_void,
                    len: bytes.len(),
                },
            ];
            sys::writev(sh.fd, iov.as_ptr(), 2)
        } else {
            if v[1] != 0 {
                return -1; // a GSO super-frame needs a vnet device (or software segmentation)
            }
            if v[0] as u8 & F_NEEDS_CSUM != 0 {
                complete_csum(bytes, v[4] as usize, v[5] as usize);
            }
            sys::write(sh.fd, bytes.as_ptr() as *const c_void, bytes.len())
        };
        if r < 0 {
            sys::errno()
        } else {
            0
        }
    }
}

/// Decodes the virtio-net header at `slot` (if `hdr` is its full length) into `o[2..8]`.
unsafe fn parse_vnet(slot: *const u8, hdr: usize, o: &mut [i32]) {
    if hdr == VNET_HDR_LEN {
        // virtio spec §5.1.6 struct virtio_net_hdr, little-endian (TUNSETVNETLE).
        let h = std::slice::from_raw_parts(slot, VNET_HDR_LEN);
        o[2] = h[0] as i32;
        o[3] = h[1] as i32;
        o[4] = u16::from_le_bytes([h[2], h[3]]) as i32;
        o[5] = u16::from_le_bytes([h[4], h[5]]) as i32;
        o[6] = u16::from_le_bytes([h[6], h[7]]) as i32;
        o[7] = u16::from_le_bytes([h[8], h[9]]) as i32;
    } else {
        o[2..8].fill(0);
    }
}

/// Limits and offsets of one `recv` call.
pub struct RecvLimits {
    pub max: usize,
    pub small: usize,
    pub small_off: usize,
    pub small_cap: usize,
    pub big: usize,
    pub big_off: usize,
    pub big_cap: usize,
}

/// Outcome of one `recv` call.
pub struct RecvResult {
    pub frames: usize,
    pub empty: bool,
    pub oversize: i32,
}

/// Completes a partial checksum (CHECKSUM_PARTIAL, virtio NEEDS_CSUM): the field at
/// `start + off` holds the pseudo-header sum; the one's complement sum (RFC 1071) over
/// `[start, end)` including it, inverted, is the final checksum.
fn complete_csum(b: &mut [u8], start: usize, off: usize) {
    if start + off + 2 > b.len() {
        return;
    }
    let mut sum: u64 = 0;
    let data = &b[start..];
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u64) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    b[start + off..start + off + 2].copy_from_slice(&c.to_be_bytes());
}
