//! IKEv2 (RFC 7296) beside IKEv1, plugged into the engine through
//! [`crate::pluto::version::ExchangeHandlers`] ([`Ikev2`]):
//!
//! * [`wire`]: the message codec — payloads, the Encrypted (SK) and Encrypted Fragment (SKF,
//!   RFC 7383) framing, fragment reassembly, RFC 7427 signature algorithm identifiers.
//! * [`state`]: the `STATE_V2_*` states and the IKEv2 parts of the engine's records.
//! * [`proposal`]: SA payloads from the shared algorithm vocabulary, and the choice among a
//!   peer's proposals.
//! * `exchange`: IKE_SA_INIT (INVALID_KE_PAYLOAD and COOKIE retries), IKE_AUTH with PSK
//!   creating the first child SA, CREATE_CHILD_SA for further and replacing child SAs, and
//!   INFORMATIONAL (Delete, liveness), as `impl Pluto` blocks over the engine's records.
//!
//! Message IDs: each side numbers its own requests (window 1); a retransmitted request is
//! answered with the response kept for it, older ones are dropped.

mod exchange;
pub mod proposal;
pub mod state;
pub mod wire;

use std::net::SocketAddr;

use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::sa::PendingChild;
use crate::pluto::version::ExchangeHandlers;

/// The IKEv2 exchange handlers.
pub struct Ikev2;

impl ExchangeHandlers for Ikev2 {
    fn handle_datagram(p: &mut Pluto, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        p.v2_datagram(local, remote, data)
    }

    fn initiate_ike(
        p: &mut Pluto,
        key: &str,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing: Option<SerialNo>,
    ) {
        p.v2_initiate(key, whack, try_no, pending, replacing)
    }

    fn initiate_child(
        p: &mut Pluto,
        ike: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
        try_no: u32,
    ) {
        p.v2_child_initiate(ike, key, whack, replacing, try_no)
    }

    fn send_delete(p: &mut Pluto, serial: SerialNo) {
        p.v2_send_delete(serial)
    }

    fn send_liveness_probe(p: &mut Pluto, ike: SerialNo) {
        p.v2_send_informational(ike, Vec::new())
    }

    fn retransmit_request(p: &mut Pluto, ike: SerialNo) {
        p.v2_retransmit_informational(ike)
    }
}
