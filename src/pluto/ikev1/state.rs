//! IKEv1 states: the ISAKMP SA family ([`Phase1`]) and the IPsec SA family ([`Phase2`]),
//! wrapped in the engine-wide [`State`] with serial number, timers and retransmission data.

use crate::pluto::ids::{SerialNo, WhackClient};
use std::net::SocketAddrV4;

use zeroize::Zeroizing;

use crate::addr::Subnet;
use crate::pluto::crypto::DhKeyPair;
use crate::pluto::ikev1::crypto::Phase1Keys;
use crate::pluto::proposal::{AuthKind, IkeAlg, IkeChoice, QmChoice, QmPolicy, Spis, UdpEncapMode};
use crate::said::Said;

use crate::config::secrets::Id;

/// IKEv1 state numbers and names (spec 5.9, 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// Responder, waiting for MI1 (never stored).
    MainR0,
    /// Initiator, sent MI1.
    MainI1,
    /// Responder, sent MR1.
    MainR1,
    /// Initiator, sent MI2.
    MainI2,
    /// Responder, sent MR2.
    MainR2,
    /// Initiator, sent MI3.
    MainI3,
    /// Responder, established.
    MainR3,
    /// Initiator, established.
    MainI4,
    /// QM responder start.
    QuickR0,
    /// QM initiator, sent QI1.
    QuickI1,
    /// QM responder, sent QR1.
    QuickR1,
    /// QM initiator, established.
    QuickI2,
    /// QM responder, established.
    QuickR2,
}

impl StateKind {
    /// Pluto's state number (whack code 100 + n).
    pub fn number(self) -> u16 {
        match self {
            StateKind::MainR0 => 3,
            StateKind::MainI1 => 4,
            StateKind::MainR1 => 5,
            StateKind::MainI2 => 6,
            StateKind::MainR2 => 7,
            StateKind::MainI3 => 8,
            StateKind::MainR3 => 9,
            StateKind::MainI4 => 10,
            StateKind::QuickR0 => 11,
            StateKind::QuickI1 => 12,
            StateKind::QuickR1 => 13,
            StateKind::QuickI2 => 14,
            StateKind::QuickR2 => 15,
        }
    }

    /// `STATE_MAIN_I1`, …
    pub fn name(self) -> &'static str {
        match self {
            StateKind::MainR0 => "STATE_MAIN_R0",
            StateKind::MainI1 => "STATE_MAIN_I1",
            StateKind::MainR1 => "STATE_MAIN_R1",
            StateKind::MainI2 => "STATE_MAIN_I2",
            StateKind::MainR2 => "STATE_MAIN_R2",
            StateKind::MainI3 => "STATE_MAIN_I3",
            StateKind::MainR3 => "STATE_MAIN_R3",
            StateKind::MainI4 => "STATE_MAIN_I4",
            StateKind::QuickR0 => "STATE_QUICK_R0",
            StateKind::QuickI1 => "STATE_QUICK_I1",
            StateKind::QuickR1 => "STATE_QUICK_R1",
            StateKind::QuickI2 => "STATE_QUICK_I2",
            StateKind::QuickR2 => "STATE_QUICK_R2",
        }
    }

    /// The state's story (spec 7).
    pub fn story(self) -> &'static str {
        match self {
            StateKind::MainR0 => "expecting MI1",
            StateKind::MainI1 => "sent MI1, expecting MR1",
            StateKind::MainR1 => "sent MR1, expecting MI2",
            StateKind::MainI2 => "sent MI2, expecting MR2",
            StateKind::MainR2 => "sent MR2, expecting MI3",
            StateKind::MainI3 => "sent MI3, expecting MR3",
            StateKind::MainR3 => "sent MR3, ISAKMP SA established",
            StateKind::MainI4 => "ISAKMP SA established",
            StateKind::QuickR0 => "expecting QI1",
            StateKind::QuickI1 => "sent QI1, expecting QR1",
            StateKind::QuickR1 => "sent QR1, inbound IPsec SA installed, expecting QI2",
            StateKind::QuickI2 => "sent QI2, IPsec SA established",
            StateKind::QuickR2 => "IPsec SA established",
        }
    }

    /// An established ISAKMP SA.
    pub fn isakmp_established(self) -> bool {
        matches!(self, StateKind::MainR3 | StateKind::MainI4)
    }

    /// An established IPsec SA.
    pub fn ipsec_established(self) -> bool {
        matches!(self, StateKind::QuickI2 | StateKind::QuickR2)
    }

    /// A half-open Main Mode responder state.
    pub fn half_open_responder(self) -> bool {
        matches!(self, StateKind::MainR1 | StateKind::MainR2)
    }
}

/// Timer events of a state (spec 5.8 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Resend the last message.
    Retransmit,
    /// Discard a half-open or failed state.
    SoDiscard,
    /// Time to rekey.
    SaReplace,
    /// Time to rekey if the SA was used during the rekey margin (`rekey=no` initiator, spec 7).
    SaReplaceIfUsed,
    /// Lifetime over.
    SaExpire,
}

impl Event {
    /// `EVENT_…` name.
    pub fn name(self) -> &'static str {
        match self {
            Event::Retransmit => "EVENT_RETRANSMIT",
            Event::SoDiscard => "EVENT_SO_DISCARD",
            Event::SaReplace => "EVENT_SA_REPLACE",
            Event::SaReplaceIfUsed => "EVENT_SA_REPLACE_IF_USED",
            Event::SaExpire => "EVENT_SA_EXPIRE",
        }
    }
}

/// NAT-T facts of an ISAKMP SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Natt {
    /// Method agreed through Vendor IDs.
    pub method: UdpEncapMode,
    /// We are behind a NAT (or pretend to be: forceencaps).
    pub we_behind: bool,
    /// The peer is behind a NAT (or pretends to be).
    pub peer_behind: bool,
    /// IKE moved to port 4500.
    pub floated: bool,
}

impl Natt {
    /// Whether ESP must be UDP-encapsulated.
    pub fn encapsulate(&self) -> bool {
        self.method != UdpEncapMode::None && (self.we_behind || self.peer_behind)
    }
}

/// Dead Peer Detection bookkeeping.
#[derive(Debug, Clone, Copy, Default)]
pub struct DpdState {
    /// The peer sent the DPD Vendor ID.
    pub peer_supports: bool,
    /// Last sequence number we sent.
    pub seq: u32,
    /// Last sequence number the peer sent (for ACKs).
    pub peer_seq: Option<u32>,
    /// When we last heard from the peer (ms).
    pub last_heard: u64,
    /// Next probe time (ms), if probing.
    pub next: Option<u64>,
}

/// An ISAKMP SA (Main Mode family).
pub struct Phase1 {
    /// We initiated.
    pub initiator: bool,
    /// CKY-I.
    pub icookie: [u8; 8],
    /// CKY-R.
    pub rcookie: [u8; 8],
    /// Our endpoint.
    pub local: SocketAddrV4,
    /// Peer's endpoint.
    pub remote: SocketAddrV4,
    /// What we offered / accept.
    pub offered: Vec<IkeAlg>,
    /// Authentication methods allowed.
    pub auths: Vec<AuthKind>,
    /// Negotiated transform.
    pub choice: Option<IkeChoice>,
    /// Negotiated lifetime (s).
    pub life: u64,
    /// Body of the initiator's SA payload.
    pub sai_b: Vec<u8>,
    /// Our DH key pair.
    pub dh: Option<DhKeyPair>,
    /// g^xi.
    pub gxi: Vec<u8>,
    /// g^xr.
    pub gxr: Vec<u8>,
    /// Ni_b.
    pub ni: Vec<u8>,
    /// Nr_b.
    pub nr: Vec<u8>,
    /// Shared secret g^xy.
    pub gxy: Option<Zeroizing<Vec<u8>>>,
    /// Keys.
    pub keys: Option<Phase1Keys>,
    /// Current phase-1 IV.
    pub iv: Vec<u8>,
    /// NAT-T.
    pub natt: Natt,
    /// DPD.
    pub dpd: DpdState,
    /// Peer's authenticated ID.
    pub peer_id: Option<Id>,
    /// Phase-2 message IDs seen or used (bounded).
    pub msgids: Vec<u32>,
    /// Start Quick Mode when established (initiator's pending phase 2).
    pub pending_qm: Option<PendingQm>,
    /// Next NAT keepalive time (ms).
    pub keepalive_at: Option<u64>,
    /// Peer address for a Road-Warrior template state not yet instantiated.
    pub template: bool,
}

/// A phase 2 waiting for its ISAKMP SA.
#[derive(Debug, Clone, Copy)]
pub struct PendingQm {
    /// Whack client to report to.
    pub whack: Option<WhackClient>,
    /// State this replaces.
    pub replacing: Option<SerialNo>,
}

/// An IPsec SA (Quick Mode family).
pub struct Phase2 {
    /// Serial of the ISAKMP SA.
    pub parent: SerialNo,
    /// We initiated.
    pub initiator: bool,
    /// Message ID.
    pub msgid: u32,
    /// Current IV of this exchange.
    pub iv: Vec<u8>,
    /// Ni_b.
    pub ni: Vec<u8>,
    /// Nr_b.
    pub nr: Vec<u8>,
    /// PFS key pair.
    pub dh: Option<DhKeyPair>,
    /// PFS shared secret.
    pub gxy: Option<Zeroizing<Vec<u8>>>,
    /// Our SPIs.
    pub our: Spis,
    /// Policy offered or accepted.
    pub policy: QmPolicy,
    /// What was agreed.
    pub choice: Option<QmChoice>,
    /// Our client.
    pub our_client: Subnet,
    /// Peer's client.
    pub peer_client: Subnet,
    /// Tunnel pseudo-SPIs (in, out).
    pub tun: Option<(u32, u32)>,
    /// Installed inbound SAIDs.
    pub inbound: Vec<Said>,
    /// Installed outbound SAIDs.
    pub outbound: Vec<Said>,
    /// Negotiated lifetime (s).
    pub life: u64,
    /// State this one replaces (rekey).
    pub replacing: Option<SerialNo>,
    /// UDP encapsulation in use: peer's port.
    pub encap_port: Option<u16>,
    /// Last time (ms) a packet from the peer used the inbound SAs, per the datapath's usage
    /// reports ([`crate::pluto::Pluto::handle_sa_usage`]).
    pub used_in: Option<u64>,
    /// Last time (ms) a packet was sent through the outbound SAs.
    pub used_out: Option<u64>,
}

impl Phase2 {
    /// Last use in either direction (ms), if any.
    pub fn last_used(&self) -> Option<u64> {
        self.used_in.max(self.used_out)
    }
}

/// The protocol-specific part of a state.
pub enum Family {
    /// ISAKMP SA.
    P1(Box<Phase1>),
    /// IPsec SA.
    P2(Box<Phase2>),
}

/// One negotiation or SA.
pub struct State {
    /// `#N`.
    pub serial: SerialNo,
    /// Connection key.
    pub conn: String,
    /// State.
    pub kind: StateKind,
    /// Family data.
    pub family: Family,
    /// Pending timer event.
    pub event: Option<(u64, Event)>,
    /// Retransmissions so far.
    pub retransmits: u32,
    /// Last message we sent (for retransmission and duplicate answers).
    pub last_sent: Option<(SocketAddrV4, SocketAddrV4, Vec<u8>)>,
    /// Last message received (duplicate detection).
    pub last_recv: Vec<u8>,
    /// Attached whack client.
    pub whack: Option<WhackClient>,
    /// Keying attempt number.
    pub try_no: u32,
    /// Created at (ms).
    pub created: u64,
    /// Hard expiry (ms since start), 0 when not established.
    pub expires_at: u64,
    /// PSK used for SKEYID (phase 1 only), to check connection switches.
    pub psk: Option<Zeroizing<Vec<u8>>>,
}

impl State {
    /// The phase-1 data.
    pub fn p1(&self) -> Option<&Phase1> {
        match &self.family {
            Family::P1(p) => Some(p),
            Family::P2(_) => None,
        }
    }

    /// The phase-1 data, mutably.
    pub fn p1_mut(&mut self) -> Option<&mut Phase1> {
        match &mut self.family {
            Family::P1(p) => Some(p),
            Family::P2(_) => None,
        }
    }

    /// The phase-2 data.
    pub fn p2(&self) -> Option<&Phase2> {
        match &self.family {
            Family::P2(p) => Some(p),
            Family::P1(_) => None,
        }
    }

    /// The phase-2 data, mutably.
    pub fn p2_mut(&mut self) -> Option<&mut Phase2> {
        match &mut self.family {
            Family::P2(p) => Some(p),
            Family::P1(_) => None,
        }
    }
}
