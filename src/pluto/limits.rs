//! Resource bounds against hostile peers, and the rate limit on log lines caused by
//! unauthenticated input.
//!
//! # Half-open Main Mode responder states
//!
//! An MI1 costs the responder a state (no DH yet) and an MR1. Anyone can send MI1s claiming any
//! source address, so the half-open states are bounded per address (`max_half_open_per_peer`)
//! and in total (`max_half_open`), but a bound that *refuses* newcomers lets 16 spoofed MI1s
//! lock a configured peer out until they time out. So a bound, when reached, evicts instead:
//!
//! * A state that has received MI2 is *proven*: the peer received our MR1 at the address it
//!   claims (it echoed our responder cookie), and we have done DH for it. Proven states are
//!   never evicted for an MI1; an MI1 that finds only proven states in its way is refused.
//! * Per address: the address's oldest unproven state (MR1 sent, no MI2) makes room. The
//!   genuine peer's state is then evicted only by as many newer MI1s claiming its address as
//!   the bound, all arriving within the one round trip it takes the peer to answer MR1.
//! * In total (and when the state table is full, `max_states`): the oldest unproven state of a
//!   template (`right=%any`) conn makes room; an MI1 for a configured peer may also evict the
//!   oldest unproven state of the configured address holding the most half-open states. A
//!   random-source flood therefore never evicts a configured peer's exchange, and a road
//!   warrior's state survives `max_half_open` newer flood MI1s.
//!
//! As initiator we keep to the same bound: at most `max_half_open_per_peer` of our Main Modes
//! to one address are in flight (not yet past MI3); further ones wait in order
//! (`WaitingMainMode`, listed in `--status`) and start as those finish — or, if by then an
//! ISAKMP SA with the same hosts and IDs is up, do their Quick Mode over it. A burst of conns
//! towards one peer thus never makes the peer evict our own exchanges.
//!
//! Responder cookies are a keyed hash of the initiator cookie and both endpoints (RFC 2408
//! 2.5.3), so an MI1 retransmitted after its state was evicted gets the same MR1 again, and an
//! MI2 that arrives for an evicted (or timed-out) state is recognised and counted.
//!
//! # Authenticated peers
//!
//! A Quick Mode responder refuses a new request when the state table is full (`max_states`),
//! when the peer (its authenticated ID) already has `max_quick_modes_per_peer` Quick Modes in
//! progress or `max_ipsec_sas_per_peer` IPsec SAs. Refused requests are dropped: the peer
//! retransmits. A responder that establishes an ISAKMP SA beyond `max_isakmp_sas_per_peer`
//! for that ID deletes the peer's oldest ones.
//!
//! # Log lines
//!
//! Log lines produced while handling a datagram that is not (yet) authenticated — everything
//! but messages on an established ISAKMP SA, up to the point an MI3/MR3 verifies — and the
//! deletion of half-open states go through a [`RateLimiter`] keyed by the packet's source
//! ([`UNAUTH_LOG_LIMITS`]), with a summary line when lines were suppressed. So do the lines of
//! every bound above. Every line is escaped ([`crate::sanitize::escape_text`]).
//!
//! Every hit is counted in [`LimitCounters`] ([`Pluto::limit_counters`], `--status`).

use crate::pluto::ids::{SerialNo, WhackClient};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::secrets::Id;
use crate::pluto::crypto::Prf;
use crate::pluto::engine::Pluto;
use crate::pluto::sa::{ChildSa, IkeSa, PendingChild};
use crate::ratelimit::{Limits, Rate, RateLimiter};

/// Default most half-open Main Mode responder states in total (`PlutoConfig::max_half_open`).
pub const MAX_HALF_OPEN: usize = 1024;
/// Default most half-open Main Mode responder states per peer address
/// (`PlutoConfig::max_half_open_per_peer`).
pub const MAX_HALF_OPEN_PER_PEER: usize = 16;
/// Default most states of any kind (`PlutoConfig::max_states`): new negotiations, Main Mode
/// and Quick Mode responders alike, are refused beyond it.
pub const MAX_STATES: usize = 16384;
/// Default most established ISAKMP SAs per authenticated peer ID
/// (`PlutoConfig::max_isakmp_sas_per_peer`); a responder deletes the oldest beyond it.
pub const MAX_ISAKMP_SAS_PER_PEER: usize = 64;
/// Default most IPsec SAs (established, or inbound half of a responder's Quick Mode) per
/// authenticated peer ID (`PlutoConfig::max_ipsec_sas_per_peer`); a Quick Mode responder
/// refuses new ones beyond it.
pub const MAX_IPSEC_SAS_PER_PEER: usize = 256;
/// Default most Quick Modes a peer ID may have in progress with us as responder
/// (`PlutoConfig::max_quick_modes_per_peer`).
pub const MAX_QUICK_MODES_PER_PEER: usize = 64;

/// The rate limit on log lines caused by unauthenticated packets: per source address a burst
/// of 20 lines then one a second; in total a burst of 100 then ten a second; 1,024 source
/// addresses remembered; a "similar messages suppressed" summary 10 s after the first
/// suppressed line of a period.
pub const UNAUTH_LOG_LIMITS: Limits = Limits {
    per_source: Rate {
        burst: 20,
        interval_ms: 1000,
    },
    total: Rate {
        burst: 100,
        interval_ms: 100,
    },
    max_sources: 1024,
    summary_ms: 10_000,
};

/// How often each bound was hit since start ([`Pluto::limit_counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounters {
    /// Unproven half-open Main Mode responder states evicted to make room for a newer MI1.
    pub half_open_evicted: u64,
    /// MI1s refused: the half-open states in the way had all received MI2.
    pub half_open_refused: u64,
    /// Main Mode messages for a half-open state that was evicted or timed out (the responder
    /// cookie was ours).
    pub half_open_late: u64,
    /// New negotiations (MI1, QI1) refused because the state table was full.
    pub states_refused: u64,
    /// ISAKMP SAs deleted because their peer ID had more than `max_isakmp_sas_per_peer`.
    pub isakmp_sas_deleted: u64,
    /// Quick Mode requests refused: the peer had `max_ipsec_sas_per_peer` IPsec SAs.
    pub ipsec_sas_refused: u64,
    /// Quick Mode requests refused: the peer had `max_quick_modes_per_peer` in progress.
    pub quick_modes_refused: u64,
    /// Log lines about unauthenticated input (or bounds hit) suppressed by the rate limit.
    pub log_lines_suppressed: u64,
    /// Log lines dropped because the output queue was full.
    pub log_lines_dropped: u64,
}

/// Which bound an MI1 ran into.
#[derive(Clone, Copy)]
enum HalfOpenBound {
    PerAddress,
    Total,
    States,
}

/// The rate limiter Pluto starts with.
pub(crate) fn unauth_log_limiter() -> RateLimiter<IpAddr> {
    RateLimiter::new(UNAUTH_LOG_LIMITS)
}

impl Pluto {
    /// How often each resource bound was hit, and how many log lines the rate limit
    /// suppressed (for `ipsec look` / `--status`).
    pub fn limit_counters(&self) -> LimitCounters {
        self.limits_hit
    }

    /// Our responder cookie for an MI1 with initiator cookie `icky` between `local` and
    /// `remote`: HMAC-SHA256 over both under a secret of this process (RFC 2408 2.5.3).
    pub(crate) fn responder_cookie(
        &self,
        icky: &[u8; 8],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> [u8; 8] {
        let mac = Prf::HmacSha256.prf(
            &self.cookie_secret,
            &[
                icky,
                &crate::addr::ip_octets(remote.ip()),
                &remote.port().to_be_bytes(),
                &crate::addr::ip_octets(local.ip()),
                &local.port().to_be_bytes(),
            ],
        );
        let mut c = [0u8; 8];
        c.copy_from_slice(&mac[..8]);
        if c == [0; 8] {
            c[7] = 1;
        }
        c
    }

    /// Makes room for a new half-open responder state for an MI1 from `remote` (`configured`:
    /// its conn names that address, i.e. it is no template's). `false`: refuse the MI1.
    pub(crate) fn admit_half_open(&mut self, remote: SocketAddr, configured: bool) -> bool {
        let peer = remote.ip();
        let (mut total, from_peer) = self.half_open_census(peer);
        if from_peer >= self.cfg.max_half_open_per_peer {
            match self.oldest_unproven(|s: &IkeSa| s.remote.ip() == peer) {
                Some(v) => {
                    self.evict_half_open(v, remote, HalfOpenBound::PerAddress);
                    total = total.saturating_sub(1);
                }
                None => return self.refuse_half_open(remote, HalfOpenBound::PerAddress),
            }
        }
        let bound = if self.sas.len() >= self.cfg.max_states {
            Some(HalfOpenBound::States)
        } else if total >= self.cfg.max_half_open {
            Some(HalfOpenBound::Total)
        } else {
            None
        };
        if let Some(bound) = bound {
            let victim = self.oldest_unproven(|s: &IkeSa| s.template).or_else(|| {
                if configured {
                    self.heaviest_configured_unproven()
                } else {
                    None
                }
            });
            match victim {
                Some(v) => self.evict_half_open(v, remote, bound),
                None => return self.refuse_half_open(remote, bound),
            }
        }
        true
    }

    /// (half-open responder states, those of them from `peer`).
    fn half_open_census(&mut self, peer: IpAddr) -> (usize, usize) {
        let mut total = 0;
        let mut from_peer = 0;
        for s in self.sas.half_open_ikes() {
            total += 1;
            if s.remote.ip() == peer {
                from_peer += 1;
            }
        }
        (total, from_peer)
    }

    /// The oldest unproven (no MI2 yet) half-open responder state matching `pred`.
    fn oldest_unproven(&mut self, pred: impl Fn(&IkeSa) -> bool) -> Option<SerialNo> {
        // Serials grow with creation: the index's order is age. Unproven states are half-open.
        self.sas
            .half_open_ikes()
            .filter(|s| s.exchange.unproven_responder())
            .find(|s| !s.initiator && pred(s))
            .map(|s| s.serial())
    }

    /// The oldest unproven state of the configured peer address with the most half-open
    /// states.
    fn heaviest_configured_unproven(&mut self) -> Option<SerialNo> {
        let mut by_addr: HashMap<IpAddr, (usize, SerialNo)> = HashMap::new();
        for s in self.sas.half_open_ikes() {
            if s.exchange.unproven_responder() && !s.template && !s.initiator {
                let e = by_addr.entry(s.remote.ip()).or_insert((0, s.serial()));
                e.0 += 1;
                e.1 = e.1.min(s.serial());
            }
        }
        by_addr
            .into_values()
            .max_by_key(|&(n, oldest)| (n, std::cmp::Reverse(oldest)))
            .map(|(_, oldest)| oldest)
    }

    fn bound_text(&self, bound: HalfOpenBound, peer: IpAddr) -> String {
        match bound {
            HalfOpenBound::PerAddress => format!(
                "from {peer} (max_half_open_per_peer={})",
                self.cfg.max_half_open_per_peer
            ),
            HalfOpenBound::Total => format!("(max_half_open={})", self.cfg.max_half_open),
            HalfOpenBound::States => {
                format!("(state table full, max_states={})", self.cfg.max_states)
            }
        }
    }

    fn evict_half_open(&mut self, victim: SerialNo, newcomer: SocketAddr, bound: HalfOpenBound) {
        self.limits_hit.half_open_evicted += 1;
        let (from, age) = match self.sas.ike(victim) {
            Some(s) => (
                s.remote.to_string(),
                self.now.saturating_sub(s.created) / 1000,
            ),
            None => return,
        };
        let why = self.bound_text(bound, newcomer.ip());
        self.log_limited(
            newcomer.ip(),
            format!(
                "packet from {newcomer}: too many half-open Main Mode states {why}; evicting #{victim} (MI1 from {from} {age}s ago, no MI2 since)"
            ),
        );
        self.delete_sa(victim, false);
    }

    fn refuse_half_open(&mut self, remote: SocketAddr, bound: HalfOpenBound) -> bool {
        match bound {
            HalfOpenBound::States => self.limits_hit.states_refused += 1,
            _ => self.limits_hit.half_open_refused += 1,
        }
        let why = self.bound_text(bound, remote.ip());
        self.log_limited(
            remote.ip(),
            format!(
                "packet from {remote}: too many half-open Main Mode states {why}, none of them evictable; MI1 dropped"
            ),
        );
        false
    }

    /// A Main Mode message for unknown cookies whose responder cookie is ours: the state it
    /// belonged to was evicted or timed out.
    pub(crate) fn late_for_half_open(
        &mut self,
        icky: &[u8; 8],
        rcky: &[u8; 8],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> bool {
        if *rcky != self.responder_cookie(icky, local, remote) {
            return false;
        }
        self.limits_hit.half_open_late += 1;
        self.log(format!(
            "packet from {remote}: Main Mode message for a half-open state that was evicted or timed out; dropped"
        ));
        true
    }

    /// Whether child SA `c` belongs to the peer with authenticated ID `id`: its IKE SA's peer
    /// ID, or (that SA gone) its conn's peer ID or address.
    fn child_peer_is(&self, c: &ChildSa, id: &Id) -> bool {
        if let Some(pid) = self.sas.ike(c.parent()).and_then(|p| p.peer_id.as_ref()) {
            return pid == id;
        }
        match self.conns.get(c.conn()) {
            Some(c) if c.that.id != Id::Any => c.that.id == *id,
            Some(c) => c.that.host.is_some_and(|h| Id::from_ip(h) == *id),
            None => false,
        }
    }

    /// Quick Mode responder admission for a new request on ISAKMP SA `p1`: the state table and
    /// the peer's Quick Modes in progress and IPsec SAs. `false`: drop the request (logged,
    /// rate-limited, and counted).
    pub(crate) fn admit_quick_responder(&mut self, p1: SerialNo) -> bool {
        let Some((remote, id)) = self.sas.ike(p1).map(|p| {
            (
                p.remote.ip(),
                p.peer_id.clone().unwrap_or(Id::from_ip(p.remote.ip())),
            )
        }) else {
            return false;
        };
        let why = if self.sas.len() >= self.cfg.max_states {
            self.limits_hit.states_refused += 1;
            format!("state table full (max_states={})", self.cfg.max_states)
        } else {
            let (mut in_progress, mut sas) = (0usize, 0usize);
            for s in self.sas.children() {
                // Responders in progress (inbound SAs installed) and established SAs.
                let counted = match (s.established, s.initiator) {
                    (false, false) => (true, true),
                    (true, _) => (false, true),
                    (false, true) => continue,
                };
                if self.child_peer_is(s, &id) {
                    in_progress += usize::from(counted.0);
                    sas += usize::from(counted.1);
                }
            }
            if in_progress >= self.cfg.max_quick_modes_per_peer {
                self.limits_hit.quick_modes_refused += 1;
                format!(
                    "peer '{id}' has {in_progress} Quick Modes in progress (max_quick_modes_per_peer={})",
                    self.cfg.max_quick_modes_per_peer
                )
            } else if sas >= self.cfg.max_ipsec_sas_per_peer {
                self.limits_hit.ipsec_sas_refused += 1;
                format!(
                    "peer '{id}' has {sas} IPsec SAs (max_ipsec_sas_per_peer={})",
                    self.cfg.max_ipsec_sas_per_peer
                )
            } else {
                return true;
            }
        };
        let prefix = self.sprefix(p1);
        self.log_limited(
            remote,
            format!("{prefix}: Quick Mode request refused: {why}; dropped"),
        );
        false
    }

    /// After a responder established ISAKMP SA `serial`: deletes the oldest ISAKMP SAs of the
    /// same peer ID beyond `max_isakmp_sas_per_peer` (with a Delete to the peer).
    pub(crate) fn bound_isakmp_sas_per_peer(&mut self, serial: SerialNo) {
        let Some((remote, id)) = self
            .sas
            .ike(serial)
            .and_then(|p| Some((p.remote.ip(), p.peer_id.clone()?)))
        else {
            return;
        };
        let max = self.cfg.max_isakmp_sas_per_peer.max(1);
        let mut same = self.sas.ikes_with_peer_id(&id);
        same.retain(|s| self.sas.ike(*s).is_some_and(|p| p.established));
        let excess = same.len().saturating_sub(max);
        for old in same.into_iter().filter(|s| *s != serial).take(excess) {
            self.limits_hit.isakmp_sas_deleted += 1;
            let prefix = self.sprefix(old);
            self.log_limited(
                remote,
                format!(
                    "{prefix}: peer '{id}' has more than {max} ISAKMP SAs (max_isakmp_sas_per_peer); deleting this oldest one"
                ),
            );
            let key = self.sas.conn_of(old).map(str::to_string);
            self.delete_sa(old, true);
            if let Some(k) = key {
                self.instance_gc(&k);
            }
        }
    }

    /// Logs `line` through the rate limit of source `src` (or counts it as suppressed).
    pub(crate) fn log_limited(&mut self, src: IpAddr, line: String) {
        if self.log_limiter.allow(self.now, &src) {
            self.emit_log(line);
        } else {
            self.limits_hit.log_lines_suppressed += 1;
        }
    }

    /// Emits the rate limiter's summary line if one is due.
    pub(crate) fn flush_log_summary(&mut self) {
        let Some(s) = self.log_limiter.summary(self.now) else {
            return;
        };
        let top = match s.top.0 {
            Some(ip) => ip.to_string(),
            None => "sources beyond the table".into(),
        };
        let line = format!(
            "rate limit: {} similar messages suppressed in the last {}s (about unauthenticated packets or bounds hit, from {} source{}; most from {top}: {})",
            s.suppressed,
            s.period_ms.div_ceil(1000),
            s.sources,
            if s.sources == 1 { "" } else { "s" },
            s.top.1
        );
        self.push_log(line);
    }

    /// The `limits` lines of `--status`: the bounds in force and how often each was hit.
    pub(crate) fn limit_status_lines(&self, v: &mut Vec<String>) {
        let half_open = self
            .sas
            .ikes()
            .filter(|s| s.exchange.half_open_responder())
            .count();
        let c = &self.cfg;
        v.push(format!(
            "limits: states {}/{}; half-open {half_open}/{} ({} per address); per peer: {} ISAKMP SAs, {} IPsec SAs, {} Quick Modes in progress",
            self.sas.len(),
            c.max_states,
            c.max_half_open,
            c.max_half_open_per_peer,
            c.max_isakmp_sas_per_peer,
            c.max_ipsec_sas_per_peer,
            c.max_quick_modes_per_peer
        ));
        let h = &self.limits_hit;
        v.push(format!(
            "limits hit: half-open evicted {}, dropped {}, late {}; state table full {}; per peer: ISAKMP SAs deleted {}, Quick Modes dropped at the IPsec SA limit {}, at the Quick Mode limit {}; log lines suppressed {}, dropped {}",
            h.half_open_evicted,
            h.half_open_refused,
            h.half_open_late,
            h.states_refused,
            h.isakmp_sas_deleted,
            h.ipsec_sas_refused,
            h.quick_modes_refused,
            h.log_lines_suppressed,
            h.log_lines_dropped
        ));
        v.push(" ".into());
    }
}

/// A Main Mode we are to initiate, waiting because `max_half_open_per_peer` of ours to the same
/// address have not got past MI3 yet (a responder would evict the oldest beyond that).
#[derive(Debug, Clone)]
pub(crate) struct WaitingMainMode {
    /// The conn.
    pub(crate) key: String,
    /// Its peer's address.
    pub(crate) peer: IpAddr,
    /// Whack client to report to.
    pub(crate) whack: Option<WhackClient>,
    /// Keying attempt.
    pub(crate) try_no: u32,
    /// The child SA to negotiate once established.
    pub(crate) pending: Option<PendingChild>,
    /// ISAKMP SA this one replaces (0: none).
    pub(crate) replacing: Option<SerialNo>,
}

impl Pluto {
    /// Our Main Modes to `peer` that have not got past MI3 (the peer holds a half-open state
    /// for each).
    fn main_modes_in_flight(&self, peer: IpAddr) -> usize {
        self.sas
            .ikes()
            .filter(|s| s.initiator && !s.established && s.remote.ip() == peer)
            .count()
    }

    /// Before initiating Main Mode for `key` to `peer`: if `max_half_open_per_peer` of ours to
    /// that address are in flight, queue it (or, already queued, take the whack client along)
    /// and return `true`.
    pub(crate) fn wait_for_main_mode_room(
        &mut self,
        key: &str,
        peer: IpAddr,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing: Option<SerialNo>,
    ) -> bool {
        if let Some(w) = self.mm_waiting.iter_mut().find(|w| w.key == key) {
            match (w.whack, whack) {
                (None, Some(c)) => w.whack = Some(c),
                (Some(_), Some(c)) => self.whack_done(c, 0),
                _ => {}
            }
            return true;
        }
        let n = self.main_modes_in_flight(peer);
        if n < self.cfg.max_half_open_per_peer.max(1) {
            return false;
        }
        let line = format!(
            "{}: {n} Main Modes to {peer} in progress (max_half_open_per_peer); waiting for one to finish",
            self.conn_quoted(key)
        );
        self.log(line.clone());
        if let Some(c) = whack {
            self.out.push_back(crate::pluto::Output::Whack {
                client: c,
                code: crate::pluto::rc::LOG,
                text: line,
            });
        }
        self.mm_waiting.push_back(WaitingMainMode {
            key: key.to_string(),
            peer,
            whack,
            try_no,
            pending,
            replacing,
        });
        true
    }

    /// One of our Main Modes to `peer` got past MI3 or ended: start waiting ones while there
    /// is room. One whose conn can now run its Quick Mode over an established ISAKMP SA (its
    /// own, or another conn's with the same hosts and IDs) does so instead.
    pub(crate) fn start_waiting_main_mode(&mut self, peer: IpAddr) {
        while self.main_modes_in_flight(peer) < self.cfg.max_half_open_per_peer.max(1) {
            let Some(i) = self.mm_waiting.iter().position(|w| w.peer == peer) else {
                return;
            };
            let Some(w) = self.mm_waiting.remove(i) else {
                return;
            };
            let established = self
                .own_established_ike(&w.key)
                .or_else(|| self.shared_ike_sa(&w.key));
            match (w.pending, w.replacing, established) {
                (Some(pq), None, Some(p1)) => {
                    self.initiate_child(p1, &w.key, w.whack, pq.replacing, 1)
                }
                _ => self.initiate_ike(&w.key, w.whack, w.try_no, w.pending, w.replacing),
            }
        }
    }

    /// The conn is going down or away: forget its waiting Main Mode, releasing its whack.
    pub(crate) fn drop_waiting_main_mode(&mut self, key: &str) {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.mm_waiting)
            .into_iter()
            .partition(|w| w.key == key);
        self.mm_waiting = keep.into();
        for w in gone {
            if let Some(c) = w.whack {
                self.whack_done(
                    c,
                    crate::pluto::output::whack_status(crate::pluto::rc::NORETRANSMISSION),
                );
            }
        }
    }
}
