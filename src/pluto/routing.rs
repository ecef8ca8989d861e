//! Routing, whatever the IKE version: `%trap` and type= shunt eroutes of routed conns, the
//! eroute of the child SA that owns a conn's tunnel (make-before-break), failure shunts,
//! a responder's `%hold` while it waits for the last message of the first child SA, updown
//! (prepare/route/up/down/unroute), and bare shunts — the narrow `%hold`s of trapped packets
//! (acquires, the periodic shunt scan).

use std::net::{IpAddr, Ipv4Addr};

use crate::addr::Subnet;
use crate::pluto::connection::{ConnType, Routing};
use crate::pluto::engine::Pluto;
use crate::pluto::ids::SerialNo;
use crate::pluto::output::{ErouteOp, Output, ShuntEroute};
use crate::said::{Proto, Said, Shunt};
use crate::updown::Verb;

/// Most bare shunts remembered (memory bound against a flood of trapped host pairs).
const MAX_BARE_SHUNTS: usize = 4096;
/// SHUNT_PATIENCE in shunt scan intervals (FreeS/WAN: SHUNT_SCAN_INTERVAL * 15 / 2).
const SHUNT_PATIENCE_HALF_INTERVALS: u64 = 15;
/// The `--status` reason of a trapped packet's `%hold` that no routed conn covers.
const UNCOVERED: &str = "no routed connection covers it";

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

impl Pluto {
    /// A packet from `src_ip` to `dst_ip` was trapped (or an orphaned `%hold` found): see
    /// [`Pluto::handle_acquire`].
    pub(crate) fn acquire(
        &mut self,
        src_ip: IpAddr,
        dst_ip: IpAddr,
        what: &str,
        sport: u16,
        dport: u16,
    ) {
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
                if routing != Routing::Erouted
                    && self.conns.get(&key).is_some_and(|c| c.is_opportunistic())
                {
                    // Opportunistic: a negotiation per destination, found through DNS.
                    self.add_bare_shunt(src, dst, Shunt::Hold, "acquire", Some(&key));
                    // Opportunistic encryption finds gateways through IPv4 reverse DNS only.
                    if let (IpAddr::V4(s4), IpAddr::V4(d4)) = (src_ip, dst_ip) {
                        self.oe_acquire(&key, s4, d4, what, sport, dport);
                    }
                    return;
                }
                if routing == Routing::Erouted {
                    // The SA came up while this acquire was queued: release the packet now.
                    let head = self
                        .conns
                        .get(&key)
                        .and_then(|c| c.eroute_owner)
                        .and_then(|o| self.sas.child(o))
                        .and_then(|c| c.outbound.first().copied());
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
    pub(crate) fn add_bare_shunt(
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
            self.schedule_shunt_expiry();
        }
    }

    /// How long a bare shunt may be idle (ms): `shuntlifetime=`, else SHUNT_PATIENCE (7.5
    /// shunt scan intervals).
    fn shunt_lifetime_ms(&self) -> u64 {
        match self.cfg.shunt_lifetime {
            Some(s) => s.saturating_mul(1000),
            None => {
                self.cfg
                    .shunt_scan_interval
                    .max(1)
                    .saturating_mul(1000)
                    .saturating_mul(SHUNT_PATIENCE_HALF_INTERVALS)
                    / 2
            }
        }
    }

    /// Brings the next shunt scan forward to the moment the first bare shunt (other than an
    /// uncovered `%hold`, which goes at a regular scan) would reach its lifetime if idle, so
    /// it expires then rather than at the next regular scan.
    pub(crate) fn schedule_shunt_expiry(&mut self) {
        let life = self.shunt_lifetime_ms();
        let due = self
            .bare_shunts
            .iter()
            .filter(|b| !(b.conn.is_none() && b.shunt == Shunt::Hold))
            .map(|b| b.last_activity.saturating_add(life))
            .min();
        if let Some(d) = due {
            self.next_shunt_scan = self.next_shunt_scan.min(d);
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
    ///   when idle for `shuntlifetime=` (default SHUNT_PATIENCE, 7.5 intervals; a `%hold` is
    ///   idle from its last acquire, a `%pass`/`%drop`/`%reject` from the last scan its packet
    ///   count moved). A scan is brought forward to the moment a bare shunt would expire.
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
                orphans.push((e.src.ip(), e.dst.ip()));
            }
        }
        let mut seen = seen.into_iter();
        self.bare_shunts.retain(|_| seen.next().unwrap_or(false));
        let patience = self.shunt_lifetime_ms();
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bare_shunts)
            .into_iter()
            .partition(|b| {
                let age = now_ms.saturating_sub(b.last_activity);
                if b.conn.is_none() && b.shunt == Shunt::Hold {
                    age >= interval
                } else {
                    age >= patience
                }
            });
        self.bare_shunts = keep;
        self.schedule_shunt_expiry();
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

    pub(crate) fn trap_said() -> Said {
        Said::new(
            Proto::Int,
            Shunt::Trap.spi(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        )
    }

    pub(crate) fn shunt_said(s: Shunt) -> Said {
        Said::new(Proto::Int, s.spi(), IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    pub(crate) fn updown(&mut self, key: &str, verb: Verb) {
        if let Some(c) = self.conns.get(key) {
            let info = c.updown_info();
            self.out.push_back(Output::Updown { verb, info });
        }
    }

    pub(crate) fn eroute(&mut self, key: &str, op: ErouteOp, said: Said) {
        if let Some(c) = self.conns.get(key) {
            let (src, dst) = (c.this.client, c.that.client);
            self.out.push_back(Output::Eroute { op, src, dst, said });
        }
    }

    /// Another routed conn with the same client pair (eroutes would clash).
    fn route_conflict(&self, key: &str) -> Option<String> {
        let c = self.conns.get(key)?;
        // Only conns with the same client pair can clash: the index gives those in key order.
        self.conns
            .with_clients(c.this.client, c.that.client)
            .into_iter()
            .find(|(k, o)| *k != key && o.routing != Routing::Unrouted)
            .map(|(_, o)| o.key())
    }

    /// `--route`: %trap (or the type= shunt) eroute plus prepare/route updown.
    pub(crate) fn route_conn(&mut self, key: &str) -> Result<(), String> {
        let Some(c) = self.conns.get(key) else {
            return Err(format!("no connection named \"{key}\""));
        };
        if c.peer_kind.is_group() && c.group.is_none() {
            // A policy group is routed through its instances.
            let name = c.name.clone();
            let insts: Vec<String> = self
                .conns
                .values()
                .filter(|i| i.group.as_deref() == Some(name.as_str()))
                .map(|i| i.key())
                .collect();
            for i in insts {
                self.route_conn(&i)?;
            }
            return Ok(());
        }
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
        let held: Vec<(IpAddr, IpAddr)> = match self.conns.get(key) {
            Some(c) if c.negotiates() => self
                .bare_shunts
                .iter()
                .filter(|b| {
                    b.conn.is_none()
                        && b.shunt == Shunt::Hold
                        && c.this.client.contains(b.ours.ip())
                        && c.that.client.contains(b.his.ip())
                })
                .map(|b| (b.ours.ip(), b.his.ip()))
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
        if c.peer_kind.is_group() && c.group.is_none() {
            let name = c.name.clone();
            let insts: Vec<String> = self
                .conns
                .values()
                .filter(|i| i.group.as_deref() == Some(name.as_str()) && i.instance == 0)
                .map(|i| i.key())
                .collect();
            for i in insts {
                if let Some(c) = self.conns.get_mut(&i) {
                    c.policy_routed = false;
                }
                self.unroute_conn(&i)?;
            }
            return Ok(());
        }
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

    /// Points the conn's eroute at child SA `serial`'s outbound group (make-before-break): it
    /// becomes the eroute owner and the conn's newest IPsec SA; held packets of the conn are
    /// released through it.
    pub(crate) fn route_to_child(&mut self, serial: SerialNo) {
        let Some(c) = self.sas.child(serial) else {
            return;
        };
        let key = c.conn().to_string();
        let Some(head) = c.outbound.first().copied() else {
            return;
        };
        let pair = (c.our_client, c.peer_client);
        let Some((mut routing, own, narrowed, policy_routed)) = self.conns.get(&key).map(|c| {
            (
                c.routing,
                (c.this.client, c.that.client),
                c.narrowed,
                c.policy_routed,
            )
        }) else {
            return;
        };
        if pair != own {
            self.route_to_narrowed_child(
                serial,
                &key,
                head,
                pair,
                (routing, narrowed, policy_routed),
            );
            return;
        }
        if let Some(n) = narrowed {
            // Back on the conn's own pair: the narrowed eroute goes.
            self.eroute_pair((n.our, n.peer), ErouteOp::Delete, Self::trap_said());
            routing = n.under;
            if let Some(c) = self.conns.get_mut(&key) {
                c.narrowed = None;
                c.routing = routing;
            }
        }
        match routing {
            Routing::Unrouted => {
                if let Some(other) = self.route_conflict(&key) {
                    // A responder evicts the conflicting conn's SAs (spec 7).
                    let owners: Vec<SerialNo> = self
                        .sas
                        .children_of_conn(&other)
                        .map(|c| c.serial())
                        .collect();
                    self.slog(
                        serial,
                        format!("route conflicts with \"{other}\"; releasing its SAs"),
                    );
                    for o in owners {
                        self.delete_sa(o, true);
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

    /// Child SA `serial` of conn `key` has traffic selectors the peer narrowed (RFC 7296 2.9):
    /// its eroute goes on that pair (`pair`: ours, the peer's), not on the conn's client pair,
    /// which keeps its %trap or shunt beneath (`was`: the conn's routing, narrowed eroute
    /// and policy routing before).
    fn route_to_narrowed_child(
        &mut self,
        serial: SerialNo,
        key: &str,
        head: Said,
        pair: (Subnet, Subnet),
        was: (Routing, Option<crate::pluto::connection::Narrowed>, bool),
    ) {
        let (routing, narrowed, policy_routed) = was;
        let under = match narrowed {
            Some(n) => {
                if (n.our, n.peer) == pair {
                    self.eroute_pair(pair, ErouteOp::Replace, head);
                } else {
                    self.eroute_pair(pair, ErouteOp::Add, head);
                    self.eroute_pair((n.our, n.peer), ErouteOp::Delete, Self::trap_said());
                }
                n.under
            }
            None => {
                if routing == Routing::Unrouted {
                    self.updown(key, Verb::Prepare);
                    self.updown(key, Verb::Route);
                }
                self.eroute_pair(pair, ErouteOp::Add, head);
                match routing {
                    // An older SA on the conn's own pair: that pair goes back to %trap (or
                    // away); the narrowed SA carries the traffic now.
                    Routing::Erouted if policy_routed => {
                        self.eroute(key, ErouteOp::Replace, Self::trap_said());
                        Routing::Prospective
                    }
                    Routing::Erouted => {
                        self.eroute(key, ErouteOp::Delete, Self::trap_said());
                        Routing::Unrouted
                    }
                    other => {
                        self.updown(key, Verb::Up);
                        other
                    }
                }
            }
        };
        if let Some(c) = self.conns.get_mut(key) {
            c.narrowed = Some(crate::pluto::connection::Narrowed {
                our: pair.0,
                peer: pair.1,
                under,
            });
            c.routing = Routing::Erouted;
            c.eroute_owner = Some(serial);
            c.newest_ipsec = Some(serial);
        }
        self.settle_narrow_holds(key, Some(head));
    }

    /// An eroute on an explicit pair (our side, the peer's side).
    fn eroute_pair(&mut self, pair: (Subnet, Subnet), op: ErouteOp, said: Said) {
        self.out.push_back(Output::Eroute {
            op,
            src: pair.0,
            dst: pair.1,
            said,
        });
    }

    /// The conn's SA-owned eroute went away: back to %trap if policy-routed, else unrouted.
    pub(crate) fn unroute_after_sa(&mut self, key: &str) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if c.routing != Routing::Erouted {
            return;
        }
        if let Some(n) = c.narrowed {
            // The narrowed eroute goes; the conn's own pair keeps what lies beneath.
            let policy_routed = c.policy_routed;
            self.eroute_pair((n.our, n.peer), ErouteOp::Delete, Self::trap_said());
            self.updown(key, Verb::Down);
            let routing = match n.under {
                Routing::Unrouted if policy_routed => {
                    self.eroute(key, ErouteOp::Add, Self::trap_said());
                    Routing::Prospective
                }
                Routing::Unrouted => {
                    self.updown(key, Verb::Unroute);
                    Routing::Unrouted
                }
                other => other,
            };
            if let Some(c) = self.conns.get_mut(key) {
                c.narrowed = None;
                c.routing = routing;
                c.eroute_owner = None;
            }
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
                    b.shunt == Shunt::Hold && o.contains(b.ours.ip()) && p.contains(b.his.ip())
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
        let Some(key) = self.sas.conn_of(serial).map(str::to_string) else {
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
    pub(crate) fn release_responder_hold(&mut self, key: &str) {
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
}
