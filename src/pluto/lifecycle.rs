//! The life of SAs, whatever the IKE version: starting keying for a conn (over an IKE SA
//! that is up, or a new one), what happens when an IKE SA or a child SA is established
//! (newest SA, rekey and expiry timers, liveness and keepalives, `uniqueids`), failure, and
//! deletion (SAs out of the datapath, SPIs back to the pool, eroute ownership handed over,
//! instances garbage-collected).

use crate::config::secrets::Id;
use crate::pluto::connection::Routing;
use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::output::{rc, whack_status, Output};
use crate::pluto::sa::{PendingChild, Removed};
use crate::pluto::timers::TimerKind;
use crate::said::Said;

impl Pluto {
    /// The conn IKE SA `serial` goes on with once its peer authenticated as `peer_id` from
    /// `peer`: `key` itself, or — when `key` is a template (`right=%any`) — a new instance of
    /// it for that peer, with the IKE SA moved onto it. `None` if the conn is gone.
    pub(crate) fn instance_for_peer(
        &mut self,
        serial: SerialNo,
        key: String,
        peer: std::net::IpAddr,
        peer_id: &Id,
    ) -> Option<String> {
        let t = self.conns.get_mut(&key)?;
        if !t.is_template() {
            return Some(key);
        }
        let mut inst = t.instantiate(peer);
        inst.that.id = peer_id.clone();
        let k = inst.key();
        self.conns.insert(k.clone(), inst);
        self.sas.set_conn(serial, &k);
        if let Some(s) = self.sas.ike_mut(serial) {
            s.template = false;
        }
        Some(k)
    }

    /// Starts (or restarts) keying for a conn: a child SA over an established IKE SA (the
    /// conn's own, else one another conn may share), else an IKE SA first with the child SA
    /// pending. An IKE SA of the conn already under way takes the child SA along.
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
        // `%dnsondemand`: the peer's key first (the negotiation starts when DNS answers).
        if replacing.is_none() && self.fetch_peer_key(key, Some(whack)) {
            return;
        }
        match self
            .own_established_ike(key)
            .or_else(|| self.shared_ike_sa(key))
        {
            Some(ike) => self.initiate_child(ike, key, whack, replacing, 1),
            None => {
                let pending = self
                    .sas
                    .ikes_of_conn(key)
                    .find(|s| s.initiator && !s.established)
                    .map(|s| s.serial());
                match pending {
                    Some(p) => {
                        let attached = self.sas.ike(p).and_then(|s| s.whack);
                        match (attached, whack) {
                            (None, w) => {
                                if let Some(s) = self.sas.ike_mut(p) {
                                    s.whack = w;
                                }
                            }
                            (Some(_), Some(w)) => self.whack_done(w, 0),
                            (Some(_), None) => {}
                        }
                    }
                    None => self.initiate_ike(
                        key,
                        whack,
                        1,
                        Some(PendingChild { whack, replacing }),
                        None,
                    ),
                }
            }
        }
    }

    /// The conn's newest established IKE SA.
    pub(crate) fn own_established_ike(&self, key: &str) -> Option<SerialNo> {
        self.sas
            .ikes_of_conn(key)
            .filter(|s| s.established)
            .map(|s| s.serial())
            .max()
    }

    /// An established IKE SA of another conn that conn `key`'s child SA may use, as
    /// FreeS/WAN's `find_phase1_state` allows: same local and peer host, same IDs on both
    /// sides, an authentication method `key` permits (the newest such SA).
    pub(crate) fn shared_ike_sa(&self, key: &str) -> Option<SerialNo> {
        let c = self.conns.get(key)?;
        let (me, peer) = (c.this.host?, c.that.host?);
        if c.that.id == Id::Any {
            return None;
        }
        // Only the IKE SAs of conns with the same pair of IDs can qualify (the conn index),
        // not every established IKE SA.
        self.conns
            .with_ids(&c.this.id, &c.that.id)
            .into_iter()
            .flat_map(|(owner, _)| self.sas.ikes_of_conn(owner))
            .filter(|s| {
                s.established
                    && s.exchange.version() == c.ike_policy.initiate
                    && s.local.ip() == me
                    && s.remote.ip() == peer
                    && s.peer_id.as_ref().is_none_or(|id| *id == c.that.id)
                    && s.auth.is_some_and(|a| c.auth.contains(&a))
            })
            .map(|s| s.serial())
            .max()
    }

    /// Whether a negotiation for the conn is already under way (or waiting to start).
    pub(crate) fn negotiation_pending(&self, key: &str) -> bool {
        self.mm_waiting.iter().any(|w| w.key == key)
            || self
                .sas
                .ikes_of_conn(key)
                .any(|s| (s.initiator && !s.established) || s.pending_child.is_some())
            || self
                .sas
                .children_of_conn(key)
                .any(|c| c.initiator && !c.established)
    }

    /// Negotiation failed for good: install the failure shunt if routed.
    pub(crate) fn negotiation_failed(&mut self, key: &str) {
        if self.oe_negotiation_failed(key) {
            return;
        }
        self.settle_narrow_holds(key, None);
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if let (Some(s), Routing::Prospective) = (c.failureshunt, c.routing) {
            self.eroute(
                key,
                crate::pluto::output::ErouteOp::Replace,
                Self::shunt_said(s),
            );
            if let Some(c) = self.conns.get_mut(key) {
                c.routing = Routing::FailShunt;
            }
        }
    }

    /// Drops an instance with no SAs left.
    pub(crate) fn instance_gc(&mut self, key: &str) {
        let is_instance = self.conns.get(key).is_some_and(|c| c.instance != 0);
        if is_instance && !self.sas.conn_has_sas(key) {
            if self.conns.get(key).map(|c| c.routing) == Some(Routing::Erouted) {
                return;
            }
            let _ = self.unroute_conn(key);
            self.conns.remove(key);
        }
    }

    /// Notes that the peer of IKE SA `ike` is alive (an authenticated message came).
    pub(crate) fn heard_from(&mut self, ike: SerialNo) {
        let now = self.now;
        if let Some(s) = self.sas.ike_mut(ike) {
            s.liveness.last_heard = now;
        }
    }

    /// Bookkeeping when IKE SA `serial` of conn `key` is established with the peer
    /// authenticated as `peer_id`: newest IKE SA of the conn, rekey and expiry, liveness
    /// probes, NAT keepalives, and `uniqueids` (older IKE SAs of the same peer ID at another
    /// address go, with their conns' child SAs).
    pub(crate) fn ike_established(&mut self, serial: SerialNo, key: &str, peer_id: &Id) {
        let now = self.now;
        let Some((life, initiator, floated, peer_dpd, remote_ip)) = self.sas.ike(serial).map(|s| {
            (
                s.life,
                s.initiator,
                s.nat.floated,
                s.liveness.peer_supports,
                s.remote.ip(),
            )
        }) else {
            return;
        };
        let dpd = self.conns.get(key).and_then(|c| c.dpd);
        let keepalive = self.cfg.keepalive_interval.saturating_mul(1000);
        if let Some(c) = self.conns.get_mut(key) {
            c.newest_isakmp = Some(serial);
        }
        let (delay, ev) = self.replace_delay_ms(key, life, initiator);
        if let Some(s) = self.sas.ike_mut(serial) {
            s.expires_at = now.saturating_add(life * 1000);
            s.liveness.last_heard = now;
        }
        self.schedule(serial, delay, ev);
        if let (Some(d), true) = (dpd, peer_dpd) {
            self.schedule(serial, d.delay * 1000, TimerKind::Liveness);
        }
        if floated {
            self.schedule(serial, keepalive, TimerKind::NatKeepalive);
        }
        if dpd.is_some() && !peer_dpd {
            self.slog(
                serial,
                "DPD: peer does not support Dead Peer Detection".into(),
            );
        }
        if self.cfg.uniqueids {
            // Release conns with the same peer ID at another address (the peer index: not a
            // visit of every IKE SA per establishment).
            let stale: Vec<SerialNo> = if *peer_id == Id::Any {
                Vec::new()
            } else {
                self.sas
                    .ikes_with_peer_id_elsewhere(peer_id, remote_ip)
                    .into_iter()
                    .filter(|s| *s != serial)
                    .collect()
            };
            for s in stale {
                let k = self.sas.conn_of(s).unwrap_or_default().to_string();
                let children: Vec<SerialNo> =
                    self.sas.children_of_conn(&k).map(|c| c.serial()).collect();
                self.slog(
                    s,
                    format!("deleting: new ISAKMP SA #{serial} for the same peer ID (uniqueids)"),
                );
                for ch in children {
                    self.delete_sa(ch, true);
                }
                self.delete_sa(s, true);
                self.instance_gc(&k);
            }
        }
    }

    /// Bookkeeping when child SA `serial` is established (both directions installed): rekey
    /// and expiry timers.
    pub(crate) fn child_established(&mut self, serial: SerialNo) {
        let now = self.now;
        let Some((key, life, initiator)) = self
            .sas
            .child(serial)
            .map(|c| (c.conn().to_string(), c.life, c.initiator))
        else {
            return;
        };
        let (delay, ev) = self.replace_delay_ms(&key, life, initiator);
        if let Some(c) = self.sas.child_mut(serial) {
            c.expires_at = now.saturating_add(life * 1000);
        }
        self.schedule(serial, delay, ev);
    }

    /// Releases the whack client of an SA with a final status.
    pub(crate) fn release_whack(&mut self, serial: SerialNo, status: i32) {
        if let Some(c) = self.sas.whack_mut(serial).and_then(Option::take) {
            self.whack_done(c, status);
        }
    }

    /// Deletes an SA: its SAs in the datapath, its eroute ownership, its timers. With
    /// `notify`, the version tells the peer first (over an established IKE SA).
    pub(crate) fn delete_sa(&mut self, serial: SerialNo, notify: bool) {
        let Some(key) = self.sas.conn_of(serial).map(str::to_string) else {
            return;
        };
        if notify {
            self.send_delete(serial);
        }
        self.release_whack(serial, whack_status(rc::NORETRANSMISSION));
        let name = self.state_info(serial).map(|(i, _)| i.name);
        let Some(removed) = self.sas.remove(serial) else {
            return;
        };
        if self.cfg.debug.lifecycle {
            self.log(format!(
                "| deleting state #{serial} ({})",
                name.unwrap_or_default()
            ));
        }
        match removed {
            Removed::Child(c) => {
                let saids: Vec<Said> = c.inbound.iter().chain(&c.outbound).copied().collect();
                for s in &saids {
                    if self.sa_owner.get(s).is_some_and(|o| o.0 == serial) {
                        self.sa_owner.remove(s);
                    }
                }
                for s in [c.our.esp, c.our.ah].into_iter().flatten() {
                    self.spis.release(s);
                }
                if let Some(cpi) = c.our.cpi {
                    self.spis.release_cpi(cpi);
                }
                if !saids.is_empty() {
                    self.out.push_back(Output::DeleteSas { saids });
                }
                let owner = self.conns.get(&key).and_then(|c| c.eroute_owner);
                if owner == Some(serial) {
                    // Another established SA of the conn takes over, else %trap or nothing.
                    let successor = self
                        .sas
                        .children_of_conn(&key)
                        .filter(|c| c.established)
                        .map(|c| c.serial())
                        .max();
                    match successor {
                        Some(n) => {
                            if let Some(c) = self.conns.get_mut(&key) {
                                c.eroute_owner = None;
                            }
                            self.route_to_child(n);
                        }
                        None => self.unroute_after_sa(&key),
                    }
                }
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.newest_ipsec == Some(serial) {
                        c.newest_ipsec = None;
                    }
                }
                // A responder's hold whose last message never came.
                let held = self
                    .conns
                    .get(&key)
                    .is_some_and(|c| c.routing == Routing::Hold);
                if held && self.sas.children_of_conn(&key).next().is_none() {
                    self.release_responder_hold(&key);
                }
            }
            Removed::Ike(s) => {
                if let Some(c) = self.conns.get_mut(&key) {
                    if c.newest_isakmp == Some(serial) {
                        c.newest_isakmp = None;
                    }
                }
                if s.initiator && !s.established {
                    self.start_waiting_main_mode(s.remote.ip());
                }
                // Child SA negotiations in progress on it die with it.
                let children: Vec<SerialNo> = self
                    .sas
                    .children_of(serial)
                    .filter(|c| !c.established)
                    .map(|c| c.serial())
                    .collect();
                for ch in children {
                    self.delete_sa(ch, false);
                }
            }
        }
    }
}
