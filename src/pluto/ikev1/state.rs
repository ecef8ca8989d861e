//! IKEv1 states: [`StateKind`] (Pluto's state names and numbers), and the IKEv1 parts of the
//! engine's records — [`Isakmp`] in an ISAKMP SA ([`crate::pluto::sa::IkeSa`]) and
//! [`QuickMode`] in an IPsec SA ([`crate::pluto::sa::ChildSa`]).

use zeroize::Zeroizing;

use crate::pluto::crypto::CbcCipher;
use crate::pluto::crypto::DhKeyPair;
use crate::pluto::ikev1::crypto::Phase1Keys;
use crate::pluto::ikev1::proposal::{IkeChoice, QmChoice, QmPolicy, UdpEncapMode};
use crate::pluto::proposal::{AuthKind, IkeAlg};
use crate::pluto::version::StateInfo;

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

    /// Name, number and story.
    pub fn info(self) -> StateInfo {
        StateInfo {
            name: self.name(),
            number: self.number(),
            story: self.story(),
        }
    }

    /// Why retransmitting in this state gave up (appended to the log line).
    pub fn give_up_reason(self) -> &'static str {
        match self {
            StateKind::MainI1 => "  No response (or no acceptable response) to our first IKE message",
            StateKind::MainI3 => "  Possible authentication failure: no acceptable response to our first encrypted message",
            StateKind::QuickI1 => "  No acceptable response to our first Quick Mode message: perhaps peer likes no proposal",
            _ => "",
        }
    }
}

/// The IKEv1 part of an ISAKMP SA ([`crate::pluto::sa::IkeSa`] holds the rest): Main Mode
/// state, what was offered and chosen, DH values and nonces, keys and the CBC IV, NAT-T
/// method, DPD sequence numbers, phase-2 message IDs.
pub struct Isakmp {
    /// State.
    pub kind: StateKind,
    /// What we offered / accept.
    pub offered: Vec<IkeAlg>,
    /// Authentication methods allowed.
    pub auths: Vec<AuthKind>,
    /// Negotiated transform.
    pub choice: Option<IkeChoice>,
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
    /// The message cipher keyed with `keys.enc_key` (through the engine's crypto provider).
    pub cipher: Option<CbcCipher>,
    /// Current phase-1 IV.
    pub iv: Vec<u8>,
    /// NAT-T method agreed through Vendor IDs.
    pub natt: UdpEncapMode,
    /// Last DPD sequence number we sent.
    pub dpd_seq: u32,
    /// Last DPD sequence number the peer sent (for ACKs).
    pub dpd_peer_seq: Option<u32>,
    /// Phase-2 message IDs seen or used (bounded).
    pub msgids: Vec<u32>,
}

impl Isakmp {
    /// A Main Mode state with nothing negotiated yet.
    pub fn new(kind: StateKind) -> Isakmp {
        Isakmp {
            kind,
            offered: Vec::new(),
            auths: Vec::new(),
            choice: None,
            sai_b: Vec::new(),
            dh: None,
            gxi: Vec::new(),
            gxr: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            gxy: None,
            keys: None,
            cipher: None,
            iv: Vec::new(),
            natt: UdpEncapMode::None,
            dpd_seq: 0,
            dpd_peer_seq: None,
            msgids: Vec::new(),
        }
    }
}

/// The IKEv1 part of an IPsec SA ([`crate::pluto::sa::ChildSa`] holds the rest): Quick Mode
/// state, message ID and IV, nonces, PFS, policy and choice, tunnel pseudo-SPIs.
pub struct QuickMode {
    /// State.
    pub kind: StateKind,
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
    /// Policy offered or accepted.
    pub policy: QmPolicy,
    /// What was agreed.
    pub choice: Option<QmChoice>,
    /// Tunnel pseudo-SPIs (in, out).
    pub tun: Option<(u32, u32)>,
}

impl QuickMode {
    /// A Quick Mode state with nothing negotiated yet.
    pub fn new(kind: StateKind) -> QuickMode {
        QuickMode {
            kind,
            msgid: 0,
            iv: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            dh: None,
            gxy: None,
            policy: QmPolicy::default(),
            choice: None,
            tun: None,
        }
    }
}
