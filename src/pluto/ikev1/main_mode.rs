//! Main Mode (RFC 2409 5, identity protection) with PSK and RSA signatures, NAT-T discovery
//! (RFC 3947) and the DPD Vendor ID (RFC 3706), initiator and responder.

use std::net::{IpAddr, SocketAddr};

use zeroize::Zeroizing;

use crate::config::secrets::Id;
use crate::pluto::crypto::CbcCipher;
use crate::pluto::crypto::{DhGroup, DhKeyPair, PublicKey};
use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::ikev1::crypto as kc;
use crate::pluto::ikev1::ident::{id_to_identification, identification_text, identification_to_id};
use crate::pluto::ikev1::msg::{ct_eq, parse_chain, Chain};
use crate::pluto::ikev1::proposal::{self as v1p, UdpEncapMode};
use crate::pluto::ikev1::state::{Isakmp, StateKind};
use crate::pluto::isakmp::natt::{vendor_id, IKE_PORT, NAT_T_PORT};
use crate::pluto::isakmp::{
    Doi, ExchangeType, Flags, Header, IdPayload, Message, MessageBody, NatDPayload,
    NotificationPayload, NotifyType, Payload, PayloadType as PT, ProtocolId,
};
use crate::pluto::output::rc;
use crate::pluto::proposal::{self, AuthKind};
use crate::pluto::sa::{IkeSa, NewIkeSa, PendingChild};
use crate::pluto::timers::{TimerKind, HALF_OPEN_TIMEOUT_MS, RETRANSMIT_BASE_MS};
use crate::pluto::version::{IkeExchange, IkeVersion};

const NONCE_LEN: usize = 32;

/// The ISAKMP SA `serial` and its IKEv1 state.
fn v1(p: &Pluto, serial: SerialNo) -> Result<(&IkeSa, &Isakmp), String> {
    let s = p.sas.ike(serial).ok_or("gone")?;
    let x = s.exchange.v1().ok_or("not an IKEv1 SA")?;
    Ok((s, x))
}

/// Why a peer's Main Mode authentication (MI3/MR3) failed, and the notification that tells
/// the peer so when the failure is final (a wrong signature or hash, no key to check it with).
#[derive(Debug)]
struct AuthFailure {
    notify: Option<NotifyType>,
    why: String,
}

impl From<String> for AuthFailure {
    fn from(why: String) -> AuthFailure {
        AuthFailure { notify: None, why }
    }
}

impl From<&str> for AuthFailure {
    fn from(why: &str) -> AuthFailure {
        AuthFailure::from(why.to_string())
    }
}

impl Pluto {
    /// Finds an ISAKMP SA by cookies (an MI1 state matches any responder cookie).
    pub(crate) fn find_p1(&self, icky: &[u8; 8], rcky: &[u8; 8]) -> Option<SerialNo> {
        self.sas
            .by_spi_i(icky)
            .find(|s| {
                let mi1 = s.exchange.v1().is_some_and(|x| x.kind == StateKind::MainI1);
                s.spi_r == *rcky || (mi1 && s.spi_r == [0; 8])
            })
            .map(IkeSa::serial)
    }

    /// Dispatches a Main Mode message.
    pub(crate) fn v1_main(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        data: &[u8],
    ) {
        if hdr.message_id != 0 {
            self.log(format!(
                "packet from {remote}: Main Mode message with non-zero Message ID; dropped"
            ));
            return;
        }
        if hdr.responder_cookie == [0; 8] {
            // MI1, or a retransmission of it.
            let dup = self
                .sas
                .by_spi_i(&hdr.initiator_cookie)
                .find(|s| !s.initiator && s.remote.ip() == remote.ip())
                .map(IkeSa::serial);
            if let Some(serial) = dup {
                let answer = self.sas.ike(serial).is_some_and(|s| {
                    s.rtx.last_recv == data
                        && s.exchange.v1().is_some_and(|x| x.kind == StateKind::MainR1)
                });
                if answer {
                    self.resend_last(serial);
                }
                return;
            }
            self.main_r0(local, remote, hdr, data);
            return;
        }
        let Some(serial) = self.find_p1(&hdr.initiator_cookie, &hdr.responder_cookie) else {
            if !self.late_for_half_open(&hdr.initiator_cookie, &hdr.responder_cookie, local, remote)
            {
                self.log(format!(
                    "packet from {remote}: Main Mode message for unknown ISAKMP SA; dropped"
                ));
            }
            return;
        };
        let Ok((s, x)) = v1(self, serial) else {
            return;
        };
        let (kind, dup, initiator) = (x.kind, s.rtx.last_recv == data, s.initiator);
        if dup {
            // A retransmission of the peer's last message: answer with our last one.
            if matches!(
                kind,
                StateKind::MainR1 | StateKind::MainR2 | StateKind::MainR3
            ) {
                self.resend_last(serial);
            }
            return;
        }
        let r = match (kind, initiator) {
            (StateKind::MainI1, true) => self.main_i1(serial, hdr, data),
            (StateKind::MainR1, false) => self.main_r1(serial, hdr, data),
            (StateKind::MainI2, true) => self.main_i2(serial, hdr, data),
            (StateKind::MainR2, false) => self.main_r2(serial, local, remote, hdr, data),
            (StateKind::MainI3, true) => self.main_i3(serial, remote, hdr, data),
            _ => Err(format!(
                "unexpected Main Mode message in {}; dropped",
                kind.name()
            )),
        };
        match r {
            Ok(()) => {
                if let Some(s) = self.sas.ike_mut(serial) {
                    s.rtx.last_recv = data.to_vec();
                }
            }
            Err(e) => self.slog(serial, e),
        }
    }

    fn vids(&self, natt: Option<UdpEncapMode>, dpd: bool) -> Vec<Payload> {
        let mut v = Vec::new();
        match natt {
            Some(UdpEncapMode::Rfc) => v.push(Payload::VendorId(vendor_id::NAT_T_RFC3947.to_vec())),
            Some(UdpEncapMode::Draft) => {
                v.push(Payload::VendorId(vendor_id::NAT_T_DRAFT_03.to_vec()))
            }
            Some(UdpEncapMode::None) => {
                v.push(Payload::VendorId(vendor_id::NAT_T_RFC3947.to_vec()));
                v.push(Payload::VendorId(vendor_id::NAT_T_DRAFT_03.to_vec()));
                v.push(Payload::VendorId(vendor_id::NAT_T_DRAFT_02_N.to_vec()));
                v.push(Payload::VendorId(vendor_id::NAT_T_DRAFT_02.to_vec()));
            }
            None => {}
        }
        if dpd {
            v.push(Payload::VendorId(vendor_id::DPD.to_vec()));
        }
        v
    }

    fn read_vids(&self, chain: &Chain<'_>) -> (UdpEncapMode, bool) {
        let mut natt = UdpEncapMode::None;
        let mut dpd = false;
        for it in chain.all(PT::VendorId) {
            if let Payload::VendorId(v) = &it.p {
                if v.as_slice() == vendor_id::NAT_T_RFC3947 {
                    natt = UdpEncapMode::Rfc;
                } else if (v.as_slice() == vendor_id::NAT_T_DRAFT_03
                    || v.as_slice() == vendor_id::NAT_T_DRAFT_02
                    || v.as_slice() == vendor_id::NAT_T_DRAFT_02_N)
                    && natt == UdpEncapMode::None
                {
                    natt = UdpEncapMode::Draft;
                } else if v.as_slice() == vendor_id::DPD {
                    dpd = true;
                }
            }
        }
        if !self.cfg.nat_traversal {
            natt = UdpEncapMode::None;
        }
        (natt, dpd)
    }

    fn header(icky: [u8; 8], rcky: [u8; 8], xchg: ExchangeType, msgid: u32) -> Header {
        Header {
            initiator_cookie: icky,
            responder_cookie: rcky,
            next_payload: PT::None,
            exchange_type: xchg,
            flags: Flags::NONE,
            message_id: msgid,
        }
    }

    fn cookie(&mut self) -> [u8; 8] {
        loop {
            let mut c = [0u8; 8];
            self.rng.fill_bytes(&mut c);
            if c != [0; 8] {
                return c;
            }
        }
    }

    /// Starts Main Mode for a conn (keying attempt `try_no`), replacing ISAKMP SA
    /// `replacing_isakmp` if given; `pending` is the Quick Mode to run once established.
    pub(crate) fn main_initiate(
        &mut self,
        key: &str,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing_isakmp: Option<SerialNo>,
    ) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let (Some(me), Some(peer)) = (c.this.host, c.that.host) else {
            return;
        };
        // As many Main Modes towards one address as a responder keeps half-open for it
        // (limits.rs: a responder like us evicts beyond that): the rest wait their turn.
        if self.wait_for_main_mode_room(key, peer, whack, try_no, pending, replacing_isakmp) {
            return;
        }
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let local = SocketAddr::new(me, IKE_PORT);
        let remote = SocketAddr::new(peer, IKE_PORT);
        let offered = c.ike_v1();
        let auths = c.auth.clone();
        let life = c.ikelifetime;
        let icky = self.cookie();
        let sa = v1p::ike_sa_payload(&offered, &auths, life);
        let Ok(sai_b) = Payload::Sa(sa.clone()).body_bytes() else {
            return;
        };
        let mut payloads = vec![Payload::Sa(sa)];
        let natt = self.cfg.nat_traversal.then_some(UdpEncapMode::None);
        payloads.extend(self.vids(natt, true));
        let msg = Message {
            header: Self::header(icky, [0; 8], ExchangeType::MainMode, 0),
            body: MessageBody::Payloads(payloads),
        };
        let Ok(bytes) = msg.to_bytes() else {
            return;
        };
        let serial = self.sas.new_serial();
        let mut x = Isakmp::new(StateKind::MainI1);
        x.offered = offered;
        x.auths = auths;
        x.sai_b = sai_b;
        let mut sa = IkeSa::new(
            serial,
            NewIkeSa {
                conn: key.to_string(),
                spi_i: icky,
                spi_r: [0; 8],
                initiator: true,
                local,
                remote,
                created: self.now,
                exchange: IkeExchange::V1(Box::new(x)),
            },
        );
        sa.life = life;
        sa.whack = whack;
        sa.try_no = try_no;
        sa.pending_child = pending;
        self.sas.insert_ike(sa);
        let replacing = pending.and_then(|p| p.replacing).or(replacing_isakmp);
        if let Some(replacing) = replacing {
            self.slog(
                serial,
                format!("initiating Main Mode to replace #{replacing}"),
            );
        } else {
            self.slog(serial, "initiating Main Mode".into());
        }
        self.slog_code(
            serial,
            rc::NEW_STATE + StateKind::MainI1.number(),
            "STATE_MAIN_I1: initiate".into(),
        );
        self.send_for(serial, local, remote, bytes);
        self.schedule(serial, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
    }

    /// MI1 arrived: pick a connection and a transform, answer MR1.
    fn main_r0(&mut self, local: SocketAddr, remote: SocketAddr, hdr: &Header, data: &[u8]) {
        if hdr.flags.encrypted() {
            self.log(format!("packet from {remote}: encrypted MI1; dropped"));
            return;
        }
        let Ok((_, body)) = Header::parse_datagram(data) else {
            return;
        };
        let chain = match parse_chain(hdr.next_payload, body, false) {
            Ok(c) => c,
            Err(e) => {
                self.log(format!("packet from {remote}: {e}; message dropped"));
                return;
            }
        };
        if let Err(e) = chain.check(&[(PT::Sa, 1, 1), (PT::VendorId, 0, 32)]) {
            self.log(format!("packet from {remote}: {e}"));
            return;
        }
        let me = local.ip();
        let peer = remote.ip();
        let mut explicit: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.negotiates() && c.this.host == Some(me) && c.that.host == Some(peer))
            .filter(|c| c.ike_policy.accepts(IkeVersion::V1))
            .map(|c| c.key())
            .collect();
        let templates: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.negotiates() && c.this.host == Some(me) && c.is_template())
            .filter(|c| c.ike_policy.accepts(IkeVersion::V1))
            .map(|c| c.key())
            .collect();
        if explicit.is_empty() && templates.is_empty() {
            // Opportunistic encryption: an instance for this peer, its key from DNS.
            // (Opportunistic encryption finds peers through IPv4 reverse DNS only.)
            if let (IpAddr::V4(me), IpAddr::V4(peer)) = (me, peer) {
                explicit.extend(self.oe_responder_instance(me, peer));
            }
        }
        if explicit.is_empty() && templates.is_empty() {
            self.log(format!(
                "packet from {remote}: initial Main Mode message received on {me}:{} but no connection has been authorized",
                local.port()
            ));
            return;
        }
        let Some(Payload::Sa(sa)) = chain.get(PT::Sa).map(|i| &i.p) else {
            return;
        };
        let sai_b = chain
            .get(PT::Sa)
            .map(|i| i.raw.body().to_vec())
            .unwrap_or_default();
        let mut chosen = None;
        let mut first_why = Vec::new();
        for key in explicit.iter().chain(templates.iter()) {
            let Some(c) = self.conns.get(key) else {
                continue;
            };
            let mut why = Vec::new();
            match v1p::select_ike(sa, &c.ike_v1(), &c.auth, &mut why) {
                Ok(ch) => {
                    chosen = Some((key.clone(), ch));
                    break;
                }
                Err(n) => {
                    if first_why.is_empty() {
                        first_why = why.into_iter().map(|w| (key.clone(), w)).collect();
                        first_why
                            .push((key.clone(), format!("sending notification {n} to {remote}")));
                    }
                }
            }
        }
        let Some((key, choice)) = chosen else {
            for (k, w) in first_why {
                let q = self.conn_quoted(&k);
                self.log(format!("{q}: {w}"));
            }
            self.send_unprotected_notify(
                local,
                remote,
                hdr.initiator_cookie,
                NotifyType::NoProposalChosen,
            );
            return;
        };
        let (natt, peer_dpd) = self.read_vids(&chain);
        // `%dnsondemand` peer key: looked up now, wanted at MI3.
        self.fetch_peer_key(&key, None);
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let template = c.is_template();
        // Flood protection: bounded half-open states, per address and in total; reaching a
        // bound evicts an older state that never got MI2 (limits.rs).
        if !self.admit_half_open(remote, !template) {
            return;
        }
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let life = choice
            .life
            .unwrap_or(28800)
            .min(proposal::MAX_IKE_LIFETIME)
            .min(c.ikelifetime);
        let offered = c.ike_v1();
        let auths = c.auth.clone();
        let rcky = self.responder_cookie(&hdr.initiator_cookie, local, remote);
        let mut payloads = vec![Payload::Sa(v1p::ike_response(&choice))];
        payloads.extend(self.vids((natt != UdpEncapMode::None).then_some(natt), true));
        let msg = Message {
            header: Self::header(hdr.initiator_cookie, rcky, ExchangeType::MainMode, 0),
            body: MessageBody::Payloads(payloads),
        };
        let Ok(bytes) = msg.to_bytes() else {
            return;
        };
        let serial = self.sas.new_serial();
        let auth = choice.auth;
        let mut x = Isakmp::new(StateKind::MainR1);
        x.offered = offered;
        x.auths = auths;
        x.choice = Some(choice);
        x.sai_b = sai_b;
        x.natt = natt;
        let mut sa = IkeSa::new(
            serial,
            NewIkeSa {
                conn: key.clone(),
                spi_i: hdr.initiator_cookie,
                spi_r: rcky,
                initiator: false,
                local,
                remote,
                created: self.now,
                exchange: IkeExchange::V1(Box::new(x)),
            },
        );
        sa.auth = Some(auth);
        sa.life = life;
        sa.nat.negotiated = natt != UdpEncapMode::None;
        sa.nat.floated = local.port() == NAT_T_PORT;
        sa.liveness.peer_supports = peer_dpd;
        sa.rtx.last_recv = data.to_vec();
        sa.template = template;
        self.sas.insert_ike(sa);
        if template {
            self.slog(
                serial,
                format!("responding to Main Mode from unknown peer {}", remote.ip()),
            );
        } else {
            self.slog(serial, "responding to Main Mode".into());
        }
        self.log_transition(serial, "");
        self.send_for(serial, local, remote, bytes);
        self.schedule(serial, HALF_OPEN_TIMEOUT_MS, TimerKind::SoDiscard);
    }

    /// An unencrypted Informational with one notification (for failures before keys exist).
    fn send_unprotected_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        icky: [u8; 8],
        n: NotifyType,
    ) {
        let msg = Message {
            header: Self::header(icky, [0; 8], ExchangeType::Informational, 0),
            body: MessageBody::Payloads(vec![Payload::Notification(NotificationPayload {
                doi: Doi::Ipsec,
                protocol: ProtocolId::Isakmp,
                spi: Vec::new(),
                notify_type: n,
                data: Vec::new(),
            })]),
        };
        if let Ok(b) = msg.to_bytes() {
            self.send_raw(local, remote, b);
        }
    }

    fn plain_chain<'a>(&self, hdr: &Header, data: &'a [u8]) -> Result<Chain<'a>, String> {
        if hdr.flags.encrypted() {
            return Err("unexpected encrypted message; dropped".into());
        }
        let (_, body) = Header::parse_datagram(data).map_err(|e| format!("{e}; dropped"))?;
        parse_chain(hdr.next_payload, body, false).map_err(|e| format!("{e}; message dropped"))
    }

    fn nat_d_payloads(&mut self, serial: SerialNo) -> Vec<Payload> {
        let Ok((s, x)) = v1(self, serial) else {
            return Vec::new();
        };
        if x.natt == UdpEncapMode::None {
            return Vec::new();
        }
        let Some(prf) = x.choice.as_ref().map(|c| c.alg.prf) else {
            return Vec::new();
        };
        let draft = x.natt == UdpEncapMode::Draft;
        let force = self.conns.get(s.conn()).is_some_and(|c| c.forceencaps);
        let (ic, rc_, remote, local) = (s.spi_i(), s.spi_r, s.remote, s.local);
        let theirs = kc::nat_d_hash(prf, &ic, &rc_, remote.ip(), remote.port());
        let ours = if force {
            // Pretend to be behind a NAT so both ends encapsulate (as strongSwan does).
            self.random_bytes(prf.output_len())
        } else {
            kc::nat_d_hash(prf, &ic, &rc_, local.ip(), local.port())
        };
        vec![
            Payload::NatD(NatDPayload {
                hash: theirs,
                draft,
            }),
            Payload::NatD(NatDPayload { hash: ours, draft }),
        ]
    }

    fn read_nat_d(&mut self, serial: SerialNo, chain: &Chain<'_>) {
        let hashes: Vec<Vec<u8>> = chain
            .all(PT::NatD)
            .filter_map(|i| match &i.p {
                Payload::NatD(n) => Some(n.hash.clone()),
                _ => None,
            })
            .collect();
        let force = self
            .sas
            .conn_of(serial)
            .and_then(|k| self.conns.get(k))
            .is_some_and(|c| c.forceencaps);
        let Some(s) = self.sas.ike_mut(serial) else {
            return;
        };
        let Some(x) = s.exchange.v1_mut() else {
            return;
        };
        if x.natt == UdpEncapMode::None {
            return;
        }
        if hashes.is_empty() {
            x.natt = UdpEncapMode::None;
            s.nat.negotiated = false;
            return;
        }
        let Some(prf) = x.choice.as_ref().map(|c| c.alg.prf) else {
            return;
        };
        let (icky, rcky) = (s.spi_i(), s.spi_r);
        let me = kc::nat_d_hash(prf, &icky, &rcky, s.local.ip(), s.local.port());
        let him = kc::nat_d_hash(prf, &icky, &rcky, s.remote.ip(), s.remote.port());
        s.nat.we_behind = force || !hashes.first().is_some_and(|h| ct_eq(h, &me));
        s.nat.peer_behind = !hashes.iter().skip(1).any(|h| ct_eq(h, &him));
        let (we, he) = (s.nat.we_behind, s.nat.peer_behind);
        let mut v = Vec::new();
        if we {
            v.push(if force {
                "forcing encapsulation (forceencaps=yes)"
            } else {
                "NAT-Traversal: we are behind a NAT"
            });
        }
        if he {
            v.push("NAT-Traversal: peer is behind a NAT (or asks for UDP encapsulation)");
        }
        for l in v {
            self.slog(serial, l.into());
        }
    }

    /// Computes g^xy, SKEYID and the phase-1 keys and IV.
    fn compute_p1_keys(&mut self, serial: SerialNo) -> Result<(), String> {
        let (key, auth, psk) = {
            let s = self.sas.ike(serial).ok_or("no state")?;
            (
                s.conn().to_string(),
                s.auth.ok_or("no transform")?,
                s.psk.clone(),
            )
        };
        let psk = match (auth, psk) {
            (AuthKind::Psk, Some(p)) => Some(p),
            (AuthKind::Psk, None) => match self.psk_for(&key, None) {
                Some(p) => Some(p),
                None => {
                    let (a, b) = self
                        .conns
                        .get(&key)
                        .map(|c| (c.this.id.to_string(), c.that.id.to_string()))
                        .unwrap_or_default();
                    return Err(format!(
                        "Can't authenticate: no preshared key found for `{a}' and `{b}'"
                    ));
                }
            },
            _ => None,
        };
        let s = self.sas.ike_mut(serial).ok_or("no state")?;
        s.psk = psk.clone();
        let (icky, rcky, initiator) = (s.spi_i(), s.spi_r, s.initiator);
        let p1 = s.exchange.v1_mut().ok_or("no state")?;
        let ch = p1.choice.as_ref().ok_or("no transform")?;
        let (prf, enc) = (ch.alg.prf, ch.alg.enc);
        let peer_pub = if initiator { &p1.gxr } else { &p1.gxi };
        let dh = p1.dh.as_ref().ok_or("no DH")?;
        let gxy = dh
            .compute_shared(peer_pub)
            .map_err(|e| format!("bad KE from peer: {e}"))?;
        let gxy = Zeroizing::new(gxy.as_bytes().to_vec());
        let skeyid = match &psk {
            Some(p) => kc::skeyid_psk(prf, p, &p1.ni, &p1.nr),
            None => kc::skeyid_sig(prf, &p1.ni, &p1.nr, &gxy),
        };
        let keys = kc::derive_phase1_keys(prf, &skeyid, &gxy, &icky, &rcky, enc.key_len());
        let cipher = CbcCipher::new(self.provider, enc, &keys.enc_key)
            .map_err(|e| format!("cannot key {}: {e}", proposal::ike_enc_name(enc)))?;
        p1.iv = kc::phase1_iv(prf, &p1.gxi, &p1.gxr, cipher.block_size());
        p1.keys = Some(keys);
        p1.cipher = Some(cipher);
        p1.gxy = Some(gxy);
        p1.dh = None;
        if self.cfg.debug.private {
            let hex: String = skeyid.iter().map(|b| format!("{b:02x}")).collect();
            self.slog(serial, format!("| SKEYID: {hex}"));
        }
        Ok(())
    }

    /// MR1 arrived: check the choice, send KE, Ni, NAT-D.
    fn main_i1(&mut self, serial: SerialNo, hdr: &Header, data: &[u8]) -> Result<(), String> {
        let chain = self.plain_chain(hdr, data)?;
        chain.check(&[(PT::Sa, 1, 1), (PT::VendorId, 0, 32)])?;
        let Some(Payload::Sa(sa)) = chain.get(PT::Sa).map(|i| &i.p) else {
            return Err("missing SA".into());
        };
        let (natt, dpd) = self.read_vids(&chain);
        let (_, p1) = v1(self, serial)?;
        let choice = v1p::check_ike_response(sa, &p1.offered, &p1.auths)?;
        let group = choice.alg.group;
        let dh = DhKeyPair::generate(group, &mut self.rng());
        let ni = self.random_bytes(NONCE_LEN);
        let s = self.sas.ike_mut(serial).ok_or("gone")?;
        s.spi_r = hdr.responder_cookie;
        s.nat.negotiated = natt != UdpEncapMode::None;
        s.liveness.peer_supports = dpd;
        s.auth = Some(choice.auth);
        let (icky, rcky, local, remote) = (s.spi_i(), s.spi_r, s.local, s.remote);
        let p1 = s.exchange.v1_mut().ok_or("gone")?;
        p1.natt = natt;
        p1.gxi = dh.public_value().to_vec();
        p1.ni = ni.clone();
        let gxi = p1.gxi.clone();
        p1.dh = Some(dh);
        p1.choice = Some(choice);
        let mut payloads = vec![Payload::KeyExchange(gxi), Payload::Nonce(ni)];
        payloads.extend(self.nat_d_payloads(serial));
        let msg = Message {
            header: Self::header(icky, rcky, ExchangeType::MainMode, 0),
            body: MessageBody::Payloads(payloads),
        };
        let bytes = msg.to_bytes().map_err(|e| e.to_string())?;
        self.advance(serial, StateKind::MainI2);
        self.send_for(serial, local, remote, bytes);
        self.schedule(serial, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
        Ok(())
    }

    fn take_ke_nonce(chain: &Chain<'_>, group: DhGroup) -> Result<(Vec<u8>, Vec<u8>), String> {
        let ke = match chain.get(PT::KeyExchange).map(|i| &i.p) {
            Some(Payload::KeyExchange(k)) => k.clone(),
            _ => return Err("missing KE".into()),
        };
        crate::pluto::crypto::dh::validate_public_value(group, &ke)
            .map_err(|e| format!("KE payload rejected: {e}"))?;
        let nonce = match chain.get(PT::Nonce) {
            Some(it) => it.raw.body().to_vec(),
            None => return Err("missing Nonce".into()),
        };
        if !(8..=256).contains(&nonce.len()) {
            return Err(format!("Nonce of {} bytes rejected", nonce.len()));
        }
        Ok((ke, nonce))
    }

    /// The DH group of an ISAKMP SA's chosen transform.
    fn p1_group(&self, serial: SerialNo) -> Result<DhGroup, String> {
        let (_, x) = v1(self, serial)?;
        x.choice
            .as_ref()
            .map(|c| c.alg.group)
            .ok_or_else(|| "gone".into())
    }

    /// MI2 arrived: send KE, Nr, NAT-D; compute keys.
    fn main_r1(&mut self, serial: SerialNo, hdr: &Header, data: &[u8]) -> Result<(), String> {
        let chain = self.plain_chain(hdr, data)?;
        chain.check(&[
            (PT::KeyExchange, 1, 1),
            (PT::Nonce, 1, 1),
            (PT::NatD, 0, 8),
            (PT::VendorId, 0, 32),
        ])?;
        let group = self.p1_group(serial)?;
        let (gxi, ni) = Self::take_ke_nonce(&chain, group)?;
        let dh = DhKeyPair::generate(group, &mut self.rng());
        let nr = self.random_bytes(NONCE_LEN);
        {
            let p1 = self
                .sas
                .ike_mut(serial)
                .and_then(|s| s.exchange.v1_mut())
                .ok_or("gone")?;
            p1.gxi = gxi;
            p1.ni = ni;
            p1.gxr = dh.public_value().to_vec();
            p1.nr = nr;
            p1.dh = Some(dh);
        }
        self.read_nat_d(serial, &chain);
        self.compute_p1_keys(serial)?;
        let (s, p1) = v1(self, serial)?;
        let (icky, rcky, local, remote) = (s.spi_i(), s.spi_r, s.local, s.remote);
        let mut payloads = vec![
            Payload::KeyExchange(p1.gxr.clone()),
            Payload::Nonce(p1.nr.clone()),
        ];
        payloads.extend(self.nat_d_payloads(serial));
        let msg = Message {
            header: Self::header(icky, rcky, ExchangeType::MainMode, 0),
            body: MessageBody::Payloads(payloads),
        };
        let bytes = msg.to_bytes().map_err(|e| e.to_string())?;
        self.advance(serial, StateKind::MainR2);
        self.send_for(serial, local, remote, bytes);
        self.schedule(serial, HALF_OPEN_TIMEOUT_MS, TimerKind::SoDiscard);
        Ok(())
    }

    /// Our ID payload and the auth payload (HASH or SIG) for MI3/MR3.
    fn auth_payloads(&mut self, serial: SerialNo) -> Result<Vec<Payload>, String> {
        let (s, p1) = v1(self, serial)?;
        let key = s.conn().to_string();
        let c = self.conns.get(&key).ok_or("connection gone")?;
        let ident = id_to_identification(&c.this.id).ok_or("our ID is %any")?;
        let idp = IdPayload::new(&ident, 0, 0);
        let id_b = Payload::Id(idp.clone())
            .body_bytes()
            .map_err(|e| e.to_string())?;
        let ch = p1.choice.as_ref().ok_or("no transform")?;
        let keys = p1.keys.as_ref().ok_or("no keys")?;
        let (icky, rcky) = (s.spi_i(), s.spi_r);
        let hash = if s.initiator { kc::hash_i } else { kc::hash_r };
        let h = hash(
            ch.alg.prf,
            &keys.skeyid,
            &p1.gxi,
            &p1.gxr,
            &icky,
            &rcky,
            &p1.sai_b,
            &id_b,
        );
        let second = match ch.auth {
            AuthKind::Psk => Payload::Hash(h),
            AuthKind::Rsa => {
                let k = self
                    .rsa_key_for(&key)
                    .ok_or("unable to locate my private key for RSA Signature")?;
                let sig = k.sign(&mut self.rng(), &h).map_err(|e| e.to_string())?;
                Payload::Signature(sig)
            }
        };
        Ok(vec![Payload::Id(idp), second])
    }

    fn send_encrypted_p1(
        &mut self,
        serial: SerialNo,
        payloads: Vec<Payload>,
    ) -> Result<(), String> {
        let (s, p1) = v1(self, serial)?;
        let cipher = p1.cipher.as_ref().ok_or("no keys")?;
        let hdr = Self::header(s.spi_i(), s.spi_r, ExchangeType::MainMode, 0);
        let (bytes, iv) =
            kc::encrypt_message(&hdr, &payloads, cipher, &p1.iv).map_err(|e| e.to_string())?;
        let (local, remote) = (s.local, s.remote);
        if let Some(p1) = self.sas.ike_mut(serial).and_then(|s| s.exchange.v1_mut()) {
            p1.iv = iv;
        }
        self.send_for(serial, local, remote, bytes);
        Ok(())
    }

    /// MR2 arrived: compute keys, float to 4500 if needed, send MI3.
    fn main_i2(&mut self, serial: SerialNo, hdr: &Header, data: &[u8]) -> Result<(), String> {
        let chain = self.plain_chain(hdr, data)?;
        chain.check(&[
            (PT::KeyExchange, 1, 1),
            (PT::Nonce, 1, 1),
            (PT::NatD, 0, 8),
            (PT::VendorId, 0, 32),
        ])?;
        let group = self.p1_group(serial)?;
        let (gxr, nr) = Self::take_ke_nonce(&chain, group)?;
        {
            let p1 = self
                .sas
                .ike_mut(serial)
                .and_then(|s| s.exchange.v1_mut())
                .ok_or("gone")?;
            p1.gxr = gxr;
            p1.nr = nr;
        }
        self.read_nat_d(serial, &chain);
        self.compute_p1_keys(serial)?;
        if let Some(s) = self.sas.ike_mut(serial) {
            if s.nat.encapsulate() {
                s.local.set_port(NAT_T_PORT);
                s.remote.set_port(NAT_T_PORT);
                s.nat.floated = true;
            }
        }
        let mut payloads = self.auth_payloads(serial)?;
        let s = self.sas.ike(serial).ok_or("gone")?;
        let spi = [s.spi_i(), s.spi_r].concat();
        // INITIAL_CONTACT (RFC 2407 4.6.3.3) tells the peer it may delete every other SA it
        // has with us: only when we have none. strongSwan does so at once, silently, so sent
        // on an ISAKMP SA replacement it killed the CHILD_SAs our IPsec SAs still pointed at.
        if !self.has_other_sas_with(serial, s.remote.ip()) {
            payloads.push(Payload::Notification(NotificationPayload {
                doi: Doi::Ipsec,
                protocol: ProtocolId::Isakmp,
                spi,
                notify_type: NotifyType::InitialContact,
                data: Vec::new(),
            }));
        }
        self.send_encrypted_p1(serial, payloads)?;
        self.advance(serial, StateKind::MainI3);
        self.schedule(serial, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
        Ok(())
    }

    /// Another established ISAKMP or IPsec SA than `serial` exists with the peer at `peer`.
    fn has_other_sas_with(&self, serial: SerialNo, peer: std::net::IpAddr) -> bool {
        let ike = self
            .sas
            .ikes()
            .any(|s| s.serial() != serial && s.established && s.remote.ip() == peer);
        ike || self.sas.children().any(|c| {
            if c.serial() == serial || !c.established {
                return false;
            }
            let parent_peer = self.sas.ike(c.parent()).map(|x| x.remote.ip());
            parent_peer == Some(peer)
                || self.conns.get(c.conn()).and_then(|c| c.that.host) == Some(peer)
        })
    }

    /// Decrypts a phase-1 message (MI3/MR3); returns plaintext and the next IV.
    fn decrypt_p1(&self, serial: SerialNo, data: &[u8]) -> Result<kc::DecryptedMessage, String> {
        let (_, p1) = v1(self, serial)?;
        let ch = p1.choice.as_ref().ok_or("no transform")?;
        let cipher = p1.cipher.as_ref().ok_or("no keys")?;
        kc::decrypt_message(data, cipher, &p1.iv).map_err(|e| {
            if ch.auth == AuthKind::Psk {
                format!("probable authentication failure (mismatch of preshared secrets?): {e}; message dropped")
            } else {
                format!("{e}; message dropped")
            }
        })
    }

    /// Verifies the peer's ID + HASH/SIG of MI3/MR3 against connection `key`.
    fn verify_peer_auth(
        &self,
        serial: SerialNo,
        key: &str,
        chain: &Chain<'_>,
    ) -> Result<(), AuthFailure> {
        let (s, p1) = v1(self, serial)?;
        let ch = p1.choice.as_ref().ok_or("no transform")?;
        let keys = p1.keys.as_ref().ok_or("no keys")?;
        let id_b = chain
            .get(PT::Id)
            .map(|i| i.raw.body())
            .ok_or("missing ID")?;
        let fail = |notify: NotifyType, why: String| AuthFailure {
            notify: Some(notify),
            why,
        };
        let (icky, rcky) = (s.spi_i(), s.spi_r);
        // The peer's hash: HASH_R when we initiated, HASH_I when it did.
        let hash = if s.initiator { kc::hash_r } else { kc::hash_i };
        let h = hash(
            ch.alg.prf,
            &keys.skeyid,
            &p1.gxi,
            &p1.gxr,
            &icky,
            &rcky,
            &p1.sai_b,
            id_b,
        );
        match ch.auth {
            AuthKind::Psk => {
                let Some(Payload::Hash(got)) = chain.get(PT::Hash).map(|i| &i.p) else {
                    return Err("missing HASH payload".into());
                };
                if !ct_eq(got, &h) {
                    return Err(fail(
                        NotifyType::AuthenticationFailed,
                        "received Hash Payload does not match computed value".into(),
                    ));
                }
            }
            AuthKind::Rsa => {
                let Some(Payload::Signature(sig)) = chain.get(PT::Signature).map(|i| &i.p) else {
                    return Err("missing SIG payload".into());
                };
                let c = self.conns.get(key).ok_or("connection gone")?;
                let Some(pk) = c.that.rsakey.as_ref() else {
                    let why = format!("no RSA public key known for '{}'", c.that.id);
                    // Still coming from DNS: the MI3 is checked again when it arrives.
                    if self.peer_key_lookup_pending(key) {
                        return Err(why.into());
                    }
                    return Err(fail(NotifyType::AuthenticationFailed, why));
                };
                let pk: &PublicKey = pk;
                if pk.verify(&h, sig).is_err() {
                    let peer = match chain.get(PT::Id).map(|i| &i.p) {
                        Some(Payload::Id(id)) => id
                            .identification()
                            .map(|i| identification_text(&i))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    return Err(fail(
                        NotifyType::InvalidSignature,
                        format!(
                            "Signature check (on {peer}) failed (wrong key?); tried *{}",
                            pk.key_id()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn peer_id_of(chain: &Chain<'_>) -> Result<(Id, String), String> {
        match chain.get(PT::Id).map(|i| &i.p) {
            Some(Payload::Id(idp)) => {
                let ident = idp.identification().ok_or("malformed ID payload")?;
                let text = identification_text(&ident);
                let id = identification_to_id(&ident)
                    .ok_or_else(|| format!("unsupported peer ID type {}", idp.id_type))?;
                // No FQDN or user@FQDN holds one; it would reach logs, --status and updown.
                if crate::sanitize::has_unsafe_chars(&id.to_string()) {
                    return Err(format!(
                        "peer ID '{text}' contains control characters; refused"
                    ));
                }
                Ok((id, text))
            }
            _ => Err("missing ID payload".into()),
        }
    }

    /// Responder: the conn that fits the peer's ID (possibly switching), spec 7.
    fn refine_conn(
        &mut self,
        serial: SerialNo,
        peer_id: &Id,
        text: &str,
    ) -> Result<String, String> {
        let s = self.sas.ike(serial).ok_or("gone")?;
        let key = s.conn().to_string();
        let psk = s.psk.clone();
        let auth = s.auth.ok_or("no transform")?;
        let (me, peer) = (s.local.ip(), s.remote.ip());
        let fits = |c: &crate::pluto::connection::Connection| {
            c.that.id == Id::Any || c.that.id == *peer_id
        };
        if self.conns.get(&key).is_some_and(fits) {
            return Ok(key);
        }
        let candidates: Vec<String> = self
            .conns
            .values()
            .filter(|c| {
                c.negotiates()
                    && c.ike_policy.accepts(IkeVersion::V1)
                    && c.instance == 0
                    && c.this.host == Some(me)
                    && (c.that.host == Some(peer) || c.is_template())
                    && c.auth.contains(&auth)
                    && fits(c)
            })
            .map(|c| c.key())
            .collect();
        for cand in candidates {
            let ok = match auth {
                AuthKind::Psk => match (self.psk_for(&cand, Some(peer_id)), &psk) {
                    (Some(a), Some(b)) => ct_eq(&a, b),
                    _ => false,
                },
                AuthKind::Rsa => self
                    .conns
                    .get(&cand)
                    .is_some_and(|c| c.that.rsakey.is_some()),
            };
            if ok {
                let from = self.conn_quoted(&key);
                let to = self.conn_quoted(&cand);
                let tmpl = self.conns.get(&cand).is_some_and(|c| c.is_template());
                self.sas.set_conn(serial, &cand);
                if let Some(s) = self.sas.ike_mut(serial) {
                    s.template = tmpl;
                }
                self.slog(serial, format!("switched from {from} to {to}"));
                return Ok(cand);
            }
        }
        Err(format!("no suitable connection for peer '{text}'"))
    }

    /// MI3 arrived: authenticate, maybe switch conn, answer MR3; ISAKMP SA established.
    fn main_r2(
        &mut self,
        serial: SerialNo,
        local: SocketAddr,
        remote: SocketAddr,
        _hdr: &Header,
        data: &[u8],
    ) -> Result<(), String> {
        let dm = self.decrypt_p1(serial, data)?;
        let chain = parse_chain(dm.header.next_payload, &dm.plaintext, true).map_err(|e| {
            format!("probable authentication failure (mismatch of preshared secrets?): {e}; message dropped")
        })?;
        chain.check(&[
            (PT::Id, 1, 1),
            (PT::Hash, 0, 1),
            (PT::Signature, 0, 1),
            (PT::Cert, 0, 4),
            (PT::CertReq, 0, 4),
            (PT::Notification, 0, 8),
            (PT::VendorId, 0, 16),
        ])?;
        let (peer_id, text) = Self::peer_id_of(&chain)?;
        let key = self.refine_conn(serial, &peer_id, &text)?;
        if let Err(f) = self.verify_peer_auth(serial, &key, &chain) {
            let Some(n) = f.notify else {
                if self.peer_key_lookup_pending(&key) {
                    self.defer_until_peer_key(&key, local, remote, data);
                    return Err(format!("{}; checked again when DNS answers", f.why));
                }
                return Err(f.why);
            };
            // Tell the initiator, so it gives up now rather than retransmitting MI3, and drop
            // the state (an opportunistic instance made for it goes too, so our own traffic
            // to that peer is not left waiting for it).
            self.slog(serial, format!("{}; sending notification {n}", f.why));
            self.send_auth_failure(serial, n, &dm.next_iv);
            self.delete_sa(serial, false);
            self.instance_gc(&key);
            return Ok(());
        }
        // Authenticated: what follows is not rate-limited.
        self.unauth = None;
        // As FreeS/WAN: notifications in MI3 (INITIAL_CONTACT) are logged, not acted on.
        for item in &chain.items {
            if let Payload::Notification(n) = &item.p {
                self.slog(
                    serial,
                    format!("ignoring informational payload, type {}", n.notify_type),
                );
            }
        }
        // Authenticated: adopt the IV, the (possibly floated) endpoint, instantiate.
        let Some(key) = self.instance_for_peer(serial, key, remote.ip(), &peer_id) else {
            return Err("connection gone".into());
        };
        if let Some(s) = self.sas.ike_mut(serial) {
            s.peer_id = Some(peer_id.clone());
            if s.nat.negotiated && (local != s.local || remote != s.remote) {
                s.local = local;
                s.remote = remote;
                s.nat.floated = local.port() == NAT_T_PORT;
            }
            if let Some(p1) = s.exchange.v1_mut() {
                p1.iv = dm.next_iv.clone();
            }
        }
        let payloads = self.auth_payloads(serial)?;
        self.send_encrypted_p1(serial, payloads)?;
        if let Some(s) = self.sas.ike_mut(serial) {
            s.rtx.last_recv = data.to_vec();
        }
        self.advance(serial, StateKind::MainR3);
        self.ike_established(serial, &key, &peer_id);
        self.bound_isakmp_sas_per_peer(serial);
        Ok(())
    }

    /// MR3 arrived: authenticate; ISAKMP SA established; start the pending Quick Mode.
    fn main_i3(
        &mut self,
        serial: SerialNo,
        remote: SocketAddr,
        _hdr: &Header,
        data: &[u8],
    ) -> Result<(), String> {
        let dm = self.decrypt_p1(serial, data)?;
        let chain = parse_chain(dm.header.next_payload, &dm.plaintext, true).map_err(|e| {
            format!("probable authentication failure (mismatch of preshared secrets?): {e}; message dropped")
        })?;
        chain.check(&[
            (PT::Id, 1, 1),
            (PT::Hash, 0, 1),
            (PT::Signature, 0, 1),
            (PT::Cert, 0, 4),
            (PT::CertReq, 0, 4),
            (PT::Notification, 0, 8),
            (PT::VendorId, 0, 16),
        ])?;
        let (peer_id, text) = Self::peer_id_of(&chain)?;
        let key = self.sas.conn_of(serial).map(str::to_string).ok_or("gone")?;
        let want = self
            .conns
            .get(&key)
            .map(|c| c.that.id.clone())
            .ok_or("connection gone")?;
        if want != Id::Any && want != peer_id {
            return Err(format!(
                "we require peer to have ID '{want}', but peer declares '{text}'"
            ));
        }
        if let Err(f) = self.verify_peer_auth(serial, &key, &chain) {
            let Some(n) = f.notify else {
                return Err(f.why);
            };
            // MR3 is the responder's last word: retransmitting MI3 would only bring it again.
            // Tell the responder (its ISAKMP SA is of no use) and give up this attempt now.
            self.slog(serial, format!("{}; sending notification {n}", f.why));
            self.send_auth_failure(serial, n, &dm.next_iv);
            self.attempt_refused(serial);
            return Ok(());
        }
        self.unauth = None;
        if let Some(s) = self.sas.ike_mut(serial) {
            s.peer_id = Some(peer_id.clone());
            if s.nat.negotiated && remote.port() != s.remote.port() {
                s.remote = remote;
            }
            if let Some(p1) = s.exchange.v1_mut() {
                p1.iv = dm.next_iv.clone();
            }
        }
        self.advance(serial, StateKind::MainI4);
        self.ike_established(serial, &key, &peer_id);
        self.start_waiting_main_mode(remote.ip());
        let pending = self
            .sas
            .ike_mut(serial)
            .and_then(|s| s.pending_child.take());
        match pending {
            Some(pq) => {
                let whack = self
                    .sas
                    .ike_mut(serial)
                    .and_then(|s| s.whack.take())
                    .or(pq.whack);
                self.quick_initiate(serial, &key, whack, pq.replacing, 1);
            }
            None => self.release_whack(serial, 0),
        }
        Ok(())
    }
}
