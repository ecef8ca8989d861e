//! The IKEv2 exchanges (RFC 7296 1.2–1.4, 2.), initiator and responder, over the engine's
//! records: IKE_SA_INIT, IKE_AUTH with PSK and the first child SA, CREATE_CHILD_SA for
//! further and replacing child SAs, INFORMATIONAL (Delete, liveness).

use crate::addr::{ip_bits, Family};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::pluto::crypto::ikev2::{psk_auth, signed_octets, verify_psk_auth, IkeSaKeys, SkCipher};
use crate::pluto::crypto::ikev2::{ChildAlgs, IkeSaAlgs};
use crate::pluto::crypto::{DhGroup, DhKeyPair, SignatureScheme};
use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::install::{ChildMode, EspKeys, NegotiatedChild, NegotiatedEsp};
use crate::pluto::natt::{IKE_PORT, NAT_T_PORT};
use crate::pluto::output::{rc, whack_status};
use crate::pluto::proposal::{AuthKind, EspAlg, IkeAlg};
use crate::pluto::sa::{ChildSa, IkeSa, NewChildSa, NewIkeSa, PendingChild, Spis};
use crate::pluto::timers::{
    TimerKind, TimerSlot, HALF_OPEN_TIMEOUT_MS, MAX_RETRANSMISSIONS, RETRANSMIT_BASE_MS,
};
use crate::pluto::version::{ChildExchange, IkeExchange, IkeVersion};
use crate::sadb::KeyBytes;
use crate::said::Proto;

use super::proposal::{self as v2p, IkeChoice};
use super::state::{Deferred, Ikev2Child, Ikev2Ike, V2State};
use super::wire::{
    self, AddrSelector, AddressRange, AuthMethod, AuthPayload, DeletePayload, ExchangeType, Flags,
    Header, IkeSpi, KePayload, NotifyPayload, NotifyType, Payload, PayloadType, Protected,
    ProtocolId, TsPayload,
};

const NONCE_LEN: usize = 32;

/// The keying material of a CREATE_CHILD_SA exchange a responder answers: nonces (the
/// exchange initiator's first), the PFS shared secret and group.
struct CcsaKeying<'a> {
    ni: &'a [u8],
    nr: &'a [u8],
    gir: Option<Vec<u8>>,
    pfs: Option<DhGroup>,
}
/// IKE_SA_INIT restarts after INVALID_KE_PAYLOAD or COOKIE before giving up.
const MAX_INIT_RETRIES: u32 = 4;

/// NAT_DETECTION_*_IP data (RFC 7296 2.23): SHA-1(SPIi | SPIr | IP | port).
fn nat_hash(spi_i: &[u8; 8], spi_r: &[u8; 8], a: SocketAddr) -> Vec<u8> {
    crate::pluto::crypto::Prf::HmacSha1.hash(&[
        spi_i,
        spi_r,
        &crate::addr::ip_octets(a.ip()),
        &a.port().to_be_bytes(),
    ])
}

/// The authentication kind of an AUTH method (`None`: not one rswan speaks).
fn auth_kind(m: AuthMethod) -> Option<AuthKind> {
    match m {
        AuthMethod::SharedKeyMic => Some(AuthKind::Psk),
        AuthMethod::RsaSig | AuthMethod::DigitalSignature => Some(AuthKind::Rsa),
        _ => None,
    }
}

/// The SIGNATURE_HASH_ALGORITHMS notification (RFC 7427 4): SHA2-256/384/512.
fn hash_algorithms_notify() -> Payload {
    Payload::Notify(NotifyPayload::signature_hash_algorithms(&[
        wire::HashAlgorithm::Sha2_256,
        wire::HashAlgorithm::Sha2_384,
        wire::HashAlgorithm::Sha2_512,
    ]))
}

/// The peer's SIGNATURE_HASH_ALGORITHMS, as raw numbers.
fn peer_hashes(payloads: &[Payload]) -> Vec<u16> {
    wire::find_notify(payloads, NotifyType::SignatureHashAlgorithms)
        .and_then(|n| n.hash_algorithms().ok())
        .map(|v| v.into_iter().map(|h| h.value()).collect())
        .unwrap_or_default()
}

/// An IKEv2 ID payload for one of our IDs (`%any` and unresolved names: our address).
fn identification(id: &Id, host: Option<IpAddr>) -> wire::Identification {
    match id {
        Id::Ipv4(a) => wire::Identification::Ipv4(*a),
        Id::Ipv6(a) => wire::Identification::Ipv6(*a),
        Id::Fqdn(f) => wire::Identification::Fqdn(f.as_bytes().to_vec()),
        Id::UserFqdn(u) => wire::Identification::Rfc822(u.as_bytes().to_vec()),
        Id::Any | Id::Name(_) => match host {
            Some(IpAddr::V6(a)) => wire::Identification::Ipv6(a),
            Some(IpAddr::V4(a)) => wire::Identification::Ipv4(a),
            None => wire::Identification::Ipv4(Ipv4Addr::UNSPECIFIED),
        },
    }
}

/// The engine's ID for a peer's ID payload.
fn peer_id(i: &wire::Identification) -> Result<Id, String> {
    let text = |d: &[u8]| -> Result<String, String> {
        let s = String::from_utf8(d.to_vec()).map_err(|_| "peer ID is not UTF-8".to_string())?;
        if s.is_empty() || crate::sanitize::has_unsafe_chars(&s) {
            return Err("peer ID contains control characters; refused".into());
        }
        Ok(s)
    };
    match i {
        wire::Identification::Ipv4(a) => Ok(Id::Ipv4(*a)),
        wire::Identification::Ipv6(a) => Ok(Id::Ipv6(*a)),
        wire::Identification::Fqdn(d) => Ok(Id::Fqdn(text(d)?)),
        wire::Identification::Rfc822(d) => Ok(Id::UserFqdn(text(d)?)),
        other => Err(format!("unsupported peer ID type {}", other.id_type())),
    }
}

/// The traffic selector of a client subnet (all protocols and ports): TS_IPV4_ADDR_RANGE or
/// TS_IPV6_ADDR_RANGE by the subnet's family.
fn selector(s: &Subnet) -> AddrSelector {
    AddrSelector::any(match (s.ip(), s.last()) {
        (IpAddr::V4(start), IpAddr::V4(end)) => AddressRange::V4 { start, end },
        (IpAddr::V6(start), IpAddr::V6(end)) => AddressRange::V6 { start, end },
        // The first and last address of a subnet are of one family.
        (IpAddr::V4(start), _) => AddressRange::V4 { start, end: start },
        (IpAddr::V6(start), _) => AddressRange::V6 { start, end: start },
    })
}

/// A selector's range as (family, first, last) on 128-bit integers.
fn range_bits(a: &AddressRange) -> (Family, u128, u128) {
    match *a {
        AddressRange::V4 { start, end } => (
            Family::V4,
            u128::from(u32::from(start)),
            u128::from(u32::from(end)),
        ),
        AddressRange::V6 { start, end } => (Family::V6, u128::from(start), u128::from(end)),
    }
}

/// Whether some selector of `ts` covers subnet `s` (RFC 7296 2.9: the responder may narrow
/// the initiator's selectors to its own policy).
fn covers(ts: &TsPayload, s: &Subnet) -> bool {
    let (first, last) = (ip_bits(s.ip()), ip_bits(s.last()));
    ts.addr_selectors().any(|a| {
        let (f, start, end) = range_bits(&a.addresses);
        f == s.family()
            && a.ip_protocol == 0
            && a.start_port == 0
            && a.end_port == 65535
            && start <= first
            && end >= last
    })
}

/// The subnet of a TS payload narrowed inside `ours`: exactly one all-ports selector whose
/// range is a CIDR block within `ours`.
fn narrowed(ts: &TsPayload, ours: &Subnet) -> Option<Subnet> {
    let [a] = ts.addr_selectors().collect::<Vec<_>>()[..] else {
        return None;
    };
    if a.ip_protocol != 0 || a.start_port != 0 || a.end_port != 65535 {
        return None;
    }
    let (f, start, end) = range_bits(&a.addresses);
    let bits = u32::from(f.bits());
    let size = end.checked_sub(start)?.checked_add(1);
    let len = match size {
        None => 0,
        Some(n) if n.is_power_of_two() => bits - n.trailing_zeros(),
        Some(_) => return None,
    };
    let first = match a.addresses {
        AddressRange::V4 { start, .. } => IpAddr::V4(start),
        AddressRange::V6 { start, .. } => IpAddr::V6(start),
    };
    let s = Subnet::try_new(first, u8::try_from(len).ok()?).ok()?;
    (s.ip() == first && ours.covers(&s)).then_some(s)
}

fn payload_ts(payloads: &[Payload]) -> (Option<&TsPayload>, Option<&TsPayload>) {
    let mut i = None;
    let mut r = None;
    for p in payloads {
        match p {
            Payload::TsI(t) => i = Some(t),
            Payload::TsR(t) => r = Some(t),
            _ => {}
        }
    }
    (i, r)
}

fn sa_of(payloads: &[Payload]) -> Option<&wire::SaPayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Sa(s) => Some(s),
        _ => None,
    })
}

fn nonce_of(payloads: &[Payload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

fn ke_of(payloads: &[Payload]) -> Option<&KePayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Ke(k) => Some(k),
        _ => None,
    })
}

/// The first error notification (type below 16384) of a message.
fn error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    wire::notifies(payloads)
        .map(|n| n.notify_type)
        .find(|t| t.value() < 16384)
}

/// The suites an IKEv2 conn offers and accepts: `ike=` as written, else the IKEv2 defaults.
fn ike_suites(c: &crate::pluto::Connection) -> Vec<IkeAlg> {
    if c.ike_explicit {
        c.ike.clone()
    } else {
        crate::pluto::proposal::default_ike_v2()
    }
}

/// The ESP suites of an IKEv2 conn: `esp=` as written, else the IKEv2 defaults.
fn esp_suites(c: &crate::pluto::Connection) -> Vec<EspAlg> {
    if c.esp_explicit {
        c.esp.clone()
    } else {
        crate::pluto::proposal::default_esp_v2()
    }
}

/// Why a protected IKEv2 message could not be opened.
#[derive(Debug)]
enum OpenError {
    /// Before or during decryption: no keys, a bad layout, a bad ICV, a bad fragment. Nothing
    /// in it is authenticated, so it is only logged.
    Outer(String),
    /// The decrypted (so authenticated) inner payload chain does not parse.
    Inner(wire::ParseError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Outer(e) => f.write_str(e),
            OpenError::Inner(e) => write!(f, "{e}"),
        }
    }
}

impl Pluto {
    fn v2(&self, serial: SerialNo) -> Option<&Ikev2Ike> {
        self.sas.ike(serial)?.exchange.v2()
    }

    fn v2_mut(&mut self, serial: SerialNo) -> Option<&mut Ikev2Ike> {
        self.sas.ike_mut(serial)?.exchange.v2_mut()
    }

    fn v2_child_mut(&mut self, serial: SerialNo) -> Option<&mut Ikev2Child> {
        self.sas.child_mut(serial)?.exchange.v2_mut()
    }

    fn ike_spi(&mut self) -> [u8; 8] {
        loop {
            let mut c = [0u8; 8];
            self.rng.fill_bytes(&mut c);
            if c != [0; 8] {
                return c;
            }
        }
    }

    /// Moves IKE SA `serial` to `kind` and logs the transition.
    fn v2_advance(&mut self, serial: SerialNo, kind: V2State, extra: &str) {
        if let Some(s) = self.sas.ike_mut(serial) {
            if let Some(x) = s.exchange.v2_mut() {
                x.kind = kind;
            }
            s.established = kind == V2State::EstablishedIke;
            s.rtx.count = 0;
        }
        self.log_transition(serial, extra);
    }

    /// The header of a message on IKE SA `serial`.
    fn v2_header(s: &IkeSa, exch: ExchangeType, response: bool, msgid: u32) -> Header {
        let mut flags = 0;
        if s.initiator {
            flags |= Flags::INITIATOR.bits();
        }
        if response {
            flags |= Flags::RESPONSE.bits();
        }
        Header {
            spi_i: IkeSpi(s.spi_i()),
            spi_r: IkeSpi(s.spi_r),
            next_payload: PayloadType::None,
            exchange_type: exch,
            flags: Flags::from_bits(flags),
            message_id: msgid,
        }
    }

    /// A protected message on IKE SA `serial` (RFC 7296 3.14): one datagram, or SKF
    /// fragments (RFC 7383) when the peer supports them and the message is larger than
    /// `ike_fragment_size`.
    fn v2_seal(
        &mut self,
        serial: SerialNo,
        exch: ExchangeType,
        response: bool,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<Vec<Vec<u8>>, String> {
        let (first, chain) = wire::emit_inner(payloads).map_err(|e| e.to_string())?;
        let s = self.sas.ike(serial).ok_or("IKE SA gone")?;
        let header = Self::v2_header(s, exch, response, msgid);
        let x = s.exchange.v2().ok_or("not IKEv2")?;
        let sk = x.sk_out.as_ref().ok_or("no keys")?;
        let marker = if s.local.port() == NAT_T_PORT { 4 } else { 0 };
        let max = self.cfg.ike_fragment_size.saturating_sub(marker);
        let whole = wire::HEADER_LEN + wire::GENERIC_HEADER_LEN + sk.body_len(chain.len());
        // Pieces of the chain, and the SKF fields of each (none: one SK payload).
        let pieces: Vec<(Option<wire::FragmentInfo>, PayloadType, &[u8])> =
            if x.peer_fragments && whole > max {
                let room = max.saturating_sub(wire::HEADER_LEN + wire::GENERIC_HEADER_LEN + 4);
                let cap = sk
                    .max_plain_len(room)
                    .filter(|&c| c > 0)
                    .ok_or("ike_fragment_size too small for a fragment")?;
                let chunks: Vec<&[u8]> = chain.chunks(cap).collect();
                let total = u16::try_from(chunks.len())
                    .ok()
                    .filter(|&t| t <= wire::MAX_FRAGMENTS)
                    .ok_or("message needs too many fragments")?;
                chunks
                    .into_iter()
                    .zip(1..=total)
                    .map(|(c, number)| {
                        let f = if number == 1 {
                            first
                        } else {
                            PayloadType::None
                        };
                        (Some(wire::FragmentInfo { number, total }), f, c)
                    })
                    .collect()
            } else {
                vec![(None, first, chain.as_slice())]
            };
        let mut out = Vec::with_capacity(pieces.len());
        let mut rng = crate::pluto::engine::InjectedRng(&mut *self.rng);
        let sk = self
            .sas
            .ike_mut(serial)
            .and_then(|s| s.exchange.v2_mut())
            .and_then(|x| x.sk_out.as_mut())
            .ok_or("no keys")?;
        for (frag, next, plain) in pieces {
            let fields = if frag.is_some() { 4 } else { 0 };
            let body_len = sk.body_len(plain.len());
            let sk_len = u16::try_from(body_len + wire::GENERIC_HEADER_LEN + fields)
                .map_err(|_| "message too long".to_string())?;
            let mut h = header;
            h.next_payload = if frag.is_some() {
                PayloadType::EncryptedFragment
            } else {
                PayloadType::Encrypted
            };
            let mut msg = h
                .to_bytes(usize::from(sk_len))
                .map_err(|e| e.to_string())?
                .to_vec();
            msg.push(next.value());
            msg.push(0);
            msg.extend_from_slice(&sk_len.to_be_bytes());
            if let Some(f) = frag {
                msg.extend_from_slice(&f.number.to_be_bytes());
                msg.extend_from_slice(&f.total.to_be_bytes());
            }
            let body = sk.seal(&mut rng, &msg, plain).map_err(|e| e.to_string())?;
            msg.extend_from_slice(&body);
            out.push(msg);
        }
        Ok(out)
    }

    /// Checks and decrypts a protected message on IKE SA `serial`: its inner payloads, or
    /// `None` for a fragment of a message not yet complete (RFC 7383: each fragment's ICV is
    /// checked before it is kept).
    fn v2_open(
        &mut self,
        serial: SerialNo,
        data: &[u8],
    ) -> Result<Option<Vec<Payload>>, OpenError> {
        let sk = self
            .v2(serial)
            .and_then(|x| x.sk_in.as_ref())
            .ok_or(OpenError::Outer("no keys".into()))?;
        let p = Protected::locate(data, sk.iv_len(), sk.icv_len())
            .map_err(|e| OpenError::Outer(e.to_string()))?;
        let body = data
            .get(p.aad.len()..)
            .ok_or(OpenError::Outer("truncated".into()))?;
        let plain = sk
            .open(p.aad, body)
            .map_err(|e| OpenError::Outer(e.to_string()))?;
        let Some(info) = p.fragment else {
            return wire::parse_inner(p.first_inner, &plain)
                .map(Some)
                .map_err(OpenError::Inner);
        };
        let (msgid, response) = (p.header.message_id, p.header.flags.response());
        let x = self.v2_mut(serial).ok_or(OpenError::Outer("gone".into()))?;
        if x.reassembly
            .as_ref()
            .is_none_or(|r| (r.0, r.1) != (msgid, response))
        {
            x.reassembly = Some((msgid, response, wire::Reassembly::new()));
        }
        let Some((_, _, r)) = x.reassembly.as_mut() else {
            return Ok(None);
        };
        match r.add(info, p.first_inner, &plain) {
            Ok(wire::FragmentStatus::Complete(m)) => {
                x.reassembly = None;
                wire::parse_inner(m.first_inner, &m.chain)
                    .map(Some)
                    .map_err(OpenError::Inner)
            }
            Ok(_) => Ok(None),
            Err(e) => Err(OpenError::Outer(format!(
                "fragment {}/{} dropped: {e}",
                info.number, info.total
            ))),
        }
    }

    /// Sends a response on IKE SA `serial` and keeps it for a retransmitted request.
    fn v2_respond(
        &mut self,
        serial: SerialNo,
        exch: ExchangeType,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<(), String> {
        let msgs = self.v2_seal(serial, exch, true, msgid, payloads)?;
        let (local, remote) = self
            .sas
            .ike(serial)
            .map(|s| (s.local, s.remote))
            .ok_or("gone")?;
        if let Some(x) = self.v2_mut(serial) {
            x.peer_next_request = msgid.wrapping_add(1);
            x.last_response = Some((msgid, msgs.clone()));
        }
        for m in msgs {
            self.send_raw(local, remote, m);
        }
        Ok(())
    }

    /// Sends a request on IKE SA `serial` (message ID: the next of ours); retransmitted by
    /// the engine when `retransmit`.
    fn v2_request(
        &mut self,
        serial: SerialNo,
        exch: ExchangeType,
        payloads: &[Payload],
        retransmit: bool,
    ) -> Result<u32, String> {
        let msgid = self.v2(serial).map(|x| x.next_request).ok_or("gone")?;
        let msgs = self.v2_seal(serial, exch, false, msgid, payloads)?;
        let (local, remote) = self
            .sas
            .ike(serial)
            .map(|s| (s.local, s.remote))
            .ok_or("gone")?;
        if let Some(x) = self.v2_mut(serial) {
            x.next_request = msgid.wrapping_add(1);
            if retransmit {
                x.awaiting = Some((msgid, serial));
            }
        }
        if retransmit {
            // An INFORMATIONAL of an established IKE SA has its own timer slot: the SA's
            // event slot holds its rekey.
            let kind = if exch == ExchangeType::Informational {
                if let Some(r) = self.sas.rtx_mut(serial) {
                    r.count = 0;
                }
                TimerKind::RequestRetransmit
            } else {
                TimerKind::Retransmit
            };
            self.send_all_for(serial, local, remote, msgs);
            self.schedule(serial, RETRANSMIT_BASE_MS, kind);
        } else {
            for m in msgs {
                self.send_raw(local, remote, m);
            }
        }
        Ok(msgid)
    }

    /// An unprotected IKE_SA_INIT response carrying one notification (no state is kept).
    fn v2_init_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        n: NotifyPayload,
    ) {
        let msg = wire::Message {
            header: Header {
                spi_i: hdr.spi_i,
                spi_r: IkeSpi::ZERO,
                next_payload: PayloadType::None,
                exchange_type: ExchangeType::IkeSaInit,
                flags: Flags::RESPONSE,
                message_id: 0,
            },
            payloads: vec![Payload::Notify(n)],
        };
        if let Ok(bytes) = msg.to_bytes() {
            self.send_raw(local, remote, bytes);
        }
    }

    /// Our NAT_DETECTION_SOURCE_IP and _DESTINATION_IP notifications for IKE SA `serial`
    /// (none with `nat_traversal=no`). With `forceencaps=yes` the source hash is random, so
    /// both ends see a NAT and encapsulate ESP in UDP.
    fn v2_nat_d(&mut self, serial: SerialNo) -> Vec<Payload> {
        if !self.cfg.nat_traversal {
            return Vec::new();
        }
        let Some(s) = self.sas.ike(serial) else {
            return Vec::new();
        };
        let force = self.conns.get(s.conn()).is_some_and(|c| c.forceencaps);
        let (i, r, local, remote) = (s.spi_i(), s.spi_r, s.local, s.remote);
        let src = if force {
            self.random_bytes(20)
        } else {
            nat_hash(&i, &r, local)
        };
        vec![
            Payload::Notify(NotifyPayload::new(NotifyType::NatDetectionSourceIp, src)),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NatDetectionDestinationIp,
                nat_hash(&i, &r, remote),
            )),
        ]
    }

    /// Reads the peer's NAT_DETECTION_* notifications of IKE_SA_INIT (hashed with SPIs
    /// `spi_i`, `spi_r`): NAT-T is on when both ends sent them; who is behind a NAT follows
    /// from the hashes.
    fn v2_read_nat_d(&mut self, serial: SerialNo, spi_r: [u8; 8], payloads: &[Payload]) {
        if !self.cfg.nat_traversal {
            return;
        }
        let srcs: Vec<&[u8]> = wire::notifies(payloads)
            .filter(|n| n.notify_type == NotifyType::NatDetectionSourceIp)
            .map(|n| n.data.as_slice())
            .collect();
        let dst = wire::find_notify(payloads, NotifyType::NatDetectionDestinationIp);
        let (Some(dst), false) = (dst, srcs.is_empty()) else {
            return;
        };
        let Some(s) = self.sas.ike(serial) else {
            return;
        };
        let force = self.conns.get(s.conn()).is_some_and(|c| c.forceencaps);
        let (i, local, remote) = (s.spi_i(), s.local, s.remote);
        let peer_behind = !srcs.contains(&nat_hash(&i, &spi_r, remote).as_slice());
        let we_behind = force || dst.data != nat_hash(&i, &spi_r, local);
        if let Some(s) = self.sas.ike_mut(serial) {
            s.nat.negotiated = true;
            s.nat.peer_behind = peer_behind;
            s.nat.we_behind = we_behind;
        }
        if peer_behind || we_behind {
            let who = match (we_behind, peer_behind) {
                (true, true) => "both ends are",
                (true, false) => "we are",
                _ => "the peer is",
            };
            self.slog(
                serial,
                format!("NAT-Traversal: {who} behind a NAT; ESP is encapsulated in UDP"),
            );
        }
    }

    /// After an authenticated message on IKE SA `serial` arrived at `local` from `remote`:
    /// with NAT-T, follow the peer to its new address or port (RFC 7296 2.23).
    fn v2_follow_peer(&mut self, serial: SerialNo, local: SocketAddr, remote: SocketAddr) {
        if let Some(s) = self.sas.ike_mut(serial) {
            if s.nat.negotiated && (s.local != local || s.remote != remote) {
                s.local = local;
                s.remote = remote;
                s.nat.floated = local.port() == NAT_T_PORT;
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Dispatch.

    /// An IKEv2 datagram.
    pub(crate) fn v2_datagram(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let (hdr, _) = match Header::parse_datagram(data) {
            Ok(h) => h,
            Err(e) => {
                self.log(format!("packet from {remote}: {e}; message dropped"));
                return;
            }
        };
        let response = hdr.flags.response();
        if hdr.exchange_type == ExchangeType::IkeSaInit {
            if response {
                self.v2_init_response(remote, &hdr, data);
            } else if hdr.spi_r.is_zero() && hdr.message_id == 0 && hdr.flags.initiator() {
                self.v2_init_request(local, remote, &hdr, data);
            } else {
                self.log(format!(
                    "packet from {remote}: malformed IKE_SA_INIT request; message dropped"
                ));
            }
            return;
        }
        let found = self
            .sas
            .by_spi_i(&hdr.spi_i.0)
            .find(|s| {
                s.spi_r == hdr.spi_r.0
                    && s.exchange.v2().is_some()
                    // The I flag says who sent it: the other side.
                    && s.initiator != hdr.flags.initiator()
            })
            .map(IkeSa::serial);
        let Some(serial) = found else {
            self.log(format!(
                "packet from {remote}: {} message for unknown IKE SA; dropped",
                hdr.exchange_type
            ));
            return;
        };
        if response {
            self.v2_response(serial, local, remote, &hdr, data);
        } else {
            self.v2_request_in(serial, local, remote, &hdr, data);
        }
    }

    /// A response to one of our requests on IKE SA `serial`.
    fn v2_response(
        &mut self,
        serial: SerialNo,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        data: &[u8],
    ) {
        let Some(x) = self.v2(serial) else {
            return;
        };
        let (kind, next) = (x.kind, x.next_request);
        let answers_awaited = x.awaiting.is_some_and(|(id, _)| id == hdr.message_id);
        if !answers_awaited && hdr.message_id.wrapping_add(1) != next {
            self.slog(
                serial,
                format!(
                    "{} response with message ID {} but {} is outstanding; dropped",
                    hdr.exchange_type,
                    hdr.message_id,
                    next.wrapping_sub(1)
                ),
            );
            return;
        }
        let payloads = match self.v2_open(serial, data) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                self.slog(
                    serial,
                    format!("{}: {e}; message dropped", hdr.exchange_type),
                );
                return;
            }
        };
        self.unauth = None;
        if answers_awaited {
            if let Some(x) = self.v2_mut(serial) {
                x.awaiting = None;
            }
        }
        let conn = self.sas.conn_of(serial).map(str::to_string);
        self.v2_follow_peer(serial, local, remote);
        let r = match (hdr.exchange_type, kind) {
            (ExchangeType::IkeAuth, V2State::ParentI2) => self.v2_auth_response(serial, &payloads),
            (ExchangeType::CreateChildSa, V2State::EstablishedIke) => {
                self.v2_child_response(serial, hdr.message_id, &payloads)
            }
            (ExchangeType::Informational, _) => {
                if answers_awaited {
                    self.sas.timers.clear(serial, TimerSlot::Request);
                }
                self.heard_from(serial);
                Ok(())
            }
            (t, k) => Err(format!("unexpected {t} response in {}; dropped", k.name())),
        };
        if let Err(e) = r {
            self.slog(serial, e);
        }
        self.v2_run_deferred(serial);
        if let Some(newest) = conn
            .and_then(|k| self.conns.get(&k))
            .and_then(|c| c.newest_isakmp)
            .filter(|&n| n != serial)
        {
            self.v2_run_deferred(newest);
        }
    }

    /// Whether IKE SA `ike` has a request of ours outstanding whose negotiation still goes on
    /// (RFC 7296 2.3: a window of one).
    fn v2_busy(&self, ike: SerialNo) -> bool {
        let Some((_, owner)) = self.v2(ike).and_then(|x| x.awaiting) else {
            return false;
        };
        if owner == ike {
            // Its own request (IKE_AUTH, or an INFORMATIONAL) is unanswered.
            return true;
        }
        match (self.sas.ike(owner), self.sas.child(owner)) {
            (Some(s), _) => !s.established,
            (None, Some(c)) => !c.established,
            (None, None) => false,
        }
    }

    /// Starts the exchanges held back on IKE SA `ike` once nothing is outstanding on it.
    fn v2_run_deferred(&mut self, ike: SerialNo) {
        if self.v2_busy(ike) || !self.sas.ike(ike).is_some_and(|s| s.established) {
            return;
        }
        let Some(x) = self.v2_mut(ike) else {
            return;
        };
        let mut items = std::mem::take(&mut x.deferred).into_iter();
        while let Some(d) = items.next() {
            match d {
                Deferred::Child {
                    key,
                    whack,
                    replacing,
                    try_no,
                } => {
                    // The child SA it was to replace may be gone meanwhile (the peer rekeyed
                    // or deleted it): then there is nothing left to do.
                    if replacing.is_some_and(|r| self.sas.child(r).is_none()) {
                        continue;
                    }
                    self.v2_child_initiate(ike, &key, whack, replacing, try_no);
                }
                Deferred::IkeRekey { try_no } => {
                    self.v2_ike_rekey(ike, try_no);
                }
                Deferred::Informational(payloads) => {
                    self.v2_send_informational(ike, payloads);
                }
            }
            if self.v2_busy(ike) {
                // Started one: the rest wait for its response.
                let rest: Vec<Deferred> = items.collect();
                if let Some(x) = self.v2_mut(ike) {
                    let mut all = rest;
                    all.append(&mut x.deferred);
                    x.deferred = all;
                }
                return;
            }
        }
    }

    /// A request from the peer on IKE SA `serial`.
    fn v2_request_in(
        &mut self,
        serial: SerialNo,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        data: &[u8],
    ) {
        let Some(x) = self.v2(serial) else {
            return;
        };
        let (kind, expected) = (x.kind, x.peer_next_request);
        if hdr.message_id != expected {
            let again = x
                .last_response
                .as_ref()
                .filter(|(id, _)| id.wrapping_add(1) == expected && *id == hdr.message_id)
                .map(|(_, b)| b.clone());
            // A retransmitted fragmented request is answered once, on its first fragment.
            let later_fragment = data.get(16) == Some(&PayloadType::EncryptedFragment.value())
                && data.get(32..34) != Some(&[0, 1][..]);
            match again {
                Some(_) if later_fragment => {}
                Some(msgs) => {
                    // A retransmitted request: the same answer.
                    for m in msgs {
                        self.send_raw(local, remote, m);
                    }
                }
                None => self.log(format!(
                    "packet from {remote}: {} request with message ID {} (expected {expected}); dropped",
                    hdr.exchange_type, hdr.message_id
                )),
            }
            return;
        }
        let payloads = match self.v2_open(serial, data) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(OpenError::Inner(e @ wire::ParseError::UnsupportedCriticalPayload { .. })) => {
                // RFC 7296 2.5: an authenticated request with a critical payload we do not
                // know is rejected with UNSUPPORTED_CRITICAL_PAYLOAD naming its type; the
                // message ID is used up like any answered request.
                self.slog(
                    serial,
                    format!(
                        "{}: {e}; answered with {}",
                        hdr.exchange_type,
                        e.notify_type()
                    ),
                );
                let n = NotifyPayload::new(e.notify_type(), e.notify_data());
                let r = self.v2_respond(
                    serial,
                    hdr.exchange_type,
                    hdr.message_id,
                    &[Payload::Notify(n)],
                );
                if let Err(e) = r {
                    self.slog(serial, e);
                }
                return;
            }
            Err(e) => {
                self.slog(
                    serial,
                    format!("{}: {e}; message dropped", hdr.exchange_type),
                );
                return;
            }
        };
        self.v2_follow_peer(serial, local, remote);
        let r = match (hdr.exchange_type, kind) {
            (ExchangeType::IkeAuth, V2State::ParentR1) => {
                self.v2_auth_request(serial, hdr.message_id, &payloads)
            }
            (ExchangeType::CreateChildSa, V2State::EstablishedIke) => {
                self.unauth = None;
                self.heard_from(serial);
                self.v2_child_request(serial, hdr.message_id, &payloads)
            }
            (ExchangeType::Informational, V2State::EstablishedIke) => {
                self.unauth = None;
                self.heard_from(serial);
                self.v2_info_request(serial, hdr.message_id, &payloads)
            }
            (t, k) => Err(format!("unexpected {t} request in {}; dropped", k.name())),
        };
        if let Err(e) = r {
            self.slog(serial, e);
        }
    }

    // -----------------------------------------------------------------------------------
    // IKE_SA_INIT.

    /// Starts an IKE SA for conn `key`: IKE_SA_INIT request.
    pub(crate) fn v2_initiate(
        &mut self,
        key: &str,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing: Option<SerialNo>,
    ) {
        // An established IKEv2 SA is rekeyed in place (CREATE_CHILD_SA), its child SAs kept;
        // with `reauth=yes` it is replaced by a new IKE_SA_INIT and IKE_AUTH instead
        // (make-before-break: its child SAs are recreated over the new IKE SA, then it goes).
        let mut reauth_of = None;
        if let (Some(old), None) = (replacing, pending) {
            let reauth = self.conns.get(key).is_some_and(|c| c.reauth)
                && self
                    .sas
                    .ike(old)
                    .is_some_and(|s| s.established && s.exchange.v2().is_some());
            if reauth {
                reauth_of = Some(old);
            } else if self.v2_ike_rekey(old, try_no) {
                return;
            }
        }
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let (Some(me), Some(peer)) = (c.this.host, c.that.host) else {
            return;
        };
        let offered = ike_suites(c);
        let life = c.ikelifetime;
        let c_auth = c.auth.first().copied();
        // An IKE SA always brings a child SA along: replacing an IKE SA replaces the conn's
        // newest child SA too (make-before-break).
        let pending = pending.or(Some(PendingChild {
            whack: None,
            replacing: c.newest_ipsec,
        }));
        let Some(first) = offered.first() else {
            return;
        };
        let group = first.group;
        let spi_i = self.ike_spi();
        let serial = self.sas.new_serial();
        let mut x = Ikev2Ike::new(V2State::ParentI1);
        x.offered = offered;
        x.reauth_of = reauth_of;
        x.ni = self.random_bytes(NONCE_LEN);
        x.dh = Some(DhKeyPair::generate(group, &mut self.rng()));
        let mut sa = IkeSa::new(
            serial,
            NewIkeSa {
                conn: key.to_string(),
                spi_i,
                spi_r: [0; 8],
                initiator: true,
                local: SocketAddr::new(me, IKE_PORT),
                remote: SocketAddr::new(peer, IKE_PORT),
                created: self.now,
                exchange: IkeExchange::V2(Box::new(x)),
            },
        );
        sa.life = life;
        sa.whack = whack;
        sa.try_no = try_no;
        sa.pending_child = pending;
        sa.auth = c_auth;
        sa.liveness.peer_supports = true;
        self.sas.insert_ike(sa);
        match (reauth_of, replacing.or(pending.and_then(|p| p.replacing))) {
            (Some(r), _) => self.slog(
                serial,
                format!("initiating IKEv2 IKE SA to reauthenticate #{r} (reauth=yes)"),
            ),
            (None, Some(r)) => {
                self.slog(serial, format!("initiating IKEv2 IKE SA to replace #{r}"))
            }
            (None, None) => self.slog(serial, "initiating IKEv2 IKE SA".into()),
        }
        self.v2_send_init(serial);
    }

    /// (Re)sends the IKE_SA_INIT request of IKE SA `serial` from its state.
    fn v2_send_init(&mut self, serial: SerialNo) {
        let Some(s) = self.sas.ike(serial) else {
            return;
        };
        let Some(x) = s.exchange.v2() else {
            return;
        };
        let Some(dh) = &x.dh else {
            return;
        };
        let mut payloads = Vec::new();
        if let Some(c) = &x.cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::Cookie,
                c.clone(),
            )));
        }
        payloads.push(Payload::Sa(v2p::ike_sa_payload(&x.offered, None)));
        payloads.push(Payload::Ke(KePayload {
            group: wire::DhGroup::from(dh.group().id()),
            data: dh.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(x.ni.clone()));
        payloads.push(hash_algorithms_notify());
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::Ikev2FragmentationSupported,
            Vec::new(),
        )));
        let (spi_i, local, remote) = (s.spi_i(), s.local, s.remote);
        payloads.extend(self.v2_nat_d(serial));
        let msg = wire::Message {
            header: Header {
                spi_i: IkeSpi(spi_i),
                spi_r: IkeSpi::ZERO,
                next_payload: PayloadType::None,
                exchange_type: ExchangeType::IkeSaInit,
                flags: Flags::INITIATOR,
                message_id: 0,
            },
            payloads,
        };
        let Ok(bytes) = msg.to_bytes() else {
            return;
        };
        if let Some(x) = self.v2_mut(serial) {
            x.init_i = bytes.clone();
            x.next_request = 1;
        }
        self.v2_advance(serial, V2State::ParentI1, "");
        self.send_for(serial, local, remote, bytes);
        self.schedule(serial, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
    }

    /// IKE_SA_INIT request arrived: choose a conn and a suite, answer.
    fn v2_init_request(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        data: &[u8],
    ) {
        // A retransmission of a request we answered.
        let dup = self
            .sas
            .by_spi_i(&hdr.spi_i.0)
            .find(|s| !s.initiator && s.remote == remote && s.exchange.v2().is_some())
            .map(|s| (s.serial(), s.rtx.last_recv == data));
        if let Some((serial, same)) = dup {
            if same {
                self.resend_last(serial);
            }
            return;
        }
        let msg = match wire::parse_message(data) {
            Ok(m) => m,
            Err(e) => {
                self.log(format!("packet from {remote}: {e}; message dropped"));
                return;
            }
        };
        let (Some(sa), Some(ke), Some(ni)) = (
            sa_of(&msg.payloads),
            ke_of(&msg.payloads),
            nonce_of(&msg.payloads),
        ) else {
            self.log(format!(
                "packet from {remote}: IKE_SA_INIT request without SA, KE or Ni payload; dropped"
            ));
            return;
        };
        // Under load, no state without a COOKIE proving the peer receives at its address
        // (RFC 7296 2.6): the cookie is a MAC of its nonce, address and SPI under our secret.
        let half_open = self
            .sas
            .half_open_ikes()
            .filter(|s| s.exchange.v2().is_some())
            .count();
        if half_open >= self.cfg.cookie_threshold {
            let want = self.v2_cookie(ni, remote, &hdr.spi_i.0);
            let got = match msg.payloads.first() {
                Some(Payload::Notify(n)) if n.notify_type == NotifyType::Cookie => Some(&n.data),
                _ => None,
            };
            if got.is_none_or(|g| !crate::pluto::crypto::ct_eq(g, &want)) {
                self.log(format!(
                    "packet from {remote}: {half_open} half-open IKE SAs: IKE_SA_INIT without a valid COOKIE; sending COOKIE"
                ));
                if let Ok(n) = NotifyPayload::cookie(want) {
                    self.v2_init_notify(local, remote, hdr, n);
                }
                return;
            }
        }
        let me = local.ip();
        let peer = remote.ip();
        let accepts = |c: &crate::pluto::Connection| {
            c.negotiates() && c.ike_policy.accepts(IkeVersion::V2) && c.this.host == Some(me)
        };
        // The conns for this peer address first, then the templates, each in key order (only
        // the first candidate's name is kept for the logs).
        let mut first = None;
        let mut chosen = None;
        let mut wrong_group = None;
        let ke_group = ke.group.value();
        self.conns.until_peer_host_then_templates(peer, |key, c| {
            if !accepts(c) {
                return false;
            }
            if first.is_none() {
                first = Some(key.to_string());
            }
            match v2p::choose_ike(sa, &ike_suites(c), ke_group) {
                IkeChoice::Chosen(a, n) => {
                    chosen = Some((key.to_string(), a, n));
                    true
                }
                IkeChoice::WrongGroup(g) => {
                    wrong_group.get_or_insert(g);
                    false
                }
                IkeChoice::None => false,
            }
        });
        let Some(first) = first else {
            self.log(format!(
                "packet from {remote}: IKEv2 IKE_SA_INIT received on {me}:{} but no connection has been authorized",
                local.port()
            ));
            return;
        };
        let Some((key, alg, number)) = chosen else {
            let q = self.conn_quoted(&first);
            if let Some(g) = wrong_group {
                self.log(format!(
                    "{q}: IKE_SA_INIT from {remote}: KE payload of group {} but {} wanted; sending INVALID_KE_PAYLOAD",
                    ke.group,
                    g.name()
                ));
                self.v2_init_notify(
                    local,
                    remote,
                    hdr,
                    NotifyPayload::invalid_ke_payload(wire::DhGroup::from(g.id())),
                );
            } else {
                self.log(format!(
                    "{q}: IKE_SA_INIT from {remote}: no acceptable proposal among {}; sending NO_PROPOSAL_CHOSEN",
                    v2p::describe(sa)
                ));
                self.v2_init_notify(
                    local,
                    remote,
                    hdr,
                    NotifyPayload::new(NotifyType::NoProposalChosen, Vec::new()),
                );
            }
            return;
        };
        let template = self.conns.get(&key).is_some_and(|c| c.is_template());
        if !self.admit_half_open(remote, !template) {
            return;
        }
        let dh = DhKeyPair::generate(alg.group, &mut self.rng());
        let gir = match dh.compute_shared(&ke.data) {
            Ok(g) => g,
            Err(e) => {
                self.log(format!(
                    "packet from {remote}: IKE_SA_INIT KE payload refused: {e}; dropped"
                ));
                return;
            }
        };
        let nr = self.random_bytes(NONCE_LEN);
        let spi_r = self.ike_spi();
        let algs = IkeSaAlgs {
            prf: alg.prf,
            enc: alg.enc,
            integ: alg.integ,
        };
        let keys =
            match IkeSaKeys::from_exchange(algs, ni, &nr, gir.as_bytes(), &hdr.spi_i.0, &spi_r) {
                Ok(k) => k,
                Err(e) => {
                    self.log(format!("packet from {remote}: IKE SA keys: {e}"));
                    return;
                }
            };
        let (sk_out, sk_in) = match self.v2_ciphers(&keys, false) {
            Ok(x) => x,
            Err(e) => {
                self.log(format!("packet from {remote}: IKE SA ciphers: {e}"));
                return;
            }
        };
        let mut payloads = vec![
            Payload::Sa(v2p::ike_sa_answer(&alg, number, None)),
            Payload::Ke(KePayload {
                group: wire::DhGroup::from(alg.group.id()),
                data: dh.public_value().to_vec(),
            }),
            Payload::Nonce(nr.clone()),
            hash_algorithms_notify(),
        ];
        let peer_fragments =
            wire::find_notify(&msg.payloads, NotifyType::Ikev2FragmentationSupported).is_some();
        if peer_fragments {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::Ikev2FragmentationSupported,
                Vec::new(),
            )));
        }
        let peer_nat_d = self.cfg.nat_traversal
            && wire::find_notify(&msg.payloads, NotifyType::NatDetectionSourceIp).is_some();
        if peer_nat_d {
            let force = self.conns.get(&key).is_some_and(|c| c.forceencaps);
            let src = if force {
                self.random_bytes(20)
            } else {
                nat_hash(&hdr.spi_i.0, &spi_r, local)
            };
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::NatDetectionSourceIp,
                src,
            )));
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::NatDetectionDestinationIp,
                nat_hash(&hdr.spi_i.0, &spi_r, remote),
            )));
        }
        let answer = wire::Message {
            header: Header {
                spi_i: hdr.spi_i,
                spi_r: IkeSpi(spi_r),
                next_payload: PayloadType::None,
                exchange_type: ExchangeType::IkeSaInit,
                flags: Flags::RESPONSE,
                message_id: 0,
            },
            payloads,
        };
        let Ok(bytes) = answer.to_bytes() else {
            return;
        };
        let life = self.conns.get(&key).map_or(3600, |c| c.ikelifetime);
        let serial = self.sas.new_serial();
        let mut x = Ikev2Ike::new(V2State::ParentR1);
        x.alg = Some(alg);
        x.ni = ni.to_vec();
        x.nr = nr;
        x.init_i = data.to_vec();
        x.init_r = bytes.clone();
        x.keys = Some(keys);
        x.sk_out = Some(sk_out);
        x.sk_in = Some(sk_in);
        x.peer_next_request = 1;
        x.peer_hashes = peer_hashes(&msg.payloads);
        x.peer_fragments = peer_fragments;
        let mut sa = IkeSa::new(
            serial,
            NewIkeSa {
                conn: key.clone(),
                spi_i: hdr.spi_i.0,
                spi_r,
                initiator: false,
                local,
                remote,
                created: self.now,
                exchange: IkeExchange::V2(Box::new(x)),
            },
        );
        sa.life = life;
        sa.template = template;
        sa.liveness.peer_supports = true;
        sa.rtx.last_recv = data.to_vec();
        sa.nat.floated = local.port() == NAT_T_PORT;
        self.sas.insert_ike(sa);
        if peer_nat_d {
            // The request's hashes were made with a zero responder SPI.
            self.v2_read_nat_d(serial, [0; 8], &msg.payloads);
        }
        self.slog(
            serial,
            format!(
                "responding to IKE_SA_INIT from {remote} with {}",
                alg.name()
            ),
        );
        self.log_transition(serial, "");
        self.send_for(serial, local, remote, bytes);
        self.schedule(serial, HALF_OPEN_TIMEOUT_MS, TimerKind::SoDiscard);
    }

    /// Our COOKIE for an IKE_SA_INIT request: HMAC-SHA-256(secret, Ni | IPi | port | SPIi),
    /// 16 octets.
    fn v2_cookie(&self, ni: &[u8], remote: SocketAddr, spi_i: &[u8; 8]) -> Vec<u8> {
        let mut c = crate::pluto::crypto::Prf::HmacSha256.prf(
            &self.cookie_secret,
            &[
                ni,
                &crate::addr::ip_octets(remote.ip()),
                &remote.port().to_be_bytes(),
                spi_i,
            ],
        );
        c.truncate(16);
        c
    }

    /// The two directions of message protection from an IKE SA's keys (`initiator`: ours).
    fn v2_ciphers(
        &self,
        keys: &IkeSaKeys,
        initiator: bool,
    ) -> Result<(SkCipher, SkCipher), String> {
        let a = keys.algs;
        let i = SkCipher::new(self.provider, a.enc, a.integ, &keys.sk_ei, &keys.sk_ai)
            .map_err(|e| e.to_string())?;
        let r = SkCipher::new(self.provider, a.enc, a.integ, &keys.sk_er, &keys.sk_ar)
            .map_err(|e| e.to_string())?;
        Ok(if initiator { (i, r) } else { (r, i) })
    }

    /// IKE_SA_INIT response arrived.
    fn v2_init_response(&mut self, remote: SocketAddr, hdr: &Header, data: &[u8]) {
        let Some(serial) = self
            .sas
            .by_spi_i(&hdr.spi_i.0)
            .find(|s| s.initiator && s.exchange.v2().is_some_and(|x| x.kind == V2State::ParentI1))
            .map(IkeSa::serial)
        else {
            self.log(format!(
                "packet from {remote}: IKE_SA_INIT response for unknown IKE SA; dropped"
            ));
            return;
        };
        let msg = match wire::parse_message(data) {
            Ok(m) => m,
            Err(e) => {
                self.slog(
                    serial,
                    format!("IKE_SA_INIT response: {e}; message dropped"),
                );
                return;
            }
        };
        if let Err(e) = self.v2_init_response_in(serial, hdr, &msg.payloads, data) {
            self.slog(serial, e);
        }
    }

    fn v2_init_response_in(
        &mut self,
        serial: SerialNo,
        hdr: &Header,
        payloads: &[Payload],
        data: &[u8],
    ) -> Result<(), String> {
        let key = self.sas.conn_of(serial).ok_or("gone")?.to_string();
        if let Some(n) = wire::find_notify(payloads, NotifyType::Cookie) {
            let cookie = n.cookie_data().map_err(|e| e.to_string())?.to_vec();
            self.slog(
                serial,
                "received COOKIE: responder under load; resending IKE_SA_INIT with it".into(),
            );
            return self.v2_restart_init(serial, "COOKIE", |x| x.cookie = Some(cookie));
        }
        if let Some(n) = wire::find_notify(payloads, NotifyType::InvalidKePayload) {
            let g = n
                .dh_group()
                .ok()
                .and_then(|g| DhGroup::from_id(g.value()))
                .ok_or("INVALID_KE_PAYLOAD names an unknown group")?;
            let x = self.v2(serial).ok_or("gone")?;
            if !x.offered.iter().any(|a| a.group == g) {
                return Err(format!(
                    "received INVALID_KE_PAYLOAD asking for {}, which we did not offer; ignored",
                    g.name()
                ));
            }
            self.slog_code(
                serial,
                rc::LOG,
                format!(
                    "received INVALID_KE_PAYLOAD: responder wants {}; resending IKE_SA_INIT",
                    g.name()
                ),
            );
            let dh = DhKeyPair::generate(g, &mut self.rng());
            return self.v2_restart_init(serial, "INVALID_KE_PAYLOAD", move |x| x.dh = Some(dh));
        }
        if let Some(t) = error_notify(payloads) {
            if t == NotifyType::InvalidMajorVersion
                && self.fall_back_to_v1(serial, "IKE_SA_INIT answered with INVALID_MAJOR_VERSION")
            {
                return Ok(());
            }
            self.v2_fail(
                serial,
                &key,
                format!("IKE_SA_INIT response: received {t} notification; giving up"),
            );
            return Ok(());
        }
        let (Some(sa), Some(ke), Some(nr)) = (sa_of(payloads), ke_of(payloads), nonce_of(payloads))
        else {
            return Err("IKE_SA_INIT response without SA, KE or Nr payload; dropped".into());
        };
        if hdr.spi_r.is_zero() {
            return Err("IKE_SA_INIT response with zero responder SPI; dropped".into());
        }
        let x = self.v2(serial).ok_or("gone")?;
        let alg = v2p::ike_answer_of(sa, &x.offered).ok_or_else(|| {
            format!(
                "IKE_SA_INIT response chose a suite we did not offer ({}); dropped",
                v2p::describe(sa)
            )
        })?;
        let dh = x.dh.as_ref().ok_or("no DH")?;
        if dh.group() != alg.group || ke.group.value() != alg.group.id() {
            return Err("IKE_SA_INIT response: KE group differs from the chosen one".into());
        }
        let gir = dh
            .compute_shared(&ke.data)
            .map_err(|e| format!("IKE_SA_INIT response: KE payload refused: {e}"))?;
        let algs = IkeSaAlgs {
            prf: alg.prf,
            enc: alg.enc,
            integ: alg.integ,
        };
        let spi_i = self.sas.ike(serial).ok_or("gone")?.spi_i();
        let keys = IkeSaKeys::from_exchange(algs, &x.ni, nr, gir.as_bytes(), &spi_i, &hdr.spi_r.0)
            .map_err(|e| e.to_string())?;
        let (sk_out, sk_in) = self.v2_ciphers(&keys, true)?;
        if let Some(s) = self.sas.ike_mut(serial) {
            s.spi_r = hdr.spi_r.0;
            s.rtx.last_recv = data.to_vec();
        }
        self.v2_read_nat_d(serial, hdr.spi_r.0, payloads);
        if let Some(s) = self.sas.ike_mut(serial) {
            if s.nat.encapsulate() && !s.nat.floated {
                // RFC 7296 2.23: with a NAT, the initiator moves to port 4500 at once.
                s.local.set_port(NAT_T_PORT);
                s.remote.set_port(NAT_T_PORT);
                s.nat.floated = true;
            }
        }
        if let Some(x) = self.v2_mut(serial) {
            x.alg = Some(alg);
            x.nr = nr.to_vec();
            x.init_r = data.to_vec();
            x.peer_hashes = peer_hashes(payloads);
            x.peer_fragments =
                wire::find_notify(payloads, NotifyType::Ikev2FragmentationSupported).is_some();
            x.dh = None;
            x.keys = Some(keys);
            x.sk_out = Some(sk_out);
            x.sk_in = Some(sk_in);
        }
        self.v2_send_auth(serial, &key)
    }

    /// Restarts IKE_SA_INIT after a COOKIE or INVALID_KE_PAYLOAD, with `change` applied.
    fn v2_restart_init(
        &mut self,
        serial: SerialNo,
        why: &str,
        change: impl FnOnce(&mut Ikev2Ike),
    ) -> Result<(), String> {
        let x = self.v2_mut(serial).ok_or("gone")?;
        if x.init_retries >= MAX_INIT_RETRIES {
            return Err(format!("too many IKE_SA_INIT restarts ({why}); ignored"));
        }
        x.init_retries += 1;
        change(x);
        self.v2_send_init(serial);
        Ok(())
    }

    /// Gives up IKE SA `serial` of conn `key` for good (a refusal by the peer): log, release
    /// whack, failure shunt.
    fn v2_fail(&mut self, serial: SerialNo, key: &str, why: String) {
        self.slog_code(serial, rc::NORETRANSMISSION, why);
        self.release_whack(serial, whack_status(rc::NORETRANSMISSION));
        let children: Vec<SerialNo> = self
            .sas
            .children_of(serial)
            .filter(|c| !c.established)
            .map(|c| c.serial())
            .collect();
        for c in children {
            self.release_whack(c, whack_status(rc::NORETRANSMISSION));
        }
        let initiator = self.sas.ike(serial).is_some_and(|s| s.initiator);
        self.delete_sa(serial, false);
        if initiator {
            self.negotiation_failed(key);
        }
        self.instance_gc(key);
    }

    // -----------------------------------------------------------------------------------
    // IKE_AUTH.

    /// Our AUTH payload over `octets` with method `kind`: a PSK MAC (method 2), or an RSA
    /// signature — RFC 7427 Digital Signature with sha256WithRSAEncryption when the peer
    /// announced SHA2-256 in SIGNATURE_HASH_ALGORITHMS, else method 1 (PKCS#1 v1.5, SHA-1).
    fn v2_our_auth(
        &mut self,
        serial: SerialNo,
        key: &str,
        kind: AuthKind,
        peer: Option<&Id>,
        prf_octets: (crate::pluto::crypto::Prf, Vec<u8>),
    ) -> Result<Payload, String> {
        let (prf, octets) = prf_octets;
        match kind {
            AuthKind::Psk => {
                let psk = self
                    .psk_for(key, peer)
                    .ok_or_else(|| "no pre-shared key for this connection".to_string())?;
                Ok(Payload::Auth(AuthPayload {
                    method: AuthMethod::SharedKeyMic,
                    data: psk_auth(prf, &psk, &octets),
                }))
            }
            AuthKind::Rsa => {
                let k = self
                    .rsa_key_for(key)
                    .ok_or_else(|| "no RSA private key for this connection".to_string())?;
                let rfc7427 = self.v2(serial).is_some_and(|x| {
                    x.peer_hashes
                        .contains(&wire::HashAlgorithm::Sha2_256.value())
                });
                let scheme = if rfc7427 {
                    SignatureScheme::Pkcs1Sha256
                } else {
                    SignatureScheme::Pkcs1Sha1Method1
                };
                let sig = k
                    .sign_ikev2(&mut self.rng(), scheme, &octets)
                    .map_err(|e| format!("cannot sign: {e}"))?;
                let payload = match crate::pluto::crypto::ikev2::auth::wire_scheme(scheme) {
                    Some(w) => AuthPayload::digital_signature(w, sig).map_err(|e| e.to_string())?,
                    None => AuthPayload {
                        method: AuthMethod::RsaSig,
                        data: sig,
                    },
                };
                Ok(Payload::Auth(payload))
            }
        }
    }

    /// Checks the peer's AUTH payload over `octets` against conn `key`'s credentials for
    /// peer `pid`; the method it used.
    fn v2_verify_auth(
        &mut self,
        key: &str,
        pid: &Id,
        auth: &AuthPayload,
        prf: crate::pluto::crypto::Prf,
        octets: &[u8],
    ) -> Result<AuthKind, String> {
        let kind = auth_kind(auth.method).ok_or_else(|| {
            format!(
                "peer authenticates with {}, which we do not support",
                auth.method
            )
        })?;
        let c = self.conns.get(key).ok_or("connection gone")?;
        if !c.auth.contains(&kind) {
            return Err(format!(
                "peer authenticates with {}, which authby= of this connection does not allow",
                auth.method
            ));
        }
        match kind {
            AuthKind::Psk => match self.psk_for(key, Some(pid)) {
                Some(psk) if verify_psk_auth(prf, &psk, octets, &auth.data).is_ok() => Ok(kind),
                Some(_) => Err(format!("AUTHENTICATION_FAILED: peer '{pid}' sent an AUTH payload that does not match our PSK (mismatch of preshared secrets?)")),
                None => Err(format!("AUTHENTICATION_FAILED: no pre-shared key for peer '{pid}'")),
            },
            AuthKind::Rsa => {
                let pk = c
                    .that
                    .rsakey
                    .clone()
                    .ok_or_else(|| format!("AUTHENTICATION_FAILED: no RSA public key for peer '{pid}'"))?;
                let (scheme, sig) = if auth.method == AuthMethod::RsaSig {
                    (SignatureScheme::Pkcs1Sha1Method1, auth.data.clone())
                } else {
                    let sa = auth.signature_auth().map_err(|e| e.to_string())?;
                    let w = sa.scheme().ok_or("AUTH payload with an unsupported signature algorithm")?;
                    (SignatureScheme::from(w), sa.signature)
                };
                pk.verify_ikev2(scheme, octets, &sig).map_err(|_| {
                    format!(
                        "AUTHENTICATION_FAILED: signature check (on {pid}) failed (wrong key?); tried *{}",
                        pk.key_id()
                    )
                })?;
                Ok(kind)
            }
        }
    }

    /// Sends IKE_AUTH with the pending child SA.
    fn v2_send_auth(&mut self, serial: SerialNo, key: &str) -> Result<(), String> {
        let c = self.conns.get(key).ok_or("connection gone")?;
        let idi = identification(&c.this.id, c.this.host);
        let idr = c
            .that
            .id_explicit
            .then(|| identification(&c.that.id, c.that.host));
        let (our_client, peer_client, tunnel) = (c.this.client, c.that.client, c.tunnel());
        let esp = esp_suites(c);
        let x = self.v2(serial).ok_or("gone")?;
        let keys = x.keys.as_ref().ok_or("no keys")?;
        let prf = keys.algs.prf;
        let octets = signed_octets(
            prf,
            &x.init_i,
            &x.nr,
            &keys.sk_pi,
            &idi.body_bytes().map_err(|e| e.to_string())?,
        );
        let kind = self
            .conns
            .get(key)
            .and_then(|c| c.auth.first().copied())
            .ok_or("authby=never")?;
        let auth = self.v2_our_auth(serial, key, kind, None, (prf, octets))?;
        let spi = self.spis.spi();
        let tun = tunnel.then(|| (self.spis.tun_spi(), self.spis.tun_spi()));
        let mut payloads = vec![Payload::IdI(idi)];
        // INITIAL_CONTACT (RFC 7296 2.4) only when we have no other IKE SA with the peer: a
        // reauthentication must not make it drop the IKE SA being replaced.
        let remote = self.sas.ike(serial).map(|s| s.remote.ip());
        let first_contact = !self.sas.ikes().any(|o| {
            o.serial() != serial
                && o.established
                && o.exchange.v2().is_some()
                && Some(o.remote.ip()) == remote
        });
        if first_contact {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::InitialContact,
                Vec::new(),
            )));
        }
        if let Some(r) = idr {
            payloads.push(Payload::IdR(r));
        }
        payloads.push(auth);
        if !tunnel {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::UseTransportMode,
                Vec::new(),
            )));
        }
        payloads.push(Payload::Sa(v2p::esp_sa_payload(&esp, spi, None)));
        payloads.push(Payload::TsI(TsPayload::new([selector(&our_client)])));
        payloads.push(Payload::TsR(TsPayload::new([selector(&peer_client)])));
        // The whack client follows the IKE SA until it is established, then the child SA.
        let pending = self
            .sas
            .ike_mut(serial)
            .and_then(|s| s.pending_child.take());
        if let Some(s) = self.sas.ike_mut(serial) {
            s.whack = s.whack.or(pending.and_then(|p| p.whack));
        }
        let mut cx = Ikev2Child::new(V2State::IkeAuthChildI0);
        cx.offered = esp;
        cx.tun = tun;
        let child = self.v2_new_child(serial, key, true, spi, (our_client, peer_client), cx);
        if let Some(c) = self.sas.child_mut(child) {
            c.replacing = pending.and_then(|p| p.replacing);
        }
        self.v2_request(serial, ExchangeType::IkeAuth, &payloads, true)?;
        self.v2_advance(serial, V2State::ParentI2, "");
        Ok(())
    }

    /// The responder's conn for the peer's authenticated-to-be ID (may switch from the conn
    /// IKE_SA_INIT picked, as Pluto's refinement does).
    fn v2_refine(&mut self, serial: SerialNo, peer: &Id, kind: AuthKind) -> Option<String> {
        let s = self.sas.ike(serial)?;
        let key = s.conn().to_string();
        let (me, addr) = (s.local.ip(), s.remote.ip());
        let fits = |c: &crate::pluto::Connection| {
            (c.that.id == Id::Any || c.that.id == *peer)
                && c.auth.contains(&kind)
                && (kind == AuthKind::Psk || c.that.rsakey.is_some())
        };
        if self.conns.get(&key).is_some_and(fits) {
            return Some(key);
        }
        // Only conns whose peer ID is the peer's or %any can fit: the index gives those in key
        // order, the first that fits wins as in a scan of all conns.
        let cand = self
            .conns
            .with_peer_id_or_any(peer)
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| {
                c.negotiates()
                    && c.ike_policy.accepts(IkeVersion::V2)
                    && c.instance == 0
                    && c.this.host == Some(me)
                    && (c.that.host == Some(addr) || c.is_template())
                    && fits(c)
            })
            .map(|c| c.key())
            .next()?;
        let from = self.conn_quoted(&key);
        let to = self.conn_quoted(&cand);
        let tmpl = self.conns.get(&cand).is_some_and(|c| c.is_template());
        self.sas.set_conn(serial, &cand);
        if let Some(s) = self.sas.ike_mut(serial) {
            s.template = tmpl;
        }
        self.slog(serial, format!("switched from {from} to {to}"));
        Some(cand)
    }

    /// IKE_AUTH request arrived (responder): authenticate, answer, IKE SA and child SA up.
    fn v2_auth_request(
        &mut self,
        serial: SerialNo,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<(), String> {
        let idi = payloads
            .iter()
            .find_map(|p| match p {
                Payload::IdI(i) => Some(i),
                _ => None,
            })
            .ok_or("IKE_AUTH request without IDi; dropped")?;
        let auth = payloads
            .iter()
            .find_map(|p| match p {
                Payload::Auth(a) => Some(a),
                _ => None,
            })
            .ok_or("IKE_AUTH request without AUTH; dropped")?;
        let pid = peer_id(idi)?;
        let fail = |p: &mut Pluto, why: String| -> Result<(), String> {
            p.slog_code(
                serial,
                rc::LOG,
                format!("{why}; sending AUTHENTICATION_FAILED"),
            );
            let n = Payload::Notify(NotifyPayload::new(
                NotifyType::AuthenticationFailed,
                Vec::new(),
            ));
            let _ = p.v2_respond(serial, ExchangeType::IkeAuth, msgid, &[n]);
            p.delete_sa(serial, false);
            Ok(())
        };
        let Some(kind) = auth_kind(auth.method) else {
            return fail(
                self,
                format!(
                    "peer authenticates with {}, which we do not support",
                    auth.method
                ),
            );
        };
        let Some(key) = self.v2_refine(serial, &pid, kind) else {
            return fail(self, format!("no suitable connection for peer '{pid}'"));
        };
        let x = self.v2(serial).ok_or("gone")?;
        let keys = x.keys.as_ref().ok_or("no keys")?;
        let prf = keys.algs.prf;
        let octets = signed_octets(
            prf,
            &x.init_i,
            &x.nr,
            &keys.sk_pi,
            &idi.body_bytes().map_err(|e| e.to_string())?,
        );
        if let Err(why) = self.v2_verify_auth(&key, &pid, auth, prf, &octets) {
            return fail(self, why);
        }
        // Authenticated: what follows is not rate-limited.
        self.unauth = None;
        let remote = self.sas.ike(serial).ok_or("gone")?.remote;
        let key = self
            .instance_for_peer(serial, key, remote.ip(), &pid)
            .ok_or("connection gone")?;
        if let Some(s) = self.sas.ike_mut(serial) {
            s.peer_id = Some(pid.clone());
            s.auth = Some(kind);
        }
        // Our AUTH.
        let c = self.conns.get(&key).ok_or("connection gone")?;
        let idr = identification(&c.this.id, c.this.host);
        let x = self.v2(serial).ok_or("gone")?;
        let keys = x.keys.as_ref().ok_or("no keys")?;
        let octets = signed_octets(
            prf,
            &x.init_r,
            &x.ni,
            &keys.sk_pr,
            &idr.body_bytes().map_err(|e| e.to_string())?,
        );
        // We answer with the peer's method when our conn allows it, else our first one.
        let ours = self
            .conns
            .get(&key)
            .map(|c| {
                if c.auth.contains(&kind) {
                    kind
                } else {
                    c.auth.first().copied().unwrap_or(kind)
                }
            })
            .unwrap_or(kind);
        let our_auth = self.v2_our_auth(serial, &key, ours, Some(&pid), (prf, octets))?;
        let mut answer = vec![Payload::IdR(idr), our_auth];
        // INITIAL_CONTACT (RFC 7296 2.4): the peer has no other IKE SA with us; ours with its
        // identity are stale (it restarted).
        if wire::find_notify(payloads, NotifyType::InitialContact).is_some() {
            let mut stale = self.sas.ikes_with_peer_id(&pid);
            stale.retain(|s| {
                *s != serial && self.sas.ike(*s).is_some_and(|o| o.exchange.v2().is_some())
            });
            for s in stale {
                self.slog(
                    s,
                    format!("deleting: peer '{pid}' sent INITIAL_CONTACT in #{serial}"),
                );
                let children: Vec<SerialNo> = self.sas.children_of(s).map(|c| c.serial()).collect();
                for ch in children {
                    self.delete_sa(ch, false);
                }
                self.delete_sa(s, false);
            }
        }
        // The child SA.
        let child = self.v2_child_responder(serial, &key, payloads, None, &mut answer);
        self.v2_respond(serial, ExchangeType::IkeAuth, msgid, &answer)?;
        self.sas
            .timers
            .clear(serial, crate::pluto::timers::TimerSlot::Event);
        self.v2_advance(serial, V2State::EstablishedIke, "");
        self.ike_established(serial, &key, &pid);
        self.bound_isakmp_sas_per_peer(serial);
        if let Some(ch) = child {
            self.v2_child_up(ch);
        }
        Ok(())
    }

    /// The responder's half of a child SA negotiation (IKE_AUTH or CREATE_CHILD_SA): choose
    /// the ESP suite and traffic selectors, create and install the child SA, and append the
    /// answer's payloads; on refusal append the notification instead. `pfs`: the exchange's
    /// nonces and KE when CREATE_CHILD_SA.
    fn v2_child_responder(
        &mut self,
        ike: SerialNo,
        key: &str,
        payloads: &[Payload],
        ccsa: Option<CcsaKeying<'_>>,
        answer: &mut Vec<Payload>,
    ) -> Option<SerialNo> {
        let refuse = |p: &mut Pluto, answer: &mut Vec<Payload>, t: NotifyType, why: String| {
            p.slog(ike, format!("child SA refused: {why}; sending {t}"));
            answer.push(Payload::Notify(NotifyPayload::new(t, Vec::new())));
            None
        };
        let (Some(sa), (Some(tsi), Some(tsr))) = (sa_of(payloads), payload_ts(payloads)) else {
            return refuse(
                self,
                answer,
                NotifyType::InvalidSyntax,
                "no SA, TSi or TSr payload".into(),
            );
        };
        let c = self.conns.get(key)?;
        let transport_asked = wire::find_notify(payloads, NotifyType::UseTransportMode).is_some();
        if transport_asked == c.tunnel() {
            let t = if c.tunnel() { "transport" } else { "tunnel" };
            return refuse(
                self,
                answer,
                NotifyType::NoProposalChosen,
                format!("peer asks for {t} mode"),
            );
        }
        let (our_client, mut peer_client, tunnel) = (c.this.client, c.that.client, c.tunnel());
        let (esp, life) = (esp_suites(c), c.keylife);
        // A Road Warrior's instance: a peer behind a NAT may claim its private address as
        // its client (virtual_private=), as in IKEv1's Quick Mode.
        if c.instance != 0 && !c.that.has_client {
            let claim = tsi.addr_selectors().find_map(|a| match a.addresses {
                AddressRange::V4 { start, end } if start == end => Some(Subnet::host(start)),
                AddressRange::V6 { start, end } if start == end => Some(Subnet::host(start)),
                _ => None,
            });
            let s = self.sas.ike(ike)?;
            let (peer, nat) = (s.remote.ip(), s.nat.peer_behind);
            let pid = s.peer_id.clone().unwrap_or(Id::Any);
            let c = self.conns.get(key)?;
            if let Some(claim) = claim.filter(|cl| {
                *cl != peer_client
                    && crate::pluto::peer_policy::claim_allowed(
                        c,
                        peer,
                        nat,
                        cl,
                        &self.cfg.virtual_private,
                    )
                    && self.claim_conflict(key, peer, &pid, cl).is_none()
            }) {
                peer_client = claim;
                if let Some(c) = self.conns.get_mut(key) {
                    c.that.client = claim;
                }
            }
        }
        // RFC 7296 2.9: what both the request and our policy allow — our subnets when the
        // request covers them, else the request's narrower subnet inside ours.
        let within = |ts: &TsPayload, ours: &Subnet| {
            if covers(ts, ours) {
                Some(*ours)
            } else {
                narrowed(ts, ours)
            }
        };
        let (Some(p), Some(o)) = (within(tsi, &peer_client), within(tsr, &our_client)) else {
            return refuse(
                self,
                answer,
                NotifyType::TsUnacceptable,
                format!("traffic selectors do not cover {peer_client}==={our_client}"),
            );
        };
        if (p, o) != (peer_client, our_client) {
            self.slog(
                ike,
                format!("narrowed the traffic selectors to the peer's {o}==={p} (policy {our_client}==={peer_client})"),
            );
        }
        let (our_client, peer_client) = (o, p);
        let pfs = ccsa.as_ref().and_then(|x| x.pfs);
        let Some((alg, number, peer_spi)) = v2p::choose_esp(sa, &esp, pfs) else {
            return refuse(
                self,
                answer,
                NotifyType::NoProposalChosen,
                format!("no acceptable ESP proposal among {}", v2p::describe(sa)),
            );
        };
        let spi = self.spis.spi();
        let tun = tunnel.then(|| (self.spis.tun_spi(), self.spis.tun_spi()));
        let mut cx = Ikev2Child::new(V2State::EstablishedChild);
        cx.alg = Some(alg);
        cx.tun = tun;
        let serial = self.v2_new_child(ike, key, false, spi, (our_client, peer_client), cx);
        // Keys: the IKE_SA_INIT nonces, or CREATE_CHILD_SA's (initiator's first).
        let x = self.v2(ike)?;
        let (ni, nr, gir) = match &ccsa {
            Some(k) => (k.ni.to_vec(), k.nr.to_vec(), k.gir.clone()),
            None => (x.ni.clone(), x.nr.clone(), None),
        };
        let n = self.v2_negotiated(
            ike,
            serial,
            alg,
            spi,
            peer_spi,
            false,
            &ni,
            &nr,
            gir.as_deref(),
            tun,
            life,
        );
        match n {
            Some(n) => self.set_negotiated(serial, n),
            None => {
                self.delete_sa(serial, false);
                return refuse(
                    self,
                    answer,
                    NotifyType::NoProposalChosen,
                    "child SA keys could not be derived".into(),
                );
            }
        }
        if !tunnel {
            answer.push(Payload::Notify(NotifyPayload::new(
                NotifyType::UseTransportMode,
                Vec::new(),
            )));
        }
        answer.push(Payload::Sa(v2p::esp_sa_answer(&alg, number, spi, pfs)));
        if let Some(k) = &ccsa {
            answer.push(Payload::Nonce(k.nr.to_vec()));
        }
        answer.push(Payload::TsI(TsPayload::new([selector(&peer_client)])));
        answer.push(Payload::TsR(TsPayload::new([selector(&our_client)])));
        Some(serial)
    }

    /// The conn a CREATE_CHILD_SA request on IKE SA `ike` (of conn `key`) is for: `key` if
    /// its mode and clients fit the request, else another conn between the same hosts with
    /// the same IDs that fits (a conn may negotiate its child SAs over another conn's IKE SA,
    /// as FreeS/WAN's `find_phase1_state` allows).
    fn v2_child_conn(&self, ike: SerialNo, key: &str, payloads: &[Payload]) -> String {
        let (Some(s), (Some(tsi), Some(tsr))) = (self.sas.ike(ike), payload_ts(payloads)) else {
            return key.to_string();
        };
        let transport = wire::find_notify(payloads, NotifyType::UseTransportMode).is_some();
        let fits = |c: &crate::pluto::Connection| {
            c.tunnel() != transport && covers(tsi, &c.that.client) && covers(tsr, &c.this.client)
        };
        if self
            .conns
            .get(key)
            .is_none_or(|c| c.instance != 0 || fits(c))
        {
            return key.to_string();
        }
        let Some(own) = self.conns.get(key) else {
            return key.to_string();
        };
        self.conns
            .with_peer_host(s.remote.ip())
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| {
                c.negotiates()
                    && c.ike_policy.accepts(IkeVersion::V2)
                    && c.instance == 0
                    && c.this.host == Some(s.local.ip())
                    && c.that.host == Some(s.remote.ip())
                    && c.this.id == own.this.id
                    && c.that.id == own.that.id
                    && s.auth.is_some_and(|a| c.auth.contains(&a))
                    && fits(c)
            })
            .map_or_else(|| key.to_string(), |c| c.key())
    }

    /// What a child SA negotiated, with its keys (RFC 7296 2.17): `initiator` of the
    /// exchange that created it.
    #[allow(clippy::too_many_arguments)]
    fn v2_negotiated(
        &self,
        ike: SerialNo,
        child: SerialNo,
        alg: EspAlg,
        spi_in: u32,
        spi_out: u32,
        initiator: bool,
        ni: &[u8],
        nr: &[u8],
        gir: Option<&[u8]>,
        tun: Option<(u32, u32)>,
        life: u64,
    ) -> Option<NegotiatedChild> {
        let s = self.sas.ike(ike)?;
        let keys = s.exchange.v2()?.keys.as_ref()?;
        let c = self.sas.child(child)?;
        let k = keys
            .child_keys(ChildAlgs::esp(alg.enc, alg.auth), gir, ni, nr)
            .ok()?;
        let dir = |d: &crate::pluto::crypto::ikev2::ChildDirKeys| EspKeys {
            enc: KeyBytes(d.enc.to_vec()),
            integ: KeyBytes(d.integ.to_vec()),
        };
        let mode = match tun {
            Some((tun_in, tun_out)) => ChildMode::Tunnel { tun_in, tun_out },
            None => ChildMode::Transport,
        };
        Some(NegotiatedChild {
            local: s.local.ip(),
            remote: s.remote.ip(),
            our_client: c.our_client,
            peer_client: c.peer_client,
            mode,
            esp: Some(NegotiatedEsp {
                enc: alg.enc,
                integ: alg.auth,
                spi_in,
                spi_out,
                keys_in: dir(k.inbound(initiator)),
                keys_out: dir(k.outbound(initiator)),
            }),
            ah: None,
            ipcomp: None,
            encap_port: s.nat.encapsulate().then_some(s.remote.port()),
            life,
        })
    }

    /// A new child SA record of conn `key` under IKE SA `ike` — IKE_AUTH's or
    /// CREATE_CHILD_SA's, as initiator or responder — receiving ESP on our SPI `spi`, for
    /// `clients` (ours, the peer's), in exchange state `cx`.
    fn v2_new_child(
        &mut self,
        ike: SerialNo,
        key: &str,
        initiator: bool,
        spi: u32,
        clients: (Subnet, Subnet),
        cx: Ikev2Child,
    ) -> SerialNo {
        let serial = self.sas.new_serial();
        self.sas.insert_child(ChildSa::new(
            serial,
            NewChildSa {
                conn: key.to_string(),
                parent: ike,
                initiator,
                our: Spis {
                    esp: Some(spi),
                    ..Spis::default()
                },
                our_client: clients.0,
                peer_client: clients.1,
                created: self.now,
                exchange: ChildExchange::V2(Box::new(cx)),
            },
        ));
        serial
    }

    /// Child SA `serial` is negotiated: install both directions, route, time, report.
    fn v2_child_up(&mut self, serial: SerialNo) {
        let parent = self.sas.child(serial).map_or(serial, |c| c.parent());
        if !self.install_child(serial, true, true) {
            self.delete_sa(serial, false);
            return;
        }
        self.route_to_child(serial);
        if let Some(c) = self.sas.child_mut(serial) {
            c.established = true;
            if let Some(x) = c.exchange.v2_mut() {
                x.kind = V2State::EstablishedChild;
            }
        }
        let extra = self
            .sas
            .child(serial)
            .and_then(|c| c.negotiated.as_ref())
            .map(|n| n.summary())
            .unwrap_or_default();
        self.log_transition(serial, &extra);
        self.child_established(serial);
        self.release_whack(serial, 0);
        // RFC 7296 2.8: once the new child SA is up, its initiator deletes the one it
        // replaces (make-before-break: the new SAs carry the traffic already).
        let replaced = self
            .sas
            .child(serial)
            .filter(|c| c.initiator)
            .and_then(|c| c.replacing)
            .filter(|&old| old != serial);
        if let Some(old) = replaced {
            // RFC 7296 2.8.1: the peer rekeyed the same child SA too, and we answered its
            // request (before ours was answered, or — ours retransmitted — after the peer
            // already deleted the old SA). Of the two new SAs, the one whose exchange has the
            // lowest of the four nonces goes; its initiator deletes it (the peer decides the
            // same way, with the same nonces).
            let ours = self
                .sas
                .child(serial)
                .and_then(|c| c.exchange.v2())
                .and_then(|x| x.exchange_nonces.clone());
            let theirs = self
                .sas
                .children()
                .filter(|c| {
                    c.serial() != serial
                        && !c.initiator
                        && c.established
                        && c.replacing == Some(old)
                })
                .find_map(|c| {
                    c.exchange
                        .v2()
                        .and_then(|x| x.exchange_nonces.clone())
                        .map(|n| (c.serial(), n))
                });
            if let (Some((oi, or)), Some((other, (ti, tr)))) = (ours, theirs) {
                let lowest_ours = oi.min(or) < ti.min(tr);
                let loser = if lowest_ours { serial } else { other };
                self.slog(
                    serial,
                    format!(
                        "rekey collision with #{other} over #{old}: #{loser} has the lowest nonce{}",
                        if lowest_ours { "; deleting it" } else { "; the peer deletes it" }
                    ),
                );
                if lowest_ours {
                    self.delete_sa(serial, true);
                }
            }
            if self.sas.child(old).is_some() {
                self.slog(old, format!("replaced by #{serial}: deleting"));
                self.delete_sa(old, true);
            }
            self.v2_reauth_finish(parent);
        }
    }

    /// IKE_AUTH response arrived (initiator).
    fn v2_auth_response(&mut self, serial: SerialNo, payloads: &[Payload]) -> Result<(), String> {
        let key = self.sas.conn_of(serial).ok_or("gone")?.to_string();
        self.sas
            .timers
            .clear(serial, crate::pluto::timers::TimerSlot::Event);
        let auth = payloads.iter().find_map(|p| match p {
            Payload::Auth(a) => Some(a),
            _ => None,
        });
        let idr = payloads.iter().find_map(|p| match p {
            Payload::IdR(i) => Some(i),
            _ => None,
        });
        let (Some(auth), Some(idr)) = (auth, idr) else {
            let why = match error_notify(payloads) {
                Some(t) => format!("IKE_AUTH response: received {t} notification"),
                None => "IKE_AUTH response without IDr or AUTH".into(),
            };
            self.v2_fail(serial, &key, why);
            return Ok(());
        };
        let pid = peer_id(idr)?;
        let want = self
            .conns
            .get(&key)
            .map(|c| c.that.id.clone())
            .ok_or("gone")?;
        if want != Id::Any && want != pid {
            self.v2_fail(
                serial,
                &key,
                format!("we require peer to have ID '{want}', but peer declares '{pid}'"),
            );
            return Ok(());
        }
        let x = self.v2(serial).ok_or("gone")?;
        let keys = x.keys.as_ref().ok_or("no keys")?;
        let prf = keys.algs.prf;
        let octets = signed_octets(
            prf,
            &x.init_r,
            &x.ni,
            &keys.sk_pr,
            &idr.body_bytes().map_err(|e| e.to_string())?,
        );
        if let Err(why) = self.v2_verify_auth(&key, &pid, auth, prf, &octets) {
            self.v2_fail(serial, &key, format!("responder: {why}"));
            return Ok(());
        }
        if let Some(s) = self.sas.ike_mut(serial) {
            s.peer_id = Some(pid.clone());
        }
        self.v2_advance(serial, V2State::EstablishedIke, "");
        self.ike_established(serial, &key, &pid);
        let child = self
            .sas
            .children_of(serial)
            .find(|c| {
                c.exchange
                    .v2()
                    .is_some_and(|x| x.kind == V2State::IkeAuthChildI0)
            })
            .map(|c| c.serial());
        if let Some(ch) = child {
            let whack = self.sas.ike_mut(serial).and_then(|s| s.whack.take());
            if let Some(c) = self.sas.child_mut(ch) {
                c.whack = whack;
            }
            let (ni, nr) = {
                let x = self.v2(serial).ok_or("gone")?;
                (x.ni.clone(), x.nr.clone())
            };
            self.v2_child_answer(serial, ch, payloads, &ni, &nr, None);
        }
        self.v2_reauth_children(serial);
        Ok(())
    }

    /// Reauthentication (`reauth=yes`): IKE SA `new` is up in place of the IKE SA it
    /// reauthenticates. The child SAs still under the old one are recreated over `new`
    /// (CREATE_CHILD_SA, one at a time); the old IKE SA goes once none is left.
    fn v2_reauth_children(&mut self, new: SerialNo) {
        let Some(old) = self.v2(new).and_then(|x| x.reauth_of) else {
            return;
        };
        let children: Vec<(SerialNo, String)> = self
            .sas
            .children_of(old)
            .filter(|c| c.established)
            .map(|c| (c.serial(), c.conn().to_string()))
            .collect();
        for (child, key) in children {
            self.slog(
                child,
                format!("recreating over #{new} (reauthentication of #{old})"),
            );
            self.v2_child_initiate(new, &key, None, Some(child), 1);
        }
        self.v2_reauth_finish(new);
    }

    /// Deletes the IKE SA that `new` reauthenticates once no child SA is left under it.
    fn v2_reauth_finish(&mut self, new: SerialNo) {
        let Some(old) = self.v2(new).and_then(|x| x.reauth_of) else {
            return;
        };
        if !self.sas.ike(new).is_some_and(|s| s.established)
            || self.sas.children_of(old).next().is_some()
        {
            return;
        }
        if let Some(x) = self.v2_mut(new) {
            x.reauth_of = None;
        }
        if self.sas.ike(old).is_some() {
            self.slog(old, format!("reauthenticated as #{new}: deleting"));
            self.delete_sa(old, true);
        }
    }

    /// The initiator's half of a child SA's answer (IKE_AUTH or CREATE_CHILD_SA response).
    fn v2_child_answer(
        &mut self,
        ike: SerialNo,
        child: SerialNo,
        payloads: &[Payload],
        ni: &[u8],
        nr: &[u8],
        gir: Option<&[u8]>,
    ) {
        let fail = |p: &mut Pluto, why: String| {
            p.slog_code(
                child,
                rc::NORETRANSMISSION,
                format!("child SA failed: {why}"),
            );
            p.release_whack(child, whack_status(rc::NORETRANSMISSION));
            let key = p.sas.conn_of(child).unwrap_or_default().to_string();
            p.delete_sa(child, false);
            p.negotiation_failed(&key);
        };
        if let Some(t) = error_notify(payloads) {
            // RFC 7296 2.25: the peer no longer has the child SA we rekey, so ours goes too.
            // If the peer rekeyed it itself meanwhile (a collision), nothing failed: its child
            // SA replaced it. Else (it deleted it) a fresh child SA takes its place.
            let (replacing, key) = self
                .sas
                .child(child)
                .map(|c| (c.replacing, c.conn().to_string()))
                .unwrap_or_default();
            if let (NotifyType::ChildSaNotFound, Some(old)) = (t, replacing) {
                let replaced = self
                    .sas
                    .children_of_conn(&key)
                    .any(|c| c.established && c.serial() != old && c.serial() != child);
                self.slog(
                    child,
                    format!(
                        "rekey of #{old} answered with {t}: {}",
                        if replaced {
                            "the peer replaced it already; dropping ours"
                        } else {
                            "the peer deleted it; negotiating a new child SA"
                        }
                    ),
                );
                let (whack, try_no) = self
                    .sas
                    .child_mut(child)
                    .map(|c| (c.whack.take(), c.try_no))
                    .unwrap_or_default();
                self.delete_sa(child, false);
                if self.sas.child(old).is_some() {
                    self.delete_sa(old, false);
                }
                if replaced {
                    if let Some(w) = whack {
                        self.whack_done(w, 0);
                    }
                } else {
                    self.v2_child_initiate(ike, &key, whack, None, try_no);
                }
                return;
            }
            return fail(self, format!("received {t} notification"));
        }
        let Some(c) = self.sas.child(child) else {
            return;
        };
        let Some(cx) = c.exchange.v2() else {
            return;
        };
        let (offered, tun, spi_in, key) = (
            cx.offered.clone(),
            cx.tun,
            c.our.esp.unwrap_or(0),
            c.conn().to_string(),
        );
        let pfs_group = cx.dh.as_ref().map(|d| d.group());
        let Some(sa) = sa_of(payloads) else {
            return fail(self, "response without SA payload".into());
        };
        let Some((alg, spi_out)) = v2p::esp_answer_of(sa, &offered, pfs_group) else {
            return fail(
                self,
                format!(
                    "responder chose a suite we did not offer ({})",
                    v2p::describe(sa)
                ),
            );
        };
        let transport = wire::find_notify(payloads, NotifyType::UseTransportMode).is_some();
        if transport != tun.is_none() {
            return fail(self, "responder answered with the other mode".into());
        }
        let (Some(tsi), Some(tsr)) = payload_ts(payloads) else {
            return fail(self, "response without TSi or TSr".into());
        };
        let (our_client, peer_client) = (c.our_client, c.peer_client);
        if !covers(tsi, &our_client) || !covers(tsr, &peer_client) {
            // RFC 7296 2.9: the responder may narrow; we take a narrower pair of subnets
            // inside ours, nothing else.
            match (narrowed(tsi, &our_client), narrowed(tsr, &peer_client)) {
                (Some(o), Some(p)) => {
                    self.slog(
                        child,
                        format!("responder narrowed the traffic selectors to {o}==={p}"),
                    );
                    if let Some(c) = self.sas.child_mut(child) {
                        c.our_client = o;
                        c.peer_client = p;
                    }
                }
                _ => {
                    return fail(
                        self,
                        "responder's traffic selectors are not inside ours (TS_UNACCEPTABLE)"
                            .into(),
                    )
                }
            }
        }
        let life = self.conns.get(&key).map_or(28800, |c| c.keylife);
        if let Some(x) = self.v2_child_mut(child) {
            x.alg = Some(alg);
            x.dh = None;
        }
        match self.v2_negotiated(
            ike, child, alg, spi_in, spi_out, true, ni, nr, gir, tun, life,
        ) {
            Some(n) => self.set_negotiated(child, n),
            None => return fail(self, "child SA keys could not be derived".into()),
        }
        self.v2_child_up(child);
    }

    // -----------------------------------------------------------------------------------
    // CREATE_CHILD_SA.

    /// Starts a child SA for conn `key` over IKE SA `ike` (CREATE_CHILD_SA, RFC 7296 1.3.1;
    /// REKEY_SA when it replaces one, 1.3.3).
    pub(crate) fn v2_child_initiate(
        &mut self,
        ike: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
        try_no: u32,
    ) {
        if self.v2_busy(ike) {
            self.slog(
                ike,
                "CREATE_CHILD_SA waits for the outstanding exchange to finish".into(),
            );
            if let Some(x) = self.v2_mut(ike) {
                x.deferred.push(Deferred::Child {
                    key: key.to_string(),
                    whack,
                    replacing,
                    try_no,
                });
            }
            return;
        }
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let (our_client, peer_client, tunnel) = (c.this.client, c.that.client, c.tunnel());
        let esp = esp_suites(c);
        let pfs = c.pfs.then(|| {
            c.pfsgroup
                .or_else(|| self.v2(ike).and_then(|x| x.alg).map(|a| a.group))
        });
        let pfs = pfs.flatten();
        let spi = self.spis.spi();
        let tun = tunnel.then(|| (self.spis.tun_spi(), self.spis.tun_spi()));
        let nonce = self.random_bytes(NONCE_LEN);
        let dh = pfs.map(|g| DhKeyPair::generate(g, &mut self.rng()));
        let mut payloads = Vec::new();
        // REKEY_SA names a child SA of this IKE SA (a child SA recreated over a
        // reauthenticating IKE SA is a new one to the peer).
        if let Some(old) = replacing
            .and_then(|r| self.sas.child(r))
            .filter(|o| o.parent() == ike)
        {
            if let Some(old_spi) = old.our.esp {
                payloads.push(Payload::Notify(NotifyPayload::child(
                    NotifyType::RekeySa,
                    ProtocolId::Esp,
                    old_spi,
                    Vec::new(),
                )));
            }
        }
        if !tunnel {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::UseTransportMode,
                Vec::new(),
            )));
        }
        payloads.push(Payload::Sa(v2p::esp_sa_payload(&esp, spi, pfs)));
        payloads.push(Payload::Nonce(nonce.clone()));
        if let Some(d) = &dh {
            payloads.push(Payload::Ke(KePayload {
                group: wire::DhGroup::from(d.group().id()),
                data: d.public_value().to_vec(),
            }));
        }
        payloads.push(Payload::TsI(TsPayload::new([selector(&our_client)])));
        payloads.push(Payload::TsR(TsPayload::new([selector(&peer_client)])));
        let mut cx = Ikev2Child::new(V2State::NewChildI1);
        cx.offered = esp;
        cx.tun = tun;
        cx.nonce = nonce;
        cx.dh = dh;
        let serial = self.v2_new_child(ike, key, true, spi, (our_client, peer_client), cx);
        if let Some(c) = self.sas.child_mut(serial) {
            c.replacing = replacing;
            c.whack = whack;
            c.try_no = try_no;
        }
        match replacing {
            Some(r) => self.slog(
                serial,
                format!("initiating CREATE_CHILD_SA to replace #{r}"),
            ),
            None => self.slog(serial, "initiating CREATE_CHILD_SA".into()),
        }
        let msgid = match self.v2_seal_child_request(ike, serial, &payloads) {
            Ok(m) => m,
            Err(e) => {
                self.slog(serial, format!("cannot send CREATE_CHILD_SA: {e}"));
                self.release_whack(serial, whack_status(rc::NORETRANSMISSION));
                self.delete_sa(serial, false);
                return;
            }
        };
        if let Some(x) = self.v2_child_mut(serial) {
            x.msgid = msgid;
        }
        self.log_transition(serial, "");
    }

    /// Sends a CREATE_CHILD_SA request on IKE SA `ike` for child SA `child`, retransmitted
    /// through the child's record.
    fn v2_seal_child_request(
        &mut self,
        ike: SerialNo,
        child: SerialNo,
        payloads: &[Payload],
    ) -> Result<u32, String> {
        let msgid = self.v2(ike).map(|x| x.next_request).ok_or("gone")?;
        let msgs = self.v2_seal(ike, ExchangeType::CreateChildSa, false, msgid, payloads)?;
        let (local, remote) = self
            .sas
            .ike(ike)
            .map(|s| (s.local, s.remote))
            .ok_or("gone")?;
        if let Some(x) = self.v2_mut(ike) {
            x.next_request = msgid.wrapping_add(1);
            x.awaiting = Some((msgid, child));
        }
        self.send_all_for(child, local, remote, msgs);
        self.schedule(child, RETRANSMIT_BASE_MS, TimerKind::Retransmit);
        Ok(msgid)
    }

    /// CREATE_CHILD_SA response arrived.
    fn v2_child_response(
        &mut self,
        ike: SerialNo,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<(), String> {
        self.heard_from(ike);
        let rekey = self
            .sas
            .ikes()
            .find(|s| {
                s.exchange.v2().is_some_and(|x| {
                    x.kind == V2State::RekeyIkeI1 && x.rekeying == Some((ike, msgid))
                })
            })
            .map(IkeSa::serial);
        if let Some(new) = rekey {
            return self.v2_ike_rekey_response(new, ike, payloads);
        }
        let child = self
            .sas
            .children_of(ike)
            .find(|c| {
                c.exchange
                    .v2()
                    .is_some_and(|x| x.kind == V2State::NewChildI1 && x.msgid == msgid)
            })
            .map(|c| c.serial())
            .ok_or("CREATE_CHILD_SA response for no child SA of ours; dropped")?;
        self.sas
            .timers
            .clear(child, crate::pluto::timers::TimerSlot::Event);
        let (ni, dh) = {
            let x = self
                .sas
                .child(child)
                .and_then(|c| c.exchange.v2())
                .ok_or("gone")?;
            (x.nonce.clone(), x.dh.as_ref().map(|d| d.group()))
        };
        let nr = nonce_of(payloads).map(<[u8]>::to_vec);
        let gir = match (dh, ke_of(payloads)) {
            (Some(_), Some(ke)) => {
                let x = self
                    .sas
                    .child(child)
                    .and_then(|c| c.exchange.v2())
                    .and_then(|x| x.dh.as_ref())
                    .ok_or("gone")?;
                match x.compute_shared(&ke.data) {
                    Ok(g) => Some(g.as_bytes().to_vec()),
                    Err(e) => return Err(format!("CREATE_CHILD_SA KE refused: {e}")),
                }
            }
            _ => None,
        };
        let nr = match (nr, error_notify(payloads)) {
            (Some(n), None) => n,
            _ => Vec::new(),
        };
        if let Some(x) = self.v2_child_mut(child) {
            x.exchange_nonces = Some((ni.clone(), nr.clone()));
        }
        self.v2_child_answer(ike, child, payloads, &ni, &nr, gir.as_deref());
        Ok(())
    }

    /// CREATE_CHILD_SA request arrived (responder): a new or replacing child SA, or a rekey
    /// of the IKE SA itself (`v2_ike_rekey_request`).
    fn v2_child_request(
        &mut self,
        ike: SerialNo,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<(), String> {
        let key = self.sas.conn_of(ike).ok_or("gone")?.to_string();
        let refuse = |p: &mut Pluto, t: NotifyType| {
            let n = Payload::Notify(NotifyPayload::new(t, Vec::new()));
            p.v2_respond(ike, ExchangeType::CreateChildSa, msgid, &[n])
        };
        let Some(sa) = sa_of(payloads) else {
            return refuse(self, NotifyType::InvalidSyntax);
        };
        if sa.proposals.iter().any(|p| p.protocol == ProtocolId::Ike) {
            return self.v2_ike_rekey_request(ike, msgid, payloads);
        }
        let Some(ni) = nonce_of(payloads).map(<[u8]>::to_vec) else {
            return refuse(self, NotifyType::InvalidSyntax);
        };
        let nr = self.random_bytes(NONCE_LEN);
        let pfs_group = v2p::esp_offer_group(sa);
        let mut ke_out = None;
        let gir = match (pfs_group, ke_of(payloads)) {
            (Some(g), Some(ke)) => {
                if ke.group.value() != g.id() {
                    let n = Payload::Notify(NotifyPayload::invalid_ke_payload(
                        wire::DhGroup::from(g.id()),
                    ));
                    return self.v2_respond(ike, ExchangeType::CreateChildSa, msgid, &[n]);
                }
                let d = DhKeyPair::generate(g, &mut self.rng());
                let s = d
                    .compute_shared(&ke.data)
                    .map_err(|e| format!("CREATE_CHILD_SA KE refused: {e}"))?;
                ke_out = Some(Payload::Ke(KePayload {
                    group: wire::DhGroup::from(g.id()),
                    data: d.public_value().to_vec(),
                }));
                Some(s.as_bytes().to_vec())
            }
            (Some(_), None) => return refuse(self, NotifyType::InvalidSyntax),
            _ => None,
        };
        // Which child SA it replaces: REKEY_SA names the SPI the peer receives on.
        let rekey_spi =
            wire::find_notify(payloads, NotifyType::RekeySa).and_then(|n| match n.spi {
                wire::Spi::Child(s) => Some(s),
                _ => None,
            });
        let replacing = rekey_spi
            .and_then(|spi| self.sas.by_peer_spi(Proto::Esp, spi).next())
            .map(|c| c.serial());
        if let (Some(spi), None) = (rekey_spi, replacing) {
            // RFC 7296 2.25: a rekey of a child SA we no longer have — we rekeyed it ourselves
            // and deleted it (RFC 7296 2.8.1, a collision whose request came late). Answering
            // normally would make a second child SA for the same traffic.
            self.slog(
                ike,
                format!("CREATE_CHILD_SA rekeys ESP SA 0x{spi:08x}, which we no longer have; sending CHILD_SA_NOT_FOUND"),
            );
            let n = Payload::Notify(NotifyPayload::child(
                NotifyType::ChildSaNotFound,
                ProtocolId::Esp,
                spi,
                Vec::new(),
            ));
            return self.v2_respond(ike, ExchangeType::CreateChildSa, msgid, &[n]);
        }
        let key = self.v2_child_conn(ike, &key, payloads);
        let mut answer = Vec::new();
        let child = self.v2_child_responder(
            ike,
            &key,
            payloads,
            Some(CcsaKeying {
                ni: &ni,
                nr: &nr,
                gir,
                pfs: pfs_group,
            }),
            &mut answer,
        );
        if let (Some(k), Some(_)) = (ke_out, child) {
            // KE goes after the nonce (RFC 7296 1.3.1 order is not required; kept close).
            answer.push(k);
        }
        self.v2_respond(ike, ExchangeType::CreateChildSa, msgid, &answer)?;
        if let Some(ch) = child {
            if let Some(c) = self.sas.child_mut(ch) {
                c.replacing = replacing;
                if let Some(x) = c.exchange.v2_mut() {
                    x.exchange_nonces = Some((ni.clone(), nr.clone()));
                }
            }
            self.v2_child_up(ch);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // IKE SA rekey (RFC 7296 1.3.2, 2.18).

    /// A new IKE SA record replacing established IKE SA `old`: same conn, endpoints, peer
    /// and NAT facts.
    fn v2_rekey_record(
        &mut self,
        old: SerialNo,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        initiator: bool,
        mut x: Ikev2Ike,
    ) -> Option<SerialNo> {
        let ox = self.sas.ike(old)?.exchange.v2()?;
        x.peer_fragments = ox.peer_fragments;
        x.peer_hashes = ox.peer_hashes.clone();
        let serial = self.sas.new_serial();
        let o = self.sas.ike(old)?;
        let mut sa = IkeSa::new(
            serial,
            NewIkeSa {
                conn: o.conn().to_string(),
                spi_i,
                spi_r,
                initiator,
                local: o.local,
                remote: o.remote,
                created: self.now,
                exchange: IkeExchange::V2(Box::new(x)),
            },
        );
        sa.peer_id = o.peer_id.clone();
        sa.auth = o.auth;
        sa.nat = o.nat;
        sa.liveness = o.liveness;
        sa.life = self.conns.get(o.conn()).map_or(o.life, |c| c.ikelifetime);
        self.sas.insert_ike(sa);
        Some(serial)
    }

    /// The new IKE SA `new` replaces `old`: it takes over the child SAs, and is established.
    fn v2_rekeyed(&mut self, old: SerialNo, new: SerialNo) {
        let children: Vec<SerialNo> = self.sas.children_of(old).map(|c| c.serial()).collect();
        for c in children {
            self.sas.set_parent(c, new);
        }
        // Exchanges held back on the old IKE SA go over the new one.
        let held = self
            .v2_mut(old)
            .map(|x| std::mem::take(&mut x.deferred))
            .unwrap_or_default();
        if let Some(x) = self.v2_mut(new) {
            x.deferred.extend(
                held.into_iter()
                    .filter(|d| !matches!(d, Deferred::IkeRekey { .. })),
            );
        }
        let key = self.sas.conn_of(new).unwrap_or_default().to_string();
        let peer = self
            .sas
            .ike(new)
            .and_then(|s| s.peer_id.clone())
            .unwrap_or(Id::Any);
        self.v2_advance(new, V2State::EstablishedIke, &format!(" (rekeyed #{old})"));
        self.ike_established(new, &key, &peer);
    }

    /// Starts rekeying established IKEv2 SA `old`: CREATE_CHILD_SA with an IKE proposal
    /// (our new SPI), a nonce and a KE payload of the current group. `false` if `old` is not
    /// such an SA.
    fn v2_ike_rekey(&mut self, old: SerialNo, try_no: u32) -> bool {
        let Some(s) = self.sas.ike(old) else {
            return false;
        };
        let Some(x) = s.exchange.v2() else {
            return false;
        };
        let (Some(alg), true) = (x.alg, s.established) else {
            return false;
        };
        if self.v2_busy(old) {
            self.slog(
                old,
                "IKE SA rekey waits for the outstanding exchange to finish".into(),
            );
            if let Some(x) = self.v2_mut(old) {
                x.deferred.push(Deferred::IkeRekey { try_no });
            }
            return true;
        }
        let Some(c) = self.conns.get(s.conn()) else {
            return false;
        };
        // The current suite's group first: its KE goes along.
        let mut offered = ike_suites(c);
        offered.sort_by_key(|a| a.group != alg.group);
        if offered.first().is_none_or(|a| a.group != alg.group) {
            offered.insert(0, alg);
        }
        let spi_i = self.ike_spi();
        let ni = self.random_bytes(NONCE_LEN);
        let dh = DhKeyPair::generate(alg.group, &mut self.rng());
        let payloads = vec![
            Payload::Sa(v2p::ike_sa_payload(&offered, Some(spi_i))),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KePayload {
                group: wire::DhGroup::from(alg.group.id()),
                data: dh.public_value().to_vec(),
            }),
        ];
        let mut nx = Ikev2Ike::new(V2State::RekeyIkeI1);
        nx.offered = offered;
        nx.ni = ni;
        nx.dh = Some(dh);
        let Some(new) = self.v2_rekey_record(old, spi_i, [0; 8], true, nx) else {
            return false;
        };
        if let Some(s) = self.sas.ike_mut(new) {
            s.try_no = try_no;
        }
        self.slog(
            new,
            format!("initiating CREATE_CHILD_SA to rekey IKE SA #{old}"),
        );
        let msgid = match self.v2_seal_child_request(old, new, &payloads) {
            Ok(m) => m,
            Err(e) => {
                self.slog(new, format!("cannot rekey: {e}"));
                self.delete_sa(new, false);
                return false;
            }
        };
        if let Some(x) = self.v2_mut(new) {
            x.rekeying = Some((old, msgid));
        }
        self.log_transition(new, "");
        true
    }

    /// The answer to our IKE SA rekey arrived on `old`; `new` is the rekeying record.
    fn v2_ike_rekey_response(
        &mut self,
        new: SerialNo,
        old: SerialNo,
        payloads: &[Payload],
    ) -> Result<(), String> {
        self.sas
            .timers
            .clear(new, crate::pluto::timers::TimerSlot::Event);
        if let Some(t) = error_notify(payloads) {
            self.slog(
                new,
                format!(
                    "IKE SA rekey refused: received {t} notification; #{old} kept until it expires"
                ),
            );
            self.delete_sa(new, false);
            // The peer's own rekey of `old`, answered meanwhile, stands alone.
            if let Some(theirs) = self.v2_colliding_ike_rekey(old) {
                if let Some(x) = self.v2_mut(theirs) {
                    x.collision_of = None;
                }
                self.v2_rekeyed(old, theirs);
            }
            return Ok(());
        }
        let fail = |p: &mut Pluto, why: &str| -> Result<(), String> {
            p.delete_sa(new, false);
            Err(format!("IKE SA rekey failed: {why}"))
        };
        let (Some(sa), Some(nr), Some(ke)) = (sa_of(payloads), nonce_of(payloads), ke_of(payloads))
        else {
            return fail(self, "response without SA, Nr or KE");
        };
        let Some(x) = self.v2(new) else {
            return Ok(());
        };
        let Some(alg) = v2p::ike_answer_of(sa, &x.offered) else {
            return fail(self, "responder chose a suite we did not offer");
        };
        let Some(wire::Spi::Ike(spi_r)) = sa.proposals.first().map(|p| p.spi.clone()) else {
            return fail(self, "responder's proposal has no IKE SPI");
        };
        let Some(dh) = x.dh.as_ref().filter(|d| d.group() == alg.group) else {
            return fail(self, "responder chose another group than our KE's");
        };
        let gir = match dh.compute_shared(&ke.data) {
            Ok(g) => g,
            Err(e) => return fail(self, &format!("KE payload refused: {e}")),
        };
        let ni = x.ni.clone();
        let spi_i = self.sas.ike(new).map(|s| s.spi_i()).ok_or("gone")?;
        let algs = IkeSaAlgs {
            prf: alg.prf,
            enc: alg.enc,
            integ: alg.integ,
        };
        let keys = self
            .v2(old)
            .and_then(|x| x.keys.as_ref())
            .ok_or("old keys gone")?
            .rekey(algs, gir.as_bytes(), &ni, nr, &spi_i, &spi_r.0)
            .map_err(|e| e.to_string())?;
        let (sk_out, sk_in) = self.v2_ciphers(&keys, true)?;
        if let Some(s) = self.sas.ike_mut(new) {
            s.spi_r = spi_r.0;
        }
        if let Some(x) = self.v2_mut(new) {
            x.alg = Some(alg);
            x.nr = nr.to_vec();
            x.dh = None;
            x.keys = Some(keys);
            x.sk_out = Some(sk_out);
            x.sk_in = Some(sk_in);
            x.rekeying = None;
            x.rekey_nonces = Some((ni.clone(), nr.to_vec()));
        }
        if let Some(theirs) = self.v2_colliding_ike_rekey(old) {
            return self.v2_ike_rekey_collision(old, new, theirs, (&ni, nr));
        }
        self.v2_rekeyed(old, new);
        // The old IKE SA goes (make-before-break: its child SAs live on under the new one).
        self.delete_sa(old, true);
        Ok(())
    }

    /// Both ends rekeyed IKE SA `old` at once (RFC 7296 2.8.2): `ours` is the new IKE SA of
    /// our exchange (nonces `ours_nonces`), `theirs` the one of the peer's. The exchange with
    /// the lowest of the four nonces made the redundant IKE SA; its initiator deletes it. The
    /// survivor takes the child SAs, and its initiator deletes `old`.
    fn v2_ike_rekey_collision(
        &mut self,
        old: SerialNo,
        ours: SerialNo,
        theirs: SerialNo,
        ours_nonces: (&[u8], &[u8]),
    ) -> Result<(), String> {
        let their_nonces = self
            .v2(theirs)
            .and_then(|x| x.rekey_nonces.clone())
            .ok_or("colliding rekey without nonces")?;
        let lowest_ours = ours_nonces.0.min(ours_nonces.1)
            < their_nonces.0.as_slice().min(their_nonces.1.as_slice());
        if let Some(x) = self.v2_mut(theirs) {
            x.collision_of = None;
        }
        if lowest_ours {
            self.slog(
                ours,
                format!("IKE SA rekey collision over #{old}: our exchange has the lowest nonce; deleting #{ours}, #{theirs} takes over"),
            );
            // Established only to carry its own Delete (the peer knows it as an IKE SA).
            if let Some(s) = self.sas.ike_mut(ours) {
                s.established = true;
            }
            if let Some(x) = self.v2_mut(ours) {
                x.kind = V2State::EstablishedIke;
            }
            self.delete_sa(ours, true);
            self.v2_rekeyed(old, theirs);
            // The peer deletes `old` (its exchange made the survivor).
        } else {
            self.slog(
                ours,
                format!("IKE SA rekey collision over #{old}: the peer's exchange has the lowest nonce; #{ours} takes over, the peer deletes #{theirs}"),
            );
            self.v2_rekeyed(old, ours);
            self.delete_sa(old, true);
            // Should the peer's Delete for the redundant IKE SA never come.
            self.schedule(theirs, HALF_OPEN_TIMEOUT_MS, TimerKind::SoDiscard);
        }
        Ok(())
    }

    /// A peer's CREATE_CHILD_SA request to rekey IKE SA `ike` (responder).
    fn v2_ike_rekey_request(
        &mut self,
        ike: SerialNo,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<(), String> {
        let refuse = |p: &mut Pluto, n: NotifyPayload, why: &str| {
            p.slog(
                ike,
                format!("IKE SA rekey refused: {why}; sending {}", n.notify_type),
            );
            p.v2_respond(
                ike,
                ExchangeType::CreateChildSa,
                msgid,
                &[Payload::Notify(n)],
            )
        };
        let none = |t| NotifyPayload::new(t, Vec::new());
        let (Some(sa), Some(ni), Some(ke)) = (sa_of(payloads), nonce_of(payloads), ke_of(payloads))
        else {
            return refuse(
                self,
                none(NotifyType::InvalidSyntax),
                "no SA, Ni or KE payload",
            );
        };
        let key = self.sas.conn_of(ike).ok_or("gone")?.to_string();
        let ours = self.conns.get(&key).map(ike_suites).unwrap_or_default();
        let (alg, number) = match v2p::choose_ike(sa, &ours, ke.group.value()) {
            IkeChoice::Chosen(a, n) => (a, n),
            IkeChoice::WrongGroup(g) => {
                return refuse(
                    self,
                    NotifyPayload::invalid_ke_payload(wire::DhGroup::from(g.id())),
                    "KE of another group",
                )
            }
            IkeChoice::None => {
                return refuse(
                    self,
                    none(NotifyType::NoProposalChosen),
                    &format!("no acceptable proposal among {}", v2p::describe(sa)),
                )
            }
        };
        let Some(wire::Spi::Ike(spi_i)) = sa
            .proposals
            .iter()
            .find(|p| p.number == number)
            .map(|p| p.spi.clone())
        else {
            return refuse(
                self,
                none(NotifyType::InvalidSyntax),
                "proposal without IKE SPI",
            );
        };
        let dh = DhKeyPair::generate(alg.group, &mut self.rng());
        let gir = match dh.compute_shared(&ke.data) {
            Ok(g) => g,
            Err(e) => {
                return refuse(
                    self,
                    none(NotifyType::InvalidSyntax),
                    &format!("KE payload refused: {e}"),
                )
            }
        };
        let nr = self.random_bytes(NONCE_LEN);
        let spi_r = self.ike_spi();
        let algs = IkeSaAlgs {
            prf: alg.prf,
            enc: alg.enc,
            integ: alg.integ,
        };
        let keys = self
            .v2(ike)
            .and_then(|x| x.keys.as_ref())
            .ok_or("keys gone")?
            .rekey(algs, gir.as_bytes(), ni, &nr, &spi_i.0, &spi_r)
            .map_err(|e| e.to_string())?;
        let (sk_out, sk_in) = self.v2_ciphers(&keys, false)?;
        let mut nx = Ikev2Ike::new(V2State::EstablishedIke);
        nx.alg = Some(alg);
        nx.ni = ni.to_vec();
        nx.nr = nr.clone();
        nx.keys = Some(keys);
        nx.sk_out = Some(sk_out);
        nx.sk_in = Some(sk_in);
        nx.rekey_nonces = Some((ni.to_vec(), nr.clone()));
        // RFC 7296 2.8.2: our own rekey of this IKE SA is outstanding. Answer normally; which
        // new IKE SA survives is decided when ours is answered.
        let ours = self.v2_outstanding_ike_rekey(ike);
        if ours.is_some() {
            nx.collision_of = Some(ike);
        }
        let answer = [
            Payload::Sa(v2p::ike_sa_answer(&alg, number, Some(spi_r))),
            Payload::Nonce(nr),
            Payload::Ke(KePayload {
                group: wire::DhGroup::from(alg.group.id()),
                data: dh.public_value().to_vec(),
            }),
        ];
        self.v2_respond(ike, ExchangeType::CreateChildSa, msgid, &answer)?;
        let new = self
            .v2_rekey_record(ike, spi_i.0, spi_r, false, nx)
            .ok_or("gone")?;
        if let Some(ours) = ours {
            // Should ours never be answered (it gives up after its retransmissions), the
            // undecided IKE SA goes too; deciding replaces this timer.
            self.schedule(new, 2 * HALF_OPEN_TIMEOUT_MS, TimerKind::SoDiscard);
            self.slog(
                new,
                format!(
                    "IKE SA rekey collision: the peer rekeys #{ike} too (ours is #{ours}); the exchange with the lowest nonce loses"
                ),
            );
            return Ok(());
        }
        self.slog(new, format!("IKE SA #{ike} rekeyed by the peer"));
        self.v2_rekeyed(ike, new);
        Ok(())
    }

    /// Our rekeying record for IKE SA `old` whose CREATE_CHILD_SA request is outstanding.
    fn v2_outstanding_ike_rekey(&self, old: SerialNo) -> Option<SerialNo> {
        self.sas
            .ikes()
            .find(|s| {
                s.exchange.v2().is_some_and(|x| {
                    x.kind == V2State::RekeyIkeI1 && x.rekeying.is_some_and(|(o, _)| o == old)
                })
            })
            .map(IkeSa::serial)
    }

    /// The IKE SA the peer's rekey of `old` made while ours was outstanding, not yet decided.
    fn v2_colliding_ike_rekey(&self, old: SerialNo) -> Option<SerialNo> {
        self.sas
            .ikes()
            .find(|s| s.exchange.v2().is_some_and(|x| x.collision_of == Some(old)))
            .map(IkeSa::serial)
    }

    /// IKE SA `old` is going while rekeys of it are under way: our outstanding rekey of it can
    /// no longer complete, and an IKE SA the peer's colliding rekey made takes its child SAs
    /// (the peer deletes `old` only once its rekey won).
    fn v2_settle_rekeys_of(&mut self, old: SerialNo) {
        if let Some(ours) = self.v2_outstanding_ike_rekey(old) {
            self.slog(ours, format!("IKE SA #{old} is gone: abandoning its rekey"));
            self.delete_sa(ours, false);
        }
        if let Some(theirs) = self.v2_colliding_ike_rekey(old) {
            if let Some(x) = self.v2_mut(theirs) {
                x.collision_of = None;
            }
            self.v2_rekeyed(old, theirs);
        }
    }

    // -----------------------------------------------------------------------------------
    // INFORMATIONAL.

    /// Sends an INFORMATIONAL request with `payloads` (none: a liveness check) over
    /// established IKE SA `ike`.
    ///
    /// Like every IKEv2 request it is retransmitted until answered (RFC 7296 2.1: a request
    /// the peer never saw would leave its message IDs behind ours for good), and it waits
    /// while another request of ours is outstanding on the IKE SA (a window of one, 2.3); a
    /// liveness check then is not needed (the outstanding request's answer is a sign of life).
    /// The IKE SA's own Delete goes at once and is not retransmitted: the SA is removed.
    pub(crate) fn v2_send_informational(&mut self, ike: SerialNo, payloads: Vec<Payload>) {
        if !self.sas.ike(ike).is_some_and(|s| s.established) {
            return;
        }
        let deletes_ike = payloads
            .iter()
            .any(|p| matches!(p, Payload::Delete(DeletePayload::Ike)));
        if !deletes_ike && self.v2_busy(ike) {
            if !payloads.is_empty() {
                if let Some(x) = self.v2_mut(ike) {
                    x.deferred.push(Deferred::Informational(payloads));
                }
            }
            return;
        }
        let r = self.v2_request(ike, ExchangeType::Informational, &payloads, !deletes_ike);
        if let Err(e) = r {
            self.slog(ike, format!("cannot send INFORMATIONAL: {e}"));
        }
    }

    /// EVENT_RETRANSMIT of the INFORMATIONAL request outstanding on established IKE SA `ike`:
    /// resent after 10, 20 and 40 s as any request; unanswered after that, the peer is dead
    /// (RFC 7296 2.4), and the conn's `dpdaction=` applies.
    pub(crate) fn v2_retransmit_informational(&mut self, ike: SerialNo) {
        let Some(x) = self.v2(ike) else {
            return;
        };
        if x.awaiting.map(|(_, owner)| owner) != Some(ike) {
            return;
        }
        let n = self.sas.rtx(ike).map_or(0, |r| r.count);
        let policy = crate::pluto::timers::RetryPolicy { keyingtries: 1 };
        let name = self
            .state_info(ike)
            .map(|(i, _)| i.name)
            .unwrap_or_default();
        match policy.next_delay(n, false) {
            Some(d) => self.retransmit_now(ike, name, d, TimerKind::RequestRetransmit),
            None => {
                self.slog_code(
                    ike,
                    rc::NORETRANSMISSION,
                    format!("max number of retransmissions ({MAX_RETRANSMISSIONS}) reached {name}"),
                );
                if let Some(x) = self.v2_mut(ike) {
                    x.awaiting = None;
                }
                self.liveness_dead(ike);
            }
        }
    }

    /// Tells the peer SA `serial` is going (INFORMATIONAL Delete).
    pub(crate) fn v2_send_delete(&mut self, serial: SerialNo) {
        if let Some(s) = self.sas.ike(serial) {
            if s.established {
                self.slog(serial, "sending Delete for IKE SA".into());
                self.v2_send_informational(serial, vec![Payload::Delete(DeletePayload::Ike)]);
            }
            return;
        }
        let Some(c) = self.sas.child(serial) else {
            return;
        };
        let (Some(spi), true, parent) = (c.our.esp, c.established, c.parent()) else {
            return;
        };
        self.slog(serial, format!("sending Delete for ESP SA 0x{spi:08x}"));
        self.v2_send_informational(
            parent,
            vec![Payload::Delete(DeletePayload::Child {
                protocol: ProtocolId::Esp,
                spis: vec![spi],
            })],
        );
    }

    /// INFORMATIONAL request arrived: Deletes, or a liveness check.
    fn v2_info_request(
        &mut self,
        ike: SerialNo,
        msgid: u32,
        payloads: &[Payload],
    ) -> Result<(), String> {
        let mut answer = Vec::new();
        let mut delete_ike = false;
        let mut doomed = Vec::new();
        for p in payloads {
            match p {
                Payload::Delete(DeletePayload::Ike) => delete_ike = true,
                Payload::Delete(DeletePayload::Child { protocol, spis }) => {
                    let mut ours = Vec::new();
                    for &spi in spis {
                        let proto = if *protocol == ProtocolId::Ah {
                            Proto::Ah
                        } else {
                            Proto::Esp
                        };
                        let found = self
                            .sas
                            .by_peer_spi(proto, spi)
                            .find(|c| {
                                self.sas.ike(c.parent()).map(|s| s.conn())
                                    == self.sas.ike(ike).map(|s| s.conn())
                                    || c.parent() == ike
                            })
                            .map(|c| (c.serial(), c.our.esp));
                        if let Some((ch, our)) = found {
                            doomed.push(ch);
                            ours.extend(our);
                        }
                    }
                    if !ours.is_empty() {
                        answer.push(Payload::Delete(DeletePayload::Child {
                            protocol: *protocol,
                            spis: ours,
                        }));
                    }
                }
                Payload::Notify(n) => {
                    self.slog(ike, format!("received {} notification", n.notify_type));
                }
                _ => {}
            }
        }
        if delete_ike {
            answer.clear();
        }
        self.v2_respond(ike, ExchangeType::Informational, msgid, &answer)?;
        for ch in doomed {
            self.slog(ch, "received Delete for this child SA".into());
            self.delete_sa(ch, false);
        }
        if delete_ike {
            let key = self.sas.conn_of(ike).unwrap_or_default().to_string();
            self.slog(ike, "received Delete for IKE SA".into());
            self.v2_settle_rekeys_of(ike);
            // Deleting an IKE SA deletes its child SAs (RFC 7296 1.4.1).
            let children: Vec<SerialNo> = self.sas.children_of(ike).map(|c| c.serial()).collect();
            for ch in children {
                self.delete_sa(ch, false);
            }
            self.delete_sa(ike, false);
            self.instance_gc(&key);
        }
        Ok(())
    }
}
