//! How an IKE version plugs into the engine.
//!
//! The engine ([`crate::pluto::engine`] and its helpers) owns connections, SA records
//! ([`crate::pluto::sa`]), timers ([`crate::pluto::timers`]), routing, SA installation,
//! updown and whack. A version module (`ikev1`, `ikev2`) owns the exchanges: it parses
//! and builds its messages, keeps its negotiation state inside the records ([`IkeExchange`],
//! [`ChildExchange`]) and talks to the engine through a small contract.
//!
//! **The engine calls the version** through [`ExchangeHandlers`]: a datagram for it; start an
//! IKE SA (with the child SA to negotiate once it is up); start a child SA over an
//! established IKE SA; tell the peer an SA is going; probe a quiet peer. The record's state
//! enum answers what the engine asks about a state: name, number and story (`--status`,
//! whack codes), half-open responder or not (flood bounds), what to say when
//! retransmissions run out.
//!
//! **The version calls the engine** (`impl Pluto` methods) to:
//!
//! * allocate serials and SPIs and create records (`sas.new_serial`, `sas.insert_ike`,
//!   `sas.insert_child`, `spis`), move an SA to another conn (`sas.set_conn`), pick and
//!   instantiate connections, look up secrets (`psk_for`, `rsa_key_for`);
//! * send messages and have them retransmitted (`send_for`, `schedule` with
//!   [`crate::pluto::timers::TimerKind::Retransmit`]; the engine's retry policy resends and
//!   restarts keying), answer duplicates (`resend_last`), note liveness (`heard_from`);
//! * report an IKE SA established (`ike_established`: newest SA, rekey/expiry, liveness and
//!   keepalive timers, `uniqueids`);
//! * hand over what a child SA negotiated ([`crate::pluto::install::NegotiatedChild`] via
//!   `set_negotiated`), have it installed (`install_child`: inbound first, outbound once
//!   confirmed), routed (`route_to_child`) and timed (`child_established`);
//! * delete SAs (`delete_sa`), log (`slog`, `log_transition`) and release whack clients.
//!
//! Which version a conn negotiates with is decided in one place (`version_of_conn`); which
//! version a datagram is for, in another (`dispatch_datagram`). IKEv2 plugged in as a `V2`
//! variant in [`IkeVersion`], [`IkeExchange`] and [`ChildExchange`], the `Ikev2` type
//! implementing [`ExchangeHandlers`], and those two decisions.

use std::net::SocketAddr;

use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::ikev1::{self, Ikev1};
use crate::pluto::ikev2::state::{Ikev2Child, Ikev2Ike, V2State};
use crate::pluto::ikev2::Ikev2;
use crate::pluto::sa::PendingChild;

/// An IKE protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeVersion {
    /// IKEv1 (RFC 2409): Main Mode, Quick Mode, Informational.
    V1,
    /// IKEv2 (RFC 7296): IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL.
    V2,
}

impl IkeVersion {
    /// `IKEv1` / `IKEv2`.
    pub fn name(self) -> &'static str {
        match self {
            IkeVersion::V1 => "IKEv1",
            IkeVersion::V2 => "IKEv2",
        }
    }
}

/// The version-specific state of an IKE SA record.
pub enum IkeExchange {
    /// IKEv1: the ISAKMP SA's Main Mode state.
    V1(Box<ikev1::state::Isakmp>),
    /// IKEv2: the IKE SA's exchange state.
    V2(Box<Ikev2Ike>),
}

/// The version-specific state of a child SA record.
pub enum ChildExchange {
    /// IKEv1: the IPsec SA's Quick Mode state.
    V1(Box<ikev1::state::QuickMode>),
    /// IKEv2: the child SA's exchange state.
    V2(Box<Ikev2Child>),
}

/// What a state tells the engine about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateInfo {
    /// Pluto's state name (`STATE_MAIN_I1`, …).
    pub name: &'static str,
    /// Pluto's state number (whack code 100 + n).
    pub number: u16,
    /// The state's story (`sent MI1, expecting MR1`, …).
    pub story: &'static str,
}

impl IkeExchange {
    /// The version.
    pub fn version(&self) -> IkeVersion {
        match self {
            IkeExchange::V1(_) => IkeVersion::V1,
            IkeExchange::V2(_) => IkeVersion::V2,
        }
    }

    /// Name, number and story of the state.
    pub fn info(&self) -> StateInfo {
        match self {
            IkeExchange::V1(x) => x.kind.info(),
            IkeExchange::V2(x) => x.kind.info(),
        }
    }

    /// A responder state that has answered an unauthenticated first message and holds
    /// resources for it (bounded by [`crate::pluto::limits`]).
    pub fn half_open_responder(&self) -> bool {
        match self {
            IkeExchange::V1(x) => x.kind.half_open_responder(),
            IkeExchange::V2(x) => x.kind == V2State::ParentR1,
        }
    }

    /// A half-open responder state the peer has not yet proven it can receive our answers
    /// at its address (IKEv1: no MI2 yet): the first to be evicted.
    pub fn unproven_responder(&self) -> bool {
        match self {
            IkeExchange::V1(x) => x.kind == ikev1::state::StateKind::MainR1,
            IkeExchange::V2(x) => x.kind == V2State::ParentR1,
        }
    }

    /// An initiator still waiting for the first answer to its first message (retried for
    /// longer when keyingtries is %forever).
    pub fn awaiting_first_response(&self) -> bool {
        match self {
            IkeExchange::V1(x) => x.kind == ikev1::state::StateKind::MainI1,
            IkeExchange::V2(x) => x.kind == V2State::ParentI1,
        }
    }

    /// Why retransmitting gave up (appended to the log line), by state.
    pub fn give_up_reason(&self) -> &'static str {
        match self {
            IkeExchange::V1(x) => x.kind.give_up_reason(),
            IkeExchange::V2(x) => x.kind.give_up_reason(),
        }
    }

    /// The negotiated algorithms, as `--status` shows them (`IKE algorithm newest: …`).
    pub fn alg_text(&self) -> Option<String> {
        match self {
            IkeExchange::V1(x) => x.choice.as_ref().map(|c| c.alg.name()),
            IkeExchange::V2(x) => x.alg.map(|a| a.name()),
        }
    }

    /// The IKEv1 state.
    pub fn v1(&self) -> Option<&ikev1::state::Isakmp> {
        match self {
            IkeExchange::V1(x) => Some(x),
            IkeExchange::V2(_) => None,
        }
    }

    /// The IKEv2 state.
    pub fn v2(&self) -> Option<&Ikev2Ike> {
        match self {
            IkeExchange::V2(x) => Some(x),
            IkeExchange::V1(_) => None,
        }
    }

    /// The IKEv2 state, mutably.
    pub fn v2_mut(&mut self) -> Option<&mut Ikev2Ike> {
        match self {
            IkeExchange::V2(x) => Some(x),
            IkeExchange::V1(_) => None,
        }
    }

    /// The IKEv1 state, mutably.
    pub fn v1_mut(&mut self) -> Option<&mut ikev1::state::Isakmp> {
        match self {
            IkeExchange::V1(x) => Some(x),
            IkeExchange::V2(_) => None,
        }
    }
}

impl ChildExchange {
    /// The version.
    pub fn version(&self) -> IkeVersion {
        match self {
            ChildExchange::V1(_) => IkeVersion::V1,
            ChildExchange::V2(_) => IkeVersion::V2,
        }
    }

    /// Name, number and story of the state.
    pub fn info(&self) -> StateInfo {
        match self {
            ChildExchange::V1(x) => x.kind.info(),
            ChildExchange::V2(x) => x.kind.info(),
        }
    }

    /// Why retransmitting gave up (appended to the log line), by state.
    pub fn give_up_reason(&self) -> &'static str {
        match self {
            ChildExchange::V1(x) => x.kind.give_up_reason(),
            ChildExchange::V2(x) => x.kind.give_up_reason(),
        }
    }

    /// The IKEv1 state.
    pub fn v1(&self) -> Option<&ikev1::state::QuickMode> {
        match self {
            ChildExchange::V1(x) => Some(x),
            ChildExchange::V2(_) => None,
        }
    }

    /// The IKEv2 state.
    pub fn v2(&self) -> Option<&Ikev2Child> {
        match self {
            ChildExchange::V2(x) => Some(x),
            ChildExchange::V1(_) => None,
        }
    }

    /// The IKEv2 state, mutably.
    pub fn v2_mut(&mut self) -> Option<&mut Ikev2Child> {
        match self {
            ChildExchange::V2(x) => Some(x),
            ChildExchange::V1(_) => None,
        }
    }

    /// The IKEv1 state, mutably.
    pub fn v1_mut(&mut self) -> Option<&mut ikev1::state::QuickMode> {
        match self {
            ChildExchange::V1(x) => Some(x),
            ChildExchange::V2(_) => None,
        }
    }
}

/// The exchange handlers of one IKE version: what the engine asks of it. Implemented by a
/// unit type per version (`ikev1::Ikev1`); the engine dispatches on [`IkeVersion`].
pub trait ExchangeHandlers {
    /// An IKE datagram for this version (on port 4500 without its non-ESP marker). Log lines
    /// go through the unauthenticated-input rate limit until the message is authenticated.
    fn handle_datagram(p: &mut Pluto, local: SocketAddr, remote: SocketAddr, data: &[u8]);

    /// Starts an IKE SA for conn `key` (attempt `try_no`), replacing IKE SA `replacing` if
    /// given; `pending` is the child SA to negotiate once it is established.
    fn initiate_ike(
        p: &mut Pluto,
        key: &str,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing: Option<SerialNo>,
    );

    /// Starts a child SA for conn `key` over established IKE SA `ike` (attempt `try_no`),
    /// replacing child SA `replacing` if given.
    fn initiate_child(
        p: &mut Pluto,
        ike: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
        try_no: u32,
    );

    /// Tells the peer that SA `serial` (IKE or child) is going, if its state is one the peer
    /// knows of. Called before the engine removes the record.
    fn send_delete(p: &mut Pluto, serial: SerialNo);

    /// Sends a liveness probe over IKE SA `ike` (IKEv1: DPD R_U_THERE).
    fn send_liveness_probe(p: &mut Pluto, ike: SerialNo);

    /// The request outstanding on established IKE SA `ike` got no answer in time: resend it,
    /// or give up on the peer (IKEv1 arms no such timer).
    fn retransmit_request(p: &mut Pluto, ike: SerialNo);
}

impl Pluto {
    /// The IKE version conn `key` negotiates with as initiator (`keyexchange=`, `ikev2=`,
    /// else `config setup` `keyexchange=`).
    pub(crate) fn version_of_conn(&self, key: &str) -> IkeVersion {
        self.conns
            .get(key)
            .map_or(self.cfg.ike_version, |c| c.ike_policy.initiate)
    }

    /// Hands a datagram to the handlers of its version. Byte 17 of the header holds the
    /// major and minor version (RFC 2408 3.1, RFC 7296 3.1): major 2 goes to IKEv2, anything
    /// else to IKEv1, whose parser refuses versions other than 1 with its own log line.
    pub(crate) fn dispatch_datagram(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        match data.get(17).map(|v| v >> 4) {
            Some(2) => Ikev2::handle_datagram(self, local, remote, data),
            _ => {
                // An IKEv1 message answering our IKE_SA_INIT (an IKEv1-only peer's
                // INVALID_MAJOR_VERSION notification, RFC 7296 1.5): it does not speak IKEv2.
                let asked = data.get(..8).and_then(|c| {
                    self.sas
                        .by_spi_i(c.try_into().ok()?)
                        .find(|s| {
                            s.initiator
                                && s.exchange.v2().is_some_and(|x| x.kind == V2State::ParentI1)
                                && s.remote.ip() == remote.ip()
                        })
                        .map(|s| s.serial())
                });
                if let Some(serial) = asked {
                    if self.fall_back_to_v1(serial, "IKE_SA_INIT answered with an IKEv1 message") {
                        return;
                    }
                }
                Ikev1::handle_datagram(self, local, remote, data)
            }
        }
    }

    /// `ikev2=propose` (or a conn accepting both versions whose initiator version is IKEv2):
    /// IKE SA `serial`'s IKE_SA_INIT got no answer, or one showing the peer does not speak
    /// IKEv2 (`why`). This keying attempt goes on with IKEv1 Main Mode (the next one starts
    /// with IKEv2 again). `false` (nothing done) unless `serial` is such an IKE_SA_INIT of a
    /// conn that allows IKEv1; `ikev2=insist` never falls back.
    pub(crate) fn fall_back_to_v1(&mut self, serial: SerialNo, why: &str) -> bool {
        let Some(s) = self.sas.ike(serial) else {
            return false;
        };
        if !s.initiator || !s.exchange.v2().is_some_and(|x| x.kind == V2State::ParentI1) {
            return false;
        }
        let key = s.conn().to_string();
        let (try_no, pending) = (s.try_no, s.pending_child);
        let Some(c) = self.conns.get(&key) else {
            return false;
        };
        if c.ike_policy.initiate != IkeVersion::V2 || !c.ike_policy.accept_v1 {
            return false;
        }
        if c.ike_v1().is_empty() {
            self.slog(
                serial,
                format!("{why}, but ike= lists no suite IKEv1 can negotiate: no fallback to IKEv1"),
            );
            return false;
        }
        self.slog(
            serial,
            format!("{why}: the peer does not speak IKEv2; falling back to IKEv1 Main Mode for this attempt"),
        );
        let whack = self.sas.ike_mut(serial).and_then(|s| s.whack.take());
        self.delete_sa(serial, false);
        Ikev1::initiate_ike(self, &key, whack, try_no, pending, None);
        true
    }

    /// Starts an IKE SA for `key` with its conn's version ([`ExchangeHandlers::initiate_ike`]).
    pub(crate) fn initiate_ike(
        &mut self,
        key: &str,
        whack: Option<WhackClient>,
        try_no: u32,
        pending: Option<PendingChild>,
        replacing: Option<SerialNo>,
    ) {
        match self.version_of_conn(key) {
            IkeVersion::V1 => Ikev1::initiate_ike(self, key, whack, try_no, pending, replacing),
            IkeVersion::V2 => Ikev2::initiate_ike(self, key, whack, try_no, pending, replacing),
        }
    }

    /// Starts a child SA over IKE SA `ike` with that SA's version
    /// ([`ExchangeHandlers::initiate_child`]).
    pub(crate) fn initiate_child(
        &mut self,
        ike: SerialNo,
        key: &str,
        whack: Option<WhackClient>,
        replacing: Option<SerialNo>,
        try_no: u32,
    ) {
        let Some(v) = self.sas.ike(ike).map(|s| s.exchange.version()) else {
            return;
        };
        match v {
            IkeVersion::V1 => Ikev1::initiate_child(self, ike, key, whack, replacing, try_no),
            IkeVersion::V2 => Ikev2::initiate_child(self, ike, key, whack, replacing, try_no),
        }
    }

    /// Tells the peer SA `serial` is going ([`ExchangeHandlers::send_delete`]).
    pub(crate) fn send_delete(&mut self, serial: SerialNo) {
        let v = match (self.sas.ike(serial), self.sas.child(serial)) {
            (Some(s), _) => s.exchange.version(),
            (None, Some(c)) => c.exchange.version(),
            (None, None) => return,
        };
        match v {
            IkeVersion::V1 => Ikev1::send_delete(self, serial),
            IkeVersion::V2 => Ikev2::send_delete(self, serial),
        }
    }

    /// EVENT_RETRANSMIT of an established IKE SA's own request
    /// ([`ExchangeHandlers::retransmit_request`]).
    pub(crate) fn retransmit_request(&mut self, ike: SerialNo) {
        let Some(v) = self.sas.ike(ike).map(|s| s.exchange.version()) else {
            return;
        };
        match v {
            IkeVersion::V1 => Ikev1::retransmit_request(self, ike),
            IkeVersion::V2 => Ikev2::retransmit_request(self, ike),
        }
    }

    /// Probes the peer of IKE SA `ike` ([`ExchangeHandlers::send_liveness_probe`]).
    pub(crate) fn send_liveness_probe(&mut self, ike: SerialNo) {
        let Some(v) = self.sas.ike(ike).map(|s| s.exchange.version()) else {
            return;
        };
        match v {
            IkeVersion::V1 => Ikev1::send_liveness_probe(self, ike),
            IkeVersion::V2 => Ikev2::send_liveness_probe(self, ike),
        }
    }

    /// Name, number and story of the state of SA `serial`, and whether it is established.
    pub(crate) fn state_info(&self, serial: SerialNo) -> Option<(StateInfo, bool)> {
        if let Some(s) = self.sas.ike(serial) {
            return Some((s.exchange.info(), s.established));
        }
        self.sas
            .child(serial)
            .map(|c| (c.exchange.info(), c.established))
    }
}

/// Exchange states for unit tests of the engine's tables.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// An IKEv1 IKE SA state (initiator, MI1 sent).
    pub(crate) fn ike_x() -> IkeExchange {
        IkeExchange::V1(Box::new(ikev1::state::Isakmp::new(
            ikev1::state::StateKind::MainI1,
        )))
    }

    /// An IKEv1 child SA state (initiator, QI1 sent).
    pub(crate) fn child_x() -> ChildExchange {
        ChildExchange::V1(Box::new(ikev1::state::QuickMode::new(
            ikev1::state::StateKind::QuickI1,
        )))
    }
}
