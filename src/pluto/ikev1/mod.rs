//! IKEv1 (RFC 2409) on top of the shared [`crate::pluto::isakmp`] codec and
//! [`crate::pluto::crypto`] primitives, plugged into the engine through
//! [`crate::pluto::version::ExchangeHandlers`] ([`Ikev1`]):
//!
//! * [`crypto`]: RFC 2409 key derivation, authentication hashes, IV chaining, message
//!   encryption, and the IPsec SA keys (KEYMAT) handed to the engine.
//! * [`ident`]: ID payloads ↔ the engine's IDs and client subnets.
//! * [`proposal`]: ISAKMP / IPsec DOI SA payloads from the shared algorithm vocabulary, and
//!   the selection of a peer's offer.
//! * [`state`]: Pluto's IKEv1 states and the IKEv1 parts of the engine's SA records.
//! * `main_mode`, `quick_mode`, `informational`: the exchanges, as `impl Pluto` blocks over
//!   the engine's records, connections and outputs.

pub mod crypto;
pub mod ident;
mod informational;
mod main_mode;
pub(crate) mod msg;
pub mod proposal;
pub(crate) mod quick_mode;
pub mod state;

use std::net::SocketAddr;

use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::isakmp::{ExchangeType, Header, ParseError};
use crate::pluto::sa::PendingChild;
use crate::pluto::version::ExchangeHandlers;

use self::state::StateKind;

/// The IKEv1 exchange handlers.
pub struct Ikev1;

impl ExchangeHandlers for Ikev1 {
    fn handle_datagram(p: &mut Pluto, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let hdr = match Header::parse_datagram(data) {
            Ok((h, _)) => h,
            Err(ParseError::UnsupportedVersion { major, minor }) => {
                p.log(format!(
                    "packet from {remote}: ISAKMP version {major}.{minor} not supported; message dropped"
                ));
                return;
            }
            Err(e) => {
                p.log(format!("packet from {remote}: {e}; message dropped"));
                return;
            }
        };
        // Cookies of an established ISAKMP SA: only the peer (or someone on the path, who
        // could as well drop our packets) knows them.
        if hdr.responder_cookie != [0; 8]
            && p.find_p1(&hdr.initiator_cookie, &hdr.responder_cookie)
                .and_then(|s| p.sas.ike(s))
                .is_some_and(|s| s.established)
        {
            p.unauth = None;
        }
        match hdr.exchange_type {
            ExchangeType::MainMode => p.v1_main(local, remote, &hdr, data),
            ExchangeType::QuickMode => p.v1_quick(local, remote, &hdr, data),
            ExchangeType::Informational => p.v1_info(local, remote, &hdr, data),
            ExchangeType::Aggressive => p.log(format!(
                "packet from {remote}: Aggressive Mode is not supported; message dropped"
            )),
            other => p.log(format!(
                "packet from {remote}: unsupported exchange type {other}; message dropped"
            )),
        }
    }

    fn initiate_ike(
        p: &mut Pluto,
        key: &str,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing: Option<SerialNo>,
    ) {
        p.main_initiate(key, whack, try_no, pending, replacing)
    }

    fn initiate_child(
        p: &mut Pluto,
        ike: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
        try_no: u32,
    ) {
        p.quick_initiate(ike, key, whack, replacing, try_no)
    }

    fn send_delete(p: &mut Pluto, serial: SerialNo) {
        // An ISAKMP SA the peer has established, or an IPsec SA whose inbound half we
        // installed (QR1 sent) or that is up.
        let known = match (p.sas.ike(serial), p.sas.child(serial)) {
            (Some(s), _) => s.established,
            (None, Some(c)) => {
                c.established
                    || c.exchange
                        .v1()
                        .is_some_and(|q| q.kind == StateKind::QuickR1)
            }
            (None, None) => false,
        };
        if known {
            p.send_delete_for(serial);
        }
    }

    fn send_liveness_probe(p: &mut Pluto, ike: SerialNo) {
        p.send_r_u_there(ike)
    }

    fn retransmit_request(_: &mut Pluto, _: SerialNo) {}
}

impl Pluto {
    /// Moves ISAKMP SA `serial` to Main Mode state `kind` (a new message to retransmit from
    /// scratch) and logs the transition.
    pub(crate) fn advance(&mut self, serial: SerialNo, kind: StateKind) {
        if let Some(s) = self.sas.ike_mut(serial) {
            if let Some(x) = s.exchange.v1_mut() {
                x.kind = kind;
            }
            s.established = kind.isakmp_established();
            s.rtx.count = 0;
        }
        self.log_transition(serial, "");
    }

    /// Moves IPsec SA `serial` to Quick Mode state `kind`.
    pub(crate) fn set_quick_kind(&mut self, serial: SerialNo, kind: StateKind) {
        if let Some(c) = self.sas.child_mut(serial) {
            if let Some(x) = c.exchange.v1_mut() {
                x.kind = kind;
            }
            c.established = kind.ipsec_established();
        }
    }
}
