//! One timer table for every SA, and what the engine does when a timer fires: retransmission
//! and the keying-attempt policy, discarding half-open states, rekeying (make-before-break),
//! expiry, liveness (DPD) and NAT keepalives.
//!
//! [`TimerTable`] is keyed by (due time, serial, [`TimerKind`]); [`Pluto::poll_timeout`] is
//! its minimum (or the log rate limiter's summary, if sooner). An SA has at most one timer of
//! each slot: its lifecycle event (retransmit, discard, replace, replace-if-used or expire —
//! the `EVENT_…` of `--status`, re-arming replaces it), its liveness probe and its NAT
//! keepalive. Timers go with the SA ([`crate::pluto::sa::SaTable::remove`]).

use std::collections::{BTreeSet, HashMap};

use crate::pluto::connection::DpdAction;
use crate::pluto::engine::Pluto;
use crate::pluto::ids::SerialNo;
use crate::pluto::natt::NAT_KEEPALIVE;
use crate::pluto::output::{rc, whack_status, Output};
use crate::pluto::sa::PendingChild;

/// Retransmission base delay (ms): sends at 0, 10, 30 s; give up at 70 s.
pub const RETRANSMIT_BASE_MS: u64 = 10_000;
/// Retransmissions before giving up.
pub const MAX_RETRANSMISSIONS: u32 = 2;
/// Retransmissions of an IKE SA's first message when keyingtries is %forever.
pub const MAX_RETRANSMISSIONS_INITIAL: u32 = 20;
/// How long a half-open responder state lives (ms).
pub const HALF_OPEN_TIMEOUT_MS: u64 = 60_000;

/// What a timer does when it fires (Pluto's event names, spec 5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// Send a NAT keepalive (RFC 3948) to the peer of an IKE SA that floated to port 4500.
    NatKeepalive,
    /// Liveness check of an IKE SA's peer (IKEv1 DPD, RFC 3706).
    Liveness,
    /// Resend the last message.
    Retransmit,
    /// Resend an established IKE SA's outstanding INFORMATIONAL request (IKEv2: every request
    /// is retransmitted until answered, RFC 7296 2.1).
    RequestRetransmit,
    /// Discard a half-open or failed state.
    SoDiscard,
    /// Time to rekey.
    SaReplace,
    /// Time to rekey if the SA was used during the rekey margin (`rekey=no` initiator, spec 7).
    SaReplaceIfUsed,
    /// Lifetime over.
    SaExpire,
}

/// The slot a timer kind occupies: an SA has at most one timer per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerSlot {
    /// [`TimerKind::NatKeepalive`].
    Keepalive,
    /// [`TimerKind::Liveness`].
    Liveness,
    /// [`TimerKind::RequestRetransmit`] (beside an established IKE SA's rekey event).
    Request,
    /// The lifecycle event: retransmit, discard, replace, replace-if-used or expire.
    Event,
}

impl TimerKind {
    /// `EVENT_…` name.
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::NatKeepalive => "EVENT_NAT_T_KEEPALIVE",
            TimerKind::Liveness => "EVENT_DPD",
            TimerKind::Retransmit | TimerKind::RequestRetransmit => "EVENT_RETRANSMIT",
            TimerKind::SoDiscard => "EVENT_SO_DISCARD",
            TimerKind::SaReplace => "EVENT_SA_REPLACE",
            TimerKind::SaReplaceIfUsed => "EVENT_SA_REPLACE_IF_USED",
            TimerKind::SaExpire => "EVENT_SA_EXPIRE",
        }
    }

    /// Its slot.
    pub fn slot(self) -> TimerSlot {
        match self {
            TimerKind::NatKeepalive => TimerSlot::Keepalive,
            TimerKind::Liveness => TimerSlot::Liveness,
            TimerKind::RequestRetransmit => TimerSlot::Request,
            _ => TimerSlot::Event,
        }
    }
}

/// Every armed timer, ordered by due time.
#[derive(Debug, Default)]
pub struct TimerTable {
    queue: BTreeSet<(u64, SerialNo, TimerKind)>,
    armed: HashMap<(SerialNo, TimerSlot), (u64, TimerKind)>,
}

impl TimerTable {
    /// Arms `kind` for SA `s` at `at` (ms), replacing the timer in the same slot.
    pub fn set(&mut self, s: SerialNo, kind: TimerKind, at: u64) {
        if let Some((old_at, old)) = self.armed.insert((s, kind.slot()), (at, kind)) {
            self.queue.remove(&(old_at, s, old));
        }
        self.queue.insert((at, s, kind));
    }

    /// Disarms the timer of SA `s` in `slot`, if any.
    pub fn clear(&mut self, s: SerialNo, slot: TimerSlot) {
        if let Some((at, kind)) = self.armed.remove(&(s, slot)) {
            self.queue.remove(&(at, s, kind));
        }
    }

    /// Disarms every timer of SA `s`.
    pub fn clear_all(&mut self, s: SerialNo) {
        for slot in [
            TimerSlot::Keepalive,
            TimerSlot::Liveness,
            TimerSlot::Request,
            TimerSlot::Event,
        ] {
            self.clear(s, slot);
        }
    }

    /// The timer of SA `s` in `slot`: (due, kind).
    pub fn get(&self, s: SerialNo, slot: TimerSlot) -> Option<(u64, TimerKind)> {
        self.armed.get(&(s, slot)).copied()
    }

    /// The lifecycle event of SA `s` (the `EVENT_…` of `--status`): (due, kind).
    pub fn event(&self, s: SerialNo) -> Option<(u64, TimerKind)> {
        self.get(s, TimerSlot::Event)
    }

    /// Whether exactly this timer is still armed.
    pub fn is_armed(&self, s: SerialNo, kind: TimerKind, at: u64) -> bool {
        self.armed.get(&(s, kind.slot())) == Some(&(at, kind))
    }

    /// When the next timer is due (ms).
    pub fn next_due(&self) -> Option<u64> {
        self.queue.first().map(|t| t.0)
    }

    /// The timers due at `now`, in (due, serial, kind) order (they stay armed).
    pub fn due(&self, now: u64) -> Vec<(u64, SerialNo, TimerKind)> {
        self.queue
            .iter()
            .take_while(|t| t.0 <= now)
            .copied()
            .collect()
    }

    /// The SAs with a timer armed.
    pub fn serials(&self) -> impl Iterator<Item = SerialNo> + '_ {
        self.armed.keys().map(|k| k.0)
    }

    /// Checks that the queue and the slots hold the same timers.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.queue.len() != self.armed.len() {
            return Err(format!(
                "{} timers queued, {} armed",
                self.queue.len(),
                self.armed.len()
            ));
        }
        for &(at, s, kind) in &self.queue {
            if !self.is_armed(s, kind, at) {
                return Err(format!("queued timer {} of #{s} is not armed", kind.name()));
            }
        }
        Ok(())
    }
}

/// The retransmission and keying-attempt policy (FreeS/WAN's): a request is resent after
/// 10 s and 20 s more and given up 40 s after that; an IKE SA initiator whose first message
/// gets no answer at all keeps resending every 40 s for a while when `keyingtries=%forever`.
/// A keying attempt that gave up starts the next one until `keyingtries` (0: forever) are
/// spent.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// `keyingtries=` of the conn (0: %forever).
    pub keyingtries: u32,
}

impl RetryPolicy {
    /// The delay before the next retransmission after `sent` of them, or `None` to give up.
    /// `first_message`: an IKE SA initiator still waiting for any answer.
    pub fn next_delay(&self, sent: u32, first_message: bool) -> Option<u64> {
        if sent < MAX_RETRANSMISSIONS {
            Some(RETRANSMIT_BASE_MS << (sent + 1))
        } else if first_message && self.keyingtries == 0 && sent < MAX_RETRANSMISSIONS_INITIAL {
            Some(RETRANSMIT_BASE_MS << MAX_RETRANSMISSIONS)
        } else {
            None
        }
    }

    /// Whether another keying attempt follows attempt `try_no`.
    pub fn try_again(&self, try_no: u32) -> bool {
        self.keyingtries == 0 || try_no < self.keyingtries
    }

    /// `an unlimited number` / `at most N` (the attempt log line).
    pub fn attempts_text(&self) -> String {
        if self.keyingtries == 0 {
            "an unlimited number".to_string()
        } else {
            format!("at most {}", self.keyingtries)
        }
    }
}

impl Pluto {
    /// The next time [`Pluto::handle_timeout`] wants to run (ms), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        [self.sas.timers.next_due(), self.log_limiter.summary_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs every timer due at `now_ms`, in (due, serial, kind) order; a timer that an
    /// earlier one re-armed or cleared is skipped.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now = now_ms;
        self.flush_log_summary();
        for (at, serial, kind) in self.sas.timers.due(now_ms) {
            if !self.sas.timers.is_armed(serial, kind, at) {
                continue;
            }
            self.sas.timers.clear(serial, kind.slot());
            match kind {
                TimerKind::NatKeepalive => self.send_keepalive(serial),
                TimerKind::Liveness => self.liveness_event(serial),
                TimerKind::Retransmit => self.event_retransmit(serial),
                TimerKind::RequestRetransmit => self.retransmit_request(serial),
                TimerKind::SoDiscard => self.event_discard(serial),
                TimerKind::SaReplace => self.sa_replace(serial, false),
                TimerKind::SaReplaceIfUsed => self.sa_replace(serial, true),
                TimerKind::SaExpire => {
                    self.slog(serial, "SA expired".into());
                    self.delete_sa(serial, true)
                }
            }
        }
    }

    /// Arms `kind` for SA `serial`, `after_ms` from now (nothing if the SA is gone).
    pub(crate) fn schedule(&mut self, serial: SerialNo, after_ms: u64, kind: TimerKind) {
        if self.sas.contains(serial) {
            let at = self.now.saturating_add(after_ms);
            self.sas.timers.set(serial, kind, at);
        }
    }

    /// EVENT_SO_DISCARD: a half-open responder state (or a failed one) goes.
    fn event_discard(&mut self, serial: SerialNo) {
        if let Some(ike) = self.sas.ike(serial) {
            if ike.exchange.half_open_responder() {
                // Caused by an unauthenticated first message: rate-limited as it was.
                self.unauth = Some(ike.remote.ip());
                self.slog(
                    serial,
                    "deleting half-open state (no MI2/MI3 from peer)".into(),
                );
                self.unauth = None;
            }
        }
        let key = self.sas.conn_of(serial).map(str::to_string);
        self.delete_sa(serial, false);
        // An opportunistic responder's instance made for this first message goes with it.
        if let Some(k) = key {
            self.instance_gc(&k);
        }
    }

    /// EVENT_RETRANSMIT of an initiator (or of a child SA responder waiting for the last
    /// message): resend, or give up this keying attempt and start the next one as
    /// [`RetryPolicy`] allows.
    pub(crate) fn event_retransmit(&mut self, serial: SerialNo) {
        let (info, n, key, first, why) = match (self.sas.ike(serial), self.sas.child(serial)) {
            (Some(s), _) => (
                s.exchange.info(),
                s.rtx.count,
                s.conn().to_string(),
                s.exchange.awaiting_first_response(),
                s.exchange.give_up_reason(),
            ),
            (None, Some(c)) => (
                c.exchange.info(),
                c.rtx.count,
                c.conn().to_string(),
                false,
                c.exchange.give_up_reason(),
            ),
            (None, None) => return,
        };
        if n >= MAX_RETRANSMISSIONS
            && first
            && self.fall_back_to_v1(serial, "no answer to IKE_SA_INIT")
        {
            return;
        }
        let policy = RetryPolicy {
            keyingtries: self.conns.get(&key).map_or(1, |c| c.keyingtries),
        };
        if let Some(d) = policy.next_delay(n, first) {
            self.retransmit_now(serial, info.name, d, TimerKind::Retransmit);
            return;
        }
        self.slog_code(
            serial,
            rc::NORETRANSMISSION,
            format!(
                "max number of retransmissions ({MAX_RETRANSMISSIONS}) reached {}.{why}",
                info.name
            ),
        );
        self.give_up_attempt(serial);
    }

    /// Resends SA `serial`'s last message (in state `state`), counts the retransmission, logs
    /// it as Pluto did and arms timer `kind` to look again in `wait_ms`.
    pub(crate) fn retransmit_now(
        &mut self,
        serial: SerialNo,
        state: &str,
        wait_ms: u64,
        kind: TimerKind,
    ) {
        if let Some(rtx) = self.sas.rtx_mut(serial) {
            rtx.count += 1;
        }
        self.slog_code(
            serial,
            rc::RETRANSMISSION,
            format!(
                "{state}: retransmission; will wait {}s for response",
                wait_ms / 1000
            ),
        );
        self.resend_last(serial);
        self.schedule(serial, wait_ms, kind);
    }

    /// The peer refused keying attempt `serial` (it cannot authenticate us, or we cannot
    /// authenticate its last message). The last attempt ends now; otherwise nothing more is
    /// sent and the next attempt starts when the pending retransmission timer fires, so a
    /// peer that refuses us never gets a burst of attempts (`keyingtries=%forever`).
    pub(crate) fn attempt_refused(&mut self, serial: SerialNo) {
        let (key, try_no, initiator) = match (self.sas.ike(serial), self.sas.child(serial)) {
            (Some(s), _) => (s.conn().to_string(), s.try_no, s.initiator),
            (None, Some(c)) => (c.conn().to_string(), c.try_no, c.initiator),
            (None, None) => return,
        };
        let policy = RetryPolicy {
            keyingtries: self.conns.get(&key).map_or(1, |c| c.keyingtries),
        };
        let more = policy.try_again(try_no)
            && initiator
            && self.conns.get(&key).is_some_and(|c| c.instance == 0);
        if !more {
            self.give_up_attempt(serial);
            return;
        }
        if let Some(r) = self.sas.rtx_mut(serial) {
            r.count = MAX_RETRANSMISSIONS;
            r.last_sent = None;
            r.extra_sent.clear();
        }
        self.slog(
            serial,
            "no more retransmissions; the next keying attempt starts when the retransmission timer fires".into(),
        );
    }

    /// Keying attempt `serial` (an IKE or child SA we are negotiating) is over without
    /// success — its retransmissions ran out, or the peer said it cannot authenticate us —:
    /// the state goes and, as [`RetryPolicy`] allows, the next attempt starts; otherwise the
    /// conn's negotiation has failed (an OE instance's `%hold` becomes its failure shunt).
    pub(crate) fn give_up_attempt(&mut self, serial: SerialNo) {
        let (key, try_no, initiator) = match (self.sas.ike(serial), self.sas.child(serial)) {
            (Some(s), _) => (s.conn().to_string(), s.try_no, s.initiator),
            (None, Some(c)) => (c.conn().to_string(), c.try_no, c.initiator),
            (None, None) => return,
        };
        let is_child = self.sas.child(serial).is_some();
        let policy = RetryPolicy {
            keyingtries: self.conns.get(&key).map_or(1, |c| c.keyingtries),
        };
        let pending = self.sas.ike(serial).and_then(|s| s.pending_child);
        let replacing = self.sas.child(serial).and_then(|c| c.replacing);
        let whack_attached = self
            .sas
            .ike(serial)
            .map(|s| s.whack)
            .or_else(|| self.sas.child(serial).map(|c| c.whack))
            .flatten()
            .is_some();
        if policy.try_again(try_no)
            && initiator
            && self.conns.get(&key).is_some_and(|c| c.instance == 0)
        {
            self.slog(
                serial,
                format!(
                    "starting keying attempt {} of {}{}",
                    try_no + 1,
                    policy.attempts_text(),
                    if whack_attached {
                        ", but releasing whack"
                    } else {
                        ""
                    }
                ),
            );
            self.release_whack(serial, whack_status(rc::NORETRANSMISSION));
            self.delete_sa(serial, false);
            if is_child {
                match self.own_established_ike(&key) {
                    Some(p) => self.initiate_child(p, &key, None, replacing, try_no + 1),
                    None => self.initiate_ike(
                        &key,
                        None,
                        try_no + 1,
                        Some(PendingChild {
                            whack: None,
                            replacing,
                        }),
                        None,
                    ),
                }
            } else {
                let pending = pending.map(|p| PendingChild {
                    whack: None,
                    replacing: p.replacing,
                });
                self.initiate_ike(&key, None, try_no + 1, pending, None);
            }
        } else {
            self.release_whack(serial, whack_status(rc::NORETRANSMISSION));
            self.delete_sa(serial, false);
            if initiator {
                self.negotiation_failed(&key);
            }
            self.instance_gc(&key);
        }
    }

    /// EVENT_SA_REPLACE (rekeying time: replace the SA if it is the conn's newest and we
    /// rekey; it then lives on until its hard expiry, make-before-break), or with `if_used`
    /// EVENT_SA_REPLACE_IF_USED (`rekey=no` initiator, spec 7): replace only if the SA (for an
    /// IKE SA: any child SA of the conn) was used during the last rekeymargin, else let it
    /// expire. FreeS/WAN sampled outbound use only; rswan counts both directions, so a one-way
    /// flow from the peer keeps the tunnel too.
    pub(crate) fn sa_replace(&mut self, serial: SerialNo, if_used: bool) {
        let (key, is_ike, expires_at, created) =
            match (self.sas.ike(serial), self.sas.child(serial)) {
                (Some(s), _) => (s.conn().to_string(), true, s.expires_at, s.created),
                (None, Some(c)) => (c.conn().to_string(), false, c.expires_at, c.created),
                (None, None) => return,
            };
        let Some(c) = self.conns.get(&key) else {
            self.delete_sa(serial, true);
            return;
        };
        let newest = if is_ike {
            c.newest_isakmp
        } else {
            c.newest_ipsec
        };
        let what = if is_ike { "ISAKMP" } else { "IPsec" };
        let (mut rekey, margin) = (c.rekey, c.rekeymargin.saturating_mul(1000));
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
            if is_ike {
                self.initiate_ike(&key, None, 1, None, Some(serial));
            } else {
                self.initiate(&key, None, Some(serial));
            }
        }
        let remaining = expires_at.saturating_sub(self.now).max(1);
        self.schedule(serial, remaining, TimerKind::SaExpire);
    }

    /// Last use (ms) of a child SA, or for an IKE SA of any child SA of its conn.
    pub(crate) fn last_used(&self, serial: SerialNo) -> Option<u64> {
        if let Some(c) = self.sas.child(serial) {
            return c.last_used();
        }
        let key = self.sas.ike(serial)?.conn();
        self.sas
            .children_of_conn(key)
            .filter_map(|c| c.last_used())
            .max()
    }

    /// The rekey delay for an SA of `life` seconds and the event to arm (spec 7).
    pub(crate) fn replace_delay_ms(
        &mut self,
        key: &str,
        life: u64,
        initiator: bool,
    ) -> (u64, TimerKind) {
        let Some(c) = self.conns.get(key) else {
            return (life * 1000, TimerKind::SaExpire);
        };
        let (margin, fuzz, rekey) = (c.rekeymargin, c.rekeyfuzz, c.rekey);
        // rekey=no: the responder lets the SA expire, the initiator replaces it only if used.
        if !rekey && !initiator {
            return (life * 1000, TimerKind::SaExpire);
        }
        let replace = if rekey {
            TimerKind::SaReplace
        } else {
            TimerKind::SaReplaceIfUsed
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

    /// Liveness timer (RFC 3706 DPD, as Openswan): probe only when nothing came from the peer
    /// (an IKE message or inbound IPsec traffic, see [`Pluto::handle_sa_usage`]) for
    /// dpddelay; declare it dead after dpdtimeout without a sign of life. Only the conn's
    /// newest IKE SA probes.
    pub(crate) fn liveness_event(&mut self, serial: SerialNo) {
        let now = self.now;
        let Some((key, last)) = self
            .sas
            .ike(serial)
            .map(|s| (s.conn().to_string(), s.liveness.last_heard))
        else {
            return;
        };
        let Some(dpd) = self.conns.get(&key).and_then(|c| c.dpd) else {
            return;
        };
        if self.conns.get(&key).and_then(|c| c.newest_isakmp) != Some(serial) {
            return;
        }
        let (delay, timeout) = (dpd.delay * 1000, dpd.timeout * 1000);
        let dead_at = last.saturating_add(timeout);
        if now >= dead_at {
            self.liveness_dead(serial);
            return;
        }
        let quiet = now.saturating_sub(last) >= delay;
        // Next look: dpddelay after this probe (or after the last sign of life), and no later
        // than the moment the peer would be declared dead.
        let next = if quiet {
            now.saturating_add(delay)
        } else {
            last.saturating_add(delay)
        };
        self.sas
            .timers
            .set(serial, TimerKind::Liveness, next.min(dead_at).max(now + 1));
        if quiet {
            self.send_liveness_probe(serial);
        }
    }

    /// The peer of IKE SA `serial` was declared dead: apply the conn's `dpdaction=`.
    pub(crate) fn liveness_dead(&mut self, serial: SerialNo) {
        let Some(key) = self.sas.ike(serial).map(|s| s.conn().to_string()) else {
            return;
        };
        let action = self
            .conns
            .get(&key)
            .and_then(|c| c.dpd)
            .map_or(DpdAction::Hold, |d| d.action);
        self.slog(
            serial,
            "DPD: No response from peer - declaring peer dead".into(),
        );
        let all = self.sas.of_conn(&key);
        // Child SAs of other conns negotiated over this IKE SA (`shared_ike_sa`) go too:
        // their peer is the one that died.
        let riders: Vec<SerialNo> = self
            .sas
            .children_of(serial)
            .filter(|c| c.conn() != key)
            .map(|c| c.serial())
            .collect();
        for s in riders.into_iter().rev() {
            self.delete_sa(s, false);
        }
        match action {
            DpdAction::Clear => {
                self.slog(serial, "DPD: Clearing Connection".into());
                if let Some(c) = self.conns.get_mut(&key) {
                    c.policy_routed = false;
                }
                for s in all.into_iter().rev() {
                    self.delete_sa(s, false);
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
                    self.delete_sa(s, false);
                }
                self.instance_gc(&key);
            }
            DpdAction::Restart => {
                self.slog(serial, "DPD: Restarting Connection".into());
                for s in all.into_iter().rev() {
                    self.delete_sa(s, false);
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

    /// NAT keepalive timer (RFC 3948 2.3): one 0xFF byte to the peer, every
    /// `keepalive_interval`.
    pub(crate) fn send_keepalive(&mut self, serial: SerialNo) {
        let interval = self.cfg.keepalive_interval.saturating_mul(1000);
        let Some((local, remote)) = self.sas.ike(serial).map(|s| (s.local, s.remote)) else {
            return;
        };
        self.schedule(serial, interval.max(1000), TimerKind::NatKeepalive);
        self.out.push_back(Output::Send {
            local,
            remote,
            data: NAT_KEEPALIVE.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_timer_per_slot_and_the_minimum_is_next() {
        let mut t = TimerTable::default();
        let (a, b) = (SerialNo::new(1), SerialNo::new(2));
        t.set(a, TimerKind::Retransmit, 100);
        t.set(a, TimerKind::Liveness, 50);
        t.set(b, TimerKind::SaReplace, 70);
        assert_eq!(t.next_due(), Some(50));
        // Re-arming the event slot replaces the retransmission.
        t.set(a, TimerKind::SaExpire, 30);
        assert_eq!(t.event(a), Some((30, TimerKind::SaExpire)));
        assert!(!t.is_armed(a, TimerKind::Retransmit, 100));
        assert_eq!(t.next_due(), Some(30));
        assert_eq!(
            t.due(60),
            vec![(30, a, TimerKind::SaExpire), (50, a, TimerKind::Liveness)]
        );
        t.check_invariants().unwrap();
        t.clear(a, TimerSlot::Event);
        assert_eq!(t.next_due(), Some(50));
        t.clear_all(a);
        assert_eq!(t.due(1000), vec![(70, b, TimerKind::SaReplace)]);
        t.check_invariants().unwrap();
    }

    #[test]
    fn equal_due_times_run_in_serial_then_kind_order() {
        let mut t = TimerTable::default();
        let (a, b) = (SerialNo::new(1), SerialNo::new(2));
        t.set(b, TimerKind::SaExpire, 10);
        t.set(a, TimerKind::SaReplace, 10);
        t.set(a, TimerKind::NatKeepalive, 10);
        t.set(a, TimerKind::Liveness, 10);
        let kinds: Vec<(SerialNo, TimerKind)> =
            t.due(10).into_iter().map(|(_, s, k)| (s, k)).collect();
        assert_eq!(
            kinds,
            vec![
                (a, TimerKind::NatKeepalive),
                (a, TimerKind::Liveness),
                (a, TimerKind::SaReplace),
                (b, TimerKind::SaExpire)
            ]
        );
    }

    #[test]
    fn retry_policy() {
        let once = RetryPolicy { keyingtries: 1 };
        assert_eq!(once.next_delay(0, true), Some(20_000));
        assert_eq!(once.next_delay(1, true), Some(40_000));
        assert_eq!(once.next_delay(2, true), None);
        assert!(!once.try_again(1));
        assert_eq!(once.attempts_text(), "at most 1");
        let forever = RetryPolicy { keyingtries: 0 };
        assert_eq!(forever.next_delay(2, true), Some(40_000));
        assert_eq!(forever.next_delay(2, false), None);
        assert_eq!(forever.next_delay(MAX_RETRANSMISSIONS_INITIAL, true), None);
        assert!(forever.try_again(1000));
        assert_eq!(forever.attempts_text(), "an unlimited number");
    }
}
