//! The Pluto endpoint: the inputs and outputs of the sans-IO core, and the services every
//! IKE version uses (logging, sending and retransmitting messages, randomness).
//!
//! The rest of the engine, one job per module: [`crate::pluto::sa`] (SA records and their
//! indexes), [`crate::pluto::timers`] (the timer table, retransmission and keying-attempt
//! policy, rekeying and liveness), `lifecycle` (starting, establishing and
//! deleting SAs), `routing` (eroutes, updown, `%trap`/`%hold` and bare
//! shunts), [`crate::pluto::install`] (negotiated child SAs into SADB entries, usage
//! tracking), `whack` (control commands), `credentials` (secrets lookup).
//! Exchanges are handled by the version modules behind [`crate::pluto::version`].
//!
//! Sans-IO: inputs are method calls with the time in milliseconds; outputs queue up for
//! `poll_output`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rand::{CryptoRng, RngCore};

use crate::addr::Subnet;
use crate::config::conf::{ConfError, IpsecConf};
use crate::config::secrets::{Id, Secrets};
use crate::crypto::CryptoProvider;
use crate::klips::{Acquire, SaEvent};
use crate::pluto::ids::SerialNo;
use crate::pluto::natt::{add_non_esp_marker, NAT_T_PORT};
use crate::ratelimit::RateLimiter;
use crate::said::Said;

use super::connection::{Auto, Connection};
use super::conns::Conns;
use super::limits::{unauth_log_limiter, LimitCounters, WaitingMainMode};
use super::output::{rc, Output, PlutoConfig};
use super::routing::BareShunt;
use super::sa::SaTable;
use super::spi::SpiAllocator;

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
    /// Keyed ciphers and MACs for IKE message protection: the datapath's provider, so IKE
    /// and ESP share one implementation of each algorithm.
    pub(crate) provider: &'static dyn CryptoProvider,
    pub(crate) conns: Conns,
    pub(crate) secrets: Secrets,
    /// Every IKE and child SA, their indexes and timers.
    pub(crate) sas: SaTable,
    pub(crate) spis: SpiAllocator,
    pub(crate) out: VecDeque<Output>,
    pub(crate) now: u64,
    /// How often each resource bound was hit ([`Pluto::limit_counters`]).
    pub(crate) limits_hit: LimitCounters,
    /// The rate limit on log lines about unauthenticated input, by source address.
    pub(crate) log_limiter: RateLimiter<IpAddr>,
    /// While handling input nobody has authenticated yet: its source. Log lines then go
    /// through `log_limiter` (see [`crate::pluto::limits`]).
    pub(crate) unauth: Option<IpAddr>,
    /// Key of our responder cookies ([`Pluto::responder_cookie`]).
    pub(crate) cookie_secret: [u8; 32],
    /// Main Modes waiting for one of ours to the same address to get past MI3.
    pub(crate) mm_waiting: VecDeque<WaitingMainMode>,
    /// Bare shunts (FreeS/WAN's `bare_shunts`, spec 4): shunt eroutes Pluto owns outside any
    /// conn's routing, i.e. the narrow `%hold`s (packet src/32 → dst/32) the datapath put in
    /// for trapped packets. One waiting for a conn's negotiation is re-pointed at the tunnel
    /// (releasing the held packet) and removed once the SA is up, removed when keying gives up;
    /// any is removed by the shunt scan after `shuntlifetime=` (SHUNT_PATIENCE).
    pub(crate) bare_shunts: Vec<BareShunt>,
    /// Our installed SAs (inbound and outbound, every member of each group) → (child SA,
    /// inbound), for the datapath's usage reports and lifetime events.
    pub(crate) sa_owner: HashMap<Said, (SerialNo, bool)>,
    /// When the next shunt scan is due (ms).
    pub(crate) next_shunt_scan: u64,
    /// Policy group files and what rswan routes because of them ([`crate::pluto::groups`]).
    pub(crate) groups: super::groups::GroupState,
    /// Opportunistic negotiations waiting for DNS ([`crate::pluto::oe`]).
    pub(crate) oe: super::oe::OeState,
}

impl std::fmt::Debug for Pluto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pluto")
            .field("conns", &self.conns.len())
            .field("sas", &self.sas.len())
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
            provider: crate::crypto::default_provider(),
            conns: Conns::new(),
            secrets: Secrets::default(),
            sas: SaTable::new(),
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
            groups: Default::default(),
            oe: Default::default(),
        }
    }

    /// Loads every `conn` of `conf` whose `auto=` is add, route or start (and routes them,
    /// but does not start them: the shell sends `WhackCmd::Up` for auto=start after
    /// `Listen`, like `ipsec setup`), then the implicit conns (spec 1.5) that no user conn of
    /// the same name overrides (`auto=ignore` disables one); policy group templates are
    /// instantiated from the group files ([`Pluto::load_policy_groups`]). Returns the errors
    /// of user conns that could not be loaded (an implicit conn that cannot be loaded, e.g.
    /// without a default route, is logged).
    pub fn load_conns(&mut self, conf: &IpsecConf) -> Vec<ConfError> {
        let mut errs = Vec::new();
        let implicit = conf.implicit_conns();
        for c in conf.conns.iter().chain(implicit.iter()) {
            let auto = c.params.get_or("auto", "ignore");
            if !matches!(auto, "add" | "route" | "start") {
                continue;
            }
            let is_implicit = super::groups::is_implicit(c);
            if is_implicit && c.name == "packetdefault" {
                // Routed only while opportunistic group instances are (groups module).
                match Connection::from_section(c, &self.cfg) {
                    Ok(conn) => {
                        self.groups.packetdefault_auto_route =
                            matches!(conn.auto, Auto::Route | Auto::Start);
                        self.conns.insert(conn.key(), conn);
                    }
                    Err((_, e)) => {
                        self.log(format!("implicit conn \"packetdefault\" not loaded: {e}"))
                    }
                }
                continue;
            }
            match Connection::from_section(c, &self.cfg) {
                Ok(conn) => {
                    for w in super::connection::key_warnings(c) {
                        self.log(format!("WARNING: {w}"));
                    }
                    if c.params.contains("reauth")
                        && conn.ike_policy.initiate == super::version::IkeVersion::V1
                    {
                        let w = c.params.err_at(
                            "reauth",
                            "reauth= applies to IKEv2 only; ignored for this IKEv1 connection",
                        );
                        self.log(format!("WARNING: {w}"));
                    }
                    let key = conn.key();
                    let route = matches!(conn.auto, Auto::Route | Auto::Start)
                        && !conn.peer_kind.is_group();
                    self.conns.insert(key.clone(), conn);
                    if !is_implicit {
                        self.log(format!("added connection description \"{key}\""));
                    }
                    if route {
                        let _ = self.route_conn(&key);
                    }
                    let onload = self.conns.get(&key).is_some_and(|c| {
                        c.that.dns_key == Some(super::connection::DnsKeyPolicy::OnLoad)
                    });
                    if onload {
                        self.fetch_peer_key(&key, None);
                    }
                }
                Err((_, e)) if is_implicit => {
                    self.log(format!("implicit conn \"{}\" not loaded: {e}", c.name))
                }
                Err((_, e)) => errs.push(e),
            }
        }
        self.instantiate_groups();
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
    /// authenticated peer: a message on an established IKE SA, or one that authenticates the
    /// peer ([`crate::pluto::limits`]).
    pub fn handle_datagram(
        &mut self,
        now_ms: u64,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        data: &[u8],
    ) {
        let (local, remote) = (local.into(), remote.into());
        self.now = now_ms;
        self.unauth = Some(remote.ip());
        self.dispatch_datagram(local, remote, data);
        self.unauth = None;
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

    /// A datapath lifetime event for one of our SAs.
    pub fn handle_sa_event(&mut self, now_ms: u64, e: SaEvent) {
        self.now = now_ms;
        let (said, hard) = match e {
            SaEvent::SoftExpired(s) => (s, false),
            SaEvent::HardExpired(s) => (s, true),
        };
        let Some(&(serial, _)) = self.sa_owner.get(&said) else {
            return;
        };
        if self.sas.child(serial).is_none() {
            return;
        }
        if hard {
            self.slog(serial, "IPsec SA expired in the datapath".into());
            self.delete_sa(serial, true);
        } else {
            self.sa_replace(serial, false);
        }
    }

    /// How long ago the datapath last used each of our SAs: `(said, Some(ms since the last
    /// packet))`, `None` if never used. The shell reports the SAs Pluto installed about once a
    /// second (any subset will do; unknown SAIDs are ignored). Inbound use is a sign of life of
    /// the peer (liveness); use in either direction decides `rekey=no` replacements and the
    /// `used Ns ago` of `--status`.
    pub fn handle_sa_usage(&mut self, now_ms: u64, usage: &[(Said, Option<u64>)]) {
        self.now = now_ms;
        for &(said, idle) in usage {
            let (Some(idle), Some(&(serial, inbound))) = (idle, self.sa_owner.get(&said)) else {
                continue;
            };
            let at = now_ms.saturating_sub(idle);
            let Some(c) = self.sas.child_mut(serial) else {
                continue;
            };
            let slot = if inbound {
                &mut c.used_in
            } else {
                &mut c.used_out
            };
            if slot.is_some_and(|t| t >= at) {
                continue;
            }
            *slot = Some(at);
            if inbound {
                let parent = c.parent();
                let newest = self.conns.get(c.conn()).and_then(|c| c.newest_isakmp);
                for ike in std::iter::once(parent).chain(newest) {
                    if let Some(p) = self.sas.ike_mut(ike) {
                        p.liveness.last_heard = p.liveness.last_heard.max(at);
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

    /// Takes the next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
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

    /// The quoted name of a conn in log lines (`"net"`, `"rw"[1] 192.0.2.9`).
    pub(crate) fn conn_quoted(&self, key: &str) -> String {
        self.conns
            .get(key)
            .map(|c| c.log_name())
            .unwrap_or_else(|| format!("\"{key}\""))
    }

    /// The `"conn" #N:` prefix of an SA.
    pub(crate) fn sprefix(&self, serial: SerialNo) -> String {
        let Some(key) = self.sas.conn_of(serial) else {
            return format!("#{serial}");
        };
        let mut name = self.conn_quoted(key);
        if let (Some(ike), Some(c)) = (self.sas.ike(serial), self.conns.get(key)) {
            if ike.template && c.is_template() {
                name = format!("{} {}", c.quoted(), ike.remote.ip());
            }
        }
        format!("{name} #{serial}")
    }

    /// Logs a line about an SA (and copies it to its whack client as code 002).
    pub(crate) fn slog(&mut self, serial: SerialNo, text: String) {
        self.slog_code(serial, rc::LOG, text);
    }

    /// Logs a line about an SA with a whack code for its client.
    pub(crate) fn slog_code(&mut self, serial: SerialNo, code: u16, text: String) {
        let line = format!("{}: {}", self.sprefix(serial), text);
        let line = crate::sanitize::escape_text(&line).into_owned();
        self.log(line.clone());
        let client = self
            .sas
            .ike(serial)
            .and_then(|s| s.whack)
            .or_else(|| self.sas.child(serial).and_then(|c| c.whack));
        if let Some(c) = client {
            self.out.push_back(Output::Whack {
                client: c,
                code,
                text: line,
            });
        }
    }

    /// Logs a state transition `STATE_X: story` with whack code 100+n (or 004 once
    /// established).
    pub(crate) fn log_transition(&mut self, serial: SerialNo, extra: &str) {
        let Some((info, established)) = self.state_info(serial) else {
            return;
        };
        let code = if established {
            rc::SUCCESS
        } else {
            rc::NEW_STATE + info.number
        };
        self.slog_code(
            serial,
            code,
            format!("{}: {}{}", info.name, info.story, extra),
        );
    }

    /// The `cannot respond… no connection is known` text form of a host/client pair.
    pub(crate) fn fmt_pair(
        our_client: &Subnet,
        me: IpAddr,
        our_id: &Id,
        peer: IpAddr,
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

    // -----------------------------------------------------------------------------------
    // Messages and randomness.

    pub(crate) fn rng(&mut self) -> InjectedRng<'_> {
        InjectedRng(&mut *self.rng)
    }

    pub(crate) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    /// Sends a message for an SA and remembers it for retransmission (and for answering a
    /// duplicate of the peer's last message).
    pub(crate) fn send_for(
        &mut self,
        serial: SerialNo,
        local: SocketAddr,
        remote: SocketAddr,
        msg: Vec<u8>,
    ) {
        let wire = if local.port() == NAT_T_PORT {
            add_non_esp_marker(&msg)
        } else {
            msg
        };
        if let Some(rtx) = self.sas.rtx_mut(serial) {
            rtx.last_sent = Some((local, remote, wire.clone()));
            rtx.extra_sent.clear();
        }
        self.out.push_back(Output::Send {
            local,
            remote,
            data: wire,
        });
    }

    /// Sends a message unrelated to retransmission.
    pub(crate) fn send_raw(&mut self, local: SocketAddr, remote: SocketAddr, msg: Vec<u8>) {
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

    /// Sends a message of several datagrams (IKEv2 fragments) for an SA and remembers them
    /// for retransmission, as [`Pluto::send_for`] does for one.
    pub(crate) fn send_all_for(
        &mut self,
        serial: SerialNo,
        local: SocketAddr,
        remote: SocketAddr,
        mut msgs: Vec<Vec<u8>>,
    ) {
        let Some(last) = msgs.pop() else {
            return;
        };
        let marker = local.port() == NAT_T_PORT;
        let extra: Vec<Vec<u8>> = msgs
            .into_iter()
            .map(|m| if marker { add_non_esp_marker(&m) } else { m })
            .collect();
        for d in &extra {
            self.out.push_back(Output::Send {
                local,
                remote,
                data: d.clone(),
            });
        }
        self.send_for(serial, local, remote, last);
        if let Some(rtx) = self.sas.rtx_mut(serial) {
            rtx.extra_sent = extra;
        }
    }

    /// Resends the last message of an SA (a duplicate was received, or retransmission).
    pub(crate) fn resend_last(&mut self, serial: SerialNo) {
        if let Some((l, r, _)) = self.sas.rtx(serial).and_then(|x| x.last_sent.clone()) {
            let extra = self
                .sas
                .rtx(serial)
                .map(|x| x.extra_sent.clone())
                .unwrap_or_default();
            for d in extra {
                self.out.push_back(Output::Send {
                    local: l,
                    remote: r,
                    data: d,
                });
            }
        }
        if let Some((l, r, d)) = self.sas.rtx(serial).and_then(|x| x.last_sent.clone()) {
            self.out.push_back(Output::Send {
                local: l,
                remote: r,
                data: d,
            });
        }
    }
}
