//! Facts about the host's interfaces: a physical interface's IPv4 address, prefix and MTU, the
//! default route (for `%defaultroute`), and every local IPv4 address (to orient connections).

use std::io;
use std::net::Ipv4Addr;
use std::process::Command;

/// An IPv4 address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name.
    pub dev: String,
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// Every IPv4 address on the host (`ip -o -4 addr show`).
pub fn addresses() -> io::Result<Vec<IfAddr>> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()?;
    Ok(parse_ip_addr(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `ip -o -4 addr show` output.
pub fn parse_ip_addr(text: &str) -> Vec<IfAddr> {
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "inet") else {
            continue;
        };
        let (Some(dev), Some(cidr)) = (f.get(1), f.get(i + 1)) else {
            continue;
        };
        let dev = dev
            .trim_end_matches(':')
            .split('@')
            .next()
            .unwrap_or_default();
        let Some((a, p)) = cidr.split_once('/') else {
            continue;
        };
        if let (Ok(addr), Ok(prefix)) = (a.parse(), p.parse()) {
            v.push(IfAddr {
                dev: dev.to_string(),
                addr,
                prefix,
            });
        }
    }
    v
}

/// The first IPv4 address of `dev`.
pub fn address_of(dev: &str) -> io::Result<IfAddr> {
    addresses()?
        .into_iter()
        .find(|a| a.dev == dev)
        .ok_or_else(|| io::Error::other(format!("interface {dev} has no IPv4 address")))
}

/// The first global IPv6 address of `dev` (`ip -o -6 addr show dev DEV scope global`).
pub fn address6_of(dev: &str) -> Option<std::net::Ipv6Addr> {
    let out = Command::new("ip")
        .args(["-o", "-6", "addr", "show", "dev", dev, "scope", "global"])
        .output()
        .ok()?;
    parse_ip6_addr(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .next()
}

/// Every global IPv6 address on the host.
pub fn addresses6() -> Vec<std::net::Ipv6Addr> {
    Command::new("ip")
        .args(["-o", "-6", "addr", "show", "scope", "global"])
        .output()
        .map(|o| parse_ip6_addr(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

/// The addresses of `ip -o -6 addr show` output (tentative or not).
pub fn parse_ip6_addr(text: &str) -> Vec<std::net::Ipv6Addr> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let i = f.iter().position(|w| *w == "inet6")?;
            f.get(i + 1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// The MTU of `dev`.
pub fn mtu_of(dev: &str) -> io::Result<usize> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .map_err(|e| io::Error::other(format!("interface {dev}: {e}")))?;
    s.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("interface {dev}: unreadable MTU")))
}

/// The default route's device and next hop (from /proc/net/route).
pub fn default_route() -> Option<(String, Ipv4Addr)> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_proc_route(&text)
}

/// Parses /proc/net/route for the default route.
pub fn parse_proc_route(text: &str) -> Option<(String, Ipv4Addr)> {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            continue;
        }
        let gw = u32::from_str_radix(f[2], 16).ok()?;
        return Some((f[0].to_string(), Ipv4Addr::from(u32::from_be(gw))));
    }
    None
}

/// The IPv6 default route's device and next hop (from /proc/net/ipv6_route).
pub fn default_route6() -> Option<(String, std::net::Ipv6Addr)> {
    let text = std::fs::read_to_string("/proc/net/ipv6_route").ok()?;
    parse_proc_ipv6_route(&text)
}

/// Parses /proc/net/ipv6_route for the default route (`::/0` with a gateway, lowest metric).
pub fn parse_proc_ipv6_route(text: &str) -> Option<(String, std::net::Ipv6Addr)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[0].bytes().any(|b| b != b'0') || f[1] != "00" {
                return None;
            }
            let gw = std::net::Ipv6Addr::from(u128::from_str_radix(f[4], 16).ok()?);
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            (!gw.is_unspecified() && f[9] != "lo").then(|| (metric, f[9].to_string(), gw))
        })
        .min_by_key(|r| r.0)
        .map(|(_, dev, gw)| (dev, gw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv6_default_route() {
        let t = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                 00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                 00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0\n";
        assert_eq!(
            parse_proc_ipv6_route(t),
            Some(("eth0".into(), "fd00::1".parse().unwrap()))
        );
        assert_eq!(parse_proc_ipv6_route(""), None);
    }

    #[test]
    fn parses_ip6_addr_output() {
        let t = "5: veth0@if4    inet6 2001:db8::1/64 scope global \\       valid_lft forever\n\
                 5: veth0@if4    inet6 2001:db8::9/64 scope global nodad \\ x\n";
        assert_eq!(
            parse_ip6_addr(t),
            vec![
                "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap(),
                "2001:db8::9".parse().unwrap()
            ]
        );
    }

    #[test]
    fn parses_ip_addr_output() {
        let t = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                 5: veth0@if4    inet 192.0.2.1/24 brd 192.0.2.255 scope global veth0\\ x\n";
        let v = parse_ip_addr(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].dev, "veth0");
        assert_eq!(v[1].addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(v[1].prefix, 24);
    }

    #[test]
    fn parses_default_route() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            parse_proc_route(t),
            Some(("eth0".into(), Ipv4Addr::new(192, 168, 2, 1)))
        );
    }
}
