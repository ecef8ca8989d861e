//! IKEv2 states: [`V2State`] (Pluto-style `STATE_V2_*` names and numbers), and the IKEv2
//! parts of the engine's records — [`Ikev2Ike`] in an IKE SA ([`crate::pluto::sa::IkeSa`])
//! and [`Ikev2Child`] in a child SA ([`crate::pluto::sa::ChildSa`]).

use crate::pluto::crypto::ikev2::{IkeSaKeys, SkCipher};
use crate::pluto::crypto::DhKeyPair;
use crate::pluto::proposal::{EspAlg, IkeAlg};
use crate::pluto::version::StateInfo;

/// IKEv2 state names and numbers (Libreswan's `STATE_V2_*` vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2State {
    /// Initiator: IKE_SA_INIT request sent.
    ParentI1,
    /// Initiator: IKE_AUTH request sent.
    ParentI2,
    /// Responder: IKE_SA_INIT response sent, waiting for IKE_AUTH.
    ParentR1,
    /// IKE SA established.
    EstablishedIke,
    /// Initiator: child SA proposed in the IKE_AUTH request.
    IkeAuthChildI0,
    /// Initiator: CREATE_CHILD_SA request sent for a new or replacing child SA.
    NewChildI1,
    /// Child SA established (both directions installed).
    EstablishedChild,
    /// Initiator: CREATE_CHILD_SA request sent to rekey the IKE SA (this record is the new
    /// IKE SA).
    RekeyIkeI1,
}

impl V2State {
    /// Pluto's state number (whack code 100 + n); after IKEv1's numbers.
    pub fn number(self) -> u16 {
        match self {
            V2State::ParentI1 => 30,
            V2State::ParentI2 => 31,
            V2State::ParentR1 => 32,
            V2State::EstablishedIke => 33,
            V2State::IkeAuthChildI0 => 34,
            V2State::NewChildI1 => 35,
            V2State::EstablishedChild => 36,
            V2State::RekeyIkeI1 => 37,
        }
    }

    /// `STATE_V2_PARENT_I1`, …
    pub fn name(self) -> &'static str {
        match self {
            V2State::ParentI1 => "STATE_V2_PARENT_I1",
            V2State::ParentI2 => "STATE_V2_PARENT_I2",
            V2State::ParentR1 => "STATE_V2_PARENT_R1",
            V2State::EstablishedIke => "STATE_V2_ESTABLISHED_IKE_SA",
            V2State::IkeAuthChildI0 => "STATE_V2_IKE_AUTH_CHILD_I0",
            V2State::NewChildI1 => "STATE_V2_NEW_CHILD_I1",
            V2State::EstablishedChild => "STATE_V2_ESTABLISHED_CHILD_SA",
            V2State::RekeyIkeI1 => "STATE_V2_REKEY_IKE_I1",
        }
    }

    /// The state's story.
    pub fn story(self) -> &'static str {
        match self {
            V2State::ParentI1 => "sent IKE_SA_INIT request",
            V2State::ParentI2 => "sent IKE_AUTH request",
            V2State::ParentR1 => "sent IKE_SA_INIT response, expecting IKE_AUTH request",
            V2State::EstablishedIke => "IKE SA established",
            V2State::IkeAuthChildI0 => "child SA proposed in IKE_AUTH request",
            V2State::NewChildI1 => "sent CREATE_CHILD_SA request",
            V2State::EstablishedChild => "IPsec SA established",
            V2State::RekeyIkeI1 => "sent CREATE_CHILD_SA request to rekey IKE SA",
        }
    }

    /// Name, number and story.
    pub fn info(self) -> StateInfo {
        StateInfo {
            name: self.name(),
            number: self.number(),
            story: self.story(),
        }
    }

    /// Why retransmitting gave up, by state.
    pub fn give_up_reason(self) -> &'static str {
        match self {
            V2State::ParentI1 => {
                "  No response (or no acceptable response) to our IKE_SA_INIT request"
            }
            V2State::ParentI2 => {
                "  No response (or no acceptable response) to our IKE_AUTH request"
            }
            V2State::NewChildI1 | V2State::RekeyIkeI1 => {
                "  No response (or no acceptable response) to our CREATE_CHILD_SA request"
            }
            _ => "",
        }
    }
}

/// The IKEv2 state of an IKE SA.
pub struct Ikev2Ike {
    /// Where the exchange is.
    pub kind: V2State,
    /// The suites we offer (initiator) or accept (responder).
    pub offered: Vec<IkeAlg>,
    /// The suite negotiated.
    pub alg: Option<IkeAlg>,
    /// Our DH key pair until the shared secret is computed.
    pub dh: Option<DhKeyPair>,
    /// Initiator's nonce (IKE_SA_INIT).
    pub ni: Vec<u8>,
    /// Responder's nonce (IKE_SA_INIT).
    pub nr: Vec<u8>,
    /// The IKE_SA_INIT request as sent (the initiator's AUTH covers it).
    pub init_i: Vec<u8>,
    /// The IKE_SA_INIT response as sent (the responder's AUTH covers it).
    pub init_r: Vec<u8>,
    /// SK_d, SK_a*, SK_e*, SK_p*.
    pub keys: Option<IkeSaKeys>,
    /// Protection of the messages we send.
    pub sk_out: Option<SkCipher>,
    /// Protection of the messages we receive.
    pub sk_in: Option<SkCipher>,
    /// Message ID of our next request.
    pub next_request: u32,
    /// Message ID of the peer's next request.
    pub peer_next_request: u32,
    /// Our last response (message ID, datagram as sent) for a retransmitted request.
    pub last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// The responder's COOKIE to echo in IKE_SA_INIT.
    pub cookie: Option<Vec<u8>>,
    /// IKE_SA_INIT retries after INVALID_KE_PAYLOAD or COOKIE.
    pub init_retries: u32,
    /// A rekeying IKE SA (initiator): the IKE SA it replaces, over which the CREATE_CHILD_SA
    /// request went, and that request's message ID.
    pub rekeying: Option<(crate::pluto::ids::SerialNo, u32)>,
    /// The hash algorithms the peer announced for RFC 7427 signatures (raw numbers).
    pub peer_hashes: Vec<u16>,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    pub peer_fragments: bool,
    /// A fragmented message being received: message ID, response or request, the pieces.
    pub reassembly: Option<(u32, bool, crate::pluto::ikev2::wire::Reassembly)>,
    /// Our retransmitted request still waiting for its response: message ID and the record
    /// (IKE or child SA) it negotiates. RFC 7296 2.3: the peer's window is 1 unless it says
    /// otherwise, so no second such request goes out meanwhile.
    pub awaiting: Option<(u32, crate::pluto::ids::SerialNo)>,
    /// Exchanges we wanted to start while a request was outstanding, started once it is
    /// answered (or its negotiation is gone).
    pub deferred: Vec<Deferred>,
    /// Ni and Nr of the CREATE_CHILD_SA exchange that made this IKE SA by rekeying another
    /// (RFC 7296 2.8.2: of two simultaneous rekeys, the one with the lowest nonce goes).
    pub rekey_nonces: Option<(Vec<u8>, Vec<u8>)>,
    /// Made by the peer's rekey of this IKE SA while our own rekey of it was outstanding: which
    /// of the two survives is decided when ours is answered (RFC 7296 2.8.2).
    pub collision_of: Option<crate::pluto::ids::SerialNo>,
    /// Made by reauthentication (a new IKE_SA_INIT and IKE_AUTH, `reauth=yes`) to replace
    /// this IKE SA, which goes once its child SAs are recreated.
    pub reauth_of: Option<crate::pluto::ids::SerialNo>,
}

/// An exchange held back until the IKE SA's outstanding request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// A new or replacing child SA for a conn.
    Child {
        /// The conn.
        key: String,
        /// The whack client waiting for it.
        whack: Option<crate::pluto::ids::WhackClient>,
        /// The child SA it replaces.
        replacing: Option<crate::pluto::ids::SerialNo>,
        /// Keying try.
        try_no: u32,
    },
    /// Rekeying the IKE SA itself.
    IkeRekey {
        /// Keying try.
        try_no: u32,
    },
    /// An INFORMATIONAL request (Deletes) waiting for the one outstanding to be answered.
    Informational(Vec<crate::pluto::ikev2::wire::payload::Payload>),
}

impl Ikev2Ike {
    /// A fresh state of `kind`.
    pub fn new(kind: V2State) -> Ikev2Ike {
        Ikev2Ike {
            kind,
            offered: Vec::new(),
            alg: None,
            dh: None,
            ni: Vec::new(),
            nr: Vec::new(),
            init_i: Vec::new(),
            init_r: Vec::new(),
            keys: None,
            sk_out: None,
            sk_in: None,
            next_request: 0,
            peer_next_request: 0,
            last_response: None,
            cookie: None,
            init_retries: 0,
            rekeying: None,
            peer_hashes: Vec::new(),
            peer_fragments: false,
            reassembly: None,
            awaiting: None,
            deferred: Vec::new(),
            rekey_nonces: None,
            collision_of: None,
            reauth_of: None,
        }
    }
}

/// The IKEv2 state of a child SA.
pub struct Ikev2Child {
    /// Where the exchange is.
    pub kind: V2State,
    /// ESP suites offered (initiator).
    pub offered: Vec<EspAlg>,
    /// The ESP suite negotiated.
    pub alg: Option<EspAlg>,
    /// Tunnel-mode pseudo SPIs (inbound, outbound).
    pub tun: Option<(u32, u32)>,
    /// Message ID of the CREATE_CHILD_SA request (initiator).
    pub msgid: u32,
    /// Our nonce (CREATE_CHILD_SA).
    pub nonce: Vec<u8>,
    /// PFS key pair (CREATE_CHILD_SA).
    pub dh: Option<DhKeyPair>,
    /// Ni and Nr of the CREATE_CHILD_SA exchange that made it (rekey collisions, RFC 7296
    /// 2.8.1).
    pub exchange_nonces: Option<(Vec<u8>, Vec<u8>)>,
}

impl Ikev2Child {
    /// A fresh state of `kind`.
    pub fn new(kind: V2State) -> Ikev2Child {
        Ikev2Child {
            kind,
            offered: Vec::new(),
            alg: None,
            tun: None,
            msgid: 0,
            nonce: Vec::new(),
            dh: None,
            exchange_nonces: None,
        }
    }
}
