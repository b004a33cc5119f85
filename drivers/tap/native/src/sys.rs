//! The few libc calls and Linux constants the TAP driver needs, declared by hand
//! (std already links libc; there is no `libc` crate without crates.io).
//!
//! Values are from the x86-64/aarch64 Linux UAPI headers: `<linux/if_tun.h>`,
//! `<linux/sockios.h>`, `<asm-generic/errno-base.h>`, `<asm-generic/fcntl.h>`, `<poll.h>`.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};

extern "C" {
    pub fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    pub fn close(fd: c_int) -> c_int;
    pub fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
    pub fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    pub fn writev(fd: c_int, iov: *const IoVec, iovcnt: c_int) -> isize;
    pub fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    pub fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    pub fn eventfd(initval: u32, flags: c_int) -> c_int;
    pub fn if_nametoindex(name: *const c_char) -> u32;
    pub fn strerror_r(errnum: c_int, buf: *mut c_char, buflen: usize) -> *mut c_char;
    fn __errno_location() -> *mut c_int;
}

/// `struct iovec` (`<sys/uio.h>`).
#[repr(C)]
pub struct IoVec {
    pub base: *const c_void,
    pub len: usize,
}

/// `struct pollfd` (`<poll.h>`).
#[repr(C)]
pub struct PollFd {
    pub fd: c_int,
    pub events: i16,
    pub revents: i16,
}

pub const O_RDWR: c_int = 0o2;
pub const O_NONBLOCK: c_int = 0o4000;
pub const O_CLOEXEC: c_int = 0o2000000;
pub const EFD_CLOEXEC: c_int = O_CLOEXEC;
pub const EFD_NONBLOCK: c_int = O_NONBLOCK;
pub const AF_INET: c_int = 2;
pub const SOCK_DGRAM: c_int = 2;
pub const SOCK_CLOEXEC: c_int = O_CLOEXEC;
pub const POLLIN: i16 = 0x1;

pub const EINTR: c_int = 4;
pub const EBADF: c_int = 9;
pub const EAGAIN: c_int = 11;
pub const ENODEV: c_int = 19;

// <linux/if_tun.h>: _IOW('T', nr, int) = 0x4004_54nn, _IOR = 0x8004_54nn.
pub const TUNSETIFF: c_ulong = 0x4004_54ca;
pub const TUNSETOFFLOAD: c_ulong = 0x4004_54d0;
pub const TUNSETVNETHDRSZ: c_ulong = 0x4004_54d8;
pub const TUNSETVNETLE: c_ulong = 0x4004_54dc;
pub const IFF_TAP: i16 = 0x0002;
pub const IFF_NO_PI: i16 = 0x1000;
pub const IFF_VNET_HDR: i16 = 0x4000;
pub const TUN_F_CSUM: c_ulong = 0x01;
pub const TUN_F_TSO4: c_ulong = 0x02;
pub const TUN_F_TSO6: c_ulong = 0x04;
pub const TUN_F_TSO_ECN: c_ulong = 0x08;

// <linux/sockios.h>. SIOC[GS]IFHWADDR also work on the TUN fd itself (tun_chr_ioctl),
// which keeps working after the interface moves to another namespace.
pub const SIOCGIFFLAGS: c_ulong = 0x8913;
pub const SIOCSIFFLAGS: c_ulong = 0x8914;
pub const SIOCGIFMTU: c_ulong = 0x8921;
pub const SIOCSIFMTU: c_ulong = 0x8922;
pub const SIOCSIFHWADDR: c_ulong = 0x8924;
pub const SIOCGIFHWADDR: c_ulong = 0x8927;
pub const SIOCGIFINDEX: c_ulong = 0x8933;
pub const IFF_UP: i16 = 0x1;
/// `ARPHRD_ETHER` (`<net/if_arp.h>`): the sa_family of an Ethernet hardware address.
pub const ARPHRD_ETHER: u16 = 1;

/// `struct ifreq` (`<net/if.h>`): a 16-byte name and a 24-byte union; we view the union as
/// raw bytes and read/write the member each ioctl uses.
#[repr(C)]
pub struct IfReq {
    pub name: [u8; 16],
    pub data: [u8; 24],
}

impl IfReq {
    /// An ifreq naming `name` (truncated to IFNAMSIZ-1 = 15 bytes by the caller's check).
    pub fn new(name: &str) -> IfReq {
        let mut r = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        let n = name.len().min(15);
        r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        r
    }
    /// The name the kernel wrote back (e.g. `tap3` for a `tap%d` pattern).
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
    /// `ifr_flags` / `ifr_mtu` / `ifr_ifindex` are all at the start of the union.
    pub fn set_i16(&mut self, v: i16) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }
    pub fn get_i16(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }
    pub fn set_i32(&mut self, v: i32) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }
    pub fn get_i32(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }
}

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    unsafe { *__errno_location() }
}

/// `strerror(errno)` (thread-safe GNU variant, which returns a pointer that may not be `buf`).
pub fn strerror(e: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    unsafe {
        let p = strerror_r(e, buf.as_mut_ptr(), buf.len());
        if p.is_null() {
            return format!("errno {e}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The symbolic name of the errno values a TAP user can meet; others print as `E<number>`.
pub fn errno_name(e: c_int) -> String {
    let s = match e {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        19 => "ENODEV",
        22 => "EINVAL",
        24 => "EMFILE",
        77 => "EBADFD",
        90 => "EMSGSIZE",
        95 => "EOPNOTSUPP",
        100 => "ENETDOWN",
        _ => return format!("E{e}"),
    };
    s.to_string()
}
