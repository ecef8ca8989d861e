//! Informational exchanges (RFC 2409 5.7): protected Notify and Delete, DPD R_U_THERE /
//! R_U_THERE_ACK (RFC 3706), and NAT keepalives (RFC 3948). Only authenticated Deletes are
//! honoured, and only for SAs of the same peer (`peer_policy`: negotiated over the ISAKMP SA
//! the Delete came on, or with the same authenticated identity; never by address alone).

use crate::pluto::ids::SerialNo;
use std::net::SocketAddr;

use crate::pluto::engine::Pluto;
use crate::pluto::ikev1::crypto as kc;
use crate::pluto::ikev1::msg::{ct_eq, parse_chain};
use crate::pluto::ikev1::quick_mode::P1Ctx;
use crate::pluto::ikev1::state::StateKind;
use crate::pluto::isakmp::{
    emit_payloads, parse_payloads, DeletePayload, Doi, ExchangeType, Flags, Header,
    NotificationPayload, NotifyType, Payload, PayloadType as PT, ProtocolId,
};
use crate::pluto::peer_policy::{spi_list, MAX_DELETE_SPIS};
use crate::said::Proto;

/// A notification saying the sender could not authenticate us (RFC 2408 3.14.1).
pub(crate) fn is_auth_failure(t: NotifyType) -> bool {
    matches!(
        t,
        NotifyType::AuthenticationFailed | NotifyType::InvalidSignature
    )
}

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
        self.send_info_after(p1, payloads, None);
    }

    /// [`Pluto::send_info`], with the IV derived from `last_block` (the last CBC block of
    /// phase 1 so far, RFC 2409 appendix B) instead of the ISAKMP SA's: a responder answering
    /// an MI3 it could not authenticate has not adopted that message's IV.
    fn send_info_after(&mut self, p1: SerialNo, payloads: Vec<Payload>, last_block: Option<&[u8]>) {
        let Some(mut ctx) = self.p1_ctx(p1) else {
            return;
        };
        if let Some(b) = last_block {
            ctx.iv = b.to_vec();
        }
        let msgid = self.fresh_msgid(p1);
        let Ok(after) = emit_payloads(&payloads) else {
            return;
        };
        let h = kc::informational_hash(ctx.prf, &ctx.skeyid_a, msgid, &after);
        let mut all = vec![Payload::Hash(h)];
        all.extend(payloads);
        let iv = kc::phase2_iv(ctx.prf, &ctx.iv, msgid, ctx.cipher.block_size());
        if let Ok((bytes, _)) =
            kc::encrypt_message(&Self::info_header(&ctx, msgid), &all, &ctx.cipher, &iv)
        {
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

    /// Main Mode responder: the MI3 of ISAKMP SA `p1` (whose last cipher block is
    /// `last_block`) failed authentication for good (`n`: INVALID_SIGNATURE or
    /// AUTHENTICATION_FAILED). Tells the initiator in an Informational protected with the
    /// phase-1 keys, so it gives up this attempt at once instead of retransmitting MI3 until
    /// its patience runs out (FreeS/WAN stayed silent).
    pub(crate) fn send_auth_failure(&mut self, p1: SerialNo, n: NotifyType, last_block: &[u8]) {
        let spi = match self.sas.ike(p1) {
            Some(s) => [s.spi_i(), s.spi_r].concat(),
            None => return,
        };
        self.send_info_after(
            p1,
            vec![Payload::Notification(NotificationPayload {
                doi: Doi::Ipsec,
                protocol: ProtocolId::Isakmp,
                spi,
                notify_type: n,
                data: Vec::new(),
            })],
            Some(last_block),
        );
    }

    /// Sends the Delete for an SA: our inbound ESP/AH SPIs, or the ISAKMP cookies.
    pub(crate) fn send_delete_for(&mut self, serial: SerialNo) {
        match (self.sas.ike(serial), self.sas.child(serial)) {
            (Some(p1), _) => {
                if !p1.established {
                    return;
                }
                let spi = [p1.spi_i(), p1.spi_r].concat();
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
                let parent = if self.sas.ike(p2.parent()).is_some_and(|s| s.established) {
                    Some(p2.parent())
                } else {
                    self.own_established_ike(p2.conn())
                };
                let our = p2.our;
                let Some(parent) = parent else {
                    return;
                };
                let mut dels = Vec::new();
                if let Some(spi) = our.esp {
                    dels.push(Payload::Delete(DeletePayload {
                        doi: Doi::Ipsec,
                        protocol: ProtocolId::Esp,
                        spi_size: 4,
                        spis: vec![spi.to_be_bytes().to_vec()],
                    }));
                }
                if let Some(spi) = our.ah {
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
            (None, None) => {}
        }
    }

    /// Dispatches an Informational message.
    pub(crate) fn v1_info(
        &mut self,
        _local: SocketAddr,
        remote: SocketAddr,
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
        let established = self.sas.ike(p1).is_some_and(|s| s.established);
        // An initiator that sent MI3 may hear that the responder could not authenticate it
        // (protected with the phase-1 keys, IV from MI3's last block — our IV now).
        let awaiting_mr3 = self.sas.ike(p1).is_some_and(|s| {
            s.initiator && s.exchange.v1().is_some_and(|x| x.kind == StateKind::MainI3)
        });
        if !established && !awaiting_mr3 {
            self.slog(
                p1,
                "Informational before ISAKMP SA established; dropped".into(),
            );
            return;
        }
        let msgid = hdr.message_id;
        let iv = kc::phase2_iv(ctx.prf, &ctx.iv, msgid, ctx.cipher.block_size());
        let dm = match kc::decrypt_message(data, &ctx.cipher, &iv) {
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
            .sas
            .ike(p1)
            .and_then(|s| s.exchange.v1())
            .is_some_and(|p| p.msgids.contains(&msgid));
        if is_retransmit {
            return;
        }
        self.note_msgid(p1, msgid);
        let payloads: Vec<Payload> = chain.items.iter().skip(1).map(|i| i.p.clone()).collect();
        if !established {
            let failure = payloads.iter().find_map(|p| match p {
                Payload::Notification(n) if is_auth_failure(n.notify_type) => Some(n.notify_type),
                _ => None,
            });
            match failure {
                Some(t) => {
                    self.slog(
                        p1,
                        format!("received notification {t}: the peer cannot authenticate us (wrong key published?); giving up this keying attempt"),
                    );
                    self.attempt_refused(p1);
                }
                None => self.slog(
                    p1,
                    "Informational before ISAKMP SA established; dropped".into(),
                ),
            }
            return;
        }
        self.heard_from(p1);
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
            let Some(p) = self.sas.ike(p1) else {
                return;
            };
            n.spi.is_empty() || n.spi == [p.spi_i(), p.spi_r].concat()
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
                if let Some(p) = self.sas.ike_mut(p1).and_then(|s| s.exchange.v1_mut()) {
                    p.dpd_peer_seq = Some(u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]));
                }
                self.send_notify(p1, NotifyType::RUThereAck, ProtocolId::Isakmp, spi, seq);
            }
            NotifyType::RUThereAck => {
                if !cookies_ok || n.data.len() != 4 {
                    return;
                }
                let seq = u32::from_be_bytes([n.data[0], n.data[1], n.data[2], n.data[3]]);
                let ours = self
                    .sas
                    .ike(p1)
                    .and_then(|s| s.exchange.v1())
                    .map(|p| p.dpd_seq);
                if ours != Some(seq) {
                    self.slog(
                        p1,
                        format!("DPD: R_U_THERE_ACK for unexpected sequence {seq}"),
                    );
                }
            }
            t if is_auth_failure(t) && cookies_ok => {
                // Protected by this ISAKMP SA's keys: the peer we did Main Mode with could
                // not authenticate us (our MR3), so it will never use this SA.
                self.slog(
                    p1,
                    format!("received notification {t}: the peer cannot authenticate us (wrong key published?); deleting ISAKMP SA"),
                );
                let key = self.sas.conn_of(p1).map(str::to_string);
                self.delete_sa(p1, false);
                if let Some(k) = key {
                    self.instance_gc(&k);
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
            // Every SA the SPI names; those negotiated over this ISAKMP SA first.
            let mut named: Vec<(bool, SerialNo)> = self
                .named_by(d.protocol, &spi)
                .into_iter()
                .map(|(via, s)| (via != p1, s))
                .collect();
            named.sort();
            let target = named.iter().map(|n| n.1).find(|&t| self.may_delete(p1, t));
            match target {
                Some(t) => {
                    let key = self.sas.conn_of(t).unwrap_or_default().to_string();
                    let kind = if width == 16 { "ISAKMP" } else { "IPSEC" };
                    self.slog(
                        t,
                        format!("received Delete SA payload: deleting {kind} State"),
                    );
                    self.delete_sa(t, false);
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

    /// Sends a DPD R_U_THERE (RFC 3706) with the next sequence number over ISAKMP SA
    /// `serial` (the engine's liveness policy decides when).
    pub(crate) fn send_r_u_there(&mut self, serial: SerialNo) {
        let Some(s) = self.sas.ike_mut(serial) else {
            return;
        };
        let cookies = [s.spi_i(), s.spi_r].concat();
        let Some(x) = s.exchange.v1_mut() else {
            return;
        };
        x.dpd_seq = x.dpd_seq.wrapping_add(1).max(1);
        let seq = x.dpd_seq;
        self.send_notify(
            serial,
            NotifyType::RUThere,
            ProtocolId::Isakmp,
            cookies,
            seq.to_be_bytes().to_vec(),
        );
    }

    /// The SAs a Delete's SPI of `proto` names, each with the ISAKMP SA it was negotiated
    /// over (itself for an ISAKMP SA): by the ISAKMP cookies, or by the peer's inbound ESP/AH
    /// SPI (the one we send to).
    fn named_by(&self, proto: ProtocolId, spi: &[u8]) -> Vec<(SerialNo, SerialNo)> {
        match proto {
            ProtocolId::Isakmp => {
                let Some(icky) = spi.get(..8).and_then(|c| <[u8; 8]>::try_from(c).ok()) else {
                    return Vec::new();
                };
                self.sas
                    .by_spi_i(&icky)
                    .filter(|s| [s.spi_i(), s.spi_r].concat() == spi)
                    .map(|s| (s.serial(), s.serial()))
                    .collect()
            }
            ProtocolId::Esp | ProtocolId::Ah => {
                let Ok(b) = <[u8; 4]>::try_from(spi) else {
                    return Vec::new();
                };
                let p = if proto == ProtocolId::Esp {
                    Proto::Esp
                } else {
                    Proto::Ah
                };
                self.sas
                    .by_peer_spi(p, u32::from_be_bytes(b))
                    .map(|c| (c.parent(), c.serial()))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}
