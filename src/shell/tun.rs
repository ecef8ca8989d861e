//! ipsecN as Linux TUN devices: open (multi-queue), configure (MTU, address, up), read and write
//! IP packets, and raise the kernel's RX-dropped counter for packets the datapath discards.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::wire::offload::VNET_HDR_LEN;

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUNSETIFF: libc::c_ulong = 0x400454ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x400454d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// One queue of a TUN device. With offloads on, every frame carries a `virtio_net_hdr`
/// (see `wire::offload`); `send` adds an empty one, `send_gso` a given one.
#[derive(Debug)]
pub struct TunQueue {
    file: File,
    vnet: bool,
}

impl TunQueue {
    /// Reads one frame (blocking, or EAGAIN when non-blocking). Returns its length; with
    /// offloads the frame starts with the vnet header.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Whether frames carry a vnet header (TSO/GRO offloads are on).
    pub fn offload(&self) -> bool {
        self.vnet
    }

    /// Writes one IPv4 packet into the kernel as if received on the device.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        if self.vnet {
            self.send_gso(&[0u8; VNET_HDR_LEN], pkt)
        } else {
            (&self.file).write(pkt)
        }
    }

    /// Writes a packet with its vnet header (a GRO super-packet or a plain one).
    pub fn send_gso(&self, hdr: &[u8; VNET_HDR_LEN], pkt: &[u8]) -> io::Result<usize> {
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: pkt.as_ptr() as *mut libc::c_void,
                iov_len: pkt.len(),
            },
        ];
        // SAFETY: two iovecs pointing at live buffers of the given lengths; writev only reads.
        let n = unsafe { libc::writev(self.file.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Makes the kernel count one RX-dropped packet on the device: a TUN device drops and counts
    /// a written frame whose IP version nibble is neither 4 nor 6 (drivers/net/tun.c).
    pub fn count_rx_drop(&self) {
        let _ = self.send(&[0u8; 20]);
    }

    /// The raw descriptor (for poll).
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Another handle on the same queue.
    pub fn try_clone(&self) -> io::Result<TunQueue> {
        Ok(TunQueue {
            file: self.file.try_clone()?,
            vnet: self.vnet,
        })
    }
}

/// Opens `queues` queues of the TUN device `name` (created if absent, IFF_TUN | IFF_NO_PI,
/// multi-queue when more than one queue is asked for). With `offload`, frames carry a vnet
/// header and the device accepts TCP segmentation offload (the kernel hands us TCP
/// super-packets and takes coalesced ones); if the kernel refuses, offloads stay off.
pub fn open(name: &str, queues: usize, offload: bool) -> io::Result<Vec<TunQueue>> {
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
    if offload {
        flags |= IFF_VNET_HDR;
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
        v.push(TunQueue {
            file,
            vnet: offload,
        });
    }
    if offload {
        let feats: libc::c_uint = TUN_F_CSUM | TUN_F_TSO4;
        // SAFETY: TUNSETOFFLOAD takes the feature bits by value as the ioctl argument.
        let r =
            unsafe { libc::ioctl(v[0].file.as_raw_fd(), TUNSETOFFLOAD, feats as libc::c_ulong) };
        if r < 0 {
            // Frames still carry the (empty) vnet header; the kernel just never sends GSO.
            return Ok(v);
        }
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
