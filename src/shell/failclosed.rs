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
//!   A conn is recorded before its routes go in. The file is a journal: written whole at start
//!   (and when compacted), then each change is one appended line (`route …`, `unroute …`,
//!   `up`/`down manual …`), one `write(2)` of a few bytes instead of the whole record for every
//!   conn routed; a process killed at any point leaves whole lines that replay to a record
//!   covering every route it installed.
//!
//! Only `--unroute`, `--delete` (and an SA's end for a conn that was only up, not routed) and
//! `ipsec setup stop` remove a blackhole; `ipsec setup restart` removes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::Write;
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
    /// Parses the file's text, journal lines in order; lines it does not understand are
    /// skipped (the record only ever widens protection, a damaged line must not stop a start).
    pub fn parse(text: &str) -> Record {
        let kind_of = |k: &str| match k {
            "auto" => Some(Kind::Auto),
            "manual" => Some(Kind::Manual),
            _ => None,
        };
        let mut r = Record::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["device", name] => {
                    r.devices.insert((*name).to_string());
                }
                ["route", kind, name, net] => {
                    let Some(kind) = kind_of(kind) else { continue };
                    if let Ok(n) = net.parse() {
                        r.routed
                            .entry((kind, (*name).to_string()))
                            .or_default()
                            .nets
                            .insert(n);
                    }
                }
                ["unroute", kind, name] => {
                    let Some(kind) = kind_of(kind) else { continue };
                    r.routed.remove(&(kind, (*name).to_string()));
                }
                ["up", "manual", name] => {
                    r.routed
                        .entry((Kind::Manual, (*name).to_string()))
                        .or_default()
                        .up = true;
                }
                ["down", "manual", name] => {
                    if let Some(e) = r.routed.get_mut(&(Kind::Manual, (*name).to_string())) {
                        e.up = false;
                    }
                }
                _ => {}
            }
        }
        r
    }

    /// The journal line(s) that add `nets` to conn (`kind`, `name`).
    fn route_lines(kind: Kind, name: &str, nets: &[Subnet]) -> String {
        let mut s = String::new();
        for n in nets {
            s.push_str(&format!("route {} {name} {n}\n", kind.word()));
        }
        s
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
    /// The record file, open for appending journal lines since it was last written whole.
    journal: Option<File>,
    /// Journal lines appended since then.
    appended: usize,
}

/// The journal is rewritten whole (compacted) once it has this many appended lines, or more
/// than twice as many as the record has conns: O(1) amortized per change, and a file that
/// stays within a small multiple of the record.
const COMPACT_MIN_LINES: usize = 1024;

impl Guard {
    /// A guard writing its record to `file`, for the daemon's `devices`; `previous` is what the
    /// last daemon recorded (its conns stay recorded until [`Guard::adopted`]).
    pub fn new(file: PathBuf, devices: &[String], previous: Record) -> Guard {
        let g = Guard {
            file,
            inner: Mutex::new(Inner {
                // Nothing to merge (a first start): changes are appended from the start.
                pending: (!previous.routed.is_empty()).then_some(previous),
                ..Inner::default()
            }),
        };
        {
            let mut i = g.lock();
            i.record.devices = devices.iter().cloned().collect();
            g.save(&mut i);
        }
        g
    }

    /// The previous daemon's conns have been re-established or given up: from now on the record
    /// holds only this daemon's.
    pub fn adopted(&self) {
        let mut i = self.lock();
        i.pending = None;
        self.save(&mut i);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the whole record (replacing the file: a temporary file renamed over it) and opens
    /// it for appending the next changes.
    fn save(&self, i: &mut Inner) {
        i.journal = None;
        i.appended = 0;
        // Only a merge with the previous daemon's conns needs a copy of the record.
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
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &self.file).is_ok() {
            i.journal = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.file)
                .ok();
        }
    }

    /// Records a change: `lines` appended to the journal in one write, or the whole record
    /// written when it cannot be appended (no journal open, or the previous daemon's conns
    /// still merged in: their lines are not in `record`) or is due for compaction. `i.record`
    /// already holds the change.
    fn append(&self, i: &mut Inner, lines: &str) {
        if i.pending.is_some() {
            return self.save(i);
        }
        let Some(f) = i.journal.as_mut() else {
            return self.save(i);
        };
        if f.write_all(lines.as_bytes()).is_err() {
            return self.save(i);
        }
        i.appended += lines.lines().count();
        if i.appended > COMPACT_MIN_LINES.max(2 * i.record.routed.len()) {
            self.save(i);
        }
    }

    /// Conn `name` is about to route `nets` into ipsecN: the record names it first, so that a
    /// daemon killed while (or after) the routes go in leaves them covered.
    pub fn routing(&self, kind: Kind, name: &str, nets: &[Subnet]) {
        let mut i = self.lock();
        let merging = i.pending.is_some();
        let e = i.record.routed.entry((kind, name.to_string())).or_default();
        let new: Vec<Subnet> = nets
            .iter()
            .copied()
            .filter(|n| !e.nets.contains(n))
            .collect();
        if new.is_empty() && !merging {
            return;
        }
        e.nets.extend(new.iter().copied());
        self.append(&mut i, &Record::route_lines(kind, name, &new));
    }

    /// Conn `name` routed `nets` into ipsecN: it is recorded ([`Guard::routing`], if not done
    /// before the routes went in), and with `via` (next hop, ipsecN's index; `None` for a conn
    /// whose own updown script routes) each net gets its table-115 route and blackhole
    /// fallback.
    pub fn routed(
        &self,
        kind: Kind,
        name: &str,
        nets: &[Subnet],
        via: Option<(std::net::IpAddr, u32)>,
    ) -> Vec<Note> {
        self.routing(kind, name, nets);
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
            let line = format!("{} manual {name}\n", if up { "up" } else { "down" });
            self.append(&mut i, &line);
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
        self.append(&mut i, &format!("unroute {} {name}\n", kind.word()));
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
    fn journal_lines_replay_in_order() {
        let r = Record::parse(
            "device ipsec0\nroute auto a 10.0.9.0/24\nroute auto b 10.0.8.0/24\nroute manual m 10.0.7.0/24\nup manual m\nunroute auto a\nroute auto b 10.0.6.0/24\ndown manual m\nunroute auto nobody\nroute auto a 10.0.5.0/24\n",
        );
        let nets = |k: Kind, n: &str| -> Vec<String> {
            r.routed[&(k, n.to_string())]
                .nets
                .iter()
                .map(|n| n.to_string())
                .collect()
        };
        assert_eq!(nets(Kind::Auto, "a"), ["10.0.5.0/24"]);
        assert_eq!(nets(Kind::Auto, "b"), ["10.0.6.0/24", "10.0.8.0/24"]);
        assert!(!r.routed[&(Kind::Manual, "m".to_string())].up);
        assert_eq!(r.routed.len(), 3);
    }

    /// A scratch run directory under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!(
                "rswan-failclosed-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn net(i: usize) -> Subnet {
        format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()
    }

    /// Every change is in the file as soon as the call returns (a `kill -9` right after it
    /// loses nothing), appended rather than rewritten, and the file is compacted so that it
    /// stays within a small multiple of the record.
    #[test]
    fn guard_appends_each_change_and_compacts() {
        let dir = Scratch::new("journal");
        let file = dir.0.join("failclosed");
        let g = Guard::new(file.clone(), &["ipsec0".to_string()], Record::default());
        let mut want = Record::default();
        want.devices.insert("ipsec0".into());
        assert_eq!(Record::load(&file), want);
        let n = 3 * COMPACT_MIN_LINES;
        let mut max_len = 0;
        for i in 0..n {
            let name = format!("peer-{i}");
            g.routing(Kind::Auto, &name, &[net(i)]);
            want.routed
                .entry((Kind::Auto, name.clone()))
                .or_default()
                .nets
                .insert(net(i));
            // The same nets again change nothing.
            g.routing(Kind::Auto, &name, &[net(i)]);
            if i % 97 == 0 {
                assert_eq!(Record::load(&file), want, "after {i} conns");
            }
            max_len = max_len.max(std::fs::metadata(&file).unwrap().len());
        }
        assert_eq!(Record::load(&file), want);
        g.routing(Kind::Manual, "man", &[net(n)]);
        g.manual_up("man", true);
        let m = want.routed.entry((Kind::Manual, "man".into())).or_default();
        m.nets.insert(net(n));
        m.up = true;
        assert_eq!(Record::load(&file), want);
        g.manual_up("man", false);
        want.routed
            .get_mut(&(Kind::Manual, "man".into()))
            .unwrap()
            .up = false;
        assert_eq!(Record::load(&file), want);
        // Compaction kept the journal near the record's size: the whole record is one line
        // per conn, the journal at most a few times that.
        let whole = want.emit().len() as u64;
        assert!(
            max_len <= 4 * whole,
            "journal {max_len} bytes, record {whole}"
        );
    }

    /// While the previous daemon's conns are merged in, the record keeps them (written whole);
    /// once adopted, only this daemon's conns remain.
    #[test]
    fn guard_keeps_the_previous_daemons_conns_until_adopted() {
        let dir = Scratch::new("adopt");
        let file = dir.0.join("failclosed");
        let mut prev = Record::default();
        prev.routed
            .entry((Kind::Auto, "old".into()))
            .or_default()
            .nets
            .insert(net(1));
        let g = Guard::new(file.clone(), &[], prev);
        g.routing(Kind::Auto, "new", &[net(2)]);
        let r = Record::load(&file);
        assert!(r.routed.contains_key(&(Kind::Auto, "old".to_string())));
        assert!(r.routed.contains_key(&(Kind::Auto, "new".to_string())));
        g.adopted();
        g.routing(Kind::Auto, "newer", &[net(3)]);
        let r = Record::load(&file);
        assert!(!r.routed.contains_key(&(Kind::Auto, "old".to_string())));
        assert_eq!(r.nets().len(), 2, "{r:?}");
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
