//! DNS messages (RFC 1035 §4) as far as a stub resolver needs them: a query for one name and
//! type, and the answer section of a response (name compression followed with a bound on
//! pointer hops), with the SOA of the authority section for negative caching (RFC 2308).

use std::fmt;

/// Resource record types rswan asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RrType {
    /// `A` (1).
    A,
    /// `PTR` (12).
    Ptr,
    /// `TXT` (16).
    Txt,
    /// `KEY` (25, RFC 2535).
    Key,
    /// `SOA` (6): only read from the authority section.
    Soa,
    /// `CNAME` (5): followed inside one answer.
    Cname,
    /// `IPSECKEY` (45, RFC 4025).
    Ipseckey,
    /// Any other type (skipped).
    Other(u16),
}

impl RrType {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            RrType::A => 1,
            RrType::Cname => 5,
            RrType::Soa => 6,
            RrType::Ptr => 12,
            RrType::Txt => 16,
            RrType::Key => 25,
            RrType::Ipseckey => 45,
            RrType::Other(c) => c,
        }
    }

    /// From the wire value.
    pub fn from_code(c: u16) -> RrType {
        match c {
            1 => RrType::A,
            5 => RrType::Cname,
            6 => RrType::Soa,
            12 => RrType::Ptr,
            16 => RrType::Txt,
            25 => RrType::Key,
            45 => RrType::Ipseckey,
            c => RrType::Other(c),
        }
    }
}

impl fmt::Display for RrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RrType::A => f.write_str("A"),
            RrType::Cname => f.write_str("CNAME"),
            RrType::Soa => f.write_str("SOA"),
            RrType::Ptr => f.write_str("PTR"),
            RrType::Txt => f.write_str("TXT"),
            RrType::Key => f.write_str("KEY"),
            RrType::Ipseckey => f.write_str("IPSECKEY"),
            RrType::Other(c) => write!(f, "TYPE{c}"),
        }
    }
}

/// Why a DNS message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than its header or a record says.
    Truncated,
    /// A name label is longer than 63 bytes, a name longer than 255, or a pointer loops.
    BadName,
    /// Not a response, or not to our query (ID or question differ).
    NotOurs,
    /// TC bit: the answer did not fit in UDP (rswan does not retry over TCP).
    TruncatedResponse,
    /// A record's data is malformed for its type.
    BadRdata(&'static str),
    /// A name to ask for is not a valid DNS name.
    BadQueryName,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Truncated => f.write_str("message truncated"),
            DnsError::BadName => f.write_str("malformed name"),
            DnsError::NotOurs => f.write_str("not a response to our query"),
            DnsError::TruncatedResponse => f.write_str("response truncated (TC)"),
            DnsError::BadRdata(w) => write!(f, "malformed record data: {w}"),
            DnsError::BadQueryName => f.write_str("not a valid DNS name"),
        }
    }
}

impl std::error::Error for DnsError {}

/// Response codes (RFC 1035 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// NOERROR.
    NoError,
    /// FORMERR.
    FormErr,
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN.
    NxDomain,
    /// NOTIMP.
    NotImp,
    /// REFUSED.
    Refused,
    /// Anything else.
    Other(u8),
}

impl Rcode {
    fn from_code(c: u8) -> Rcode {
        match c {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            c => Rcode::Other(c),
        }
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rcode::NoError => f.write_str("NOERROR"),
            Rcode::FormErr => f.write_str("FORMERR"),
            Rcode::ServFail => f.write_str("SERVFAIL"),
            Rcode::NxDomain => f.write_str("NXDOMAIN"),
            Rcode::NotImp => f.write_str("NOTIMP"),
            Rcode::Refused => f.write_str("REFUSED"),
            Rcode::Other(c) => write!(f, "RCODE{c}"),
        }
    }
}

/// One resource record of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lower case, without the trailing dot.
    pub name: String,
    /// Type.
    pub rtype: RrType,
    /// Time to live (s).
    pub ttl: u32,
    /// Record data as on the wire (a compressed name inside is expanded for CNAME/PTR only).
    pub rdata: Vec<u8>,
    /// For CNAME and PTR: the target name.
    pub target: Option<String>,
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Response code.
    pub rcode: Rcode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Negative-caching TTL from the authority section's SOA (RFC 2308: min of its TTL and
    /// MINIMUM), if there is one.
    pub negative_ttl: Option<u32>,
}

/// Longest DNS message rswan reads over UDP (EDNS0 is not offered, so 512 suffices; a bit
/// of slack for servers that ignore that).
pub const MAX_MESSAGE: usize = 4096;
/// Most records of a response that are looked at.
const MAX_RECORDS: usize = 64;
/// Most compression pointers followed in one name.
const MAX_POINTERS: usize = 16;

/// Encodes `name` (dotted, optional trailing dot) in wire form.
pub fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(DnsError::BadQueryName);
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(DnsError::BadQueryName);
    }
    Ok(())
}

/// A standard query (RD set) for `name`/`qtype`, class IN.
pub fn build_query(id: u16, name: &str, qtype: RrType) -> Result<Vec<u8>, DnsError> {
    let mut m = Vec::with_capacity(12 + name.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut m)?;
    m.extend_from_slice(&qtype.code().to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    Ok(m)
}

fn u16_at(m: &[u8], i: usize) -> Result<u16, DnsError> {
    m.get(i..i + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated)
}

fn u32_at(m: &[u8], i: usize) -> Result<u32, DnsError> {
    m.get(i..i + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(DnsError::Truncated)
}

/// Reads the (possibly compressed) name at `pos`: (name lower case without trailing dot, the
/// position after it in the original stream).
pub fn read_name(m: &[u8], pos: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut p = pos;
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *m.get(p).ok_or(DnsError::Truncated)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let after = end.unwrap_or(p + 1);
                    return Ok((name, after));
                }
                let label = m.get(p + 1..p + 1 + len).ok_or(DnsError::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    // Keep names printable: anything odd is escaped as \DDD.
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                        name.push(b.to_ascii_lowercase() as char);
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                if name.len() > 1024 {
                    return Err(DnsError::BadName);
                }
                p += 1 + len;
            }
            0xc0 => {
                let off = (u16_at(m, p)? & 0x3fff) as usize;
                if end.is_none() {
                    end = Some(p + 2);
                }
                hops += 1;
                if hops > MAX_POINTERS || off >= m.len() {
                    return Err(DnsError::BadName);
                }
                p = off;
            }
            _ => return Err(DnsError::BadName),
        }
    }
}

/// Parses a response to query `id` for `name`/`qtype`: its rcode and answer records (any
/// type; the caller picks), bounded in number.
pub fn parse_response(m: &[u8], id: u16, name: &str, qtype: RrType) -> Result<Response, DnsError> {
    if m.len() < 12 {
        return Err(DnsError::Truncated);
    }
    if u16_at(m, 0)? != id || m[2] & 0x80 == 0 {
        return Err(DnsError::NotOurs);
    }
    if m[2] & 0x02 != 0 {
        return Err(DnsError::TruncatedResponse);
    }
    let rcode = Rcode::from_code(m[3] & 0x0f);
    let qd = u16_at(m, 4)?;
    let an = u16_at(m, 6)? as usize;
    let ns = u16_at(m, 8)? as usize;
    if qd != 1 {
        return Err(DnsError::NotOurs);
    }
    let (qname, mut p) = read_name(m, 12)?;
    let want = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if qname != want || u16_at(m, p)? != qtype.code() || u16_at(m, p + 2)? != 1 {
        return Err(DnsError::NotOurs);
    }
    p += 4;
    let mut answers = Vec::new();
    let mut negative_ttl = None;
    for i in 0..(an + ns).min(MAX_RECORDS) {
        let (owner, q) = read_name(m, p)?;
        let rtype = RrType::from_code(u16_at(m, q)?);
        let class = u16_at(m, q + 2)?;
        let ttl = u32_at(m, q + 4)?.min(i32::MAX as u32);
        let rdlen = u16_at(m, q + 8)? as usize;
        let rstart = q + 10;
        let rdata = m.get(rstart..rstart + rdlen).ok_or(DnsError::Truncated)?;
        p = rstart + rdlen;
        if class != 1 {
            continue;
        }
        if i < an {
            let target = match rtype {
                RrType::Cname | RrType::Ptr => {
                    let (t, after) = read_name(m, rstart)?;
                    if after > p {
                        return Err(DnsError::BadRdata("name runs past its record"));
                    }
                    Some(t)
                }
                _ => None,
            };
            answers.push(Record {
                name: owner,
                rtype,
                ttl,
                rdata: rdata.to_vec(),
                target,
            });
        } else if rtype == RrType::Soa {
            // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
            let (_, a) = read_name(m, rstart)?;
            let (_, b) = read_name(m, a)?;
            let minimum = u32_at(m, b + 16)?;
            if b + 20 > p {
                return Err(DnsError::BadRdata("SOA"));
            }
            negative_ttl = Some(ttl.min(minimum));
        }
    }
    Ok(Response {
        rcode,
        answers,
        negative_ttl,
    })
}

/// The reverse-map name of an IPv4 address (`4.3.2.1.in-addr.arpa`).
pub fn reverse_name(a: std::net::Ipv4Addr) -> String {
    let o = a.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response to `build_query(id, name, qtype)` with `answers` (type, ttl, rdata) for
    /// `name` (owner written as a pointer to the question).
    pub(crate) fn response(
        id: u16,
        name: &str,
        qtype: RrType,
        rcode: u8,
        answers: &[(RrType, u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut m = build_query(id, name, qtype).unwrap();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = answers.len() as u8;
        for (t, ttl, rdata) in answers {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.code().to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    #[test]
    fn query_layout() {
        let q = build_query(0x1234, "4.3.2.1.in-addr.arpa.", RrType::Txt).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(q[12], 1);
        assert_eq!(&q[q.len() - 4..], &[0, 16, 0, 1]);
        assert!(build_query(1, "a..b", RrType::A).is_err());
        assert!(build_query(1, &"a".repeat(64), RrType::A).is_err());
        assert!(build_query(1, &vec!["abcdefgh"; 40].join("."), RrType::A).is_err());
    }

    #[test]
    fn answers_soa_and_errors() {
        let r = response(
            7,
            "x.example",
            RrType::Txt,
            0,
            &[(RrType::Txt, 300, b"\x03abc".to_vec())],
        );
        let p = parse_response(&r, 7, "X.Example.", RrType::Txt).unwrap();
        assert_eq!(p.rcode, Rcode::NoError);
        assert_eq!(p.answers.len(), 1);
        assert_eq!(p.answers[0].name, "x.example");
        assert_eq!(p.answers[0].ttl, 300);
        assert_eq!(
            parse_response(&r, 8, "x.example", RrType::Txt),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            parse_response(&r, 7, "y.example", RrType::Txt),
            Err(DnsError::NotOurs)
        );
        for cut in 0..r.len() {
            assert!(
                parse_response(&r[..cut], 7, "x.example", RrType::Txt).is_err(),
                "{cut}"
            );
        }
        // NXDOMAIN with an SOA in the authority section: negative TTL = min(ttl, MINIMUM).
        let mut n = response(9, "n.example", RrType::Key, 3, &[]);
        n[9] = 1;
        n.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0x0e, 0x10]);
        let mut soa = Vec::new();
        soa.extend_from_slice(&[0xc0, 12, 0xc0, 12]);
        for v in [1u32, 2, 3, 4, 60] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        n.extend_from_slice(&(soa.len() as u16).to_be_bytes());
        n.extend_from_slice(&soa);
        let p = parse_response(&n, 9, "n.example", RrType::Key).unwrap();
        assert_eq!(p.rcode, Rcode::NxDomain);
        assert_eq!(p.negative_ttl, Some(60));
        // TC bit.
        let mut tc = r.clone();
        tc[2] |= 0x02;
        assert_eq!(
            parse_response(&tc, 7, "x.example", RrType::Txt),
            Err(DnsError::TruncatedResponse)
        );
    }

    #[test]
    fn pointer_loops_are_refused() {
        let mut r = response(1, "a", RrType::Txt, 0, &[(RrType::Txt, 1, vec![0])]);
        // Make the answer's owner pointer point at itself.
        let at = 12 + 3 + 4;
        r[at] = 0xc0;
        r[at + 1] = at as u8;
        assert_eq!(
            parse_response(&r, 1, "a", RrType::Txt),
            Err(DnsError::BadName)
        );
        assert_eq!(read_name(&[0x80], 0), Err(DnsError::BadName));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name(std::net::Ipv4Addr::new(192, 0, 2, 1)),
            "1.2.0.192.in-addr.arpa"
        );
    }
}
