//! What the keying daemon tells the administrator's tools, as plain data: Pluto fills a
//! [`PlutoView`] (`Pluto::admin_view`) on its own thread and the shell combines it with the
//! datapath's tables for `ipsec status --json`, the metrics and the Wireshark key tables.

use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::addr::Subnet;
use crate::said::Said;

/// One loaded connection (or road-warrior instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnView {
    /// Name with instance suffix (`rw[1]`).
    pub name: String,
    /// The conn as named in ipsec.conf (no instance suffix).
    pub base: String,
    /// `--status` routing wording (`unrouted`, `prospective erouted`, `erouted`, …).
    pub routing: String,
    /// An IPsec SA of the conn is established.
    pub up: bool,
    /// The conn line of `--status` (`10.0.1.0/24===192.0.2.1...192.0.2.2===10.0.2.0/24`).
    pub describe: String,
    /// Policy (`PSK+ENCRYPT+TUNNEL+PFS`).
    pub policy: String,
    /// Our client network.
    pub our_client: Subnet,
    /// The peer's client network.
    pub peer_client: Subnet,
    /// Newest ISAKMP SA serial (0 = none).
    pub newest_isakmp: u64,
    /// Newest IPsec SA serial (0 = none).
    pub newest_ipsec: u64,
    /// `ikelifetime` in seconds.
    pub ike_life: u64,
    /// `keylife` in seconds.
    pub ipsec_life: u64,
}

/// The encryption key material of an IKE SA, for Wireshark's decryption tables only (the
/// view holds it only when asked for keys).
#[derive(Clone, PartialEq, Eq)]
pub enum IkeKeys {
    /// IKEv1: the ISAKMP message encryption key (RFC 2409 appendix B expansion applied).
    V1 {
        /// The key.
        enc_key: Zeroizing<Vec<u8>>,
    },
    /// IKEv2: SK_ei/SK_er and SK_ai/SK_ar with the transforms' names.
    V2(crate::admin::wireshark::Ikev2Keys),
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IkeKeys(<secret>)")
    }
}

/// One IKE (ISAKMP) SA or its negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaView {
    /// State serial.
    pub serial: u64,
    /// Connection (with instance suffix).
    pub conn: String,
    /// IKE version (1 or 2).
    pub version: u8,
    /// State name (`STATE_MAIN_I4`).
    pub state: String,
    /// Established.
    pub established: bool,
    /// We initiated it.
    pub initiator: bool,
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Initiator's cookie / SPI (on the wire, not secret).
    pub icookie: [u8; 8],
    /// Responder's cookie / SPI.
    pub rcookie: [u8; 8],
    /// Negotiated algorithms (`AES_CBC_128-SHA2_256-MODP2048`).
    pub algorithm: Option<String>,
    /// Pending timer event and seconds until it (`EVENT_SA_REPLACE`, 2805).
    pub event: Option<(String, u64)>,
    /// Seconds until the SA expires (0 when not established).
    pub expires_in: u64,
    /// Keys, only in a view made for Wireshark's tables.
    pub keys: Option<IkeKeys>,
}

/// One IPsec SA bundle (Quick Mode / CHILD_SA) or its negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaView {
    /// State serial.
    pub serial: u64,
    /// Connection (with instance suffix).
    pub conn: String,
    /// The IKE SA it was negotiated under.
    pub parent: u64,
    /// State name (`STATE_QUICK_I2`).
    pub state: String,
    /// Established.
    pub established: bool,
    /// Negotiated ESP or AH algorithms (`AES_128-HMAC_SHA2_256`).
    pub algorithm: Option<String>,
    /// Our client network.
    pub our_client: Subnet,
    /// The peer's client network.
    pub peer_client: Subnet,
    /// Inbound SAs (ours).
    pub inbound: Vec<Said>,
    /// Outbound SAs (the peer's).
    pub outbound: Vec<Said>,
    /// Pending timer event and seconds until it.
    pub event: Option<(String, u64)>,
    /// Seconds until the SA expires.
    pub expires_in: u64,
    /// Seconds since the SA was last used, if ever.
    pub used_ago: Option<u64>,
}

/// Pluto's side of the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlutoView {
    /// Loaded connections.
    pub conns: Vec<ConnView>,
    /// IKE SAs.
    pub ike_sas: Vec<IkeSaView>,
    /// IPsec SA bundles.
    pub child_sas: Vec<ChildSaView>,
    /// Bound counters (`ipsec look`'s "pluto limits hit").
    pub limits: crate::pluto::LimitCounters,
}
