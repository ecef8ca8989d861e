//! `ipsec.conf(5)`, FreeS/WAN 2 syntax (spec §1.1), with `include`, `also=`/`alsoflip=` and
//! `%default` sections resolved.
//!
//! The behaviour follows FreeS/WAN 2.02's `_include` + `_confread` scripts, including their
//! error texts, with these deliberate differences:
//!
//! * an `also=` target may appear anywhere in the file (FreeS/WAN required it to *follow* the
//!   referencing section); loops are detected and reported instead;
//! * blank lines and comment lines (at any indentation) never end a section (FreeS/WAN ended a
//!   section at any column-0 line, so the following parameters were rejected);
//! * a missing `config setup` section yields an empty [`IpsecConf::setup`];
//! * an `include` wildcard that matches nothing is not an error (a plain missing file is);
//! * every error carries the file and line it is about ([`ConfError`]).
//!
//! Values are only checked lightly here (booleans, enumerations, durations, a few integers);
//! their meaning is for the keying daemon and `ipsec setup`.

use super::duration::parse_duration;
use super::include::{self, MAX_INCLUDE_DEPTH};
use crate::addr::Family;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// An `ipsec.conf` problem, located at `file:line` (line 0 = the file as a whole).
///
/// `Display` gives `FILE:LINE: message` (just `FILE: message` when `line` is 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError {
    /// The file the problem is in (as resolved by `include`).
    pub file: PathBuf,
    /// 1-based line number, or 0 when the problem concerns the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl ConfError {
    /// An error about `file:line`.
    pub fn new(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> ConfError {
        ConfError {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for ConfError {}

/// One parameter value together with where it was written (so later checks can cite it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The value with surrounding double quotes removed; never empty in a loaded [`Section`].
    pub value: String,
    /// The file holding the `name=value` line (a `%default` or `also=` section's file if the
    /// value came from there).
    pub file: PathBuf,
    /// Line number of the `name=value` line.
    pub line: usize,
}

impl Value {
    /// A value located at `file:line`.
    pub fn new(value: impl Into<String>, file: impl Into<PathBuf>, line: usize) -> Value {
        Value {
            value: value.into(),
            file: file.into(),
            line,
        }
    }
}

/// The parameters of one section, in order, name → [`Value`], with typed accessors whose errors
/// cite the line the parameter was set on.
///
/// Parameters given with an empty value ("use the default") are not present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    file: PathBuf,
    line: usize,
    entries: Vec<(String, Value)>,
}

impl Section {
    /// An empty section whose header is at `file:line` (used by [`Section::err_at`] for
    /// parameters that are not set).
    pub fn new(file: impl Into<PathBuf>, line: usize) -> Section {
        Section {
            file: file.into(),
            line,
            entries: Vec::new(),
        }
    }

    /// File of the section header.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Line of the section header (0 if the section was not written in a file).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.value(name).map(|v| v.value.as_str())
    }

    /// The value of `name`, or `default` if unset.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The value of `name` with its location, if set.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// `yes`/`no` parameter; `default` if unset.
    pub fn get_bool(&self, name: &str, default: bool) -> Result<bool, ConfError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                self.err_at(
                    name,
                    format!("illegal {name} value \"{v}\" (expected yes or no)"),
                )
            }),
        }
    }

    /// Duration parameter (`N`, `Ns`, `N[.N]m`, `N[.N]h`, `N[.N]d`) in seconds; `default` if
    /// unset.
    pub fn get_duration(&self, name: &str, default: u64) -> Result<u64, ConfError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_duration(v)
                .map_err(|e| self.err_at(name, format!("illegal {name} value: {e}"))),
        }
    }

    /// Unsigned decimal integer parameter; `default` if unset.
    pub fn get_u32(&self, name: &str, default: u32) -> Result<u32, ConfError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_u32(v).ok_or_else(|| {
                self.err_at(
                    name,
                    format!("illegal {name} value \"{v}\" (expected an unsigned integer)"),
                )
            }),
        }
    }

    /// `leftnexthop=`/`rightnexthop=` of the end `side` (`left` or `right`), whose host address
    /// is of `family` (FreeS/WAN ipsec.conf(5)): unset or `%direct` gives `direct` (the next hop
    /// found when `side=%defaultroute`, else none), `%defaultroute` the value `defaultroute`
    /// returns, and a literal must be an address of `family`; errors cite the line.
    pub fn get_nexthop(
        &self,
        side: &str,
        family: Family,
        direct: Option<IpAddr>,
        defaultroute: impl FnOnce() -> Result<Option<IpAddr>, ConfError>,
    ) -> Result<Option<IpAddr>, ConfError> {
        let name = format!("{side}nexthop");
        match self.get(&name) {
            None | Some("%direct") => Ok(direct),
            Some("%defaultroute") => defaultroute(),
            Some(s) => {
                let nh = s.parse::<IpAddr>().map_err(|_| {
                    self.err_at(&name, format!("{name}=\"{s}\" is not an IP address"))
                })?;
                if Family::of(nh) != family {
                    return Err(self.err_at(
                        &name,
                        format!("{name}={s} is not of the address family of {side}= ({family})"),
                    ));
                }
                Ok(Some(nh))
            }
        }
    }

    /// An error located at the line that set `name` (or at the section header if unset), for
    /// semantic checks done after loading, e.g. `leftfirewall` together with `leftupdown`.
    pub fn err_at(&self, name: &str, message: impl Into<String>) -> ConfError {
        match self.value(name) {
            Some(v) => ConfError::new(v.file.clone(), v.line, message),
            None => ConfError::new(self.file.clone(), self.line, message),
        }
    }

    /// Set `name` (replacing an existing value in place, else appending).
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Remove `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(i).1)
    }

    /// All parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// All parameter names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// Number of parameters set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One `conn NAME` section with `also=`/`alsoflip=` and `conn %default` already applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSection {
    /// The connection name.
    pub name: String,
    /// File of the `conn NAME` header (`<implicit>` for built-in conns).
    pub file: PathBuf,
    /// Line of the header (0 for built-in conns).
    pub line: usize,
    /// The resolved parameters.
    pub params: Section,
}

/// The host parameters whose host names [`ConnSection::resolve_names`] resolves and whose
/// family `hostaddrfamily=` constrains.
const HOST_KEYS: [&str; 4] = ["left", "right", "leftnexthop", "rightnexthop"];

/// The client parameters whose family `clientaddrfamily=` constrains.
const CLIENT_KEYS: [&str; 2] = ["leftsubnet", "rightsubnet"];

/// The family an Openswan `*addrfamily=` value names.
fn family_value(v: &str) -> Option<Family> {
    match v {
        "ipv4" => Some(Family::V4),
        "ipv6" => Some(Family::V6),
        _ => None,
    }
}

/// The family of an address or subnet written literally (`192.0.2.1`, `2001:db8::/32`); None
/// for `%keywords`, host names and anything else.
fn literal_family(v: &str) -> Option<Family> {
    let addr = v.split_once('/').map_or(v, |(a, _)| a);
    addr.parse::<IpAddr>().ok().map(Family::of)
}

impl ConnSection {
    /// The family of the conn's hosts (`left`, `right`, next hops): `hostaddrfamily=`, else
    /// `connaddrfamily=` (Openswan keywords); None when the conn does not say.
    pub fn host_family(&self) -> Option<Family> {
        self.params
            .get("hostaddrfamily")
            .or_else(|| self.params.get("connaddrfamily"))
            .and_then(family_value)
    }

    /// The family of the conn's clients (`leftsubnet`, `rightsubnet`): `clientaddrfamily=`,
    /// else `connaddrfamily=`; None when the conn does not say.
    pub fn client_family(&self) -> Option<Family> {
        self.params
            .get("clientaddrfamily")
            .or_else(|| self.params.get("connaddrfamily"))
            .and_then(family_value)
    }

    /// Checks literal addresses against `hostaddrfamily=`/`clientaddrfamily=`/
    /// `connaddrfamily=`: an IPv4 `right=` in a conn that says `hostaddrfamily=ipv6` is an
    /// error at the line of that address.
    fn check_families(&self) -> Result<(), ConfError> {
        let checks = [
            (self.host_family(), &HOST_KEYS[..], "hostaddrfamily"),
            (self.client_family(), &CLIENT_KEYS[..], "clientaddrfamily"),
        ];
        for (want, keys, keyword) in checks {
            let Some(want) = want else { continue };
            let said = if self.params.contains(keyword) {
                keyword
            } else {
                "connaddrfamily"
            };
            for key in keys {
                let Some(v) = self.params.value(key) else {
                    continue;
                };
                if literal_family(&v.value).is_some_and(|f| f != want) {
                    return Err(ConfError::new(
                        v.file.clone(),
                        v.line,
                        format!(
                            "{key}={} is not an {} address ({said}={})",
                            v.value,
                            family_name(want),
                            self.params.get(said).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Replaces host names in `left=`, `right=`, `leftnexthop=` and `rightnexthop=` by an
    /// address, as Pluto does when it loads a conn (`right=vpn.example.com`). The family asked
    /// for is the conn's `hostaddrfamily=`/`connaddrfamily=`, else that of the other host
    /// address if it is written literally (a name beside `left=2001:db8::1` wants AAAA), else
    /// none (`resolve` then prefers IPv4 and takes IPv6 when the name has only that).
    /// `resolve` does the lookup (the daemon passes [`system_resolve_in`]: `/etc/hosts`, DNS).
    /// A name that does not resolve is left as written: loading the conn then fails with an
    /// error naming its file and line.
    pub fn resolve_names(&mut self, resolve: &dyn Fn(&str, Option<Family>) -> Option<IpAddr>) {
        let literal = |key: &str| self.params.get(key).and_then(literal_family);
        let want = self
            .host_family()
            .or_else(|| literal("left").or_else(|| literal("right")));
        for key in HOST_KEYS {
            let Some(v) = self.params.value(key) else {
                continue;
            };
            if !is_host_name(&v.value) {
                continue;
            }
            if let Some(a) = resolve(&v.value, want) {
                let resolved = Value::new(a.to_string(), v.file.clone(), v.line);
                self.params.set(key, resolved);
            }
        }
    }
}

/// "IPv4" or "IPv6".
fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// A loaded `ipsec.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpsecConf {
    /// `config setup`, with `config %default` applied (empty if the file has none).
    pub setup: Section,
    /// The `conn` sections in file order (all of them, including ones only meant as `also=`
    /// targets), each fully resolved. The implicit conns are not included; see
    /// [`IpsecConf::implicit_conns`].
    pub conns: Vec<ConnSection>,
}

/// True for a DNS host name (letters, digits, `-`, `.`, with a letter somewhere): not an
/// address, not a `%keyword`.
pub fn is_host_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.chars().any(|c| c.is_ascii_alphabetic())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !v.starts_with(['-', '.'])
}

/// The system resolver's first IPv4 address for `name` (`/etc/hosts`, DNS), else its first
/// IPv6 address (a name with only AAAA records).
pub fn system_resolve(name: &str) -> Option<std::net::IpAddr> {
    system_resolve_in(name, None)
}

/// The system resolver's first IPv4 address for `name` (policy group entries and opportunistic
/// encryption, which are IPv4 only).
pub fn system_resolve_v4(name: &str) -> Option<std::net::Ipv4Addr> {
    use std::net::{SocketAddr, ToSocketAddrs};
    (name, 0u16).to_socket_addrs().ok()?.find_map(|a| match a {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(_) => None,
    })
}

/// The system resolver's address for `name` (`/etc/hosts`, DNS: A and AAAA records): the
/// first of family `want`, or with no family asked the first IPv4 address, else the first
/// IPv6 one (a name with only AAAA records).
pub fn system_resolve_in(name: &str, want: Option<Family>) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (name, 0u16)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .collect();
    pick_address(&addrs, want)
}

/// The address [`system_resolve_in`] picks from a resolver's answer.
fn pick_address(addrs: &[IpAddr], want: Option<Family>) -> Option<IpAddr> {
    let first = |f: Family| addrs.iter().copied().find(|a| Family::of(*a) == f);
    match want {
        Some(f) => first(f),
        None => first(Family::V4).or_else(|| first(Family::V6)),
    }
}

/// Pseudo file name used for the built-in implicit conns.
pub const IMPLICIT_FILE: &str = "<implicit>";

/// Every parameter name accepted in `config setup` (besides `also` and `x-`/`x_` extensions):
/// the FreeS/WAN 2.02 list incl. its X.509 and Openswan NAT-T additions, plus rswan's `workers`
/// (TUN queues per ipsecN, each with its reader thread; 0 = one per CPU), `offload`, and the
/// obsolete `datapath` (accepted and ignored).
pub const SETUP_KEYWORDS: &[&str] = &[
    "interfaces",
    "myid",
    "forwardcontrol",
    "rp_filter",
    "syslog",
    "klipsdebug",
    "plutodebug",
    "plutoopts",
    "plutostderrlog",
    "plutorestartoncrash",
    "dumpdir",
    "manualstart",
    "pluto",
    "plutowait",
    "prepluto",
    "postpluto",
    "fragicmp",
    "hidetos",
    "uniqueids",
    "overridemtu",
    "nocrsend",
    "strictcrlpolicy",
    "crlcheckinterval",
    "nat_traversal",
    "keep_alive",
    "force_keepalive",
    "disable_port_floating",
    "virtual_private",
    "workers",
    "offload",
    "espsend",
    "datapath",
    "shuntscaninterval",
    "shuntlifetime",
    "policygroupsdir",
    "dnsserver",
    "metrics",
    "wiresharkkeys",
    "keyexchange",
];

/// Every parameter name accepted in a `conn` section (besides `also`, `alsoflip` and
/// `x-`/`x_` extensions): FreeS/WAN 2.02 general, automatic-keying, manual-keying and X.509
/// keywords plus the Openswan-era ones rswan understands.
pub const CONN_KEYWORDS: &[&str] = &[
    // general / automatic keying
    "type",
    // Openswan: the address family of the hosts, the clients, or both
    "connaddrfamily",
    "hostaddrfamily",
    "clientaddrfamily",
    "auto",
    "authby",
    "auth",
    "keyexchange",
    "ikev2",
    "pfs",
    "keylife",
    "rekey",
    "reauth",
    "rekeymargin",
    "rekeyfuzz",
    "compress",
    "keyingtries",
    "ikelifetime",
    "disablearrivalcheck",
    "failureshunt",
    // Openswan-era
    "ike",
    "esp",
    "pfsgroup",
    "aggrmode",
    "dpddelay",
    "dpdtimeout",
    "dpdaction",
    "forceencaps",
    "xauth",
    // manual keying
    "spi",
    "spibase",
    "espenckey",
    "espauthkey",
    "espreplay_window",
    "ah",
    "ahkey",
    "ahreplay_window",
    // per side
    "left",
    "leftsubnet",
    "leftnexthop",
    "leftupdown",
    "leftfirewall",
    "leftid",
    "leftrsasigkey",
    "leftrsasigkey2",
    "leftcert",
    "leftca",
    "leftsubnetwithin",
    "leftprotoport",
    "leftsourceip",
    "leftespenckey",
    "leftespauthkey",
    "leftahkey",
    "leftespspi",
    "leftahspi",
    "right",
    "rightsubnet",
    "rightnexthop",
    "rightupdown",
    "rightfirewall",
    "rightid",
    "rightrsasigkey",
    "rightrsasigkey2",
    "rightcert",
    "rightca",
    "rightsubnetwithin",
    "rightprotoport",
    "rightsourceip",
    "rightespenckey",
    "rightespauthkey",
    "rightahkey",
    "rightespspi",
    "rightahspi",
];

/// Light value checks applied while loading.
#[derive(Clone, Copy, Debug)]
enum Check {
    Free,
    Bool,
    OneOf(&'static [&'static str]),
    Duration,
    Int { min: u32, max: u32 },
    KeyingTries,
    Percent,
    VirtualPrivate,
}

fn check_for(ty: SecType, name: &str) -> Check {
    match ty {
        SecType::Config => match name {
            "forwardcontrol"
            | "pluto"
            | "plutowait"
            | "fragicmp"
            | "hidetos"
            | "uniqueids"
            | "plutorestartoncrash"
            | "nocrsend"
            | "strictcrlpolicy"
            | "nat_traversal"
            | "force_keepalive"
            | "disable_port_floating"
            | "offload" => Check::Bool,
            "rp_filter" => Check::OneOf(&["%unchanged", "0", "1", "2"]),
            "datapath" => Check::OneOf(&["threads", "inline"]),
            "espsend" => Check::OneOf(&["raw", "packet"]),
            "keyexchange" => Check::OneOf(&["ikev1", "ikev2"]),
            "crlcheckinterval" | "keep_alive" | "shuntscaninterval" | "shuntlifetime" => {
                Check::Duration
            }
            "overridemtu" => Check::Int {
                min: 68,
                max: 65535,
            },
            "workers" => Check::Int { min: 0, max: 1024 },
            "virtual_private" => Check::VirtualPrivate,
            _ => Check::Free,
        },
        SecType::Conn => match name {
            "leftfirewall"
            | "rightfirewall"
            | "pfs"
            | "rekey"
            | "reauth"
            | "compress"
            | "disablearrivalcheck"
            | "aggrmode"
            | "forceencaps"
            | "xauth" => Check::Bool,
            "type" => Check::OneOf(&["tunnel", "transport", "passthrough", "drop", "reject"]),
            "auto" => Check::OneOf(&["add", "route", "start", "manual", "ignore"]),
            "authby" => Check::OneOf(&[
                "rsasig",
                "secret",
                "secret|rsasig",
                "rsasig|secret",
                "never",
            ]),
            "auth" => Check::OneOf(&["esp", "ah"]),
            "failureshunt" => Check::OneOf(&["none", "passthrough", "drop", "reject"]),
            "dpdaction" => Check::OneOf(&["hold", "clear", "restart"]),
            "keyexchange" => Check::OneOf(&["ike", "ikev1", "ikev2"]),
            "connaddrfamily" | "hostaddrfamily" | "clientaddrfamily" => {
                Check::OneOf(&["ipv4", "ipv6"])
            }
            "ikev2" => Check::OneOf(&["never", "no", "permit", "propose", "yes", "insist"]),
            "keylife" | "ikelifetime" | "rekeymargin" | "dpddelay" | "dpdtimeout" => {
                Check::Duration
            }
            "keyingtries" => Check::KeyingTries,
            "rekeyfuzz" => Check::Percent,
            "espreplay_window" | "ahreplay_window" => Check::Int { min: 0, max: 64 },
            _ => Check::Free,
        },
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn parse_u32(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Check a non-empty value; `Err(message)` if it is not acceptable.
fn check_value(ty: SecType, name: &str, value: &str) -> Result<(), String> {
    let illegal =
        |expected: &str| format!("illegal {name} value \"{value}\" (expected {expected})");
    match check_for(ty, name) {
        Check::Free => Ok(()),
        Check::Bool if parse_bool(value).is_none() => Err(illegal("yes or no")),
        Check::OneOf(set) if !set.contains(&value) => Err(illegal(&match set.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => set.join(", "),
        })),
        Check::Duration => parse_duration(value)
            .map(|_| ())
            .map_err(|e| format!("illegal {name} value: {e}")),
        Check::Int { min, max } if !parse_u32(value).is_some_and(|n| (min..=max).contains(&n)) => {
            Err(illegal(&format!("an integer from {min} to {max}")))
        }
        Check::KeyingTries if value != "%forever" && parse_u32(value).is_none() => {
            Err(illegal("a number or %forever"))
        }
        Check::Percent if parse_u32(value.strip_suffix('%').unwrap_or(value)).is_none() => {
            Err(illegal("a percentage such as 100%"))
        }
        Check::VirtualPrivate => super::virtual_private::VirtualPrivate::parse(value)
            .map(|_| ())
            .map_err(|e| format!("illegal {name} value: {e}")),
        _ => Ok(()),
    }
}

/// Deepest `also=` chain followed (keeps recursion bounded on hostile input).
const MAX_ALSO_DEPTH: usize = 100;

/// Section types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SecType {
    Config,
    Conn,
}

impl SecType {
    fn word(self) -> &'static str {
        match self {
            SecType::Config => "config",
            SecType::Conn => "conn",
        }
    }

    fn idx(self) -> usize {
        match self {
            SecType::Config => 0,
            SecType::Conn => 1,
        }
    }

    fn other(self) -> SecType {
        match self {
            SecType::Config => SecType::Conn,
            SecType::Conn => SecType::Config,
        }
    }
}

fn is_known(ty: SecType, name: &str) -> bool {
    match ty {
        SecType::Config => SETUP_KEYWORDS.contains(&name),
        SecType::Conn => CONN_KEYWORDS.contains(&name),
    }
}

/// `x-`, `X-`, `x_`, `X_`: user extensions, accepted and kept.
fn is_extension(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && matches!(b[0], b'x' | b'X') && matches!(b[1], b'-' | b'_')
}

/// `[A-Za-z][A-Za-z0-9._-]*`
fn valid_section_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `left…` ↔ `right…` as FreeS/WAN's `orient()` did (every occurrence in the name).
fn flip_name(name: &str) -> String {
    if name.contains("left") {
        name.replace("left", "right")
    } else if name.contains("right") {
        name.replace("right", "left")
    } else {
        name.to_string()
    }
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Cut a `#` comment (a `#` at the start or after white space, outside double quotes).
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    let mut prev_ws = true;
    for (i, c) in line.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == '#' && !in_quotes && prev_ws {
            return &line[..i];
        }
        prev_ws = is_ws(c);
    }
    line
}

fn fields(s: &str) -> Vec<&str> {
    s.split(is_ws).filter(|f| !f.is_empty()).collect()
}

/// `^[^=]+=[ \t]*"[^"]*"$`
fn fully_quoted(body: &str) -> bool {
    let Some(eq) = body.find('=') else {
        return false;
    };
    if eq == 0 {
        return false;
    }
    let after = body[eq + 1..].trim_start_matches(is_ws);
    after.len() >= 2
        && after.starts_with('"')
        && after.ends_with('"')
        && !after[1..after.len() - 1].contains('"')
}

/// Split `name [ws] = [ws] rest`; `None` if the name is malformed or `=` is missing.
fn split_param(body: &str) -> Option<(&str, &str)> {
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(body.len(), |(i, _)| i);
    let name = &body[..end];
    let first = name.bytes().next()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let rest = body[end..].trim_start_matches(is_ws);
    let rest = rest.strip_prefix('=')?;
    Some((name, rest.trim_start_matches(is_ws)))
}

fn unprintable(c: char) -> bool {
    (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32))
}

/// `version` operand acceptable (numerically 2, like awk's `$2 + 0 == 2.0`)?
fn version_is_2(v: &str) -> bool {
    let int = match v.split_once('.') {
        Some((i, f)) if !f.is_empty() && f.bytes().all(|b| b == b'0') => i,
        Some(_) => return false,
        None => v,
    };
    int.bytes().all(|b| b.is_ascii_digit()) && int.trim_start_matches('0') == "2"
}

/// The line (1-based) holding the first invalid UTF-8 byte.
pub(crate) fn utf8_error_line(bytes: &[u8], err: &std::str::Utf8Error) -> usize {
    let upto = bytes.get(..err.valid_up_to()).unwrap_or(bytes);
    upto.iter().filter(|&&b| b == b'\n').count() + 1
}

#[derive(Debug)]
struct RawParam {
    name: String,
    value: String,
    file: PathBuf,
    line: usize,
}

#[derive(Debug)]
enum Item {
    Param(RawParam),
    Also {
        target: String,
        flip: bool,
        file: PathBuf,
        line: usize,
    },
}

#[derive(Debug)]
struct RawSection {
    ty: SecType,
    name: String,
    file: PathBuf,
    line: usize,
    items: Vec<Item>,
    names: HashMap<String, usize>,
}

#[derive(Clone, Copy, Debug)]
enum Cur {
    None,
    Section(usize),
    Default(SecType),
}

#[derive(Debug)]
struct Parser {
    sections: Vec<RawSection>,
    index: HashMap<(SecType, String), usize>,
    defaults: [Vec<RawParam>; 2],
    saw_nondefault: [bool; 2],
    version_seen: bool,
    cur: Cur,
    /// Canonical paths of the files being read (include loop detection).
    open_files: Vec<PathBuf>,
}

struct Expansion {
    out: Vec<(String, Value)>,
    seen: HashMap<String, (PathBuf, usize)>,
    included: HashSet<usize>,
    chain: Vec<usize>,
}

impl Parser {
    fn new() -> Parser {
        Parser {
            sections: Vec::new(),
            index: HashMap::new(),
            defaults: [Vec::new(), Vec::new()],
            saw_nondefault: [false, false],
            version_seen: false,
            cur: Cur::None,
            open_files: Vec::new(),
        }
    }

    fn text(&mut self, file: &Path, text: &str, depth: usize) -> Result<(), ConfError> {
        for (i, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            self.line(file, i + 1, raw, depth)?;
        }
        Ok(())
    }

    fn line(
        &mut self,
        file: &Path,
        lineno: usize,
        raw: &str,
        depth: usize,
    ) -> Result<(), ConfError> {
        let err = |msg: String| ConfError::new(file, lineno, msg);
        let exdented = !raw.starts_with(is_ws);
        let body = strip_comment(raw).trim_matches(is_ws);
        if body.is_empty() {
            return Ok(());
        }
        if exdented {
            let f = fields(body);
            if f.first() == Some(&"include") {
                return self.include(file, lineno, body, &f, depth);
            }
            if f.len() != 2 {
                return Err(err(format!(
                    "section header \"{body}\" has wrong number of fields ({})",
                    f.len()
                )));
            }
            return self.header(file, lineno, f[0], f[1]);
        }
        if !self.version_seen {
            return Err(err("we only support version 2 ipsec.conf files".into()));
        }
        self.param(file, lineno, body)
    }

    fn include(
        &mut self,
        file: &Path,
        lineno: usize,
        body: &str,
        f: &[&str],
        depth: usize,
    ) -> Result<(), ConfError> {
        let err = |msg: String| ConfError::new(file, lineno, msg);
        self.cur = Cur::None;
        if f.len() != 2 {
            return Err(err(format!("include syntax error in \"{body}\"")));
        }
        for path in include::expand(f[1], &include::base_dir(file)).map_err(err)? {
            let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if self.open_files.contains(&canon) {
                return Err(err(format!(
                    "include loop: \"{}\" is already being read",
                    path.display()
                )));
            }
            if depth + 1 > MAX_INCLUDE_DEPTH {
                return Err(err(format!(
                    "includes nested too deeply (more than {MAX_INCLUDE_DEPTH} levels)"
                )));
            }
            let bytes = std::fs::read(&path).map_err(|e| {
                err(format!(
                    "cannot open configuration file \"{}\": {e}",
                    path.display()
                ))
            })?;
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                ConfError::new(
                    &path,
                    utf8_error_line(&bytes, &e),
                    "line is not valid UTF-8",
                )
            })?;
            self.open_files.push(canon);
            self.text(&path, text, depth + 1)?;
            self.open_files.pop();
            self.cur = Cur::None;
        }
        Ok(())
    }

    fn header(
        &mut self,
        file: &Path,
        lineno: usize,
        kind: &str,
        name: &str,
    ) -> Result<(), ConfError> {
        let err = |msg: String| ConfError::new(file, lineno, msg);
        self.cur = Cur::None;
        if kind == "version" {
            if !version_is_2(name) {
                return Err(err(format!(
                    "we only support version 2.0 ipsec.conf files, not \"{name}\""
                )));
            }
            self.version_seen = true;
            return Ok(());
        }
        if !self.version_seen {
            return Err(err("we only support version 2 ipsec.conf files".into()));
        }
        let ty = match kind {
            "config" => SecType::Config,
            "conn" => SecType::Conn,
            _ => return Err(err(format!("section type \"{kind}\" not recognized"))),
        };
        if name == "%default" {
            if self.saw_nondefault[ty.idx()] {
                return Err(err(format!(
                    "\"{kind} %default\" sections must precede non-default ones"
                )));
            }
            self.cur = Cur::Default(ty);
            return Ok(());
        }
        match ty {
            SecType::Config if name != "setup" => {
                return Err(err(format!("unknown config section \"{name}\"")));
            }
            SecType::Conn if !valid_section_name(name) => {
                return Err(err(format!(
                    "invalid section name \"{name}\" (must start with a letter and contain only \
                     letters, digits, '.', '_' and '-')"
                )));
            }
            _ => {}
        }
        if let Some(&i) = self.index.get(&(ty, name.to_string())) {
            let first = &self.sections[i];
            return Err(err(format!(
                "duplicate {kind} section \"{name}\" (first defined at {}:{})",
                first.file.display(),
                first.line
            )));
        }
        self.index
            .insert((ty, name.to_string()), self.sections.len());
        self.saw_nondefault[ty.idx()] = true;
        self.cur = Cur::Section(self.sections.len());
        self.sections.push(RawSection {
            ty,
            name: name.to_string(),
            file: file.to_path_buf(),
            line: lineno,
            items: Vec::new(),
            names: HashMap::new(),
        });
        Ok(())
    }

    fn param(&mut self, file: &Path, lineno: usize, body: &str) -> Result<(), ConfError> {
        let err = |msg: String| ConfError::new(file, lineno, msg);
        let (ty, in_default) = match self.cur {
            Cur::None => return Err(err("parameter is not within a section".into())),
            Cur::Section(i) => (self.sections[i].ty, false),
            Cur::Default(t) => (t, true),
        };
        if body.contains('"') && !fully_quoted(body) {
            return Err(err("mismatched quotes in parameter value".into()));
        }
        let Some((name, raw_value)) = split_param(body) else {
            return Err(err("syntax error or illegal parameter name".into()));
        };
        let value = if let Some(inner) = raw_value.strip_prefix('"') {
            // fully_quoted() guarantees the closing quote is the last character
            inner.strip_suffix('"').unwrap_or(inner)
        } else {
            raw_value
        };

        if name == "also" || name == "alsoflip" {
            if in_default {
                return Err(err(
                    "%default section may not contain \"also\" or \"alsoflip\" parameter".into(),
                ));
            }
            if name == "alsoflip" && ty == SecType::Config {
                return Err(err("\"alsoflip\" may only be used in conn sections".into()));
            }
            if !valid_section_name(value) {
                return Err(err(format!("invalid section name \"{value}\" in {name}=")));
            }
            if let Cur::Section(i) = self.cur {
                self.sections[i].items.push(Item::Also {
                    target: value.to_string(),
                    flip: name == "alsoflip",
                    file: file.to_path_buf(),
                    line: lineno,
                });
            }
            return Ok(());
        }
        if !is_known(ty, name) && !is_extension(name) {
            return Err(err(format!("unknown parameter name \"{name}\"")));
        }
        if !raw_value.starts_with('"') && value.contains(is_ws) {
            return Err(err(format!(
                "white space within non-quoted parameter \"{name}\""
            )));
        }
        if value.chars().any(unprintable) {
            return Err(err(format!(
                "parameter \"{name}\" value contains an unprintable character"
            )));
        }
        if in_default {
            if let Some(prev) = self.defaults[ty.idx()].iter().find(|p| p.name == name) {
                return Err(err(format!(
                    "duplicated default parameter \"{name}\" (first set at {}:{})",
                    prev.file.display(),
                    prev.line
                )));
            }
        } else if let Cur::Section(i) = self.cur {
            if let Some(prev) = self.sections[i].names.get(name) {
                return Err(err(format!(
                    "duplicated parameter \"{name}\" (first set at line {prev})"
                )));
            }
        }
        if !value.is_empty() && !is_extension(name) {
            check_value(ty, name, value).map_err(err)?;
        }
        let p = RawParam {
            name: name.to_string(),
            value: value.to_string(),
            file: file.to_path_buf(),
            line: lineno,
        };
        match self.cur {
            Cur::Section(i) => {
                let s = &mut self.sections[i];
                s.names.insert(p.name.clone(), lineno);
                s.items.push(Item::Param(p));
            }
            Cur::Default(t) => self.defaults[t.idx()].push(p),
            Cur::None => {}
        }
        Ok(())
    }

    fn finish(&self, main_file: &Path) -> Result<IpsecConf, ConfError> {
        let setup = match self.index.get(&(SecType::Config, "setup".to_string())) {
            Some(&i) => self.expand(i)?,
            None => {
                let mut s = Section::new(main_file, 0);
                for d in &self.defaults[SecType::Config.idx()] {
                    if !d.value.is_empty() {
                        s.set(
                            d.name.clone(),
                            Value::new(d.value.clone(), d.file.clone(), d.line),
                        );
                    }
                }
                s
            }
        };
        let mut conns = Vec::new();
        for (i, s) in self.sections.iter().enumerate() {
            if s.ty == SecType::Conn {
                let conn = ConnSection {
                    name: s.name.clone(),
                    file: s.file.clone(),
                    line: s.line,
                    params: self.expand(i)?,
                };
                conn.check_families()?;
                conns.push(conn);
            }
        }
        Ok(IpsecConf { setup, conns })
    }

    fn expand(&self, root: usize) -> Result<Section, ConfError> {
        let sec = &self.sections[root];
        let mut st = Expansion {
            out: Vec::new(),
            seen: HashMap::new(),
            included: HashSet::from([root]),
            chain: vec![root],
        };
        self.expand_into(root, false, None, &mut st)?;
        for d in &self.defaults[sec.ty.idx()] {
            if !st.seen.contains_key(&d.name) {
                st.seen.insert(d.name.clone(), (d.file.clone(), d.line));
                st.out.push((
                    d.name.clone(),
                    Value::new(d.value.clone(), d.file.clone(), d.line),
                ));
            }
        }
        let mut section = Section::new(sec.file.clone(), sec.line);
        section.entries = st
            .out
            .into_iter()
            .filter(|(_, v)| !v.value.is_empty())
            .collect();
        Ok(section)
    }

    /// Append section `idx`'s parameters (flipped left/right if `flipped`); `via` is the
    /// `also=` line that pulled the section in (file, line, target name).
    fn expand_into(
        &self,
        idx: usize,
        flipped: bool,
        via: Option<(&Path, usize)>,
        st: &mut Expansion,
    ) -> Result<(), ConfError> {
        let sec = &self.sections[idx];
        let ty = sec.ty;
        for item in &sec.items {
            match item {
                Item::Param(p) => {
                    let name = if flipped {
                        flip_name(&p.name)
                    } else {
                        p.name.clone()
                    };
                    if let Some((pf, pl)) = st.seen.get(&name) {
                        let as_written = if name != p.name {
                            format!(", written as \"{}\" and flipped by alsoflip", p.name)
                        } else {
                            String::new()
                        };
                        return Err(match via {
                            Some((vf, vl)) => ConfError::new(
                                vf,
                                vl,
                                format!(
                                    "duplicated parameter \"{name}\" from {} \"{}\" ({}:{}{as_written}; \
                                     already set at {}:{})",
                                    ty.word(),
                                    sec.name,
                                    p.file.display(),
                                    p.line,
                                    pf.display(),
                                    pl
                                ),
                            ),
                            None => ConfError::new(
                                &p.file,
                                p.line,
                                format!(
                                    "duplicated parameter \"{name}\" (already set at {}:{} via also=)",
                                    pf.display(),
                                    pl
                                ),
                            ),
                        });
                    }
                    st.seen.insert(name.clone(), (p.file.clone(), p.line));
                    st.out
                        .push((name, Value::new(p.value.clone(), p.file.clone(), p.line)));
                }
                Item::Also {
                    target,
                    flip,
                    file,
                    line,
                } => {
                    let err = |msg: String| ConfError::new(file, *line, msg);
                    let key = (ty, target.clone());
                    let Some(&t) = self.index.get(&key) else {
                        let other = ty.other();
                        if self.index.contains_key(&(other, target.clone())) {
                            return Err(err(format!(
                                "also=\"{target}\" names a {} section; it must be a {} section",
                                other.word(),
                                ty.word()
                            )));
                        }
                        return Err(err(format!(
                            "did not find {} section \"{target}\" (named by also=)",
                            ty.word()
                        )));
                    };
                    if st.chain.contains(&t) {
                        let mut names: Vec<String> = st
                            .chain
                            .iter()
                            .map(|&i| format!("\"{}\"", self.sections[i].name))
                            .collect();
                        names.push(format!("\"{target}\""));
                        return Err(err(format!(
                            "also= loop: {} {}",
                            ty.word(),
                            names.join(" -> ")
                        )));
                    }
                    if st.chain.len() >= MAX_ALSO_DEPTH {
                        return Err(err(format!(
                            "also= nested too deeply (more than {MAX_ALSO_DEPTH} levels)"
                        )));
                    }
                    if !st.included.insert(t) {
                        return Err(err(format!(
                            "section \"{target}\" requested more than once"
                        )));
                    }
                    st.chain.push(t);
                    self.expand_into(t, flipped ^ *flip, Some((file, *line)), st)?;
                    st.chain.pop();
                }
            }
        }
        Ok(())
    }
}

impl IpsecConf {
    /// Read and resolve an `ipsec.conf` file (following `include`s).
    pub fn load(path: impl AsRef<Path>) -> Result<IpsecConf, ConfError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| ConfError::new(path, 0, format!("cannot open configuration file: {e}")))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ConfError::new(path, utf8_error_line(&bytes, &e), "line is not valid UTF-8")
        })?;
        Self::parse_str(text, path)
    }

    /// Resolves host names ([`ConnSection::resolve_names`]) in the conns `which` selects; the
    /// daemon does it for the conns it is about to load (never all of them: a name whose DNS
    /// is unreachable must not slow down commands for other conns).
    pub fn resolve_names(
        &mut self,
        which: impl Fn(&ConnSection) -> bool,
        resolve: &dyn Fn(&str, Option<Family>) -> Option<IpAddr>,
    ) {
        for c in self.conns.iter_mut().filter(|c| which(c)) {
            c.resolve_names(resolve);
        }
    }

    /// Parse `text` as if it were the file `pseudo_path` (used in errors, and as the base for
    /// relative `include`s, which are read from disk).
    pub fn parse_str(text: &str, pseudo_path: impl AsRef<Path>) -> Result<IpsecConf, ConfError> {
        let path = pseudo_path.as_ref();
        let mut p = Parser::new();
        p.open_files
            .push(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        p.text(path, text, 0)?;
        p.finish(path)
    }

    /// The user-defined conn called `name`.
    pub fn conn(&self, name: &str) -> Option<&ConnSection> {
        self.conns.iter().find(|c| c.name == name)
    }

    /// The implicit conns (spec §1.5) not overridden by a user conn of the same name, in the
    /// order clear, clear-or-private, private-or-clear, private, block, packetdefault. They do
    /// not inherit `conn %default`. Not part of [`IpsecConf::conns`]: the keying daemon decides
    /// whether to add them (a user conn with `auto=ignore` of the same name disables one).
    pub fn implicit_conns(&self) -> Vec<ConnSection> {
        builtin_implicit_conns()
            .into_iter()
            .filter(|c| self.conn(&c.name).is_none())
            .collect()
    }
}

/// All six built-in implicit conns (spec §1.5), regardless of any configuration, located at
/// [`IMPLICIT_FILE`] line 0.
pub fn builtin_implicit_conns() -> Vec<ConnSection> {
    const OE: &[(&str, &str)] = &[
        ("keyingtries", "3"),
        ("ikelifetime", "1h"),
        ("keylife", "1h"),
        ("rekey", "no"),
    ];
    /// name, own parameters, whether it gets the opportunistic-encryption lifetimes
    type Def = (&'static str, &'static [(&'static str, &'static str)], bool);
    let defs: [Def; 6] = [
        (
            "clear",
            &[
                ("type", "passthrough"),
                ("right", "%group"),
                ("authby", "never"),
            ],
            false,
        ),
        (
            "clear-or-private",
            &[
                ("type", "passthrough"),
                ("right", "%opportunisticgroup"),
                ("authby", "rsasig"),
                ("failureshunt", "passthrough"),
            ],
            true,
        ),
        (
            "private-or-clear",
            &[
                ("type", "tunnel"),
                ("right", "%opportunisticgroup"),
                ("authby", "rsasig"),
                ("failureshunt", "passthrough"),
            ],
            true,
        ),
        (
            "private",
            &[
                ("type", "tunnel"),
                ("right", "%opportunisticgroup"),
                ("authby", "rsasig"),
                ("failureshunt", "drop"),
            ],
            true,
        ),
        (
            "block",
            &[("type", "reject"), ("right", "%group"), ("authby", "never")],
            false,
        ),
        (
            "packetdefault",
            &[
                ("type", "tunnel"),
                ("leftsubnet", "0.0.0.0/0"),
                ("right", "%opportunistic"),
                ("authby", "rsasig"),
                ("failureshunt", "passthrough"),
            ],
            true,
        ),
    ];
    let common: &[(&str, &str)] = &[
        ("left", "%defaultroute"),
        ("leftid", "%myid"),
        ("leftrsasigkey", "%dnsondemand"),
        ("rightrsasigkey", "%dnsondemand"),
        ("auto", "route"),
    ];
    defs.iter()
        .map(|(name, own, oe)| {
            let mut params = Section::new(IMPLICIT_FILE, 0);
            let extra: &[(&str, &str)] = if *oe { OE } else { &[] };
            for (k, v) in common.iter().chain(own.iter()).chain(extra.iter()) {
                params.set(*k, Value::new(*v, IMPLICIT_FILE, 0));
            }
            ConnSection {
                name: (*name).to_string(),
                file: PathBuf::from(IMPLICIT_FILE),
                line: 0,
                params,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::TempDir;

    fn parse(text: &str) -> Result<IpsecConf, ConfError> {
        IpsecConf::parse_str(text, "/etc/ipsec.conf")
    }

    /// Parse, expect an error, return its Display.
    fn perr(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// `leftnexthop=`: unset and `%direct` give the next hop `%defaultroute` found, `%defaultroute`
    /// asks for the default route, a literal must be an address of the end's family; errors cite
    /// the line.
    #[test]
    fn nexthop_forms() {
        let dr = || Ok(Some("192.0.2.254".parse().unwrap()));
        let direct: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let with = |v: &str| {
            let mut s = Section::new("/etc/ipsec.conf", 3);
            s.set("leftnexthop", Value::new(v, "/etc/ipsec.conf", 7));
            s
        };
        let unset = Section::new("/etc/ipsec.conf", 3);
        assert_eq!(
            unset.get_nexthop("left", Family::V4, direct, dr).unwrap(),
            direct
        );
        let s = with("%direct");
        assert_eq!(
            s.get_nexthop("left", Family::V4, direct, dr).unwrap(),
            direct
        );
        let s = with("%defaultroute");
        assert_eq!(
            s.get_nexthop("left", Family::V4, None, dr).unwrap(),
            Some("192.0.2.254".parse().unwrap())
        );
        let s = with("10.9.9.9");
        assert_eq!(
            s.get_nexthop("left", Family::V4, direct, dr).unwrap(),
            Some("10.9.9.9".parse().unwrap())
        );
        let e = with("fe80::1")
            .get_nexthop("left", Family::V4, None, dr)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/ipsec.conf:7: leftnexthop=fe80::1 is not of the address family of left= (IPv4)"
        );
        let e = with("gw.example")
            .get_nexthop("left", Family::V6, None, dr)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/ipsec.conf:7: leftnexthop=\"gw.example\" is not an IP address"
        );
    }

    #[test]
    fn example_from_spec() {
        let c = parse(
            "version 2.0\n\
             config setup\n\
             \tinterfaces=%defaultroute\n\
             conn net-net\n\
             \tleft=192.0.2.1\n\
             \tleftsubnet=10.0.1.0/24\n\
             \tleftnexthop=192.0.2.254\n\
             \tleftid=@west.example.com\n\
             \tleftrsasigkey=0sAQOF8tZ2\n\
             \tright=198.51.100.7\n\
             \trightsubnet=10.0.2.0/24\n\
             \trightnexthop=198.51.100.1\n\
             \trightid=@east.example.com\n\
             \trightrsasigkey=0sAQNwb\n\
             \tauto=start\n",
        )
        .unwrap();
        assert_eq!(c.setup.get("interfaces"), Some("%defaultroute"));
        assert_eq!(c.setup.line(), 2);
        assert_eq!(c.conns.len(), 1);
        let n = &c.conns[0];
        assert_eq!((n.name.as_str(), n.line), ("net-net", 4));
        assert_eq!(n.params.get("left"), Some("192.0.2.1"));
        assert_eq!(n.params.get("auto"), Some("start"));
        assert_eq!(n.params.value("rightid").unwrap().line, 13);
        assert_eq!(n.params.len(), 11);
        assert_eq!(
            n.params.names().take(3).collect::<Vec<_>>(),
            ["left", "leftsubnet", "leftnexthop"]
        );
        assert!(c.conn("net-net").is_some());
        assert!(c.conn("nope").is_none());
    }

    #[test]
    fn version_rules() {
        assert!(parse("version 2\n").is_ok());
        assert!(parse("# comment\n\n  \nversion 2.0\nconn a\n\tleft=1.2.3.4\n").is_ok());
        assert!(parse("version 2.00\n").is_ok());
        assert!(parse("").is_ok());
        assert_eq!(
            perr("conn a\n\tleft=1.2.3.4\n"),
            "/etc/ipsec.conf:1: we only support version 2 ipsec.conf files"
        );
        assert_eq!(
            perr("#c\n\tleft=1.2.3.4\n"),
            "/etc/ipsec.conf:2: we only support version 2 ipsec.conf files"
        );
        assert_eq!(
            perr("\nversion 1.0\n"),
            "/etc/ipsec.conf:2: we only support version 2.0 ipsec.conf files, not \"1.0\""
        );
        assert_eq!(
            perr("version 3\n"),
            "/etc/ipsec.conf:1: we only support version 2.0 ipsec.conf files, not \"3\""
        );
        assert!(perr("version 2.1\n").contains("not \"2.1\""));
        assert!(perr("version 2.\n").contains("not \"2.\""));
        assert!(perr("version two\n").contains("not \"two\""));
        assert_eq!(
            perr("version\n"),
            "/etc/ipsec.conf:1: section header \"version\" has wrong number of fields (1)"
        );
    }

    #[test]
    fn comments_and_quotes() {
        let c = parse(
            "version 2 # trailing comment\n\
             # full line\n\
             conn a # comment after header\n\
             \t# indented comment\n\
             \tleft=1.2.3.4   # comment\n\
             \tleftupdown=\"/usr/local/bin/updown --arg x #notacomment\"   # real comment\n\
             \tx-note = \"a#b\"\n\
             \tright = 5.6.7.8\n\
             \tleftid=@a#b\n\
             \n\
             \tauto=add\n\
             #col0 comment inside section\n\
             \trekey=no\n",
        )
        .unwrap();
        let p = &c.conns[0].params;
        assert_eq!(p.get("left"), Some("1.2.3.4"));
        assert_eq!(
            p.get("leftupdown"),
            Some("/usr/local/bin/updown --arg x #notacomment")
        );
        assert_eq!(p.get("x-note"), Some("a#b"));
        assert_eq!(p.get("right"), Some("5.6.7.8"));
        assert_eq!(p.get("leftid"), Some("@a#b"));
        assert_eq!(p.get("auto"), Some("add"));
        assert_eq!(p.get("rekey"), Some("no"));
    }

    #[test]
    fn parameter_syntax_errors() {
        let pre = "version 2\nconn a\n";
        let e = |body: &str| perr(&format!("{pre}{body}\n"));
        assert_eq!(
            e("\tleftupdown=\"a b"),
            "/etc/ipsec.conf:3: mismatched quotes in parameter value"
        );
        assert_eq!(
            e("\tleftupdown=a\"b\""),
            "/etc/ipsec.conf:3: mismatched quotes in parameter value"
        );
        assert_eq!(
            e("\tleftupdown=\"a\"b\""),
            "/etc/ipsec.conf:3: mismatched quotes in parameter value"
        );
        assert_eq!(
            e("\t=x"),
            "/etc/ipsec.conf:3: syntax error or illegal parameter name"
        );
        assert_eq!(
            e("\tleft"),
            "/etc/ipsec.conf:3: syntax error or illegal parameter name"
        );
        assert_eq!(
            e("\t1left=x"),
            "/etc/ipsec.conf:3: syntax error or illegal parameter name"
        );
        assert_eq!(
            e("\tle.ft=x"),
            "/etc/ipsec.conf:3: syntax error or illegal parameter name"
        );
        assert_eq!(
            e("\tlé=x"),
            "/etc/ipsec.conf:3: syntax error or illegal parameter name"
        );
        assert_eq!(
            e("\tfoo=bar"),
            "/etc/ipsec.conf:3: unknown parameter name \"foo\""
        );
        assert_eq!(
            e("\tinterfaces=x"),
            "/etc/ipsec.conf:3: unknown parameter name \"interfaces\""
        );
        assert_eq!(
            e("\tleftupdown=a b"),
            "/etc/ipsec.conf:3: white space within non-quoted parameter \"leftupdown\""
        );
        assert_eq!(
            e("\tleftupdown=\"a\u{1}b\""),
            "/etc/ipsec.conf:3: parameter \"leftupdown\" value contains an unprintable character"
        );
        assert_eq!(
            e("\tleft=1.2.3.4\n\t#x\n\tleft=1.2.3.5"),
            "/etc/ipsec.conf:5: duplicated parameter \"left\" (first set at line 3)"
        );
        // empty values still count as "set" for the duplicate rule
        assert!(e("\tleft=\n\tleft=1.2.3.4").contains(":4: duplicated parameter \"left\""));
        assert_eq!(
            perr("version 2\n\tleft=1.2.3.4\n"),
            "/etc/ipsec.conf:2: parameter is not within a section"
        );
    }

    #[test]
    fn section_header_errors() {
        assert_eq!(
            perr("version 2\nconn\n"),
            "/etc/ipsec.conf:2: section header \"conn\" has wrong number of fields (1)"
        );
        assert_eq!(
            perr("version 2\nconn a b\n"),
            "/etc/ipsec.conf:2: section header \"conn a b\" has wrong number of fields (3)"
        );
        assert_eq!(
            perr("version 2\nleft=1.2.3.4\n"),
            "/etc/ipsec.conf:2: section header \"left=1.2.3.4\" has wrong number of fields (1)"
        );
        assert_eq!(
            perr("version 2\nsetup config\n"),
            "/etc/ipsec.conf:2: section type \"setup\" not recognized"
        );
        assert_eq!(
            perr("version 2\nconfig foo\n"),
            "/etc/ipsec.conf:2: unknown config section \"foo\""
        );
        assert!(perr("version 2\nconn 1abc\n")
            .starts_with("/etc/ipsec.conf:2: invalid section name \"1abc\""));
        assert!(perr("version 2\nconn a/b\n").contains("invalid section name"));
        assert!(parse("version 2\nconn a.b_c-D9\n").is_ok());
        assert_eq!(
            perr("version 2\nconn a\n\tleft=1.2.3.4\nconn b\nconn a\n"),
            "/etc/ipsec.conf:5: duplicate conn section \"a\" (first defined at /etc/ipsec.conf:2)"
        );
        assert!(perr("version 2\nconfig setup\nconfig setup\n")
            .contains(":3: duplicate config section \"setup\""));
        // conn and config namespaces are separate
        assert!(parse("version 2\nconfig setup\nconn setup\n").is_ok());
    }

    #[test]
    fn setup_keywords_and_values() {
        let c = parse(
            "version 2\nconfig setup\n\tinterfaces=\"ipsec0=eth0 ipsec1=ppp0\"\n\
             \tklipsdebug=none\n\tplutodebug=\"control parsing\"\n\tuniqueids=yes\n\
             \toverridemtu=1400\n\tworkers=4\n\trp_filter=%unchanged\n\tcrlcheckinterval=10m\n\
             \tx_site=ams\n\tX-other=1\n\tnat_traversal=no\n\tvirtual_private=%v4:10.0.0.0/8\n",
        )
        .unwrap();
        let s = &c.setup;
        assert_eq!(s.get("interfaces"), Some("ipsec0=eth0 ipsec1=ppp0"));
        assert!(s.get_bool("uniqueids", false).unwrap());
        assert!(!s.get_bool("nat_traversal", true).unwrap());
        assert!(s.get_bool("hidetos", true).unwrap());
        assert_eq!(s.get_u32("workers", 1).unwrap(), 4);
        assert_eq!(s.get_u32("nothing", 7).unwrap(), 7);
        assert_eq!(s.get_duration("crlcheckinterval", 0).unwrap(), 600);
        assert_eq!(s.get_duration("nothing", 5).unwrap(), 5);
        assert_eq!(s.get("x_site"), Some("ams"));
        assert_eq!(s.get("X-other"), Some("1"));
        for kw in SETUP_KEYWORDS {
            let v = match *kw {
                "forwardcontrol"
                | "pluto"
                | "plutowait"
                | "fragicmp"
                | "hidetos"
                | "uniqueids"
                | "plutorestartoncrash"
                | "nocrsend"
                | "strictcrlpolicy"
                | "nat_traversal"
                | "force_keepalive"
                | "disable_port_floating"
                | "offload" => "yes",
                "rp_filter" => "1",
                "datapath" => "inline",
                "espsend" => "packet",
                "keyexchange" => "ikev2",
                "overridemtu" => "1500",
                "virtual_private" => "%v4:10.0.0.0/8",
                _ => "1",
            };
            let text = format!("version 2\nconfig setup\n\t{kw}={v}\n");
            assert!(parse(&text).is_ok(), "setup keyword {kw} rejected");
        }
        // conn keywords are not setup keywords, and vice versa
        assert!(perr("version 2\nconfig setup\n\tleft=1.2.3.4\n")
            .contains("unknown parameter name \"left\""));
    }

    #[test]
    fn value_validation() {
        let conn = |kv: &str| parse(&format!("version 2\nconn a\n\tleft=1.2.3.4\n\t{kv}\n"));
        let setup = |kv: &str| parse(&format!("version 2\nconfig setup\n\t{kv}\n"));
        for ok in [
            "auto=add",
            "auto=route",
            "auto=start",
            "auto=manual",
            "auto=ignore",
            "type=tunnel",
            "type=transport",
            "type=passthrough",
            "type=drop",
            "type=reject",
            "authby=rsasig",
            "authby=secret",
            "authby=secret|rsasig",
            "authby=never",
            "auth=esp",
            "auth=ah",
            "failureshunt=none",
            "failureshunt=drop",
            "dpdaction=hold",
            "dpdaction=clear",
            "dpdaction=restart",
            "pfs=no",
            "rekey=yes",
            "compress=no",
            "keylife=8h",
            "ikelifetime=1h",
            "rekeymargin=9m",
            "rekeyfuzz=100%",
            "rekeyfuzz=250%",
            "keyingtries=%forever",
            "keyingtries=3",
            "espreplay_window=64",
            "leftfirewall=yes",
            "rightfirewall=no",
            "dpddelay=30",
            "dpdtimeout=2m",
            "keyexchange=ike",
            "keyexchange=ikev1",
            "keyexchange=ikev2",
            "ikev2=insist",
            "ikev2=permit",
            "reauth=yes",
            "reauth=no",
            "auto=",
            "esp=3des-md5-96",
            "ike=aes128-sha1-modp1024",
            "spi=0x200",
        ] {
            assert!(conn(ok).is_ok(), "{ok} rejected: {:?}", conn(ok));
        }
        let e = |kv: &str| conn(kv).unwrap_err().to_string();
        assert_eq!(
            e("auto=sometimes"),
            "/etc/ipsec.conf:4: illegal auto value \"sometimes\" (expected add, route, start, manual or ignore)"
        );
        assert!(e("type=tunnell").starts_with("/etc/ipsec.conf:4: illegal type value \"tunnell\""));
        assert!(e("authby=psk").contains("illegal authby value \"psk\""));
        assert!(e("auth=esp+ah").contains("illegal auth value"));
        assert!(e("failureshunt=pass").contains("illegal failureshunt value"));
        assert_eq!(
            e("dpdaction=reset"),
            "/etc/ipsec.conf:4: illegal dpdaction value \"reset\" (expected hold, clear or restart)"
        );
        assert_eq!(
            e("pfs=true"),
            "/etc/ipsec.conf:4: illegal pfs value \"true\" (expected yes or no)"
        );
        assert!(e("leftfirewall=1").contains("illegal leftfirewall value"));
        assert!(e("keylife=8x")
            .starts_with("/etc/ipsec.conf:4: illegal keylife value: invalid duration \"8x\""));
        assert!(e("keyingtries=forever").contains("expected a number or %forever"));
        assert!(e("rekeyfuzz=lots").contains("expected a percentage"));
        assert!(e("espreplay_window=65").contains("from 0 to 64"));
        assert!(e("keyexchange=ikev3").contains("illegal keyexchange value"));
        assert!(e("ikev2=maybe").contains("illegal ikev2 value"));
        assert_eq!(
            e("reauth=maybe"),
            "/etc/ipsec.conf:4: illegal reauth value \"maybe\" (expected yes or no)"
        );
        let e = |kv: &str| setup(kv).unwrap_err().to_string();
        assert!(e("uniqueids=maybe")
            .starts_with("/etc/ipsec.conf:3: illegal uniqueids value \"maybe\""));
        assert!(e("rp_filter=3").contains("illegal rp_filter value"));
        assert!(e("workers=2000").contains("from 0 to 1024"));
        assert!(setup("workers=0").is_ok());
        assert!(e("datapath=fast").contains("illegal datapath value \"fast\""));
        assert!(setup("datapath=threads").is_ok());
        assert!(e("overridemtu=big").contains("illegal overridemtu value"));
        // Openswan's shuntlifetime= (bare failure shunts' lifetime).
        assert_eq!(
            setup("shuntlifetime=5m")
                .unwrap()
                .setup
                .get_duration("shuntlifetime", 900)
                .unwrap(),
            300
        );
        assert!(e("shuntlifetime=soon")
            .starts_with("/etc/ipsec.conf:3: illegal shuntlifetime value: invalid duration"));
        assert!(setup("virtual_private=%v4:10.0.0.0/8,%v4:!10.2.0.0/16,%v6:fd00::/8").is_ok());
        assert_eq!(
            e("virtual_private=%v4:10.0.0.0/8,10.2.0.0/16"),
            "/etc/ipsec.conf:3: illegal virtual_private value: entry 2 \"10.2.0.0/16\": must start with %v4: (or %v6:), e.g. %v4:10.0.0.0/8 or %v4:!10.2.0.0/16"
        );
        // extensions are never checked
        assert!(conn("x-auto=whatever").is_ok());
    }

    #[test]
    fn host_names_in_left_and_right_are_resolved() {
        let mut c = parse(
            "version 2\nconn a\n\tleft=gw-a.example.net\n\tright=%any\n\tleftnexthop=router\n\
             conn b\n\tleft=192.0.2.1\n\tright=unknown.example.net\n\
             conn c\n\tleft=2001:db8::1\n\tright=gw6.example.net\n",
        )
        .unwrap();
        c.resolve_names(|_| true, &|n, _| match n {
            "gw-a.example.net" => Some("192.0.2.7".parse().unwrap()),
            "gw6.example.net" => Some("2001:db8::7".parse().unwrap()),
            "router" => Some("192.0.2.254".parse().unwrap()),
            _ => None,
        });
        let a = &c.conn("a").unwrap().params;
        assert_eq!(a.get("left"), Some("192.0.2.7"));
        assert_eq!(a.value("left").unwrap().line, 3);
        assert_eq!(a.get("right"), Some("%any"));
        assert_eq!(a.get("leftnexthop"), Some("192.0.2.254"));
        let b = &c.conn("b").unwrap().params;
        assert_eq!(b.get("left"), Some("192.0.2.1"));
        assert_eq!(b.get("right"), Some("unknown.example.net"));
        assert_eq!(
            c.conn("c").unwrap().params.get("right"),
            Some("2001:db8::7")
        );
        assert!(is_host_name("vpn.example.com") && is_host_name("gw1"));
        assert!(!is_host_name("%defaultroute") && !is_host_name("10.0.0.1"));
        assert!(!is_host_name("a b") && !is_host_name("-x") && !is_host_name(""));
    }

    /// Names resolve in the family the conn asks for (`hostaddrfamily=`/`connaddrfamily=`),
    /// else that of the other literal host address, else IPv4 first and IPv6 for AAAA-only
    /// names (`pick_address`).
    #[test]
    fn host_names_resolve_in_the_conns_family() {
        let mut c = parse(
            "version 2\nconn asked\n\tleft=gw.example.net\n\tright=%any\n\thostaddrfamily=ipv6\n\
             conn beside\n\tleft=2001:db8::1\n\tright=gw.example.net\n\
             conn plain\n\tleft=gw.example.net\n\tright=%any\n\
             conn v6only\n\tleft=v6only.example.net\n\tright=%any\n",
        )
        .unwrap();
        let answer = |n: &str| -> Vec<IpAddr> {
            match n {
                "gw.example.net" => {
                    vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()]
                }
                "v6only.example.net" => vec!["2001:db8::8".parse().unwrap()],
                _ => vec![],
            }
        };
        c.resolve_names(|_| true, &|n, want| pick_address(&answer(n), want));
        let get =
            |conn: &str, key: &str| c.conn(conn).unwrap().params.get(key).unwrap().to_string();
        assert_eq!(get("asked", "left"), "2001:db8::7");
        assert_eq!(get("beside", "right"), "2001:db8::7");
        assert_eq!(get("plain", "left"), "192.0.2.7");
        assert_eq!(get("v6only", "left"), "2001:db8::8");
        assert_eq!(
            pick_address(&answer("v6only.example.net"), Some(Family::V4)),
            None
        );
    }

    /// `connaddrfamily=`, `hostaddrfamily=` and `clientaddrfamily=` (Openswan) take ipv4 or
    /// ipv6 and a literal address of the other family is an error at its line.
    #[test]
    fn addrfamily_keywords_check_literal_addresses() {
        let conn = |body: &str| parse(&format!("version 2\nconn a\n{body}"));
        assert!(conn("\tleft=2001:db8::1\n\tright=2001:db8::2\n\tconnaddrfamily=ipv6\n").is_ok());
        assert!(conn(
            "\tleft=2001:db8::1\n\tright=2001:db8::2\n\tleftsubnet=10.0.1.0/24\n\
             \thostaddrfamily=ipv6\n\tclientaddrfamily=ipv4\n"
        )
        .is_ok());
        let e = conn("\tleft=2001:db8::1\n\tright=192.0.2.2\n\thostaddrfamily=ipv6\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/ipsec.conf:4: right=192.0.2.2 is not an IPv6 address (hostaddrfamily=ipv6)"
        );
        let e = conn("\tleftsubnet=2001:db8:1::/64\n\tconnaddrfamily=ipv4\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/ipsec.conf:3: leftsubnet=2001:db8:1::/64 is not an IPv4 address (connaddrfamily=ipv4)"
        );
        let e = conn("\tconnaddrfamily=inet6\n").unwrap_err().to_string();
        assert!(
            e.contains("illegal connaddrfamily value \"inet6\" (expected ipv4 or ipv6)"),
            "{e}"
        );
    }

    #[test]
    fn section_accessor_errors_cite_lines() {
        let c = parse("version 2\nconn a\n\tleft=1.2.3.4\n\tx-flag=maybe\n\tx-n=12a\n\tx-d=5y\n")
            .unwrap();
        let p = &c.conns[0].params;
        assert_eq!(
            p.get_bool("x-flag", false).unwrap_err().to_string(),
            "/etc/ipsec.conf:4: illegal x-flag value \"maybe\" (expected yes or no)"
        );
        assert!(p
            .get_u32("x-n", 0)
            .unwrap_err()
            .to_string()
            .starts_with("/etc/ipsec.conf:5: "));
        assert!(p
            .get_duration("x-d", 0)
            .unwrap_err()
            .to_string()
            .starts_with("/etc/ipsec.conf:6: "));
        assert_eq!(
            p.err_at("left", "left and right are both local")
                .to_string(),
            "/etc/ipsec.conf:3: left and right are both local"
        );
        // unset parameter: cites the section header
        assert_eq!(
            p.err_at("right", "right is required").to_string(),
            "/etc/ipsec.conf:2: right is required"
        );
        assert_eq!(p.get_or("right", "%any"), "%any");
    }

    #[test]
    fn empty_value_means_default() {
        let c = parse(
            "version 2\nconn %default\n\tkeyingtries=5\n\tpfs=no\nconn a\n\tleft=1.2.3.4\n\tkeyingtries=\n\tleftsubnet=\"\"\n",
        )
        .unwrap();
        let p = &c.conns[0].params;
        // explicit empty value: system default, and it also blocks the %default value
        assert_eq!(p.get("keyingtries"), None);
        assert_eq!(p.get("leftsubnet"), None);
        assert_eq!(p.get("pfs"), Some("no"));
        assert!(!p.contains("keyingtries"));
    }

    #[test]
    fn default_sections() {
        let c = parse(
            "version 2\n\
             config %default\n\tuniqueids=no\n\
             conn %default\n\tkeyingtries=0\n\tauthby=rsasig\n\
             conn %default\n\tpfs=yes\n\
             config setup\n\tinterfaces=%defaultroute\n\
             conn a\n\tleft=1.2.3.4\n\tauthby=secret\n\
             conn b\n\tleft=1.2.3.5\n",
        )
        .unwrap();
        assert_eq!(c.setup.get("uniqueids"), Some("no"));
        assert_eq!(c.setup.value("uniqueids").unwrap().line, 3);
        let a = &c.conn("a").unwrap().params;
        assert_eq!(a.get("authby"), Some("secret"));
        assert_eq!(a.get("keyingtries"), Some("0"));
        assert_eq!(a.get("pfs"), Some("yes"));
        assert_eq!(a.value("pfs").unwrap().line, 8);
        let b = &c.conn("b").unwrap().params;
        assert_eq!(b.get("authby"), Some("rsasig"));
        // %default sections are not conns
        assert_eq!(c.conns.len(), 2);

        assert_eq!(
            perr("version 2\nconn a\n\tleft=1.2.3.4\nconn %default\n\tpfs=no\n"),
            "/etc/ipsec.conf:4: \"conn %default\" sections must precede non-default ones"
        );
        assert_eq!(
            perr("version 2\nconfig setup\nconfig %default\n"),
            "/etc/ipsec.conf:3: \"config %default\" sections must precede non-default ones"
        );
        // a config section does not stop conn %default from coming later
        assert!(parse("version 2\nconfig setup\nconn %default\n\tpfs=no\nconn a\n").is_ok());
        assert_eq!(
            perr("version 2\nconn %default\n\talso=x\nconn x\n"),
            "/etc/ipsec.conf:3: %default section may not contain \"also\" or \"alsoflip\" parameter"
        );
        assert!(perr("version 2\nconn %default\n\talsoflip=x\nconn x\n")
            .contains(":3: %default section may not"));
        assert_eq!(
            perr("version 2\nconn %default\n\tpfs=no\nconn %default\n\tpfs=yes\n"),
            "/etc/ipsec.conf:5: duplicated default parameter \"pfs\" (first set at /etc/ipsec.conf:3)"
        );
        // setup without a config setup section still gets config %default
        let c = parse("version 2\nconfig %default\n\tpluto=no\n").unwrap();
        assert_eq!(c.setup.get("pluto"), Some("no"));
        let c = parse("version 2\n").unwrap();
        assert!(c.setup.is_empty());
        assert_eq!(c.setup.file(), Path::new("/etc/ipsec.conf"));
    }

    #[test]
    fn also_and_alsoflip() {
        let c = parse(
            "version 2\n\
             conn %default\n\tkeyingtries=1\n\
             conn west-east\n\talso=west\n\talso=east-side\n\tauto=start\n\
             conn west\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\talso=common\n\
             conn common\n\tauthby=secret\n\tx-tag=c\n\
             conn east-side\n\tright=198.51.100.7\n\
             conn east-view\n\talsoflip=west\n\tleft=198.51.100.7\n",
        )
        .unwrap();
        let we = &c.conn("west-east").unwrap().params;
        assert_eq!(we.get("left"), Some("192.0.2.1"));
        assert_eq!(we.get("leftsubnet"), Some("10.0.1.0/24"));
        assert_eq!(we.get("authby"), Some("secret"));
        assert_eq!(we.get("right"), Some("198.51.100.7"));
        assert_eq!(we.get("auto"), Some("start"));
        assert_eq!(we.get("keyingtries"), Some("1"));
        assert_eq!(we.get("x-tag"), Some("c"));
        assert!(!we.contains("also"));
        // values keep their own location
        assert_eq!(we.value("authby").unwrap().line, 13);
        assert_eq!(
            we.names().collect::<Vec<_>>(),
            [
                "left",
                "leftsubnet",
                "authby",
                "x-tag",
                "right",
                "auto",
                "keyingtries"
            ]
        );
        // alsoflip swaps left and right, also for nested also=
        let ev = &c.conn("east-view").unwrap().params;
        assert_eq!(ev.get("right"), Some("192.0.2.1"));
        assert_eq!(ev.get("rightsubnet"), Some("10.0.1.0/24"));
        assert_eq!(ev.get("left"), Some("198.51.100.7"));
        assert_eq!(ev.get("leftsubnet"), None);
        assert_eq!(ev.get("authby"), Some("secret"));
        // the also targets are conns too
        assert_eq!(c.conns.len(), 5);
        assert_eq!(c.conn("west").unwrap().params.get("keyingtries"), Some("1"));
    }

    #[test]
    fn alsoflip_twice_is_identity() {
        let c = parse(
            "version 2\nconn a\n\talsoflip=b\nconn b\n\talsoflip=c\nconn c\n\tleftid=@x\n\trightid=@y\n",
        )
        .unwrap();
        let a = &c.conn("a").unwrap().params;
        assert_eq!(a.get("leftid"), Some("@x"));
        assert_eq!(a.get("rightid"), Some("@y"));
        let b = &c.conn("b").unwrap().params;
        assert_eq!(b.get("leftid"), Some("@y"));
    }

    #[test]
    fn also_errors() {
        assert_eq!(
            perr("version 2\nconn a\n\tleft=1.2.3.4\n\talso=missing\n"),
            "/etc/ipsec.conf:4: did not find conn section \"missing\" (named by also=)"
        );
        assert_eq!(
            perr("version 2\nconfig setup\nconn a\n\talso=setup\n"),
            "/etc/ipsec.conf:4: also=\"setup\" names a config section; it must be a conn section"
        );
        assert_eq!(
            perr("version 2\nconn a\n\talso=a\n"),
            "/etc/ipsec.conf:3: also= loop: conn \"a\" -> \"a\""
        );
        assert_eq!(
            perr("version 2\nconn a\n\talso=b\nconn b\n\talso=c\nconn c\n\tpfs=no\n\talso=a\n"),
            "/etc/ipsec.conf:8: also= loop: conn \"a\" -> \"b\" -> \"c\" -> \"a\""
        );
        assert_eq!(
            perr("version 2\nconn a\n\talso=b\n\talso=b\nconn b\n"),
            "/etc/ipsec.conf:4: section \"b\" requested more than once"
        );
        // diamond: b reached twice
        assert_eq!(
            perr("version 2\nconn a\n\talso=b\n\talso=c\nconn c\n\talso=b\nconn b\n"),
            "/etc/ipsec.conf:6: section \"b\" requested more than once"
        );
        assert_eq!(
            perr("version 2\nconn a\n\talso=1x\n"),
            "/etc/ipsec.conf:3: invalid section name \"1x\" in also="
        );
        assert!(
            perr("version 2\nconn a\n\talso=\n").contains(":3: invalid section name \"\" in also=")
        );
        assert_eq!(
            perr("version 2\nconfig setup\n\talsoflip=setup\n"),
            "/etc/ipsec.conf:3: \"alsoflip\" may only be used in conn sections"
        );
        // a parameter set both in the section and in its also= target
        assert_eq!(
            perr("version 2\nconn a\n\tpfs=no\n\talso=b\nconn b\n\tpfs=yes\n"),
            "/etc/ipsec.conf:4: duplicated parameter \"pfs\" from conn \"b\" (/etc/ipsec.conf:6; already set at /etc/ipsec.conf:3)"
        );
        assert_eq!(
            perr("version 2\nconn a\n\talso=b\n\tpfs=no\nconn b\n\tpfs=yes\n"),
            "/etc/ipsec.conf:4: duplicated parameter \"pfs\" (already set at /etc/ipsec.conf:6 via also=)"
        );
        assert_eq!(
            perr("version 2\nconn a\n\tright=1.2.3.4\n\talsoflip=b\nconn b\n\tleft=5.6.7.8\n"),
            "/etc/ipsec.conf:4: duplicated parameter \"right\" from conn \"b\" (/etc/ipsec.conf:6, written as \"left\" and flipped by alsoflip; already set at /etc/ipsec.conf:3)"
        );
        // also= in config setup can only name config sections (of which there is one)
        assert!(perr("version 2\nconfig setup\n\talso=setup\n")
            .contains("also= loop: config \"setup\" -> \"setup\""));
        assert!(
            perr("version 2\nconfig setup\n\talso=a\nconn a\n").contains("names a conn section")
        );
    }

    #[test]
    fn also_depth_is_bounded() {
        let mut text = String::from("version 2\n");
        for i in 0..150 {
            text.push_str(&format!("conn c{i}\n\talso=c{}\n", i + 1));
        }
        text.push_str("conn c150\n\tpfs=no\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 201);
        assert!(e
            .message
            .contains("also= nested too deeply (more than 100 levels)"));
        // 100 levels are fine
        let mut text = String::from("version 2\n");
        for i in 0..99 {
            text.push_str(&format!("conn c{i}\n\talso=c{}\n", i + 1));
        }
        text.push_str("conn c99\n\tpfs=no\n");
        assert_eq!(parse(&text).unwrap().conns[0].params.get("pfs"), Some("no"));
    }

    #[test]
    fn never_panics_on_garbage() {
        let frags = [
            "version 2\n",
            "version",
            " ",
            "\t",
            "\n",
            "conn",
            "config",
            "setup",
            "%default",
            "a",
            "b",
            "=",
            "\"",
            "#",
            "also=a",
            "alsoflip=b",
            "left",
            "right",
            "auto",
            "x-",
            "é",
            "\u{1}",
            "\r",
            "include",
            "*",
            "[",
            "yes",
            "8h",
            ".",
            "1",
            "\u{a0}",
            "ü\"",
            "=\"",
        ];
        for text in crate::config::testutil::fuzz_texts(&frags, 5000) {
            // (a directory that does not exist, so fuzzed includes read nothing)
            let _ = IpsecConf::parse_str(&text, "/nonexistent-rswan-dir/ipsec.conf");
        }
    }

    #[test]
    fn implicit_conns() {
        let all = builtin_implicit_conns();
        let names: Vec<_> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clear",
                "clear-or-private",
                "private-or-clear",
                "private",
                "block",
                "packetdefault"
            ]
        );
        let get = |n: &str, k: &str| {
            all.iter()
                .find(|c| c.name == n)
                .unwrap()
                .params
                .get(k)
                .map(str::to_string)
        };
        assert_eq!(get("clear", "type").as_deref(), Some("passthrough"));
        assert_eq!(get("clear", "right").as_deref(), Some("%group"));
        assert_eq!(get("clear", "authby").as_deref(), Some("never"));
        assert_eq!(get("clear", "keylife"), None);
        assert_eq!(get("private", "failureshunt").as_deref(), Some("drop"));
        assert_eq!(get("private-or-clear", "rekey").as_deref(), Some("no"));
        assert_eq!(
            get("packetdefault", "leftsubnet").as_deref(),
            Some("0.0.0.0/0")
        );
        assert_eq!(
            get("packetdefault", "right").as_deref(),
            Some("%opportunistic")
        );
        assert_eq!(get("block", "type").as_deref(), Some("reject"));
        for c in &all {
            assert_eq!(c.params.get("left"), Some("%defaultroute"));
            assert_eq!(c.params.get("leftid"), Some("%myid"));
            assert_eq!(c.params.get("auto"), Some("route"));
            assert_eq!(c.params.get("rightrsasigkey"), Some("%dnsondemand"));
            assert_eq!(c.file, Path::new(IMPLICIT_FILE));
        }
        // user conns override by name; implicit ones ignore conn %default
        let conf =
            parse("version 2\nconn %default\n\tkeyingtries=9\nconn private\n\tauto=ignore\n")
                .unwrap();
        let imp = conf.implicit_conns();
        assert_eq!(imp.len(), 5);
        assert!(imp.iter().all(|c| c.name != "private"));
        assert!(imp.iter().all(|c| c.params.get("keyingtries") != Some("9")));
        assert_eq!(
            conf.conn("private").unwrap().params.get("auto"),
            Some("ignore")
        );
    }

    #[test]
    fn every_conn_keyword_is_accepted() {
        for kw in CONN_KEYWORDS {
            let v = match *kw {
                "type" => "tunnel",
                "connaddrfamily" | "hostaddrfamily" | "clientaddrfamily" => "ipv4",
                "auto" => "add",
                "authby" => "rsasig",
                "auth" => "esp",
                "keyexchange" => "ike",
                "ikev2" => "permit",
                "failureshunt" => "none",
                "dpdaction" => "hold",
                "pfs"
                | "rekey"
                | "reauth"
                | "compress"
                | "disablearrivalcheck"
                | "aggrmode"
                | "forceencaps"
                | "xauth"
                | "leftfirewall"
                | "rightfirewall" => "no",
                "rekeyfuzz" => "100%",
                _ => "1",
            };
            assert!(
                parse(&format!("version 2\nconn a\n\t{kw}={v}\n")).is_ok(),
                "conn keyword {kw} rejected"
            );
        }
        // each left* has its right* twin
        for kw in CONN_KEYWORDS.iter().filter(|k| k.starts_with("left")) {
            assert!(
                CONN_KEYWORDS.contains(&flip_name(kw).as_str()),
                "{kw} lacks a twin"
            );
        }
        for old in ["plutoload", "plutostart", "packetdefault"] {
            assert!(perr(&format!("version 2\nconfig setup\n\t{old}=x\n"))
                .contains("unknown parameter name"));
        }
    }

    #[test]
    fn include_with_globs_and_relative_dirs() {
        let t = TempDir::new("conf-include");
        t.mkdir("ipsec.d");
        t.mkdir("ipsec.d/keys");
        let main = t.write(
            "ipsec.conf",
            "version 2\n\
             config setup\n\tinterfaces=%defaultroute\n\
             include ipsec.d/*.conf\n\
             conn last\n\talso=b-keys\n",
        );
        t.write(
            "ipsec.d/b.conf",
            "conn b\n\tleft=10.0.0.2\n\talso=b-keys\ninclude keys/b.keys\n",
        );
        t.write("ipsec.d/a.conf", "conn a\n\tleft=10.0.0.1\n");
        t.write("ipsec.d/.hidden.conf", "conn hidden\n");
        t.write("ipsec.d/notes.txt", "garbage that is not read\n");
        t.write("ipsec.d/keys/b.keys", "conn b-keys\n\tespenckey=0x0123\n");
        let c = IpsecConf::load(&main).unwrap();
        let names: Vec<_> = c.conns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "b-keys", "last"]);
        let b = c.conn("b").unwrap();
        assert_eq!(b.file, t.path().join("ipsec.d/b.conf"));
        assert_eq!(b.line, 1);
        assert_eq!(b.params.get("espenckey"), Some("0x0123"));
        let v = b.params.value("espenckey").unwrap();
        assert_eq!(
            (v.file.clone(), v.line),
            (t.path().join("ipsec.d/keys/b.keys"), 2)
        );
        assert_eq!(
            c.conn("last").unwrap().params.get("espenckey"),
            Some("0x0123")
        );
        assert_eq!(c.conn("last").unwrap().line, 5);
        assert_eq!(c.setup.get("interfaces"), Some("%defaultroute"));

        // a wildcard matching nothing is fine
        let m = t.write("nomatch.conf", "version 2\ninclude conf.d/*.conf\nconn x\n");
        assert_eq!(IpsecConf::load(&m).unwrap().conns.len(), 1);
        // parse_str resolves includes relative to the pseudo path
        let c = IpsecConf::parse_str(
            "version 2\ninclude ipsec.d/a.conf\n",
            t.path().join("virtual.conf"),
        )
        .unwrap();
        assert_eq!(c.conns[0].name, "a");
    }

    #[test]
    fn include_errors() {
        let t = TempDir::new("conf-include-err");
        let load = |name: &str, text: &str| {
            let p = t.write(name, text);
            IpsecConf::load(&p).unwrap_err().to_string()
        };
        let tp = t.path().display().to_string();
        // missing literal file: error at the include line
        let e = load("m.conf", "version 2\n\ninclude missing.conf\n");
        assert!(
            e.starts_with(&format!(
                "{tp}/m.conf:3: cannot open configuration file \"{tp}/missing.conf\": "
            )),
            "{e}"
        );
        // wrong number of words
        assert_eq!(
            load("s.conf", "version 2\ninclude a b\n"),
            format!("{tp}/s.conf:2: include syntax error in \"include a b\"")
        );
        assert_eq!(
            load("s2.conf", "version 2\ninclude\n"),
            format!("{tp}/s2.conf:2: include syntax error in \"include\"")
        );
        // errors inside an included file cite that file and line
        t.write("bad.inc", "conn ok\n\tleft=1.2.3.4\n\tbogus=1\n");
        assert_eq!(
            load("i.conf", "version 2\ninclude bad.inc\n"),
            format!("{tp}/bad.inc:3: unknown parameter name \"bogus\"")
        );
        // an include line ends the current section, and so does the end of the included file
        t.write("sec.inc", "\tleft=1.2.3.4\n");
        assert_eq!(
            load("j.conf", "version 2\nconn a\ninclude sec.inc\n"),
            format!("{tp}/sec.inc:1: parameter is not within a section")
        );
        t.write("open.inc", "conn b\n");
        assert_eq!(
            load("k.conf", "version 2\ninclude open.inc\n\tleft=1.2.3.4\n"),
            format!("{tp}/k.conf:3: parameter is not within a section")
        );
        // loops
        assert_eq!(
            load("self.conf", "version 2\ninclude self.conf\n"),
            format!("{tp}/self.conf:2: include loop: \"{tp}/self.conf\" is already being read")
        );
        t.write("loop-b.conf", "include loop-a.conf\n");
        assert_eq!(
            load("loop-a.conf", "version 2\ninclude loop-b.conf\n"),
            format!("{tp}/loop-b.conf:1: include loop: \"{tp}/loop-a.conf\" is already being read")
        );
        // depth: d0 (the top file) includes d1 ... d10: ten levels of nesting are fine, eleven are not
        for i in 1..=9 {
            t.write(&format!("d{i}.conf"), &format!("include d{}.conf\n", i + 1));
        }
        t.write("d10.conf", "conn deep\n");
        let c = IpsecConf::load(t.write("d0.conf", "version 2\ninclude d1.conf\n")).unwrap();
        assert_eq!(c.conns[0].file, t.path().join("d10.conf"));
        t.write("d10.conf", "include d11.conf\n");
        t.write("d11.conf", "conn deeper\n");
        assert_eq!(
            load("d0.conf", "version 2\ninclude d1.conf\n"),
            format!("{tp}/d10.conf:1: includes nested too deeply (more than 10 levels)")
        );
        // non-UTF-8
        std::fs::write(
            t.path().join("bin.conf"),
            b"version 2\nconn a\n\tleft=\xff\n",
        )
        .unwrap();
        assert_eq!(
            IpsecConf::load(t.path().join("bin.conf"))
                .unwrap_err()
                .to_string(),
            format!("{tp}/bin.conf:3: line is not valid UTF-8")
        );
        // missing main file
        let e = IpsecConf::load(t.path().join("absent.conf")).unwrap_err();
        assert_eq!(e.line, 0);
        assert!(e.to_string().starts_with(&format!(
            "{tp}/absent.conf: cannot open configuration file: "
        )));
    }
}
