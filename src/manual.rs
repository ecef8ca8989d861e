//! Manual keying (`ipsec manual`, spec 6.2): turns a `conn` section into the SAs, SA groups,
//! eroute and `_updown` facts that bring it up. Sans-IO: host facts are passed in.

use std::net::{IpAddr, Ipv4Addr};

use crate::addr::{Family, Subnet};
use crate::config::conf::{ConfError, ConnSection, Section};
use crate::config::ttodata::ttodata;
use crate::crypto::{parse_esp_transform, AuthAlg, EncAlg};
use crate::sadb::lifetime::Lifetimes;
use crate::sadb::replay::{DEFAULT_WINDOW, MAX_WINDOW};
use crate::sadb::{Dir, KeyBytes, SaSpec, UdpEncap, XformSpec};
use crate::said::{Proto, Said, Shunt};
use crate::updown::UpdownInfo;

/// What the host looks like, for orienting a connection and picking its ipsecN.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Every local address (IPv4 and IPv6).
    pub local: Vec<IpAddr>,
    /// The IPv4 default route: (address of its interface, next hop).
    pub defaultroute: Option<(Ipv4Addr, Ipv4Addr)>,
    /// ipsecN devices: (name, an address of its physical interface), one entry per address.
    pub ipsec: Vec<(String, IpAddr)>,
}

/// Everything needed to bring a manual connection up.
#[derive(Debug, Clone)]
pub struct ManualPlan {
    /// Connection name.
    pub name: String,
    /// The SAs to add, outbound then inbound.
    pub sas: Vec<SaSpec>,
    /// The SA groups (inner→outer), outbound then inbound.
    pub groups: Vec<Vec<Said>>,
    /// The outbound eroute: our client, peer client, group head or shunt.
    pub eroute: (Subnet, Subnet, Said),
    /// Facts for the updown script.
    pub updown: UpdownInfo,
}

/// One end of a connection after orientation.
#[derive(Debug, Clone)]
struct End {
    side: &'static str,
    addr: IpAddr,
    client: Subnet,
    nexthop: Option<IpAddr>,
    id: Option<String>,
    updown: Option<String>,
}

fn end(p: &Section, side: &'static str, host: &HostFacts) -> Result<End, ConfError> {
    let key = |k: &str| format!("{side}{k}");
    let name = key("");
    let raw = p
        .get(&name)
        .ok_or_else(|| p.err_at(&name, format!("{name}= is required")))?;
    let (addr, dr_nexthop) = match raw {
        "%defaultroute" => {
            let (a, nh) = host.defaultroute.ok_or_else(|| {
                p.err_at(
                    &name,
                    format!("{name}=%defaultroute but there is no default route"),
                )
            })?;
            (IpAddr::V4(a), Some(IpAddr::V4(nh)))
        }
        _ => (
            raw.parse::<IpAddr>().map_err(|_| {
                p.err_at(
                    &name,
                    format!("{name}=\"{raw}\": manual keying needs an IPv4 or IPv6 address"),
                )
            })?,
            None,
        ),
    };
    let client = match p.get(&key("subnet")) {
        Some(s) => s
            .parse::<Subnet>()
            .map_err(|e| p.err_at(&key("subnet"), format!("{}: {e}", key("subnet"))))?,
        None => Subnet::host(addr),
    };
    let nexthop = p.get_nexthop(side, Family::of(addr), dr_nexthop, || {
        host.defaultroute
            .map(|d| Some(IpAddr::V4(d.1)))
            .ok_or_else(|| {
                p.err_at(
                    &key("nexthop"),
                    "%defaultroute but there is no default route",
                )
            })
    })?;
    Ok(End {
        side,
        addr,
        client,
        nexthop,
        id: p.get(&key("id")).map(str::to_owned),
        updown: p.get(&key("updown")).map(str::to_owned),
    })
}

fn spi_value(p: &Section, name: &str) -> Result<Option<u32>, ConfError> {
    let Some(s) = p.get(name) else {
        return Ok(None);
    };
    let v = s
        .strip_prefix("0x")
        .and_then(|h| u32::from_str_radix(&h.replace('_', ""), 16).ok())
        .ok_or_else(|| p.err_at(name, format!("{name}=\"{s}\" is not 0xHEX")))?;
    if v < 0x100 {
        return Err(p.err_at(name, format!("{name}={s}: SPIs below 0x100 are reserved")));
    }
    Ok(Some(v))
}

/// The SPI of the SAs whose destination is `dst_side` ("left"/"right"), for protocol key part
/// `kind` ("esp", "ah").
fn spi_for(p: &Section, dst_side: &str, kind: &str) -> Result<u32, ConfError> {
    if let Some(v) = spi_value(p, &format!("{dst_side}{kind}spi"))? {
        return Ok(v);
    }
    if let Some(v) = spi_value(p, "spi")? {
        return Ok(v);
    }
    if let Some(v) = spi_value(p, "spibase")? {
        // left→right SAs (destination right) get the even number, right→left the odd one.
        return Ok((v & !1) | u32::from(dst_side == "left"));
    }
    Err(ConfError::new(
        p.file().to_path_buf(),
        p.line(),
        "manual connection needs spi=, spibase= or per-side SPIs",
    ))
}

fn key_for(
    p: &Section,
    dst_side: &str,
    kind: &str,
    conn_line: (&std::path::Path, usize),
) -> Result<(KeyBytes, String), ConfError> {
    let side_name = format!("{dst_side}{kind}");
    let name = if p.contains(&side_name) {
        side_name
    } else {
        kind.to_string()
    };
    let s = p.get(&name).ok_or_else(|| {
        ConfError::new(
            conn_line.0.to_path_buf(),
            conn_line.1,
            format!("manual connection needs {kind}= (or left{kind}=/right{kind}=)"),
        )
    })?;
    let key = ttodata(s)
        .map(KeyBytes)
        .map_err(|e| p.err_at(&name, format!("{name}: {}", e.message())))?;
    Ok((key, name))
}

fn window(p: &Section, name: &str) -> Result<u32, ConfError> {
    match p.get(name) {
        None => Ok(DEFAULT_WINDOW),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|w| *w <= MAX_WINDOW)
            .ok_or_else(|| p.err_at(name, format!("{name}=\"{s}\" is not 0..{MAX_WINDOW}"))),
    }
}

/// Checks a key's length; the error cites the line where the key (`name`) was written, and
/// never its value.
fn check_key_len(
    p: &Section,
    (got, name): &(KeyBytes, String),
    what: &str,
    want: usize,
) -> Result<(), ConfError> {
    if got.0.len() != want {
        return Err(p.err_at(
            name,
            format!(
                "{name}: {what} needs a {}-bit key, got {} bits",
                want * 8,
                got.0.len() * 8
            ),
        ));
    }
    Ok(())
}

/// Builds the plan for manual connection `conn` on this host.
pub fn plan(conn: &ConnSection, host: &HostFacts) -> Result<ManualPlan, ConfError> {
    let p = &conn.params;
    let at = (conn.file.as_path(), conn.line);
    let left = end(p, "left", host)?;
    let right = end(p, "right", host)?;
    if left.addr.is_ipv6() != right.addr.is_ipv6() {
        return Err(p.err_at(
            "right",
            format!(
                "left={} and right={} are of different address families",
                left.addr, right.addr
            ),
        ));
    }
    // Tunnel mode carries either family inside either; only the two clients must agree.
    if left.client.family() != right.client.family() {
        return Err(p.err_at(
            "rightsubnet",
            format!(
                "leftsubnet={} and rightsubnet={} are of different address families",
                left.client, right.client
            ),
        ));
    }
    let (me, peer) = if host.local.contains(&left.addr) {
        (left, right)
    } else if host.local.contains(&right.addr) {
        (right, left)
    } else {
        return Err(ConfError::new(
            conn.file.clone(),
            conn.line,
            format!(
                "cannot determine which side of \"{}\" is us: neither left={} nor right={} is an address of this host",
                conn.name, left.addr, right.addr
            ),
        ));
    };
    let iface = host
        .ipsec
        .iter()
        .find(|(_, a)| *a == me.addr)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| {
            ConfError::new(
                conn.file.clone(),
                conn.line,
                format!(
                    "no ipsecN interface is attached to the interface holding {} (check interfaces= in config setup)",
                    me.addr
                ),
            )
        })?;
    let ty = p.get("type").unwrap_or("tunnel");
    let tunnel = match ty {
        "tunnel" => true,
        "transport" => {
            for e in [&me, &peer] {
                if e.client != Subnet::host(e.addr) {
                    return Err(p.err_at(
                        &format!("{}subnet", e.side),
                        "type=transport forbids leftsubnet/rightsubnet",
                    ));
                }
            }
            false
        }
        "passthrough" | "drop" | "reject" => {
            let shunt = match ty {
                "passthrough" => Shunt::Pass,
                "drop" => Shunt::Drop,
                _ => Shunt::Reject,
            };
            return Ok(ManualPlan {
                name: conn.name.clone(),
                sas: Vec::new(),
                groups: Vec::new(),
                eroute: (
                    me.client,
                    peer.client,
                    Said::new(Proto::Int, shunt.spi(), Ipv4Addr::UNSPECIFIED),
                ),
                updown: updown(conn, &me, &peer, &iface),
            });
        }
        other => {
            return Err(p.err_at(
                "type",
                format!("type=\"{other}\" is not tunnel, transport, passthrough, drop or reject"),
            ))
        }
    };
    let esp = match p.get("esp") {
        Some(s) => {
            Some(parse_esp_transform(s).map_err(|e| p.err_at("esp", format!("esp=\"{s}\": {e}")))?)
        }
        None if p.contains("espenckey")
            || p.contains("leftespenckey")
            || p.contains("rightespenckey") =>
        {
            Some((EncAlg::TripleDesCbc, Some(AuthAlg::HmacMd5_96)))
        }
        None => None,
    };
    let ah = match p.get("ah") {
        Some(s) => Some(
            s.parse::<AuthAlg>()
                .map_err(|e| p.err_at("ah", format!("ah=\"{s}\": {e}")))?,
        ),
        None if p.contains("ahkey") || p.contains("leftahkey") || p.contains("rightahkey") => {
            Some(AuthAlg::HmacMd5_96)
        }
        None => None,
    };
    if esp.is_none() && ah.is_none() {
        return Err(ConfError::new(
            conn.file.clone(),
            conn.line,
            "manual connection needs esp= and/or ah= with keys",
        ));
    }
    if let Some((enc @ (EncAlg::Des | EncAlg::NullEnc), _)) = esp {
        return Err(p.err_at(
            "esp",
            format!(
                "esp={}: refused ({})",
                enc.conf_name(),
                if enc == EncAlg::Des {
                    "single DES is insecure"
                } else {
                    "NULL encryption sends cleartext"
                }
            ),
        ));
    }
    let compress = p.get_bool("compress", false)?;
    // Tunnel-exit check on inbound SAs, unless the administrator turned it off.
    let arrival_check = !p.get_bool("disablearrivalcheck", false)?;
    let encaps = p.get_bool("forceencaps", false)?;
    let esp_window = window(p, "espreplay_window")?;
    let ah_window = window(p, "ahreplay_window")?;

    let mut sas = Vec::new();
    let mut groups = Vec::new();
    // (source, destination, destination side) for outbound then inbound.
    for (src, dst, inbound) in [(&me, &peer, false), (&peer, &me, true)] {
        let side = dst.side;
        let mut group = Vec::new();
        let base = spi_for(p, side, if esp.is_some() { "esp" } else { "ah" })?;
        let policy = (inbound && arrival_check).then_some((src.client, dst.client));
        let dir = if inbound { Dir::In } else { Dir::Out };
        let mk =
            |said: Said, xform: XformSpec, window: u32, encap: Option<UdpEncap>, policy| SaSpec {
                said,
                src: src.addr,
                dir: Some(dir),
                xform,
                replay_window: window,
                life: Lifetimes::default(),
                encap,
                policy,
            };
        let mut policy_pending = policy;
        if tunnel {
            let said = Said::new(Proto::Tun, base, dst.addr);
            sas.push(mk(said, XformSpec::Ipip, 0, None, policy_pending.take()));
            group.push(said);
        }
        if compress {
            let cpi = base & 0xffff;
            if !(256..=61439).contains(&cpi) {
                return Err(p.err_at(
                    "compress",
                    format!("IPComp CPI 0x{cpi:x} (from the SPI) is outside 256..61439"),
                ));
            }
            let said = Said::new(Proto::Comp, cpi, dst.addr);
            sas.push(mk(said, XformSpec::Deflate, 0, None, policy_pending.take()));
            group.push(said);
        }
        if let Some((enc, auth)) = esp {
            let spi = spi_for(p, side, "esp")?;
            let enckey = key_for(p, side, "espenckey", at)?;
            check_key_len(
                p,
                &enckey,
                &format!("esp={}", enc.conf_name()),
                enc.key_len(),
            )?;
            let enckey = enckey.0;
            let authkey = match auth {
                Some(a) => {
                    let k = key_for(p, side, "espauthkey", at)?;
                    check_key_len(
                        p,
                        &k,
                        &format!("ESP integrity {}", a.conf_name()),
                        a.key_len(),
                    )?;
                    k.0
                }
                None => KeyBytes::default(),
            };
            let said = Said::new(Proto::Esp, spi, dst.addr);
            let encap = encaps.then_some(UdpEncap {
                sport: 4500,
                dport: 4500,
            });
            sas.push(mk(
                said,
                XformSpec::Esp {
                    enc,
                    enckey,
                    auth,
                    authkey,
                },
                esp_window,
                encap,
                policy_pending.take(),
            ));
            group.push(said);
        }
        if let Some(a) = ah {
            let spi = spi_for(p, side, "ah")?;
            let authkey = key_for(p, side, "ahkey", at)?;
            check_key_len(p, &authkey, &format!("ah={}", a.conf_name()), a.key_len())?;
            let authkey = authkey.0;
            let said = Said::new(Proto::Ah, spi, dst.addr);
            sas.push(mk(
                said,
                XformSpec::Ah { auth: a, authkey },
                ah_window,
                None,
                policy_pending.take(),
            ));
            group.push(said);
        }
        groups.push(group);
    }
    let head = groups[0][0];
    Ok(ManualPlan {
        name: conn.name.clone(),
        sas,
        eroute: (me.client, peer.client, head),
        groups,
        updown: updown(conn, &me, &peer, &iface),
    })
}

fn updown(conn: &ConnSection, me: &End, peer: &End, iface: &str) -> UpdownInfo {
    UpdownInfo {
        connection: conn.name.clone(),
        next_hop: me.nexthop.unwrap_or(peer.addr),
        interface: iface.to_string(),
        me: me.addr,
        my_id: me.id.clone().unwrap_or_else(|| me.addr.to_string()),
        my_client: me.client,
        peer: peer.addr,
        peer_id: peer.id.clone().unwrap_or_else(|| peer.addr.to_string()),
        peer_client: peer.client,
        command: me.updown.clone(),
        fail_closed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conf::IpsecConf;

    fn host() -> HostFacts {
        HostFacts {
            local: vec!["192.0.2.1".parse().unwrap()],
            defaultroute: None,
            ipsec: vec![("ipsec0".into(), "192.0.2.1".parse().unwrap())],
        }
    }

    fn plan_of(body: &str) -> Result<ManualPlan, ConfError> {
        let text = format!(
            "version 2\nconn net\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tspibase=0x200\n{body}\tauto=manual\n"
        );
        let conf = IpsecConf::parse_str(&text, "/etc/ipsec.conf").unwrap();
        plan(conf.conn("net").unwrap(), &host())
    }

    /// A key of the wrong length is reported at the line of the key, by name, without its value.
    #[test]
    fn bad_key_length_cites_the_key_line() {
        let e = plan_of("\tesp=aes128-sha1\n\tespenckey=0x5ec2e75ec2e7\n\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/ipsec.conf:7: espenckey: esp=aes128 needs a 128-bit key, got 48 bits"
        );
        let e = plan_of("\tesp=aes128-sha1\n\tespenckey=0x00112233445566778899aabbccddeeff\n\trightespauthkey=0xa17e\n\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/ipsec.conf:8: rightespauthkey: ESP integrity sha1 needs a 160-bit key, got 16 bits"
        );
        let e = plan_of("\tah=hmac-md5-96\n\tahkey=0x0011\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/ipsec.conf:7: ahkey: "), "{e}");
        assert!(!e.contains("0011"), "{e}");
    }

    /// `esp=chacha20poly1305` (RFC 7634) keys a manual conn: 256-bit key + 32-bit salt, no
    /// integrity key.
    #[test]
    fn chacha20_poly1305_manual_conn() {
        let key = "0x808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3";
        let p = plan_of(&format!("\tesp=chacha20poly1305\n\tespenckey={key}\n")).unwrap();
        assert_eq!(p.sas.len(), 4);
        let e = plan_of("\tesp=chacha20poly1305\n\tespenckey=0x00112233445566778899aabbccddeeff\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/ipsec.conf:7: espenckey: "), "{e}");
        assert!(e.contains("288"), "{e}");
        let e = plan_of(&format!("\tesp=chacha20poly1305-sha1\n\tespenckey={key}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("take no integrity algorithm"), "{e}");
    }

    #[test]
    fn good_keys_plan() {
        let p = plan_of("\tesp=aes128-sha1\n\tespenckey=0x00112233445566778899aabbccddeeff\n\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n").unwrap();
        assert_eq!(p.sas.len(), 4);
    }

    fn v6_plan(body: &str) -> Result<ManualPlan, ConfError> {
        let text = format!(
            "version 2\nconn net\n\tleft=2001:db8::1\n\tright=2001:db8::2\n\tspibase=0x200\n\tesp=aes128-sha1\n\tespenckey=0x00112233445566778899aabbccddeeff\n\tespauthkey=0x0123456789abcdef0123456789abcdef01234567\n{body}\tauto=manual\n"
        );
        let conf = IpsecConf::parse_str(&text, "/etc/ipsec.conf").unwrap();
        let me: IpAddr = "2001:db8::1".parse().unwrap();
        let host = HostFacts {
            local: vec![me],
            defaultroute: None,
            ipsec: vec![("ipsec0".into(), me)],
        };
        plan(conf.conn("net").unwrap(), &host)
    }

    /// IPv6 in left/right, subnets and nexthop of a manual conn; mixed families are refused
    /// at the line that mixes them.
    #[test]
    fn ipv6_manual_conn() {
        let p = v6_plan(
            "\tleftsubnet=2001:db8:1::/64\n\trightsubnet=10.0.2.0/24\n\tleftnexthop=fe80::1\n",
        );
        let e = p.unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/ipsec.conf:") && e.contains("different address families"),
            "{e}"
        );
        let p = v6_plan(
            "\tleftsubnet=10.0.1.0/24\n\trightsubnet=10.0.2.0/24\n\tleftnexthop=2001:db8::fe\n",
        )
        .unwrap();
        assert_eq!(p.sas.len(), 4);
        assert_eq!(p.sas[0].said.to_string(), "tun0x200@2001:db8::2");
        assert_eq!(p.sas[0].src, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(p.eroute.0.to_string(), "10.0.1.0/24");
        assert_eq!(p.updown.next_hop.to_string(), "2001:db8::fe");
        let e = v6_plan("\tleftnexthop=192.0.2.254\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("leftnexthop=192.0.2.254 is not of the address family"),
            "{e}"
        );
        let e = v6_plan("\tleftsubnet=2001:db8:1::1/64\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("host-part bits"), "{e}");
    }

    /// IKE-keyed conns take IPv6 hosts and subnets of either family (6-in-6, 4-in-6, 6-in-4);
    /// what IKE cannot do — hosts of two families, clients of two families, a next hop of the
    /// other family — is refused at its line.
    #[test]
    fn ike_conns_with_ipv6_load_and_family_mismatches_are_refused() {
        use crate::pluto::connection::Connection;
        let cfg = |addr: &str| crate::pluto::PlutoConfig {
            interfaces: vec![crate::pluto::Interface {
                virt: "ipsec0".into(),
                phys: "eth0".into(),
                addr: addr.parse().unwrap(),
            }],
            ..Default::default()
        };
        let load = |body: &str, me: &str| {
            let text = format!("version 2\nconn net\n{body}\tauthby=secret\n\tauto=add\n");
            let conf = IpsecConf::parse_str(&text, "/etc/ipsec.conf").unwrap();
            Connection::from_section(conf.conn("net").unwrap(), &cfg(me))
        };
        for body in [
            "\tleft=2001:db8::1\n\tright=2001:db8::2\n",
            "\tleft=2001:db8::1\n\tright=2001:db8::2\n\tleftsubnet=2001:db8:1::/64\n\trightsubnet=2001:db8:2::/64\n",
            "\tleft=2001:db8::1\n\tright=2001:db8::2\n\tleftsubnet=10.0.1.0/24\n\trightsubnet=10.0.2.0/24\n",
            "\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=2001:db8:1::/64\n\trightsubnet=2001:db8:2::/64\n",
            "\tleft=2001:db8::1\n\tright=%any\n\tleftnexthop=2001:db8::fe\n",
        ] {
            let me = if body.contains("left=192") { "192.0.2.1" } else { "2001:db8::1" };
            let c = load(body, me).unwrap_or_else(|e| panic!("{body}: {e:?}"));
            assert_eq!(c.this.host, Some(me.parse().unwrap()));
            assert_eq!(c.this.client.family(), c.that.client.family());
        }
        // %defaultroute resolves in the family of the other end's address.
        let mut both = cfg("192.0.2.1");
        both.interfaces.push(crate::pluto::Interface {
            addr: "2001:db8::1".parse().unwrap(),
            ..both.interfaces[0].clone()
        });
        both.defaultroute = Some(("192.0.2.1".parse().unwrap(), "192.0.2.254".parse().unwrap()));
        both.defaultroute6 = Some((
            "2001:db8::1".parse().unwrap(),
            "2001:db8::fe".parse().unwrap(),
        ));
        for (right, me, nh) in [
            ("2001:db8::2", "2001:db8::1", "2001:db8::fe"),
            ("192.0.2.2", "192.0.2.1", "192.0.2.254"),
        ] {
            let text = format!(
                "version 2\nconn net\n\tleft=%defaultroute\n\tright={right}\n\tauthby=secret\n\tauto=add\n"
            );
            let conf = IpsecConf::parse_str(&text, "/etc/ipsec.conf").unwrap();
            let c = Connection::from_section(conf.conn("net").unwrap(), &both).unwrap();
            assert_eq!(c.this.host, Some(me.parse().unwrap()));
            assert_eq!(c.this.nexthop, Some(nh.parse().unwrap()));
        }
        // A Road Warrior template says its family with hostaddrfamily= (Openswan).
        let text = "version 2\nconn net\n\tleft=%defaultroute\n\tright=%any\n\thostaddrfamily=ipv6\n\tauthby=secret\n\tauto=add\n";
        let conf = IpsecConf::parse_str(text, "/etc/ipsec.conf").unwrap();
        let c = Connection::from_section(conf.conn("net").unwrap(), &both).unwrap();
        assert_eq!(c.this.host, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(c.that.client, "::/128".parse().unwrap());
        let c = load("\tleft=2001:db8::1\n\tright=%any\n", "2001:db8::1").unwrap();
        assert_eq!(c.that.client, "::/128".parse().unwrap());
        assert_eq!(c.this.id.to_string(), "2001:db8::1");
        for (body, me, key, why) in [
            (
                "\tleft=2001:db8::1\n\tright=192.0.2.2\n",
                "2001:db8::1",
                "right=192.0.2.2",
                "not of the address family",
            ),
            (
                "\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=2001:db8:1::/64\n",
                "192.0.2.1",
                "rightsubnet",
                "different address families",
            ),
            (
                "\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftnexthop=2001:db8::fe\n",
                "192.0.2.1",
                "leftnexthop=2001:db8::fe",
                "not of the address family",
            ),
        ] {
            let e = load(body, me).expect_err("refused").1.to_string();
            assert!(e.starts_with("/etc/ipsec.conf:"), "{e}");
            assert!(e.contains(key) && e.contains(why), "{e}");
        }
    }
}
