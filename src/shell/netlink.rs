//! Routes set with rtnetlink from inside the daemon: rswan's default updown script (`ipsec
//! _updown`'s route/unroute/prepare) without forking `sh`, `ipsec` and `ip` for every SA — at a
//! thousand tunnels those forks were most of the keying daemon's time — and the fail-closed
//! `blackhole` fallbacks behind them (`shell::failclosed`).
//!
//! Every route rswan adds carries the routing protocol [`RTPROT_RSWAN`] (`ip route` shows
//! `proto 115`), so a later daemon, or `ipsec setup stop` after a crash, can find and remove
//! exactly what an earlier one left.
//!
//! The fail-closed routes live in their own table [`RSWAN_TABLE`] (115), consulted before
//! `main` by the rule `not fwmark 0x115 lookup 115` ([`RULE_PRIORITY`]): the route into ipsecN
//! and, behind it at [`FALLBACK_METRIC`], a `blackhole` of the same subnet. rswan's own sockets
//! (ESP, `%pass`, IKE) carry the mark [`RSWAN_MARK`] and skip that table, so a blackhole never
//! swallows what the datapath itself sends — a peer's gateway inside another conn's subnet, a
//! `%pass` shunt inside a protected one. The copy of the ipsecN route in `main` is the one
//! FreeS/WAN's `_updown` made, for `route -n` and `ipsec look`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::Family;

use crate::addr::Subnet;

/// The routing protocol number on every route rswan installs (`proto 115` in `ip route`).
pub const RTPROT_RSWAN: u8 = 115;
/// Metric of the fail-closed `blackhole` fallback for a protected subnet: far above the route
/// through ipsecN (metric 0), so it only decides when that route is gone.
pub const FALLBACK_METRIC: u32 = 4242;
/// The routing table holding the fail-closed routes (`ip route show table 115`).
pub const RSWAN_TABLE: u8 = 115;
/// The firewall mark of rswan's own sockets: its packets skip [`RSWAN_TABLE`].
pub const RSWAN_MARK: u32 = 0x115;
/// Priority of the rule `not fwmark 0x115 lookup 115`: just before `main` (32766).
pub const RULE_PRIORITY: u32 = 32765;
/// The `main` routing table.
pub const MAIN_TABLE: u8 = 254;

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FR_ACT_TO_TBL: u8 = 1;
const FIB_RULE_INVERT: u32 = 2;
const NLM_F_EXCL: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_MULTI: u16 = 0x02;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RTNH_F_ONLINK: u32 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `via GATEWAY dev IFINDEX onlink` (a route into ipsecN); for an IPv6 prefix it is
    /// `dev IFINDEX` without the gateway: ipsecN is a point-to-point device with no neighbours
    /// to resolve, and the kernel refuses an on-link IPv6 gateway there.
    Via {
        /// Next hop.
        gateway: IpAddr,
        /// Output interface.
        oif: u32,
    },
    /// `dev IFINDEX` without a next hop (only used to name the route to delete).
    Dev(u32),
    /// Any unicast route of the prefix (deletion only).
    AnyUnicast,
    /// `blackhole`: the kernel discards the packet (`ip route add blackhole`).
    Blackhole,
}

/// One route request (sans-IO: [`route_msg`] turns it into an rtnetlink message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix.
    pub dst: Subnet,
    /// What the route does.
    pub target: Target,
    /// Metric (`RTA_PRIORITY`); `None` = 0 when adding, any when deleting.
    pub metric: Option<u32>,
    /// Routing table ([`MAIN_TABLE`] or [`RSWAN_TABLE`]).
    pub table: u8,
}

/// Builds an RTM_NEWROUTE (replace) or RTM_DELROUTE request (sans-IO; unit-tested). Added routes
/// carry [`RTPROT_RSWAN`]; a deletion names the route type, so deleting a unicast route never
/// removes the blackhole fallback of the same prefix and vice versa.
pub fn route_msg(new: bool, spec: &RouteSpec, seq: u32) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    let ty = match spec.target {
        Target::Blackhole => RTN_BLACKHOLE,
        _ => RTN_UNICAST,
    };
    // rtmsg
    m.push(af(spec.dst.family()));
    m.push(spec.dst.len());
    m.push(0); // src_len
    m.push(0); // tos
    m.push(spec.table);
    m.push(if new { RTPROT_RSWAN } else { 0 });
    m.push(if new {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_NOWHERE
    });
    m.push(ty);
    let same = |g: &IpAddr| Family::of(*g) == spec.dst.family() && g.is_ipv4();
    let flags = match spec.target {
        Target::Via { gateway, .. } if new && same(&gateway) => RTNH_F_ONLINK,
        _ => 0,
    };
    m.extend_from_slice(&flags.to_ne_bytes());
    attr(&mut m, RTA_DST, &ip_octets(spec.dst.ip()));
    match spec.target {
        Target::Via { gateway, oif } => {
            if new && same(&gateway) {
                attr(&mut m, RTA_GATEWAY, &ip_octets(gateway));
            }
            attr(&mut m, RTA_OIF, &oif.to_ne_bytes());
        }
        Target::Dev(oif) => attr(&mut m, RTA_OIF, &oif.to_ne_bytes()),
        Target::AnyUnicast | Target::Blackhole => {}
    }
    if let Some(p) = spec.metric {
        attr(&mut m, RTA_PRIORITY, &p.to_ne_bytes());
    }
    let (ty, fl) = if new {
        (
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
    };
    finish(&mut m, ty, fl, seq);
    m
}

/// The address family number of `f`.
fn af(f: Family) -> u8 {
    match f {
        Family::V4 => libc::AF_INET as u8,
        Family::V6 => libc::AF_INET6 as u8,
    }
}

/// An address's bytes (4 or 16).
fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn finish(m: &mut [u8], ty: u16, flags: u16, seq: u32) {
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&ty.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
}

fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// An IPv4 or IPv6 route as the kernel lists it (`ip route show table all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination prefix.
    pub dst: Subnet,
    /// Routing table.
    pub table: u32,
    /// `rtm_type` (1 unicast, 6 blackhole, …).
    pub rtype: u8,
    /// Routing protocol ([`RTPROT_RSWAN`] for ours).
    pub protocol: u8,
    /// Output interface, if any.
    pub oif: Option<u32>,
    /// Metric.
    pub metric: u32,
}

impl KernelRoute {
    /// Whether this is a `blackhole` route.
    pub fn is_blackhole(&self) -> bool {
        self.rtype == RTN_BLACKHOLE
    }

    /// The request that deletes exactly this route.
    pub fn delete_spec(&self) -> RouteSpec {
        RouteSpec {
            dst: self.dst,
            target: if self.is_blackhole() {
                Target::Blackhole
            } else {
                self.oif.map_or(Target::AnyUnicast, Target::Dev)
            },
            metric: Some(self.metric),
            table: u8::try_from(self.table).unwrap_or(MAIN_TABLE),
        }
    }
}

/// The RTM_GETROUTE dump request for the routes of `family`.
pub fn dump_msg(family: Family, seq: u32) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m.push(af(family));
    m.extend_from_slice(&[0u8; 11]);
    finish(&mut m, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
    m
}

/// Parses the messages of one dump reply buffer: IPv4 and IPv6 routes are appended to `out`.
/// Returns `Ok(true)` when the dump is complete (NLMSG_DONE), `Err` on an NLMSG_ERROR. Truncated
/// or malformed messages end the buffer quietly.
pub fn parse_dump(buf: &[u8], out: &mut Vec<KernelRoute>) -> io::Result<bool> {
    let mut off = 0;
    while buf.len().saturating_sub(off) >= 16 {
        let b = &buf[off..];
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        let msg = &b[..len];
        match ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                if let Some(e) = ack_errno(msg).filter(|e| *e != 0) {
                    return Err(io::Error::from_raw_os_error(e));
                }
            }
            RTM_NEWROUTE => {
                if let Some(r) = parse_route(&msg[16..]) {
                    out.push(r);
                }
            }
            _ => {}
        }
        off += (len + 3) & !3usize;
    }
    Ok(false)
}

/// Parses one rtmsg with its attributes; `None` for other families.
fn parse_route(m: &[u8]) -> Option<KernelRoute> {
    let family = match m.first().map(|&f| i32::from(f)) {
        Some(libc::AF_INET) if m.len() >= 12 => Family::V4,
        Some(libc::AF_INET6) if m.len() >= 12 => Family::V6,
        _ => return None,
    };
    let (dst_len, mut table, protocol, rtype) = (m[1], u32::from(m[4]), m[5], m[7]);
    let mut dst = family.unspecified();
    let mut oif = None;
    let mut metric = 0;
    let mut a = &m[12..];
    while a.len() >= 4 {
        let alen = u16::from_ne_bytes([a[0], a[1]]) as usize;
        let aty = u16::from_ne_bytes([a[2], a[3]]);
        if alen < 4 || alen > a.len() {
            break;
        }
        let d = &a[4..alen];
        let u32_of = |d: &[u8]| {
            d.get(..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        match aty {
            RTA_DST if family == Family::V4 && d.len() >= 4 => {
                dst = Ipv4Addr::new(d[0], d[1], d[2], d[3]).into()
            }
            RTA_DST if d.len() >= 16 => {
                dst = Ipv6Addr::from(<[u8; 16]>::try_from(&d[..16]).unwrap_or([0; 16])).into()
            }
            RTA_OIF => oif = u32_of(d),
            RTA_PRIORITY => metric = u32_of(d).unwrap_or(0),
            RTA_TABLE => table = u32_of(d).unwrap_or(table),
            _ => {}
        }
        a = &a[((alen + 3) & !3usize).min(a.len())..];
    }
    if dst_len > family.bits() {
        return None;
    }
    Some(KernelRoute {
        dst: Subnet::new(dst, dst_len),
        table,
        rtype,
        protocol,
        oif,
        metric,
    })
}

/// Reads the errno of an NLMSG_ERROR acknowledgement (0 = success).
pub fn ack_errno(resp: &[u8]) -> Option<i32> {
    if resp.len() < 20 || u16::from_ne_bytes([resp[4], resp[5]]) != NLMSG_ERROR {
        return None;
    }
    Some(-i32::from_ne_bytes([
        resp[16], resp[17], resp[18], resp[19],
    ]))
}

/// A NETLINK_ROUTE socket.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the descriptor is owned by the OwnedFd below.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        Ok(Socket(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw)
        }))
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid sockaddr_nl (pid 0 = the kernel, no groups).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sendto with a buffer and address that live for the call.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &kernel as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        use std::os::fd::AsRawFd;
        // SAFETY: recv into a buffer of the given length that outlives the call.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(&buf[..n as usize])
    }
}

thread_local! {
    /// This thread's NETLINK_ROUTE socket for requests, and the last sequence number sent on
    /// it: opened on first use and kept (the keying thread routes a conn per SA it brings up;
    /// a socket per request cost two more system calls each), dropped after a failed exchange.
    static REQUESTS: std::cell::RefCell<Option<(Socket, u32)>> =
        const { std::cell::RefCell::new(None) };
}

/// Sends one request on this thread's NETLINK_ROUTE socket and waits for its
/// acknowledgement (matched by sequence number: an answer to an earlier request that was
/// given up on is skipped).
fn request(msg: &[u8]) -> io::Result<()> {
    REQUESTS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (sock, seq) = match slot.take() {
            Some(s) => s,
            None => (Socket::open()?, 0),
        };
        let seq = seq.wrapping_add(1);
        let r = exchange(&sock, msg, seq);
        // Only a socket that answered in step is kept (an errno from the kernel is an answer).
        if !matches!(&r, Err(Exchange::Io(_))) {
            *slot = Some((sock, seq));
        }
        match r {
            Ok(()) => Ok(()),
            Err(Exchange::Errno(e)) => Err(io::Error::from_raw_os_error(e)),
            Err(Exchange::Io(e)) => Err(e),
        }
    })
}

/// How a request failed: the kernel's errno, or the socket itself.
enum Exchange {
    Errno(i32),
    Io(io::Error),
}

fn exchange(sock: &Socket, msg: &[u8], seq: u32) -> Result<(), Exchange> {
    let mut m = msg.to_vec();
    if m.len() < 16 {
        return Err(Exchange::Io(io::Error::other("short netlink request")));
    }
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    sock.send(&m).map_err(Exchange::Io)?;
    let mut buf = [0u8; 4096];
    loop {
        let resp = sock.recv(&mut buf).map_err(Exchange::Io)?;
        if resp.len() >= 12 && u32::from_ne_bytes([resp[8], resp[9], resp[10], resp[11]]) != seq {
            continue;
        }
        return match ack_errno(resp) {
            Some(0) => Ok(()),
            Some(e) => Err(Exchange::Errno(e)),
            None => Err(Exchange::Io(io::Error::other("unexpected netlink answer"))),
        };
    }
}

/// Adds (or replaces) a route.
pub fn route_add(spec: &RouteSpec) -> io::Result<()> {
    request(&route_msg(true, spec, 1))
}

/// Deletes a route; a missing one is not an error.
pub fn route_delete(spec: &RouteSpec) -> io::Result<()> {
    match request(&route_msg(false, spec, 1)) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// The IPv4 and IPv6 routes of every table (`ip route show table all`, `ip -6 route show
/// table all`); IPv6 routes are left out when the kernel has no IPv6.
pub fn routes() -> io::Result<Vec<KernelRoute>> {
    let mut out = routes_of(Family::V4)?;
    if let Ok(v6) = routes_of(Family::V6) {
        out.extend(v6);
    }
    Ok(out)
}

fn routes_of(family: Family) -> io::Result<Vec<KernelRoute>> {
    let s = Socket::open()?;
    s.send(&dump_msg(family, 1))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    loop {
        let got = s.recv(&mut buf)?;
        if got.is_empty() || parse_dump(got, &mut out)? {
            return Ok(out);
        }
        // A dump reply without NLM_F_MULTI is a single message.
        if got.len() >= 8 && u16::from_ne_bytes([got[6], got[7]]) & NLM_F_MULTI == 0 {
            return Ok(out);
        }
    }
}

/// `ip route replace NET via GW dev IF onlink proto 115 [table T]`.
pub fn route_replace_in(table: u8, net: Subnet, gw: IpAddr, ifindex: u32) -> io::Result<()> {
    route_add(&RouteSpec {
        dst: net,
        target: Target::Via {
            gateway: gw,
            oif: ifindex,
        },
        metric: None,
        table,
    })
}

/// `ip route replace NET via GW dev IF onlink proto 115` (main table).
pub fn route_replace(net: Subnet, gw: IpAddr, ifindex: u32) -> io::Result<()> {
    route_replace_in(MAIN_TABLE, net, gw, ifindex)
}

/// `ip route del unicast NET [dev IF]` (never the blackhole fallback); ESRCH is passed on.
pub fn route_del(net: Subnet, ifindex: Option<u32>) -> io::Result<()> {
    request(&route_msg(
        false,
        &RouteSpec {
            dst: net,
            target: ifindex.map_or(Target::AnyUnicast, Target::Dev),
            metric: None,
            table: MAIN_TABLE,
        },
        1,
    ))
}

/// Deletes the route of `net` into ipsecN from [`RSWAN_TABLE`] (missing is fine).
pub fn failclosed_route_del(net: Subnet) -> io::Result<()> {
    route_delete(&RouteSpec {
        dst: net,
        target: Target::AnyUnicast,
        metric: None,
        table: RSWAN_TABLE,
    })
}

/// `ip route replace blackhole NET metric 4242 proto 115 table 115`: the fail-closed fallback.
pub fn blackhole_add(net: Subnet) -> io::Result<()> {
    route_add(&blackhole(net))
}

/// Removes the fail-closed fallback of `net` (missing is fine).
pub fn blackhole_del(net: Subnet) -> io::Result<()> {
    route_delete(&blackhole(net))
}

fn blackhole(net: Subnet) -> RouteSpec {
    RouteSpec {
        dst: net,
        target: Target::Blackhole,
        metric: Some(FALLBACK_METRIC),
        table: RSWAN_TABLE,
    }
}

/// Builds the RTM_NEWRULE / RTM_DELRULE request for `not fwmark 0x115/0xffffffff lookup 115
/// priority 32765` of `family` (sans-IO; unit-tested).
pub fn rule_msg(family: Family, new: bool, seq: u32) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
    m.extend_from_slice(&[af(family), 0, 0, 0, RSWAN_TABLE, 0, 0, FR_ACT_TO_TBL]);
    m.extend_from_slice(&FIB_RULE_INVERT.to_ne_bytes());
    attr(&mut m, FRA_PRIORITY, &RULE_PRIORITY.to_ne_bytes());
    attr(&mut m, FRA_FWMARK, &RSWAN_MARK.to_ne_bytes());
    attr(&mut m, FRA_FWMASK, &u32::MAX.to_ne_bytes());
    attr(&mut m, FRA_TABLE, &u32::from(RSWAN_TABLE).to_ne_bytes());
    let (ty, fl) = if new {
        (
            RTM_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK)
    };
    finish(&mut m, ty, fl, seq);
    m
}

/// Installs the rule that sends everything but rswan's own packets through [`RSWAN_TABLE`]
/// first, for IPv4 and IPv6; an existing one is fine, and a kernel without IPv6 needs no
/// IPv6 rule.
pub fn rule_ensure() -> io::Result<()> {
    for f in [Family::V4, Family::V6] {
        match request(&rule_msg(f, true, 1)) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) if f == Family::V6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            r => r?,
        }
    }
    Ok(())
}

/// Removes those rules (missing is fine).
pub fn rule_remove() -> io::Result<()> {
    for f in [Family::V4, Family::V6] {
        match request(&rule_msg(f, false, 1)) {
            Err(e)
                if e.raw_os_error() == Some(libc::ENOENT)
                    || (f == Family::V6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT)) => {}
            r => r?,
        }
    }
    Ok(())
}

/// The index of interface `name`: one `SIOCGIFINDEX` ioctl on this thread's rtnetlink
/// socket (the kernel answers it on any socket), always current, so a device deleted and made
/// again is never routed to by a stale index. Falls back to sysfs if the ioctl is refused.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let bad = || io::Error::other(format!("interface {name}: no such device"));
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return Err(bad());
    }
    // SAFETY: all-zero is a valid `struct ifreq` (empty name, zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    let r = REQUESTS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some((Socket::open()?, 0));
        }
        let Some((sock, _)) = slot.as_ref() else {
            return Err(io::Error::other("no rtnetlink socket"));
        };
        use std::os::fd::AsRawFd;
        // SAFETY: SIOCGIFINDEX reads the NUL-terminated name from `req` and writes the index
        // into its union; `req` is a whole `struct ifreq` that lives for the call.
        let r = unsafe { libc::ioctl(sock.0.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a successful SIOCGIFINDEX filled the union's `ifru_ifindex`.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
    });
    match r {
        Ok(i) => Ok(i),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(bad()),
        Err(_) => std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("interface {name}: unreadable ifindex"))),
    }
}

/// Runs the updown step `verb` for `info`: rswan's default script in-process over rtnetlink
/// (same routes as `ipsec _updown`), or the configured `leftupdown` command through `sh`.
/// Returns the text to log (Ok) or the failure to log (Err), in Pluto's "VERB output:" style.
///
/// `ifx` is ipsecN's index when the caller has already looked it up (`None`: looked up here
/// when needed).
pub fn run_updown(
    info: &crate::updown::UpdownInfo,
    verb: crate::updown::Verb,
    ifx: Option<u32>,
) -> Result<String, String> {
    use crate::updown::{default_route_nets, Verb};
    if info.command.is_some() {
        return info.run(verb);
    }
    let vt = info.verb_text(verb);
    let nets = default_route_nets(info.peer_client);
    match verb {
        Verb::Up | Verb::Down => Ok(String::new()),
        Verb::Prepare => {
            for n in nets {
                let _ = route_del(n, None);
            }
            Ok(String::new())
        }
        Verb::Route => {
            let ifx = match ifx {
                Some(i) => i,
                None => ifindex(&info.interface).map_err(|e| format!("{vt} output: {e}"))?,
            };
            for n in nets {
                if let Err(e) = route_replace(n, info.next_hop, ifx) {
                    return Err(format!(
                        "{vt} output: ip route replace {n} via {} dev {} onlink: {e}\n{vt} output: incorrect or missing nexthop setting??\n{vt} command exited with status 7",
                        info.next_hop, info.interface
                    ));
                }
            }
            Ok(String::new())
        }
        Verb::Unroute => {
            let ifx = ifx.or_else(|| ifindex(&info.interface).ok());
            for n in nets {
                match route_del(n, ifx) {
                    Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                        return Err(format!(
                            "{vt} output: ip route del {n} dev {}: {e}\n{vt} command exited with status 7",
                            info.interface
                        ));
                    }
                    _ => {}
                }
            }
            Ok(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifindex_by_ioctl_matches_sysfs() {
        let sysfs: u32 = std::fs::read_to_string("/sys/class/net/lo/ifindex")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(ifindex("lo").unwrap(), sysfs);
        assert!(ifindex("rswan-nonesuch").is_err());
        assert!(ifindex("").is_err());
        assert!(ifindex("a-name-longer-than-ifnamsiz").is_err());
        assert!(ifindex("lo\0x").is_err());
    }

    #[test]
    fn new_route_message_layout() {
        let m = route_msg(
            true,
            &RouteSpec {
                dst: "10.0.2.0/24".parse().unwrap(),
                target: Target::Via {
                    gateway: Ipv4Addr::new(192, 0, 2, 2).into(),
                    oif: 7,
                },
                metric: None,
                table: MAIN_TABLE,
            },
            9,
        );
        assert_eq!(m.len(), 16 + 12 + 8 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWROUTE);
        assert_eq!(m[17], 24); // dst_len
        assert_eq!(&m[32..36], &[10, 0, 2, 0]);
        assert_eq!(&m[40..44], &[192, 0, 2, 2]);
        assert_eq!(u32::from_ne_bytes(m[48..52].try_into().unwrap()), 7);
        assert_eq!(m[21], RTPROT_RSWAN);
        assert_eq!(m[23], RTN_UNICAST);
        let d = route_msg(
            false,
            &RouteSpec {
                dst: "10.0.2.0/24".parse().unwrap(),
                target: Target::AnyUnicast,
                metric: None,
                table: MAIN_TABLE,
            },
            1,
        );
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), RTM_DELROUTE);
        assert_eq!(d.len(), 16 + 12 + 8);
        // A unicast deletion names its type, so the blackhole of the prefix survives it.
        assert_eq!(d[23], RTN_UNICAST);
        let b = route_msg(true, &blackhole("10.0.2.0/24".parse().unwrap()), 1);
        assert_eq!(b[23], RTN_BLACKHOLE);
        assert_eq!(b.len(), 16 + 12 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(b[40..44].try_into().unwrap()),
            FALLBACK_METRIC
        );
    }

    /// IPv6 routes: AF_INET6, 16-byte prefix, by device only whatever the peer's family; a
    /// dump of them parses back.
    #[test]
    fn ipv6_route_messages() {
        let spec = |gw: IpAddr| RouteSpec {
            dst: "2001:db8:2::/48".parse().unwrap(),
            target: Target::Via {
                gateway: gw,
                oif: 7,
            },
            metric: None,
            table: RSWAN_TABLE,
        };
        let m = route_msg(true, &spec("2001:db8::2".parse().unwrap()), 1);
        assert_eq!(m[16], libc::AF_INET6 as u8);
        assert_eq!(m[17], 48);
        // IPv6 prefixes route by device only (no on-link gateway on a TUN device).
        assert_eq!(m.len(), 16 + 12 + 20 + 8);
        assert_eq!(&m[32..38], &[0x20, 0x01, 0x0d, 0xb8, 0, 2]);
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), 0);
        let dev_only = route_msg(true, &spec(Ipv4Addr::new(192, 0, 2, 2).into()), 1);
        assert_eq!(dev_only.len(), 16 + 12 + 20 + 8);
        assert_eq!(u32::from_ne_bytes(dev_only[24..28].try_into().unwrap()), 0);
        let mut buf = m.clone();
        buf.extend_from_slice(&route_msg(
            true,
            &blackhole("2001:db8:2::/48".parse().unwrap()),
            1,
        ));
        let mut out = Vec::new();
        parse_dump(&buf, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].dst.to_string(), "2001:db8:2::/48");
        assert_eq!(out[0].oif, Some(7));
        assert!(out[1].is_blackhole());
        assert_eq!(rule_msg(Family::V6, true, 1)[16], libc::AF_INET6 as u8);
        assert_eq!(dump_msg(Family::V6, 1)[16], libc::AF_INET6 as u8);
    }

    #[test]
    fn dump_parsing() {
        // Two route messages as the kernel sends them, then NLMSG_DONE.
        let mut buf = route_msg(true, &blackhole("10.0.2.0/24".parse().unwrap()), 1);
        let via = route_msg(
            true,
            &RouteSpec {
                dst: "10.0.3.0/24".parse().unwrap(),
                target: Target::Via {
                    gateway: Ipv4Addr::new(192, 0, 2, 2).into(),
                    oif: 9,
                },
                metric: None,
                table: MAIN_TABLE,
            },
            1,
        );
        buf.extend_from_slice(&via);
        let mut done = vec![0u8; 20];
        finish(&mut done, NLMSG_DONE, NLM_F_MULTI, 1);
        buf.extend_from_slice(&done);
        let mut out = Vec::new();
        assert!(parse_dump(&buf, &mut out).unwrap());
        assert_eq!(out.len(), 2);
        assert!(out[0].is_blackhole());
        assert_eq!(out[0].table, u32::from(RSWAN_TABLE));
        assert_eq!(out[0].metric, FALLBACK_METRIC);
        assert_eq!(out[0].protocol, RTPROT_RSWAN);
        assert_eq!(out[1].dst.to_string(), "10.0.3.0/24");
        assert_eq!(out[1].oif, Some(9));
        assert_eq!(out[1].delete_spec().target, Target::Dev(9));
        // Truncated input never panics.
        for n in 0..buf.len() {
            let _ = parse_dump(&buf[..n], &mut Vec::new());
        }
    }

    #[test]
    fn rule_message_layout() {
        let m = rule_msg(Family::V4, true, 3);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWRULE);
        assert_eq!(m[20], RSWAN_TABLE);
        assert_eq!(m[23], FR_ACT_TO_TBL);
        assert_eq!(
            u32::from_ne_bytes(m[24..28].try_into().unwrap()),
            FIB_RULE_INVERT
        );
        assert_eq!(m.len(), 16 + 12 + 4 * 8);
        let d = rule_msg(Family::V4, false, 1);
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), RTM_DELRULE);
    }

    #[test]
    fn ack_parsing() {
        let mut a = vec![0u8; 36];
        a[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        a[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
        assert_eq!(ack_errno(&a), Some(17));
        assert_eq!(ack_errno(&a[..10]), None);
    }
}
