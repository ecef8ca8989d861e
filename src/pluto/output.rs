//! What goes into and comes out of the sans-IO Pluto core: [`PlutoConfig`], [`WhackCmd`] and
//! [`Output`]. Shared by every protocol engine.

use crate::pluto::ids::{SerialNo, WhackClient};
use std::net::{IpAddr, SocketAddr};

use crate::addr::Subnet;
use crate::config::conf::ConnSection;
use crate::config::secrets::{Id, Secrets};
use crate::config::VirtualPrivate;
use crate::pluto::limits::{
    MAX_HALF_OPEN, MAX_HALF_OPEN_PER_PEER, MAX_IPSEC_SAS_PER_PEER, MAX_ISAKMP_SAS_PER_PEER,
    MAX_QUICK_MODES_PER_PEER, MAX_STATES,
};
use crate::sadb::SaSpec;
use crate::said::Said;
use crate::updown::{UpdownInfo, Verb};

/// One ipsecN device paired with the physical interface holding one of our addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `ipsec0`, …
    pub virt: String,
    /// `eth0`, …
    pub phys: String,
    /// The physical interface's IPv4 address: IKE listens on it (ports 500 and 4500).
    pub addr: IpAddr,
}

/// Debug switches (`plutodebug=` / `whack --debug-*`). Only `private` changes behaviour beyond
/// extra log lines: it allows key material in logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugFlags {
    /// `raw`: packet dumps (lengths only here).
    pub raw: bool,
    /// `crypt`: crypto steps (never keys unless `private`).
    pub crypt: bool,
    /// `parsing`: payload parsing.
    pub parsing: bool,
    /// `emitting`: payload emission.
    pub emitting: bool,
    /// `control`: state machine decisions.
    pub control: bool,
    /// `lifecycle`: states and connections created and deleted.
    pub lifecycle: bool,
    /// `klips`: SA and eroute operations requested.
    pub klips: bool,
    /// `private`: allow secrets (PSK, SKEYID, KEYMAT) in debug lines.
    pub private: bool,
}

impl DebugFlags {
    /// Parses `none`, `all` or a space-separated list of flag names (unknown names ignored).
    pub fn parse(s: &str) -> DebugFlags {
        let mut d = DebugFlags::default();
        for w in s.split_whitespace() {
            match w {
                "all" => {
                    d = DebugFlags {
                        raw: true,
                        crypt: true,
                        parsing: true,
                        emitting: true,
                        control: true,
                        lifecycle: true,
                        klips: true,
                        private: d.private,
                    }
                }
                "raw" => d.raw = true,
                "crypt" => d.crypt = true,
                "parsing" => d.parsing = true,
                "emitting" => d.emitting = true,
                "control" => d.control = true,
                "lifecycle" => d.lifecycle = true,
                "klips" => d.klips = true,
                "private" => d.private = true,
                _ => {}
            }
        }
        d
    }

    /// The `debug …` line of `--status` (`none` or the `+`-joined names).
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.raw, "raw"),
            (self.crypt, "crypt"),
            (self.parsing, "parsing"),
            (self.emitting, "emitting"),
            (self.control, "control"),
            (self.lifecycle, "lifecycle"),
            (self.klips, "klips"),
            (self.private, "private"),
        ] {
            if on {
                v.push(name);
            }
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join("+")
        }
    }

    /// Any flag that produces debug lines.
    pub fn any(&self) -> bool {
        self.raw || self.crypt || self.parsing || self.emitting || self.control || self.lifecycle
    }
}

/// Static facts and limits for a [`Pluto`](super::Pluto) instance.
#[derive(Debug, Clone)]
pub struct PlutoConfig {
    /// Our interfaces (ipsecN/phys/address). Connections are oriented by these addresses.
    pub interfaces: Vec<Interface>,
    /// The default route: (our address on it, next hop); resolves `%defaultroute`.
    pub defaultroute: Option<(IpAddr, IpAddr)>,
    /// The IPv6 default route: (our IPv6 address on its interface, next hop); resolves
    /// `%defaultroute` in a conn whose other addresses are IPv6.
    pub defaultroute6: Option<(IpAddr, IpAddr)>,
    /// `%myid` (`myid=`), if set.
    pub myid: Option<Id>,
    /// `uniqueids=yes`: a new ISAKMP SA with a peer ID releases older conns of that ID.
    pub uniqueids: bool,
    /// NAT traversal (RFC 3947 and drafts) offered and accepted.
    pub nat_traversal: bool,
    /// Debug switches.
    pub debug: DebugFlags,
    /// Most half-open Main Mode responder states kept at once (flood protection;
    /// [`MAX_HALF_OPEN`]). When reached, an MI1 evicts the oldest one that has not received
    /// MI2 (a template conn's; for a configured peer, else one of the configured address with
    /// the most): see [`crate::pluto::limits`].
    pub max_half_open: usize,
    /// Most half-open responder states per peer address ([`MAX_HALF_OPEN_PER_PEER`]); when
    /// reached, an MI1 evicts the address's oldest one that has not received MI2.
    pub max_half_open_per_peer: usize,
    /// NAT keepalive interval in seconds (RFC 3948; 20 s).
    pub keepalive_interval: u64,
    /// Most states of any kind (memory bound, [`MAX_STATES`]); new negotiations beyond it
    /// (MI1 that cannot evict a half-open state, QI1) are refused.
    pub max_states: usize,
    /// Most established ISAKMP SAs per authenticated peer ID ([`MAX_ISAKMP_SAS_PER_PEER`]):
    /// a responder deletes the oldest beyond it.
    pub max_isakmp_sas_per_peer: usize,
    /// Most IPsec SAs per authenticated peer ID ([`MAX_IPSEC_SAS_PER_PEER`]): a Quick Mode
    /// responder refuses new ones beyond it.
    pub max_ipsec_sas_per_peer: usize,
    /// Most Quick Modes in progress per authenticated peer ID with us as responder
    /// ([`MAX_QUICK_MODES_PER_PEER`]).
    pub max_quick_modes_per_peer: usize,
    /// Seconds between shunt scans (FreeS/WAN's SHUNT_SCAN_INTERVAL, 120 s; `config setup`
    /// `shuntscaninterval=`): the shell then reports the datapath's shunt eroutes
    /// ([`Pluto::handle_shunt_scan`](super::Pluto::handle_shunt_scan)).
    pub shunt_scan_interval: u64,
    /// Seconds a bare shunt (an OE failure shunt, a `%hold` waiting for a negotiation) may
    /// stay idle before it is removed (`config setup` `shuntlifetime=`, Openswan's keyword
    /// for FreeS/WAN's SHUNT_PATIENCE); `None`: 7.5 shunt scan intervals (900 s by default).
    pub shunt_lifetime: Option<u64>,
    /// `virtual_private=`: the private clients a Road Warrior behind a NAT may claim
    /// (default: none; see [`crate::pluto::peer_policy`]).
    pub virtual_private: VirtualPrivate,
    /// The IKE version a conn without `keyexchange=`/`ikev2=` initiates with (`config setup`
    /// `keyexchange=ikev1|ikev2`; IKEv1 by default, so FreeS/WAN files keep working against
    /// FreeS/WAN-era peers). Such a conn accepts either version as responder.
    pub ike_version: crate::pluto::version::IkeVersion,
    /// Half-open IKEv2 responder states from which an IKE_SA_INIT request must echo our
    /// COOKIE (RFC 7296 2.6) before we keep any state for it.
    pub cookie_threshold: usize,
    /// Largest IKEv2 message (IKE header on, UDP payload) sent whole to a peer that supports
    /// IKE fragmentation (RFC 7383): larger protected messages go as SKF fragments.
    pub ike_fragment_size: usize,
}

impl Default for PlutoConfig {
    fn default() -> PlutoConfig {
        PlutoConfig {
            interfaces: Vec::new(),
            defaultroute: None,
            defaultroute6: None,
            myid: None,
            uniqueids: true,
            nat_traversal: true,
            debug: DebugFlags::default(),
            max_half_open: MAX_HALF_OPEN,
            max_half_open_per_peer: MAX_HALF_OPEN_PER_PEER,
            keepalive_interval: 20,
            ike_version: crate::pluto::version::IkeVersion::V1,
            cookie_threshold: MAX_HALF_OPEN / 4,
            ike_fragment_size: 1280 - 20 - 8,
            max_states: MAX_STATES,
            max_isakmp_sas_per_peer: MAX_ISAKMP_SAS_PER_PEER,
            max_ipsec_sas_per_peer: MAX_IPSEC_SAS_PER_PEER,
            max_quick_modes_per_peer: MAX_QUICK_MODES_PER_PEER,
            shunt_scan_interval: 120,
            shunt_lifetime: None,
            virtual_private: VirtualPrivate::default(),
        }
    }
}

/// One shunt eroute of the datapath's table, as the shunt scan reports it (spec 4, FreeS/WAN's
/// periodic read of `/proc/net/ipsec_eroute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuntEroute {
    /// Source network.
    pub src: Subnet,
    /// Destination network.
    pub dst: Subnet,
    /// The shunt (`%hold`, `%pass`, `%drop`, `%reject`, `%trap`, …).
    pub shunt: crate::said::Shunt,
    /// Packets that matched it so far.
    pub packets: u64,
}

/// Eroute operation (spec 5.3 `ipsec eroute --add|--replace|--del`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErouteOp {
    /// Add a new eroute (none exists for the pair).
    Add,
    /// Replace the existing eroute of the pair (releases `%hold`-ed packets).
    Replace,
    /// Delete the eroute of the pair.
    Delete,
}

/// Commands from `ipsec whack` / `ipsec auto`. The shell parses files; the core gets data.
#[derive(Debug, Clone)]
pub enum WhackCmd {
    /// `auto --add`: load a connection (error 020 if the name exists).
    Add(ConnSection),
    /// `auto --replace`: delete if present, then add.
    Replace(ConnSection),
    /// `auto --delete`: drop the connection, its SAs and routing.
    Delete(String),
    /// `auto --up`: negotiate. With `asynchronous`, the whack client is released at once.
    Up {
        /// Connection name.
        name: String,
        /// `--asynchronous`.
        asynchronous: bool,
    },
    /// `auto --down`: delete the SAs locally, send Deletes; routing (%trap) stays.
    Down(String),
    /// `auto --route`: install the `%trap` eroute (and run prepare/route updown).
    Route(String),
    /// `auto --unroute`: remove the route (refused while an SA uses it).
    Unroute(String),
    /// `auto --status`: spec 5.8.
    Status,
    /// `auto --rereadsecrets`: the shell reread the file and hands over the result.
    RereadSecrets(Secrets),
    /// `auto --ready` / `--listen`: (re)start IKE; optional fresh secrets.
    Listen(Option<Secrets>),
    /// `auto --rereadgroups` (and the group half of `--ready`/`--listen`): the shell reread
    /// the policy group files ([`crate::pluto::groups`]).
    RereadGroups(crate::pluto::groups::PolicyGroups),
    /// `whack --deletestate N`.
    DeleteState(SerialNo),
    /// `whack --name N --rekey-ike` / `--rekey-ipsec` (as Libreswan's): replace the conn's
    /// newest IKE SA (`ike`) or newest IPsec/child SA now, as its rekey timer would
    /// (make-before-break); the client is released once the exchange has started.
    Rekey {
        /// Connection name.
        name: String,
        /// The IKE SA (true) or the IPsec/child SA (false).
        ike: bool,
    },
    /// `whack --debug-…` (the flags as a `plutodebug=` list).
    Debug(String),
    /// `whack --shutdown`: delete everything locally without notifying peers.
    Shutdown,
}

/// Something the shell must do, in the order produced.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `data` verbatim as one UDP datagram from `local` to `remote`. On port 4500 the
    /// data already carries the non-ESP marker (or is the 1-byte NAT keepalive `0xFF`).
    Send {
        /// Our address and port (500 or 4500).
        local: SocketAddr,
        /// Peer's address and port.
        remote: SocketAddr,
        /// The UDP payload.
        data: Vec<u8>,
    },
    /// Add these SAs to the SADB and group them. `sas` holds inbound SAs first, then outbound
    /// ones (make-before-break); each `groups` entry lists one group inner→outer
    /// (tun→comp→esp→ah).
    InstallSas {
        /// Connection name (with instance suffix).
        conn: String,
        /// The SAs.
        sas: Vec<SaSpec>,
        /// SA groups to create.
        groups: Vec<Vec<Said>>,
    },
    /// Change the eroute for (`src`, `dst`): to an SA group head or to a shunt
    /// (`int` SAID, e.g. `%trap`).
    Eroute {
        /// What to do.
        op: ErouteOp,
        /// Our client network.
        src: Subnet,
        /// Peer's client network.
        dst: Subnet,
        /// The target (ignored for Delete).
        said: Said,
    },
    /// Delete these SAs (each SAID of each group).
    DeleteSas {
        /// The SAIDs.
        saids: Vec<Said>,
    },
    /// Run the connection's updown script for `verb`.
    Updown {
        /// The verb (suffix from `info.verb_text`).
        verb: Verb,
        /// The environment facts.
        info: UpdownInfo,
    },
    /// A log line (syslog authpriv in the daemon).
    Log(String),
    /// A line for whack client `client`: print as `format!("{code:03} {text}")`.
    Whack {
        /// The client given to [`Pluto::whack`](super::Pluto::whack).
        client: WhackClient,
        /// The whack code (spec 5.9).
        code: u16,
        /// The text.
        text: String,
    },
    /// Look up `name`/`qtype` in DNS (opportunistic encryption) and hand the outcome to
    /// [`Pluto::handle_dns`](super::Pluto::handle_dns) with the same `id`. Never blocks Pluto.
    DnsLookup {
        /// The lookup's id.
        id: crate::dns::LookupId,
        /// The name.
        name: String,
        /// The record type.
        qtype: crate::dns::RrType,
    },
    /// The whack command of `client` is complete; exit with `status`.
    WhackDone {
        /// The client.
        client: WhackClient,
        /// Exit status: last non-log code, 004 → 0.
        status: i32,
    },
}

/// Whack codes (spec 5.9).
pub mod rc {
    /// Comment.
    pub const COMMENT: u16 = 0;
    /// Whack problem.
    pub const WHACK_PROBLEM: u16 = 1;
    /// Log line (hidden by `ipsec auto` unless --verbose).
    pub const LOG: u16 = 2;
    /// Serious log line.
    pub const LOG_SERIOUS: u16 = 3;
    /// Success.
    pub const SUCCESS: u16 = 4;
    /// Retransmission.
    pub const RETRANSMISSION: u16 = 10;
    /// Duplicate connection name.
    pub const DUPNAME: u16 = 20;
    /// Unknown connection name.
    pub const UNKNOWN_NAME: u16 = 21;
    /// Cannot orient.
    pub const ORIENT: u16 = 22;
    /// Cannot route.
    pub const ROUTE: u16 = 25;
    /// Not listening.
    pub const DEAF: u16 = 24;
    /// Max retransmissions.
    pub const NORETRANSMISSION: u16 = 31;
    /// Internal error / bad input.
    pub const INTERNAL: u16 = 32;
    /// New state: 100 + state number.
    pub const NEW_STATE: u16 = 100;
    /// Notification received: 200 + type.
    pub const NOTIFY: u16 = 200;
}

/// Exit status for whack from the last non-log code (spec 5.9).
pub fn whack_status(code: u16) -> i32 {
    match code {
        rc::SUCCESS => 0,
        c => i32::from(c),
    }
}
