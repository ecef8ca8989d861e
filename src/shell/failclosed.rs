//! Fail-closed kernel policy: what keeps traffic for a protected subnet from leaving in clear
//! while no daemon runs — after `kill -9`, a crash, the OOM killer, or between the two halves of
//! `ipsec setup restart`.
//!
//! KLIPS kept its eroutes in the kernel, so a dead Pluto never turned a protected route into a
//! cleartext one. rswan keeps its policy in kernel objects that outlive the process:
//! - ipsecN are persistent TUN devices (`shell::tun`): the routes through them stay, and the
//!   kernel drops what it routes into a device nobody reads.
//! - every subnet a conn routes into ipsecN is also routed into it in table 115, consulted
//!   before `main` by everything except rswan's own marked sockets, with a `blackhole` of the
//!   same prefix behind it at metric [`FALLBACK_METRIC`](super::netlink::FALLBACK_METRIC): it
//!   decides only when the route through ipsecN is gone (device deleted, or
//!   `ignore_routes_with_linkdown` set). See `shell::netlink` for the rule and the mark.
//!   A conn with its own `leftupdown` script routes as that script says: rswan adds no table-115
//!   routes for it (they would override the script's).
//! - a record in the run directory ([`Record`]: the devices, and which conns were routed or up)
//!   tells the next daemon what to adopt: it routes those conns again (`%trap`, so the next
//!   packet renegotiates), brings manual conns that were up back up, and then removes the
//!   routes and blackholes (found by their `proto 115`) that nothing it runs protects any more.
//!
//! Only `--unroute`, `--delete` (and an SA's end for a conn that was only up, not routed) and
//! `ipsec setup stop` remove a blackhole; `ipsec setup restart` removes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::addr::Subnet;

use super::netlink::{self, RTPROT_RSWAN};

/// Who routed a subnet: an IKE conn (Pluto) or a manually keyed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `ipsec auto` (Pluto): the name may carry an instance suffix (`rw[3]`).
    Auto,
    /// `ipsec manual`.
    Manual,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Auto => "auto",
            Kind::Manual => "manual",
        }
    }
}

/// One routed conn as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The subnets routed into ipsecN for it.
    pub nets: BTreeSet<Subnet>,
    /// A manual conn whose SAs are up (`manual --up`), not only routed.
    pub up: bool,
}

/// What a daemon leaves for the next one (`RUNDIR/failclosed`): its ipsecN devices and the conns
/// it had routed. Sans-IO: [`Record::parse`] / [`Record::emit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// ipsecN devices created persistent.
    pub devices: BTreeSet<String>,
    /// Routed conns by (kind, name).
    pub routed: BTreeMap<(Kind, String), Entry>,
}

impl Record {
    /// Parses the file's text; lines it does not understand are skipped (the record only ever
    /// widens protection, a damaged line must not stop a start).
    pub fn parse(text: &str) -> Record {
        let mut r = Record::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["device", name] => {
                    r.devices.insert((*name).to_string());
                }
                ["route", kind, name, net] => {
                    let kind = match *kind {
                        "auto" => Kind::Auto,
                        "manual" => Kind::Manual,
                        _ => continue,
                    };
                    if let Ok(n) = net.parse() {
                        r.routed
                            .entry((kind, (*name).to_string()))
                            .or_default()
                            .nets
                            .insert(n);
                    }
                }
                ["up", "manual", name] => {
                    r.routed
                        .entry((Kind::Manual, (*name).to_string()))
                        .or_default()
                        .up = true;
                }
                _ => {}
            }
        }
        r
    }

    /// The file's text.
    pub fn emit(&self) -> String {
        let mut s = String::from(
            "# rswan fail-closed record: ipsecN devices and routed conns, read by the next start\n",
        );
        for d in &self.devices {
            s.push_str(&format!("device {d}\n"));
        }
        for ((kind, name), e) in &self.routed {
            for n in &e.nets {
                s.push_str(&format!("route {} {name} {n}\n", kind.word()));
            }
            if e.up && *kind == Kind::Manual {
                s.push_str(&format!("up manual {name}\n"));
            }
        }
        s
    }

    /// Reads `file`; a missing or unreadable file is an empty record.
    pub fn load(file: &Path) -> Record {
        std::fs::read_to_string(file)
            .map(|t| Record::parse(&t))
            .unwrap_or_default()
    }

    /// Every subnet some conn routes.
    pub fn nets(&self) -> BTreeSet<Subnet> {
        self.routed
            .values()
            .flat_map(|e| e.nets.iter().copied())
            .collect()
    }
}

/// A change the guard made or failed to make, for the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(pub String);

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The running daemon's fail-closed state: blackholes for routed subnets, and the record.
#[derive(Debug)]
pub struct Guard {
    file: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    record: Record,
    /// The previous daemon's conns, kept in the written record until [`Guard::adopted`], so a
    /// crash during start-up loses nothing.
    pending: Option<Record>,
    /// Restarting: nothing is removed any more, the record stays as it is for the next daemon.
    keep: bool,
}

impl Guard {
    /// A guard writing its record to `file`, for the daemon's `devices`; `previous` is what the
    /// last daemon recorded (its conns stay recorded until [`Guard::adopted`]).
    pub fn new(file: PathBuf, devices: &[String], previous: Record) -> Guard {
        let g = Guard {
            file,
            inner: Mutex::new(Inner {
                pending: Some(previous),
                ..Inner::default()
            }),
        };
        {
            let mut i = g.lock();
            i.record.devices = devices.iter().cloned().collect();
            g.save(&i);
        }
        g
    }

    /// The previous daemon's conns have been re-established or given up: from now on the record
    /// holds only this daemon's.
    pub fn adopted(&self) {
        let mut i = self.lock();
        i.pending = None;
        self.save(&i);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, i: &Inner) {
        // Only a merge with the previous daemon's conns needs a copy of the record (saves
        // cloning every routed conn each time one is routed).
        let text = match &i.pending {
            None => i.record.emit(),
            Some(p) => {
                let mut r = i.record.clone();
                for (k, e) in &p.routed {
                    let m = r.routed.entry(k.clone()).or_default();
                    m.nets.extend(e.nets.iter().copied());
                    m.up |= e.up;
                }
                r.emit()
            }
        };
        let tmp = self.file.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }

    /// Conn `name` routed `nets` into ipsecN: with `via` (next hop, ipsecN's index; `None` for
    /// a conn whose own updown script routes) each gets its table-115 route and blackhole
    /// fallback; the record names the conn.
    pub fn routed(
        &self,
        kind: Kind,
        name: &str,
        nets: &[Subnet],
        via: Option<(std::net::IpAddr, u32)>,
    ) -> Vec<Note> {
        let mut notes = Vec::new();
        if let Some((gw, oif)) = via {
            for n in nets {
                let r = netlink::route_replace_in(netlink::RSWAN_TABLE, *n, gw, oif)
                    .and_then(|()| netlink::blackhole_add(*n));
                if let Err(e) = r {
                    notes.push(Note(format!(
                        "\"{name}\": cannot add the fail-closed routes for {n}: {e}"
                    )));
                }
            }
        }
        let mut i = self.lock();
        let e = i.record.routed.entry((kind, name.to_string())).or_default();
        e.nets.extend(nets.iter().copied());
        self.save(&i);
        notes
    }

    /// A manual conn's SAs went up (`true`) or down.
    pub fn manual_up(&self, name: &str, up: bool) {
        let mut i = self.lock();
        if i.keep {
            return;
        }
        if let Some(e) = i.record.routed.get_mut(&(Kind::Manual, name.to_string())) {
            e.up = up;
            self.save(&i);
        }
    }

    /// Conn `name` no longer routes its subnets: blackholes no other conn needs are removed.
    /// While restarting ([`Guard::keep`]) nothing is removed.
    pub fn unrouted(&self, kind: Kind, name: &str) -> Vec<Note> {
        let mut i = self.lock();
        if i.keep {
            return Vec::new();
        }
        let Some(gone) = i.record.routed.remove(&(kind, name.to_string())) else {
            return Vec::new();
        };
        self.save(&i);
        let still = i.record.nets();
        drop(i);
        let mut notes = Vec::new();
        for n in gone.nets.difference(&still) {
            let r = netlink::failclosed_route_del(*n).and_then(|()| netlink::blackhole_del(*n));
            if let Err(e) = r {
                notes.push(Note(format!(
                    "\"{name}\": cannot remove the fail-closed routes for {n}: {e}"
                )));
            }
        }
        notes
    }

    /// From now on (`ipsec setup restart`) nothing is unrouted: routes, blackholes and the
    /// record stay for the next daemon.
    pub fn keep(&self) {
        self.lock().keep = true;
    }

    /// Whether the daemon is stopping for a restart.
    pub fn keeping(&self) -> bool {
        self.lock().keep
    }

    /// Removes what an earlier daemon left that this one does not protect: rswan's routes
    /// (table 115, and `proto 115` in main) for subnets no conn of this daemon routes.
    pub fn sweep(&self) -> Vec<Note> {
        let keep = self.lock().record.nets();
        let mut notes = Vec::new();
        match netlink::routes() {
            Ok(routes) => {
                for r in routes.iter().filter(|r| ours(r) && !keep.contains(&r.dst)) {
                    let what = if r.is_blackhole() { "blackhole " } else { "" };
                    match netlink::route_delete(&r.delete_spec()) {
                        Ok(()) => notes.push(Note(format!(
                            "removed the {what}route for {} left by the previous daemon: no conn routes it now",
                            r.dst
                        ))),
                        Err(e) => notes.push(Note(format!(
                            "cannot remove the {what}route for {} left by the previous daemon: {e}",
                            r.dst
                        ))),
                    }
                }
            }
            Err(e) => notes.push(Note(format!("cannot list routes: {e}"))),
        }
        notes
    }
}

/// Whether rswan installed this route: everything in table 115, and `proto 115` in main.
fn ours(r: &netlink::KernelRoute) -> bool {
    r.table == u32::from(netlink::RSWAN_TABLE)
        || (r.protocol == RTPROT_RSWAN && r.table == u32::from(netlink::MAIN_TABLE))
}

/// Installs the rule that puts table 115 before `main` (idempotent; at every start).
pub fn install_rule() -> Option<Note> {
    netlink::rule_ensure()
        .err()
        .map(|e| Note(format!("cannot add the routing rule for table 115: {e}")))
}

/// `ipsec setup stop`: removes every route rswan installed (table 115, `proto 115` in main),
/// the rule, the record's devices and the record itself. Also used when no daemon runs, to
/// clean up after a crashed one.
pub fn clear_all(file: &Path, devices: &[String]) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut all: BTreeSet<String> = Record::load(file).devices;
    all.extend(devices.iter().cloned());
    if let Err(e) = netlink::rule_remove() {
        notes.push(Note(format!("cannot remove the routing rule: {e}")));
    }
    if let Ok(routes) = netlink::routes() {
        for r in routes.iter().filter(|r| ours(r)) {
            if let Err(e) = netlink::route_delete(&r.delete_spec()) {
                notes.push(Note(format!("cannot remove the route for {}: {e}", r.dst)));
            }
        }
    }
    for d in &all {
        if super::tun::exists(d) {
            super::tun::destroy(d);
        }
    }
    let _ = std::fs::remove_file(file);
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let mut r = Record::default();
        r.devices.insert("ipsec0".into());
        let e = r.routed.entry((Kind::Auto, "net".into())).or_default();
        e.nets.insert("10.0.2.0/24".parse().unwrap());
        let m = r.routed.entry((Kind::Manual, "man".into())).or_default();
        m.nets.insert("0.0.0.0/1".parse().unwrap());
        m.nets.insert("128.0.0.0/1".parse().unwrap());
        m.up = true;
        let text = r.emit();
        assert!(text.contains("route manual man 0.0.0.0/1\n"), "{text}");
        assert!(text.contains("up manual man\n"));
        assert_eq!(Record::parse(&text), r);
        assert_eq!(r.nets().len(), 3);
    }

    #[test]
    fn damaged_record_lines_are_skipped() {
        let r = Record::parse(
            "device ipsec0\nroute auto a 10.0.9.0/24\nroute bogus b 10.0.8.0/24\nroute auto c not-a-net\ngarbage\n\0\u{1}\n",
        );
        assert_eq!(r.devices.len(), 1);
        assert_eq!(r.routed.len(), 1);
        assert!(r.routed.contains_key(&(Kind::Auto, "a".to_string())));
    }
}
