//! The Pluto endpoint: connections, secrets, states, timers, SA installation and whack, with
//! datagrams dispatched to the IKEv1 engine ([`crate::pluto::ikev1`]). Sans-IO: inputs are
//! method calls with the time in milliseconds; outputs queue up for [`Pluto::poll_output`].

use crate::pluto::ids::{SerialNo, WhackClient};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::addr::Subnet;
use crate::config::conf::{ConfError, IpsecConf};
use crate::config::secrets::{Id, Secrets};
use crate::klips::{Acquire, SaEvent};
use crate::pluto::crypto::{PrivateKey, PrivateKeyParts};
use crate::pluto::ikev1::state::{Event, Family, State, StateKind};
use crate::pluto::isakmp::natt::{add_non_esp_marker, NAT_T_PORT};
use crate::pluto::isakmp::{ExchangeType, Header, ParseError};
use crate::ratelimit::RateLimiter;
use crate::sadb::{Dir, KeyBytes, SaSpec, UdpEncap, XformSpec};
use crate::said::{Proto, Said, Shunt};
use crate::updown::Verb;

use super::connection::{Auto, ConnType, Connection, DpdAction, Routing};
use super::limits::{unauth_log_limiter, LimitCounters, WaitingMainMode};
use super::output::{rc, whack_status, ErouteOp, Output, PlutoConfig, ShuntEroute, WhackCmd};
use super::spi::SpiAllocator;

/// Retransmission base delay (ms): sends at 0, 10, 30 s; give up at 70 s.
pub(crate) const RETRANSMIT_BASE_MS: u64 = 10_000;
/// Retransmissions before giving up.
pub(crate) const MAX_RETRANSMISSIONS: u32 = 2;
/// Retransmissions of MI1 when keyingtries is %forever.
pub(crate) const MAX_RETRANSMISSIONS_INITIAL: u32 = 20;
/// How long a half-open responder state lives (ms).
pub(crate) const HALF_OPEN_TIMEOUT_MS: u64 = 60_000;
/// Most bare shunts remembered (memory bound against a flood of trapped host pairs).
const MAX_BARE_SHUNTS: usize = 4096;
/// SHUNT_PATIENCE in shunt scan intervals (FreeS/WAN: SHUNT_SCAN_INTERVAL * 15 / 2).
const SHUNT_PATIENCE_HALF_INTERVALS: u64 = 15;
/// The `--status` reason of a trapped packet's `%hold` that no routed conn covers.
const UNCOVERED: &str = "no routed connection covers it";
/// Most output items queued before new log lines are dropped (memory bound).
const MAX_QUEUED_LOGS: usize = 100_000;

/// The injected random source, usable where a `CryptoRng` is required.
pub(crate) struct InjectedRng<'a>(pub(crate) &'a mut (dyn RngCore + Send));

impl RngCore for InjectedRng<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl CryptoRng for InjectedRng<'_> {}

/// The sans-IO Pluto: feed it datagrams, acquires, SA events, whack commands and time; take
/// [`Output`]s. See the [module docs](crate::pluto) for the contract with the shell.
pub struct Pluto {
    pub(crate) cfg: PlutoConfig,
    pub(crate) rng: Box<dyn RngCore + Send>,
    pub(crate) conns: BTreeMap<String, Connection>,
    pub(crate) secrets: Secrets,
    pub(crate) states: BTreeMap<SerialNo, State>,
    pub(crate) next_serial: SerialNo,
    pub(crate) spis: SpiAllocator,
    pub(crate) out: VecDeque<Output>,
    pub(crate) now: u64,
    /// How often each resource bound was hit ([`Pluto::limit_counters`]).
    pub(crate) limits_hit: LimitCounters,
    /// The rate limit on log lines about unauthenticated input, by source address.
    pub(crate) log_limiter: RateLimiter<Ipv4Addr>,
    /// While handling input nobody has authenticated yet: its source. Log lines then go
    /// through `log_limiter` (see [`crate::pluto::limits`]).
    pub(crate) unauth: Option<Ipv4Addr>,
    /// Key of our responder cookies ([`Pluto::responder_cookie`]).
    pub(crate) cookie_secret: [u8; 32],
    /// Main Modes waiting for one of ours to the same address to get past MI3.
    pub(crate) mm_waiting: VecDeque<WaitingMainMode>,
    /// Bare shunts (FreeS/WAN's `bare_shunts`, spec 4): shunt eroutes Pluto owns outside any
    /// conn's routing, i.e. the narrow `%hold`s (packet src/32 → dst/32) the datapath put in
    /// for trapped packets. One waiting for a conn's negotiation is re-pointed at the tunnel
    /// (releasing the held packet) and removed once the SA is up, removed when keying gives up;
    /// any is removed by the shunt scan after SHUNT_PATIENCE.
    pub(crate) bare_shunts: Vec<BareShunt>,
    /// Our installed SAs (inbound and outbound, every member of each group) → (state, inbound),
    /// for the datapath's usage reports.
    pub(crate) sa_owner: HashMap<Said, (SerialNo, bool)>,
    /// When the next shunt scan is due (ms).
    pub(crate) next_shunt_scan: u64,
}

/// A shunt eroute Pluto owns outside any conn's routing (FreeS/WAN's "bare shunt"; spec 5.8
/// lists them after the states).
#[derive(Debug, Clone)]
pub(crate) struct BareShunt {
    /// Our side (the trapped packet's source /32).
    pub(crate) ours: Subnet,
    /// The peer side (the trapped packet's destination /32).
    pub(crate) his: Subnet,
    /// The shunt in place.
    pub(crate) shunt: Shunt,
    /// Why it is there (`--status` text).
    pub(crate) why: String,
    /// The conn whose negotiation the held packet waits for.
    pub(crate) conn: Option<String>,
    /// Packets counted at the last shunt scan.
    pub(crate) count: u64,
    /// Last sign of use (ms): added, re-trapped, or its count moved.
    pub(crate) last_activity: u64,
}

impl std::fmt::Debug for Pluto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pluto")
            .field("conns", &self.conns.len())
            .field("states", &self.states.len())
            .finish_non_exhaustive()
    }
}

impl Pluto {
    /// A Pluto with no connections or secrets.
    pub fn new(cfg: PlutoConfig, mut rng: Box<dyn RngCore + Send>) -> Pluto {
        let seed_spi = rng.next_u32();
        let seed_cpi = (rng.next_u32() & 0xffff) as u16;
        let next_shunt_scan = cfg.shunt_scan_interval.saturating_mul(1000);
        let mut cookie_secret = [0u8; 32];
        rng.fill_bytes(&mut cookie_secret);
        Pluto {
            cfg,
            rng,
            conns: BTreeMap::new(),
            secrets: Secrets::default(),
            states: BTreeMap::new(),
            next_serial: SerialNo::FIRST,
            spis: SpiAllocator::new(0x1000 + (seed_spi % 0x7000_0000), seed_cpi),
            out: VecDeque::new(),
            now: 0,
            limits_hit: LimitCounters::default(),
            log_limiter: unauth_log_limiter(),
            unauth: None,
            cookie_secret,
            mm_waiting: VecDeque::new(),
            bare_shunts: Vec::new(),
            sa_owner: HashMap::new(),
            next_shunt_scan,
        }
    }

    /// Loads every `conn` of `conf` whose `auto=` is add, route or start (and routes them,
    /// but does not start them: the shell sends `WhackCmd::Up` for auto=start after
    /// `Listen`, like `ipsec setup`). Returns the errors of conns that could not be loaded.
    pub fn load_conns(&mut self, conf: &IpsecConf) -> Vec<ConfError> {
        let mut errs = Vec::new();
        for c in &conf.conns {
            let auto = c.params.get_or("auto", "ignore");
            if !matches!(auto, "add" | "route" | "start") {
                continue;
            }
            match Connection::from_section(c, &self.cfg) {
                Ok(conn) => {
                    for w in super::connection::key_warnings(c) {
                        self.log(format!("WARNING: {w}"));
                    }
                    let key = conn.key();
                    let route = matches!(conn.auto, Auto::Route | Auto::Start);
                    self.conns.insert(key.clone(), conn);
                    self.log(format!("added connection description \"{key}\""));
                    if route {
                        let _ = self.route_conn(&key, None);
                    }
                }
                Err((_, e)) => errs.push(e),
            }
        }
        errs
    }

    /// Replaces the secrets.
    pub fn load_secrets(&mut self, s: Secrets) {
        for w in s.warnings() {
            self.log(format!("WARNING: {w}"));
        }
        self.secrets = s;
        self.log("loaded secrets".into());
    }

    /// The names of loaded conns with `auto=start` (for the shell's startup `--up`s).
    pub fn start_conns(&self) -> Vec<String> {
        self.conns
            .values()
            .filter(|c| c.auto == Auto::Start && c.instance == 0)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Handles one IKE datagram (on port 4500 without its non-ESP marker).
    ///
    /// Its log lines are rate-limited by source address until it proves to come from an
    /// authenticated peer: a message on an established ISAKMP SA, or an MI3/MR3 that verifies
    /// ([`crate::pluto::limits`]).
    pub fn handle_datagram(
        &mut self,
        now_ms: u64,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        data: &[u8],
    ) {
        self.now = now_ms;
        self.unauth = Some(*remote.ip());
        self.dispatch_datagram(local, remote, data);
        self.unauth = None;
    }

    fn dispatch_datagram(&mut self, local: SocketAddrV4, remote: SocketAddrV4, data: &[u8]) {
        let hdr = match Header::parse_datagram(data) {
            Ok((h, _)) => h,
            Err(ParseError::UnsupportedVersion { major, minor }) => {
                self.log(format!(
                    "packet from {remote}: ISAKMP version {major}.{minor} not supported; message dropped"
                ));
                return;
            }
            Err(e) => {
                self.log(format!("packet from {remote}: {e}; message dropped"));
                return;
            }
        };
        // Cookies of an established ISAKMP SA: only the peer (or someone on the path, who
        // could as well drop our packets) knows them.
        if hdr.responder_cookie != [0; 8]
            && self
                .find_p1(&hdr.initiator_cookie, &hdr.responder_cookie)
                .and_then(|s| self.states.get(&s))
                .is_some_and(|s| s.kind.isakmp_established())
        {
            self.unauth = None;
        }
        match hdr.exchange_type {
            ExchangeType::MainMode => self.v1_main(local, remote, &hdr, data),
            ExchangeType::QuickMode => self.v1_quick(local, remote, &hdr, data),
            ExchangeType::Informational => self.v1_info(local, remote, &hdr, data),
            ExchangeType::Aggressive => self.log(format!(
                "packet from {remote}: Aggressive Mode is not supported; message dropped"
            )),
            other => self.log(format!(
                "packet from {remote}: unsupported exchange type {other}; message dropped"
            )),
        }
    }

    /// A `%trap` eroute caught a packet: negotiate the routed connection covering it.
    ///
    /// The datapath holds the packet in a src/32 → dst/32 `%hold`. Pluto records it as a bare
    /// shunt (FreeS/WAN's `record_and_initiate_opportunistic`); with a covering conn it waits
    /// for that conn's negotiation (released into the tunnel, or removed when keying gives up).
    /// Without one (nothing routed covers the pair: the conn was unrouted while the acquire was
    /// queued, or the `%trap` was made with `ipsec eroute`) there is no failure shunt to put
    /// in its place (spec 4: failure shunts are per policy), so the `%hold` stays, keeping
    /// further packets of the pair from re-trapping one acquire each, until the first shunt
    /// scan a full interval later deletes it (then the pair falls back to what lies below it:
    /// a `%trap` re-traps, no eroute drops; never cleartext). A conn routed or brought up
    /// meanwhile that covers the pair takes it over.
    pub fn handle_acquire(&mut self, now_ms: u64, a: Acquire) {
        self.now = now_ms;
        self.acquire(
            a.src,
            a.dst,
            &format!("proto={}", a.proto),
            a.sport,
            a.dport,
        );
    }

    fn acquire(&mut self, src_ip: Ipv4Addr, dst_ip: Ipv4Addr, what: &str, sport: u16, dport: u16) {
        let found = self
            .conns
            .values()
            .filter(|c| {
                c.negotiates()
                    && !c.is_template()
                    && c.this.client.contains(src_ip)
                    && c.that.client.contains(dst_ip)
                    && matches!(
                        c.routing,
                        Routing::Prospective | Routing::FailShunt | Routing::Erouted
                    )
            })
            .max_by_key(|c| (c.this.client.len(), c.that.client.len()))
            .map(|c| (c.key(), c.routing, c.this.client, c.that.client));
        let (src, dst) = (Subnet::host(src_ip), Subnet::host(dst_ip));
        match found {
            Some((key, routing, ours, peers)) => {
                let narrow = (src, dst) != (ours, peers);
                if routing == Routing::Erouted {
                    // The SA came up while this acquire was queued: release the packet now.
                    let head = self
                        .conns
                        .get(&key)
                        .and_then(|c| c.eroute_owner)
                        .and_then(|o| {
                            self.states
                                .get(&o)
                                .and_then(|st| st.p2())
                                .and_then(|p| p.outbound.first().copied())
                        });
                    if narrow {
                        // Released below, once.
                        self.bare_shunts.retain(|b| (b.ours, b.his) != (src, dst));
                    }
                    self.settle_narrow_holds(&key, head);
                    if narrow {
                        self.settle_hold(src, dst, head);
                    }
                    return;
                }
                // The narrow %hold would shadow the conn's wider eroute for good: remember it.
                if narrow {
                    self.add_bare_shunt(src, dst, Shunt::Hold, "acquire", Some(&key));
                }
                if self.negotiation_pending(&key) {
                    return;
                }
                let name = self.conn_quoted(&key);
                self.log(format!(
                    "{name}: initiate on demand from {src_ip}:{sport} to {dst_ip}:{dport} {what}"
                ));
                self.initiate(&key, None, None);
            }
            None => {
                self.log(format!(
                    "acquire from {src_ip} to {dst_ip}: no routed connection covers it; %hold kept as a bare shunt until the next shunt scan"
                ));
                self.add_bare_shunt(src, dst, Shunt::Hold, UNCOVERED, None);
            }
        }
    }

    /// Records (or refreshes) a bare shunt.
    fn add_bare_shunt(
        &mut self,
        ours: Subnet,
        his: Subnet,
        shunt: Shunt,
        why: &str,
        conn: Option<&str>,
    ) {
        let now = self.now;
        if let Some(b) = self
            .bare_shunts
            .iter_mut()
            .find(|b| (b.ours, b.his) == (ours, his))
        {
            b.shunt = shunt;
            b.last_activity = now;
            if conn.is_some() || b.conn.is_none() {
                b.conn = conn.map(str::to_string);
                b.why = why.to_string();
            }
            return;
        }
        if self.bare_shunts.len() < MAX_BARE_SHUNTS {
            self.bare_shunts.push(BareShunt {
                ours,
                his,
                shunt,
                why: why.to_string(),
                conn: conn.map(str::to_string),
                count: 0,
                last_activity: now,
            });
        }
    }

    /// Whether the shunt scan is due ([`Pluto::handle_shunt_scan`]).
    pub fn shunt_scan_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_shunt_scan
    }

    /// The periodic shunt scan (spec 4; FreeS/WAN's `scan_proc_shunts`, every
    /// SHUNT_SCAN_INTERVAL): `eroutes` are the datapath's shunt eroutes.
    ///
    /// * A narrow `%hold` Pluto does not know of (its acquire was lost, or it outlived its
    ///   negotiation) is handled as an acquire for its pair: negotiated if a routed conn covers
    ///   it, else kept as an uncovered bare shunt.
    /// * A bare shunt no longer in the table as Pluto left it (replaced or deleted by hand) is
    ///   forgotten.
    /// * An uncovered `%hold` is deleted once it is a scan interval old; any other bare shunt
    ///   when idle for SHUNT_PATIENCE (7.5 intervals; a `%hold` is idle from its last acquire,
    ///   a `%pass`/`%drop`/`%reject` from the last scan its packet count moved).
    pub fn handle_shunt_scan(&mut self, now_ms: u64, eroutes: &[ShuntEroute]) {
        self.now = now_ms;
        let interval = self.cfg.shunt_scan_interval.max(1).saturating_mul(1000);
        self.next_shunt_scan = now_ms.saturating_add(interval);
        let mut seen = vec![false; self.bare_shunts.len()];
        let mut orphans = Vec::new();
        for e in eroutes {
            if let Some(i) = self
                .bare_shunts
                .iter()
                .position(|b| (b.ours, b.his) == (e.src, e.dst))
            {
                let b = &mut self.bare_shunts[i];
                if b.shunt == e.shunt {
                    seen[i] = true;
                    if e.packets != b.count {
                        b.count = e.packets;
                        if b.shunt != Shunt::Hold {
                            b.last_activity = now_ms;
                        }
                    }
                }
                continue;
            }
            if e.shunt != Shunt::Hold || e.src.len() != 32 || e.dst.len() != 32 {
                continue;
            }
            // A conn's own %hold (responder waiting for QI2) is not an orphan.
            let owned = self.conns.values().any(|c| {
                c.routing == Routing::Hold && (c.this.client, c.that.client) == (e.src, e.dst)
            });
            if !owned && orphans.len() < MAX_BARE_SHUNTS {
                orphans.push((e.src.addr(), e.dst.addr()));
            }
        }
        let mut seen = seen.into_iter();
        self.bare_shunts.retain(|_| seen.next().unwrap_or(false));
        let patience = interval.saturating_mul(SHUNT_PATIENCE_HALF_INTERVALS) / 2;
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bare_shunts)
            .into_iter()
            .partition(|b| {
                let age = now_ms.saturating_sub(b.last_activity);
                if b.conn.is_none() && b.shunt == Shunt::Hold {
                    age >= interval
                } else {
                    age > patience
                }
            });
        self.bare_shunts = keep;
        for b in old {
            self.log(format!(
                "expire bare shunt {}:0 -0-> {}:0 => {} ({})",
                b.ours, b.his, b.shunt, b.why
            ));
            self.out.push_back(Output::Eroute {
                op: ErouteOp::Delete,
                src: b.ours,
                dst: b.his,
                said: Self::shunt_said(b.shunt),
            });
        }
        for (src, dst) in orphans {
            if self.cfg.debug.control {
                self.log(format!("| shunt scan: orphaned %hold {src} -> {dst}"));
            }
            self.acquire(src, dst, "because: %hold found", 0, 0);
        }
    }

    /// A datapath lifetime event for one of our SAs.
    pub fn handle_sa_event(&mut self, now_ms: u64, e: SaEvent) {
        self.now = now_ms;
        let (said, hard) = match e {
            SaEvent::SoftExpired(s) => (s, false),
            SaEvent::HardExpired(s) => (s, true),
        };
        let Some(serial) = self.states.values().find_map(|st| {
            st.p2()
                .filter(|p| p.inbound.contains(&said) || p.outbound.contains(&said))
                .map(|_| st.serial)
        }) else {
            return;
        };
        if hard {
            self.slog(serial, "IPsec SA expired in the datapath".into());
            self.delete_state(serial, true);
        } else {
            self.event_sa_replace(serial);
        }
    }

    /// How long ago the datapath last used each of our SAs: `(said, Some(ms since the last
    /// packet))`, `None` if never used. The shell reports the SAs Pluto installed about once a
    /// second (any subset will do; unknown SAIDs are ignored). Inbound use is a sign of life of
    /// the peer (DPD); use in either direction decides `rekey=no` replacements and the
    /// `used Ns ago` of `--status`.
    pub fn handle_sa_usage(&mut self, now_ms: u64, usage: &[(Said, Option<u64>)]) {
        self.now = now_ms;
        for &(said, idle) in usage {
            let (Some(idle), Some(&(serial, inbound))) = (idle, self.sa_owner.get(&said)) else {
                continue;
            };
            let at = now_ms.saturating_sub(idle);
            let Some(st) = self.states.get_mut(&serial) else {
                continue;
            };
            let Some(p2) = st.p2_mut() else {
                continue;
            };
            let slot = if inbound {
                &mut p2.used_in
            } else {
                &mut p2.used_out
            };
            if slot.is_some_and(|t| t >= at) {
                continue;
            }
            *slot = Some(at);
            if inbound {
                let parent = p2.parent;
                let newest = self.conns.get(&st.conn).and_then(|c| c.newest_isakmp);
                for p1 in std::iter::once(parent).chain(newest) {
                    if let Some(p) = self.states.get_mut(&p1).and_then(|s| s.p1_mut()) {
                        p.dpd.last_heard = p.dpd.last_heard.max(at);
                    }
                }
            }
        }
    }

    /// Whether `said` is one of the SAs Pluto installed (and has not deleted): the ones whose
    /// usage [`Pluto::handle_sa_usage`] wants.
    pub fn installed_sa(&self, said: &Said) -> bool {
        self.sa_owner.contains_key(said)
    }

    /// The next time [`Pluto::handle_timeout`] wants to run (ms), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut take = |x: Option<u64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |c: u64| c.min(x)));
            }
        };
        take(self.log_limiter.summary_due());
        for st in self.states.values() {
            take(st.event.map(|e| e.0));
            if let Some(p1) = st.p1() {
                take(p1.dpd.next);
                take(p1.keepalive_at);
            }
        }
        t
    }

    /// Runs every timer due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now = now_ms;
        self.flush_log_summary();
        let due: Vec<(SerialNo, Option<Event>, bool, bool)> = self
            .states
            .values()
            .filter_map(|st| {
                let ev = st.event.filter(|e| e.0 <= now_ms).map(|e| e.1);
                let (dpd, ka) = st.p1().map_or((false, false), |p| {
                    (
                        p.dpd.next.is_some_and(|t| t <= now_ms),
                        p.keepalive_at.is_some_and(|t| t <= now_ms),
                    )
                });
                (ev.is_some() || dpd || ka).then_some((st.serial, ev, dpd, ka))
            })
            .collect();
        for (serial, ev, dpd, ka) in due {
            if ka {
                self.send_keepalive(serial);
            }
            if dpd {
                self.dpd_event(serial);
            }
            if let Some(ev) = ev {
                if let Some(st) = self.states.get_mut(&serial) {
                    st.event = None;
                } else {
                    continue;
                }
                match ev {
                    Event::Retransmit => self.event_retransmit(serial),
                    Event::SoDiscard => {
                        if let Some(st) = self.states.get(&serial) {
                            if st.kind.half_open_responder() {
                                // Caused by an unauthenticated MI1: rate-limited as it was.
                                self.unauth = st.p1().map(|p| *p.remote.ip());
                                self.slog(
                                    serial,
                                    "deleting half-open state (no MI2/MI3 from peer)".into(),
                                );
                                self.unauth = None;
                            }
                        }
                        self.delete_state(serial, false)
                    }
                    Event::SaReplace => self.event_sa_replace(serial),
                    Event::SaReplaceIfUsed => self.sa_replace(serial, true),
                    Event::SaExpire => {
                        self.slog(serial, "SA expired".into());
                        self.delete_state(serial, true)
                    }
                }
            }
        }
    }

    /// Takes the next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    // -----------------------------------------------------------------------------------
    // Whack.

    /// Runs a whack command for `client`. Progress lines and a final
    /// [`Output::WhackDone`] come out through [`Pluto::poll_output`] (for `Up`, possibly much
    /// later, when the negotiation ends).
    pub fn whack(&mut self, now_ms: u64, client: WhackClient, cmd: WhackCmd) {
        self.now = now_ms;
        match cmd {
            WhackCmd::Add(sec) => {
                if self.conns.contains_key(&sec.name) {
                    self.whack_done_code(
                        client,
                        rc::DUPNAME,
                        format!("attempt to redefine connection \"{}\"", sec.name),
                    );
                    return;
                }
                self.add_conn(client, &sec);
            }
            WhackCmd::Replace(sec) => {
                if self.conns.contains_key(&sec.name) {
                    self.delete_conn(&sec.name.clone());
                }
                self.add_conn(client, &sec);
            }
            WhackCmd::Delete(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                self.delete_conn(&name);
                self.whack_done(client, 0);
            }
            WhackCmd::Up { name, asynchronous } => {
                let Some(c) = self.conns.get_mut(&name) else {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                };
                if !c.negotiates() || c.is_template() {
                    let why = if c.is_template() {
                        "cannot initiate connection with a wildcard peer (%any)"
                    } else {
                        "cannot initiate: connection does not negotiate (authby=never or shunt type)"
                    };
                    let q = c.quoted();
                    self.whack_done_code(client, rc::ORIENT, format!("{q}: {why}"));
                    return;
                }
                c.up = true;
                c.tries = 0;
                let w = if asynchronous { None } else { Some(client) };
                self.initiate(&name, w, None);
                if asynchronous {
                    self.whack_done(client, 0);
                }
            }
            WhackCmd::Down(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                self.down_conn(&name);
                self.whack_done(client, 0);
            }
            WhackCmd::Route(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                match self.route_conn(&name, Some(client)) {
                    Ok(()) => self.whack_done(client, 0),
                    Err(e) => self.whack_done_code(client, rc::ROUTE, e),
                }
            }
            WhackCmd::Unroute(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                match self.unroute_conn(&name) {
                    Ok(()) => self.whack_done(client, 0),
                    Err(e) => self.whack_done_code(client, rc::ROUTE, e),
                }
            }
            WhackCmd::Status => {
                for line in self.status_lines() {
                    self.out.push_back(Output::Whack {
                        client,
                        code: rc::COMMENT,
                        text: line,
                    });
                }
                self.whack_done(client, 0);
            }
            WhackCmd::RereadSecrets(s) => {
                self.load_secrets(s);
                self.whack_done(client, 0);
            }
            WhackCmd::Listen(s) => {
                if let Some(s) = s {
                    self.load_secrets(s);
                }
                let ifaces: Vec<String> = self
                    .cfg
                    .interfaces
                    .iter()
                    .map(|i| format!("adding interface {}/{} {}", i.virt, i.phys, i.addr))
                    .collect();
                for l in ifaces {
                    self.log(l);
                }
                self.whack_done(client, 0);
            }
            WhackCmd::DeleteState(n) => {
                if self.states.contains_key(&n) {
                    self.delete_state(n, true);
                    self.whack_done(client, 0);
                } else {
                    self.whack_done_code(client, rc::UNKNOWN_NAME, format!("no state #{n}"));
                }
            }
            WhackCmd::Debug(flags) => {
                self.cfg.debug = super::output::DebugFlags::parse(&flags);
                self.whack_done(client, 0);
            }
            WhackCmd::Shutdown => {
                self.log("shutting down".into());
                for w in std::mem::take(&mut self.mm_waiting) {
                    if let Some(c) = w.whack {
                        self.whack_done(c, whack_status(rc::NORETRANSMISSION));
                    }
                }
                let serials: Vec<SerialNo> = self.states.keys().rev().copied().collect();
                for s in serials {
                    self.delete_state(s, false);
                }
                let keys: Vec<String> = self.conns.keys().cloned().collect();
                for k in keys {
                    let _ = self.unroute_conn(&k);
                }
                self.conns.clear();
                self.whack_done(client, 0);
            }
        }
    }

    fn add_conn(&mut self, client: WhackClient, sec: &crate::config::conf::ConnSection) {
        match Connection::from_section(sec, &self.cfg) {
            Ok(c) => {
                for w in super::connection::key_warnings(sec) {
                    self.log(format!("WARNING: {w}"));
                }
                let key = c.key();
                self.conns.insert(key.clone(), c);
                let line = format!("added connection description \"{key}\"");
                self.log(line.clone());
                self.out.push_back(Output::Whack {
                    client,
                    code: rc::LOG,
                    text: line,
                });
                self.whack_done(client, 0);
            }
            Err((code, e)) => self.whack_done_code(client, code, e.to_string()),
        }
    }

    fn delete_conn(&mut self, name: &str) {
        let keys: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.name == name)
            .map(|c| c.key())
            .collect();
        for key in keys.iter().rev() {
            self.drop_waiting_main_mode(key);
            let serials: Vec<SerialNo> = self
                .states
                .values()
                .filter(|s| &s.conn == key)
                .map(|s| s.serial)
                .rev()
                .collect();
            for s in serials {
                self.delete_state(s, true);
            }
            if let Some(c) = self.conns.get_mut(key) {
                c.policy_routed = false;
            }
            let _ = self.unroute_conn(key);
            self.conns.remove(key);
        }
        self.log(format!("deleting connection \"{name}\""));
    }

    /// `--down`: delete SAs (sending Deletes); the %trap stays if the conn is routed.
    fn down_conn(&mut self, name: &str) {
        let keys: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.name == name)
            .map(|c| c.key())
            .collect();
        for key in keys {
            self.drop_waiting_main_mode(&key);
            if let Some(c) = self.conns.get_mut(&key) {
                c.up = false;
            }
            // IPsec SAs first (their Deletes ride on the ISAKMP SA), then ISAKMP SAs.
            let mut serials: Vec<(bool, SerialNo)> = self
                .states
                .values()
                .filter(|s| s.conn == key)
                .map(|s| (s.p1().is_some(), s.serial))
                .collect();
            serials.sort();
            for (_, s) in serials
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                self.delete_state(s, true);
            }
            self.settle_narrow_holds(&key, None);
            self.instance_gc(&key);
        }
    }

    pub(crate) fn whack_done(&mut self, client: WhackClient, status: i32) {
        self.out.push_back(Output::WhackDone { client, status });
    }

    pub(crate) fn whack_done_code(&mut self, client: WhackClient, code: u16, text: String) {
        self.log(text.clone());
        self.out.push_back(Output::Whack { client, code, text });
        self.out.push_back(Output::WhackDone {
            client,
            status: whack_status(code),
        });
    }

    // -----------------------------------------------------------------------------------
    // Logging.

    /// Logs a line; while handling unauthenticated input, through the rate limit of its
    /// source.
    pub(crate) fn log(&mut self, line: String) {
        match self.unauth {
            Some(src) => self.log_limited(src, line),
            None => self.emit_log(line),
        }
    }

    /// Logs a line now (after a due rate-limit summary).
    pub(crate) fn emit_log(&mut self, line: String) {
        self.flush_log_summary();
        self.push_log(line);
    }

    /// Queues a log line, escaped (no control characters reach a log), unless the queue is
    /// full.
    pub(crate) fn push_log(&mut self, line: String) {
        if self.out.len() >= MAX_QUEUED_LOGS {
            self.limits_hit.log_lines_dropped += 1;
            return;
        }
        let line = match crate::sanitize::escape_text(&line) {
            std::borrow::Cow::Borrowed(_) => line,
            std::borrow::Cow::Owned(l) => l,
        };
        self.out.push_back(Output::Log(line));
    }

    pub(crate) fn conn_quoted(&self, key: &str) -> String {
        self.conns
            .get(key)
            .map(|c| c.log_name())
            .unwrap_or_else(|| format!("\"{key}\""))
    }

    /// The `"conn" #N:` prefix of a state.
    pub(crate) fn sprefix(&self, serial: SerialNo) -> String {
        match self.states.get(&serial) {
            Some(st) => {
                let mut name = self.conn_quoted(&st.conn);
                if let (Some(p1), Some(c)) = (st.p1(), self.conns.get(&st.conn)) {
                    if p1.template && c.is_template() {
                        name = format!("{} {}", c.quoted(), p1.remote.ip());
                    }
                }
                format!("{name} #{serial}")
            }
            None => format!("#{serial}"),
        }
    }

    /// Logs a line about a state (and copies it to its whack client as code 002).
    pub(crate) fn slog(&mut self, serial: SerialNo, text: String) {
        self.slog_code(serial, rc::LOG, text);
    }

    /// Logs a line about a state with a whack code for its client.
    pub(crate) fn slog_code(&mut self, serial: SerialNo, code: u16, text: String) {
        let line = format!("{}: {}", self.sprefix(serial), text);
        let line = crate::sanitize::escape_text(&line).into_owned();
        self.log(line.clone());
        if let Some(c) = self.states.get(&serial).and_then(|s| s.whack) {
            self.out.push_back(Output::Whack {
                client: c,
                code,
                text: line,
            });
        }
    }

    /// Logs a state transition `STATE_X: story` with whack code 100+n (or 004).
    pub(crate) fn log_transition(&mut self, serial: SerialNo, extra: &str) {
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let kind = st.kind;
        let established = kind.isakmp_established() || kind.ipsec_established();
        let code = if established {
            rc::SUCCESS
        } else {
            rc::NEW_STATE + kind.number()
        };
        self.slog_code(
            serial,
            code,
            format!("{}: {}{}", kind.name(), kind.story(), extra),
        );
    }

    /// Releases the whack client of a state with a final status.
    pub(crate) fn release_whack(&mut self, serial: SerialNo, status: i32) {
        if let Some(c) = self.states.get_mut(&serial).and_then(|s| s.whack.take()) {
            self.whack_done(c, status);
        }
    }

    // -----------------------------------------------------------------------------------
    // Helpers.

    pub(crate) fn rng(&mut self) -> InjectedRng<'_> {
        InjectedRng(&mut *self.rng)
    }

    pub(crate) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    pub(crate) fn new_serial(&mut self) -> SerialNo {
        let s = self.next_serial;
        self.next_serial = s.next();
        s
    }

    /// Sends a message for a state and remembers it for retransmission.
    pub(crate) fn send_for(
        &mut self,
        serial: SerialNo,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        msg: Vec<u8>,
    ) {
        let wire = if local.port() == NAT_T_PORT {
            add_non_esp_marker(&msg)
        } else {
            msg
        };
        if let Some(st) = self.states.get_mut(&serial) {
            st.last_sent = Some((local, remote, wire.clone()));
        }
        self.out.push_back(Output::Send {
            local,
            remote,
            data: wire,
        });
    }

    /// Sends a message unrelated to retransmission.
    pub(crate) fn send_raw(&mut self, local: SocketAddrV4, remote: SocketAddrV4, msg: Vec<u8>) {
        let wire = if local.port() == NAT_T_PORT {
            add_non_esp_marker(&msg)
        } else {
            msg
        };
        self.out.push_back(Output::Send {
            local,
            remote,
            data: wire,
        });
    }

    /// Resends the last message of a state (duplicate received).
    pub(crate) fn resend_last(&mut self, serial: SerialNo) {
        if let Some((l, r, d)) = self.states.get(&serial).and_then(|s| s.last_sent.clone()) {
            self.out.push_back(Output::Send {
                local: l,
                remote: r,
                data: d,
            });
        }
    }

    pub(crate) fn schedule(&mut self, serial: SerialNo, after_ms: u64, ev: Event) {
        let at = self.now.saturating_add(after_ms);
        if let Some(st) = self.states.get_mut(&serial) {
            st.event = Some((at, ev));
        }
    }

    /// Our IDs for secret lookup.
    pub(crate) fn our_ids(&self, c: &Connection) -> Vec<Id> {
        let mut v = vec![c.this.id.clone()];
        if let Some(h) = c.this.host {
            if !v.contains(&Id::Ipv4(h)) {
                v.push(Id::Ipv4(h));
            }
        }
        v
    }

    /// The pre-shared key for a connection (peer ID `peer`, default the conn's). A template or
    /// an instance also finds its peer by address and by `%any`; a `rightid=%any` conn asked
    /// for a given peer ID also by `%any` (as when its ISAKMP SA was made).
    pub(crate) fn psk_for(&mut self, key: &str, peer: Option<&Id>) -> Option<Zeroizing<Vec<u8>>> {
        let c = self.conns.get(key)?;
        let ours = self.our_ids(c);
        let mut theirs = vec![peer.cloned().unwrap_or_else(|| c.that.id.clone())];
        if c.that.id == Id::Any && peer.is_some() && !c.is_template() && c.instance == 0 {
            theirs.push(Id::Any);
        }
        if c.is_template() || c.instance != 0 {
            if let Some(h) = c.that.host {
                theirs.push(Id::Ipv4(h));
            }
            theirs.push(Id::Any);
        }
        match self.secrets.find_psk(&ours, &theirs) {
            Ok(Some(s)) => Some(Zeroizing::new(s.as_bytes().to_vec())),
            Ok(None) => None,
            Err(e) => {
                self.log(format!("{e}"));
                None
            }
        }
    }

    /// Our RSA private key for a connection.
    pub(crate) fn rsa_key_for(&mut self, key: &str) -> Option<PrivateKey> {
        let c = self.conns.get(key)?;
        let ours = self.our_ids(c);
        let want = c.this.rsakey.clone();
        let found = match self.secrets.find_rsa(&ours) {
            Ok(Some(k)) => Some(k.clone()),
            Ok(None) => None,
            Err(e) => {
                self.log(format!("{e}"));
                None
            }
        };
        let candidates: Vec<_> = found
            .into_iter()
            .chain(self.secrets.entries().iter().filter_map(|e| match &e.key {
                crate::config::secrets::SecretKey::Rsa(k) => Some(k.clone()),
                _ => None,
            }))
            .collect();
        for k in candidates {
            let parts = PrivateKeyParts {
                modulus: k.modulus.clone(),
                public_exponent: k.public_exponent.clone(),
                private_exponent: k.private_exponent.as_bytes().to_vec(),
                prime1: k.prime1.as_bytes().to_vec(),
                prime2: k.prime2.as_bytes().to_vec(),
                exponent1: k.exponent1.as_bytes().to_vec(),
                exponent2: k.exponent2.as_bytes().to_vec(),
                coefficient: k.coefficient.as_bytes().to_vec(),
            };
            if let Ok(pk) = PrivateKey::from_parts(&parts) {
                match &want {
                    Some(w) if pk.public_key() != *w => continue,
                    _ => return Some(pk),
                }
            }
        }
        None
    }

    /// Whether a negotiation for the conn is already under way (or waiting to start).
    pub(crate) fn negotiation_pending(&self, key: &str) -> bool {
        self.mm_waiting.iter().any(|w| w.key == key)
            || self.states.values().any(|s| {
                s.conn == key
                    && (matches!(
                        s.kind,
                        StateKind::MainI1
                            | StateKind::MainI2
                            | StateKind::MainI3
                            | StateKind::QuickI1
                    ) || s.p1().is_some_and(|p| p.pending_qm.is_some()))
            })
    }

    // -----------------------------------------------------------------------------------
    // Routing and SA installation (shared by all engines).

    fn trap_said() -> Said {
        Said::new(Proto::Int, Shunt::Trap.spi(), Ipv4Addr::UNSPECIFIED)
    }

    fn shunt_said(s: Shunt) -> Said {
        Said::new(Proto::Int, s.spi(), Ipv4Addr::UNSPECIFIED)
    }

    fn updown(&mut self, key: &str, verb: Verb) {
        if let Some(c) = self.conns.get(key) {
            let info = c.updown_info();
            self.out.push_back(Output::Updown { verb, info });
        }
    }

    fn eroute(&mut self, key: &str, op: ErouteOp, said: Said) {
        if let Some(c) = self.conns.get(key) {
            let (src, dst) = (c.this.client, c.that.client);
            self.out.push_back(Output::Eroute { op, src, dst, said });
        }
    }

    /// Another routed conn with the same client pair (eroutes would clash).
    fn route_conflict(&self, key: &str) -> Option<String> {
        let c = self.conns.get(key)?;
        self.conns
            .values()
            .find(|o| {
                o.key() != key
                    && o.routing != Routing::Unrouted
                    && o.this.client == c.this.client
                    && o.that.client == c.that.client
            })
            .map(|o| o.key())
    }

    /// `--route`: %trap (or the type= shunt) eroute plus prepare/route updown.
    pub(crate) fn route_conn(
        &mut self,
        key: &str,
        _client: Option<WhackClient>,
    ) -> Result<(), String> {
        let Some(c) = self.conns.get(key) else {
            return Err(format!("no connection named \"{key}\""));
        };
        if c.is_template() {
            return Err(format!(
                "{}: cannot route connection with a wildcard peer (%any)",
                c.quoted()
            ));
        }
        if c.routing != Routing::Unrouted {
            if let Some(c) = self.conns.get_mut(key) {
                c.policy_routed = true;
            }
            return Ok(());
        }
        if let Some(other) = self.route_conflict(key) {
            return Err(format!(
                "cannot route \"{key}\": its eroute would clash with \"{other}\""
            ));
        }
        let said = match c.ctype {
            ConnType::Shunt(s) => Self::shunt_said(s),
            _ => Self::trap_said(),
        };
        self.updown(key, Verb::Prepare);
        self.updown(key, Verb::Route);
        self.eroute(key, ErouteOp::Add, said);
        if let Some(c) = self.conns.get_mut(key) {
            c.routing = Routing::Prospective;
            c.policy_routed = true;
        }
        // Packets held for want of a routed conn that this one covers: its negotiation now.
        let held: Vec<(Ipv4Addr, Ipv4Addr)> = match self.conns.get(key) {
            Some(c) if c.negotiates() => self
                .bare_shunts
                .iter()
                .filter(|b| {
                    b.conn.is_none()
                        && b.shunt == Shunt::Hold
                        && c.this.client.contains(b.ours.addr())
                        && c.that.client.contains(b.his.addr())
                })
                .map(|b| (b.ours.addr(), b.his.addr()))
                .collect(),
            _ => Vec::new(),
        };
        for (src, dst) in held {
            self.acquire(src, dst, "because: %hold found", 0, 0);
        }
        Ok(())
    }

    /// `--unroute`: refused while an SA owns the eroute.
    pub(crate) fn unroute_conn(&mut self, key: &str) -> Result<(), String> {
        let Some(c) = self.conns.get(key) else {
            return Err(format!("no connection named \"{key}\""));
        };
        match c.routing {
            Routing::Unrouted => Ok(()),
            Routing::Erouted => Err(format!(
                "cannot unroute \"{key}\": IPsec SA #{} uses the route",
                SerialNo::or_zero(c.eroute_owner)
            )),
            _ => {
                self.settle_narrow_holds(key, None);
                self.eroute(key, ErouteOp::Delete, Self::trap_said());
                self.updown(key, Verb::Unroute);
                if let Some(c) = self.conns.get_mut(key) {
                    c.routing = Routing::Unrouted;
                    c.policy_routed = false;
                }
                Ok(())
            }
        }
    }

    /// Builds the SAs of one direction of an established phase 2 (`inbound` = to us).
    pub(crate) fn build_sas(
        &mut self,
        serial: SerialNo,
        inbound: bool,
    ) -> Option<(Vec<SaSpec>, Vec<Said>)> {
        let st = self.states.get(&serial)?;
        let p2 = st.p2()?;
        let c = self.conns.get(&st.conn)?;
        let parent = self.states.get(&p2.parent)?.p1()?;
        let keys = parent.keys.as_ref()?;
        let prf = parent.choice.as_ref()?.alg.prf;
        let choice = p2.choice.as_ref()?;
        let (me, peer) = (parent.local.ip(), parent.remote.ip());
        let (src, dst) = if inbound { (*peer, *me) } else { (*me, *peer) };
        let dir = if inbound { Dir::In } else { Dir::Out };
        let gxy: Option<&[u8]> = p2.gxy.as_deref().map(|v| v.as_slice());
        let mut sas = Vec::new();
        let mut group = Vec::new();
        let mut policy = inbound.then_some((p2.peer_client, p2.our_client));
        let mk =
            |said: Said, xform: XformSpec, window: u32, encap: Option<UdpEncap>, policy| SaSpec {
                said,
                src,
                dir: Some(dir),
                xform,
                replay_window: window,
                life: Default::default(),
                encap,
                policy,
            };
        if c.tunnel() {
            let (tin, tout) = p2.tun?;
            let said = Said::new(Proto::Tun, if inbound { tin } else { tout }, dst);
            sas.push(mk(said, XformSpec::Ipip, 0, None, policy.take()));
            group.push(said);
        }
        if let Some(peer_cpi) = choice.cpi {
            let cpi = if inbound { p2.our.cpi? } else { peer_cpi };
            let said = Said::new(Proto::Comp, u32::from(cpi), dst);
            sas.push(mk(said, XformSpec::Deflate, 0, None, policy.take()));
            group.push(said);
        }
        let kmat = |proto: u8, spi: u32, len: usize| {
            super::ikev1::crypto::keymat(
                prf,
                &keys.skeyid_d,
                gxy,
                proto,
                &spi.to_be_bytes(),
                &p2.ni,
                &p2.nr,
                len,
            )
        };
        if let Some((alg, peer_spi)) = choice.esp {
            let spi = if inbound { p2.our.esp? } else { peer_spi };
            let elen = alg.enc.key_len();
            let alen = alg.auth.map_or(0, |a| a.key_len());
            let km = kmat(3, spi, elen + alen);
            let said = Said::new(Proto::Esp, spi, dst);
            let encap = p2.encap_port.map(|p| UdpEncap {
                sport: NAT_T_PORT,
                dport: p,
            });
            sas.push(mk(
                said,
                XformSpec::Esp {
                    enc: alg.enc,
                    enckey: KeyBytes(km.get(..elen)?.to_vec()),
                    auth: alg.auth,
                    authkey: KeyBytes(km.get(elen..)?.to_vec()),
                },
                64,
                encap,
                policy.take(),
            ));
            group.push(said);
        }
        if let Some((alg, peer_spi)) = choice.ah {
            let spi = if inbound { p2.our.ah? } else { peer_spi };
            let km = kmat(2, spi, alg.key_len());
            let said = Said::new(Proto::Ah, spi, dst);
            sas.push(mk(
                said,
                XformSpec::Ah {
                    auth: alg,
                    authkey: KeyBytes(km.to_vec()),
                },
                64,
                None,
                policy.take(),
            ));
            group.push(said);
        }
        Some((sas, group))
    }

    /// Installs inbound (and, with `outbound`, outbound) SAs of a phase 2.
    pub(crate) fn install_sas(&mut self, serial: SerialNo, inbound: bool, outbound: bool) -> bool {
        let mut sas = Vec::new();
        let mut groups = Vec::new();
        for dir_in in [true, false] {
            if (dir_in && !inbound) || (!dir_in && !outbound) {
                continue;
            }
            let Some((s, g)) = self.build_sas(serial, dir_in) else {
                self.slog(serial, "cannot derive IPsec keys; SA not installed".into());
                return false;
            };
            if let Some(p2) = self.states.get_mut(&serial).and_then(|s| s.p2_mut()) {
                if dir_in {
                    p2.inbound = g.clone();
                } else {
                    p2.outbound = g.clone();
                }
            }
            for said in &g {
                self.sa_owner.insert(*said, (serial, dir_in));
            }
            sas.extend(s);
            groups.push(g);
        }
        let conn = self
            .states
            .get(&serial)
            .map(|s| s.conn.clone())
            .unwrap_or_default();
        if self.cfg.debug.klips {
            let saids: Vec<String> = sas.iter().map(|s| s.said.pluto()).collect();
            self.slog(serial, format!("| installing SAs {}", saids.join(" ")));
        }
        self.out.push_back(Output::InstallSas { conn, sas, groups });
        true
    }

    /// Points the conn's eroute at this state's outbound group (make-before-break).
    pub(crate) fn route_to_state(&mut self, serial: SerialNo) {
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let key = st.conn.clone();
        let Some(head) = st.p2().and_then(|p| p.outbound.first().copied()) else {
            return;
        };
        let Some(routing) = self.conns.get(&key).map(|c| c.routing) else {
            return;
        };
        match routing {
            Routing::Unrouted => {
                if let Some(other) = self.route_conflict(&key) {
                    // A responder evicts the conflicting conn's SAs (spec 7).
                    let owners: Vec<SerialNo> = self
                        .states
                        .values()
                        .filter(|s| s.conn == other && s.p2().is_some())
                        .map(|s| s.serial)
                        .collect();
                    self.slog(
                        serial,
                        format!("route conflicts with \"{other}\"; releasing its SAs"),
                    );
                    for o in owners {
                        self.delete_state(o, true);
                    }
                    if let Some(oc) = self.conns.get_mut(&other) {
                        oc.policy_routed = false;
                    }
                    let _ = self.unroute_conn(&other);
                }
                self.updown(&key, Verb::Prepare);
                self.updown(&key, Verb::Route);
                self.eroute(&key, ErouteOp::Add, head);
                self.updown(&key, Verb::Up);
            }
            Routing::Prospective | Routing::FailShunt | Routing::Hold => {
                self.eroute(&key, ErouteOp::Replace, head);
                self.updown(&key, Verb::Up);
            }
            Routing::Erouted => self.eroute(&key, ErouteOp::Replace, head),
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.routing = Routing::Erouted;
            c.eroute_owner = Some(serial);
            c.newest_ipsec = Some(serial);
        }
        self.settle_narrow_holds(&key, Some(head));
    }

    /// Deletes a state: its SAs, its eroute ownership, its timers. With `notify`, sends a
    /// Delete to the peer (IPsec SPIs or ISAKMP cookies) over an established ISAKMP SA.
    pub(crate) fn delete_state(&mut self, serial: SerialNo, notify: bool) {
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let key = st.conn.clone();
        let kind = st.kind;
        if notify
            && (kind.ipsec_established() || kind == StateKind::QuickR1 || kind.isakmp_established())
        {
            self.send_delete_for(serial);
        }
        self.release_whack(serial, whack_status(rc::NORETRANSMISSION));
        let Some(st) = self.states.remove(&serial) else {
            return;
        };
        if self.cfg.debug.lifecycle {
            self.log(format!("| deleting state #{serial} ({})", st.kind.name()));
        }
        match &st.family {
            Family::P2(p2) => {
                let mut saids: Vec<Said> = p2.inbound.clone();
                saids.extend(p2.outbound.iter().copied());
                for s in &saids {
                    if self.sa_owner.get(s).is_some_and(|o| o.0 == serial) {
                        self.sa_owner.remove(s);
                    }
                }
                for s in [p2.our.esp, p2.our.ah].into_iter().flatten() {
                    self.spis.release(s);
                }
                if let Some(c) = p2.our.cpi {
                    self.spis.release_cpi(c);
                }
                if !saids.is_empty() {
                    self.out.push_back(Output::DeleteSas { saids });
                }
                let owner = self.conns.get(&key).and_then(|c| c.eroute_owner);
                if owner == Some(serial) {
                    // Another established SA of the conn takes over, else %trap or nothing.
                    let successor = self
                        .states
                        .values()
                        .filter(|s| s.conn == key && s.kind.ipsec_established())
                        .map(|s| s.serial)
                        .max();
                    match successor {
                        Some(n) => {
                            if let Some(c) = self.conns.get_mut(&key) {
                                c.eroute_owner = None;
                            }
                            self.route_to_state(n);
                        }
                        None => self.unroute_after_sa(&key),
                    }
                }
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.newest_ipsec == Some(serial) {
                        c.newest_ipsec = None;
                    }
                }
                // A responder's hold whose QI2 never came.
                let held = self
                    .conns
                    .get(&key)
                    .is_some_and(|c| c.routing == Routing::Hold);
                if held
                    && !self
                        .states
                        .values()
                        .any(|s| s.conn == key && s.p2().is_some())
                {
                    self.release_responder_hold(&key);
                }
            }
            Family::P1(p1) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.newest_isakmp == Some(serial) {
                        c.newest_isakmp = None;
                    }
                }
                if p1.initiator && !kind.isakmp_established() {
                    self.start_waiting_main_mode(*p1.remote.ip());
                }
                // Phase 2 negotiations in progress on it die with it.
                let children: Vec<SerialNo> = self
                    .states
                    .values()
                    .filter(|s| {
                        s.p2().is_some_and(|p| p.parent == serial) && !s.kind.ipsec_established()
                    })
                    .map(|s| s.serial)
                    .collect();
                for ch in children {
                    self.delete_state(ch, false);
                }
            }
        }
    }

    /// The conn's SA-owned eroute went away: back to %trap if policy-routed, else unrouted.
    fn unroute_after_sa(&mut self, key: &str) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if c.routing != Routing::Erouted {
            return;
        }
        if c.policy_routed {
            self.eroute(key, ErouteOp::Replace, Self::trap_said());
            self.updown(key, Verb::Down);
            if let Some(c) = self.conns.get_mut(key) {
                c.routing = Routing::Prospective;
                c.eroute_owner = None;
            }
        } else {
            self.eroute(key, ErouteOp::Delete, Self::trap_said());
            self.updown(key, Verb::Down);
            self.updown(key, Verb::Unroute);
            if let Some(c) = self.conns.get_mut(key) {
                c.routing = Routing::Unrouted;
                c.eroute_owner = None;
            }
        }
    }

    /// Re-points the conn's narrow `%hold` eroutes at `head` (the datapath then sends the held
    /// packet through it) and deletes them; with `None` just deletes them. With a `head`, the
    /// holds no conn covered when they were trapped but this conn covers go the same way.
    pub(crate) fn settle_narrow_holds(&mut self, key: &str, head: Option<Said>) {
        let covers = self
            .conns
            .get(key)
            .filter(|_| head.is_some())
            .map(|c| (c.this.client, c.that.client));
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bare_shunts)
            .into_iter()
            .partition(|b| match &b.conn {
                Some(k) => k == key,
                None => covers.is_some_and(|(o, p)| {
                    b.shunt == Shunt::Hold && o.contains(b.ours.addr()) && p.contains(b.his.addr())
                }),
            });
        self.bare_shunts = rest;
        for BareShunt {
            ours: src,
            his: dst,
            ..
        } in mine
        {
            self.settle_hold(src, dst, head);
        }
    }

    /// Re-points one `%hold` eroute at `head` (releasing its packet through it), if any, and
    /// deletes it.
    fn settle_hold(&mut self, src: Subnet, dst: Subnet, head: Option<Said>) {
        if let Some(said) = head {
            self.out.push_back(Output::Eroute {
                op: ErouteOp::Replace,
                src,
                dst,
                said,
            });
        }
        self.out.push_back(Output::Eroute {
            op: ErouteOp::Delete,
            src,
            dst,
            said: Self::shunt_said(Shunt::Hold),
        });
    }

    /// A responder has installed the inbound SAs of a conn's first IPsec SA. The initiator
    /// starts sending through them as soon as it has sent QI2, which may be before QI2 has been
    /// processed here; the decrypted packets' replies would then leave by the ordinary route, in
    /// the clear. So route the peer client into ipsecN now, with a `%hold` eroute: replies wait
    /// (the newest is released through the tunnel once QI2 installs the outbound SAs).
    pub(crate) fn hold_for_responder(&mut self, serial: SerialNo) {
        let Some(key) = self.states.get(&serial).map(|s| s.conn.clone()) else {
            return;
        };
        if self.conns.get(&key).map(|c| c.routing) != Some(Routing::Unrouted)
            || self.route_conflict(&key).is_some()
        {
            return;
        }
        self.updown(&key, Verb::Prepare);
        self.updown(&key, Verb::Route);
        self.eroute(&key, ErouteOp::Add, Self::shunt_said(Shunt::Hold));
        if let Some(c) = self.conns.get_mut(&key) {
            c.routing = Routing::Hold;
        }
    }

    /// Undoes [`Pluto::hold_for_responder`] when no IPsec SA came of it.
    fn release_responder_hold(&mut self, key: &str) {
        let routed = self.conns.get(key).is_some_and(|c| c.policy_routed);
        if routed {
            self.eroute(key, ErouteOp::Replace, Self::trap_said());
            if let Some(c) = self.conns.get_mut(key) {
                c.routing = Routing::Prospective;
            }
        } else {
            self.eroute(key, ErouteOp::Delete, Self::trap_said());
            self.updown(key, Verb::Unroute);
            if let Some(c) = self.conns.get_mut(key) {
                c.routing = Routing::Unrouted;
            }
        }
    }

    /// Drops an instance with no states left.
    pub(crate) fn instance_gc(&mut self, key: &str) {
        let is_instance = self.conns.get(key).is_some_and(|c| c.instance != 0);
        if is_instance && !self.states.values().any(|s| s.conn == key) {
            if let Some(c) = self.conns.get(key) {
                if c.routing == Routing::Erouted {
                    return;
                }
            }
            let _ = self.unroute_conn(key);
            self.conns.remove(key);
        }
    }

    /// Negotiation failed for good: install the failure shunt if routed, release whack.
    pub(crate) fn negotiation_failed(&mut self, key: &str) {
        self.settle_narrow_holds(key, None);
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if let (Some(s), Routing::Prospective) = (c.failureshunt, c.routing) {
            self.eroute(key, ErouteOp::Replace, Self::shunt_said(s));
            if let Some(c) = self.conns.get_mut(key) {
                c.routing = Routing::FailShunt;
            }
        }
    }

    /// Starts (or restarts) keying for a conn: phase 2 over an existing ISAKMP SA, else
    /// Main Mode first.
    pub(crate) fn initiate(
        &mut self,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
    ) {
        if !self
            .conns
            .get(key)
            .is_some_and(|c| c.negotiates() && !c.is_template())
        {
            return;
        }
        let own = self
            .states
            .values()
            .filter(|s| s.conn == key && s.kind.isakmp_established())
            .map(|s| s.serial)
            .max();
        match own.or_else(|| self.shared_phase1(key)) {
            Some(p1) => self.quick_initiate(p1, key, whack, replacing),
            None => {
                // A Main Mode already under way takes the phase 2 along.
                let pending = self
                    .states
                    .values()
                    .find(|s| {
                        s.conn == key
                            && matches!(
                                s.kind,
                                StateKind::MainI1 | StateKind::MainI2 | StateKind::MainI3
                            )
                    })
                    .map(|s| s.serial);
                match pending {
                    Some(p) => {
                        if let Some(st) = self.states.get_mut(&p) {
                            if st.whack.is_none() {
                                st.whack = whack;
                            } else if let Some(w) = whack {
                                self.whack_done(w, 0);
                            }
                        }
                    }
                    None => self.main_initiate(
                        key,
                        whack,
                        1,
                        Some(crate::pluto::ikev1::state::PendingQm { whack, replacing }),
                    ),
                }
            }
        }
    }

    /// An established ISAKMP SA of another conn that conn `key`'s Quick Mode may use, as
    /// FreeS/WAN's `find_phase1_state` allows: same local and peer host, same IDs on both
    /// sides, an authentication method `key` permits (the newest such SA).
    pub(crate) fn shared_phase1(&self, key: &str) -> Option<SerialNo> {
        let c = self.conns.get(key)?;
        let (me, peer) = (c.this.host?, c.that.host?);
        if c.that.id == crate::config::secrets::Id::Any {
            return None;
        }
        self.states
            .values()
            .filter(|s| s.kind.isakmp_established())
            .filter(|s| {
                let (Some(p), Some(owner)) = (s.p1(), self.conns.get(&s.conn)) else {
                    return false;
                };
                *p.local.ip() == me
                    && *p.remote.ip() == peer
                    && owner.this.id == c.this.id
                    && owner.that.id == c.that.id
                    && p.peer_id.as_ref().is_none_or(|id| *id == c.that.id)
                    && p.choice
                        .as_ref()
                        .is_some_and(|ch| c.auth.contains(&ch.auth))
            })
            .map(|s| s.serial)
            .max()
    }

    /// DPD declared the peer dead: apply the conn's action.
    pub(crate) fn dpd_dead(&mut self, serial: SerialNo) {
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let key = st.conn.clone();
        let action = self
            .conns
            .get(&key)
            .and_then(|c| c.dpd)
            .map_or(DpdAction::Hold, |d| d.action);
        self.slog(
            serial,
            "DPD: No response from peer - declaring peer dead".into(),
        );
        let all: Vec<SerialNo> = self
            .states
            .values()
            .filter(|s| s.conn == key)
            .map(|s| s.serial)
            .collect();
        // IPsec SAs of other conns negotiated over this ISAKMP SA (`shared_phase1`) go too:
        // their peer is the one that died.
        let riders: Vec<SerialNo> = self
            .states
            .values()
            .filter(|s| s.conn != key && s.p2().is_some_and(|p| p.parent == serial))
            .map(|s| s.serial)
            .collect();
        for s in riders.into_iter().rev() {
            self.delete_state(s, false);
        }
        match action {
            DpdAction::Clear => {
                self.slog(serial, "DPD: Clearing Connection".into());
                if let Some(c) = self.conns.get_mut(&key) {
                    c.policy_routed = false;
                }
                for s in all.into_iter().rev() {
                    self.delete_state(s, false);
                }
                let _ = self.unroute_conn(&key);
                self.instance_gc(&key);
            }
            DpdAction::Hold => {
                self.slog(serial, "DPD: Putting connection on hold".into());
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.instance == 0 {
                        c.policy_routed = true;
                    }
                }
                for s in all.into_iter().rev() {
                    self.delete_state(s, false);
                }
                self.instance_gc(&key);
            }
            DpdAction::Restart => {
                self.slog(serial, "DPD: Restarting Connection".into());
                for s in all.into_iter().rev() {
                    self.delete_state(s, false);
                }
                let template = self.conns.get(&key).is_some_and(|c| c.instance != 0);
                if template {
                    self.instance_gc(&key);
                } else {
                    self.initiate(&key, None, None);
                }
            }
        }
    }

    /// Rekeying time for a state: replace it if it is the conn's newest and we rekey; it
    /// then lives on until its hard expiry (make-before-break).
    pub(crate) fn event_sa_replace(&mut self, serial: SerialNo) {
        self.sa_replace(serial, false)
    }

    /// EVENT_SA_REPLACE, or with `if_used` EVENT_SA_REPLACE_IF_USED (`rekey=no` initiator,
    /// spec 7): replace only if the SA (for an ISAKMP SA: any IPsec SA of the conn) was used
    /// during the last rekeymargin, else let it expire. FreeS/WAN sampled outbound use only;
    /// rswan counts both directions, so a one-way flow from the peer keeps the tunnel too.
    pub(crate) fn sa_replace(&mut self, serial: SerialNo, if_used: bool) {
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let key = st.conn.clone();
        let is_p1 = st.p1().is_some();
        let expires_at = st.expires_at;
        let Some(c) = self.conns.get(&key) else {
            self.delete_state(serial, true);
            return;
        };
        let newest = if is_p1 {
            c.newest_isakmp
        } else {
            c.newest_ipsec
        };
        let what = if is_p1 { "ISAKMP" } else { "IPsec" };
        let (mut rekey, margin, created) =
            (c.rekey, c.rekeymargin.saturating_mul(1000), st.created);
        let replaceable = c.instance == 0 && !c.is_template();
        if if_used && newest == Some(serial) {
            let last = self.last_used(serial);
            let since = last.unwrap_or(created);
            if last.is_some_and(|t| self.now.saturating_sub(t) <= margin) {
                rekey = true;
                self.slog(serial, format!("replacing stale {what} SA: in use"));
            } else {
                self.slog(
                    serial,
                    format!(
                        "not replacing stale {what} SA: inactive for {}s",
                        self.now.saturating_sub(since) / 1000
                    ),
                );
            }
        }
        if newest == Some(serial) && rekey && replaceable {
            if !if_used {
                self.slog(serial, format!("{what} SA expiring soon: replacing"));
            }
            if is_p1 {
                self.main_initiate_replacing(&key, None, 1, None, Some(serial));
            } else {
                self.initiate(&key, None, Some(serial));
            }
        }
        let remaining = expires_at.saturating_sub(self.now).max(1);
        self.schedule(serial, remaining, Event::SaExpire);
    }

    /// Last use (ms) of an IPsec SA, or for an ISAKMP SA of any IPsec SA of its conn.
    pub(crate) fn last_used(&self, serial: SerialNo) -> Option<u64> {
        let st = self.states.get(&serial)?;
        match &st.family {
            Family::P2(p2) => p2.last_used(),
            Family::P1(_) => self
                .states
                .values()
                .filter(|s| s.conn == st.conn)
                .filter_map(|s| s.p2().and_then(|p| p.last_used()))
                .max(),
        }
    }

    /// The rekey delay for an SA of `life` seconds (spec 7).
    pub(crate) fn replace_delay_ms(
        &mut self,
        key: &str,
        life: u64,
        initiator: bool,
    ) -> (u64, Event) {
        let Some(c) = self.conns.get(key) else {
            return (life * 1000, Event::SaExpire);
        };
        let (margin, fuzz, rekey) = (c.rekeymargin, c.rekeyfuzz, c.rekey);
        // rekey=no: the responder lets the SA expire, the initiator replaces it only if used.
        if !rekey && !initiator {
            return (life * 1000, Event::SaExpire);
        }
        let replace = if rekey {
            Event::SaReplace
        } else {
            Event::SaReplaceIfUsed
        };
        let margin_ms = if initiator {
            let r = (self.rng.next_u32() % 1000) as u64;
            margin * 1000 + margin * fuzz * r / 100
        } else {
            margin * 1000 / 2
        };
        let life_ms = life * 1000;
        if margin_ms < life_ms {
            (life_ms - margin_ms, replace)
        } else {
            (life_ms / 2, replace)
        }
    }

    /// The `cannot respond… no connection is known` text form of a host/client pair.
    pub(crate) fn fmt_pair(
        our_client: &Subnet,
        me: Ipv4Addr,
        our_id: &Id,
        peer: Ipv4Addr,
        peer_id: &Id,
        peer_client: &Subnet,
    ) -> String {
        let oc = if *our_client == Subnet::host(me) {
            String::new()
        } else {
            format!("{our_client}===")
        };
        let pc = if *peer_client == Subnet::host(peer) {
            String::new()
        } else {
            format!("==={peer_client}")
        };
        format!("{oc}{me}[{our_id}]...{peer}[{peer_id}]{pc}")
    }
}
