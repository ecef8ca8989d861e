//! ipsecN as Linux TUN devices: open (multi-queue), configure (MTU, address, up), read and write
//! IP packets, and raise the kernel's RX-dropped counter for packets the datapath discards.
//!
//! The devices are persistent (`TUNSETPERSIST`): when the daemon dies, ipsecN and the routes
//! through it stay, and the kernel drops what it routes there (no reader) instead of sending it
//! out in clear by another route, as KLIPS' eroutes outlived Pluto. The next daemon attaches to
//! the same device ([`open`] reports it as adopted); `ipsec setup stop` deletes it.

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
const TUNSETPERSIST: libc::c_ulong = 0x400454cb;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// ipsecN's transmit queue length (packets the kernel keeps for the reader threads).
pub const TX_QUEUE_LEN: u32 = 4096;

/// Most parts [`TunQueue::send_parts`] gathers (header + payloads of a GRO super-packet).
pub const MAX_TUN_PARTS: usize = crate::wire::offload::GRO_MAX_SEGS + 1;

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

    /// Writes a packet gathered from `parts` (at most [`MAX_TUN_PARTS`]) behind the vnet
    /// header `hdr`: a GRO super-packet whose segments' payloads stay where they were
    /// decrypted. With offloads off `hdr` is not written.
    pub fn send_parts<'a>(
        &self,
        hdr: &[u8; VNET_HDR_LEN],
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_TUN_PARTS + 1];
        let mut n = 0;
        if self.vnet {
            iov[0] = libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hdr.len(),
            };
            n = 1;
        }
        for p in parts {
            if n == iov.len() {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            iov[n] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            n += 1;
        }
        // SAFETY: the first n iovecs point at live buffers of the given lengths (the header
        // and the caller's parts, borrowed for this call); writev only reads them.
        let r = unsafe { libc::writev(self.file.as_raw_fd(), iov.as_ptr(), n as libc::c_int) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
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

/// The queues of an opened ipsecN, and whether an earlier daemon's persistent device was adopted.
#[derive(Debug)]
pub struct Opened {
    /// One handle per queue.
    pub queues: Vec<TunQueue>,
    /// The device existed (left by an earlier daemon) and was attached to, routes and all.
    pub adopted: bool,
}

/// Whether a TUN device called `name` exists (a persistent one left by an earlier daemon).
pub fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}/tun_flags")).exists()
}

/// Opens `queues` queues of the persistent TUN device `name` (created if absent, IFF_TUN |
/// IFF_NO_PI, multi-queue when more than one queue is asked for), attaching to an existing one
/// so its routes survive a restart. An existing device whose flags do not match (queue mode or
/// offload changed in ipsec.conf) is deleted and created anew. With `offload`, frames carry a
/// vnet header and the device accepts TCP segmentation offload (the kernel hands us TCP
/// super-packets and takes coalesced ones); if the kernel refuses, offloads stay off.
pub fn open(name: &str, queues: usize, offload: bool) -> io::Result<Opened> {
    let existed = exists(name);
    match open_queues(name, queues, offload) {
        Ok(q) => Ok(Opened {
            queues: q,
            adopted: existed,
        }),
        // EINVAL: the persistent device has other flags (TUN_FEATURES must match to attach).
        Err(e) if existed && e.raw_os_error() == Some(libc::EINVAL) => {
            destroy(name);
            Ok(Opened {
                queues: open_queues(name, queues, offload)?,
                adopted: false,
            })
        }
        Err(e) => Err(e),
    }
}

fn open_queues(name: &str, queues: usize, offload: bool) -> io::Result<Vec<TunQueue>> {
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
    // SAFETY: TUNSETPERSIST takes the flag by value as the ioctl argument.
    if unsafe { libc::ioctl(v[0].file.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) } < 0 {
        return Err(io::Error::last_os_error());
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

/// Packets the kernel dropped on the device for want of a reader (its TX-dropped counter): what
/// was routed into a persistent ipsecN while no daemon ran.
pub fn tx_dropped(name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/statistics/tx_dropped"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Deletes a TUN device created by `open`, persistent or not, with the routes through it.
pub fn destroy(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", "dev", name])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The IPv4 addresses (CIDR text) on `name`.
fn ipv4_addrs(name: &str) -> Vec<String> {
    let Ok(out) = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", name])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet")?;
            w.next().map(str::to_owned)
        })
        .collect()
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
/// On an adopted device the address is kept if it is already there: deleting a device's last
/// address makes the kernel flush every route through it, which would open a cleartext gap.
pub fn configure(name: &str, mtu: u32, addr: Option<(std::net::Ipv4Addr, u8)>) -> io::Result<()> {
    ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    // The kernel queues packets for the reader here; TUN's default of 500 overflowed under
    // bursts (docs/performance.md). The reader drains it as fast as it can, so a longer queue
    // only absorbs bursts.
    ip(&[
        "link",
        "set",
        "dev",
        name,
        "txqueuelen",
        &TX_QUEUE_LEN.to_string(),
    ])?;
    if let Some((a, len)) = addr {
        let cidr = format!("{a}/{len}");
        let had = ipv4_addrs(name);
        if !had.contains(&cidr) {
            ip(&["addr", "add", &cidr, "dev", name, "noprefixroute"])?;
        }
        // Addresses of an earlier configuration (the physical address changed): removed only
        // now that the new one is in place.
        for old in had {
            if old != cidr {
                let _ = ip(&["addr", "del", &old, "dev", name]);
            }
        }
    }
    let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "0");
    // IPv6 is carried, but the kernel's own IPv6 chatter (link-local address, DAD, router
    // solicitations, router advertisements) must not go into the tunnel: no address is
    // generated and nothing is solicited or accepted.
    let conf6 = format!("/proc/sys/net/ipv6/conf/{name}");
    for (k, v) in [
        ("addr_gen_mode", "1"),
        ("accept_ra", "0"),
        ("router_solicitations", "0"),
        ("dad_transmits", "0"),
        ("disable_ipv6", "0"),
    ] {
        let _ = std::fs::write(format!("{conf6}/{k}"), v);
    }
    ip(&["link", "set", "dev", name, "up"])
}
