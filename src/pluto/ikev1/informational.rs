//! Informational exchanges (RFC 2409 5.7): protected Notify and Delete, DPD R_U_THERE /
//! R_U_THERE_ACK (RFC 3706), and NAT keepalives (RFC 3948). Only authenticated Deletes are
//! honoured, and only for SAs of the same peer (`peer_policy`: negotiated over the ISAKMP SA
//! the Delete came on, or with the same authenticated identity; never by address alone).

use crate::pluto::ids::SerialNo;
use std::net::SocketAddrV4;

use crate::pluto::engine::Pluto;
use crate::pluto::ikev1::crypto as kc;
use crate::pluto::ikev1::msg::{ct_eq, parse_chain};
use crate::pluto::ikev1::quick_mode::P1Ctx;
use crate::pluto::ikev1::state::State;
use crate::pluto::isakmp::natt::NAT_KEEPALIVE;
use crate::pluto::isakmp::{
    emit_payloads, parse_payloads, DeletePayload, Doi, ExchangeType, Flags, Header,
    NotificationPayload, NotifyType, Payload, PayloadType as PT, ProtocolId,
};
use crate::pluto::output::Output;
use crate::pluto::peer_policy::{spi_list, MAX_DELETE_SPIS};

impl Pluto {
    fn info_header(ctx: &P1Ctx, msgid: u32) -> Header {
        Header {
            initiator_cookie: ctx.icky,
            responder_cookie: ctx.rcky,
            next_payload: PT::None,
            exchange_type: ExchangeType::Informational,
            flags: Flags::ENCRYPTION,
            message_id: msgid,
        }
    }

    /// Sends a protected Informational with `payloads` over ISAKMP SA `p1`.
    pub(crate) fn send_info(&mut self, p1: SerialNo, payloads: Vec<Payload>) {
        let Some(ctx) = self.p1_ctx(p1) else {
            return;
        };
        let msgid = self.fresh_msgid(p1);
        let Ok(after) = emit_payloads(&payloads) else {
            return;
        };
        let h = kc::informational_hash(ctx.prf, &ctx.skeyid_a, msgid, &after);
        let mut all = vec![Payload::Hash(h)];
        all.extend(payloads);
        let iv = kc::phase2_iv(ctx.prf, &ctx.iv, msgid, ctx.cipher.block_size());
        if let Ok((bytes, _)) = kc::encrypt_message(
            &Self::info_header(&ctx, msgid),
            &all,
            ctx.cipher,
            &ctx.enc_key,
            &iv,
        ) {
            self.send_raw(ctx.local, ctx.remote, bytes);
        }
    }

    /// Sends a protected notification.
    pub(crate) fn send_notify(
        &mut self,
        p1: SerialNo,
        n: NotifyType,
        protocol: ProtocolId,
        spi: Vec<u8>,
        data: Vec<u8>,
    ) {
        self.send_info(
            p1,
            vec![Payload::Notification(NotificationPayload {
                doi: Doi::Ipsec,
                protocol,
                spi,
                notify_type: n,
                data,
            })],
        );
    }

    /// Sends the Delete for a state: our inbound ESP/AH SPIs, or the ISAKMP cookies.
    pub(crate) fn send_delete_for(&mut self, serial: SerialNo) {
        let Some(st) = self.states.get(&serial) else {
            return;
        };
        let key = st.conn.clone();
        match (st.p1(), st.p2()) {
            (Some(p1), _) => {
                if !st.kind.isakmp_established() {
                    return;
                }
                let spi = [p1.icookie, p1.rcookie].concat();
                self.slog(serial, "sending Delete of ISAKMP SA".into());
                self.send_info(
                    serial,
                    vec![Payload::Delete(DeletePayload {
                        doi: Doi::Ipsec,
                        protocol: ProtocolId::Isakmp,
                        spi_size: 16,
                        spis: vec![spi],
                    })],
                );
            }
            (None, Some(p2)) => {
                let parent = if self
                    .states
                    .get(&p2.parent)
                    .is_some_and(|s| s.kind.isakmp_established())
                {
                    Some(p2.parent)
                } else {
                    self.states
                        .values()
                        .filter(|s| s.conn == key && s.kind.isakmp_established())
                        .map(|s| s.serial)
                        .max()
                };
                let Some(parent) = parent else {
                    return;
                };
                let mut dels = Vec::new();
                if let Some(spi) = p2.our.esp {
                    dels.push(Payload::Delete(DeletePayload {
                        doi: Doi::Ipsec,
                        protocol: ProtocolId::Esp,
                        spi_size: 4,
                        spis: vec![spi.to_be_bytes().to_vec()],
                    }));
                }
                if let Some(spi) = p2.our.ah {
                    dels.push(Payload::Delete(DeletePayload {
                        doi: Doi::Ipsec,
                        protocol: ProtocolId::Ah,
                        spi_size: 4,
                        spis: vec![spi.to_be_bytes().to_vec()],
                    }));
                }
                if !dels.is_empty() {
                    self.slog(serial, "sending Delete of IPsec SA".into());
                    for d in dels {
                        self.send_info(parent, vec![d]);
                    }
                }
            }
            _ => {}
        }
    }

    /// Dispatches an Informational message.
    pub(crate) fn v1_info(
        &mut self,
        _local: SocketAddrV4,
        remote: SocketAddrV4,
        hdr: &Header,
        data: &[u8],
    ) {
        if !hdr.flags.encrypted() {
            let what = Header::parse_datagram(data)
                .ok()
                .and_then(|(_, body)| parse_payloads(hdr.next_payload, body).ok())
                .map(|ps| {
                    ps.iter()
                        .map(|p| match p {
                            Payload::Notification(n) => format!("type {}", n.notify_type),
                            Payload::Delete(_) => "Delete".to_string(),
                            p => format!("{}", p.payload_type()),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| "malformed".into());
            self.log(format!(
                "packet from {remote}: ignoring unprotected informational payload, {what}"
            ));
            return;
        }
        let Some(p1) = self.find_p1(&hdr.initiator_cookie, &hdr.responder_cookie) else {
            self.log(format!(
                "packet from {remote}: Informational for unknown ISAKMP SA; dropped"
            ));
            return;
        };
        let Some(ctx) = self.p1_ctx(p1) else {
            self.slog(p1, "Informational before keys exist; dropped".into());
            return;
        };
        if !self
            .states
            .get(&p1)
            .is_some_and(|s| s.kind.isakmp_established())
        {
            self.slog(
                p1,
                "Informational before ISAKMP SA established; dropped".into(),
            );
            return;
        }
        let msgid = hdr.message_id;
        let iv = kc::phase2_iv(ctx.prf, &ctx.iv, msgid, ctx.cipher.block_size());
        let dm = match kc::decrypt_message(data, ctx.cipher, &ctx.enc_key, &iv) {
            Ok(d) => d,
            Err(e) => {
                self.slog(p1, format!("Informational: {e}; dropped"));
                return;
            }
        };
        let chain = match parse_chain(dm.header.next_payload, &dm.plaintext, true) {
            Ok(c) => c,
            Err(e) => {
                self.slog(p1, format!("Informational: {e}; dropped"));
                return;
            }
        };
        let Some(first) = chain.items.first() else {
            return;
        };
        let Payload::Hash(h) = &first.p else {
            self.slog(p1, "Informational without HASH; dropped".into());
            return;
        };
        let after = dm
            .plaintext
            .get(first.raw.bytes.len()..chain.end)
            .unwrap_or(&[]);
        if !ct_eq(
            h,
            &kc::informational_hash(ctx.prf, &ctx.skeyid_a, msgid, after),
        ) {
            self.slog(
                p1,
                "received HASH(1) of Informational does not match; dropped".into(),
            );
            return;
        }
        if let Err(e) = chain.check(&[
            (PT::Hash, 1, 1),
            (PT::Notification, 0, 8),
            (PT::Delete, 0, 8),
        ]) {
            self.slog(p1, e);
            return;
        }
        let is_retransmit = self
            .states
            .get(&p1)
            .and_then(|s| s.p1())
            .is_some_and(|p| p.msgids.contains(&msgid));
        if is_retransmit {
            return;
        }
        self.note_msgid(p1, msgid);
        self.heard_from(p1);
        let payloads: Vec<Payload> = chain.items.iter().skip(1).map(|i| i.p.clone()).collect();
        for p in payloads {
            match p {
                Payload::Notification(n) => self.info_notify(p1, n),
                Payload::Delete(d) => self.info_delete(p1, d),
                _ => {}
            }
        }
    }

    fn info_notify(&mut self, p1: SerialNo, n: NotificationPayload) {
        let cookies_ok = {
            let Some(p) = self.states.get(&p1).and_then(|s| s.p1()) else {
                return;
            };
            n.spi.is_empty() || n.spi == [p.icookie, p.rcookie].concat()
        };
        match n.notify_type {
            NotifyType::RUThere => {
                if !cookies_ok || n.data.len() != 4 {
                    self.slog(
                        p1,
                        "DPD: R_U_THERE with bad cookies or sequence; ignored".into(),
                    );
                    return;
                }
                let spi = n.spi.clone();
                let seq = n.data.clone();
                if let Some(p) = self.states.get_mut(&p1).and_then(|s| s.p1_mut()) {
                    p.dpd.peer_seq = Some(u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]));
                }
                self.send_notify(p1, NotifyType::RUThereAck, ProtocolId::Isakmp, spi, seq);
            }
            NotifyType::RUThereAck => {
                if !cookies_ok || n.data.len() != 4 {
                    return;
                }
                let seq = u32::from_be_bytes([n.data[0], n.data[1], n.data[2], n.data[3]]);
                let ours = self.states.get(&p1).and_then(|s| s.p1()).map(|p| p.dpd.seq);
                if ours != Some(seq) {
                    self.slog(
                        p1,
                        format!("DPD: R_U_THERE_ACK for unexpected sequence {seq}"),
                    );
                }
            }
            t => self.slog(
                p1,
                format!("received and ignored informational message type {t}"),
            ),
        }
    }

    /// A Delete payload: each named SA is deleted if this ISAKMP SA may delete it
    /// ([`Pluto::may_delete`]: negotiated over it, or the same authenticated peer), never
    /// because of the sender's address. At most [`MAX_DELETE_SPIS`] SPIs are acted on; SPIs
    /// refused or not found are logged in one line each per payload, whatever their number.
    fn info_delete(&mut self, p1: SerialNo, d: DeletePayload) {
        let (width, what) = match d.protocol {
            ProtocolId::Isakmp => (16, "ISAKMP"),
            ProtocolId::Esp => (4, "ESP"),
            ProtocolId::Ah => (4, "AH"),
            other => {
                self.slog(
                    p1,
                    format!("ignoring Delete SA payload for protocol {other}"),
                );
                return;
            }
        };
        let (mut refused, mut missing) = (Vec::new(), Vec::new());
        let total = d.spis.len();
        for spi in d.spis.into_iter().take(MAX_DELETE_SPIS) {
            if spi.len() != width {
                continue;
            }
            let text = format!("0x{}", crate::config::encode_hex(&spi));
            // Every state the SPI names; those negotiated over this ISAKMP SA first.
            let mut named: Vec<(bool, SerialNo)> = self
                .states
                .values()
                .filter_map(|s| named_by(s, d.protocol, &spi).map(|via| (via != p1, s.serial)))
                .collect();
            named.sort();
            let target = named.iter().map(|n| n.1).find(|&t| self.may_delete(p1, t));
            match target {
                Some(t) => {
                    let key = self
                        .states
                        .get(&t)
                        .map(|s| s.conn.clone())
                        .unwrap_or_default();
                    let kind = if width == 16 { "ISAKMP" } else { "IPSEC" };
                    self.slog(
                        t,
                        format!("received Delete SA payload: deleting {kind} State"),
                    );
                    self.delete_state(t, false);
                    self.instance_gc(&key);
                }
                None if named.is_empty() => missing.push(text),
                None => refused.push(text),
            }
        }
        if !missing.is_empty() {
            self.slog(
                p1,
                format!(
                    "ignoring Delete SA payload: {what} SA({}) not found",
                    spi_list(&missing)
                ),
            );
        }
        if !refused.is_empty() {
            self.slog(
                p1,
                format!(
                    "ignoring Delete SA payload: {what} SA({}) not negotiated with this peer",
                    spi_list(&refused)
                ),
            );
        }
        if total > MAX_DELETE_SPIS {
            self.slog(
                p1,
                format!(
                    "ignoring Delete SA payload: {} further SPIs beyond the first {MAX_DELETE_SPIS}",
                    total - MAX_DELETE_SPIS
                ),
            );
        }
    }

    /// DPD timer (RFC 3706, as Openswan): probe only when nothing came from the peer (IKE
    /// message or inbound IPsec traffic, see [`Pluto::handle_sa_usage`]) for dpddelay; declare
    /// it dead after dpdtimeout without a sign of life.
    pub(crate) fn dpd_event(&mut self, serial: SerialNo) {
        let now = self.now;
        let key = match self.states.get(&serial) {
            Some(s) => s.conn.clone(),
            None => return,
        };
        let Some(dpd) = self.conns.get(&key).and_then(|c| c.dpd) else {
            if let Some(p) = self.states.get_mut(&serial).and_then(|s| s.p1_mut()) {
                p.dpd.next = None;
            }
            return;
        };
        let (last, icky, rcky) = match self.states.get(&serial).and_then(|s| s.p1()) {
            Some(p) => (p.dpd.last_heard, p.icookie, p.rcookie),
            None => return,
        };
        // Only the newest ISAKMP SA of the conn probes.
        let newest = self.conns.get(&key).and_then(|c| c.newest_isakmp);
        if newest != Some(serial) {
            if let Some(p) = self.states.get_mut(&serial).and_then(|s| s.p1_mut()) {
                p.dpd.next = None;
            }
            return;
        }
        let (delay, timeout) = (dpd.delay * 1000, dpd.timeout * 1000);
        let dead_at = last.saturating_add(timeout);
        if now >= dead_at {
            if let Some(p) = self.states.get_mut(&serial).and_then(|s| s.p1_mut()) {
                p.dpd.next = None;
            }
            self.dpd_dead(serial);
            return;
        }
        let quiet = now.saturating_sub(last) >= delay;
        let seq = match self.states.get_mut(&serial).and_then(|s| s.p1_mut()) {
            Some(p) => {
                // Next look: dpddelay after this probe (or after the last sign of life), and
                // no later than the moment the peer would be declared dead.
                let next = if quiet {
                    now.saturating_add(delay)
                } else {
                    last.saturating_add(delay)
                };
                p.dpd.next = Some(next.min(dead_at).max(now + 1));
                if !quiet {
                    return;
                }
                p.dpd.seq = p.dpd.seq.wrapping_add(1).max(1);
                p.dpd.seq
            }
            None => return,
        };
        self.send_notify(
            serial,
            NotifyType::RUThere,
            ProtocolId::Isakmp,
            [icky, rcky].concat(),
            seq.to_be_bytes().to_vec(),
        );
    }

    /// NAT keepalive timer.
    pub(crate) fn send_keepalive(&mut self, serial: SerialNo) {
        let interval = self.cfg.keepalive_interval.saturating_mul(1000);
        let now = self.now;
        let Some(p) = self.states.get_mut(&serial).and_then(|s| s.p1_mut()) else {
            return;
        };
        p.keepalive_at = Some(now.saturating_add(interval.max(1000)));
        let (local, remote) = (p.local, p.remote);
        self.out.push_back(Output::Send {
            local,
            remote,
            data: NAT_KEEPALIVE.to_vec(),
        });
    }
}

/// The ISAKMP SA a state was negotiated over (itself for an ISAKMP SA) if the Delete SPI
/// `spi` of `proto` names it: the ISAKMP cookies, or the peer's inbound ESP/AH SPI (the one we
/// send to).
fn named_by(s: &State, proto: ProtocolId, spi: &[u8]) -> Option<SerialNo> {
    match (s.p1(), s.p2()) {
        (Some(p), _) => (proto == ProtocolId::Isakmp && [p.icookie, p.rcookie].concat() == spi)
            .then_some(s.serial),
        (None, Some(p)) => {
            let ch = p.choice.as_ref()?;
            let theirs = match proto {
                ProtocolId::Esp => ch.esp.map(|e| e.1),
                ProtocolId::Ah => ch.ah.map(|a| a.1),
                _ => None,
            }?;
            (theirs.to_be_bytes()[..] == *spi).then_some(p.parent)
        }
        _ => None,
    }
}
