//! Policy groups (spec 4; FreeS/WAN 2.x's `policygroups`): a conn whose peer is `%group` or
//! `%opportunisticgroup` is a template cloned once per line of its group file
//! (`ipsec.d/policies/NAME`) into an instance `NAME#CIDR` whose peer client is that CIDR.
//! Instances of a `%group` conn carry its shunt (`clear`: `%pass`, `block`: `%reject`);
//! instances of a `%opportunisticgroup` conn carry `%trap`, so the first packet to the CIDR
//! starts opportunistic encryption (crate::pluto::oe). The most specific CIDR wins (the
//! eroute table looks up the most specific pair; an acquire picks the most specific conn).
//!
//! Group files are parsed here (sans-IO) and handed to Pluto with
//! [`Pluto::load_policy_groups`], at start and on `ipsec auto --rereadgroups`; their host
//! names are resolved through the DNS resolver, each instance made when its answer arrives: instances whose entry is gone are deleted (with their SAs),
//! new entries become routed instances, unchanged ones — and their established SAs — stay.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::addr::Subnet;
use crate::config::conf::{ConfError, ConnSection, IMPLICIT_FILE};
use crate::pluto::connection::{Auto, Connection, PeerKind, Routing};
use crate::pluto::engine::Pluto;

/// The group files FreeS/WAN ships (`ipsec.d/policies/…`), in the order of the implicit conns.
pub const GROUP_NAMES: [&str; 5] = [
    "clear",
    "clear-or-private",
    "private-or-clear",
    "private",
    "block",
];

/// Longest group file line accepted (bytes); longer lines are an error at their line.
const MAX_LINE: usize = 1024;
/// Most entries kept per group file (memory and eroute-table bound); the rest are reported.
pub const MAX_GROUP_ENTRIES: usize = 4096;

/// One entry of a group file: a network and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The peer network (a host name or bare address becomes a /32).
    pub net: Subnet,
    /// The group file.
    pub file: PathBuf,
    /// Its line (1-based).
    pub line: usize,
}

/// A host name in a group file, resolved by Pluto through the DNS resolver
/// ([`Pluto::load_policy_groups`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The host name as written.
    pub name: String,
    /// The group file.
    pub file: PathBuf,
    /// Its line (1-based).
    pub line: usize,
}

/// The group files of a policies directory, by group (= file) name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyGroups {
    /// Group name → its entries, in file order (duplicates removed).
    pub groups: BTreeMap<String, Vec<GroupEntry>>,
    /// Group name → its host names still to be resolved, in file order.
    pub hosts: BTreeMap<String, Vec<HostEntry>>,
    /// The directory they were read from (for messages).
    pub dir: Option<PathBuf>,
}

impl PolicyGroups {
    /// The entries of group `name` (none if it has no file).
    pub fn entries(&self, name: &str) -> &[GroupEntry] {
        self.groups.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Parses one group file and resolves its host names at once with `resolve` (for tools such
/// as `ipsec verify`; the daemon uses [`parse_group_entries`] and never blocks on DNS).
/// Returns the entries and an error (file:line) for each line that is not a network, address
/// or host name, or whose name does not resolve.
pub fn parse_group_file(
    text: &str,
    path: &Path,
    resolve: &dyn Fn(&str) -> Option<Ipv4Addr>,
) -> (Vec<GroupEntry>, Vec<ConfError>) {
    let (mut entries, hosts, mut errs) = parse_group_entries(text, path);
    for h in hosts {
        match resolve(&h.name) {
            Some(a) => {
                let net = Subnet::host(a);
                if !entries.iter().any(|e| e.net == net) {
                    entries.push(GroupEntry {
                        net,
                        file: h.file,
                        line: h.line,
                    });
                }
            }
            None => errs.push(ConfError::new(
                path,
                h.line,
                format!(
                    "\"{}\": host name does not resolve to an IPv4 address",
                    h.name
                ),
            )),
        }
    }
    entries.sort_by_key(|e| e.line);
    (entries, errs)
}

/// Parses one group file: one CIDR, address or host name per line, `#` comments, blank lines
/// ignored. Returns the networks, the host names (unresolved), and an error (file:line) for
/// each line that is neither.
pub fn parse_group_entries(
    text: &str,
    path: &Path,
) -> (Vec<GroupEntry>, Vec<HostEntry>, Vec<ConfError>) {
    let mut entries: Vec<GroupEntry> = Vec::new();
    let mut hosts: Vec<HostEntry> = Vec::new();
    let mut errs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |m: String| ConfError::new(path, line, m);
        if raw.len() > MAX_LINE {
            errs.push(err(format!("line longer than {MAX_LINE} bytes")));
            continue;
        }
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let mut words = body.split_whitespace();
        let w = words.next().unwrap_or_default();
        if words.next().is_some() {
            errs.push(err(format!(
                "\"{body}\": one network or host name per line"
            )));
            continue;
        }
        let net = if w.starts_with(|c: char| c.is_ascii_digit()) {
            match w.parse::<Subnet>() {
                Ok(n) => n,
                Err(e) => {
                    errs.push(err(format!("\"{w}\": {e}")));
                    continue;
                }
            }
        } else if is_host_name(w) {
            if hosts.iter().any(|h| h.name == w) {
                continue;
            }
            if entries.len() + hosts.len() >= MAX_GROUP_ENTRIES {
                errs.push(err(format!(
                    "more than {MAX_GROUP_ENTRIES} entries: the rest of the file is ignored"
                )));
                break;
            }
            hosts.push(HostEntry {
                name: w.to_string(),
                file: path.to_path_buf(),
                line,
            });
            continue;
        } else {
            errs.push(err(format!("\"{w}\" is neither a network nor a host name")));
            continue;
        };
        if entries.iter().any(|e| e.net == net) {
            continue;
        }
        if entries.len() + hosts.len() >= MAX_GROUP_ENTRIES {
            errs.push(err(format!(
                "more than {MAX_GROUP_ENTRIES} entries: the rest of the file is ignored"
            )));
            break;
        }
        entries.push(GroupEntry {
            net,
            file: path.to_path_buf(),
            line,
        });
    }
    (entries, hosts, errs)
}

/// A DNS host name: letters, digits, `-` and `.`, labels of 1..63 bytes, at most 253 bytes.
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The instance name of group `group`'s entry `net` (`private#10.0.0.0/8`).
pub fn instance_name(group: &str, net: &Subnet) -> String {
    format!("{group}#{net}")
}

/// Whether a conn section is one of the built-in implicit conns.
pub(crate) fn is_implicit(c: &ConnSection) -> bool {
    c.file == Path::new(IMPLICIT_FILE)
}

/// Group state kept by Pluto.
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    /// The group files last loaded.
    pub(crate) files: PolicyGroups,
    /// The implicit `packetdefault` conn was loaded with `auto=route`: rswan routes it only
    /// while some opportunistic group instance is routed (see docs/compatibility.md).
    pub(crate) packetdefault_auto_route: bool,
    /// The group files' host names resolved so far: (group, name) → its /32.
    pub(crate) resolved: BTreeMap<(String, String), Subnet>,
    /// Counts loads of the group files: an answer for an older load is ignored.
    pub(crate) generation: u64,
}

impl Pluto {
    /// Loads (or reloads: `ipsec auto --rereadgroups`) the policy group files and brings the
    /// group instances in line with them: an instance whose entry went away is deleted (its
    /// SAs too); a new entry becomes an instance, routed if its group conn is `auto=route`;
    /// an unchanged entry's instance, its routing and its SAs are left alone.
    ///
    /// Host names are resolved through the DNS resolver ([`Output::DnsLookup`] of their `A`
    /// record; the daemon never waits for DNS): a name's instance is made when its answer
    /// arrives, and a name that does not resolve is logged with its file:line and skipped.
    /// A name resolved before keeps its instance (and SAs) meanwhile; a new answer moves it.
    ///
    /// [`Output::DnsLookup`]: crate::pluto::Output::DnsLookup
    pub fn load_policy_groups(&mut self, groups: PolicyGroups) {
        self.groups.generation += 1;
        let wanted: Vec<(String, String)> = groups
            .hosts
            .iter()
            .flat_map(|(g, hs)| hs.iter().map(move |h| (g.clone(), h.name.clone())))
            .collect();
        let dns = self.oe_resolver_available();
        self.groups
            .resolved
            .retain(|k, _| dns && wanted.contains(k));
        self.groups.files = groups;
        self.instantiate_groups();
        let generation = self.groups.generation;
        let hosts: Vec<(String, HostEntry)> = self
            .groups
            .files
            .hosts
            .iter()
            .flat_map(|(g, hs)| hs.iter().map(move |h| (g.clone(), h.clone())))
            .collect();
        for (group, h) in hosts {
            if dns {
                self.lookup_group_host(group, h, generation);
            } else {
                self.log(format!(
                    "WARNING: {}:{}: \"{}\": no DNS resolver to resolve the host name; skipped",
                    h.file.display(),
                    h.line,
                    h.name
                ));
            }
        }
    }

    /// The answer for host name `h` of group `group` (group files load `generation`).
    pub(crate) fn group_host_answer(
        &mut self,
        group: String,
        h: HostEntry,
        generation: u64,
        result: &crate::dns::Lookup,
    ) {
        if generation != self.groups.generation {
            return;
        }
        let addr = match result {
            crate::dns::Lookup::Answer(recs) => recs
                .iter()
                .find_map(|r| <[u8; 4]>::try_from(r.rdata.as_slice()).ok())
                .map(Ipv4Addr::from),
            _ => None,
        };
        let key = (group, h.name.clone());
        match addr {
            Some(a) => {
                let net = Subnet::host(a);
                if self.groups.resolved.get(&key) == Some(&net) {
                    return;
                }
                if self.cfg.debug.control {
                    self.log(format!(
                        "| policy group: {}:{}: {} is {a}",
                        h.file.display(),
                        h.line,
                        h.name
                    ));
                }
                self.groups.resolved.insert(key, net);
            }
            None => {
                let why = match result {
                    crate::dns::Lookup::Answer(_) => "no A record".to_string(),
                    other => other.to_string(),
                };
                self.log(format!(
                    "WARNING: {}:{}: \"{}\": host name does not resolve to an IPv4 address (DNS A {}: {why}); skipped",
                    h.file.display(),
                    h.line,
                    h.name,
                    h.name
                ));
                if self.groups.resolved.remove(&key).is_none() {
                    return;
                }
            }
        }
        self.instantiate_groups();
    }

    /// The group conns and, for each, the instances its file asks for: (template key,
    /// instance name, entry).
    fn wanted_instances(&self) -> Vec<(String, String, GroupEntry)> {
        let mut v = Vec::new();
        for c in self.conns.values() {
            if !c.peer_kind.is_group() || c.instance != 0 || c.group.is_some() {
                continue;
            }
            for e in self.groups.files.entries(&c.name) {
                v.push((c.name.clone(), instance_name(&c.name, &e.net), e.clone()));
            }
            let hosts = self
                .groups
                .files
                .hosts
                .get(&c.name)
                .map_or(&[][..], Vec::as_slice);
            for h in hosts {
                let key = (c.name.clone(), h.name.clone());
                if let Some(net) = self.groups.resolved.get(&key) {
                    let e = GroupEntry {
                        net: *net,
                        file: h.file.clone(),
                        line: h.line,
                    };
                    v.push((c.name.clone(), instance_name(&c.name, net), e));
                }
            }
        }
        v
    }

    /// Creates, routes and deletes group instances to match the loaded group files.
    pub(crate) fn instantiate_groups(&mut self) {
        let wanted = self.wanted_instances();
        // Instances no longer wanted (entry removed, or group conn gone): delete.
        let stale: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.instance == 0)
            .filter(|c| c.group.is_some() && !wanted.iter().any(|(_, name, _)| *name == c.name))
            .map(|c| c.name.clone())
            .collect();
        for name in stale {
            self.log(format!("policy group: removing \"{name}\""));
            self.delete_conn(&name);
        }
        // Most specific first is the eroute table's business; routing order only decides
        // which of two groups listing the same network keeps it (the first in name order).
        for (tmpl, name, entry) in wanted {
            if self.conns.contains_key(&name) {
                continue;
            }
            let Some(t) = self.conns.get(&tmpl) else {
                continue;
            };
            if let Some(other) = self.conns.values().find(|o| {
                o.group.is_some()
                    && o.instance == 0
                    && o.that.client == entry.net
                    && o.this.client == t.this.client
            }) {
                let other = other.name.clone();
                self.log(format!(
                    "WARNING: {}:{}: {} is already in policy group \"{}\"; ignored for \"{tmpl}\"",
                    entry.file.display(),
                    entry.line,
                    entry.net,
                    other.split('#').next().unwrap_or_default()
                ));
                continue;
            }
            let inst = group_instance(t, &name, entry.net);
            let route = matches!(t.auto, Auto::Route | Auto::Start);
            self.conns.insert(name.clone(), inst);
            if self.cfg.debug.control {
                self.log(format!("| policy group: added \"{name}\""));
            }
            if route {
                if let Err(e) = self.route_conn(&name) {
                    self.log(e);
                }
            }
        }
        self.route_packetdefault();
    }

    /// Routes the implicit `packetdefault` conn while some opportunistic group instance is
    /// routed, unroutes it (when it carries no SA) otherwise.
    fn route_packetdefault(&mut self) {
        if !self.groups.packetdefault_auto_route {
            return;
        }
        let Some(pd) = self.conns.get("packetdefault") else {
            return;
        };
        let routed = pd.routing != Routing::Unrouted;
        let oe_in_use = self
            .conns
            .values()
            .any(|c| c.group.is_some() && c.is_opportunistic() && c.routing != Routing::Unrouted);
        if oe_in_use && !routed {
            if let Err(e) = self.route_conn("packetdefault") {
                self.log(e);
            }
        } else if !oe_in_use && routed {
            if let Some(c) = self.conns.get_mut("packetdefault") {
                c.policy_routed = false;
            }
            let _ = self.unroute_conn("packetdefault");
        }
    }

    /// The `--status`-style names of the routed opportunistic conns (group instances and
    /// `%opportunistic` conns): the policies that ask for opportunistic encryption.
    pub fn opportunistic_policies(&self) -> Vec<String> {
        self.conns
            .values()
            .filter(|c| c.is_opportunistic() && c.routing != Routing::Unrouted)
            .map(|c| c.name.clone())
            .collect()
    }
}

/// The instance `name` of group template `t` for peer network `net`.
fn group_instance(t: &Connection, name: &str, net: Subnet) -> Connection {
    let mut c = t.clone();
    c.name = name.to_string();
    c.instance = 0;
    c.group = Some(t.name.clone());
    c.peer_kind = match t.peer_kind {
        PeerKind::OpportunisticGroup => PeerKind::Opportunistic,
        _ => PeerKind::Fixed,
    };
    c.that.client = net;
    c.that.has_client = true;
    c.clear_runtime();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(_: &str) -> Option<Ipv4Addr> {
        None
    }

    #[test]
    fn group_file_entries_comments_names_and_errors() {
        let text = "# private group\n\
                    10.0.0.0/8\n\
                    \n\
                    192.0.2.7   # a host\n\
                    gw.example.com\n\
                    10.0.0.0/8\n\
                    10.1.2.3/8\n\
                    a b\n\
                    bad_name!\n\
                    unknown.example.net\n";
        let resolve = |n: &str| (n == "gw.example.com").then(|| Ipv4Addr::new(198, 51, 100, 9));
        let (e, errs) =
            parse_group_file(text, Path::new("/etc/ipsec.d/policies/private"), &resolve);
        let nets: Vec<String> = e.iter().map(|e| e.net.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "198.51.100.9/32"]);
        assert_eq!(e[1].line, 4);
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(
            msgs[0].starts_with("/etc/ipsec.d/policies/private:7:"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].contains(":8:") && msgs[1].contains("one network"),
            "{msgs:?}"
        );
        assert!(msgs[2].contains(":9:"), "{msgs:?}");
        assert!(
            msgs[3].contains(":10:") && msgs[3].contains("does not resolve"),
            "{msgs:?}"
        );
    }

    #[test]
    fn group_file_bounds() {
        let long = format!("{}\n10.0.0.0/8\n", "1".repeat(MAX_LINE + 1));
        let (e, errs) = parse_group_file(&long, Path::new("p"), &no_dns);
        assert_eq!(e.len(), 1);
        assert_eq!(errs.len(), 1);
        let many: String = (0..MAX_GROUP_ENTRIES + 10)
            .map(|i| format!("10.{}.{}.0/24\n", i / 256, i % 256))
            .collect();
        let (e, errs) = parse_group_file(&many, Path::new("p"), &no_dns);
        assert_eq!(e.len(), MAX_GROUP_ENTRIES);
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn host_names() {
        assert!(is_host_name("a.example.com."));
        assert!(is_host_name("x-1"));
        assert!(!is_host_name("-x"));
        assert!(!is_host_name("a..b"));
        assert!(!is_host_name(""));
    }
}
