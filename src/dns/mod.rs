//! A small DNS stub resolver for opportunistic encryption, sans-IO: the message codec
//! ([`message`]), the key records of OE ([`records`]), and [`Resolver`] — queries with
//! retransmission over the configured name servers, answers cached by their TTL, negative
//! answers (NXDOMAIN, no data) cached by the SOA's negative TTL (RFC 2308). The shell
//! (`shell::resolver`) owns the UDP socket and the thread; Pluto asks through it and never
//! waits for DNS.

pub mod message;
pub mod records;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddrV4;

pub use message::{DnsError, Rcode, Record, RrType};

/// Longest time an answer is cached (s), whatever its TTL says.
pub const MAX_CACHE_TTL: u32 = 24 * 3600;
/// Negative-caching time when the server gives no SOA (s).
pub const DEFAULT_NEGATIVE_TTL: u32 = 60;
/// Most cache entries (the oldest-expiring go first beyond it).
pub const MAX_CACHE: usize = 4096;
/// Most lookups in flight.
pub const MAX_PENDING: usize = 1024;
/// Time before a query is resent (ms); doubled each time.
pub const RETRY_MS: u64 = 1000;
/// Sends of one query before it times out.
pub const TRIES: u32 = 3;

/// A lookup's identity (chosen by the asker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The answer's records of the asked type (CNAMEs followed inside the answer).
    Answer(Vec<Record>),
    /// The name does not exist, or has no record of that type.
    NoRecord,
    /// The server answered with an error (SERVFAIL, REFUSED, …).
    ServerError(Rcode),
    /// No answer after every try.
    Timeout,
    /// The answer could not be parsed.
    Malformed(DnsError),
    /// No name server is configured.
    NoServer,
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Answer(r) => write!(f, "{} record(s)", r.len()),
            Lookup::NoRecord => f.write_str("no record"),
            Lookup::ServerError(r) => write!(f, "server error {r}"),
            Lookup::Timeout => f.write_str("timeout"),
            Lookup::Malformed(e) => write!(f, "malformed answer ({e})"),
            Lookup::NoServer => f.write_str("no name server"),
        }
    }
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverOutput {
    /// Send this query to that server.
    Send {
        /// The name server.
        server: SocketAddrV4,
        /// The query.
        data: Vec<u8>,
    },
    /// A lookup is over.
    Done {
        /// Its id.
        id: LookupId,
        /// The name asked.
        name: String,
        /// The type asked.
        qtype: RrType,
        /// The outcome.
        result: Lookup,
    },
}

struct Pending {
    ids: Vec<LookupId>,
    name: String,
    qtype: RrType,
    wire_id: u16,
    tries: u32,
    server: usize,
    next_ms: u64,
}

struct Cached {
    expires_ms: u64,
    result: Lookup,
}

/// The sans-IO resolver.
pub struct Resolver {
    servers: Vec<SocketAddrV4>,
    cache: HashMap<(String, RrType), Cached>,
    pending: BTreeMap<u16, Pending>,
    out: VecDeque<ResolverOutput>,
    next_wire_id: u16,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("servers", &self.servers)
            .field("cached", &self.cache.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Resolver {
    /// A resolver asking `servers` in turn; `seed` starts the query IDs (randomize it).
    pub fn new(servers: Vec<SocketAddrV4>, seed: u16) -> Resolver {
        Resolver {
            servers,
            cache: HashMap::new(),
            pending: BTreeMap::new(),
            out: VecDeque::new(),
            next_wire_id: seed,
        }
    }

    /// The name servers.
    pub fn servers(&self) -> &[SocketAddrV4] {
        &self.servers
    }

    fn done(&mut self, id: LookupId, name: &str, qtype: RrType, result: Lookup) {
        self.out.push_back(ResolverOutput::Done {
            id,
            name: name.to_string(),
            qtype,
            result,
        });
    }

    /// Starts a lookup of `name`/`qtype`: answered at once from the cache, joined to an
    /// identical lookup in flight, or sent.
    pub fn lookup(&mut self, now_ms: u64, id: LookupId, name: &str, qtype: RrType) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let key = (name.clone(), qtype);
        if let Some(c) = self.cache.get(&key) {
            if c.expires_ms > now_ms {
                let r = c.result.clone();
                self.done(id, &name, qtype, r);
                return;
            }
            self.cache.remove(&key);
        }
        if self.servers.is_empty() {
            self.done(id, &name, qtype, Lookup::NoServer);
            return;
        }
        if let Some(p) = self
            .pending
            .values_mut()
            .find(|p| p.name == name && p.qtype == qtype)
        {
            p.ids.push(id);
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.done(id, &name, qtype, Lookup::Timeout);
            return;
        }
        let wire_id = self.fresh_wire_id();
        let data = match message::build_query(wire_id, &name, qtype) {
            Ok(d) => d,
            Err(e) => {
                self.done(id, &name, qtype, Lookup::Malformed(e));
                return;
            }
        };
        self.out.push_back(ResolverOutput::Send {
            server: self.servers[0],
            data,
        });
        self.pending.insert(
            wire_id,
            Pending {
                ids: vec![id],
                name,
                qtype,
                wire_id,
                tries: 1,
                server: 0,
                next_ms: now_ms + RETRY_MS,
            },
        );
    }

    fn fresh_wire_id(&mut self) -> u16 {
        loop {
            // An odd step through the 16-bit space visits every ID.
            self.next_wire_id = self.next_wire_id.wrapping_add(40503);
            if !self.pending.contains_key(&self.next_wire_id) {
                return self.next_wire_id;
            }
        }
    }

    /// A datagram from `from`. Answers to nothing we asked (wrong server, ID or question)
    /// are ignored and reported as `Err` (the shell counts and logs them, rate-limited).
    pub fn handle_datagram(
        &mut self,
        now_ms: u64,
        from: SocketAddrV4,
        data: &[u8],
    ) -> Result<(), DnsError> {
        if data.len() < 2 {
            return Err(DnsError::Truncated);
        }
        let wire_id = u16::from_be_bytes([data[0], data[1]]);
        let Some(p) = self.pending.get(&wire_id) else {
            return Err(DnsError::NotOurs);
        };
        if !self.servers.contains(&from) {
            return Err(DnsError::NotOurs);
        }
        let mut neg_ttl = None;
        let result = match message::parse_response(data, wire_id, &p.name, p.qtype) {
            Err(DnsError::NotOurs) => return Err(DnsError::NotOurs),
            Err(e) => Lookup::Malformed(e),
            Ok(r) => {
                neg_ttl = r.negative_ttl;
                interpret(&p.name, p.qtype, r)
            }
        };
        let Some(p) = self.pending.remove(&wire_id) else {
            return Ok(());
        };
        let malformed = match &result {
            Lookup::Malformed(e) => Some(e.clone()),
            _ => None,
        };
        let ttl = match &result {
            Lookup::Answer(recs) => recs.iter().map(|r| r.ttl).min(),
            Lookup::NoRecord => Some(neg_ttl.unwrap_or(DEFAULT_NEGATIVE_TTL)),
            _ => None,
        };
        if let Some(ttl) = ttl {
            self.cache_put(now_ms, &p.name, p.qtype, ttl, result.clone());
        }
        for id in p.ids {
            self.done(id, &p.name, p.qtype, result.clone());
        }
        match malformed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn cache_put(&mut self, now_ms: u64, name: &str, qtype: RrType, ttl: u32, result: Lookup) {
        if ttl == 0 {
            return;
        }
        if self.cache.len() >= MAX_CACHE {
            self.cache.retain(|_, c| c.expires_ms > now_ms);
            if self.cache.len() >= MAX_CACHE {
                if let Some(k) = self
                    .cache
                    .iter()
                    .min_by_key(|(_, c)| c.expires_ms)
                    .map(|(k, _)| k.clone())
                {
                    self.cache.remove(&k);
                }
            }
        }
        let ttl = u64::from(ttl.min(MAX_CACHE_TTL));
        self.cache.insert(
            (name.to_string(), qtype),
            Cached {
                expires_ms: now_ms + ttl * 1000,
                result,
            },
        );
    }

    /// When [`Resolver::handle_timeout`] wants to run (ms).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pending.values().map(|p| p.next_ms).min()
    }

    /// Resends overdue queries (to the next server) and times out those out of tries.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let due: Vec<u16> = self
            .pending
            .values()
            .filter(|p| p.next_ms <= now_ms)
            .map(|p| p.wire_id)
            .collect();
        for w in due {
            let Some(mut p) = self.pending.remove(&w) else {
                continue;
            };
            if p.tries >= TRIES {
                for id in std::mem::take(&mut p.ids) {
                    self.done(id, &p.name, p.qtype, Lookup::Timeout);
                }
                continue;
            }
            p.server = (p.server + 1) % self.servers.len().max(1);
            p.next_ms = now_ms + (RETRY_MS << p.tries);
            p.tries += 1;
            if let Ok(data) = message::build_query(p.wire_id, &p.name, p.qtype) {
                self.out.push_back(ResolverOutput::Send {
                    server: self.servers[p.server],
                    data,
                });
            }
            self.pending.insert(w, p);
        }
    }

    /// Takes the next output.
    pub fn poll_output(&mut self) -> Option<ResolverOutput> {
        self.out.pop_front()
    }
}

/// The records of the asked type for `name` (following CNAMEs inside the answer), or why
/// there are none.
fn interpret(name: &str, qtype: RrType, r: message::Response) -> Lookup {
    match r.rcode {
        Rcode::NoError => {}
        Rcode::NxDomain => return Lookup::NoRecord,
        e => return Lookup::ServerError(e),
    }
    let mut owner = name.to_string();
    for _ in 0..8 {
        match r
            .answers
            .iter()
            .find(|a| a.name == owner && a.rtype == RrType::Cname)
            .and_then(|a| a.target.clone())
        {
            Some(t) => owner = t,
            None => break,
        }
    }
    let recs: Vec<Record> = r
        .answers
        .into_iter()
        .filter(|a| a.name == owner && a.rtype == qtype)
        .collect();
    if recs.is_empty() {
        Lookup::NoRecord
    } else {
        Lookup::Answer(recs)
    }
}

/// The name servers of a `resolv.conf` text (IPv4 `nameserver` lines, port 53), in order.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddrV4> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
                .map(|a| SocketAddrV4::new(a, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::message::tests::response;
    use super::*;

    const NS: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 9, 9, 9), 53);

    fn sent(r: &mut Resolver) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(o) = r.poll_output() {
            if let ResolverOutput::Send { data, .. } = o {
                v.push(data);
            }
        }
        v
    }

    fn done(r: &mut Resolver) -> Vec<(LookupId, Lookup)> {
        let mut v = Vec::new();
        while let Some(o) = r.poll_output() {
            if let ResolverOutput::Done { id, result, .. } = o {
                v.push((id, result));
            }
        }
        v
    }

    #[test]
    fn answer_is_cached_by_ttl_and_joined_lookups_share_it() {
        let mut r = Resolver::new(vec![NS], 1);
        r.lookup(0, LookupId(1), "X.example.", RrType::Txt);
        r.lookup(10, LookupId(2), "x.example", RrType::Txt);
        let q = sent(&mut r);
        assert_eq!(q.len(), 1, "one query for both lookups");
        let id = u16::from_be_bytes([q[0][0], q[0][1]]);
        let ans = response(
            id,
            "x.example",
            RrType::Txt,
            0,
            &[(RrType::Txt, 30, b"\x01a".to_vec())],
        );
        // From somewhere else: ignored.
        let other = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 53);
        assert!(r.handle_datagram(20, other, &ans).is_err());
        r.handle_datagram(20, NS, &ans).unwrap();
        let d = done(&mut r);
        assert_eq!(d.len(), 2);
        assert!(matches!(&d[0].1, Lookup::Answer(a) if a.len() == 1));
        // Cached for 30 s.
        r.lookup(29_000, LookupId(3), "x.example", RrType::Txt);
        assert!(matches!(
            &done(&mut r)[..],
            [(LookupId(3), Lookup::Answer(_))]
        ));
        r.lookup(31_000, LookupId(4), "x.example", RrType::Txt);
        assert_eq!(sent(&mut r).len(), 1, "expired: asked again");
    }

    #[test]
    fn negative_answers_are_cached_failures_are_not() {
        let mut r = Resolver::new(vec![NS], 7);
        r.lookup(0, LookupId(1), "n.example", RrType::Key);
        let q = sent(&mut r);
        let id = u16::from_be_bytes([q[0][0], q[0][1]]);
        r.handle_datagram(1, NS, &response(id, "n.example", RrType::Key, 3, &[]))
            .unwrap();
        assert_eq!(done(&mut r), vec![(LookupId(1), Lookup::NoRecord)]);
        r.lookup(2, LookupId(2), "n.example", RrType::Key);
        assert_eq!(done(&mut r), vec![(LookupId(2), Lookup::NoRecord)]);
        // SERVFAIL: reported, not cached.
        r.lookup(3, LookupId(3), "s.example", RrType::Txt);
        let q = sent(&mut r);
        let id = u16::from_be_bytes([q[0][0], q[0][1]]);
        r.handle_datagram(4, NS, &response(id, "s.example", RrType::Txt, 2, &[]))
            .unwrap();
        assert_eq!(
            done(&mut r),
            vec![(LookupId(3), Lookup::ServerError(Rcode::ServFail))]
        );
        r.lookup(5, LookupId(4), "s.example", RrType::Txt);
        assert_eq!(sent(&mut r).len(), 1);
    }

    #[test]
    fn retries_then_timeout_and_no_server() {
        let mut r = Resolver::new(vec![NS], 3);
        r.lookup(0, LookupId(1), "t.example", RrType::Txt);
        assert_eq!(sent(&mut r).len(), 1);
        let mut now = 0;
        let mut sends = 1;
        while let Some(t) = r.poll_timeout() {
            now = t;
            r.handle_timeout(now);
            sends += sent(&mut r).len();
            if now > 60_000 {
                break;
            }
        }
        assert_eq!(sends as u32, TRIES);
        r.handle_timeout(now);
        let mut r2 = Resolver::new(vec![], 0);
        r2.lookup(0, LookupId(9), "x", RrType::Txt);
        assert_eq!(done(&mut r2), vec![(LookupId(9), Lookup::NoServer)]);
    }

    #[test]
    fn cname_is_followed_and_malformed_is_reported() {
        let mut r = Resolver::new(vec![NS], 5);
        r.lookup(0, LookupId(1), "c.example", RrType::Txt);
        let q = sent(&mut r);
        let id = u16::from_be_bytes([q[0][0], q[0][1]]);
        // CNAME c.example -> t.example (target written uncompressed), then the TXT of t.example.
        let mut m = response(
            id,
            "c.example",
            RrType::Txt,
            0,
            &[(RrType::Cname, 60, b"\x01t\x07example\x00".to_vec())],
        );
        m[7] = 2;
        let t_off = m.len() - 11;
        m.extend_from_slice(&[0xc0, t_off as u8, 0, 16, 0, 1, 0, 0, 0, 60, 0, 2, 1, b'z']);
        r.handle_datagram(1, NS, &m).unwrap();
        match &done(&mut r)[..] {
            [(_, Lookup::Answer(a))] => assert_eq!(a[0].name, "t.example"),
            d => panic!("{d:?}"),
        }
        r.lookup(2, LookupId(2), "m.example", RrType::Txt);
        let q = sent(&mut r);
        let id = u16::from_be_bytes([q[0][0], q[0][1]]);
        let mut bad = response(
            id,
            "m.example",
            RrType::Txt,
            0,
            &[(RrType::Txt, 1, vec![1, 2])],
        );
        bad.truncate(bad.len() - 1);
        assert!(r.handle_datagram(3, NS, &bad).is_err());
        assert!(matches!(&done(&mut r)[..], [(_, Lookup::Malformed(_))]));
    }

    #[test]
    fn resolv_conf() {
        let t =
            "# c\nsearch example\nnameserver 10.0.0.53\nnameserver ::1\nnameserver 10.0.0.54 # x\n";
        assert_eq!(
            parse_resolv_conf(t),
            vec![
                SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 53), 53),
                SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 54), 53)
            ]
        );
    }
}
