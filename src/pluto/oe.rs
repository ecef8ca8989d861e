//! Opportunistic encryption (spec 7; FreeS/WAN 2.x OE, RFC 4322).
//!
//! Initiator: a `%trap` of an opportunistic conn (a `%opportunisticgroup` instance such as
//! `private-or-clear#0.0.0.0/0`, or a `%opportunistic` conn such as `packetdefault`) caught a
//! packet from `src` to `dst`. Pluto asks DNS ([`Output::DnsLookup`], answered through
//! [`Pluto::handle_dns`]) for the reverse-map TXT `X-IPsec-Server(PREF)=GW KEY` of `dst`
//! (lowest preference first; a record without key sends Pluto for the KEY record of the
//! gateway's reverse name), else for its IPSECKEY (RFC 4025). With a gateway and key, an
//! instance `"group#net"[N]` for `src/32 → dst/32` negotiates Main Mode with RSA signatures
//! and a host-to-host (or host-to-client when the gateway is not `dst`) Quick Mode; its tunnel
//! replaces the packet's `%hold`, releasing the packet. Without a record — or when DNS fails,
//! or the negotiation does — the `%hold` becomes the conn's failure shunt (`%pass` for
//! private-or-clear, `%drop` for private; `failureshunt=none` keeps the `%hold`), a bare shunt
//! until it has been idle for `shuntlifetime=` (default SHUNT_PATIENCE, 900 s).
//!
//! A trapped source that is not our address but lies in the conn's own client subnet (e.g.
//! `packetdefault`'s `leftsubnet=0.0.0.0/0`, or a `leftsubnet=` conn with
//! `right=%opportunistic`: FreeS/WAN's "Gateway for visible clients") is negotiated for only
//! when the source's reverse TXT record `X-IPsec-Server` names our address as its gateway with
//! our key; Main Mode is then ours and the source/32 is our Quick Mode client. Without that
//! record the `%hold` becomes the failure shunt at once.
//!
//! Responder: a first Main Mode message from an address an opportunistic conn covers (and no
//! configured conn does) makes an instance for that peer, and Pluto looks up the peer's key:
//! the reverse-map TXT of its address naming it as gateway, else its KEY, else its IPSECKEY
//! record. The initiator is authenticated (MI3) with that key; an MI3 that arrives before the
//! answer waits for it. A Quick Mode for a peer client other than the peer itself waits for
//! the client's reverse TXT record and is taken only if it names the peer as gateway with the
//! key that authenticated it (FreeS/WAN's client delegation).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::dns::message::reverse_name;
use crate::dns::records::{self, Gateway, IPSECKEY_RSA};
use crate::dns::{Lookup, LookupId, RrType};
use crate::pluto::connection::{Auto, ConnType, PeerKind, Routing};
use crate::pluto::crypto::PublicKey;
use crate::pluto::engine::Pluto;
use crate::pluto::ids::SerialNo;
use crate::pluto::output::{ErouteOp, Output};
use crate::said::Shunt;

/// Most opportunistic negotiations waiting for DNS at once (a flood of trapped destinations
/// beyond it gets the failure shunt at once).
const MAX_OE_PENDING: usize = 1024;

/// What a DNS lookup is for.
#[derive(Debug, Clone)]
enum Waiting {
    /// Initiator: the gateway and key for `dst`.
    Initiator {
        base: String,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        stage: InitStage,
    },
    /// Responder: the key of the peer of instance `inst`.
    Responder {
        inst: String,
        peer: Ipv4Addr,
        stage: RespStage,
    },
    /// Start-up check: is our own key published for `addr` (reverse TXT, else KEY, else
    /// IPSECKEY)?
    OwnKey { addr: Ipv4Addr, stage: RespStage },
    /// Quick Mode responder: does the reverse TXT record of `client` delegate it to the peer
    /// of ISAKMP SA `p1`? `qi1` is handled again with the verdict.
    Delegation {
        p1: SerialNo,
        client: Subnet,
        qi1: Datagram,
    },
    /// A host name of group `group`'s file (loaded as `generation`).
    GroupHost {
        group: String,
        host: crate::pluto::groups::HostEntry,
        generation: u64,
    },
    /// `rightrsasigkey=%dnsondemand|%dnsonload`: the key of conn `conn`'s peer ID, then
    /// (`initiate`) negotiate.
    PeerKey {
        conn: String,
        stage: RespStage,
        initiate: Option<Option<crate::pluto::ids::WhackClient>>,
    },
}

#[derive(Debug, Clone, Copy)]
enum InitStage {
    /// Our client `src` (not our address): does its reverse TXT record name us (this
    /// address) as its gateway, with our key?
    Client(Ipv4Addr),
    Txt,
    Ipseckey,
    GatewayKey(Ipv4Addr),
}

#[derive(Debug, Clone, Copy)]
enum RespStage {
    Txt,
    Key,
    Ipseckey,
}

/// Opportunistic negotiations waiting for DNS.
#[derive(Debug, Default)]
pub(crate) struct OeState {
    /// The shell runs a resolver ([`Pluto::set_dns_available`]).
    available: bool,
    next_id: u64,
    waiting: HashMap<LookupId, Waiting>,
    /// Main Mode responder: the MI3 that arrived while the peer's key was still being looked
    /// up, by conn; checked again when the lookup ends.
    deferred_mi3: HashMap<String, Datagram>,
    /// Quick Mode responder: whether the client (reverse TXT record) is delegated to the peer
    /// of the ISAKMP SA, by (ISAKMP SA, client).
    delegations: HashMap<(SerialNo, Subnet), bool>,
}

/// A datagram kept to be handled again later: (our address, the peer's, the message).
#[derive(Debug, Clone)]
struct Datagram {
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

impl Pluto {
    /// The shell has a DNS resolver for [`Output::DnsLookup`] (name servers from
    /// `resolv.conf` or `config setup`); without one, opportunistic encryption falls back to
    /// the failure shunts at once.
    pub fn set_dns_available(&mut self, available: bool) {
        self.oe.available = available;
    }

    /// Whether the key of conn `key`'s peer is being looked up in DNS (an opportunistic
    /// responder's instance, or `%dnsondemand`).
    pub(crate) fn peer_key_lookup_pending(&self, key: &str) -> bool {
        self.oe.waiting.values().any(|w| match w {
            Waiting::Responder { inst, .. } => inst == key,
            Waiting::PeerKey { conn, .. } => conn == key,
            _ => false,
        })
    }

    /// Main Mode responder: the MI3 (`data`) of conn `key` arrived while the peer's key is
    /// still being looked up ([`Pluto::peer_key_lookup_pending`]); it is handled again when the
    /// lookup ends, instead of waiting for the initiator's retransmission.
    pub(crate) fn defer_until_peer_key(
        &mut self,
        key: &str,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        if self.oe.deferred_mi3.len() >= MAX_OE_PENDING && !self.oe.deferred_mi3.contains_key(key) {
            return;
        }
        self.oe.deferred_mi3.insert(
            key.to_string(),
            Datagram {
                local,
                remote,
                data: data.to_vec(),
            },
        );
    }

    /// Asks DNS for the address of host name `host` of policy group `group`'s file
    /// ([`Pluto::load_policy_groups`]).
    pub(crate) fn lookup_group_host(
        &mut self,
        group: String,
        host: crate::pluto::groups::HostEntry,
        generation: u64,
    ) {
        let name = host.name.trim_end_matches('.').to_string();
        self.dns_lookup(
            name,
            RrType::A,
            Waiting::GroupHost {
                group,
                host,
                generation,
            },
        );
    }

    /// Whether DNS lookups for OE can be made.
    pub(crate) fn oe_resolver_available(&self) -> bool {
        self.oe.available
    }

    fn dns_lookup(&mut self, name: String, qtype: RrType, w: Waiting) {
        self.oe.next_id += 1;
        let id = LookupId(self.oe.next_id);
        if self.cfg.debug.control {
            self.log(format!("| oppo: asking DNS for {qtype} {name}"));
        }
        self.oe.waiting.insert(id, w);
        self.out.push_back(Output::DnsLookup { id, name, qtype });
    }

    /// The `%trap` of opportunistic conn `key` caught a packet from `src` to `dst` (its
    /// `%hold` is recorded as a bare shunt waiting for `key`).
    pub(crate) fn oe_acquire(
        &mut self,
        key: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        what: &str,
        sport: u16,
        dport: u16,
    ) {
        let name = self.conn_quoted(key);
        // One negotiation per pair: an instance already working on it, or a lookup.
        let base_name = self
            .conns
            .get(key)
            .map(|b| b.name.clone())
            .unwrap_or_default();
        let busy = self.conns.values().any(|c| {
            c.instance != 0
                && c.name == base_name
                && c.this.client == Subnet::host(src)
                && c.that.client == Subnet::host(dst)
        }) || self.oe.waiting.values().any(
            |w| matches!(w, Waiting::Initiator { src: s, dst: d, .. } if *s == src && *d == dst),
        );
        if busy {
            return;
        }
        self.log(format!(
            "{name}: initiate on demand from {src}:{sport} to {dst}:{dport} {what} (opportunistic)"
        ));
        let me = match self.conns.get(key).and_then(|c| c.this.host) {
            Some(IpAddr::V4(a)) => a,
            _ => {
                self.oe_fail(key, src, dst, "no IPv4 address of ours for this policy");
                return;
            }
        };
        if !self.oe.available {
            self.oe_fail(
                key,
                src,
                dst,
                "no DNS resolver: opportunistic encryption cannot work",
            );
            return;
        }
        if self.oe.waiting.len() >= MAX_OE_PENDING {
            self.oe_fail(key, src, dst, "too many opportunistic lookups in progress");
            return;
        }
        // A host behind us (FreeS/WAN's "Gateway for visible clients", in its configuration
        // document): we may negotiate on its behalf only when its reverse TXT record delegates
        // it to us, else peers would refuse it anyway.
        let (qname, stage) = if src == me {
            (reverse_name(dst), InitStage::Txt)
        } else {
            (reverse_name(src), InitStage::Client(me))
        };
        if src != me {
            self.log(format!(
                "{name}: {src} is not our address: asking DNS whether it delegates to {me} (TXT {qname})"
            ));
        }
        self.dns_lookup(
            qname,
            RrType::Txt,
            Waiting::Initiator {
                base: key.to_string(),
                src,
                dst,
                stage,
            },
        );
    }

    /// The outcome of DNS lookup `id` ([`Output::DnsLookup`]) for `name`/`qtype`.
    pub fn handle_dns(
        &mut self,
        now_ms: u64,
        id: LookupId,
        name: &str,
        qtype: RrType,
        result: Lookup,
    ) {
        self.now = now_ms;
        let Some(w) = self.oe.waiting.remove(&id) else {
            return;
        };
        let key_of = match &w {
            Waiting::Responder { inst, .. } => Some(inst.clone()),
            Waiting::PeerKey { conn, .. } => Some(conn.clone()),
            _ => None,
        };
        match w {
            Waiting::Initiator {
                base,
                src,
                dst,
                stage,
            } => self.oe_init_answer(&base, src, dst, stage, name, qtype, result),
            Waiting::Responder { inst, peer, stage } => {
                self.oe_resp_answer(&inst, peer, stage, name, qtype, result)
            }
            Waiting::PeerKey {
                conn,
                stage,
                initiate,
            } => self.peer_key_answer(&conn, stage, initiate, name, qtype, result),
            Waiting::OwnKey { addr, stage } => self.own_key_answer(addr, stage, name, result),
            Waiting::GroupHost {
                group,
                host,
                generation,
            } => self.group_host_answer(group, host, generation, &result),
            Waiting::Delegation { p1, client, qi1 } => {
                self.delegation_answer(p1, client, qi1, name, qtype, result)
            }
        }
        // The peer's key is known now (or will not be): check the MI3 that waited for it.
        if let Some(k) = key_of.filter(|k| !self.peer_key_lookup_pending(k)) {
            if let Some(d) = self.oe.deferred_mi3.remove(&k) {
                self.handle_datagram(now_ms, d.local, d.remote, &d.data);
            }
        }
    }

    /// Our RSA public keys (RFC 3110 blobs, normalized) from ipsec.secrets.
    fn own_public_keys(&self) -> Vec<Vec<u8>> {
        self.secrets
            .entries()
            .iter()
            .filter_map(|e| match &e.key {
                crate::config::secrets::SecretKey::Rsa(k) => {
                    PublicKey::from_rfc3110(&k.public_key_blob()).ok()
                }
                _ => None,
            })
            .map(|k| k.to_rfc3110())
            .collect()
    }

    /// At start and after `--rereadgroups`, with opportunistic policies routed: checks that
    /// DNS publishes our key for the address each of them negotiates from (else peers cannot
    /// authenticate us, and OE cannot work); a missing or different key is a loud warning.
    pub fn check_own_oe_keys(&mut self) {
        if !self.oe.available || self.opportunistic_policies().is_empty() {
            return;
        }
        let mut addrs: Vec<Ipv4Addr> = self
            .conns
            .values()
            .filter(|c| c.is_opportunistic() && c.routing != Routing::Unrouted)
            .filter_map(|c| match c.this.host {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            })
            .collect();
        addrs.sort();
        addrs.dedup();
        for addr in addrs {
            self.dns_lookup(
                reverse_name(addr),
                RrType::Txt,
                Waiting::OwnKey {
                    addr,
                    stage: RespStage::Txt,
                },
            );
        }
    }

    fn own_key_answer(&mut self, addr: Ipv4Addr, stage: RespStage, name: &str, result: Lookup) {
        let ours = self.own_public_keys();
        let norm = |b: &[u8]| PublicKey::from_rfc3110(b).ok().map(|k| k.to_rfc3110());
        let mut published = Vec::new();
        if let Lookup::Answer(recs) = &result {
            for r in recs {
                let blob = match stage {
                    RespStage::Txt => records::parse_txt(&r.rdata)
                        .and_then(|t| records::parse_ipsec_server(&t))
                        .ok()
                        .flatten()
                        .filter(|s| s.gateway == Gateway::Ipv4(addr))
                        .and_then(|s| s.key),
                    RespStage::Key => records::parse_key(&r.rdata).ok(),
                    RespStage::Ipseckey => records::parse_ipseckey(&r.rdata)
                        .ok()
                        .filter(|k| k.algorithm == IPSECKEY_RSA)
                        .map(|k| k.key),
                };
                published.extend(blob.as_deref().and_then(norm));
            }
        }
        if published.iter().any(|p| ours.contains(p)) {
            self.log(format!("our key for {addr} is published in DNS ({name})"));
            return;
        }
        let next = match stage {
            RespStage::Txt => Some((RrType::Key, RespStage::Key)),
            RespStage::Key => Some((RrType::Ipseckey, RespStage::Ipseckey)),
            RespStage::Ipseckey => None,
        };
        if let Some((q, s)) = next {
            self.dns_lookup(name.to_string(), q, Waiting::OwnKey { addr, stage: s });
            return;
        }
        self.log(format!(
            "WARNING: opportunistic encryption cannot work: DNS publishes no key of ours for {addr} ({name}: no TXT X-IPsec-Server, KEY or IPSECKEY record with the key in ipsec.secrets; publish \"ipsec showhostkey --txt {addr}\")"
        ));
    }

    /// The DNS name holding the key of `id`: forward for `@fqdn`, reverse for an address.
    fn key_name(id: &Id) -> Option<String> {
        match id {
            Id::Ipv4(a) => Some(reverse_name(*a)),
            Id::Fqdn(n) | Id::Name(n) => Some(n.trim_end_matches('.').to_string()),
            Id::UserFqdn(u) => u.split_once('@').map(|(_, d)| d.to_string()),
            Id::Ipv6(_) | Id::Any => None,
        }
    }

    /// A conn whose peer key is `%dnsondemand`/`%dnsonload` and not known yet: look it up
    /// (KEY record of the peer's ID, else its TXT `X-IPsec-Server` record naming the peer,
    /// else IPSECKEY). With `initiate`, the negotiation starts once the key is there (or fails
    /// as any other would without it). Returns whether a lookup was started.
    pub(crate) fn fetch_peer_key(
        &mut self,
        key: &str,
        initiate: Option<Option<crate::pluto::ids::WhackClient>>,
    ) -> bool {
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        if c.that.rsakey.is_some()
            || c.that.dns_key.is_none()
            || c.that.host.is_none()
            || !c.auth.contains(&crate::pluto::proposal::AuthKind::Rsa)
        {
            return false;
        }
        let Some(name) = Self::key_name(&c.that.id) else {
            return false;
        };
        if !self.oe.available {
            let q = c.quoted();
            self.log(format!(
                "{q}: the peer's key is to come from DNS, but no DNS resolver is available"
            ));
            return false;
        }
        if self
            .oe
            .waiting
            .values()
            .any(|w| matches!(w, Waiting::PeerKey { conn, .. } if conn == key))
        {
            return true;
        }
        self.dns_lookup(
            name,
            RrType::Key,
            Waiting::PeerKey {
                conn: key.to_string(),
                stage: RespStage::Key,
                initiate,
            },
        );
        true
    }

    fn peer_key_answer(
        &mut self,
        conn: &str,
        stage: RespStage,
        initiate: Option<Option<crate::pluto::ids::WhackClient>>,
        name: &str,
        qtype: RrType,
        result: Lookup,
    ) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let who = c.quoted();
        let peer = match c.that.host {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let blob = match &result {
            Lookup::Answer(recs) => match stage {
                RespStage::Key => recs.iter().find_map(|r| records::parse_key(&r.rdata).ok()),
                RespStage::Txt => recs.iter().find_map(|r| {
                    let s = records::parse_txt(&r.rdata)
                        .and_then(|t| records::parse_ipsec_server(&t))
                        .ok()
                        .flatten()?;
                    (peer.is_some_and(|p| s.gateway == Gateway::Ipv4(p))).then_some(s.key)?
                }),
                RespStage::Ipseckey => recs.iter().find_map(|r| {
                    let k = records::parse_ipseckey(&r.rdata).ok()?;
                    (k.algorithm == IPSECKEY_RSA).then_some(k.key)
                }),
            },
            other => {
                self.dns_trouble(&who, name, qtype, other);
                None
            }
        };
        let key = blob.and_then(|b| match PublicKey::from_rfc3110(&b) {
            Ok(k) => Some(k),
            Err(e) => {
                self.log(format!("{who}: bad RSA key in DNS ({name}): {e}"));
                None
            }
        });
        match key {
            Some(k) => {
                self.log(format!(
                    "{who}: peer key *{} found in DNS ({name})",
                    k.key_id()
                ));
                if let Some(c) = self.conns.get_mut(conn) {
                    c.that.rsakey = Some(k);
                }
            }
            None => {
                let next = match stage {
                    RespStage::Key => Some((RrType::Txt, RespStage::Txt)),
                    RespStage::Txt => Some((RrType::Ipseckey, RespStage::Ipseckey)),
                    RespStage::Ipseckey => None,
                };
                if let Some((q, s)) = next {
                    self.dns_lookup(
                        name.to_string(),
                        q,
                        Waiting::PeerKey {
                            conn: conn.to_string(),
                            stage: s,
                            initiate,
                        },
                    );
                    return;
                }
                self.log(format!("{who}: no key for the peer in DNS ({name})"));
            }
        }
        if let Some(whack) = initiate {
            self.initiate(conn, whack, None);
        }
    }

    fn dns_trouble(&mut self, who: &str, name: &str, qtype: RrType, r: &Lookup) -> String {
        let line = format!("DNS {qtype} {name}: {r}");
        if !matches!(r, Lookup::NoRecord) {
            self.log(format!("{who}: {line}"));
        }
        line
    }

    #[allow(clippy::too_many_arguments)]
    fn oe_init_answer(
        &mut self,
        base: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        stage: InitStage,
        name: &str,
        qtype: RrType,
        result: Lookup,
    ) {
        if !self.conns.contains_key(base) {
            return;
        }
        let who = self.conn_quoted(base);
        let recs = match result {
            Lookup::Answer(r) => r,
            other => {
                let why = self.dns_trouble(&who, name, qtype, &other);
                match (stage, &other) {
                    (InitStage::Txt, Lookup::NoRecord) => self.dns_lookup(
                        reverse_name(dst),
                        RrType::Ipseckey,
                        Waiting::Initiator {
                            base: base.to_string(),
                            src,
                            dst,
                            stage: InitStage::Ipseckey,
                        },
                    ),
                    (InitStage::Client(me), Lookup::NoRecord) => self.oe_fail(
                        base,
                        src,
                        dst,
                        &format!("{src} is not delegated to {me}: no TXT record {name}"),
                    ),
                    (InitStage::Ipseckey, Lookup::NoRecord) => self.oe_fail(
                        base,
                        src,
                        dst,
                        &format!("no TXT X-IPsec-Server or IPSECKEY record for {name}"),
                    ),
                    _ => self.oe_fail(base, src, dst, &why),
                }
                return;
            }
        };
        match stage {
            InitStage::Client(me) => {
                let ours = self.own_public_keys();
                let mut delegated = false;
                for r in &recs {
                    match records::parse_txt(&r.rdata).and_then(|t| records::parse_ipsec_server(&t))
                    {
                        Ok(Some(s)) if s.gateway == Gateway::Ipv4(me) => {
                            let key = s
                                .key
                                .as_deref()
                                .and_then(|b| PublicKey::from_rfc3110(b).ok())
                                .map(|k| k.to_rfc3110());
                            delegated |= key.is_some_and(|k| ours.contains(&k));
                        }
                        Ok(_) => {}
                        Err(e) => self.log(format!(
                            "{who}: DNS TXT {name}: bad X-IPsec-Server record ignored: {e}"
                        )),
                    }
                }
                if !delegated {
                    self.oe_fail(
                        base,
                        src,
                        dst,
                        &format!("{src} is not delegated to {me}: {name} has no X-IPsec-Server record naming {me} with our key"),
                    );
                    return;
                }
                self.log(format!(
                    "{who}: {name} delegates {src} to {me}: negotiating on its behalf"
                ));
                self.dns_lookup(
                    reverse_name(dst),
                    RrType::Txt,
                    Waiting::Initiator {
                        base: base.to_string(),
                        src,
                        dst,
                        stage: InitStage::Txt,
                    },
                );
            }
            InitStage::Txt => {
                let mut best: Option<records::IpsecServer> = None;
                for r in &recs {
                    let parsed =
                        records::parse_txt(&r.rdata).and_then(|t| records::parse_ipsec_server(&t));
                    match parsed {
                        Ok(Some(s)) if matches!(s.gateway, Gateway::Ipv4(_)) => {
                            if best.as_ref().is_none_or(|b| s.pref < b.pref) {
                                best = Some(s);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => self.log(format!(
                            "{who}: DNS TXT {name}: bad X-IPsec-Server record ignored: {e}"
                        )),
                    }
                }
                let Some(s) = best else {
                    self.dns_lookup(
                        reverse_name(dst),
                        RrType::Ipseckey,
                        Waiting::Initiator {
                            base: base.to_string(),
                            src,
                            dst,
                            stage: InitStage::Ipseckey,
                        },
                    );
                    return;
                };
                let Gateway::Ipv4(gw) = s.gateway else {
                    return;
                };
                match s.key {
                    Some(k) => self.oe_key_found(base, src, dst, gw, &k, name),
                    None => self.dns_lookup(
                        reverse_name(gw),
                        RrType::Key,
                        Waiting::Initiator {
                            base: base.to_string(),
                            src,
                            dst,
                            stage: InitStage::GatewayKey(gw),
                        },
                    ),
                }
            }
            InitStage::Ipseckey => {
                let mut best: Option<records::IpsecKey> = None;
                for r in &recs {
                    match records::parse_ipseckey(&r.rdata) {
                        Ok(k)
                            if k.algorithm == IPSECKEY_RSA
                                && matches!(k.gateway, Gateway::Ipv4(_) | Gateway::None) =>
                        {
                            if best.as_ref().is_none_or(|b| k.precedence < b.precedence) {
                                best = Some(k);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => self.log(format!(
                            "{who}: DNS IPSECKEY {name}: bad record ignored: {e}"
                        )),
                    }
                }
                match best {
                    Some(k) => {
                        let gw = match k.gateway {
                            Gateway::Ipv4(a) => a,
                            _ => dst,
                        };
                        self.oe_key_found(base, src, dst, gw, &k.key, name);
                    }
                    None => self.oe_fail(
                        base,
                        src,
                        dst,
                        &format!("no usable IPSECKEY record for {name}"),
                    ),
                }
            }
            InitStage::GatewayKey(gw) => {
                let key = recs.iter().find_map(|r| records::parse_key(&r.rdata).ok());
                match key {
                    Some(k) => self.oe_key_found(base, src, dst, gw, &k, name),
                    None => {
                        self.oe_fail(base, src, dst, &format!("no usable KEY record for {name}"))
                    }
                }
            }
        }
    }

    /// Gateway `gw` with key `blob` protects `dst`: make the instance and negotiate.
    fn oe_key_found(
        &mut self,
        base: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        gw: Ipv4Addr,
        blob: &[u8],
        name: &str,
    ) {
        let who = self.conn_quoted(base);
        let key = match PublicKey::from_rfc3110(blob) {
            Ok(k) => k,
            Err(e) => {
                let why = format!("bad RSA key in DNS for {name}: {e}");
                self.log(format!("{who}: {why}"));
                self.oe_fail(base, src, dst, &why);
                return;
            }
        };
        let Some(t) = self.conns.get_mut(base) else {
            return;
        };
        let mut inst = t.instantiate(IpAddr::V4(gw));
        inst.this.client = Subnet::host(src);
        inst.this.has_client = inst.this.host != Some(IpAddr::V4(src));
        inst.that.client = Subnet::host(dst);
        inst.that.has_client = gw != dst;
        inst.that.id = Id::Ipv4(gw);
        inst.that.rsakey = Some(key);
        // The packet's %hold is this instance's eroute: its tunnel replaces it.
        inst.routing = Routing::Hold;
        let ikey = inst.key();
        self.conns.insert(ikey.clone(), inst);
        let (ours, his) = (Subnet::host(src), Subnet::host(dst));
        self.bare_shunts.retain(|b| (b.ours, b.his) != (ours, his));
        let q = self.conn_quoted(&ikey);
        self.log(format!(
            "{q}: opportunistic gateway {gw} for {dst} found in DNS ({name}); key *{}",
            self.conns
                .get(&ikey)
                .and_then(|c| c.that.rsakey.as_ref())
                .map(|k| k.key_id())
                .unwrap_or_default()
        ));
        self.initiate(&ikey, None, None);
    }

    /// An OE instance's negotiation failed for good: its `%hold` becomes the failure shunt
    /// and the instance goes. Returns false for any other conn.
    pub(crate) fn oe_negotiation_failed(&mut self, key: &str) -> bool {
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        if c.instance == 0
            || c.peer_kind != PeerKind::Opportunistic
            || c.routing == Routing::Erouted
        {
            return false;
        }
        let (src, dst) = (c.this.client.addr(), c.that.client.addr());
        let base = c.name.clone();
        if let Some(c) = self.conns.get_mut(key) {
            c.routing = Routing::Unrouted;
        }
        self.oe_fail(&base, src, dst, "negotiation failed");
        if !self.sas.conn_has_sas(key) {
            self.conns.remove(key);
        }
        true
    }

    /// Opportunism failed for `src` → `dst` under conn `key`: the packet's `%hold` becomes
    /// the conn's failure shunt (the held packet is released through it: sent in clear by
    /// `%pass`, discarded by `%drop`), a bare shunt until idle for `shuntlifetime=`.
    pub(crate) fn oe_fail(&mut self, key: &str, src: Ipv4Addr, dst: Ipv4Addr, why: &str) {
        let shunt = self
            .conns
            .get(key)
            .and_then(|c| c.failureshunt)
            .unwrap_or(Shunt::Hold);
        let name = self.conn_quoted(key);
        self.log(format!(
            "{name}: cannot encrypt {src} -> {dst} opportunistically ({why}); failure shunt {shunt}"
        ));
        let (ours, his) = (Subnet::host(src), Subnet::host(dst));
        if shunt != Shunt::Hold {
            self.out.push_back(Output::Eroute {
                op: ErouteOp::Replace,
                src: ours,
                dst: his,
                said: Self::shunt_said(shunt),
            });
        }
        // No longer waiting for the conn: an ordinary bare shunt (expires when idle).
        self.bare_shunts.retain(|b| (b.ours, b.his) != (ours, his));
        let reason = format!("oe-failed: {why}");
        self.add_bare_shunt(ours, his, shunt, &reason, None);
        if shunt == Shunt::Hold {
            // Kept like the other failure shunts, not as an uncovered %hold (which the next
            // scan deletes).
            if let Some(b) = self
                .bare_shunts
                .iter_mut()
                .find(|b| (b.ours, b.his) == (ours, his))
            {
                b.conn = Some(key.to_string());
            }
            self.schedule_shunt_expiry();
        }
    }

    /// Responder: a first Main Mode message from `peer` to our `me` that no configured conn
    /// takes. The most specific routed opportunistic conn covering the peer gets an instance
    /// for it, and the peer's key is looked up. Returns the instance's key.
    pub(crate) fn oe_responder_instance(&mut self, me: Ipv4Addr, peer: Ipv4Addr) -> Option<String> {
        if !self.oe.available {
            return None;
        }
        let base = self
            .conns
            .values()
            .filter(|c| {
                // clear-or-private: a %pass eroute, but a passive OE responder.
                let passive = matches!(c.ctype, ConnType::Shunt(Shunt::Pass)) && !c.auth.is_empty();
                c.is_opportunistic()
                    && (c.negotiates() || passive)
                    && c.this.host == Some(IpAddr::V4(me))
                    && c.that.client.contains(peer)
                    && c.routing != Routing::Unrouted
            })
            .max_by_key(|c| (c.that.client.len(), c.this.client.len()))
            .map(|c| c.key())?;
        if let Some(k) = self
            .conns
            .values()
            .find(|c| c.name == base && c.instance != 0 && c.that.host == Some(IpAddr::V4(peer)))
        {
            return Some(k.key());
        }
        // Made for an unauthenticated first message: bounded, like half-open states.
        let unkeyed = self
            .conns
            .values()
            .filter(|c| {
                c.instance != 0
                    && c.peer_kind == PeerKind::Opportunistic
                    && c.newest_isakmp.is_none()
            })
            .count();
        if self.oe.waiting.len() >= MAX_OE_PENDING || unkeyed >= MAX_OE_PENDING {
            self.limits_hit.half_open_refused += 1;
            return None;
        }
        let t = self.conns.get_mut(&base)?;
        let mut inst = t.instantiate(IpAddr::V4(peer));
        inst.this.client = Subnet::host(me);
        inst.this.has_client = false;
        inst.that.client = Subnet::host(peer);
        inst.that.has_client = false;
        inst.that.id = Id::Ipv4(peer);
        inst.that.rsakey = None;
        inst.auto = Auto::Add;
        inst.ctype = ConnType::Tunnel;
        let ikey = inst.key();
        self.conns.insert(ikey.clone(), inst);
        let q = self.conn_quoted(&ikey);
        self.log(format!(
            "{q}: responding to opportunistic Main Mode from {peer}; looking up its key"
        ));
        self.dns_lookup(
            reverse_name(peer),
            RrType::Txt,
            Waiting::Responder {
                inst: ikey.clone(),
                peer,
                stage: RespStage::Txt,
            },
        );
        Some(ikey)
    }

    fn oe_resp_answer(
        &mut self,
        inst: &str,
        peer: Ipv4Addr,
        stage: RespStage,
        name: &str,
        qtype: RrType,
        result: Lookup,
    ) {
        if !self.conns.contains_key(inst) {
            return;
        }
        let who = self.conn_quoted(inst);
        let mut bad = Vec::new();
        let blob = match &result {
            Lookup::Answer(recs) => match stage {
                RespStage::Txt => {
                    let mut found = None;
                    for r in recs {
                        match records::parse_txt(&r.rdata)
                            .and_then(|t| records::parse_ipsec_server(&t))
                        {
                            Ok(Some(s)) if s.gateway == Gateway::Ipv4(peer) && s.key.is_some() => {
                                found = s.key;
                                break;
                            }
                            Ok(_) => {}
                            Err(e) => bad.push(format!(
                                "{who}: DNS TXT {name}: bad X-IPsec-Server record ignored: {e}"
                            )),
                        }
                    }
                    found
                }
                RespStage::Key => recs.iter().find_map(|r| records::parse_key(&r.rdata).ok()),
                RespStage::Ipseckey => recs.iter().find_map(|r| {
                    let k = records::parse_ipseckey(&r.rdata).ok()?;
                    (k.algorithm == IPSECKEY_RSA
                        && (k.gateway == Gateway::None || k.gateway == Gateway::Ipv4(peer)))
                    .then_some(k.key)
                }),
            },
            other => {
                self.dns_trouble(&who, name, qtype, other);
                None
            }
        };
        for l in bad {
            self.log(l);
        }
        let Some(blob) = blob else {
            let next = match stage {
                RespStage::Txt => Some((RrType::Key, RespStage::Key)),
                RespStage::Key => Some((RrType::Ipseckey, RespStage::Ipseckey)),
                RespStage::Ipseckey => None,
            };
            match next {
                Some((q, s)) => self.dns_lookup(
                    reverse_name(peer),
                    q,
                    Waiting::Responder {
                        inst: inst.to_string(),
                        peer,
                        stage: s,
                    },
                ),
                None => self.log(format!(
                    "{who}: no key for {peer} in DNS ({name}): cannot authenticate it"
                )),
            }
            return;
        };
        match PublicKey::from_rfc3110(&blob) {
            Ok(k) => {
                self.log(format!(
                    "{who}: key *{} for {peer} found in DNS ({name})",
                    k.key_id()
                ));
                if let Some(c) = self.conns.get_mut(inst) {
                    c.that.rsakey = Some(k);
                }
            }
            Err(e) => self.log(format!(
                "{who}: bad RSA key in DNS for {peer} ({name}): {e}"
            )),
        }
    }

    /// Quick Mode responder (FreeS/WAN's client delegation, RFC 4322): a QI1 on ISAKMP SA
    /// `p1` of an opportunistic instance names a peer client other than the peer's own
    /// address. The client's reverse TXT `X-IPsec-Server` record must name the peer as its
    /// gateway, with the key that authenticated it; this asks DNS (the QI1 in `local`,
    /// `remote`, `data` is handled again with the answer) and returns the reason to drop the
    /// QI1 meanwhile. `None`: no delegation to check, or its verdict is known.
    pub(crate) fn oe_delegation_pending(
        &mut self,
        p1: SerialNo,
        client: &Subnet,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Option<String> {
        let s = self.sas.ike(p1)?;
        let gw = s.remote.ip();
        let c = self.conns.get(s.conn())?;
        if c.instance == 0
            || c.peer_kind != PeerKind::Opportunistic
            || *client == Subnet::host(gw)
            || self.oe.delegations.contains_key(&(p1, *client))
        {
            return None;
        }
        let who = c.quoted();
        if client.len() != 32 || !self.oe.available {
            // Only a host can be delegated (its reverse name); refused by find_qm_conn.
            return None;
        }
        let waiting = self.oe.waiting.values().any(
            |w| matches!(w, Waiting::Delegation { p1: q, client: cl, .. } if *q == p1 && cl == client),
        );
        if waiting {
            return Some(format!(
                "peer client {client}: still waiting for its TXT record; dropped"
            ));
        }
        if self.oe.waiting.len() >= MAX_OE_PENDING {
            return None;
        }
        let name = reverse_name(client.addr());
        self.log(format!(
            "{who}: peer client {client} is not {gw}: asking DNS whether it delegates to {gw} (TXT {name})"
        ));
        self.dns_lookup(
            name,
            RrType::Txt,
            Waiting::Delegation {
                p1,
                client: *client,
                qi1: Datagram {
                    local,
                    remote,
                    data: data.to_vec(),
                },
            },
        );
        Some(format!("peer client {client}: waiting for its TXT record"))
    }

    fn delegation_answer(
        &mut self,
        p1: SerialNo,
        client: Subnet,
        qi1: Datagram,
        name: &str,
        qtype: RrType,
        result: Lookup,
    ) {
        let Some(s) = self.sas.ike(p1) else {
            return;
        };
        let gw = s.remote.ip();
        let Some(c) = self.conns.get(s.conn()) else {
            return;
        };
        let (who, authed) = (c.quoted(), c.that.rsakey.clone());
        let delegated = match &result {
            Lookup::Answer(recs) => recs.iter().any(|r| {
                let Ok(Some(srv)) =
                    records::parse_txt(&r.rdata).and_then(|t| records::parse_ipsec_server(&t))
                else {
                    return false;
                };
                let key = srv
                    .key
                    .as_deref()
                    .and_then(|b| PublicKey::from_rfc3110(b).ok());
                matches!(srv.gateway, Gateway::Ipv4(a) if IpAddr::V4(a) == gw)
                    && key.is_some()
                    && key == authed
            }),
            other => {
                self.dns_trouble(&who, name, qtype, other);
                false
            }
        };
        if delegated {
            self.log(format!(
                "{who}: {name} delegates {client} to {gw} with the key that authenticated it"
            ));
        } else {
            self.log(format!(
                "{who}: peer client {client} refused: {name} has no X-IPsec-Server record naming {gw} with the key that authenticated it"
            ));
        }
        if self.oe.delegations.len() >= MAX_OE_PENDING {
            let live: Vec<SerialNo> = self.sas.ikes().map(|s| s.serial()).collect();
            self.oe.delegations.retain(|(p, _), _| live.contains(p));
            if self.oe.delegations.len() >= MAX_OE_PENDING {
                self.oe.delegations.clear();
            }
        }
        self.oe.delegations.insert((p1, client), delegated);
        let now = self.now;
        self.handle_datagram(now, qi1.local, qi1.remote, &qi1.data);
    }

    /// Quick Mode responder: the conn for `client`, which DNS delegates to the peer of ISAKMP
    /// SA `p1` ([`Pluto::oe_delegation_pending`]), or `None` when it is not delegated or our
    /// policy for it does not take opportunistic encryption (`clear`, `block`), or another
    /// peer's tunnel has it. The ISAKMP SA's instance takes it while it carries no SA yet;
    /// otherwise a new instance of the same policy does.
    pub(crate) fn delegated_conn(
        &mut self,
        p1: SerialNo,
        our_client: &Subnet,
        client: &Subnet,
    ) -> Option<String> {
        if self.oe.delegations.get(&(p1, *client)) != Some(&true) {
            return None;
        }
        let s = self.sas.ike(p1)?;
        let key = s.conn().to_string();
        let (me, gw) = (s.local.ip(), s.remote.ip());
        let c = self.conns.get(&key)?;
        if c.this.client != *our_client {
            return None;
        }
        let (base, who) = (c.name.clone(), c.quoted());
        let unused = c.routing == Routing::Unrouted && !c.that.has_client;
        let (id, rsakey) = (c.that.id.clone(), c.that.rsakey.clone());
        let policy = self
            .conns
            .values()
            .filter(|o| {
                o.that.host.is_none()
                    && o.routing != Routing::Unrouted
                    && o.this.host == Some(me)
                    && o.that.client.contains(client.addr())
            })
            .max_by_key(|o| (o.that.client.len(), o.this.client.len()))?;
        let passive =
            matches!(policy.ctype, ConnType::Shunt(Shunt::Pass)) && !policy.auth.is_empty();
        if !(policy.is_opportunistic() && (policy.negotiates() || passive)) {
            let q = policy.quoted();
            self.log(format!(
                "{who}: peer client {client} refused: our policy for it, {q}, does not take opportunistic encryption"
            ));
            return None;
        }
        if let Some(o) = self.conns.values().find(|o| {
            o.that.host.is_some_and(|h| h != gw)
                && o.routing != Routing::Unrouted
                && o.that.client.overlaps(client)
        }) {
            let q = o.quoted();
            self.log(format!(
                "{who}: peer client {client} refused: {q}, another peer's, has it"
            ));
            return None;
        }
        if let Some(k) = self
            .conns
            .values()
            .find(|o| {
                o.name == base
                    && o.instance != 0
                    && o.that.host == Some(gw)
                    && o.that.client == *client
            })
            .map(|o| o.key())
        {
            return Some(k);
        }
        if unused && self.sas.children_of_conn(&key).next().is_none() {
            let c = self.conns.get_mut(&key)?;
            c.that.client = *client;
            c.that.has_client = true;
            return Some(key);
        }
        let t = self.conns.get_mut(&base)?;
        let mut inst = t.instantiate(gw);
        inst.this.client = Subnet::host(me);
        inst.this.has_client = false;
        inst.that.client = *client;
        inst.that.has_client = true;
        inst.that.id = id;
        inst.that.rsakey = rsakey;
        inst.auto = Auto::Add;
        inst.ctype = ConnType::Tunnel;
        let k = inst.key();
        self.conns.insert(k.clone(), inst);
        Some(k)
    }

    /// Says loudly (at start and after `--rereadgroups`) when routed policies ask for
    /// opportunistic encryption that cannot work: one line per reason, naming the policies.
    pub fn warn_oe_unusable(&mut self) {
        let pols = self.opportunistic_policies();
        if pols.is_empty() {
            return;
        }
        let list = pols
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut why = Vec::new();
        if !self.oe_resolver_available() {
            why.push("no DNS resolver is available to rswan".to_string());
        }
        if !self
            .secrets
            .entries()
            .iter()
            .any(|e| matches!(e.key, crate::config::secrets::SecretKey::Rsa(_)))
        {
            why.push("no RSA private key of ours in ipsec.secrets".to_string());
        }
        for w in why {
            self.log(format!(
                "WARNING: opportunistic encryption cannot work ({w}): {list} will fall back to their failure shunts"
            ));
        }
    }
}
