//! Quick Mode (RFC 2409 5.5): IPsec SA negotiation with PFS, client IDs, AH/ESP/IPComp, NAT-T
//! encapsulation modes; SA installation is make-before-break.

use crate::pluto::ids::{SerialNo, WhackClient};
use std::net::SocketAddrV4;

use zeroize::Zeroizing;

use crate::addr::Subnet;
use crate::pluto::connection::{identification_subnet, subnet_identification};
use crate::pluto::crypto::{DhGroup, DhKeyPair};
use crate::pluto::engine::{Pluto, RETRANSMIT_BASE_MS};
use crate::pluto::ikev1::crypto as kc;
use crate::pluto::ikev1::msg::{ct_eq, parse_chain, Chain};
use crate::pluto::ikev1::state::{Event, Family, Phase2, State, StateKind};
use crate::pluto::isakmp::{
    emit_payloads, AttrValue, Attribute, Doi, ExchangeType, Flags, Header, IdPayload,
    IpsecAttrType, NotificationPayload, NotifyType, Payload, PayloadType as PT, ProtocolId,
    SaLifeType,
};
use crate::pluto::output::rc;
use crate::pluto::proposal::{self, Spis, UdpEncapMode};

const NONCE_LEN: usize = 32;

/// Keys and algorithms of an ISAKMP SA needed for phase 2.
pub(crate) struct P1Ctx {
    pub(crate) prf: crate::pluto::crypto::Prf,
    pub(crate) cipher: crate::pluto::crypto::Cipher,
    pub(crate) enc_key: Zeroizing<Vec<u8>>,
    pub(crate) skeyid_a: Zeroizing<Vec<u8>>,
    pub(crate) iv: Vec<u8>,
    pub(crate) icky: [u8; 8],
    pub(crate) rcky: [u8; 8],
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    pub(crate) group: DhGroup,
    pub(crate) natt: UdpEncapMode,
    pub(crate) encap: bool,
}

impl Pluto {
    pub(crate) fn p1_ctx(&self, p1: SerialNo) -> Option<P1Ctx> {
        let st = self.states.get(&p1)?;
        let p = st.p1()?;
        let ch = p.choice.as_ref()?;
        let keys = p.keys.as_ref()?;
        Some(P1Ctx {
            prf: ch.alg.prf,
            cipher: ch.alg.cipher,
            enc_key: keys.enc_key.clone(),
            skeyid_a: keys.skeyid_a.clone(),
            iv: p.iv.clone(),
            icky: p.icookie,
            rcky: p.rcookie,
            local: p.local,
            remote: p.remote,
            group: ch.alg.group,
            natt: p.natt.method,
            encap: p.natt.encapsulate(),
        })
    }

    pub(crate) fn fresh_msgid(&mut self, p1: SerialNo) -> u32 {
        loop {
            let m = self.rng.next_u32();
            if m == 0 {
                continue;
            }
            let used = self
                .states
                .get(&p1)
                .and_then(|s| s.p1())
                .is_some_and(|p| p.msgids.contains(&m));
            if !used {
                self.note_msgid(p1, m);
                return m;
            }
        }
    }

    pub(crate) fn note_msgid(&mut self, p1: SerialNo, m: u32) {
        if let Some(p) = self.states.get_mut(&p1).and_then(|s| s.p1_mut()) {
            if p.msgids.len() >= 1024 {
                p.msgids.remove(0);
            }
            p.msgids.push(m);
        }
    }

    /// Starts Quick Mode for `key` over ISAKMP SA `p1`.
    pub(crate) fn quick_initiate(
        &mut self,
        p1: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
    ) {
        self.quick_initiate_try(p1, key, whack, replacing, 1);
    }

    pub(crate) fn quick_initiate_try(
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
        let policy = c.qm_policy(ctx.group);
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
        let sa = proposal::qm_sa_payload(&policy, &our, encap_mode);
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
        let Ok((bytes, next_iv)) =
            kc::encrypt_message(&hdr, &payloads, ctx.cipher, &ctx.enc_key, &iv)
        else {
            return;
        };
        let serial = self.new_serial();
        let p2 = Phase2 {
            parent: p1,
            initiator: true,
            msgid,
            iv: next_iv,
            ni,
            nr: Vec::new(),
            dh,
            gxy: None,
            our,
            policy,
            choice: None,
            our_client,
            peer_client,
            tun,
            inbound: Vec::new(),
            outbound: Vec::new(),
            life: 0,
            replacing,
            encap_port: None,
            used_in: None,
            used_out: None,
        };
        self.states.insert(
            serial,
            State {
                serial,
                conn: key.to_string(),
                kind: StateKind::QuickI1,
                family: Family::P2(Box::new(p2)),
                event: None,
                retransmits: 0,
                last_sent: None,
                last_recv: Vec::new(),
                whack,
                try_no,
                created: self.now,
                expires_at: 0,
                psk: None,
            },
        );
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
        self.schedule(serial, RETRANSMIT_BASE_MS, Event::Retransmit);
    }

    /// Dispatches a Quick Mode message.
    pub(crate) fn v1_quick(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        hdr: &Header,
        data: &[u8],
    ) {
        let Some(p1) = self.find_p1(&hdr.initiator_cookie, &hdr.responder_cookie) else {
            self.log(format!(
                "packet from {remote}: Quick Mode message for unknown ISAKMP SA; dropped"
            ));
            return;
        };
        if !self
            .states
            .get(&p1)
            .is_some_and(|s| s.kind.isakmp_established())
        {
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
        let existing = self.states.values().find_map(|s| {
            let p = s.p2()?;
            (p.parent == p1 && p.msgid == hdr.message_id).then_some(s.serial)
        });
        let r = match existing {
            Some(serial) => {
                let (kind, dup) = match self.states.get(&serial) {
                    Some(s) => (s.kind, s.last_recv == data),
                    None => return,
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
                        if let Some(s) = self.states.get_mut(&serial) {
                            s.last_recv = data.to_vec();
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
                    .states
                    .get(&p1)
                    .and_then(|s| s.p1())
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
        let dm = kc::decrypt_message(data, ctx.cipher, &ctx.enc_key, iv)
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
        _local: SocketAddrV4,
        _remote: SocketAddrV4,
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
        self.note_msgid(p1, msgid);
        self.heard_from(p1);
        let ids: Vec<&crate::pluto::ikev1::msg::Item<'_>> = chain.all(PT::Id).collect();
        let (peer_client, our_client) = match ids.as_slice() {
            [] => (
                Subnet::host(*ctx.remote.ip()),
                Subnet::host(*ctx.local.ip()),
            ),
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
        let key = self.find_qm_conn(p1, &our_client, &peer_client)?;
        let Some(Payload::Sa(sa)) = chain.get(PT::Sa).map(|i| &i.p) else {
            return Err("missing SA".into());
        };
        let c = self.conns.get(&key).ok_or("connection gone")?;
        let base = c.qm_policy(ctx.group);
        let keylife = c.keylife;
        let pfs_required = c.pfs;
        let natt = ctx.natt != UdpEncapMode::None;
        let mut why = Vec::new();
        let mut result = proposal::select_qm(sa, &base, natt, &mut why);
        if result.is_err() && !pfs_required {
            // Without PFS of our own, accept the peer's PFS in any group we know.
            for g in DhGroup::IKEV1 {
                let mut pol = base.clone();
                pol.pfs = Some(g);
                let mut w2 = Vec::new();
                if let Ok(ch) = proposal::select_qm(sa, &pol, natt, &mut w2) {
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
        let (dh, gxy, ke_out) = match (choice.pfs, chain.get(PT::KeyExchange).map(|i| &i.p)) {
            (Some(g), Some(Payload::KeyExchange(ke))) => {
                let dh = DhKeyPair::generate(g, &mut self.rng());
                let s = dh
                    .compute_shared(ke)
                    .map_err(|e| format!("bad KE in Quick Mode: {e}"))?;
                let pubv = dh.public_value().to_vec();
                (
                    None::<DhKeyPair>,
                    Some(Zeroizing::new(s.as_bytes().to_vec())),
                    Some(pubv),
                )
            }
            (Some(_), _) => return Err("PFS proposed but no KE payload".into()),
            (None, Some(_)) => return Err("KE payload without PFS group".into()),
            (None, None) => (None, None, None),
        };
        let _ = dh;
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
            Payload::Sa(proposal::qm_response(&choice, &our)),
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
        let (bytes, iv_after) = kc::encrypt_message(
            &qm_header(&ctx, msgid),
            &payloads,
            ctx.cipher,
            &ctx.enc_key,
            &next_iv,
        )
        .map_err(|e| e.to_string())?;
        let encap_port = choice.udp_encap.then_some(ctx.remote.port());
        let serial = self.new_serial();
        let p2 = Phase2 {
            parent: p1,
            initiator: false,
            msgid,
            iv: iv_after,
            ni,
            nr,
            dh: None,
            gxy,
            our,
            policy: base,
            choice: Some(choice),
            our_client,
            peer_client,
            tun,
            inbound: Vec::new(),
            outbound: Vec::new(),
            life,
            replacing: None,
            encap_port,
            used_in: None,
            used_out: None,
        };
        self.states.insert(
            serial,
            State {
                serial,
                conn: key.clone(),
                kind: StateKind::QuickR1,
                family: Family::P2(Box::new(p2)),
                event: None,
                retransmits: 0,
                last_sent: None,
                last_recv: data.to_vec(),
                whack: None,
                try_no: 0,
                created: self.now,
                expires_at: 0,
                psk: None,
            },
        );
        if !self.install_sas(serial, true, false) {
            self.delete_state(serial, false);
            return Err("inbound SAs could not be built".into());
        }
        self.hold_for_responder(serial);
        self.slog(serial, "responding to Quick Mode".into());
        self.log_transition(serial, "");
        self.send_for(serial, ctx.local, ctx.remote, bytes);
        self.schedule(serial, RETRANSMIT_BASE_MS, Event::Retransmit);
        Ok(())
    }

    /// QR1 arrived: check, install both directions, route, send QI2.
    fn quick_i1(&mut self, serial: SerialNo, p1: SerialNo, data: &[u8]) -> Result<(), String> {
        let ctx = self.p1_ctx(p1).ok_or("no keys")?;
        let (iv, msgid, ni) = {
            let p2 = self
                .states
                .get(&serial)
                .and_then(|s| s.p2())
                .ok_or("gone")?;
            (p2.iv.clone(), p2.msgid, p2.ni.clone())
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
            let p2 = self
                .states
                .get(&serial)
                .and_then(|s| s.p2())
                .ok_or("gone")?;
            (p2.policy.clone(), p2.our_client, p2.peer_client)
        };
        let natt = ctx.natt != UdpEncapMode::None;
        let choice = proposal::check_qm_response(sa, &policy, natt)?;
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
            let p2 = self
                .states
                .get(&serial)
                .and_then(|s| s.p2())
                .ok_or("gone")?;
            match (&p2.dh, chain.get(PT::KeyExchange).map(|i| &i.p)) {
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
            .states
            .get(&serial)
            .map(|s| s.conn.clone())
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
        {
            let p2 = self
                .states
                .get_mut(&serial)
                .and_then(|s| s.p2_mut())
                .ok_or("gone")?;
            p2.nr = nr.clone();
            p2.gxy = gxy;
            p2.dh = None;
            p2.life = choice.life.unwrap_or(keylife).min(keylife);
            if let Some(n) = notified {
                p2.life = p2.life.min(n);
            }
            p2.encap_port = (choice.udp_encap || ctx.encap).then_some(ctx.remote.port());
            if let Some(cpi) = p2.our.cpi {
                if choice.cpi.is_none() {
                    p2.our.cpi = None;
                    self.spis.release_cpi(cpi);
                }
            }
            p2.choice = Some(choice);
        }
        let h3 = kc::quick_hash3(ctx.prf, &ctx.skeyid_a, msgid, &ni, &nr);
        let (bytes, iv_after) = kc::encrypt_message(
            &qm_header(&ctx, msgid),
            &[Payload::Hash(h3)],
            ctx.cipher,
            &ctx.enc_key,
            &next_iv,
        )
        .map_err(|e| e.to_string())?;
        if let Some(p2) = self.states.get_mut(&serial).and_then(|s| s.p2_mut()) {
            p2.iv = iv_after;
        }
        if !self.install_sas(serial, true, true) {
            return Err("SAs could not be built".into());
        }
        self.route_to_state(serial);
        self.send_for(serial, ctx.local, ctx.remote, bytes);
        if let Some(s) = self.states.get_mut(&serial) {
            s.kind = StateKind::QuickI2;
        }
        let extra = self.sa_summary(serial);
        self.log_transition(serial, &extra);
        self.p2_established(serial);
        self.release_whack(serial, 0);
        Ok(())
    }

    /// QI2 arrived: install outbound, route.
    fn quick_r1(&mut self, serial: SerialNo, p1: SerialNo, data: &[u8]) -> Result<(), String> {
        let ctx = self.p1_ctx(p1).ok_or("no keys")?;
        let (iv, msgid, ni, nr) = {
            let p2 = self
                .states
                .get(&serial)
                .and_then(|s| s.p2())
                .ok_or("gone")?;
            (p2.iv.clone(), p2.msgid, p2.ni.clone(), p2.nr.clone())
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
        if let Some(p2) = self.states.get_mut(&serial).and_then(|s| s.p2_mut()) {
            p2.iv = next_iv;
        }
        if !self.install_sas(serial, false, true) {
            return Err("outbound SAs could not be built".into());
        }
        self.route_to_state(serial);
        if let Some(s) = self.states.get_mut(&serial) {
            s.kind = StateKind::QuickR2;
        }
        let extra = self.sa_summary(serial);
        self.log_transition(serial, &extra);
        self.p2_established(serial);
        Ok(())
    }

    /// ` {ESP=>0x… <0x…}` for the established line.
    pub(crate) fn sa_summary(&self, serial: SerialNo) -> String {
        let Some(p2) = self.states.get(&serial).and_then(|s| s.p2()) else {
            return String::new();
        };
        let Some(ch) = &p2.choice else {
            return String::new();
        };
        let mut parts = Vec::new();
        if let (Some((_, peer)), Some(our)) = (ch.ah, p2.our.ah) {
            parts.push(format!("AH=>0x{peer:08x} <0x{our:08x}"));
        }
        if let (Some((_, peer)), Some(our)) = (ch.esp, p2.our.esp) {
            parts.push(format!("ESP=>0x{peer:08x} <0x{our:08x}"));
        }
        if let (Some(peer), Some(our)) = (ch.cpi, p2.our.cpi) {
            parts.push(format!("IPCOMP=>0x{peer:08x} <0x{our:08x}"));
        }
        if p2.encap_port.is_some() {
            parts.push("NATOA=none NATD=encap".into());
        }
        format!(" {{{}}}", parts.join(" "))
    }

    fn p2_established(&mut self, serial: SerialNo) {
        let now = self.now;
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let key = st.conn.clone();
        let (life, initiator) = st.p2().map_or((0, false), |p| (p.life, p.initiator));
        let (delay, ev) = self.replace_delay_ms(&key, life, initiator);
        if let Some(s) = self.states.get_mut(&serial) {
            s.expires_at = now.saturating_add(life * 1000);
            s.event = Some((now.saturating_add(delay), ev));
        }
    }

    /// Notes that the peer of ISAKMP SA `p1` is alive (DPD).
    pub(crate) fn heard_from(&mut self, p1: SerialNo) {
        let now = self.now;
        if let Some(p) = self.states.get_mut(&p1).and_then(|s| s.p1_mut()) {
            p.dpd.last_heard = now;
        }
    }
}

/// The RESPONDER-LIFETIME notification (RFC 2407 4.6.3.1) for the chosen SA: protocol and our
/// (the sender's) inbound SPI, data = SA Life Type seconds + SA Life Duration.
fn responder_lifetime(choice: &proposal::QmChoice, our: &Spis, life: u64) -> Option<Payload> {
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
