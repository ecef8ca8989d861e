//! The DNS resolver thread: owns the sans-IO [`crate::dns::Resolver`] and a UDP socket, takes
//! lookups from the keying thread and hands the outcomes back, so Pluto never waits for DNS.
//! The socket carries rswan's mark (no fail-closed table) and, unless the name server is on
//! loopback, is bound to the physical interface of the default route: a policy group that
//! routes `0.0.0.0/0` into ipsecN must not trap rswan's own DNS queries (FreeS/WAN's users had
//! to list their name servers in the `clear` group for that).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::dns::{Lookup, LookupId, Resolver, ResolverOutput, RrType};
use crate::ratelimit::RateLimiter;

/// A lookup for the resolver thread.
#[derive(Debug, Clone)]
struct Query {
    id: LookupId,
    name: String,
    qtype: RrType,
}

/// The outcome of a lookup, for the keying thread.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The lookup's id.
    pub id: LookupId,
    /// The name asked.
    pub name: String,
    /// The type asked.
    pub qtype: RrType,
    /// The outcome.
    pub result: Lookup,
}

/// Handle on the resolver thread.
#[derive(Debug, Clone)]
pub struct ResolverHandle {
    tx: Sender<Query>,
    /// Outcomes of lookups, in the order they end.
    pub answers: Receiver<Answer>,
    servers: Vec<SocketAddrV4>,
}

impl ResolverHandle {
    /// Asks for `name`/`qtype`; the outcome arrives on [`ResolverHandle::answers`]. When the
    /// queue is full the lookup ends at once as a timeout.
    pub fn lookup(&self, id: LookupId, name: String, qtype: RrType) -> Option<Answer> {
        match self.tx.try_send(Query { id, name, qtype }) {
            Ok(()) => None,
            Err(e) => {
                let q = e.into_inner();
                Some(Answer {
                    id: q.id,
                    name: q.name,
                    qtype: q.qtype,
                    result: Lookup::Timeout,
                })
            }
        }
    }

    /// The name servers asked.
    pub fn servers(&self) -> &[SocketAddrV4] {
        &self.servers
    }
}

/// The name servers: `setup` (`dnsserver=ADDR[:PORT] …`, an rswan keyword) else
/// `/etc/resolv.conf` (IPv4 `nameserver` lines).
pub fn name_servers(setting: Option<&str>) -> Result<Vec<SocketAddrV4>, String> {
    if let Some(s) = setting.filter(|s| !s.trim().is_empty()) {
        return s
            .split_whitespace()
            .map(|w| {
                w.parse::<SocketAddrV4>()
                    .or_else(|_| w.parse::<Ipv4Addr>().map(|a| SocketAddrV4::new(a, 53)))
                    .map_err(|_| format!("dnsserver: \"{w}\" is not ADDR or ADDR:PORT"))
            })
            .collect();
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    Ok(crate::dns::parse_resolv_conf(&text))
}

/// Starts the resolver thread for `servers`, its socket bound to `device` (the default
/// route's interface) unless every server is on loopback. `log` writes a log line.
pub fn start(
    servers: Vec<SocketAddrV4>,
    device: Option<&str>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) -> std::io::Result<ResolverHandle> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_mark(super::netlink::RSWAN_MARK)?;
    if let Some(dev) = device.filter(|_| servers.iter().any(|s| !s.ip().is_loopback())) {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    sock.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let sock: std::net::UdpSocket = sock.into();
    let (qtx, qrx) = bounded::<Query>(1024);
    let (atx, arx) = bounded::<Answer>(1024);
    let list = servers.clone();
    std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || run(sock, servers, qrx, atx, log))?;
    Ok(ResolverHandle {
        tx: qtx,
        answers: arx,
        servers: list,
    })
}

fn run(
    sock: std::net::UdpSocket,
    servers: Vec<SocketAddrV4>,
    queries: Receiver<Query>,
    answers: Sender<Answer>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) {
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let seed = (std::process::id() as u16) ^ (now() as u16).wrapping_mul(31);
    let mut r = Resolver::new(servers, rand::random::<u16>() ^ seed);
    let mut limiter: RateLimiter<Ipv4Addr> = crate::pluto::limits::unauth_log_limiter();
    let mut buf = vec![0u8; crate::dns::message::MAX_MESSAGE];
    loop {
        loop {
            match queries.try_recv() {
                Ok(q) => r.lookup(now(), q.id, &q.name, q.qtype),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        while let Some(o) = r.poll_output() {
            match o {
                ResolverOutput::Send { server, data } => {
                    let _ = sock.send_to(&data, server);
                }
                ResolverOutput::Done {
                    id,
                    name,
                    qtype,
                    result,
                } => {
                    if answers
                        .send(Answer {
                            id,
                            name,
                            qtype,
                            result,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if let Ok((n, SocketAddr::V4(from))) = sock.recv_from(&mut buf) {
            if let Err(e) = r.handle_datagram(now(), from, &buf[..n]) {
                let ip = *from.ip();
                if limiter.allow(now(), &ip) {
                    log(&format!("dns: answer from {from} ignored: {e}"));
                }
            }
        }
        if r.poll_timeout().is_some_and(|t| t <= now()) {
            r.handle_timeout(now());
        }
    }
}
