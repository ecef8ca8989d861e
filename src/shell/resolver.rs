//! The DNS resolver thread: owns the sans-IO [`crate::dns::Resolver`] and a UDP socket, takes
//! lookups from the keying thread and hands the outcomes back, so Pluto never waits for DNS.
//! The socket carries rswan's mark (no fail-closed table) and, unless the name server is on
//! loopback, is bound to the physical interface of the default route: a policy group that
//! routes `0.0.0.0/0` into ipsecN must not trap rswan's own DNS queries (FreeS/WAN's users had
//! to list their name servers in the `clear` group for that).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
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

/// What the resolver thread is woken for.
#[derive(Debug)]
enum Msg {
    Query(Query),
    Datagram(SocketAddrV4, Vec<u8>),
}

/// Handle on the resolver thread.
#[derive(Debug, Clone)]
pub struct ResolverHandle {
    tx: Sender<Msg>,
    /// Outcomes of lookups, in the order they end.
    pub answers: Receiver<Answer>,
    servers: Vec<SocketAddrV4>,
}

impl ResolverHandle {
    /// Asks for `name`/`qtype`; the outcome arrives on [`ResolverHandle::answers`]. When the
    /// queue is full the lookup ends at once as a timeout.
    pub fn lookup(&self, id: LookupId, name: String, qtype: RrType) -> Option<Answer> {
        match self.tx.try_send(Msg::Query(Query {
            id,
            name: name.clone(),
            qtype,
        })) {
            Ok(()) => None,
            Err(_) => Some(Answer {
                id,
                name,
                qtype,
                result: Lookup::Timeout,
            }),
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
    let sock: std::net::UdpSocket = sock.into();
    let (qtx, qrx) = bounded::<Msg>(1024);
    let (atx, arx) = bounded::<Answer>(1024);
    let list = servers.clone();
    // The reader hands datagrams to the resolver thread through the query channel, so the
    // resolver sleeps on one channel and a query is sent the moment it is asked.
    let reader = sock.try_clone()?;
    let dtx = qtx.clone();
    std::thread::Builder::new()
        .name("dns-r".into())
        .spawn(move || {
            let mut buf = vec![0u8; crate::dns::message::MAX_MESSAGE];
            loop {
                if let Ok((n, SocketAddr::V4(from))) = reader.recv_from(&mut buf) {
                    if dtx.send(Msg::Datagram(from, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        })?;
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
    msgs: Receiver<Msg>,
    answers: Sender<Answer>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) {
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut r = Resolver::new(servers, rand::random::<u16>());
    let mut limiter: RateLimiter<std::net::IpAddr> = crate::pluto::limits::unauth_log_limiter();
    loop {
        let wait = r
            .poll_timeout()
            .map_or(1000, |t| t.saturating_sub(now()))
            .min(1000);
        match msgs.recv_timeout(Duration::from_millis(wait)) {
            Ok(Msg::Query(q)) => r.lookup(now(), q.id, &q.name, q.qtype),
            Ok(Msg::Datagram(from, data)) => {
                if let Err(e) = r.handle_datagram(now(), from, &data) {
                    let ip = std::net::IpAddr::from(*from.ip());
                    if limiter.allow(now(), &ip) {
                        log(&format!("dns: answer from {from} ignored: {e}"));
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if r.poll_timeout().is_some_and(|t| t <= now()) {
            r.handle_timeout(now());
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
    }
}
