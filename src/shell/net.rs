//! The datapath's sockets: a raw sender per physical interface for IPv4 and IPv6 (we build
//! every outer header ourselves), raw receivers for ESP (50) and AH (51) of both families, and
//! the UDP port 4500 socket for ESP-in-UDP (RFC 3948, IPv4 so far). IPv4 batches move with
//! `sendmmsg`/`recvmmsg` to cut system calls; IPv6 goes one packet per call so far.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Largest datagram we read.
pub const MAX_PKT: usize = 65536;

/// Sends complete IPv4 packets (header included) out of one physical interface. Binding to the
/// device makes the kernel route with that output interface only, so `%pass` traffic and ESP
/// never loop back into ipsecN even when a route via ipsecN covers the destination.
#[derive(Debug)]
pub struct RawSender {
    sock: Socket,
    /// The IPv6 twin (None when the kernel has no IPv6).
    sock6: Option<Socket>,
}

/// A raw IPPROTO_RAW socket of `domain` (which implies writing the IP header ourselves, for
/// IPv6 too), bound to `device` if given, marked so it skips the fail-closed table.
fn raw_sender(domain: Domain, device: Option<&str>) -> io::Result<Socket> {
    let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
    if let Some(d) = device {
        sock.bind_device(Some(d.as_bytes()))?;
    }
    // rswan's own packets skip the fail-closed table (shell::netlink::RSWAN_TABLE).
    sock.set_mark(super::netlink::RSWAN_MARK)?;
    sock.set_send_buffer_size(4 << 20)?;
    Ok(sock)
}

impl RawSender {
    /// Raw IPPROTO_RAW sockets for IPv4 and (if the kernel has it) IPv6, bound to `device` if
    /// given.
    pub fn new(device: Option<&str>) -> io::Result<RawSender> {
        Ok(RawSender {
            sock: raw_sender(Domain::IPV4, device)?,
            sock6: raw_sender(Domain::IPV6, device).ok(),
        })
    }

    /// Sends one packet to `dst` (of either family).
    pub fn send(&self, dst: impl Into<IpAddr>, pkt: &[u8]) -> io::Result<usize> {
        match dst.into() {
            IpAddr::V4(d) => self
                .sock
                .send_to(pkt, &SockAddr::from(SocketAddrV4::new(d, 0))),
            IpAddr::V6(d) => self.send6(d, pkt),
        }
    }

    /// Sends one IPv6 packet (header included) to `dst`.
    pub fn send6(&self, dst: Ipv6Addr, pkt: &[u8]) -> io::Result<usize> {
        match &self.sock6 {
            Some(s) => s.send_to(pkt, &SockAddr::from(SocketAddrV6::new(dst, 0, 0, 0))),
            None => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
        }
    }

    /// Sends a batch with one `sendmmsg` call per 64 packets. Returns how many failed.
    pub fn send_batch(&self, pkts: &[(Ipv4Addr, Vec<u8>)]) -> usize {
        let mut m = MsgArrays::new(64);
        self.send_many(&mut m, pkts.iter().map(|(d, p)| (*d, &p[..])))
    }

    /// Sends (destination, packet) pairs with one `sendmmsg` per [`MsgArrays`] capacity,
    /// through the caller's reused arrays: nothing is allocated. Returns how many failed.
    pub fn send_many<'a>(
        &self,
        m: &mut MsgArrays,
        pkts: impl IntoIterator<Item = (Ipv4Addr, &'a [u8])>,
    ) -> usize {
        let pkts = pkts
            .into_iter()
            .map(|(dst, p)| (sockaddr_in(SocketAddrV4::new(dst, 0)), p));
        m.send_each(self.sock.as_raw_fd(), pkts)
    }
}

/// The socket address types the batch arrays hold: plain C `sockaddr_*` structs for which
/// all-zero bytes are a valid value (implemented here only).
pub trait SockaddrSlot: Copy + private::Sealed {}

mod private {
    /// Seals [`super::SockaddrSlot`].
    pub trait Sealed {}
    impl Sealed for libc::sockaddr_in {}
    impl Sealed for libc::sockaddr_in6 {}
    impl Sealed for libc::sockaddr_ll {}
}

impl SockaddrSlot for libc::sockaddr_in {}
impl SockaddrSlot for libc::sockaddr_in6 {}
impl SockaddrSlot for libc::sockaddr_ll {}

/// Reusable `sendmmsg`/`recvmmsg` arrays for one thread, so batch I/O allocates nothing. They
/// hold raw pointers between calls (not `Send`): each thread makes its own. `A` is the
/// socket's address type: `sockaddr_in` (IPv4, the default), `sockaddr_in6` ([`MsgArrays6`]),
/// `sockaddr_ll` ([`LlArrays`]).
pub struct MsgArrays<A: SockaddrSlot = libc::sockaddr_in> {
    addrs: Vec<A>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<CmsgBuf>,
    msgs: Vec<libc::mmsghdr>,
}

/// The batch arrays of an IPv6 socket.
pub type MsgArrays6 = MsgArrays<libc::sockaddr_in6>;

/// The batch arrays of a [`PacketSender`].
pub type LlArrays = MsgArrays<libc::sockaddr_ll>;

impl<A: SockaddrSlot> std::fmt::Debug for MsgArrays<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MsgArrays({})", self.cap())
    }
}

impl<A: SockaddrSlot> MsgArrays<A> {
    /// Arrays for up to `n` messages per call (at least 1).
    pub fn new(n: usize) -> MsgArrays<A> {
        let n = n.max(1);
        MsgArrays {
            // SAFETY: every SockaddrSlot type is a plain C sockaddr struct for which all-zero
            // is a valid value.
            addrs: vec![unsafe { MaybeUninit::zeroed().assume_init() }; n],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                n
            ],
            cmsgs: vec![CmsgBuf([0; CMSG_SPACE]); n],
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
            msgs: vec![unsafe { MaybeUninit::zeroed().assume_init() }; n],
        }
    }

    /// Messages per call.
    pub fn cap(&self) -> usize {
        self.msgs.len()
    }

    /// `sendmmsg` on `fd` of the first `n` messages, whose addresses and iovecs the caller
    /// set; a message the kernel refuses (e.g. EMSGSIZE) is skipped and counted. Returns how
    /// many failed.
    fn send(&mut self, fd: i32, n: usize) -> usize {
        for i in 0..n {
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<A>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
        }
        let mut failed = 0;
        let mut off = 0;
        while off < n {
            // SAFETY: messages off..n point at addresses and iovecs in `self`, which point at
            // packets the caller keeps alive for this call; the count matches the slice.
            let r =
                unsafe { libc::sendmmsg(fd, self.msgs[off..n].as_mut_ptr(), (n - off) as u32, 0) };
            if r <= 0 {
                failed += 1;
                off += 1;
            } else {
                off += r as usize;
            }
        }
        failed
    }

    /// Sends every (address, packet) pair on `fd`, [`MsgArrays::cap`] per `sendmmsg`; the
    /// packets only need to live for the call. Returns how many the kernel refused.
    fn send_each<'a>(&mut self, fd: i32, pkts: impl IntoIterator<Item = (A, &'a [u8])>) -> usize {
        let mut failed = 0;
        let mut n = 0;
        for (addr, p) in pkts {
            self.addrs[n] = addr;
            self.iovs[n] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            n += 1;
            if n == self.cap() {
                failed += self.send(fd, n);
                n = 0;
            }
        }
        if n > 0 {
            failed += self.send(fd, n);
        }
        failed
    }

    /// One `recvmmsg` on `fd` into up to `bufs.len()` buffers (blocking for the first only),
    /// each message's payload placed `room` bytes into its buffer (room for a header to be
    /// rebuilt in front). Fills `lens` with the payload lengths and returns the count; the
    /// senders' addresses and control messages stay in the arrays for the caller.
    fn recv(
        &mut self,
        fd: i32,
        bufs: &mut [Vec<u8>],
        room: usize,
        lens: &mut Vec<usize>,
    ) -> io::Result<usize> {
        let n = bufs.len().min(self.cap());
        lens.clear();
        if n == 0 {
            return Ok(0);
        }
        for (i, b) in bufs[..n].iter_mut().enumerate() {
            if b.len() < room + MAX_PKT {
                b.resize(room + MAX_PKT, 0);
            }
            let payload = &mut b[room..];
            self.iovs[i] = libc::iovec {
                iov_base: payload.as_mut_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<A>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].0.as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = CMSG_SPACE;
            h.msg_flags = 0;
        }
        // SAFETY: each of the first n mmsghdrs points into `self.addrs`, `self.iovs` (which
        // point into `bufs` past `room`) and `self.cmsgs`, all alive and unaliased until the
        // call returns; MSG_WAITFORONE blocks for the first only.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        lens.extend(self.msgs[..got].iter().map(|m| m.msg_len as usize));
        Ok(got)
    }
}

/// Receives whole IPv4 packets of one protocol (ESP or AH) addressed to this host.
#[derive(Debug)]
pub struct RawReceiver {
    sock: Socket,
}

impl RawReceiver {
    /// A raw socket for IP protocol `proto`.
    pub fn new(proto: u8) -> io::Result<RawReceiver> {
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(proto))),
        )?;
        sock.set_recv_buffer_size(8 << 20)?;
        Ok(RawReceiver { sock })
    }

    /// Blocks until at least one packet arrives, then takes up to `bufs.len()` with one
    /// `recvmmsg`. Fills `lens` with each packet's length and returns the count.
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], lens: &mut Vec<usize>) -> io::Result<usize> {
        let mut m = MsgArrays::new(bufs.len().min(64));
        recv_batch(self.sock.as_raw_fd(), &mut m, bufs, lens, None)
    }

    /// [`RawReceiver::recv_batch`] through the caller's reused arrays (allocates nothing).
    pub fn recv_with(
        &self,
        m: &mut MsgArrays,
        bufs: &mut [Vec<u8>],
        lens: &mut Vec<usize>,
    ) -> io::Result<usize> {
        recv_batch(self.sock.as_raw_fd(), m, bufs, lens, None)
    }

    /// The raw descriptor.
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// Receives IPv6 packets of one protocol (ESP or AH) addressed to this host. The kernel hands
/// a raw IPv6 socket the payload only: the receiver puts a plain IPv6 header (source from the
/// sender's address, destination from `IPV6_PKTINFO`, payload length, next header `proto`) in
/// front of it, so the core sees the packet as on the wire, without the extension headers the
/// kernel already processed.
#[derive(Debug)]
pub struct RawReceiver6 {
    sock: Socket,
    proto: u8,
}

impl RawReceiver6 {
    /// A raw IPv6 socket for `proto` reporting each packet's destination address.
    pub fn new(proto: u8) -> io::Result<RawReceiver6> {
        let sock = Socket::new(
            Domain::IPV6,
            Type::RAW,
            Some(Protocol::from(i32::from(proto))),
        )?;
        sock.set_recv_buffer_size(8 << 20)?;
        recv_pktinfo6(&sock)?;
        Ok(RawReceiver6 { sock, proto })
    }

    /// Blocks until at least one packet arrives, then takes up to `bufs.len()` with one
    /// `recvmmsg`, each with its IPv6 header rebuilt in front (see [`RawReceiver6`]).
    /// Fills `lens` with each packet's length (0 for one whose header cannot be rebuilt: the
    /// core drops it) and returns the count.
    pub fn recv_with(
        &self,
        m: &mut MsgArrays6,
        bufs: &mut [Vec<u8>],
        lens: &mut Vec<usize>,
        metas: &mut Vec<UdpMeta>,
    ) -> io::Result<usize> {
        const H: usize = crate::wire::ipv6::HEADER_LEN;
        let got = recv_batch6(self.sock.as_raw_fd(), m, bufs, H, lens, metas)?;
        for i in 0..got {
            // recv_batch6 gives IPv6 addresses only.
            let (IpAddr::V6(src), IpAddr::V6(dst)) = (metas[i].src.ip(), metas[i].dst) else {
                lens[i] = 0;
                continue;
            };
            let repr = crate::wire::ipv6::Ipv6Repr {
                src,
                dst,
                next_header: self.proto,
                traffic_class: 0,
                hop_limit: 64,
                payload_len: lens[i],
            };
            lens[i] = if repr.emit(&mut bufs[i]) {
                H + lens[i]
            } else {
                0
            };
        }
        Ok(got)
    }

    /// The raw descriptor.
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// A UDP socket of IPv6 peers (IPV6_V6ONLY, so the families stay on separate sockets): port
/// 4500 receives ESP-in-UDP and NAT-T IKE, port 500 IKE. ESP-in-UDP leaves through the raw
/// IPv6 sender, which builds the UDP header; IKE leaves through this socket
/// ([`UdpReceiver6::send_from`]).
#[derive(Debug)]
pub struct UdpReceiver6 {
    sock: Socket,
}

impl UdpReceiver6 {
    /// Binds `[::]:port`, IPv6 only, reporting each datagram's destination address.
    pub fn bind(port: u16) -> io::Result<UdpReceiver6> {
        let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_only_v6(true)?;
        sock.set_reuse_address(true)?;
        // IKE skips the fail-closed table (shell::netlink::RSWAN_TABLE).
        sock.set_mark(super::netlink::RSWAN_MARK)?;
        sock.set_recv_buffer_size(8 << 20)?;
        recv_pktinfo6(&sock)?;
        sock.bind(&SockAddr::from(SocketAddrV6::new(
            Ipv6Addr::UNSPECIFIED,
            port,
            0,
            0,
        )))?;
        Ok(UdpReceiver6 { sock })
    }

    /// Receives one datagram into `buf`: (length, sender, our address).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV6, Ipv6Addr)> {
        recv6(&self.sock, buf)
    }

    /// Blocks until at least one datagram arrives, then takes up to `bufs.len()` with one
    /// `recvmmsg` (with UDP GRO on, a buffer may hold many: [`UdpMeta::seg`]). Fills `lens` and
    /// `metas` and returns the count.
    pub fn recv_with(
        &self,
        m: &mut MsgArrays6,
        bufs: &mut [Vec<u8>],
        lens: &mut Vec<usize>,
        metas: &mut Vec<UdpMeta>,
    ) -> io::Result<usize> {
        recv_batch6(self.sock.as_raw_fd(), m, bufs, 0, lens, metas)
    }

    /// UDP GRO on this socket (see [`UdpSock::enable_gro`]). Returns false if refused.
    pub fn enable_gro(&self) -> bool {
        enable_udp_gro(self.sock.as_raw_fd())
    }

    /// Sends a datagram from this socket with source address `from` (IPV6_PKTINFO), so IKE
    /// replies leave from the address the peer talks to.
    pub fn send_from(&self, data: &[u8], from: Ipv6Addr, to: SocketAddrV6) -> io::Result<usize> {
        if from.is_unspecified() {
            return self.sock.send_to(data, &SockAddr::from(to));
        }
        let dst = SockAddr::from(to);
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut cbuf = CmsgBuf([0; CMSG_SPACE]);
        let pk = std::mem::size_of::<libc::in6_pktinfo>() as u32;
        // SAFETY: all-zero is a valid msghdr; it points at `dst`, `iov` (into `data`, only
        // read) and `cbuf`, all alive for the call; the 8-aligned control buffer holds one
        // in6_pktinfo message (20 bytes plus header, within CMSG_SPACE), written through the
        // CMSG_* helpers within the msg_controllen computed for it.
        let r = unsafe {
            let mut msg: libc::msghdr = MaybeUninit::zeroed().assume_init();
            msg.msg_name = dst.as_ptr() as *mut libc::c_void;
            msg.msg_namelen = dst.len();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.0.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = libc::CMSG_SPACE(pk) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IPV6;
            (*c).cmsg_type = libc::IPV6_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(pk) as usize;
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: from.octets(),
                },
                ipi6_ifindex: 0,
            };
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in6_pktinfo, info);
            libc::sendmsg(self.sock.as_raw_fd(), &msg, 0)
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// The raw descriptor.
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// Asks the kernel for each datagram's destination address (IPV6_PKTINFO).
fn recv_pktinfo6(sock: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: IPV6_RECVPKTINFO takes an int; the pointer and size describe `on`.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One `recvmsg` on an IPv6 socket into `buf`: (length, sender, the address it was sent to).
fn recv6(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV6, Ipv6Addr)> {
    {
        // SAFETY: sockaddr_in6 is a plain C struct for which all-zero is a valid value.
        let mut from: libc::sockaddr_in6 = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut cmsg = CmsgBuf([0; CMSG_SPACE]);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is a plain C struct for which all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.0.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = CMSG_SPACE as _;
        // SAFETY: `msg` points at `from`, `iov` (inside `buf`) and `cmsg`, all alive and of the
        // sizes given for the duration of the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let Some(IpAddr::V6(dst)) = parse_cmsgs(&msg).0 else {
            return Err(io::Error::other("no IPV6_PKTINFO"));
        };
        let src = SocketAddrV6::new(
            Ipv6Addr::from(from.sin6_addr.s6_addr),
            u16::from_be(from.sin6_port),
            0,
            0,
        );
        Ok((n, src, dst))
    }
}

/// A datagram (or raw packet) received in a batch, with the address it was sent to; either
/// family.
#[derive(Debug, Clone, Copy)]
pub struct UdpMeta {
    /// Sender address and port (port 0 on a raw socket).
    pub src: SocketAddr,
    /// Our address it arrived on (IP_PKTINFO / IPV6_PKTINFO; unspecified if the kernel gave
    /// none).
    pub dst: IpAddr,
    /// With UDP GRO on: the buffer holds several datagrams of this size (the last may be
    /// shorter); 0 when it holds one.
    pub seg: usize,
}

/// The UDP socket for ESP-in-UDP (and, later, IKE's NAT-T port).
#[derive(Debug)]
pub struct UdpSock {
    sock: Socket,
}

impl UdpSock {
    /// Binds 0.0.0.0:`port` with IP_PKTINFO so the destination address of each datagram is known.
    pub fn bind(port: u16) -> io::Result<UdpSock> {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_reuse_address(true)?;
        // IKE and ESP-in-UDP skip the fail-closed table (shell::netlink::RSWAN_TABLE).
        sock.set_mark(super::netlink::RSWAN_MARK)?;
        sock.set_recv_buffer_size(8 << 20)?;
        let one: libc::c_int = 1;
        // SAFETY: IP_PKTINFO takes an int flag; the pointer and length describe `one`.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        sock.bind(&SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            port,
        )))?;
        Ok(UdpSock { sock })
    }

    /// Like [`RawReceiver::recv_batch`], also filling `metas` with sender and destination.
    pub fn recv_batch(
        &self,
        bufs: &mut [Vec<u8>],
        lens: &mut Vec<usize>,
        metas: &mut Vec<UdpMeta>,
    ) -> io::Result<usize> {
        let mut m = MsgArrays::new(bufs.len().min(64));
        recv_batch(self.sock.as_raw_fd(), &mut m, bufs, lens, Some(metas))
    }

    /// [`UdpSock::recv_batch`] through the caller's reused arrays (allocates nothing).
    pub fn recv_with(
        &self,
        m: &mut MsgArrays,
        bufs: &mut [Vec<u8>],
        lens: &mut Vec<usize>,
        metas: &mut Vec<UdpMeta>,
    ) -> io::Result<usize> {
        recv_batch(self.sock.as_raw_fd(), m, bufs, lens, Some(metas))
    }

    /// Asks the kernel to coalesce consecutive datagrams of a flow (UDP GRO): one receive then
    /// returns many ESP-in-UDP packets, split by [`UdpMeta::seg`]. Returns false if refused.
    pub fn enable_gro(&self) -> bool {
        enable_udp_gro(self.sock.as_raw_fd())
    }

    /// Sends `data` as datagrams of `seg` bytes each (the last may be shorter) with one system
    /// call (UDP GSO), from address `from` out of interface `ifindex` (so routes through ipsecN
    /// are never taken), with outer TOS `tos`.
    pub fn send_gso(
        &self,
        data: &[u8],
        seg: u16,
        from: Ipv4Addr,
        ifindex: u32,
        tos: u8,
        to: SocketAddrV4,
    ) -> io::Result<usize> {
        self.send_gso_parts([data], seg, from, ifindex, tos, to)
    }

    /// [`UdpSock::send_gso`] of the concatenation of `parts` (at most [`MAX_GSO_PARTS`]),
    /// gathered by the kernel from where they lie: each part is one datagram's payload, so the
    /// datagrams need not be copied together first.
    pub fn send_gso_parts<'a>(
        &self,
        parts: impl IntoIterator<Item = &'a [u8]>,
        seg: u16,
        from: Ipv4Addr,
        ifindex: u32,
        tos: u8,
        to: SocketAddrV4,
    ) -> io::Result<usize> {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_GSO_PARTS];
        let mut n = 0;
        for p in parts {
            if n == MAX_GSO_PARTS {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            iov[n] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            n += 1;
        }
        self.send_pktinfo(&iov[..n], from, ifindex, to, Some((seg, tos)))
    }

    /// Sends a datagram from this socket with source address `from` (IP_PKTINFO), so IKE
    /// replies leave from the address the peer talks to.
    pub fn send_from(&self, data: &[u8], from: Ipv4Addr, to: SocketAddrV4) -> io::Result<usize> {
        if from.is_unspecified() {
            return self.send_to(data, to);
        }
        let iov = [libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        }];
        self.send_pktinfo(&iov, from, 0, to, None)
    }

    /// `sendmsg` of `data` to `to` with source address `from` and, if not 0, outgoing
    /// interface `ifindex` (IP_PKTINFO); with `gso = Some((seg, tos))` also as UDP GSO
    /// segments of `seg` bytes (UDP_SEGMENT) with outer TOS `tos` (IP_TOS).
    fn send_pktinfo(
        &self,
        iov: &[libc::iovec],
        from: Ipv4Addr,
        ifindex: u32,
        to: SocketAddrV4,
        gso: Option<(u16, u8)>,
    ) -> io::Result<usize> {
        let dst = sockaddr_in(to);
        let mut cbuf = CmsgBuf([0; CMSG_SPACE]);
        // SAFETY: all-zero is a valid msghdr; the pointers set below refer to locals (and the
        // caller's iovecs, which point at live buffers; sendmsg only reads them) that outlive
        // the sendmsg call; the 8-aligned 128-byte control buffer holds the messages (in_pktinfo
        // 32 + u16 16 + int 16 bytes with headers), written via the CMSG_* helpers within the
        // msg_controllen computed from exactly those messages.
        let r = unsafe {
            let mut msg: libc::msghdr = MaybeUninit::zeroed().assume_init();
            msg.msg_name = &dst as *const _ as *mut libc::c_void;
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iov.len();
            msg.msg_control = cbuf.0.as_mut_ptr() as *mut libc::c_void;
            let pk = std::mem::size_of::<libc::in_pktinfo>() as u32;
            let (u16_len, int_len) = (
                std::mem::size_of::<u16>() as u32,
                std::mem::size_of::<libc::c_int>() as u32,
            );
            let mut space = libc::CMSG_SPACE(pk);
            if gso.is_some() {
                space += libc::CMSG_SPACE(u16_len) + libc::CMSG_SPACE(int_len);
            }
            msg.msg_controllen = space as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IP;
            (*c).cmsg_type = libc::IP_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(pk) as usize;
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex as libc::c_int,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(from).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in_pktinfo, info);
            if let Some((seg, tos)) = gso {
                let c = libc::CMSG_NXTHDR(&msg, c);
                (*c).cmsg_level = SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(u16_len) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg);
                let c = libc::CMSG_NXTHDR(&msg, c);
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_TOS;
                (*c).cmsg_len = libc::CMSG_LEN(int_len) as usize;
                std::ptr::write_unaligned(
                    libc::CMSG_DATA(c) as *mut libc::c_int,
                    libc::c_int::from(tos),
                );
            }
            libc::sendmsg(self.sock.as_raw_fd(), &msg, 0)
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Sends a datagram from this socket (source port = bound port).
    pub fn send_to(&self, data: &[u8], to: SocketAddrV4) -> io::Result<usize> {
        self.sock.send_to(data, &SockAddr::from(to))
    }

    /// The raw descriptor.
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// Bytes of control-message space per message (send: IP_PKTINFO + UDP_SEGMENT + IP_TOS;
/// receive: IP_PKTINFO + UDP_GRO).
const CMSG_SPACE: usize = 128;

/// A control-message buffer aligned for `cmsghdr` (the CMSG_* helpers cast into it).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_SPACE]);

/// One `recvmmsg` on IPv4 socket `fd` ([`MsgArrays::recv`]); with `metas`, each datagram's
/// sender, our address and GRO segment size too.
fn recv_batch(
    fd: i32,
    m: &mut MsgArrays,
    bufs: &mut [Vec<u8>],
    lens: &mut Vec<usize>,
    metas: Option<&mut Vec<UdpMeta>>,
) -> io::Result<usize> {
    let got = m.recv(fd, bufs, 0, lens)?;
    if let Some(metas) = metas {
        metas.clear();
        for (a, msg) in m.addrs.iter().zip(&m.msgs).take(got) {
            let (dst, seg) = parse_cmsgs(&msg.msg_hdr);
            metas.push(UdpMeta {
                src: SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )
                .into(),
                dst: dst.unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
                seg,
            });
        }
    }
    Ok(got)
}

/// UDP GRO (`UDP_GRO`) on socket `fd`, either family. Returns false if refused.
fn enable_udp_gro(fd: i32) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: UDP_GRO takes an int flag; the pointer and length describe `one`.
    let r = unsafe {
        libc::setsockopt(
            fd,
            SOL_UDP,
            UDP_GRO,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    r == 0
}

/// One `recvmmsg` on IPv6 socket `fd` ([`MsgArrays::recv`], payloads `room` bytes into the
/// buffers) with each packet's sender, our address and GRO segment size.
fn recv_batch6(
    fd: i32,
    m: &mut MsgArrays6,
    bufs: &mut [Vec<u8>],
    room: usize,
    lens: &mut Vec<usize>,
    metas: &mut Vec<UdpMeta>,
) -> io::Result<usize> {
    metas.clear();
    let got = m.recv(fd, bufs, room, lens)?;
    for (a, msg) in m.addrs.iter().zip(&m.msgs).take(got) {
        let (dst, seg) = parse_cmsgs(&msg.msg_hdr);
        metas.push(UdpMeta {
            src: SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                0,
                0,
            )
            .into(),
            dst: dst.unwrap_or(Ipv6Addr::UNSPECIFIED.into()),
            seg,
        });
    }
    Ok(got)
}

/// Most parts (datagrams) in one [`UdpSock::send_gso_parts`].
pub const MAX_GSO_PARTS: usize = crate::klips::packet::GSO_MAX_SEGS;

/// `SOL_UDP` / `UDP_SEGMENT` / `UDP_GRO` (linux/udp.h).
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// The destination address (IP_PKTINFO or IPV6_PKTINFO) and the UDP GRO segment size of a
/// received message.
fn parse_cmsgs(hdr: &libc::msghdr) -> (Option<IpAddr>, usize) {
    let mut dst = None;
    let mut seg = 0;
    // SAFETY: `hdr` was filled by recvmmsg; the CMSG_* macros walk its control buffer within
    // msg_controllen, and we only read an in_pktinfo, an in6_pktinfo or an int when the header
    // says so.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            if level == libc::IPPROTO_IP && ty == libc::IP_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in_pktinfo);
                dst = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)).into());
            } else if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in6_pktinfo);
                dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
            } else if level == SOL_UDP && ty == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                seg = usize::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    (dst, seg)
}

/// `to` as the kernel's `sockaddr_in`.
fn sockaddr_in(to: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sends IPv4 packets the datapath built (ESP, AH) straight to a physical interface through an
/// `AF_PACKET` socket (`SOCK_DGRAM`: the kernel adds the Ethernet header for the MAC given per
/// packet), with `PACKET_QDISC_BYPASS`: no route or fail-closed rule lookup, no netfilter, no
/// qdisc (`config setup` `espsend=packet`, an experiment; docs/performance.md 0.7).
#[derive(Debug)]
pub struct PacketSender {
    sock: Socket,
    ifindex: u32,
}

/// `ETH_P_IP` in network byte order, as `AF_PACKET` wants the protocol.
fn eth_p_ip() -> u16 {
    (libc::ETH_P_IP as u16).to_be()
}

impl PacketSender {
    /// An `AF_PACKET` socket bound to interface `ifindex`.
    pub fn new(ifindex: u32) -> io::Result<PacketSender> {
        // Protocol 0: the socket receives nothing (every send names ETH_P_IP itself).
        let sock = Socket::new(Domain::PACKET, Type::DGRAM, None)?;
        let one: libc::c_int = 1;
        // SAFETY: PACKET_QDISC_BYPASS takes an int flag; the pointer and length describe `one`.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let ll = sockaddr_ll(ifindex, 0, None);
        // SAFETY: bind reads a sockaddr_ll of the given size from `ll`.
        let r = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                &ll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSender { sock, ifindex })
    }

    /// Sends (next-hop MAC, IPv4 packet) pairs with one `sendmmsg` per [`LlArrays`] capacity.
    /// Returns how many failed.
    pub fn send_many<'a>(
        &self,
        m: &mut LlArrays,
        pkts: impl IntoIterator<Item = ([u8; 6], &'a [u8])>,
    ) -> usize {
        let (ifindex, proto) = (self.ifindex, eth_p_ip());
        let pkts = pkts
            .into_iter()
            .map(|(mac, p)| (sockaddr_ll(ifindex, proto, Some(mac)), p));
        m.send_each(self.sock.as_raw_fd(), pkts)
    }
}

fn sockaddr_ll(ifindex: u32, proto: u16, mac: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is a plain C struct for which all-zero is a valid value.
    let mut a: libc::sockaddr_ll = unsafe { MaybeUninit::zeroed().assume_init() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto;
    a.sll_ifindex = ifindex as i32;
    if let Some(mac) = mac {
        a.sll_halen = 6;
        a.sll_addr[..6].copy_from_slice(&mac);
    }
    a
}

/// The MAC address of `ip` on interface `dev` from the kernel's IPv4 neighbour table, if it is
/// there and complete (`/proc/net/arp`: the same table `ip neigh` shows). Only directly
/// connected peers resolve: a peer behind a router is sent through the raw socket.
pub fn neighbour_mac(dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse_arp(&text, dev, ip)
}

/// [`neighbour_mac`] over the text of `/proc/net/arp`.
fn parse_arp(text: &str, dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    const ATF_COM: u32 = 0x2;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [addr, _hw, flags, mac, _mask, d] = f[..] else {
            return None;
        };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        if d != dev || addr.parse::<Ipv4Addr>().ok()? != ip || flags & ATF_COM == 0 {
            return None;
        }
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        Some(out)
    })
}

#[cfg(test)]
mod arp_tests {
    use super::*;

    #[test]
    fn complete_entries_of_the_device_resolve() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 192.0.2.2        0x1         0x2         02:fc:00:00:00:05     *        eth0\n\
                 192.0.2.3        0x1         0x0         00:00:00:00:00:00     *        eth0\n\
                 192.0.2.4        0x1         0x2         0a:0b:0c:0d:0e:0f     *        eth1\n";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            parse_arp(t, "eth0", ip("192.0.2.2")),
            Some([2, 0xfc, 0, 0, 0, 5])
        );
        assert_eq!(parse_arp(t, "eth0", ip("192.0.2.3")), None, "incomplete");
        assert_eq!(parse_arp(t, "eth0", ip("192.0.2.4")), None, "other device");
        assert_eq!(
            parse_arp(t, "eth1", ip("192.0.2.4")),
            Some([10, 11, 12, 13, 14, 15])
        );
    }
}
