//! The key records of opportunistic encryption: FreeS/WAN's TXT `X-IPsec-Server(PREF)=GW KEY`
//! (2.01+), the KEY record `0x4200 4 1 KEY` (RFC 2535 with an RFC 3110 RSA key; FreeS/WAN 1.x
//! OE), and RFC 4025's IPSECKEY (RFC 4322 OE). Keys come out as RFC 3110 blobs; whether a blob
//! is a usable RSA key is checked where it is used.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::message::DnsError;

/// Longest TXT content accepted (all character-strings of one record joined).
const MAX_TXT: usize = 8192;

/// Where the security gateway of a destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gateway {
    /// No gateway (IPSECKEY gateway type 0): the destination itself.
    None,
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (rswan negotiates over IPv4 only: such a record is not usable).
    Ipv6(Ipv6Addr),
    /// A domain name (`@gw.example.com` in TXT; IPSECKEY type 3).
    Fqdn(String),
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gateway::None => f.write_str("(none)"),
            Gateway::Ipv4(a) => write!(f, "{a}"),
            Gateway::Ipv6(a) => write!(f, "{a}"),
            Gateway::Fqdn(n) => write!(f, "@{n}"),
        }
    }
}

/// A FreeS/WAN TXT record `X-IPsec-Server(PREF)=GW [KEY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecServer {
    /// Preference, lowest first.
    pub pref: u16,
    /// The gateway.
    pub gateway: Gateway,
    /// The gateway's RSA public key (RFC 3110 blob), if the record carries one.
    pub key: Option<Vec<u8>>,
}

/// An RFC 4025 IPSECKEY record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecKey {
    /// Precedence, lowest first.
    pub precedence: u8,
    /// The gateway.
    pub gateway: Gateway,
    /// Public key algorithm: 1 DSA, 2 RSA, 0 none.
    pub algorithm: u8,
    /// The public key (RFC 3110 blob for RSA); may be empty.
    pub key: Vec<u8>,
}

/// IPSECKEY algorithm number of RSA keys (RFC 4025 §2.4).
pub const IPSECKEY_RSA: u8 = 2;

/// The character-strings of a TXT record (RFC 1035 §3.3.14) joined with a space between
/// them: a record split at its key reads the same whether the split kept the space (as
/// `ipsec showhostkey --txt` prints it) or a zone tool trimmed it.
pub fn parse_txt(rdata: &[u8]) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < rdata.len() {
        let len = rdata[p] as usize;
        let s = rdata
            .get(p + 1..p + 1 + len)
            .ok_or(DnsError::BadRdata("TXT string runs past the record"))?;
        if p > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(s);
        if out.len() > MAX_TXT {
            return Err(DnsError::BadRdata("TXT record too long"));
        }
        p += 1 + len;
    }
    Ok(out)
}

fn decode_base64(s: &str) -> Result<Vec<u8>, DnsError> {
    let b = crate::config::ttodata::ttodata(&format!("0s{s}"))
        .map_err(|_| DnsError::BadRdata("key is not base64"))?;
    if b.is_empty() {
        return Err(DnsError::BadRdata("empty key"));
    }
    Ok(b)
}

/// Parses FreeS/WAN's TXT content. `Ok(None)`: not an `X-IPsec-Server` record (other TXT
/// records are ignored); `Err`: one that is malformed.
pub fn parse_ipsec_server(txt: &[u8]) -> Result<Option<IpsecServer>, DnsError> {
    const TAG: &str = "x-ipsec-server(";
    let Ok(text) = std::str::from_utf8(txt) else {
        return Ok(None);
    };
    let text = text.trim();
    // Compared as bytes: the text may hold multi-byte characters where the tag would end.
    if text.len() < TAG.len() || !text.as_bytes()[..TAG.len()].eq_ignore_ascii_case(TAG.as_bytes())
    {
        return Ok(None);
    }
    // The tag is ASCII, so the byte after it is a character boundary.
    let rest = &text[TAG.len()..];
    let (pref, rest) = rest
        .split_once(")=")
        .ok_or(DnsError::BadRdata("X-IPsec-Server: expected (PREF)="))?;
    let pref: u16 = pref
        .trim()
        .parse()
        .map_err(|_| DnsError::BadRdata("X-IPsec-Server: preference is not 0..65535"))?;
    let mut words = rest.split_whitespace();
    let gw = words
        .next()
        .ok_or(DnsError::BadRdata("X-IPsec-Server: no gateway"))?;
    let gateway = if let Some(n) = gw.strip_prefix('@') {
        if n.is_empty() || n.len() > 253 {
            return Err(DnsError::BadRdata("X-IPsec-Server: bad gateway name"));
        }
        Gateway::Fqdn(n.trim_end_matches('.').to_ascii_lowercase())
    } else if let Ok(a) = gw.parse::<Ipv4Addr>() {
        Gateway::Ipv4(a)
    } else if let Ok(a) = gw.parse::<Ipv6Addr>() {
        Gateway::Ipv6(a)
    } else {
        return Err(DnsError::BadRdata(
            "X-IPsec-Server: gateway is not an address or @name",
        ));
    };
    // The key may have been split across character-strings (joined with or without a space).
    let key: String = words.collect();
    let key = if key.is_empty() {
        None
    } else {
        Some(decode_base64(key.strip_prefix("0s").unwrap_or(&key))?)
    };
    Ok(Some(IpsecServer { pref, gateway, key }))
}

/// Parses a KEY record (RFC 2535 §3.1) as FreeS/WAN published them, `0x4200 4 1 KEY`:
/// protocol IPsec (4) or any (255), algorithm RSA (1). Returns the RFC 3110 blob.
pub fn parse_key(rdata: &[u8]) -> Result<Vec<u8>, DnsError> {
    let [f0, f1, proto, alg, key @ ..] = rdata else {
        return Err(DnsError::BadRdata("KEY record too short"));
    };
    let flags = u16::from_be_bytes([*f0, *f1]);
    if flags & 0xc000 == 0xc000 {
        return Err(DnsError::BadRdata("KEY record says there is no key"));
    }
    if !matches!(proto, 4 | 255) {
        return Err(DnsError::BadRdata("KEY record is not for IPsec"));
    }
    if *alg != 1 {
        return Err(DnsError::BadRdata("KEY record is not an RSA key"));
    }
    if key.is_empty() {
        return Err(DnsError::BadRdata("KEY record without key"));
    }
    Ok(key.to_vec())
}

/// Parses an IPSECKEY record (RFC 4025 §2).
pub fn parse_ipseckey(rdata: &[u8]) -> Result<IpsecKey, DnsError> {
    let [precedence, gtype, algorithm, rest @ ..] = rdata else {
        return Err(DnsError::BadRdata("IPSECKEY record too short"));
    };
    let (gateway, key) = match gtype {
        0 => (Gateway::None, rest),
        1 => {
            let (a, k) = rest
                .split_first_chunk::<4>()
                .ok_or(DnsError::BadRdata("IPSECKEY: truncated IPv4 gateway"))?;
            (Gateway::Ipv4(Ipv4Addr::from(*a)), k)
        }
        2 => {
            let (a, k) = rest
                .split_first_chunk::<16>()
                .ok_or(DnsError::BadRdata("IPSECKEY: truncated IPv6 gateway"))?;
            (Gateway::Ipv6(Ipv6Addr::from(*a)), k)
        }
        3 => {
            // An uncompressed wire-format name.
            let mut p = 0;
            let mut labels = Vec::new();
            loop {
                let len = *rest
                    .get(p)
                    .ok_or(DnsError::BadRdata("IPSECKEY: truncated gateway name"))?
                    as usize;
                if len == 0 {
                    p += 1;
                    break;
                }
                if len > 63 {
                    return Err(DnsError::BadRdata("IPSECKEY: bad gateway name"));
                }
                let l = rest
                    .get(p + 1..p + 1 + len)
                    .ok_or(DnsError::BadRdata("IPSECKEY: truncated gateway name"))?;
                labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
                p += 1 + len;
                if p > 255 {
                    return Err(DnsError::BadRdata("IPSECKEY: gateway name too long"));
                }
            }
            (Gateway::Fqdn(labels.join(".")), &rest[p..])
        }
        _ => return Err(DnsError::BadRdata("IPSECKEY: unknown gateway type")),
    };
    if *algorithm == 0 && !key.is_empty() {
        return Err(DnsError::BadRdata("IPSECKEY: key without algorithm"));
    }
    Ok(IpsecKey {
        precedence: *precedence,
        gateway,
        algorithm: *algorithm,
        key: key.to_vec(),
    })
}

/// The IPSECKEY rdata for `gateway` (IPv4 or none) and an RSA key blob.
pub fn ipseckey_rdata(precedence: u8, gateway: Option<Ipv4Addr>, blob: &[u8]) -> Vec<u8> {
    let mut v = vec![
        precedence,
        if gateway.is_some() { 1 } else { 0 },
        IPSECKEY_RSA,
    ];
    if let Some(g) = gateway {
        v.extend_from_slice(&g.octets());
    }
    v.extend_from_slice(blob);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(strings: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for s in strings {
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v
    }

    #[test]
    fn a_multibyte_character_where_the_tag_ends_is_not_a_record() {
        // 14 ASCII bytes, then a two-byte character straddling the 15-byte tag's end.
        let txt = "X-IPsec-Server\u{780}1)=192.0.2.1";
        assert!(matches!(parse_ipsec_server(txt.as_bytes()), Ok(None)));
    }

    #[test]
    fn txt_records() {
        let t = parse_txt(&txt(&["X-IPsec-Server(10)=192.0.2.1", " AQOF8tZ2"])).unwrap();
        let s = parse_ipsec_server(&t).unwrap().unwrap();
        assert_eq!(s.pref, 10);
        // Split inside the key, the space trimmed: the same record.
        let t2 = parse_txt(&txt(&["X-IPsec-Server(10)=192.0.2.1", "AQOF", "8tZ2"])).unwrap();
        assert_eq!(parse_ipsec_server(&t2).unwrap().unwrap(), s);
        assert_eq!(s.gateway, Gateway::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(s.key.as_deref().map(<[u8]>::len), Some(6));
        let s = parse_ipsec_server(b"x-ipsec-server(0)=@GW.Example.com.")
            .unwrap()
            .unwrap();
        assert_eq!(s.gateway, Gateway::Fqdn("gw.example.com".into()));
        assert_eq!(s.key, None);
        let s = parse_ipsec_server(b"X-IPsec-Server(65535)=2001:db8::1 AQID")
            .unwrap()
            .unwrap();
        assert!(matches!(s.gateway, Gateway::Ipv6(_)));
        assert_eq!(parse_ipsec_server(b"v=spf1 -all"), Ok(None));
        // A multi-byte character across the tag's length is not a panic.
        assert_eq!(
            parse_ipsec_server("X-IPsec-Server\u{e9}x".as_bytes()),
            Ok(None)
        );
        assert_eq!(parse_ipsec_server(&[0xff, 0xfe]), Ok(None));
        for bad in [
            &b"X-IPsec-Server(10)"[..],
            b"X-IPsec-Server(70000)=192.0.2.1",
            b"X-IPsec-Server(x)=192.0.2.1",
            b"X-IPsec-Server(10)=",
            b"X-IPsec-Server(10)=gw.example.com",
            b"X-IPsec-Server(10)=192.0.2.1 !!!notbase64",
        ] {
            assert!(
                parse_ipsec_server(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_txt(&[5, b'a']).is_err());
        assert_eq!(parse_txt(&[]).unwrap(), b"");
    }

    #[test]
    fn key_records() {
        let mut k = vec![0x42, 0x00, 4, 1];
        k.extend_from_slice(&[1, 3, 0xaa, 0xbb]);
        assert_eq!(parse_key(&k).unwrap(), vec![1, 3, 0xaa, 0xbb]);
        assert!(parse_key(&k[..4]).is_err());
        assert!(parse_key(&[0x42, 0, 3, 1, 1]).is_err(), "DNSSEC key");
        assert!(parse_key(&[0x42, 0, 4, 3, 1]).is_err(), "DSA key");
        assert!(parse_key(&[0xc2, 0, 4, 1, 1]).is_err(), "no-key flag");
        assert!(parse_key(&[]).is_err());
    }

    #[test]
    fn ipseckey_records() {
        let blob = [1, 3, 0xcc, 0xdd];
        let r = ipseckey_rdata(10, Some(Ipv4Addr::new(192, 0, 2, 2)), &blob);
        let k = parse_ipseckey(&r).unwrap();
        assert_eq!(k.precedence, 10);
        assert_eq!(k.gateway, Gateway::Ipv4(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(k.algorithm, IPSECKEY_RSA);
        assert_eq!(k.key, blob);
        let none = parse_ipseckey(&ipseckey_rdata(1, None, &blob)).unwrap();
        assert_eq!(none.gateway, Gateway::None);
        let mut named = vec![5, 3, 2, 2, b'g', b'w', 3, b'C', b'o', b'm', 0];
        named.extend_from_slice(&blob);
        assert_eq!(
            parse_ipseckey(&named).unwrap().gateway,
            Gateway::Fqdn("gw.com".into())
        );
        let mut v6 = vec![5, 2, 2];
        v6.extend_from_slice(&[0u8; 16]);
        assert!(matches!(
            parse_ipseckey(&v6).unwrap().gateway,
            Gateway::Ipv6(_)
        ));
        for bad in [
            &[1u8, 1][..],
            &[1, 1, 2, 192, 0],
            &[1, 2, 2, 0, 0, 0],
            &[1, 3, 2, 3, b'a'],
            &[1, 3, 2, 64],
            &[1, 4, 2, 0],
            &[1, 0, 0, 1],
        ] {
            assert!(parse_ipseckey(bad).is_err(), "{bad:?}");
        }
    }
}
