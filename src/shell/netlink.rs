//! Routes through ipsecN set with rtnetlink from inside the daemon: rswan's default updown
//! script (`ipsec _updown`'s route/unroute/prepare) without forking `sh`, `ipsec` and `ip` for
//! every SA — at a thousand tunnels those forks were most of the keying daemon's time.

use std::io;
use std::net::Ipv4Addr;

use crate::addr::Subnet;

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
const RTNH_F_ONLINK: u32 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Builds an RTM_NEWROUTE/RTM_DELROUTE request for `dst` (sans-IO; unit-tested).
pub fn route_msg(
    new: bool,
    dst: Subnet,
    gateway: Option<Ipv4Addr>,
    oif: Option<u32>,
    seq: u32,
) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    // rtmsg
    m.push(libc::AF_INET as u8);
    m.push(dst.len());
    m.push(0); // src_len
    m.push(0); // tos
    m.push(RT_TABLE_MAIN);
    m.push(if new { RTPROT_BOOT } else { 0 });
    m.push(if new {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_NOWHERE
    });
    m.push(if new { RTN_UNICAST } else { 0 });
    let flags = if new && gateway.is_some() {
        RTNH_F_ONLINK
    } else {
        0
    };
    m.extend_from_slice(&flags.to_ne_bytes());
    attr(&mut m, RTA_DST, &dst.addr().octets());
    if let Some(g) = gateway {
        attr(&mut m, RTA_GATEWAY, &g.octets());
    }
    if let Some(i) = oif {
        attr(&mut m, RTA_OIF, &i.to_ne_bytes());
    }
    let len = m.len() as u32;
    let (ty, fl) = if new {
        (
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
    };
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&ty.to_ne_bytes());
    m[6..8].copy_from_slice(&fl.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
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

/// Sends one request on a fresh NETLINK_ROUTE socket and waits for its acknowledgement.
fn request(msg: &[u8]) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the descriptor is owned by `fd` below and closed on drop.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid sockaddr_nl (pid 0 = the kernel, no groups).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: sendto with a buffer and address that live for the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
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
    let mut buf = [0u8; 4096];
    // SAFETY: recv into a stack buffer of the given length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    match ack_errno(&buf[..n as usize]) {
        Some(0) => Ok(()),
        Some(e) => Err(io::Error::from_raw_os_error(e)),
        None => Err(io::Error::other("unexpected netlink answer")),
    }
}

/// `ip route replace NET via GW dev IF onlink`.
pub fn route_replace(net: Subnet, gw: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    request(&route_msg(true, net, Some(gw), Some(ifindex), 1))
}

/// `ip route del NET [dev IF]`.
pub fn route_del(net: Subnet, ifindex: Option<u32>) -> io::Result<()> {
    request(&route_msg(false, net, None, ifindex, 1))
}

/// The index of interface `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("interface {name}: unreadable ifindex")))
}

/// Runs the updown step `verb` for `info`: rswan's default script in-process over rtnetlink
/// (same routes as `ipsec _updown`), or the configured `leftupdown` command through `sh`.
/// Returns the text to log (Ok) or the failure to log (Err), in Pluto's "VERB output:" style.
pub fn run_updown(
    info: &crate::updown::UpdownInfo,
    verb: crate::updown::Verb,
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
            let ifx = ifindex(&info.interface).map_err(|e| format!("{vt} output: {e}"))?;
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
            let ifx = ifindex(&info.interface).ok();
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
    fn new_route_message_layout() {
        let m = route_msg(
            true,
            "10.0.2.0/24".parse().unwrap(),
            Some(Ipv4Addr::new(192, 0, 2, 2)),
            Some(7),
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
        let d = route_msg(false, "10.0.2.0/24".parse().unwrap(), None, None, 1);
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), RTM_DELROUTE);
        assert_eq!(d.len(), 16 + 12 + 8);
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
