//! What an authenticated peer may ask for: which client it may claim in Quick Mode, which
//! conn a Quick Mode may switch to over an existing ISAKMP SA, and which SAs its Deletes may
//! remove.
//!
//! # Client claims (Quick Mode responder)
//!
//! A Quick Mode names the peer's client (IDci). The conn it lands on must allow that client:
//!
//! * `rightsubnet=` given: exactly that subnet. A narrower (or wider) claim finds no conn, as
//!   in FreeS/WAN, whose responder required the same subnet (`rightsubnetwithin=` of the X.509
//!   patch and Openswan's `rightsubnet=vhost:`/`virtual:` are not supported).
//! * no `rightsubnet=`: the peer's own address (the address its IKE comes from, for a NATed
//!   peer the NAT's public address).
//! * no `rightsubnet=`, an instance of a `right=%any` template, and the peer is behind a NAT
//!   (NAT-D): a private client that `virtual_private=` (`config setup`) allows. Default: none.
//!   NAT-D is the peer's own statement (a peer may fake it, e.g. with `forceencaps=yes`), so
//!   `virtual_private=` is the boundary, not the NAT.
//!
//! A client claimed through a template (anything but the peer's own address) must also not
//! overlap the peer client of another conn that has eroutes (`%trap`, `%hold`, tunnel or
//! failure shunt) and belongs to another peer (another address or ID): otherwise a peer holding
//! a `%any` secret could divert traffic meant for another tunnel (its more specific eroute and
//! route would win). Such a claim is refused before any SA, eroute or route is made, with
//! FreeS/WAN's `cannot respond to IPsec SA request because no connection is known for …`
//! line, preceded by a line saying which conn the claim collides with.
//!
//! # Conn switches over an existing ISAKMP SA
//!
//! A Quick Mode whose clients are not those of the ISAKMP SA's conn may land on another conn
//! between the same hosts or on a `right=%any` template (FreeS/WAN's `find_client_connection`).
//! `rightid=%any` on that conn does not mean "any authenticated peer": the ISAKMP SA's
//! authentication must be one the switched-to conn would itself have accepted in Main Mode —
//! the same method, the same ID of ours, a peer ID the conn allows, and for PSK the same
//! pre-shared key as the conn's secret for that peer ID, for RSA the same public key
//! (`rightrsasigkey=`). This is what Main Mode's conn refinement requires
//! ([`Pluto::p1_auth_accepted_by`] mirrors it). The instance made from a template gets the
//! ISAKMP SA's peer ID as its `rightid=`.
//!
//! # Deletes
//!
//! A Delete is honoured for an SA negotiated over the ISAKMP SA it arrived on, or for one
//! whose peer has the same authenticated identity: the same peer ID, authenticated with
//! credentials the SA's conn accepts (so a peer may delete the IPsec SAs of an ISAKMP SA it
//! has since replaced). Never merely because it came from the same IP address.

use crate::pluto::ids::SerialNo;
use std::net::IpAddr;

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::pluto::connection::{Connection, Routing};
use crate::pluto::crypto::ct_eq;
use crate::pluto::engine::Pluto;
use crate::pluto::proposal::AuthKind;

/// Most SPIs of one Delete payload acted on; the rest are ignored (a Delete normally names
/// one SA, and each SPI costs a scan of the states).
pub(crate) const MAX_DELETE_SPIS: usize = 64;

/// Most SPIs listed in one "ignoring Delete" log line.
pub(crate) const MAX_LOGGED_SPIS: usize = 4;

/// Whether `c` (a template, or an instance of one) lets the peer at `peer` claim `claim` as
/// its client; `nat`: the peer said it is behind a NAT.
pub(crate) fn claim_allowed(
    c: &Connection,
    peer: IpAddr,
    nat: bool,
    claim: &Subnet,
    vp: &crate::config::VirtualPrivate,
) -> bool {
    if c.that.has_client {
        return c.that.client == *claim;
    }
    *claim == Subnet::host(peer) || (nat && vp.allows(claim))
}

/// `0xSPI, 0xSPI, … and N more` for a log line.
pub(crate) fn spi_list(spis: &[String]) -> String {
    let mut s = spis
        .iter()
        .take(MAX_LOGGED_SPIS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if spis.len() > MAX_LOGGED_SPIS {
        s.push_str(&format!(" and {} more", spis.len() - MAX_LOGGED_SPIS));
    }
    s
}

impl Pluto {
    /// Whether the authentication of ISAKMP SA `p1` is one conn `key` would itself accept
    /// (Main Mode's conn refinement): an authentication method `key` allows, the ID we
    /// presented as ours (`leftid=`, as FreeS/WAN's `fc_try` requires), a peer ID it allows
    /// (`rightid=` or `%any`), and the same credential — for PSK the conn's secret for
    /// that peer ID equals the key SKEYID was made from; for RSA the conn's `rightrsasigkey=`
    /// is the key that verified the peer's signature (the ISAKMP SA's conn's key: Main Mode
    /// switches the state to the conn whose key verifies, instances copy their template's key,
    /// and a conn cannot be replaced while it has states).
    pub(crate) fn p1_auth_accepted_by(&mut self, p1: SerialNo, key: &str) -> bool {
        let Some(st) = self.sas.ike(p1) else {
            return false;
        };
        let (Some(auth), Some(peer_id)) = (st.auth, st.peer_id.clone()) else {
            return false;
        };
        let psk = st.psk.clone();
        let Some(owner) = self.conns.get(st.conn()) else {
            return false;
        };
        let (verified, our_id) = (owner.that.rsakey.clone(), owner.this.id.clone());
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        if !c.negotiates()
            || !c.auth.contains(&auth)
            || c.this.id != our_id
            || !(c.that.id == Id::Any || c.that.id == peer_id)
        {
            return false;
        }
        match auth {
            AuthKind::Psk => match (self.psk_for(key, Some(&peer_id)), psk) {
                (Some(a), Some(b)) => ct_eq(&a, &b),
                _ => false,
            },
            AuthKind::Rsa => matches!((&c.that.rsakey, &verified), (Some(a), Some(b)) if a == b),
        }
    }

    /// A conn with eroutes, other than `except`, whose peer client overlaps `claim` and whose
    /// peer is not this one (`peer` and `peer_id`). The peer's own address is never a conflict.
    pub(crate) fn claim_conflict(
        &self,
        except: &str,
        peer: IpAddr,
        peer_id: &Id,
        claim: &Subnet,
    ) -> Option<String> {
        if *claim == Subnet::host(peer) {
            return None;
        }
        self.conns
            .values()
            .find(|o| {
                o.key() != except
                    && o.routing != Routing::Unrouted
                    && o.that.client.overlaps(claim)
                    && !(o.that.host == Some(peer) && o.that.id == *peer_id)
            })
            .map(|o| o.key())
    }

    /// The conn a Quick Mode request on ISAKMP SA `p1` is for (spec 7, FreeS/WAN's
    /// `find_client_connection`), under the rules of the [module docs](self): the ISAKMP SA's
    /// conn; its Road-Warrior instance taking a NATed peer's private client; another conn
    /// between the same hosts; or a new instance of a `right=%any` template. The refusal is
    /// FreeS/WAN's "cannot respond to IPsec SA request" text.
    pub(crate) fn find_qm_conn(
        &mut self,
        p1: SerialNo,
        our_client: &Subnet,
        peer_client: &Subnet,
    ) -> Result<String, String> {
        let p = self.sas.ike(p1).ok_or("gone")?;
        let key = p.conn().to_string();
        let (me, peer) = (p.local.ip(), p.remote.ip());
        let peer_id = p.peer_id.clone().unwrap_or(Id::from_ip(peer));
        let nat = p.nat.peer_behind;
        let fits = |c: &Connection| c.this.client == *our_client && c.that.client == *peer_client;
        if self.conns.get(&key).is_some_and(fits) {
            return Ok(key);
        }
        // An opportunistic peer's client that DNS delegates to it (crate::pluto::oe).
        if let Some(k) = self.delegated_conn(p1, our_client, peer_client) {
            return Ok(k);
        }
        let mut conflict = None;
        // A peer behind a NAT names its private address as its client: its host-only
        // Road-Warrior instance takes it, within virtual_private=, before it carries any SA.
        let fresh_instance = self.conns.get(&key).is_some_and(|c| {
            c.instance != 0
                && !c.that.has_client
                && c.this.client == *our_client
                && c.routing == Routing::Unrouted
                && claim_allowed(c, peer, nat, peer_client, &self.cfg.virtual_private)
        }) && self.sas.children_of_conn(&key).next().is_none();
        if fresh_instance {
            match self.claim_conflict(&key, peer, &peer_id, peer_client) {
                None => {
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.that.client = *peer_client;
                    }
                    return Ok(key);
                }
                Some(o) => conflict = Some(o),
            }
        }
        // Another conn between the same hosts with these clients.
        let same_hosts: Vec<String> = self
            .conns
            .values()
            .filter(|c| {
                c.key() != key
                    && c.negotiates()
                    && c.this.host == Some(me)
                    && c.that.host == Some(peer)
                    && fits(c)
            })
            .map(|c| c.key())
            .collect();
        for k in same_hosts {
            if self.p1_auth_accepted_by(p1, &k) {
                return Ok(k);
            }
        }
        // A Road-Warrior template that allows this client: a new instance.
        let templates: Vec<String> = self
            .conns
            .values()
            .filter(|c| {
                c.negotiates()
                    && c.is_template()
                    && c.this.host == Some(me)
                    && c.this.client == *our_client
                    && claim_allowed(c, peer, nat, peer_client, &self.cfg.virtual_private)
            })
            .map(|c| c.key())
            .collect();
        for t in templates {
            if !self.p1_auth_accepted_by(p1, &t) {
                continue;
            }
            if let Some(o) = self.claim_conflict(&t, peer, &peer_id, peer_client) {
                conflict = Some(o);
                continue;
            }
            if let Some(tc) = self.conns.get_mut(&t) {
                let mut inst = tc.instantiate(peer);
                inst.that.id = peer_id.clone();
                inst.that.client = *peer_client;
                let k = inst.key();
                self.conns.insert(k.clone(), inst);
                return Ok(k);
            }
        }
        if let Some(o) = conflict {
            let q = self.conn_quoted(&o);
            self.slog(
                p1,
                format!("peer client {peer_client} overlaps the peer client of {q}, another peer's; refused"),
            );
        } else if nat
            && *peer_client != Subnet::host(peer)
            && !self.cfg.virtual_private.allows(peer_client)
        {
            self.slog(
                p1,
                format!("peer client {peer_client} of a peer behind a NAT is not within virtual_private="),
            );
        }
        let our_id = self
            .conns
            .get(&key)
            .map(|c| c.this.id.clone())
            .unwrap_or(Id::from_ip(me));
        Err(format!(
            "cannot respond to IPsec SA request because no connection is known for {}",
            Pluto::fmt_pair(our_client, me, &our_id, peer, &peer_id, peer_client)
        ))
    }

    /// Whether a Delete that arrived on ISAKMP SA `p1` may delete state `target` (see the
    /// [module docs](self)): `target` is `p1` or was negotiated over it, or its peer has the
    /// same authenticated ID and `p1`'s authentication is one `target`'s conn accepts.
    pub(crate) fn may_delete(&mut self, p1: SerialNo, target: SerialNo) -> bool {
        if target == p1 {
            return true;
        }
        let Some(conn) = self.sas.conn_of(target).map(str::to_string) else {
            return false;
        };
        let target_id = match (self.sas.ike(target), self.sas.child(target)) {
            (Some(tp), _) => tp.peer_id.clone(),
            (None, Some(tc)) => {
                if tc.parent() == p1 {
                    return true;
                }
                match self.sas.ike(tc.parent()) {
                    Some(parent) => parent.peer_id.clone(),
                    None => self
                        .conns
                        .get(&conn)
                        .map(|c| c.that.id.clone())
                        .filter(|id| *id != Id::Any),
                }
            }
            (None, None) => None,
        };
        let sender_id = self.sas.ike(p1).and_then(|p| p.peer_id.clone());
        match (sender_id, target_id) {
            (Some(a), Some(b)) if a == b => self.p1_auth_accepted_by(p1, &conn),
            _ => false,
        }
    }
}
