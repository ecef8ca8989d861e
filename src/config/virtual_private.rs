//! `virtual_private=` (`config setup`, Openswan NAT-T syntax): the private networks a peer
//! behind a NAT may claim as its client.
//!
//! ```text
//! virtual_private=%v4:10.0.0.0/8,%v4:192.168.0.0/16,%v4:172.16.0.0/12,%v4:!10.2.0.0/16
//! ```
//!
//! A comma-separated list; each entry is `%v4:NET/LEN` or `%v6:NET/LEN` (allowed) or
//! `%v4:!NET/LEN` / `%v6:!NET/LEN` (excluded).
//! A client is allowed when it lies entirely inside an allowed network and overlaps no
//! excluded one. Empty or unset: nothing is allowed (a NATed Road Warrior then gets only its
//! own public address as client).
//!
//! `%v6:` entries admit IPv6 clients of peers behind a NAT66 (IKE over IPv6).

use std::fmt;
use std::net::Ipv6Addr;

use crate::addr::Subnet;

/// The parsed `virtual_private=` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualPrivate {
    allowed: Vec<Subnet>,
    excluded: Vec<Subnet>,
}

/// Why a `virtual_private=` value was refused (the caller adds `file:line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualPrivateError(String);

impl fmt::Display for VirtualPrivateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VirtualPrivateError {}

/// Most entries accepted (a bound on hostile or runaway configuration).
pub const MAX_ENTRIES: usize = 256;

impl VirtualPrivate {
    /// Parses a `virtual_private=` value.
    pub fn parse(value: &str) -> Result<VirtualPrivate, VirtualPrivateError> {
        let mut vp = VirtualPrivate::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(vp);
        }
        for (n, raw) in value.split(',').enumerate() {
            let entry = raw.trim();
            let bad =
                |why: String| VirtualPrivateError(format!("entry {} \"{entry}\": {why}", n + 1));
            if n >= MAX_ENTRIES {
                return Err(VirtualPrivateError(format!(
                    "more than {MAX_ENTRIES} entries"
                )));
            }
            if entry.is_empty() {
                return Err(bad("empty entry".into()));
            }
            if let Some(rest) = entry.strip_prefix("%v4:") {
                let (exclude, net) = match rest.strip_prefix('!') {
                    Some(net) => (true, net),
                    None => (false, rest),
                };
                let Some((a, _)) = net.split_once('/') else {
                    return Err(bad("expected NETWORK/LENGTH".into()));
                };
                if a.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(bad(format!("\"{a}\" is not an IPv4 address")));
                }
                let s: Subnet = net.parse().map_err(|e| bad(format!("{e}")))?;
                if exclude {
                    vp.excluded.push(s);
                } else {
                    vp.allowed.push(s);
                }
            } else if let Some(rest) = entry.strip_prefix("%v6:") {
                let (exclude, net) = match rest.strip_prefix('!') {
                    Some(net) => (true, net),
                    None => (false, rest),
                };
                check_v6(net).map_err(bad)?;
                let s: Subnet = net.parse().map_err(|e| bad(format!("{e}")))?;
                if exclude {
                    vp.excluded.push(s);
                } else {
                    vp.allowed.push(s);
                }
            } else {
                return Err(bad(
                    "must start with %v4: (or %v6:), e.g. %v4:10.0.0.0/8 or %v4:!10.2.0.0/16"
                        .into(),
                ));
            }
        }
        Ok(vp)
    }

    /// Whether a peer behind a NAT may claim `client`: inside an allowed network, overlapping
    /// no excluded one.
    pub fn allows(&self, client: &Subnet) -> bool {
        self.allowed.iter().any(|a| a.covers(client))
            && !self.excluded.iter().any(|x| x.overlaps(client))
    }

    /// The allowed networks (`%v4:`, `%v6:`).
    pub fn allowed(&self) -> &[Subnet] {
        &self.allowed
    }

    /// The excluded networks (`%v4:!`, `%v6:!`).
    pub fn excluded(&self) -> &[Subnet] {
        &self.excluded
    }

    /// Nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }
}

fn check_v6(net: &str) -> Result<(), String> {
    let (a, l) = net
        .split_once('/')
        .ok_or_else(|| "expected NETWORK/LENGTH".to_string())?;
    a.parse::<Ipv6Addr>()
        .map_err(|_| format!("\"{a}\" is not an IPv6 address"))?;
    match l.parse::<u8>() {
        Ok(n) if n <= 128 => Ok(()),
        _ => Err(format!("\"{l}\" is not a prefix length 0..128")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    #[test]
    fn empty_allows_nothing() {
        for v in ["", "  "] {
            let vp = VirtualPrivate::parse(v).unwrap();
            assert!(vp.is_empty());
            assert!(!vp.allows(&s("10.0.0.1/32")));
        }
        assert!(!VirtualPrivate::default().allows(&s("192.168.1.2/32")));
    }

    #[test]
    fn includes_and_excludes() {
        let vp = VirtualPrivate::parse(
            "%v4:10.0.0.0/8, %v4:192.168.0.0/16,%v4:!10.2.0.0/16,%v4:!192.168.7.0/24",
        )
        .unwrap();
        assert_eq!(vp.allowed(), &[s("10.0.0.0/8"), s("192.168.0.0/16")]);
        assert_eq!(vp.excluded(), &[s("10.2.0.0/16"), s("192.168.7.0/24")]);
        assert!(vp.allows(&s("10.1.2.3/32")));
        assert!(vp.allows(&s("10.3.0.0/16")));
        assert!(vp.allows(&s("192.168.8.0/24")));
        // Excluded, inside an excluded range, or overlapping one.
        assert!(!vp.allows(&s("10.2.0.5/32")));
        assert!(!vp.allows(&s("10.2.0.0/16")));
        assert!(!vp.allows(&s("10.0.0.0/8")));
        assert!(!vp.allows(&s("192.168.7.9/32")));
        // Not inside any allowed range (or only partly).
        assert!(!vp.allows(&s("172.16.0.1/32")));
        assert!(!vp.allows(&s("0.0.0.0/0")));
        assert!(!vp.allows(&s("192.168.0.0/15")));
    }

    #[test]
    fn exclusion_only_allows_nothing() {
        let vp = VirtualPrivate::parse("%v4:!10.0.0.0/8").unwrap();
        assert!(vp.is_empty());
        assert!(!vp.allows(&s("10.0.0.1/32")));
    }

    #[test]
    fn v6_entries_admit_ipv6_clients() {
        let vp = VirtualPrivate::parse("%v4:10.0.0.0/8,%v6:fd00::/8,%v6:!fd00:bad::/32").unwrap();
        assert_eq!(vp.allowed(), &[s("10.0.0.0/8"), s("fd00::/8")]);
        assert_eq!(vp.excluded(), &[s("fd00:bad::/32")]);
        assert!(vp.allows(&s("fd00:1::2/128")));
        assert!(!vp.allows(&s("fd00:bad::2/128")));
        assert!(!vp.allows(&s("2001:db8::2/128")));
        let e = VirtualPrivate::parse("%v6:fd00::").unwrap_err().to_string();
        assert_eq!(e, "entry 1 \"%v6:fd00::\": expected NETWORK/LENGTH");
        let e = VirtualPrivate::parse("%v6:fz00::/8")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not an IPv6 address"), "{e}");
        let e = VirtualPrivate::parse("%v6:fd00::/129")
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefix length 0..128"), "{e}");
    }

    #[test]
    fn bad_entries_name_the_entry() {
        let e = |v: &str| VirtualPrivate::parse(v).unwrap_err().to_string();
        assert_eq!(
            e("10.0.0.0/8"),
            "entry 1 \"10.0.0.0/8\": must start with %v4: (or %v6:), e.g. %v4:10.0.0.0/8 or %v4:!10.2.0.0/16"
        );
        assert_eq!(
            e("%v4:10.0.0.0/8,%v4:10.1.0.1/16"),
            "entry 2 \"%v4:10.1.0.1/16\": improper subnet, host-part bits on in \"10.1.0.1/16\""
        );
        assert_eq!(
            e("%v4:10.0.0.0/8,,%v4:!10.2.0.0/16"),
            "entry 2 \"\": empty entry"
        );
        assert_eq!(
            e("%v4:10.0.0.1"),
            "entry 1 \"%v4:10.0.0.1\": expected NETWORK/LENGTH"
        );
        assert!(e("%v4:10.0.0.0/33").contains("not a prefix length"));
        assert!(e("%v4:!banana/8").contains("\"banana\" is not an IPv4 address"));
        assert!(e("%v4:10.0.0.0/8,").contains("entry 2 \"\": empty entry"));
        let many = vec!["%v4:10.0.0.0/8"; MAX_ENTRIES + 1].join(",");
        assert!(e(&many).contains("more than 256 entries"));
    }
}
