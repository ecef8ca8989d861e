//! Quick Mode (RFC 2409 5.5): IPsec SA negotiation with PFS, client IDs, AH/ESP/IPComp, NAT-T
//! encapsulation modes. What was negotiated goes to the engine as a [`NegotiatedChild`] with
//! its keys (KEYMAT); the engine installs it make-before-break.

use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::addr::Subnet;
use crate::pluto::crypto::{DhGroup, DhKeyPair};
use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::ikev1::crypto as kc;
use crate::pluto::ikev1::ident::{identification_subnet, subnet_identification};
use crate::pluto::ikev1::msg::{ct_eq, parse_chain, Chain};
use crate::pluto::ikev1::proposal::{self as v1p, UdpEncapMode};
use crate::pluto::ikev1::state::{QuickMode, StateKind};
use crate::pluto::install::{ChildMode, EspKeys, NegotiatedAh, NegotiatedChild, NegotiatedEsp};
use crate::pluto::isakmp::{
    emit_payloads, AttrValue, Attribute, Doi, ExchangeType, Flags, Header, IdPayload,
    IpsecAttrType, NotificationPayload, NotifyType, Payload, PayloadType as PT, ProtocolId,
    SaLifeType,
};
use crate::pluto::output::rc;
use crate::pluto::proposal;
use crate::pluto::sa::{ChildSa, NewChildSa, Spis};
use crate::pluto::timers::{TimerKind, RETRANSMIT_BASE_MS};
use crate::pluto::version::ChildExchange;
use crate::sadb::KeyBytes;

const NONCE_LEN: usize = 32;

/// Keys and algorithms of an ISAKMP SA needed for phase 2.
pub(crate) struct P1Ctx {
    pub(crate) prf: crate::pluto::crypto::Prf,
    pub(crate) cipher: crate::pluto::crypto::CbcCipher,
    pub(crate) skeyid_a: Zeroizing<Vec<u8>>,
    pub(crate) iv: Vec<u8>,
    pub(crate) icky: [u8; 8],
    pub(crate) rcky: [u8; 8],
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) group: DhGroup,
    pub(crate) natt: UdpEncapMode,
    pub(crate) encap: bool,
}

impl Pluto {
    pub(crate) fn p1_ctx(&self, p1: SerialNo) -> Option<P1Ctx> {
        let s = self.sas.ike(p1)?;
        let p = s.exchange.v1()?;
        let ch = p.choice.as_ref()?;
        let keys = p.keys.as_ref()?;
        Some(P1Ctx {
            prf: ch.alg.prf,
            cipher: p.cipher.clone()?,
            skeyid_a: keys.skeyid_a.clone(),
            iv: p.iv.clone(),
            icky: s.spi_i(),
            rcky: s.spi_r,
            local: s.local,
            remote: s.remote,
            group: ch.alg.group,
            natt: p.natt,
            encap: s.nat.encapsulate(),
        })
    }

    pub(crate) fn fresh_msgid(&mut self, p1: SerialNo) -> u32 {
        loop {
            let m = self.rng.next_u32();
            if m == 0 {
                continue;
            }
            let used = self
                .sas
                .ike(p1)
                .and_then(|s| s.exchange.v1())
                .is_some_and(|p| p.msgids.contains(&m));
            if !used {
                self.note_msgid(p1, m);
                return m;
            }
        }
    }

    pub(crate) fn note_msgid(&mut self, p1: SerialNo, m: u32) {
        if let Some(p) = self.sas.ike_mut(p1).and_then(|s| s.exchange.v1_mut()) {
            if p.msgids.len() >= 1024 {
                p.msgids.remove(0);
            }
            p.msgids.push(m);
        }
    }

    /// The IPsec SAs Quick Mode `serial` negotiated, with their keys (RFC 2409 5.5:
    /// KEYMAT per protocol and SPI, from SKEYID_d of its ISAKMP SA, the PFS secret and both
    /// nonces), for the engine to install. `encap_port`: ESP in UDP to that peer port.
    fn negotiated_child(
        &self,
        serial: SerialNo,
        encap_port: Option<u16>,
        life: u64,
    ) -> Option<NegotiatedChild> {
        let c = self.sas.child(serial)?;
        let q = c.exchange.v1()?;
        let parent = self.sas.ike(c.parent())?;
        let p1 = parent.exchange.v1()?;
        let keys = p1.keys.as_ref()?;
        let prf = p1.choice.as_ref()?.alg.prf;
        let choice = q.choice.as_ref()?;
        let gxy: Option<&[u8]> = q.gxy.as_deref().map(|v| v.as_slice());
        let kmat = |proto: u8, spi: u32, len: usize| {
            kc::keymat(
                prf,
                &keys.skeyid_d,
                gxy,
                proto,
                &spi.to_be_bytes(),
                &q.ni,
                &q.nr,
                len,
            )
        };
        let mode = if self.conns.get(c.conn())?.tunnel() {
            let (tun_in, tun_out) = q.tun?;
            ChildMode::Tunnel { tun_in, tun_out }
        } else {
            ChildMode::Transport
        };
        let ipcomp = match choice.cpi {
            Some(peer) => Some((c.our.cpi?, peer)),
            None => None,
        };
        let esp = match choice.esp {
            Some((alg, spi_out)) => {
                let spi_in = c.our.esp?;
                let elen = alg.enc.key_len();
                let len = elen + alg.auth.map_or(0, |a| a.key_len());
                let split = |km: &[u8]| -> Option<EspKeys> {
                    Some(EspKeys {
                        enc: KeyBytes(km.get(..elen)?.to_vec()),
                        integ: KeyBytes(km.get(elen..)?.to_vec()),
                    })
                };
                Some(NegotiatedEsp {
                    enc: alg.enc,
                    integ: alg.auth,
                    spi_in,
                    spi_out,
                    keys_in: split(&kmat(3, spi_in, len))?,
                    keys_out: split(&kmat(3, spi_out, len))?,
                })
            }
            None => None,
        };
        let ah = match choice.ah {
            Some((alg, spi_out)) => {
                let spi_in = c.our.ah?;
                Some(NegotiatedAh {
                    alg,
                    spi_in,
                    spi_out,
                    key_in: KeyBytes(kmat(2, spi_in, alg.key_len()).to_vec()),
                    key_out: KeyBytes(kmat(2, spi_out, alg.key_len()).to_vec()),
                })
            }
            None => None,
        };
        Some(NegotiatedChild {
            local: parent.local.ip(),
            remote: parent.remote.ip(),
            our_client: c.our_client,
            peer_client: c.peer_client,
            mode,
            esp,
            ah,
            ipcomp,
            encap_port,
            life,
        })
    }

    /// Starts Quick Mode for `key` over ISAKMP SA `p1` (keying attempt `try_no`), replacing
    /// IPsec SA `replacing` if given.
    pub(crate) fn quick_initiate(
        &mut self,
        p1: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
        try_no: u32,
    ) {
        let Some(ctx) = self.p1_ctx(p1) else {
            return;
        };
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let policy = v1p::qm_policy(c, ctx.group);
        let (our_client, peer_client) = (c.this.client, c.that.client);
        let send_ids = c.this.has_client || c.that.has_client;
        let tunnel = c.tunnel();
        let mut our = Spis {
            esp: Some(self.spis.spi()),
            ..Spis::default()
        };
        if !policy.ah.is_empty() {
            our.ah = Some(self.spis.spi());
        }
        if policy.compress {
            our.cpi = Some(self.spis.cpi());
        }
        let tun = tunnel.then(|| (self.spis.tun_spi(), self.spis.tun_spi()));
        let encap_mode = if ctx.encap {
            ctx.natt
        } else {
            UdpEncapMode::None
        };
        let sa = v1p::qm_sa_payload(&policy, &our, encap_mode);
        let ni = self.random_bytes(NONCE_LEN);
        let dh = policy.pfs.map(|g| DhKeyPair::generate(g, &mut self.rng()));
        let msgid = self.fresh_msgid(p1);
        let mut rest = vec![Payload::Sa(sa), Payload::Nonce(ni.clone())];
        if let Some(d) = &dh {
            rest.push(Payload::KeyExchange(d.public_value().to_vec()));
        }
        if send_ids {
            rest.push(Payload::Id(IdPayload::new(
                &subnet_identification(&our_client),
                0,
                0,
            )));
            rest.push(Payload::Id(IdPayload::new(
                &subnet_identification(&peer_client),
                0,
                0,
            )));
        }
        let Ok(after) = emit_payloads(&rest) else {
            return;
        };
        let h = kc::quick_hash1(ctx.prf, &ctx.skeyid_a, msgid, &after);
        let mut payloads = vec![Payload::Hash(h)];
        payloads.extend(rest);
        let iv = kc::phase2_iv(ctx.prf, &ctx.iv, msgid, ctx.cipher.block_size());
        let hdr = qm_header(&ctx, msgid);
        let Ok((bytes, next_iv)) = kc::encrypt_message(&hdr, &payloads, &ctx.cipher, &iv) else {
            return;
        };
        let serial = self.sas.new_serial();
        let mut q = QuickMode::new(StateKind::QuickI1);
        q.msgid = msgid;
        q.iv = next_iv;
        q.ni = ni;
        q.dh = dh;
        q.policy = policy;
        q.tun = tun;
        let mut child = ChildSa::new(
            serial,
            NewChildSa {
                conn: key.to_string(),
                parent: p1,
                initiator: true,
                our,
                our_client,
                peer_client,
                created: self.now,
                exchange: ChildExchange::V1(Box::new(q)),
            },
        );
        child.replacing = replacing;
        child.whack = whack;
        child.try_no = try_no;
        self.sas.insert_child(child);
        let pol = self
            .conns
            .get(key)
            .map(|c| c.policy_text())
            .unwrap_or_default();
        if let Some(replacing) = replacing {
            self.slog(
                serial,
                format!("initiating Quick Mode {pol} to replace #{replacing}"),
            );
        } else {
            self.slog(serial, format!("initiating Quick Mode {pol}"));
        }
        self.slog_code(
            serial,
            rc::NEW_STATE + StateKind::QuickI1.number(),
            "STATE_QUICK_I1: initiate".into(),
        );
        self.send_for(serial, ctx.local, ctx.remote, bytes);
        self.schedule(serial, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
    }

    /// Dispatches a Quick Mode message.
    pub(crate) fn v1_quick(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        data: &[u8],
    ) {
        let Some(p1) = self.find_p1(&hdr.initiator_cookie, &hdr.responder_cookie) else {
            self.log(format!(
                "packet from {remote}: Quick Mode message for unknown ISAKMP SA; dropped"
            ));
            return;
        };
        if !self.sas.ike(p1).is_some_and(|s| s.established) {
            self.slog(
                p1,
                "Quick Mode message received before ISAKMP SA established; dropped".into(),
            );
            return;
        }
        if !hdr.flags.encrypted() || hdr.message_id == 0 {
            self.slog(
                p1,
                "Quick Mode message is unencrypted or has a zero Message ID; dropped".into(),
            );
            return;
        }
        let existing = self
            .sas
            .children_of(p1)
            .find(|c| c.exchange.v1().is_some_and(|q| q.msgid == hdr.message_id))
            .map(ChildSa::serial);
        let r = match existing {
            Some(serial) => {
                let Some((kind, dup)) = self
                    .sas
                    .child(serial)
                    .and_then(|c| Some((c.exchange.v1()?.kind, c.rtx.last_recv == data)))
                else {
                    return;
                };
                if dup {
                    if kind == StateKind::QuickR1 {
                        self.resend_last(serial);
                    }
                    return;
                }
                let r = match kind {
                    StateKind::QuickI1 => self.quick_i1(serial, p1, data),
                    StateKind::QuickR1 => self.quick_r1(serial, p1, data),
                    _ => Err(format!(
                        "unexpected Quick Mode message in {}; dropped",
                        kind.name()
                    )),
                };
                match r {
                    Ok(()) => {
                        if let Some(c) = self.sas.child_mut(serial) {
                            c.rtx.last_recv = data.to_vec();
                        }
                        return;
                    }
                    Err(e) => {
                        self.slog(serial, e);
                        return;
                    }
                }
            }
            None => {
                let used = self
                    .sas
                    .ike(p1)
                    .and_then(|s| s.exchange.v1())
                    .is_some_and(|p| p.msgids.contains(&hdr.message_id));
                if used {
                    Err("Quick Mode message with a reused Message ID; dropped".to_string())
                } else if !self.admit_quick_responder(p1) {
                    // A bound is reached (limits.rs): logged, counted; the peer retransmits.
                    return;
                } else {
                    self.quick_r0(p1, local, remote, hdr, data)
                }
            }
        };
        if let Err(e) = r {
            self.slog(p1, e);
        }
    }

    fn qm_decrypt<'a>(
        ctx: &P1Ctx,
        iv: &[u8],
        data: &[u8],
        plain: &'a mut Vec<u8>,
    ) -> Result<Decrypted<'a>, String> {
        let dm = kc::decrypt_message(data, &ctx.cipher, iv)
            .map_err(|e| format!("{e}; message dropped"))?;
        *plain = dm.plaintext;
        let chain = parse_chain(dm.header.next_payload, plain, true)
            .map_err(|e| format!("{e}; message dropped"))?;
        let first = chain.items.first().ok_or("empty message")?;
        if first.raw.payload_type != PT::Hash {
            return Err("first payload is not HASH; message dropped".into());
        }
        let Payload::Hash(h) = &first.p else {
            return Err("bad HASH".into());
        };
        let h = h.clone();
        let start = first.raw.bytes.len();
        let after = plain.get(start..chain.end).unwrap_or(&[]).to_vec();
        Ok((chain, h, after, dm.next_iv))
    }

    /// QI1 arrived: find the connection, choose, install inbound SAs, answer QR1.
    fn quick_r0(
        &mut self,
        p1: SerialNo,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        data: &[u8],
    ) -> Result<(), String> {
        let ctx = self.p1_ctx(p1).ok_or("no keys")?;
        let msgid = hdr.message_id;
        let iv = kc::phase2_iv(ctx.prf, &ctx.iv, msgid, ctx.cipher.block_size());
        let mut plain = Vec::new();
        let (chain, h, after, next_iv) = Self::qm_decrypt(&ctx, &iv, data, &mut plain)?;
        if !ct_eq(&h, &kc::quick_hash1(ctx.prf, &ctx.skeyid_a, msgid, &after)) {
            return Err(
                "received HASH(1) does not match computed value in Quick Mode; message dropped"
                    .into(),
            );
        }
        chain.check(&[
            (PT::Hash, 1, 1),
            (PT::Sa, 1, 1),
            (PT::Nonce, 1, 1),
            (PT::KeyExchange, 0, 1),
            (PT::Id, 0, 2),
            (PT::Notification, 0, 8),
            (PT::NatOa, 0, 2),
        ])?;
        self.heard_from(p1);
        let ids: Vec<&crate::pluto::ikev1::msg::Item<'_>> = chain.all(PT::Id).collect();
        let (peer_client, our_client) = match ids.as_slice() {
            [] => (Subnet::host(ctx.remote.ip()), Subnet::host(ctx.local.ip())),
            [i, r] => {
                let sub = |it: &crate::pluto::ikev1::msg::Item<'_>| match &it.p {
                    Payload::Id(p) => p.identification().and_then(|i| identification_subnet(&i)),
                    _ => None,
                };
                (
                    sub(i).ok_or("unsupported IDci in Quick Mode")?,
                    sub(r).ok_or("unsupported IDcr in Quick Mode")?,
                )
            }
            _ => return Err("Quick Mode needs both IDci and IDcr or neither".into()),
        };
        // An opportunistic peer's client delegated to it in DNS: handled again with the
        // answer (the Message ID stays unused until then).
        if let Some(wait) = self.oe_delegation_pending(p1, &peer_client, local, remote, data) {
            return Err(wait);
        }
        self.note_msgid(p1, msgid);
        let key = self.find_qm_conn(p1, &our_client, &peer_client)?;
        let Some(Payload::Sa(sa)) = chain.get(PT::Sa).map(|i| &i.p) else {
            return Err("missing SA".into());
        };
        let c = self.conns.get(&key).ok_or("connection gone")?;
        let base = v1p::qm_policy(c, ctx.group);
        let keylife = c.keylife;
        let pfs_required = c.pfs;
        let natt = ctx.natt != UdpEncapMode::None;
        let mut why = Vec::new();
        let mut result = v1p::select_qm(sa, &base, natt, &mut why);
        if result.is_err() && !pfs_required {
            // Without PFS of our own, accept the peer's PFS in any group we know.
            for g in DhGroup::IKEV1 {
                let mut pol = base.clone();
                pol.pfs = Some(g);
                let mut w2 = Vec::new();
                if let Ok(ch) = v1p::select_qm(sa, &pol, natt, &mut w2) {
                    result = Ok(ch);
                    break;
                }
            }
        }
        let choice = match result {
            Ok(c) => c,
            Err(n) => {
                let q = self.sprefix(p1);
                for w in why {
                    self.log(format!("{q}: {w}"));
                }
                self.send_notify(
                    p1,
                    n,
                    crate::pluto::isakmp::ProtocolId::Esp,
                    Vec::new(),
                    Vec::new(),
                );
                return Err(format!(
                    "sent protected notification {n} for Quick Mode proposal"
                ));
            }
        };
        let ni = chain
            .get(PT::Nonce)
            .map(|i| i.raw.body().to_vec())
            .ok_or("missing Nonce")?;
        let (gxy, ke_out) = match (choice.pfs, chain.get(PT::KeyExchange).map(|i| &i.p)) {
            (Some(g), Some(Payload::KeyExchange(ke))) => {
                let dh = DhKeyPair::generate(g, &mut self.rng());
                let s = dh
                    .compute_shared(ke)
                    .map_err(|e| format!("bad KE in Quick Mode: {e}"))?;
                let pubv = dh.public_value().to_vec();
                (Some(Zeroizing::new(s.as_bytes().to_vec())), Some(pubv))
            }
            (Some(_), _) => return Err("PFS proposed but no KE payload".into()),
            (None, Some(_)) => return Err("KE payload without PFS group".into()),
            (None, None) => (None, None),
        };
        let nr = self.random_bytes(NONCE_LEN);
        let mut our = Spis {
            esp: choice.esp.map(|_| self.spis.spi()),
            ..Spis::default()
        };
        if choice.ah.is_some() {
            our.ah = Some(self.spis.spi());
        }
        if choice.cpi.is_some() {
            our.cpi = Some(self.spis.cpi());
        }
        let tunnel = self.conns.get(&key).is_some_and(|c| c.tunnel());
        let tun = tunnel.then(|| (self.spis.tun_spi(), self.spis.tun_spi()));
        // No lifetime proposed means RFC 2407's default of 8 h.
        let proposed = choice.life.unwrap_or(28800);
        let life = proposed.min(keylife).min(proposal::MAX_IPSEC_LIFETIME);
        let mut rest = vec![
            Payload::Sa(v1p::qm_response(&choice, &our)),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(k) = ke_out {
            rest.push(Payload::KeyExchange(k));
        }
        for it in &ids {
            rest.push(it.p.clone());
        }
        // We shortened the proposed lifetime: say so (RFC 2407 4.6.3.1), covered by HASH(2).
        if life < proposed {
            if let Some(n) = responder_lifetime(&choice, &our, life) {
                rest.push(n);
                self.slog(
                    p1,
                    format!("IPsec SA lifetime shortened to {life}s (peer proposed {proposed}s): sending RESPONDER-LIFETIME"),
                );
            }
        }
        let after = emit_payloads(&rest).map_err(|e| e.to_string())?;
        let h2 = kc::quick_hash2(ctx.prf, &ctx.skeyid_a, msgid, &ni, &after);
        let mut payloads = vec![Payload::Hash(h2)];
        payloads.extend(rest);
        let (bytes, iv_after) =
            kc::encrypt_message(&qm_header(&ctx, msgid), &payloads, &ctx.cipher, &next_iv)
                .map_err(|e| e.to_string())?;
        let encap_port = choice.udp_encap.then_some(ctx.remote.port());
        let serial = self.sas.new_serial();
        let mut q = QuickMode::new(StateKind::QuickR1);
        q.msgid = msgid;
        q.iv = iv_after;
        q.ni = ni;
        q.nr = nr;
        q.gxy = gxy;
        q.policy = base;
        q.choice = Some(choice);
        q.tun = tun;
        let mut child = ChildSa::new(
            serial,
            NewChildSa {
                conn: key.clone(),
                parent: p1,
                initiator: false,
                our,
                our_client,
                peer_client,
                created: self.now,
                exchange: ChildExchange::V1(Box::new(q)),
            },
        );
        child.rtx.last_recv = data.to_vec();
        self.sas.insert_child(child);
        if let Some(n) = self.negotiated_child(serial, encap_port, life) {
            self.set_negotiated(serial, n);
        }
        if !self.install_child(serial, true, false) {
            self.delete_sa(serial, false);
            return Err("inbound SAs could not be built".into());
        }
        self.hold_for_responder(serial);
        self.slog(serial, "responding to Quick Mode".into());
        self.log_transition(serial, "");
        self.send_for(serial, ctx.local, ctx.remote, bytes);
        self.schedule(serial, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
        Ok(())
    }

    /// QR1 arrived: check, install both directions, route, send QI2.
    fn quick_i1(&mut self, serial: SerialNo, p1: SerialNo, data: &[u8]) -> Result<(), String> {
        let ctx = self.p1_ctx(p1).ok_or("no keys")?;
        let (iv, msgid, ni) = {
            let q = self
                .sas
                .child(serial)
                .and_then(|c| c.exchange.v1())
                .ok_or("gone")?;
            (q.iv.clone(), q.msgid, q.ni.clone())
        };
        let mut plain = Vec::new();
        let (chain, h, after, next_iv) = Self::qm_decrypt(&ctx, &iv, data, &mut plain)?;
        if !ct_eq(
            &h,
            &kc::quick_hash2(ctx.prf, &ctx.skeyid_a, msgid, &ni, &after),
        ) {
            return Err(
                "received HASH(2) does not match computed value in Quick Mode; message dropped"
                    .into(),
            );
        }
        chain.check(&[
            (PT::Hash, 1, 1),
            (PT::Sa, 1, 1),
            (PT::Nonce, 1, 1),
            (PT::KeyExchange, 0, 1),
            (PT::Id, 0, 2),
            (PT::Notification, 0, 8),
            (PT::NatOa, 0, 2),
        ])?;
        self.heard_from(p1);
        let Some(Payload::Sa(sa)) = chain.get(PT::Sa).map(|i| &i.p) else {
            return Err("missing SA".into());
        };
        let (policy, our_client, peer_client) = {
            let c = self.sas.child(serial).ok_or("gone")?;
            let q = c.exchange.v1().ok_or("gone")?;
            (q.policy.clone(), c.our_client, c.peer_client)
        };
        let natt = ctx.natt != UdpEncapMode::None;
        let choice = v1p::check_qm_response(sa, &policy, natt)?;
        for (i, it) in chain.all(PT::Id).enumerate() {
            let want = if i == 0 { our_client } else { peer_client };
            let got = match &it.p {
                Payload::Id(p) => p.identification().and_then(|x| identification_subnet(&x)),
                _ => None,
            };
            if got != Some(want) {
                return Err("Quick Mode responder changed the client IDs; message dropped".into());
            }
        }
        let nr = chain
            .get(PT::Nonce)
            .map(|i| i.raw.body().to_vec())
            .ok_or("missing Nonce")?;
        let gxy = {
            let q = self
                .sas
                .child(serial)
                .and_then(|c| c.exchange.v1())
                .ok_or("gone")?;
            match (&q.dh, chain.get(PT::KeyExchange).map(|i| &i.p)) {
                (Some(dh), Some(Payload::KeyExchange(ke))) => Some(Zeroizing::new(
                    dh.compute_shared(ke)
                        .map_err(|e| format!("bad KE in QR1: {e}"))?
                        .as_bytes()
                        .to_vec(),
                )),
                (Some(_), _) => return Err("PFS requested but responder sent no KE".into()),
                (None, Some(_)) => return Err("unexpected KE in QR1".into()),
                (None, None) => None,
            }
        };
        let key = self
            .sas
            .conn_of(serial)
            .map(str::to_string)
            .unwrap_or_default();
        let keylife = self.conns.get(&key).map_or(28800, |c| c.keylife);
        // RFC 2407 4.6.3.1: the responder chose a shorter lifetime than we proposed.
        let notified = chain.all(PT::Notification).find_map(|it| match &it.p {
            Payload::Notification(n) if n.notify_type == NotifyType::ResponderLifetime => {
                lifetime_seconds(&n.data)
            }
            _ => None,
        });
        if let Some(n) = notified {
            self.slog(
                serial,
                format!("received RESPONDER-LIFETIME: IPsec SA lifetime {n}s"),
            );
        }
        let mut life = choice.life.unwrap_or(keylife).min(keylife);
        if let Some(n) = notified {
            life = life.min(n);
        }
        let encap_port = (choice.udp_encap || ctx.encap).then_some(ctx.remote.port());
        {
            let c = self.sas.child_mut(serial).ok_or("gone")?;
            if let Some(cpi) = c.our.cpi {
                if choice.cpi.is_none() {
                    c.our.cpi = None;
                    self.spis.release_cpi(cpi);
                }
            }
            let q = c.exchange.v1_mut().ok_or("gone")?;
            q.nr = nr.clone();
            q.gxy = gxy;
            q.dh = None;
            q.choice = Some(choice);
        }
        let h3 = kc::quick_hash3(ctx.prf, &ctx.skeyid_a, msgid, &ni, &nr);
        let (bytes, iv_after) = kc::encrypt_message(
            &qm_header(&ctx, msgid),
            &[Payload::Hash(h3)],
            &ctx.cipher,
            &next_iv,
        )
        .map_err(|e| e.to_string())?;
        if let Some(q) = self.sas.child_mut(serial).and_then(|c| c.exchange.v1_mut()) {
            q.iv = iv_after;
        }
        if let Some(n) = self.negotiated_child(serial, encap_port, life) {
            self.set_negotiated(serial, n);
        }
        if !self.install_child(serial, true, true) {
            return Err("SAs could not be built".into());
        }
        self.route_to_child(serial);
        self.send_for(serial, ctx.local, ctx.remote, bytes);
        self.set_quick_kind(serial, StateKind::QuickI2);
        let extra = self.sa_summary(serial);
        self.log_transition(serial, &extra);
        self.child_established(serial);
        self.release_whack(serial, 0);
        Ok(())
    }

    /// QI2 arrived: install outbound, route.
    fn quick_r1(&mut self, serial: SerialNo, p1: SerialNo, data: &[u8]) -> Result<(), String> {
        let ctx = self.p1_ctx(p1).ok_or("no keys")?;
        let (iv, msgid, ni, nr) = {
            let q = self
                .sas
                .child(serial)
                .and_then(|c| c.exchange.v1())
                .ok_or("gone")?;
            (q.iv.clone(), q.msgid, q.ni.clone(), q.nr.clone())
        };
        let mut plain = Vec::new();
        let (chain, h, _after, next_iv) = Self::qm_decrypt(&ctx, &iv, data, &mut plain)?;
        if !ct_eq(
            &h,
            &kc::quick_hash3(ctx.prf, &ctx.skeyid_a, msgid, &ni, &nr),
        ) {
            return Err(
                "received HASH(3) does not match computed value in Quick Mode; message dropped"
                    .into(),
            );
        }
        chain.check(&[(PT::Hash, 1, 1), (PT::Notification, 0, 8)])?;
        self.heard_from(p1);
        if let Some(q) = self.sas.child_mut(serial).and_then(|c| c.exchange.v1_mut()) {
            q.iv = next_iv;
        }
        if !self.install_child(serial, false, true) {
            return Err("outbound SAs could not be built".into());
        }
        self.route_to_child(serial);
        self.set_quick_kind(serial, StateKind::QuickR2);
        let extra = self.sa_summary(serial);
        self.log_transition(serial, &extra);
        self.child_established(serial);
        Ok(())
    }

    /// ` {ESP=>0x… <0x…}` for the established line.
    pub(crate) fn sa_summary(&self, serial: SerialNo) -> String {
        self.sas
            .child(serial)
            .and_then(|c| c.negotiated.as_ref())
            .map(|n| n.summary())
            .unwrap_or_default()
    }
}

/// The RESPONDER-LIFETIME notification (RFC 2407 4.6.3.1) for the chosen SA: protocol and our
/// (the sender's) inbound SPI, data = SA Life Type seconds + SA Life Duration.
fn responder_lifetime(choice: &v1p::QmChoice, our: &Spis, life: u64) -> Option<Payload> {
    let (protocol, spi) = match (choice.esp.and(our.esp), choice.ah.and(our.ah)) {
        (Some(spi), _) => (ProtocolId::Esp, spi),
        (None, Some(spi)) => (ProtocolId::Ah, spi),
        (None, None) => return None,
    };
    let data = Attribute::encode_list(&[
        Attribute::basic(
            IpsecAttrType::SaLifeType.value(),
            SaLifeType::Seconds.value(),
        ),
        Attribute::number(
            IpsecAttrType::SaLifeDuration.value(),
            u32::try_from(life).unwrap_or(u32::MAX),
        ),
    ])
    .ok()?;
    Some(Payload::Notification(NotificationPayload {
        doi: Doi::Ipsec,
        protocol,
        spi: spi.to_be_bytes().to_vec(),
        notify_type: NotifyType::ResponderLifetime,
        data,
    }))
}

/// The lifetime in seconds of a RESPONDER-LIFETIME notification's attribute list (the shortest
/// if several are given; kilobyte lifetimes are ignored).
fn lifetime_seconds(data: &[u8]) -> Option<u64> {
    let attrs = Attribute::decode_list(data).ok()?;
    let mut seconds = false;
    let mut out: Option<u64> = None;
    for a in attrs {
        match IpsecAttrType::from(a.attr_type) {
            IpsecAttrType::SaLifeType => {
                seconds = a.value == AttrValue::Basic(SaLifeType::Seconds.value())
            }
            IpsecAttrType::SaLifeDuration if seconds => {
                if let Some(d) = a.as_u64().filter(|d| *d > 0) {
                    out = Some(out.map_or(d, |o| o.min(d)));
                }
            }
            _ => {}
        }
    }
    out
}

/// A decrypted phase-2 message: chain, received HASH, bytes after the HASH, next IV.
type Decrypted<'a> = (Chain<'a>, Vec<u8>, Vec<u8>, Vec<u8>);

pub(crate) fn qm_header(ctx: &P1Ctx, msgid: u32) -> Header {
    Header {
        initiator_cookie: ctx.icky,
        responder_cookie: ctx.rcky,
        next_payload: PT::None,
        exchange_type: ExchangeType::QuickMode,
        flags: Flags::ENCRYPTION,
        message_id: msgid,
    }
}
