//! ipsecN as Linux TUN devices: open (multi-queue), configure (MTU, address, up), read and write
//! IP packets, and raise the kernel's RX-dropped counter for packets the datapath discards.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::process::Command;

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const TUNSETIFF: libc::c_ulong = 0x400454ca;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// One queue of a TUN device.
#[derive(Debug)]
pub struct TunQueue {
    file: File,
}

impl TunQueue {
    /// Reads one packet (blocking). Returns its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one packet into the kernel as if received on the device.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        (&self.file).write(pkt)
    }

    /// Makes the kernel count one RX-dropped packet on the device: a TUN device drops and counts
    /// a written frame whose IP version nibble is neither 4 nor 6 (drivers/net/tun.c).
    pub fn count_rx_drop(&self) {
        let _ = (&self.file).write(&[0u8; 20]);
    }

    /// The raw descriptor (for poll).
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Another handle on the same queue.
    pub fn try_clone(&self) -> io::Result<TunQueue> {
        Ok(TunQueue {
            file: self.file.try_clone()?,
        })
    }
}

/// Opens `queues` queues of the TUN device `name` (created if absent, IFF_TUN | IFF_NO_PI,
/// multi-queue when more than one queue is asked for).
pub fn open(name: &str, queues: usize) -> io::Result<Vec<TunQueue>> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name \"{name}\""),
        ));
    }
    let mut flags = IFF_TUN | IFF_NO_PI;
    if queues > 1 {
        flags |= IFF_MULTI_QUEUE;
    }
    let mut v = Vec::new();
    for _ in 0..queues.max(1) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags,
            _pad: [0; 22],
        };
        for (d, s) in req.name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads a `struct ifreq` (name + flags, 40 bytes) from the pointer;
        // `req` is a live, correctly sized #[repr(C)] value for the duration of the call.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        v.push(TunQueue { file });
    }
    Ok(v)
}

/// Deletes a TUN device created by `open` (its queues must be closed first for it to vanish).
pub fn destroy(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", "dev", name])
        .stderr(std::process::Stdio::null())
        .status();
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Sets MTU, gives the device the physical interface's address (without a prefix route, so the
/// physical interface keeps its connected route), disables rp_filter on it, and brings it up.
pub fn configure(name: &str, mtu: u32, addr: Option<(std::net::Ipv4Addr, u8)>) -> io::Result<()> {
    ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    if let Some((a, len)) = addr {
        let cidr = format!("{a}/{len}");
        // Re-adding after a restart is fine.
        let _ = ip(&["addr", "del", &cidr, "dev", name]);
        ip(&["addr", "add", &cidr, "dev", name, "noprefixroute"])?;
    }
    let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "0");
    // IPv4 only: keep the kernel from sending IPv6 router solicitations into the tunnel.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    ip(&["link", "set", "dev", name, "up"])
}
