//! Connections: `conn` sections turned into oriented, typed policy (shared by every IKE
//! engine), with Road-Warrior templates and their instances, and routing state.

use crate::pluto::ids::SerialNo;
use std::net::{IpAddr, Ipv4Addr};

use crate::addr::{Family, Subnet};
use crate::config::conf::{ConfError, ConnSection, Section};
use crate::config::secrets::Id;
use crate::pluto::crypto::{DhGroup, PublicKey};
use crate::said::Shunt;

use super::output::{Interface, PlutoConfig};
use super::proposal::{self, AuthKind, EspAlg, IkeAlg};
use super::version::IkeVersion;

/// Longest `ikelifetime` (8 h).
pub const IKE_LIFETIME_CAP: u64 = 8 * 3600;
/// Longest `keylife` (24 h).
pub const IPSEC_LIFETIME_CAP: u64 = 24 * 3600;

/// One end of a connection, after orientation.
#[derive(Debug, Clone)]
pub struct End {
    /// Public address; `None` for `%any` (Road Warrior template).
    pub host: Option<IpAddr>,
    /// Client network; the host /32 when no subnet is given.
    pub client: Subnet,
    /// `leftsubnet=` was given.
    pub has_client: bool,
    /// Next hop (`None` = directly connected to the peer).
    pub nexthop: Option<IpAddr>,
    /// IKE identity (default: the host address, `%any` for a Road Warrior).
    pub id: Id,
    /// The ID was given explicitly.
    pub id_explicit: bool,
    /// RSA public key (`leftrsasigkey=0s…`).
    pub rsakey: Option<PublicKey>,
    /// `leftupdown=`.
    pub updown: Option<String>,
    /// `leftrsasigkey=%dnsondemand|%dnsonload|%dns`: the key comes from DNS.
    pub dns_key: Option<DnsKeyPolicy>,
}

/// When a `%dns…` RSA key is looked up (spec 1.3 `leftrsasigkey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsKeyPolicy {
    /// `%dnsondemand` (the default): looked up when a negotiation needs it.
    OnDemand,
    /// `%dnsonload` / `%dns`: looked up when the conn is loaded (and kept).
    OnLoad,
}

/// Who the peer is when it is not a fixed address (spec 1.3 `right=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A fixed address, or `%any` (Road Warrior template).
    Fixed,
    /// `%opportunistic`: any peer whose gateway and key are found in DNS.
    Opportunistic,
    /// `%group`: a policy group template, one instance per entry of its group file.
    Group,
    /// `%opportunisticgroup`: a policy group template whose instances are opportunistic.
    OpportunisticGroup,
}

impl PeerKind {
    /// The `--status` host text (`%opportunistic`, …); `None` for [`PeerKind::Fixed`].
    pub fn text(self) -> Option<&'static str> {
        match self {
            PeerKind::Fixed => None,
            PeerKind::Opportunistic => Some("%opportunistic"),
            PeerKind::Group => Some("%group"),
            PeerKind::OpportunisticGroup => Some("%opportunisticgroup"),
        }
    }

    /// A policy group template (never routed itself).
    pub fn is_group(self) -> bool {
        matches!(self, PeerKind::Group | PeerKind::OpportunisticGroup)
    }
}

impl End {
    /// The host as text (`%any` when unknown).
    pub fn host_text(&self) -> String {
        self.host
            .map(|h| h.to_string())
            .unwrap_or_else(|| "%any".into())
    }
}

/// `type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    /// Tunnel mode (default).
    Tunnel,
    /// Transport mode.
    Transport,
    /// A shunt eroute only.
    Shunt(Shunt),
}

/// `auto=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Nothing at startup.
    Ignore,
    /// Load.
    Add,
    /// Load and route.
    Route,
    /// Load, route and bring up.
    Start,
    /// Manual keying (not for Pluto).
    Manual,
}

/// `dpdaction=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    /// Keep the route as `%trap` (traffic re-triggers negotiation).
    Hold,
    /// Remove SAs and eroute.
    Clear,
    /// Renegotiate at once.
    Restart,
}

/// Dead Peer Detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Seconds between R_U_THERE.
    pub delay: u64,
    /// Seconds of silence before the peer is declared dead.
    pub timeout: u64,
    /// What then.
    pub action: DpdAction,
}

/// Which IKE versions a conn speaks: `keyexchange=ikev1|ikev2|ike`, or Libreswan's
/// `ikev2=never|permit|propose|insist`. A conn that says nothing initiates with the
/// `config setup` `keyexchange=` version (IKEv1 unless changed, so FreeS/WAN files keep
/// working against FreeS/WAN-era peers) and, as a responder, accepts either version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkePolicy {
    /// The version we initiate with.
    pub initiate: IkeVersion,
    /// A peer may start IKEv1 (Main Mode) for this conn.
    pub accept_v1: bool,
    /// A peer may start IKEv2 (IKE_SA_INIT) for this conn.
    pub accept_v2: bool,
}

impl IkePolicy {
    /// Whether a peer may negotiate this conn with version `v`.
    pub fn accepts(&self, v: IkeVersion) -> bool {
        match v {
            IkeVersion::V1 => self.accept_v1,
            IkeVersion::V2 => self.accept_v2,
        }
    }

    /// From `keyexchange=` and `ikev2=` (at most one of them), with `default` the
    /// `config setup` version.
    fn parse(
        keyexchange: Option<&str>,
        ikev2: Option<&str>,
        default: IkeVersion,
    ) -> Result<IkePolicy, String> {
        let p = |initiate, accept_v1, accept_v2| IkePolicy {
            initiate,
            accept_v1,
            accept_v2,
        };
        Ok(match (keyexchange, ikev2) {
            (Some(k), Some(v)) => {
                return Err(format!(
                    "keyexchange={k} and ikev2={v} both given: use one of them"
                ))
            }
            (Some("ikev1"), None) | (None, Some("never" | "no")) => p(IkeVersion::V1, true, false),
            (Some("ikev2"), None) | (None, Some("insist")) => p(IkeVersion::V2, false, true),
            (None, Some("permit")) => p(IkeVersion::V1, true, true),
            (None, Some("propose" | "yes")) => p(IkeVersion::V2, true, true),
            (Some("ike") | None, None) => p(default, true, true),
            (Some(k), None) => return Err(format!("keyexchange={k}: unknown IKE version")),
            (None, Some(v)) => return Err(format!("ikev2={v}: unknown value")),
        })
    }
}

/// A conn's SA eroute on narrowed traffic selectors (RFC 7296 2.9): the pair it sits on, and
/// the routing of the conn's own client pair beneath it (never `Erouted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Narrowed {
    /// Our side of the narrowed pair.
    pub our: Subnet,
    /// The peer's side of the narrowed pair.
    pub peer: Subnet,
    /// What the conn's own client pair is routed to meanwhile.
    pub under: Routing,
}

/// Routing state of a connection (spec 5.8 wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// No eroute.
    Unrouted,
    /// `%trap` (or a type= shunt) eroute.
    Prospective,
    /// Eroute to an SA group.
    Erouted,
    /// Failure shunt in place.
    FailShunt,
    /// `%hold` eroute (and the route) while a responder waits for QI2 of the conn's first
    /// IPsec SA, so the peer client's replies are not sent in the clear meanwhile.
    Hold,
}

impl Routing {
    /// `--status` wording.
    pub fn text(self) -> &'static str {
        match self {
            Routing::Unrouted => "unrouted",
            Routing::Prospective => "prospective erouted",
            Routing::Erouted => "erouted",
            Routing::FailShunt => "fail erouted",
            Routing::Hold => "erouted HOLD",
        }
    }
}

/// A connection (or a Road-Warrior template, or one of its instances).
#[derive(Debug, Clone)]
pub struct Connection {
    /// Name as written.
    pub name: String,
    /// Instance number (0 = not an instance).
    pub instance: u32,
    /// Our end.
    pub this: End,
    /// The peer's end.
    pub that: End,
    /// Tunnel, transport or shunt.
    pub ctype: ConnType,
    /// Startup action.
    pub auto: Auto,
    /// Authentication methods allowed (empty for authby=never).
    pub auth: Vec<AuthKind>,
    /// The IKE versions it speaks.
    pub ike_policy: IkePolicy,
    /// `auth=ah`.
    pub ah: bool,
    /// PFS.
    pub pfs: bool,
    /// IPComp.
    pub compress: bool,
    /// Phase-1 suites.
    pub ike: Vec<IkeAlg>,
    /// `ike=` given explicitly.
    pub ike_explicit: bool,
    /// ESP suites.
    pub esp: Vec<EspAlg>,
    /// `esp=` given explicitly.
    pub esp_explicit: bool,
    /// `pfsgroup=`.
    pub pfsgroup: Option<DhGroup>,
    /// ISAKMP SA lifetime (s).
    pub ikelifetime: u64,
    /// IPsec SA lifetime (s).
    pub keylife: u64,
    /// Rekey margin (s).
    pub rekeymargin: u64,
    /// Rekey fuzz (percent).
    pub rekeyfuzz: u64,
    /// `rekey=yes`.
    pub rekey: bool,
    /// `reauth=yes` (strongSwan's and Libreswan's meaning; IKEv2 only): an IKE SA due for
    /// replacement is replaced by a new IKE_SA_INIT and IKE_AUTH (make-before-break) rather
    /// than rekeyed with CREATE_CHILD_SA (`reauth=no`, the default).
    pub reauth: bool,
    /// Keying attempts (0 = forever).
    pub keyingtries: u32,
    /// Failure shunt.
    pub failureshunt: Option<Shunt>,
    /// DPD (None: we do not probe, but we answer).
    pub dpd: Option<Dpd>,
    /// `forceencaps=yes`.
    pub forceencaps: bool,
    /// `disablearrivalcheck=yes`.
    pub disablearrivalcheck: bool,
    /// Our interface.
    pub interface: Interface,
    /// Routing state.
    pub routing: Routing,
    /// Routed by `auto=route` / `--route` (the `%trap` stays when SAs go).
    pub policy_routed: bool,
    /// State owning the eroute.
    pub eroute_owner: Option<SerialNo>,
    /// The owner's SA eroute sits on traffic selectors the peer narrowed (RFC 7296 2.9)
    /// rather than on this conn's client pair.
    pub narrowed: Option<Narrowed>,
    /// Newest ISAKMP SA.
    pub newest_isakmp: Option<SerialNo>,
    /// Newest IPsec SA.
    pub newest_ipsec: Option<SerialNo>,
    /// `--up` given (policy UP).
    pub up: bool,
    /// Instances made so far (templates).
    pub next_instance: u32,
    /// Connection-level keying attempt counter.
    pub tries: u32,
    /// Fixed peer, opportunistic, or a policy group template.
    pub peer_kind: PeerKind,
    /// For a policy group instance (`private#10.0.0.0/8`): the group conn's name.
    pub group: Option<String>,
}

fn conf_err(c: &ConnSection, msg: impl Into<String>) -> ConfError {
    ConfError::new(c.file.clone(), c.line, msg)
}

/// The address family a conn's `%defaultroute` resolves in: `hostaddrfamily=` /
/// `connaddrfamily=` (Openswan) when given, else the family of the other end's literal address
/// or next hop, else IPv4 when there is an IPv4 default route and IPv6 otherwise.
fn dr_family(p: &Section, side: &str, cfg: &PlutoConfig) -> Family {
    for k in ["hostaddrfamily", "connaddrfamily"] {
        match p.get(k) {
            Some("ipv6") => return Family::V6,
            Some("ipv4") => return Family::V4,
            _ => {}
        }
    }
    let other = if side == "left" { "right" } else { "left" };
    for k in [other.to_string(), format!("{other}nexthop")] {
        if let Some(ip) = p.get(&k).and_then(|v| v.parse::<IpAddr>().ok()) {
            return Family::of(ip);
        }
    }
    if cfg.defaultroute.is_none() && cfg.defaultroute6.is_some() {
        Family::V6
    } else {
        Family::V4
    }
}

struct RawEnd {
    host: Option<IpAddr>,
    dr_nexthop: Option<IpAddr>,
    kind: PeerKind,
}

fn raw_end(p: &Section, side: &str, cfg: &PlutoConfig) -> Result<RawEnd, ConfError> {
    let v = p
        .get(side)
        .ok_or_else(|| p.err_at(side, format!("{side}= is required")))?;
    match v {
        "%any" | "%any6" | "0.0.0.0" | "::" => Ok(RawEnd {
            host: None,
            dr_nexthop: None,
            kind: PeerKind::Fixed,
        }),
        "%defaultroute" => {
            let family = dr_family(p, side, cfg);
            let dr = match family {
                Family::V4 => cfg.defaultroute,
                Family::V6 => cfg.defaultroute6,
            };
            let (a, nh) = dr.ok_or_else(|| {
                p.err_at(
                    side,
                    match family {
                        Family::V4 => format!("{side}=%defaultroute but there is no default route"),
                        Family::V6 => {
                            format!("{side}=%defaultroute but there is no IPv6 default route")
                        }
                    },
                )
            })?;
            Ok(RawEnd {
                host: Some(a),
                dr_nexthop: Some(nh),
                kind: PeerKind::Fixed,
            })
        }
        "%opportunistic" | "%group" | "%opportunisticgroup" => Ok(RawEnd {
            host: None,
            dr_nexthop: None,
            kind: match v {
                "%opportunistic" => PeerKind::Opportunistic,
                "%group" => PeerKind::Group,
                _ => PeerKind::OpportunisticGroup,
            },
        }),
        s => s
            .parse::<IpAddr>()
            .map(|a| RawEnd {
                host: Some(a),
                dr_nexthop: None,
                kind: PeerKind::Fixed,
            })
            .map_err(|_| {
                p.err_at(
                    side,
                    format!("{side}=\"{s}\" is neither an IP address nor a host name that resolves to one"),
                )
            }),
    }
}

fn build_end(
    p: &Section,
    side: &str,
    raw: RawEnd,
    family: Family,
    ours: bool,
    cfg: &PlutoConfig,
) -> Result<End, ConfError> {
    let key = |k: &str| format!("{side}{k}");
    let (client, has_client) = match p.get(&key("subnet")) {
        Some(s) if s.starts_with("vhost:") || s.starts_with("virtual:") => {
            return Err(p.err_at(
                &key("subnet"),
                format!(
                    "{}={s}: Openswan's vhost:/virtual: subnets are not supported; omit {} so that a peer behind a NAT may use a private client that virtual_private= (config setup) allows",
                    key("subnet"),
                    key("subnet")
                ),
            ))
        }
        Some(s) => (
            s.parse::<Subnet>()
                .map_err(|e| p.err_at(&key("subnet"), format!("{}: {e}", key("subnet"))))?,
            true,
        ),
        // A Road Warrior's client is its address, known when it arrives (of `family`).
        None => (
            Subnet::host(raw.host.unwrap_or(family.unspecified())),
            false,
        ),
    };
    let nexthop = p.get_nexthop(side, family, raw.dr_nexthop, || {
        Ok(match family {
            Family::V4 => cfg.defaultroute,
            Family::V6 => cfg.defaultroute6,
        }
        .filter(|_| ours)
        .map(|d| d.1))
    })?;
    let (id, id_explicit) = match p.get(&key("id")) {
        None => (raw.host.map_or(Id::Any, Id::from_ip), false),
        Some("%myid") => (
            cfg.myid
                .clone()
                .unwrap_or_else(|| raw.host.map_or(Id::Any, Id::from_ip)),
            true,
        ),
        Some(s) => (
            Id::parse(s)
                .map_err(|e| p.err_at(&key("id"), format!("{}=\"{s}\": {e}", key("id"))))?,
            true,
        ),
    };
    let rsakey = match p.get(&key("rsasigkey")) {
        Some(s) if s.starts_with("0s") || s.starts_with("0x") => Some(
            PublicKey::from_text(s)
                .map_err(|e| p.err_at(&key("rsasigkey"), format!("{}: {e}", key("rsasigkey"))))?,
        ),
        _ => None,
    };
    let dns_key = match p.get(&key("rsasigkey")) {
        Some("%dnsondemand") => Some(DnsKeyPolicy::OnDemand),
        Some("%dnsonload" | "%dns") => Some(DnsKeyPolicy::OnLoad),
        _ => None,
    };
    Ok(End {
        host: raw.host,
        client,
        has_client,
        nexthop,
        id,
        id_explicit,
        rsakey,
        updown: p.get(&key("updown")).map(str::to_owned),
        dns_key,
    })
}

/// Warnings about a conn section that loads: RSA public keys (`leftrsasigkey=`,
/// `rightrsasigkey=`) shorter than [`crate::pluto::crypto::rsa::WARN_RSA_BITS`], each at the
/// line of its keyword. (Keys shorter than `MIN_RSA_BITS` do not load at all.)
pub fn key_warnings(c: &ConnSection) -> Vec<ConfError> {
    ["leftrsasigkey", "rightrsasigkey"]
        .iter()
        .filter_map(|k| {
            let key = PublicKey::from_text(c.params.get(k)?).ok()?;
            key.is_weak().then(|| {
                c.params.err_at(
                    k,
                    format!(
                        "{k}: RSA key of {} bits is weak: keys shorter than {} bits should be replaced",
                        key.bits(),
                        crate::pluto::crypto::rsa::WARN_RSA_BITS
                    ),
                )
            })
        })
        .collect()
}

fn shunt_of(s: &str) -> Option<Shunt> {
    match s {
        "passthrough" => Some(Shunt::Pass),
        "drop" => Some(Shunt::Drop),
        "reject" => Some(Shunt::Reject),
        _ => None,
    }
}

impl Connection {
    /// Builds a connection from a resolved `conn` section, oriented by our interfaces.
    /// `Err((code, error))`: 22 = cannot orient, 32 = other problem (whack codes).
    pub fn from_section(
        c: &ConnSection,
        cfg: &PlutoConfig,
    ) -> Result<Connection, (u16, ConfError)> {
        let bad = |e: ConfError| (32u16, e);
        let p = &c.params;
        let left = raw_end(p, "left", cfg).map_err(bad)?;
        let right = raw_end(p, "right", cfg).map_err(bad)?;
        let ours = |h: Option<IpAddr>| {
            h.and_then(|a| cfg.interfaces.iter().find(|i| i.addr == a).cloned())
        };
        let (this_side, that_side, this_raw, that_raw, iface) = if let Some(i) = ours(left.host) {
            ("left", "right", left, right, i)
        } else if let Some(i) = ours(right.host) {
            ("right", "left", right, left, i)
        } else {
            return Err((
                22,
                conf_err(
                    c,
                    format!(
                        "cannot determine which side of \"{}\" is us: neither left nor right is an address of one of our interfaces",
                        c.name
                    ),
                ),
            ));
        };
        if this_raw.host == that_raw.host {
            return Err((22, conf_err(c, "left and right are the same host")));
        }
        // IKE runs between two addresses of one family (the clients may be of the other:
        // 4-in-6, 6-in-4).
        let family = this_raw.host.map_or(Family::V4, Family::of);
        if let Some(h) = that_raw.host.filter(|h| Family::of(*h) != family) {
            return Err(bad(p.err_at(
                that_side,
                format!(
                    "{that_side}={h} is not of the address family of {this_side}= ({family}): IKE runs between two addresses of one family"
                ),
            )));
        }
        if this_raw.kind != PeerKind::Fixed {
            return Err(bad(p.err_at(
                this_side,
                format!(
                    "{this_side}={}: only the peer's side may be opportunistic or a policy group",
                    this_raw.kind.text().unwrap_or_default()
                ),
            )));
        }
        let peer_kind = that_raw.kind;
        let this = build_end(p, this_side, this_raw, family, true, cfg).map_err(bad)?;
        let mut that = build_end(p, that_side, that_raw, family, false, cfg).map_err(bad)?;
        if this.client.family() != that.client.family() {
            let k = if this.has_client {
                that_side
            } else {
                this_side
            };
            return Err(bad(p.err_at(
                &format!("{k}subnet"),
                format!(
                    "{}subnet ({}) and {}subnet ({}) are of different address families",
                    this_side, this.client, that_side, that.client
                ),
            )));
        }
        if peer_kind == PeerKind::Opportunistic && !that.has_client {
            // Any destination: the peer (and its client) come from DNS per packet.
            that.client = Subnet::ANY;
            that.has_client = true;
        }
        let ctype = match p.get_or("type", "tunnel") {
            "tunnel" => ConnType::Tunnel,
            "transport" => {
                if this.has_client || that.has_client {
                    return Err(bad(
                        p.err_at("type", "type=transport forbids leftsubnet/rightsubnet")
                    ));
                }
                ConnType::Transport
            }
            s => ConnType::Shunt(
                shunt_of(s).ok_or_else(|| bad(p.err_at("type", format!("bad type={s}"))))?,
            ),
        };
        let auto = match p.get_or("auto", "ignore") {
            "add" => Auto::Add,
            "route" => Auto::Route,
            "start" => Auto::Start,
            "manual" => Auto::Manual,
            _ => Auto::Ignore,
        };
        let auth = match p.get_or("authby", "rsasig") {
            "secret" => vec![AuthKind::Psk],
            "rsasig" => vec![AuthKind::Rsa],
            "secret|rsasig" => vec![AuthKind::Psk, AuthKind::Rsa],
            "rsasig|secret" => vec![AuthKind::Rsa, AuthKind::Psk],
            _ => Vec::new(),
        };
        let (ike, ike_explicit) = match p.get("ike") {
            Some(s) => (
                proposal::parse_ike(s).map_err(|e| bad(p.err_at("ike", e)))?,
                true,
            ),
            None => (proposal::default_ike(), false),
        };
        let (esp, esp_group, esp_explicit) = match p.get("esp") {
            Some(s) => {
                let (v, g) = proposal::parse_esp(s).map_err(|e| bad(p.err_at("esp", e)))?;
                (v, g, true)
            }
            None => (proposal::default_esp(), None, false),
        };
        let pfsgroup = match p.get("pfsgroup") {
            Some(g) => Some(match g {
                "modp1024" => DhGroup::Modp1024,
                "modp1536" => DhGroup::Modp1536,
                "modp2048" => DhGroup::Modp2048,
                _ => {
                    return Err(bad(p.err_at(
                        "pfsgroup",
                        format!("pfsgroup={g}: unknown or refused group"),
                    )))
                }
            }),
            None => esp_group,
        };
        let dur = |k: &str, d: u64| p.get_duration(k, d).map_err(bad);
        let ikelifetime = dur("ikelifetime", 3600)?.clamp(1, IKE_LIFETIME_CAP);
        let keylife = dur("keylife", 8 * 3600)?.clamp(1, IPSEC_LIFETIME_CAP);
        let rekeymargin = dur("rekeymargin", 540)?.min(IPSEC_LIFETIME_CAP);
        let rekeyfuzz = p
            .get_or("rekeyfuzz", "100%")
            .trim_end_matches('%')
            .parse::<u64>()
            .unwrap_or(100)
            .min(10_000);
        let keyingtries = match p.get_or("keyingtries", "%forever") {
            "%forever" => 0,
            s => s.parse::<u32>().unwrap_or(0),
        };
        let failureshunt = match p.get_or("failureshunt", "none") {
            "none" => None,
            s => shunt_of(s),
        };
        let dpd = if p.contains("dpdaction") || p.contains("dpddelay") || p.contains("dpdtimeout") {
            Some(Dpd {
                delay: dur("dpddelay", 30)?.clamp(1, IPSEC_LIFETIME_CAP),
                timeout: dur("dpdtimeout", 120)?.clamp(1, IPSEC_LIFETIME_CAP),
                action: match p.get_or("dpdaction", "hold") {
                    "clear" => DpdAction::Clear,
                    "restart" => DpdAction::Restart,
                    _ => DpdAction::Hold,
                },
            })
        } else {
            None
        };
        let ike_policy = IkePolicy::parse(p.get("keyexchange"), p.get("ikev2"), cfg.ike_version)
            .map_err(|e| {
                let k = if p.contains("ikev2") {
                    "ikev2"
                } else {
                    "keyexchange"
                };
                bad(p.err_at(k, e))
            })?;
        if !ike_policy.accept_v2 {
            // IKEv1 only: what it cannot negotiate is an error here, not a silent gap.
            if ike_explicit && !ike.iter().any(IkeAlg::ikev1_capable) {
                return Err(bad(p.err_at(
                    "ike",
                    "ike= lists no suite IKEv1 can negotiate (AES-GCM, ChaCha20-Poly1305 and ECP/Curve25519 groups are IKEv2 only)",
                )));
            }
            if esp
                .iter()
                .any(|e| e.enc == crate::crypto::EncAlg::ChaCha20Poly1305)
            {
                return Err(bad(p.err_at(
                    "esp",
                    "esp=: ChaCha20-Poly1305 has no IKEv1 transform (RFC 7634 defines it for IKEv2)",
                )));
            }
            if pfsgroup.is_some_and(|g| !g.is_ikev1()) {
                return Err(bad(p.err_at(
                    "esp",
                    "esp=: only MODP1024, MODP1536 and MODP2048 are IKEv1 PFS groups",
                )));
            }
        }
        let b = |k: &str, d: bool| p.get_bool(k, d).map_err(bad);
        Ok(Connection {
            name: c.name.clone(),
            instance: 0,
            ctype,
            auto,
            auth,
            ike_policy,
            ah: p.get_or("auth", "esp") == "ah",
            pfs: b("pfs", true)?,
            compress: b("compress", false)?,
            ike,
            ike_explicit,
            esp,
            esp_explicit,
            pfsgroup,
            ikelifetime,
            keylife,
            rekeymargin,
            rekeyfuzz,
            rekey: b("rekey", true)?,
            reauth: b("reauth", false)?,
            keyingtries,
            failureshunt,
            dpd,
            forceencaps: b("forceencaps", false)?,
            disablearrivalcheck: b("disablearrivalcheck", false)?,
            interface: iface,
            this,
            that,
            routing: Routing::Unrouted,
            policy_routed: false,
            eroute_owner: None,
            narrowed: None,
            newest_isakmp: None,
            newest_ipsec: None,
            up: false,
            next_instance: 0,
            tries: 0,
            peer_kind,
            group: None,
        })
    }

    /// The key this connection is stored under: `name` or `name[N]`.
    pub fn key(&self) -> String {
        if self.instance == 0 {
            self.name.clone()
        } else {
            format!("{}[{}]", self.name, self.instance)
        }
    }

    /// The quoted name used in logs: `"name"` or `"name"[N]`.
    pub fn quoted(&self) -> String {
        if self.instance == 0 {
            format!("\"{}\"", self.name)
        } else {
            format!("\"{}\"[{}]", self.name, self.instance)
        }
    }

    /// The quoted name plus, for instances, the peer address (state lines).
    pub fn log_name(&self) -> String {
        if self.instance == 0 {
            self.quoted()
        } else {
            format!("{} {}", self.quoted(), self.that.host_text())
        }
    }

    /// A Road-Warrior template (peer `%any`; not an opportunistic conn or policy group).
    pub fn is_template(&self) -> bool {
        self.that.host.is_none() && self.peer_kind == PeerKind::Fixed && self.group.is_none()
    }

    /// An opportunistic conn whose peer is not known yet (`%opportunistic`, or an instance of
    /// a `%opportunisticgroup`): its negotiation starts with a DNS lookup.
    pub fn is_opportunistic(&self) -> bool {
        self.peer_kind == PeerKind::Opportunistic && self.that.host.is_none()
    }

    /// Negotiates with IKE (not a shunt, not authby=never).
    pub fn negotiates(&self) -> bool {
        !matches!(self.ctype, ConnType::Shunt(_)) && !self.auth.is_empty()
    }

    /// Tunnel mode.
    pub fn tunnel(&self) -> bool {
        self.ctype == ConnType::Tunnel
    }

    /// The IKE suites IKEv1 negotiates for this conn (`ike=` minus IKEv2-only suites).
    pub fn ike_v1(&self) -> Vec<IkeAlg> {
        self.ike
            .iter()
            .filter(|a| a.ikev1_capable())
            .copied()
            .collect()
    }

    /// Makes an instance of this template for a peer at `peer`.
    pub fn instantiate(&mut self, peer: IpAddr) -> Connection {
        self.next_instance += 1;
        let mut c = self.clone();
        c.instance = self.next_instance;
        c.that.host = Some(peer);
        if !c.that.has_client {
            c.that.client = Subnet::host(peer);
        }
        c.clear_runtime();
        c.auto = Auto::Add;
        c
    }

    /// Clears the run-time state a conn copied from a template (an instance, a policy group
    /// entry) must not inherit: routing, eroute owner, narrowed pair, newest SAs, instance
    /// counter.
    pub(crate) fn clear_runtime(&mut self) {
        self.routing = Routing::Unrouted;
        self.policy_routed = false;
        self.eroute_owner = None;
        self.narrowed = None;
        self.newest_isakmp = None;
        self.newest_ipsec = None;
        self.next_instance = 0;
    }

    /// The policy string of `--status` (spec 5.8).
    pub fn policy_text(&self) -> String {
        let mut v: Vec<String> = Vec::new();
        for a in &self.auth {
            v.push(match a {
                AuthKind::Psk => "PSK".into(),
                AuthKind::Rsa => "RSASIG".into(),
            });
        }
        if self.negotiates() {
            v.push("ENCRYPT".into());
            if self.ah {
                v.push("AUTHENTICATE".into());
            }
        }
        if self.compress {
            v.push("COMPRESS".into());
        }
        if self.tunnel() {
            v.push("TUNNEL".into());
        }
        if self.pfs {
            v.push("PFS".into());
        }
        if self.disablearrivalcheck {
            v.push("DISABLEARRIVALCHECK".into());
        }
        if !self.rekey {
            v.push("DONTREKEY".into());
        }
        if self.peer_kind == PeerKind::Opportunistic
            || self.peer_kind == PeerKind::OpportunisticGroup
        {
            v.push("OPPORTUNISTIC".into());
        }
        if self.peer_kind.is_group() {
            v.push("GROUP".into());
            if matches!(self.auto, Auto::Route | Auto::Start) {
                v.push("GROUTED".into());
            }
        }
        if self.up {
            v.push("UP".into());
        }
        if let ConnType::Shunt(s) = self.ctype {
            v.push(
                match s {
                    Shunt::Pass => "PASS",
                    Shunt::Drop => "DROP",
                    _ => "REJECT",
                }
                .into(),
            );
        }
        if let Some(s) = self.failureshunt {
            v.push(
                match s {
                    Shunt::Pass => "failurePASS",
                    Shunt::Drop => "failureDROP",
                    _ => "failureREJECT",
                }
                .into(),
            );
        }
        if self.auth.is_empty() {
            v.push("NEVER_NEGOTIATE".into());
        }
        if self.this.dns_key == Some(DnsKeyPolicy::OnDemand) {
            v.push("lKOD".into());
        }
        if self.that.dns_key == Some(DnsKeyPolicy::OnDemand) {
            v.push("rKOD".into());
        }
        v.join("+")
    }

    /// `client===host[id]---nexthop...` ends of `--status` (spec 5.8).
    pub fn describe(&self) -> String {
        let end = |e: &End, nh: Option<IpAddr>, left: bool| -> String {
            let mut s = String::new();
            let kind = match (self.peer_kind, &self.group) {
                (PeerKind::Fixed, Some(_)) => PeerKind::Group.text(),
                (k, _) => k.text(),
            };
            let host = match (left, e.host, kind) {
                (false, None, Some(k)) => k.to_string(),
                _ => e.host_text(),
            };
            let id = match (&e.id, e.host) {
                (id, Some(h)) if id.ip() == Some(h) => String::new(),
                (Id::Any, None) => String::new(),
                (id, _) => format!("[{id}]"),
            };
            let client = if e.has_client {
                Some(e.client.to_string())
            } else {
                None
            };
            if left {
                if let Some(c) = &client {
                    s.push_str(c);
                    s.push_str("===");
                }
                s.push_str(&host);
                s.push_str(&id);
                if let Some(n) = nh {
                    s.push_str(&format!("---{n}"));
                }
            } else {
                if let Some(n) = nh {
                    s.push_str(&format!("{n}---"));
                }
                s.push_str(&host);
                s.push_str(&id);
                if let Some(c) = &client {
                    s.push_str("===");
                    s.push_str(c);
                }
            }
            s
        };
        let our_nh = self.this.nexthop.filter(|n| Some(*n) != self.that.host);
        let their_nh = self.that.nexthop.filter(|n| Some(*n) != self.this.host);
        format!(
            "{}...{}",
            end(&self.this, our_nh, true),
            end(&self.that, their_nh, false)
        )
    }

    /// Updown facts for this connection.
    pub fn updown_info(&self) -> crate::updown::UpdownInfo {
        let me = self.this.host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let peer = self.that.host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        crate::updown::UpdownInfo {
            connection: self.key(),
            next_hop: self.this.nexthop.unwrap_or(peer),
            interface: self.interface.virt.clone(),
            me,
            my_id: self.this.id.to_string(),
            my_client: self.this.client,
            peer,
            peer_id: self.that.id.to_string(),
            peer_client: self.that.client,
            command: self.this.updown.clone(),
            fail_closed: self.peer_kind == PeerKind::Fixed && self.group.is_none(),
        }
    }
}
