//! The rswan daemon (`ipsec setup start`): reads ipsec.conf, creates ipsecN, opens the sockets,
//! starts the datapath threads, serves the control socket, brings up manual connections, and
//! tears everything down on `ipsec setup stop`, SIGTERM or SIGINT.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cmd::{self, Ctx};
use crate::config::conf::{system_resolve_in, ConfError, IpsecConf};
use crate::klips::{DevInfo, Emit, Klips, Params};
use crate::manual::{self, HostFacts, ManualPlan};
use crate::pluto::{DebugFlags, Interface, Pluto, PlutoConfig, WhackCmd};
use crate::updown::{default_route_nets, UpdownInfo, Verb};

use super::datapath::{self, Clock, DevRuntime};
use super::failclosed::{self, Guard, Kind, Record};
use super::keying::{Ike6Socks, IkeIn, Keying, KeyingHost, WhackLine};
use super::net::{RawSender, UdpReceiver6, UdpSock};
use super::paths::Paths;
use super::{control, iface, syslog, tun};
use crate::config::secrets::Secrets;

/// rswan's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Worst-case bytes IPsec adds to a packet: outer IPv4 20 + UDP 8 + ESP header 8 + IV 16 +
/// padding 15 + trailer 2 + ICV 32 + AH 12 + ICV 32.
pub const WORST_OVERHEAD: usize = 145;

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Writes a line to the daemon's log: stderr (the log file when running in the background),
/// every line with a timestamp, and syslog (tag `ipsec_setup` for `ipsec_setup: ` lines, else
/// `pluto[PID]`; see [`super::syslog`]).
pub fn log(line: &str) {
    log_as(syslog::Source::of(line), line)
}

/// [`log`] for the datapath's lines (`klipsdebug=` tracing, bound notices): syslog tag
/// `klips[PID]`.
pub fn log_klips(line: &str) {
    log_as(syslog::Source::Klips, line)
}

fn log_as(source: syslog::Source, line: &str) {
    let stamp = timestamp();
    static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*JOURNAL.get_or_init(syslog::stderr_is_journal) {
        // One write(2) for the whole line (stderr is unbuffered: `writeln!` would make one
        // per piece of the format).
        let _ = std::io::stderr()
            .lock()
            .write_all(syslog::stamped_lines(&stamp, line).as_bytes());
    }
    syslog::write(source, &stamp, line);
}

/// The local time of `t` (`localtime_r`).
pub fn local_tm(t: std::time::SystemTime) -> libc::tm {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as libc::time_t;
    // SAFETY: all-zero is a valid `struct tm`; localtime_r writes into it and reads `secs`,
    // both live for the call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    }
}

/// Local time as `2026-12-07 14:52:22.123` for log lines.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now();
    let tm = local_tm(now);
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_millis();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        ms
    )
}

/// One ipsecN device as configured by `interfaces=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfacePair {
    /// ipsecN.
    pub virt: String,
    /// The physical interface.
    pub phys: String,
}

/// Parses `interfaces=` (`"ipsec0=eth0 ipsec1=eth1"`, `%defaultroute`, `%none`).
pub fn parse_interfaces(
    conf: &IpsecConf,
    defaultroute: Option<&str>,
) -> Result<Vec<IfacePair>, ConfError> {
    let s = &conf.setup;
    let v = s.get("interfaces").unwrap_or("%defaultroute");
    let mut out = Vec::new();
    for item in v.split_whitespace() {
        match item {
            "%none" => {}
            "%defaultroute" => {
                let phys = defaultroute.ok_or_else(|| {
                    s.err_at(
                        "interfaces",
                        "interfaces=%defaultroute but there is no default route",
                    )
                })?;
                out.push(IfacePair {
                    virt: format!("ipsec{}", out.len()),
                    phys: phys.to_string(),
                });
            }
            _ => {
                let (virt, phys) = item.split_once('=').ok_or_else(|| {
                    s.err_at(
                        "interfaces",
                        format!("interfaces: \"{item}\" is not ipsecN=PHYS"),
                    )
                })?;
                let n_ok = virt
                    .strip_prefix("ipsec")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !n_ok || phys.is_empty() || phys.len() >= 16 {
                    return Err(s.err_at(
                        "interfaces",
                        format!("interfaces: \"{item}\" is not ipsecN=PHYS"),
                    ));
                }
                if out.iter().any(|p: &IfacePair| p.virt == virt) {
                    return Err(s.err_at("interfaces", format!("interfaces: {virt} given twice")));
                }
                out.push(IfacePair {
                    virt: virt.to_string(),
                    phys: phys.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The running daemon's state shared with the control and timer threads.
pub struct Daemon {
    klips: Arc<Klips>,
    paths: Paths,
    clock: Clock,
    senders: Vec<Arc<RawSender>>,
    /// Unbound sender for packets the gateway originates (ICMP errors).
    local: RawSender,
    tun_out: Vec<tun::TunQueue>,
    manual: Mutex<BTreeMap<String, ManualPlan>>,
    stop: AtomicBool,
    keying: Mutex<Option<Keying>>,
    /// Fail-closed bookkeeping: blackhole fallbacks and the record for the next start.
    guard: Arc<Guard>,
    /// When the daemon started (`uptime` in the status).
    started: std::time::Instant,
    /// The keys of the ESP SAs in the SADB, for Wireshark's tables (`ipsec keys --wireshark`,
    /// `wiresharkkeys=`): the SADB's transforms hold the same keys as key schedules; entries
    /// whose SA is gone are dropped (and wiped) by the next tick.
    esp_keys: Mutex<BTreeMap<crate::said::Said, crate::admin::wireshark::EspKeys>>,
    /// The DNS resolver thread (opportunistic encryption), when a name server is known.
    dns: Option<super::resolver::ResolverHandle>,
}

impl KeyingHost for Daemon {
    fn klips(&self) -> &Arc<Klips> {
        &self.klips
    }

    fn emit(&self, emits: Vec<Emit>) {
        Daemon::emit(self, emits)
    }

    fn log(&self, line: &str) {
        log(line)
    }

    fn updown(&self, verb: Verb, info: &UpdownInfo) -> Result<String, String> {
        Daemon::updown(self, Kind::Auto, verb, info)
    }

    fn sa_installed(&self, spec: &crate::sadb::SaSpec) {
        self.record_keys(spec);
    }

    fn dns(&self) -> Option<&super::resolver::ResolverHandle> {
        self.dns.as_ref()
    }
}

impl Daemon {
    /// Runs updown step `verb` and keeps the fail-closed state in step: routing a conn adds
    /// blackhole fallbacks for its peer subnets and records it, unrouting removes them. While
    /// stopping for a restart, routes are neither prepared away nor unrouted, so the protected
    /// subnets stay routed into the persistent ipsecN for the next daemon.
    fn updown(&self, kind: Kind, verb: Verb, info: &UpdownInfo) -> Result<String, String> {
        if self.guard.keeping() && matches!(verb, Verb::Prepare | Verb::Unroute) {
            return Ok(String::new());
        }
        // leftfirewall=yes: the default updown (in-process) plus nftables forwarding rules.
        let firewall = crate::updown::is_firewall_updown(info.command.as_deref());
        let plain;
        let info = if firewall {
            plain = UpdownInfo {
                command: None,
                ..info.clone()
            };
            &plain
        } else {
            info
        };
        let nets = default_route_nets(info.peer_client);
        if verb == Verb::Route {
            // Recorded before the route goes in: a daemon killed in between leaves it covered.
            self.guard.routing(kind, &info.connection, &nets);
        }
        // ipsecN's index, looked up once for the route and its fail-closed copies.
        let ifx = match (verb, &info.command) {
            (Verb::Route, None) => super::netlink::ifindex(&info.interface).ok(),
            _ => None,
        };
        let mut r = super::netlink::run_updown(info, verb, ifx);
        if firewall && r.is_ok() {
            let fw = match verb {
                Verb::Up => crate::updown::firewall_up(info),
                Verb::Down => crate::updown::firewall_down(info),
                _ => Ok(()),
            };
            if let Err(e) = fw {
                r = Err(format!(
                    "{v} output: {e}\n{v} command exited with status 1",
                    v = info.verb_text(verb)
                ));
            }
        }
        let notes = match verb {
            Verb::Route => {
                // A conn's own updown script routes as it likes: no table-115 routes over it.
                let via = match &info.command {
                    Some(_) => None,
                    None if !info.fail_closed => None,
                    None => ifx.map(|i| (info.next_hop, i)),
                };
                self.guard.routed(kind, &info.connection, &nets, via)
            }
            Verb::Unroute => self.guard.unrouted(kind, &info.connection),
            _ => Vec::new(),
        };
        for n in notes {
            log(&n.0);
        }
        r
    }

    /// Keeps the keys of an ESP SA just added to the SADB (Wireshark's tables).
    fn record_keys(&self, spec: &crate::sadb::SaSpec) {
        use crate::sadb::XformSpec;
        if let XformSpec::Esp {
            enc,
            enckey,
            auth,
            authkey,
        } = &spec.xform
        {
            let k = crate::admin::wireshark::EspKeys {
                src: spec.src,
                dst: spec.said.dst,
                spi: spec.said.spi,
                enc: *enc,
                enc_key: zeroize::Zeroizing::new(enckey.0.clone()),
                auth: *auth,
                auth_key: zeroize::Zeroizing::new(authkey.0.clone()),
            };
            self.esp_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(spec.said, k);
        }
    }

    /// Drops (and wipes) the kept keys of SAs no longer in the SADB; returns the others.
    fn live_esp_keys(&self) -> Vec<crate::admin::wireshark::EspKeys> {
        let mut keys = self.esp_keys.lock().unwrap_or_else(|p| p.into_inner());
        let db = self.klips.sadb();
        keys.retain(|said, _| db.get(said).is_some());
        keys.values().cloned().collect()
    }

    fn pluto_view(&self, keys: bool) -> Option<crate::admin::view::PlutoView> {
        self.keying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|k| k.view(keys))
    }

    /// The status for `ipsec status --json` and the metrics.
    fn status(&self) -> crate::admin::status::Status {
        use crate::admin::status::{collect, ConfiguredConn, Facts, IfaceCounters};
        let configured = IpsecConf::load(&self.paths.config)
            .map(|c| {
                c.conns
                    .iter()
                    .map(|s| ConfiguredConn {
                        name: s.name.clone(),
                        auto: s.params.get_or("auto", "ignore").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let interfaces = self
            .klips
            .devs()
            .into_iter()
            .map(|d| IfaceCounters {
                stats: [
                    "rx_packets",
                    "rx_bytes",
                    "rx_errors",
                    "rx_dropped",
                    "tx_packets",
                    "tx_bytes",
                    "tx_errors",
                    "tx_dropped",
                ]
                .iter()
                .filter_map(|k| {
                    std::fs::read_to_string(format!("/sys/class/net/{}/statistics/{k}", d.name))
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .map(|v| (k.to_string(), v))
                })
                .collect(),
                name: d.name,
                phys: d.phys,
                addr: d.addr.to_string(),
                mtu: d.mtu,
            })
            .collect();
        let manual_up = self
            .manual
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        collect(
            &self.klips,
            self.clock.now(),
            Facts {
                pid: std::process::id(),
                uptime: self.started.elapsed().as_secs(),
                configured,
                manual_up,
                pluto: self.pluto_view(false),
                interfaces,
            },
        )
    }

    /// Writes Wireshark's tables into `dir`; returns (ESP SAs, IKE SAs) written.
    fn write_wireshark(&self, dir: &std::path::Path) -> std::io::Result<(usize, usize)> {
        use crate::admin::view::IkeKeys;
        use crate::admin::wireshark::{write_tables, Ikev1Keys};
        let esp = self.live_esp_keys();
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        for s in self.pluto_view(true).map(|v| v.ike_sas).unwrap_or_default() {
            match s.keys {
                Some(IkeKeys::V1 { enc_key }) => v1.push(Ikev1Keys {
                    icookie: s.icookie,
                    enc_key,
                }),
                Some(IkeKeys::V2(k)) => v2.push(k),
                None => {}
            }
        }
        write_tables(dir, &esp, &v1, &v2)?;
        Ok((esp.len(), v1.len() + v2.len()))
    }

    /// `ipsec keys --wireshark DIR`.
    fn keys_cmd(&self, args: &[String], reply: &mut control::Reply) -> i32 {
        let dir = match args {
            [w, d] if w == "--wireshark" => std::path::PathBuf::from(d),
            _ => {
                reply.err("usage: ipsec keys --wireshark DIR\n");
                return 2;
            }
        };
        match self.write_wireshark(&dir) {
            Ok((esp, ike)) => {
                log(&format!(
                    "WARNING: ipsec keys --wireshark: wrote the keys of {esp} ESP SA(s) and {ike} IKE SA(s) to {} (whoever reads them can decrypt this gateway's traffic)",
                    dir.display()
                ));
                reply.out(&format!(
                    "wrote esp_sa, ikev1_decryption_table and ikev2_decryption_table to {} ({esp} ESP SAs, {ike} IKE SAs); they hold live keys: delete them when done\n",
                    dir.display()
                ));
                0
            }
            Err(e) => {
                reply.err(&format!("ipsec keys: {}: {e}\n", dir.display()));
                1
            }
        }
    }

    fn host_facts(&self) -> HostFacts {
        let mut local: Vec<std::net::IpAddr> = iface::addresses()
            .map(|v| v.into_iter().map(|a| a.addr.into()).collect())
            .unwrap_or_default();
        local.extend(iface::addresses6().into_iter().map(std::net::IpAddr::from));
        let defaultroute = iface::default_route()
            .and_then(|(dev, nh)| iface::address_of(&dev).ok().map(|a| (a.addr, nh)));
        HostFacts {
            local,
            defaultroute,
            ipsec: self
                .klips
                .devs()
                .into_iter()
                .flat_map(|d| {
                    let v6 = d.addr6.map(|a| (d.name.clone(), a.into()));
                    std::iter::once((d.name, d.addr.into())).chain(v6)
                })
                .collect(),
        }
    }

    /// Carries out packets produced outside the datapath threads (released holds, ICMP).
    fn emit(&self, emits: Vec<Emit>) {
        for e in emits {
            match e {
                Emit::Net { dev, pkt } => {
                    if let (Some(s), Some(dst)) = (self.senders.get(dev), datapath::dst_of(&pkt)) {
                        let _ = s.send(dst, &pkt);
                    }
                }
                Emit::Tun { dev, pkt } => {
                    if let Some(q) = self.tun_out.get(dev) {
                        let _ = q.send(&pkt);
                    }
                }
                Emit::Local { pkt } => datapath::send_local(&self.klips, &self.local, &pkt),
                Emit::Drop {
                    dev, inbound: true, ..
                } => {
                    if let Some(q) = self.tun_out.get(dev) {
                        q.count_rx_drop();
                    }
                }
                _ => {}
            }
        }
    }

    fn manual_up(&self, conf: &IpsecConf, name: &str, out: &mut String) -> Result<(), String> {
        let conn = conf
            .conn(name)
            .ok_or_else(|| format!("no connection named \"{name}\""))?;
        let plan = manual::plan(conn, &self.host_facts()).map_err(|e| e.to_string())?;
        // Replace an older instance of the same connection.
        self.manual_down(name, &mut String::new(), true);
        let mut rng = StdRng::from_entropy();
        let now = self.clock.now();
        let mut ctx = Ctx::new(&self.klips, now, &mut rng);
        let mut added = Vec::new();
        for spec in &plan.sas {
            if let Err(e) = cmd::spi::add(&mut ctx, spec) {
                for s in &added {
                    let _ = self.klips.sadb_mut().delete(s);
                }
                return Err(format!("\"{name}\": {e}"));
            }
            added.push(spec.said);
        }
        for g in &plan.groups {
            if g.len() > 1 {
                self.klips
                    .sadb_mut()
                    .group(g)
                    .map_err(|e| format!("\"{name}\": {e}"))?;
            }
        }
        let u = &plan.updown;
        if let Err(e) = self.updown(Kind::Manual, Verb::Prepare, u) {
            log(&e);
        }
        if let Err(e) = self.updown(Kind::Manual, Verb::Route, u) {
            log(&e);
            out.push_str(&format!("025 \"{name}\": could not route: {e}\n"));
        }
        let (src, dst, said) = plan.eroute;
        let (_, old) = self
            .klips
            .eroutes_mut()
            .replace(crate::eroute::Eroute::new(src, dst, said));
        if let Some(old) = old {
            let dev = self.klips.dev_for_addr(u.me);
            self.klips
                .release_held(&old, dev, now, ctx.rng, &mut ctx.emits);
        }
        let emits = std::mem::take(&mut ctx.emits);
        self.emit(emits);
        for spec in std::mem::take(&mut ctx.installed) {
            self.record_keys(&spec);
        }
        if said.shunt().is_none() {
            if let Err(e) = self.updown(Kind::Manual, Verb::Up, u) {
                log(&e);
            }
        }
        self.guard.manual_up(name, true);
        log(&format!(
            "\"{name}\": manual connection up ({src} -> {dst} => {said})"
        ));
        self.manual
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), plan);
        Ok(())
    }

    fn manual_down(&self, name: &str, _out: &mut String, quiet: bool) -> bool {
        let plan = self
            .manual
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let Some(plan) = plan else {
            return false;
        };
        let (src, dst, said) = plan.eroute;
        if said.shunt().is_none() {
            if let Err(e) = self.updown(Kind::Manual, Verb::Down, &plan.updown) {
                log(&e);
            }
        }
        self.guard.manual_up(name, false);
        self.klips.eroutes_mut().delete(&src, &dst);
        for g in &plan.groups {
            if let Some(first) = g.first() {
                let _ = self.klips.sadb_mut().delete(first);
            }
        }
        for spec in &plan.sas {
            let _ = self.klips.sadb_mut().delete(&spec.said);
        }
        if !quiet {
            log(&format!("\"{name}\": manual connection down"));
        }
        true
    }

    fn unroute(&self, plan_name: &str, conf: &IpsecConf) -> Result<(), String> {
        let conn = conf
            .conn(plan_name)
            .ok_or_else(|| format!("no connection named \"{plan_name}\""))?;
        let plan = manual::plan(conn, &self.host_facts()).map_err(|e| e.to_string())?;
        self.updown(Kind::Manual, Verb::Unroute, &plan.updown)
            .map(|_| ())
    }

    fn manual_cmd(&self, args: &[String], reply: &mut control::Reply) -> i32 {
        let mut args = args.to_vec();
        let given = args
            .iter()
            .any(|a| a == "--config" || a.starts_with("--config="));
        let paths = match Paths::take_from(&mut args) {
            Ok(p) => p,
            Err(e) => {
                reply.err(&format!("ipsec manual: {e}\n"));
                return 1;
            }
        };
        let config = if given {
            paths.config
        } else {
            self.paths.config.clone()
        };
        let ops = ["--up", "--down", "--route", "--unroute"];
        let op = args.iter().find(|a| ops.contains(&a.as_str())).cloned();
        let names: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
        let (Some(op), [name]) = (op, names.as_slice()) else {
            reply.err("usage: ipsec manual [--config F] --up|--down|--route|--unroute CONN\n");
            return 2;
        };
        let conf = match IpsecConf::load(&config) {
            Ok(mut c) => {
                c.resolve_names(|c| &c.name == *name, &system_resolve_in);
                for e in firewall_updowns(&mut c) {
                    reply.err(&format!("ipsec manual: {e}\n"));
                }
                c
            }
            Err(e) => {
                reply.err(&format!("ipsec manual: {e}\n"));
                return 1;
            }
        };
        let mut out = String::new();
        let r = match op.as_str() {
            "--up" => self.manual_up(&conf, name, &mut out),
            "--down" => {
                if self.manual_down(name, &mut out, false) {
                    Ok(())
                } else {
                    Err(format!("\"{name}\" is not up"))
                }
            }
            "--route" => conf
                .conn(name)
                .ok_or_else(|| format!("no connection named \"{name}\""))
                .and_then(|c| manual::plan(c, &self.host_facts()).map_err(|e| e.to_string()))
                .and_then(|p| {
                    self.updown(Kind::Manual, Verb::Route, &p.updown)
                        .map(|_| ())
                }),
            _ => self.unroute(name, &conf),
        };
        reply.out(&out);
        match r {
            Ok(()) => 0,
            Err(e) => {
                reply.err(&format!("ipsec manual: {e}\n"));
                1
            }
        }
    }

    /// Sends `cmd` to Pluto and streams its whack lines to the client (code 002 only with
    /// `verbose`). Returns the exit status.
    fn run_whack(&self, cmd: WhackCmd, verbose: bool, reply: &mut control::Reply) -> i32 {
        let mut rx = {
            let k = self.keying.lock().unwrap_or_else(|p| p.into_inner());
            match k.as_ref() {
                Some(k) => k.whack(cmd),
                None => {
                    reply.err("024 pluto is not listening\n");
                    return 1;
                }
            }
        };
        // The lines of one batch go to the client in one frame.
        let mut out = String::new();
        let mut status = None;
        while status.is_none() {
            let mut next = rx.recv_timeout(Duration::from_secs(3600)).ok();
            if next.is_none() {
                status = Some(1);
            }
            while let Some(line) = next {
                match line {
                    WhackLine::Line(code, text) => {
                        if code != crate::pluto::rc::LOG || verbose {
                            use std::fmt::Write as _;
                            let _ = writeln!(out, "{code:03} {text}");
                        }
                    }
                    WhackLine::Done(s) => status = Some(s),
                }
                if out.len() >= control::MAX_FRAME {
                    reply.out(&out);
                    out.clear();
                }
                next = rx.buffered();
            }
            if !out.is_empty() {
                reply.out(&out);
                out.clear();
            }
        }
        status.unwrap_or(1)
    }

    fn load_secrets(&self, file: &std::path::Path, reply: &mut control::Reply) -> Option<Secrets> {
        match Secrets::load(file) {
            Ok(s) => Some(s),
            Err(e) => {
                reply.err(&format!("ipsec auto: {e}\n"));
                None
            }
        }
    }

    /// `ipsec auto [--config F] [--verbose] [--asynchronous] OP [CONN]` (spec 6.1).
    fn auto_cmd(&self, args: &[String], reply: &mut control::Reply) -> i32 {
        let mut args = args.to_vec();
        let given = args
            .iter()
            .any(|a| a == "--config" || a.starts_with("--config="));
        let gs = args
            .iter()
            .any(|a| a == "--secrets" || a.starts_with("--secrets="));
        let paths = match Paths::take_from(&mut args) {
            Ok(p) => p,
            Err(e) => {
                reply.err(&format!("ipsec auto: {e}\n"));
                return 2;
            }
        };
        let config = if given {
            paths.config
        } else {
            self.paths.config.clone()
        };
        let secrets = if gs {
            paths.secrets
        } else {
            self.paths.secrets.clone()
        };
        let flags = ["verbose", "asynchronous", "show", "showonly"];
        let ops = [
            "add",
            "delete",
            "replace",
            "up",
            "down",
            "route",
            "unroute",
            "status",
            "rereadsecrets",
            "rereadall",
            "ready",
            "rereadgroups",
            "listen",
        ];
        let mut op = None;
        let mut names = Vec::new();
        for a in &args {
            match a.strip_prefix("--") {
                Some(f) if flags.contains(&f) => {}
                Some(o) if ops.contains(&o) => {
                    if op.replace(o.to_string()).is_some() {
                        reply.err("ipsec auto: only one operation at a time\n");
                        return 2;
                    }
                }
                Some(o) => {
                    reply.err(&format!("ipsec auto: unknown option --{o}\n"));
                    return 2;
                }
                None => names.push(a.clone()),
            }
        }
        let has = |f: &str| args.iter().any(|a| a == &format!("--{f}"));
        let Some(op) = op else {
            reply.err("usage: ipsec auto [--config F] [--verbose] [--asynchronous] --add|--delete|--replace|--up|--down|--route|--unroute|--status|--rereadsecrets|--rereadall|--ready [CONN]\n");
            return 2;
        };
        let needs_name = !matches!(
            op.as_str(),
            "status" | "rereadsecrets" | "rereadall" | "ready" | "rereadgroups" | "listen"
        );
        let name = match (needs_name, names.as_slice()) {
            (true, [n]) => n.clone(),
            (false, []) => String::new(),
            _ => {
                reply.err(&format!(
                    "ipsec auto --{op}: {}\n",
                    if needs_name {
                        "needs exactly one connection name"
                    } else {
                        "takes no connection name"
                    }
                ));
                return 2;
            }
        };
        if has("showonly") || has("show") {
            reply.out(&format!("ipsec whack --name {name} --{op}\n"));
            if has("showonly") {
                return 0;
            }
        }
        let conn_section =
            |reply: &mut control::Reply| -> Option<crate::config::conf::ConnSection> {
                match IpsecConf::load(&config) {
                    Ok(c) => match c.conn(&name) {
                        Some(s) => {
                            let mut s = s.clone();
                            s.resolve_names(&system_resolve_in);
                            if let Err(e) = crate::updown::apply_firewall(&mut s) {
                                reply.err(&format!("036 ipsec auto: {e}\n"));
                                return None;
                            }
                            Some(s)
                        }
                        None => {
                            reply.err(&format!(
                                "021 ipsec auto: no connection named \"{name}\" in {}\n",
                                config.display()
                            ));
                            None
                        }
                    },
                    Err(e) => {
                        reply.err(&format!("ipsec auto: {e}\n"));
                        None
                    }
                }
            };
        let cmd = match op.as_str() {
            "add" => match conn_section(reply) {
                Some(c) => WhackCmd::Add(c),
                None => return 1,
            },
            "replace" => match conn_section(reply) {
                Some(c) => WhackCmd::Replace(c),
                None => return 1,
            },
            "delete" => WhackCmd::Delete(name),
            "up" => WhackCmd::Up {
                name,
                asynchronous: has("asynchronous"),
            },
            "down" => WhackCmd::Down(name),
            "route" => WhackCmd::Route(name),
            "unroute" => WhackCmd::Unroute(name),
            "status" => WhackCmd::Status,
            "rereadsecrets" | "rereadall" => match self.load_secrets(&secrets, reply) {
                Some(s) => WhackCmd::RereadSecrets(s),
                None => return 1,
            },
            _ => match self.load_secrets(&secrets, reply) {
                Some(s) => WhackCmd::Listen(Some(s)),
                None => return 1,
            },
        };
        let status = self.run_whack(cmd, has("verbose"), reply);
        if status != 0 || !matches!(op.as_str(), "rereadgroups" | "ready" | "listen") {
            return status;
        }
        // `--rereadgroups` / `--ready` / `--listen` also reread the policy group files.
        let groups = match IpsecConf::load(&config) {
            Ok(conf) => {
                let dir = super::policies::policy_groups_dir(&conf, &config);
                let (groups, errs) = super::policies::read_policy_groups(&dir);
                for e in errs {
                    reply.err(&format!("003 policy group: {e}\n"));
                }
                groups
            }
            Err(e) => {
                reply.err(&format!("ipsec auto: {e}\n"));
                return 1;
            }
        };
        self.run_whack(WhackCmd::RereadGroups(groups), has("verbose"), reply)
    }

    /// `ipsec whack` (spec 6.4): the control forms; connections are defined in ipsec.conf and
    /// loaded with `ipsec auto --add`.
    fn whack_cmd(&self, args: &[String], reply: &mut control::Reply) -> i32 {
        let o =
            match crate::cmd::args::Opts::parse(args, &["name", "deletestate", "ctlbase", "label"])
            {
                Ok(o) => o,
                Err(e) => {
                    reply.err(&format!("ipsec whack: {e}\n"));
                    return 2;
                }
            };
        let name = o.get("name").map(str::to_owned);
        let need_name = |reply: &mut control::Reply| -> Option<String> {
            if name.is_none() {
                reply.err("ipsec whack: --name is required\n");
            }
            name.clone()
        };
        let debug: Vec<&str> = o.names().filter_map(|n| n.strip_prefix("debug-")).collect();
        let cmd = if o.has("status") {
            WhackCmd::Status
        } else if o.has("shutdown") {
            self.stop.store(true, Ordering::SeqCst);
            reply.out("002 shutting down\n");
            return 0;
        } else if o.has("initiate") {
            let Some(n) = need_name(reply) else { return 2 };
            WhackCmd::Up {
                name: n,
                asynchronous: o.has("asynchronous"),
            }
        } else if o.has("terminate") {
            let Some(n) = need_name(reply) else { return 2 };
            WhackCmd::Down(n)
        } else if o.has("route") {
            let Some(n) = need_name(reply) else { return 2 };
            WhackCmd::Route(n)
        } else if o.has("unroute") {
            let Some(n) = need_name(reply) else { return 2 };
            WhackCmd::Unroute(n)
        } else if o.has("delete") {
            let Some(n) = need_name(reply) else { return 2 };
            WhackCmd::Delete(n)
        } else if o.has("rekey-ike") || o.has("rekey-ipsec") {
            let Some(n) = need_name(reply) else { return 2 };
            WhackCmd::Rekey {
                name: n,
                ike: o.has("rekey-ike"),
            }
        } else if let Some(n) = o.get("deletestate") {
            match n.trim_start_matches('#').parse() {
                Ok(n) => WhackCmd::DeleteState(n),
                Err(_) => {
                    reply.err(&format!(
                        "ipsec whack: --deletestate {n}: not a state number\n"
                    ));
                    return 2;
                }
            }
        } else if o.has("rereadsecrets") {
            match self.load_secrets(&self.paths.secrets, reply) {
                Some(s) => WhackCmd::RereadSecrets(s),
                None => return 1,
            }
        } else if o.has("listen") {
            WhackCmd::Listen(self.load_secrets(&self.paths.secrets, reply))
        } else if !debug.is_empty() {
            WhackCmd::Debug(debug.join(" "))
        } else {
            reply.err("ipsec whack: connections are defined in ipsec.conf and added with \"ipsec auto --add\"; supported: --status, --shutdown, --name N --initiate|--terminate|--route|--unroute|--delete|--rekey-ike|--rekey-ipsec, --deletestate N, --rereadsecrets, --listen, --debug-*\n");
            return 2;
        };
        self.run_whack(cmd, true, reply)
    }

    /// After start-up: re-establishes what the previous daemon had routed — IKE conns are routed
    /// again (`%trap`: the next packet renegotiates; auto=route|start ones already are), manual
    /// conns come back up or routed as they were — then removes the routes and blackholes that
    /// nothing protects any more (conns gone from ipsec.conf, road-warrior instances).
    fn adopt(&self, conf: &IpsecConf, previous: &Record) {
        for ((kind, name), entry) in &previous.routed {
            let r = match kind {
                Kind::Auto if name.contains('[') => Err("road-warrior instance".to_string()),
                Kind::Auto => self.route_quietly(name),
                Kind::Manual if self.manual_is_up(name) => Ok(()),
                Kind::Manual => {
                    let mut c = conf.clone();
                    c.resolve_names(|c| &c.name == name, &system_resolve_in);
                    if entry.up {
                        self.manual_up(&c, name, &mut String::new())
                    } else {
                        c.conn(name)
                            .ok_or_else(|| format!("no connection named \"{name}\""))
                            .and_then(|c| {
                                manual::plan(c, &self.host_facts()).map_err(|e| e.to_string())
                            })
                            .and_then(|p| {
                                self.updown(Kind::Manual, Verb::Route, &p.updown)
                                    .map(|_| ())
                            })
                    }
                }
            };
            match r {
                Ok(()) => log(&format!(
                    "ipsec_setup: \"{name}\" was routed by the previous daemon: routed again{}",
                    if entry.up && *kind == Kind::Manual {
                        " and up"
                    } else {
                        ""
                    }
                )),
                Err(e) => log(&format!(
                    "ipsec_setup: \"{name}\" was routed by the previous daemon but cannot be now ({e}); its routes are removed"
                )),
            }
        }
        self.guard.adopted();
        for n in self.guard.sweep() {
            log(&format!("ipsec_setup: {n}"));
        }
    }

    fn manual_is_up(&self, name: &str) -> bool {
        self.manual
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// `ipsec auto --route NAME` from inside the daemon; waits for Pluto's answer.
    fn route_quietly(&self, name: &str) -> Result<(), String> {
        let mut rx = {
            let k = self.keying.lock().unwrap_or_else(|p| p.into_inner());
            match k.as_ref() {
                Some(k) => k.whack(WhackCmd::Route(name.to_string())),
                None => return Err("pluto is not running".into()),
            }
        };
        let mut last = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(WhackLine::Line(_, text)) => last = text,
                Ok(WhackLine::Done(0)) => return Ok(()),
                Ok(WhackLine::Done(_)) => return Err(last),
                Err(_) => return Err("pluto did not answer".into()),
            }
        }
    }

    fn look_header(&self) -> (String, String) {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string();
        let date = std::process::Command::new("date")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let devs: Vec<String> = self.klips.devs().into_iter().map(|d| d.name).collect();
        let routes = std::process::Command::new("netstat")
            .arg("-nr")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut r = String::new();
        for (i, l) in routes.lines().enumerate() {
            if i == 1 || devs.iter().any(|d| l.ends_with(d.as_str())) {
                r.push_str(l);
                r.push('\n');
            }
        }
        (format!("{host} {date}"), r)
    }

    /// Handles one control-socket request.
    fn handle(&self, args: Vec<String>, mut reply: control::Reply) {
        let Some((name, rest)) = args.split_first() else {
            reply.err("empty request\n");
            reply.exit(2);
            return;
        };
        let mut rng = StdRng::from_entropy();
        let now = self.clock.now();
        let code = match name.as_str() {
            "eroute" | "spi" | "spigrp" | "tncfg" => {
                let mut ctx = Ctx::new(&self.klips, now, &mut rng);
                let r = match name.as_str() {
                    "eroute" => cmd::eroute::run(&mut ctx, rest),
                    "spi" => cmd::spi::run(&mut ctx, rest),
                    "spigrp" => cmd::spigrp::run(&mut ctx, rest),
                    _ => cmd::tncfg::run(&mut ctx, rest),
                };
                reply.out(&ctx.out);
                let emits = std::mem::take(&mut ctx.emits);
                self.emit(emits);
                for spec in std::mem::take(&mut ctx.installed) {
                    self.record_keys(&spec);
                }
                match r {
                    Ok(()) => 0,
                    Err(e) => {
                        reply.err(&format!("ipsec {name}: {e}\n"));
                        1
                    }
                }
            }
            "look" => {
                let (h, routes) = self.look_header();
                let mut ctx = Ctx::new(&self.klips, now, &mut rng);
                let limits = self
                    .keying
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map(|k| k.limit_counters());
                cmd::look::run_with(&mut ctx, &h, &routes, limits.as_ref());
                reply.out(&ctx.out);
                0
            }
            "manual" => self.manual_cmd(rest, &mut reply),
            "auto" => self.auto_cmd(rest, &mut reply),
            "whack" => self.whack_cmd(rest, &mut reply),
            "status" if rest.iter().any(|a| a == "--json") => {
                reply.out(&self.status().json());
                0
            }
            "status" => {
                reply.out(&format!(
                    "IPsec running\npluto pid {}\n",
                    std::process::id()
                ));
                0
            }
            "metrics" => {
                reply.out(&self.status().prometheus());
                0
            }
            "keys" => self.keys_cmd(rest, &mut reply),
            // The files this daemon was started with (`ipsec setup restart` reuses them).
            "paths" => {
                reply.out(&format!(
                    "{}\n{}\n",
                    self.paths.config.display(),
                    self.paths.secrets.display()
                ));
                0
            }
            "shutdown" => {
                // `ipsec setup restart`: leave the kernel's fail-closed state to the next daemon.
                if rest.iter().any(|a| a == "--keep") {
                    self.guard.keep();
                }
                self.stop.store(true, Ordering::SeqCst);
                0
            }
            other => {
                reply.err(&format!("ipsec: the daemon does not know \"{other}\"\n"));
                2
            }
        };
        reply.exit(code);
    }
}

fn write_pid(paths: &Paths) -> Result<(), String> {
    let pidfile = paths.pid();
    if let Ok(old) = std::fs::read_to_string(&pidfile) {
        if let Ok(pid) = old.trim().parse::<i32>() {
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            if alive && pid != std::process::id() as i32 && UnixStream::connect(paths.ctl()).is_ok()
            {
                return Err(format!(
                    "rswan is already running (pid {pid}, lock {})",
                    pidfile.display()
                ));
            }
        }
    }
    std::fs::write(&pidfile, format!("{}\n", std::process::id()))
        .map_err(|e| format!("cannot write {}: {e}", pidfile.display()))
}

/// Runs the daemon in the foreground until stopped. Returns the exit status.
pub fn run(paths: Paths) -> i32 {
    match run_inner(paths) {
        Ok(()) => 0,
        Err((code, msg)) => {
            log(&format!("ipsec_setup: {msg}"));
            code
        }
    }
}

fn run_inner(paths: Paths) -> Result<(), (i32, String)> {
    let fail = |e: String| (1, e);
    let mut conf = IpsecConf::load(&paths.config).map_err(|e| fail(e.to_string()))?;
    // Names in the conns loaded at start (auto=add|route|start|manual, manualstart=).
    let manualstart = conf.setup.get("manualstart").unwrap_or("").to_string();
    conf.resolve_names(
        |c| {
            !matches!(c.params.get_or("auto", "ignore"), "ignore")
                || manualstart.split_whitespace().any(|n| n == c.name)
        },
        &system_resolve_in,
    );
    let klipsdebug = configure_logging(&conf).map_err(fail)?;
    let firewall_errors = firewall_updowns(&mut conf);
    log(&format!("ipsec_setup: Starting rswan IPsec {VERSION}..."));
    std::fs::create_dir_all(&paths.rundir)
        .map_err(|e| fail(format!("cannot create {}: {e}", paths.rundir.display())))?;
    write_pid(&paths).map_err(|e| (10, e))?;
    // Without its secrets Pluto could authenticate nobody: refuse to start rather than run
    // half-blind (`ipsec setup start` shows why and exits non-zero). An earlier daemon's
    // persistent devices and routes keep dropping protected traffic meanwhile.
    let secrets = Secrets::load(&paths.secrets).map_err(|e| {
        let _ = std::fs::remove_file(paths.pid());
        fail(format!("cannot load secrets: {e}"))
    })?;

    let setup = &conf.setup;
    let setup_dns = setup.get("dnsserver").map(str::to_owned);
    let params = Params {
        hidetos: setup
            .get_bool("hidetos", true)
            .map_err(|e| fail(e.to_string()))?,
        fragicmp: setup
            .get_bool("fragicmp", true)
            .map_err(|e| fail(e.to_string()))?,
        disable_arrival_check: false,
    };
    let workers = setup
        .get_u32("workers", 0)
        .map_err(|e| fail(e.to_string()))? as usize;
    let offload = setup
        .get_bool("offload", true)
        .map_err(|e| fail(e.to_string()))?;
    // espsend=packet: ESP/AH we build leave through AF_PACKET (an experiment: no routing,
    // netfilter or qdisc on the way out; docs/performance.md 0.7).
    let esp_packet = setup.get("espsend") == Some("packet");
    if let Some(d) = setup.get("datapath") {
        log(&format!(
            "ipsec_setup: datapath={d} is obsolete and ignored: every reader thread runs its packets to completion"
        ));
    }
    let overridemtu = setup
        .get_u32("overridemtu", 0)
        .map_err(|e| fail(e.to_string()))?;
    let dr = iface::default_route();
    let dr6 = iface::default_route6();
    // interfaces=%defaultroute: the IPv4 default route's interface, else the IPv6 one's.
    let dr_dev = dr
        .as_ref()
        .map(|d| d.0.as_str())
        .or(dr6.as_ref().map(|d| d.0.as_str()));
    let pairs = parse_interfaces(&conf, dr_dev).map_err(|e| fail(e.to_string()))?;
    // One TUN queue, hence one reader thread, per core (or `workers=`): each reader numbers,
    // encrypts and sends an SA's packets under the SA group's transmit lock, so they leave in
    // sequence order whichever queue the kernel put a flow on.
    let queues = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };

    let klips = Arc::new(Klips::new());
    klips.set_params(params);
    // What an earlier daemon (killed, crashed, or stopped for a restart) left: persistent
    // devices are attached to again below, its routed conns re-established after start-up.
    let previous = Record::load(&paths.failclosed());
    // Devices this start creates are deleted again if it fails; adopted ones stay (fail closed).
    let mut created = CreatedDevices(Vec::new());
    let mut devs = Vec::new();
    let mut infos = Vec::new();
    let mut senders = Vec::new();
    let mut tun_out = Vec::new();
    for p in &pairs {
        let bad_iface = |e: std::io::Error| {
            fail(
                setup
                    .err_at("interfaces", format!("interfaces: {}: {e}", p.phys))
                    .to_string(),
            )
        };
        // An IPv6-only interface has no IPv4 address: 0.0.0.0 then (IKE and ESP over IPv6).
        let addr6 = iface::address6_of(&p.phys);
        let a = match (iface::address_of(&p.phys), addr6) {
            (Ok(a), _) => a,
            (Err(_), Some(_)) => iface::IfAddr {
                dev: p.phys.clone(),
                addr: std::net::Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
            (Err(e), None) => return Err(bad_iface(e)),
        };
        let phys_mtu = iface::mtu_of(&p.phys).map_err(bad_iface)?;
        let mtu = if overridemtu != 0 {
            overridemtu as usize
        } else {
            phys_mtu.saturating_sub(WORST_OVERHEAD).max(576)
        };
        let opened = tun::open(&p.virt, queues, offload)
            .map_err(|e| fail(format!("cannot create {}: {e}", p.virt)))?;
        if !opened.adopted {
            created.0.push(p.virt.clone());
        }
        if opened.adopted {
            log(&format!(
                "ipsec_setup: {} adopted from the previous daemon with its routes ({} packets were dropped while no daemon ran)",
                p.virt,
                tun::tx_dropped(&p.virt)
            ));
        }
        let qs = opened.queues;
        let v4 = (!a.addr.is_unspecified()).then_some((a.addr, a.prefix));
        tun::configure(&p.virt, mtu as u32, v4)
            .map_err(|e| fail(format!("cannot configure {}: {e}", p.virt)))?;
        let sender = Arc::new(
            RawSender::new(Some(&p.phys))
                .map_err(|e| fail(format!("raw socket on {}: {e}", p.phys)))?,
        );
        tun_out.push(qs[0].try_clone().map_err(|e| fail(e.to_string()))?);
        let info = DevInfo {
            name: p.virt.clone(),
            phys: p.phys.clone(),
            addr: a.addr,
            addr6,
            phys_mtu,
            mtu,
        };
        infos.push(info.clone());
        senders.push(sender.clone());
        devs.push(DevRuntime {
            info,
            queues: qs,
            sender,
        });
        log(&format!(
            "ipsec_setup: {} -> {} mtu={} ({})",
            p.virt,
            p.phys,
            mtu,
            match (a.addr.is_unspecified(), addr6) {
                (true, Some(a6)) => a6.to_string(),
                (false, Some(a6)) => format!("{} {a6}", a.addr),
                _ => a.addr.to_string(),
            }
        ));
    }
    klips.set_devs(infos);
    let dev_names: Vec<String> = pairs.iter().map(|p| p.virt.clone()).collect();
    for d in previous.devices.iter().filter(|d| !dev_names.contains(d)) {
        if tun::exists(d) {
            tun::destroy(d);
            log(&format!(
                "ipsec_setup: {d} of the previous daemon is not in interfaces= any more: deleted"
            ));
        }
    }
    if let Some(n) = failclosed::install_rule() {
        log(&format!("ipsec_setup: {n}"));
    }
    let guard = Arc::new(Guard::new(paths.failclosed(), &dev_names, previous.clone()));
    if let Some((dev, nh)) = &dr {
        let addr = iface::address_of(dev)
            .map(|a| a.addr.to_string())
            .unwrap_or_default();
        let virt = pairs
            .iter()
            .find(|p| &p.phys == dev)
            .map(|p| p.virt.clone())
            .unwrap_or_default();
        let _ = std::fs::write(
            paths.info(),
            format!("defaultroutephys={dev}\ndefaultroutevirt={virt}\ndefaultrouteaddr={addr}\ndefaultroutenexthop={nh}\n"),
        );
    }
    let udp =
        Arc::new(UdpSock::bind(4500).map_err(|e| fail(format!("cannot bind UDP 4500: {e}")))?);
    let udp500 =
        Arc::new(UdpSock::bind(500).map_err(|e| fail(format!("cannot bind UDP 500: {e}")))?);
    // IKE and ESP-in-UDP of IPv6 peers, where the kernel has IPv6.
    let ike6 = match (UdpReceiver6::bind(500), UdpReceiver6::bind(4500)) {
        (Ok(a), Ok(b)) => Some(Ike6Socks {
            sock500: Arc::new(a),
            sock4500: Arc::new(b),
        }),
        (Err(e), _) | (_, Err(e)) => {
            log(&format!("ipsec_setup: no IKE over IPv6: {e}"));
            None
        }
    };
    let clock = Clock::new();
    let (ike_tx, ike_rx) = crossbeam_channel::bounded::<IkeIn>(1024);
    let dp = datapath::start(
        klips.clone(),
        devs,
        clock,
        Some(udp.clone()),
        ike6.as_ref().map(|s| s.sock4500.clone()),
        Some(ike_tx.clone()),
        esp_packet,
    )
    .map_err(|e| fail(format!("cannot start datapath: {e}")))?;

    // DNS for opportunistic encryption: dnsserver= (config setup) or resolv.conf.
    let dns = match super::resolver::name_servers(setup_dns.as_deref()).map_err(fail)? {
        servers if servers.is_empty() => None,
        servers => {
            let list = servers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let logger: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(|l: &str| log(l));
            match super::resolver::start(servers, dr.as_ref().map(|d| d.0.as_str()), logger) {
                Ok(h) => {
                    log(&format!(
                        "ipsec_setup: DNS for opportunistic encryption: {list}"
                    ));
                    Some(h)
                }
                Err(e) => {
                    log(&format!("ipsec_setup: cannot start the DNS resolver: {e}"));
                    None
                }
            }
        }
    };
    let daemon = Arc::new(Daemon {
        klips: klips.clone(),
        paths: paths.clone(),
        clock,
        senders,
        local: RawSender::new(None).map_err(|e| fail(format!("raw socket: {e}")))?,
        tun_out,
        manual: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
        keying: Mutex::new(None),
        guard: guard.clone(),
        started: std::time::Instant::now(),
        esp_keys: Mutex::new(BTreeMap::new()),
        dns,
    });

    // Pluto: the IKE keying daemon.
    let pluto_cfg = pluto_config(&conf, &infos_for_pluto(&klips), dr.as_ref(), dr6.as_ref())
        .map_err(|e| fail(e.to_string()))?;
    for e in &firewall_errors {
        log(&format!("ipsec_setup: conn skipped: {e}"));
    }
    let mut pluto = Pluto::new(pluto_cfg, Box::new(StdRng::from_entropy()));
    pluto.set_dns_available(daemon.dns.is_some());
    pluto.load_secrets(secrets);
    for e in pluto.load_conns(&conf) {
        let name = conf
            .conns
            .iter()
            .find(|c| c.file == e.file && c.line == e.line)
            .map(|c| format!("conn \"{}\" ", c.name))
            .unwrap_or_default();
        log(&format!("ipsec_setup: {name}skipped: {e}"));
    }
    {
        let dir = super::policies::policy_groups_dir(&conf, &paths.config);
        let (groups, errs) = super::policies::read_policy_groups(&dir);
        for e in errs {
            log(&format!("ipsec_setup: policy group: {e}"));
        }
        pluto.load_policy_groups(groups);
        pluto.warn_oe_unusable();
        pluto.check_own_oe_keys();
    }
    let auto_start = pluto.start_conns();
    let keying_stop = Arc::new(AtomicBool::new(false));
    let keying = Keying::start(
        pluto,
        daemon.clone(),
        clock,
        udp500,
        udp,
        ike_tx,
        ike_rx,
        ike6,
        keying_stop.clone(),
    )
    .map_err(|e| fail(format!("cannot start pluto: {e}")))?;
    for name in auto_start {
        keying.whack_detached(WhackCmd::Up {
            name,
            asynchronous: true,
        });
    }
    *daemon.keying.lock().unwrap_or_else(|p| p.into_inner()) = Some(keying);

    // SAFETY: installing a handler that only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }

    let listener = control::listen(&paths.ctl()).map_err(|e| fail(e.to_string()))?;
    {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                let clients = control::ClientThreads::new(move |s| {
                    if let Ok((args, reply)) = control::read_request(s) {
                        d.handle(args, reply);
                    }
                });
                for s in listener.incoming().flatten() {
                    // Root only, whatever the socket file's mode (SO_PEERCRED).
                    match control::peer_uid(&s) {
                        Ok(0) => {}
                        Ok(uid) => {
                            log(&format!("control: refused a request from uid {uid}"));
                            let _ = std::thread::Builder::new().name("ctl-refuse".into()).spawn(
                                move || {
                                    control::refuse(
                                        s,
                                        "permission denied: the control socket is for root only",
                                    )
                                },
                            );
                            continue;
                        }
                        Err(e) => {
                            log(&format!(
                                "control: cannot check the client's credentials: {e}"
                            ));
                            continue;
                        }
                    }
                    if let Err(e) = clients.dispatch(s) {
                        log(&format!("control: cannot start a thread for a client: {e}"));
                    }
                }
            })
            .map_err(|e| fail(e.to_string()))?;
    }

    // `metrics=ADDR:PORT`: the Prometheus endpoint, bound to that address only.
    if let Some(v) = setup.get("metrics").filter(|v| !v.is_empty()) {
        let addr: std::net::SocketAddr = v.parse().map_err(|_| {
            fail(
                setup
                    .err_at("metrics", format!("metrics: \"{v}\" is not ADDR:PORT"))
                    .to_string(),
            )
        })?;
        let l = std::net::TcpListener::bind(addr).map_err(|e| {
            fail(
                setup
                    .err_at("metrics", format!("metrics: cannot listen on {addr}: {e}"))
                    .to_string(),
            )
        })?;
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || super::metrics::serve(l, move || d.status().prometheus()))
            .map_err(|e| fail(e.to_string()))?;
        log(&format!(
            "ipsec_setup: metrics: Prometheus text exposition on http://{addr}/metrics"
        ));
    }
    // `wiresharkkeys=DIR`: Wireshark's key tables kept up to date (off unless set; loud).
    let wireshark_dir = setup
        .get("wiresharkkeys")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    if let Some(d) = &wireshark_dir {
        log(&format!(
            "WARNING: wiresharkkeys={}: the keys of every ESP and IKE SA are written to this directory as they come and go; whoever reads it can decrypt this gateway's traffic. Remove wiresharkkeys= when done.",
            d.display()
        ));
    }

    // Manual connections: manualstart= plus auto=manual.
    let mut start: Vec<String> = setup
        .get("manualstart")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    for c in &conf.conns {
        if c.params.get("auto") == Some("manual") && !start.contains(&c.name) {
            start.push(c.name.clone());
        }
    }
    for name in &start {
        let mut out = String::new();
        if let Err(e) = daemon.manual_up(&conf, name, &mut out) {
            log(&format!("ipsec_setup: manual --up {name}: {e}"));
        }
    }
    daemon.adopt(&conf, &previous);
    created.0.clear();
    log(&format!("ipsec_setup: ...rswan IPsec {VERSION} started"));
    super::sdnotify::ready(&format!("rswan IPsec {VERSION} started"));

    let mut tracer = klipsdebug
        .any()
        .then(|| super::trace::Tracer::new(klipsdebug, &klips));
    let mut tick = 0u64;
    let mut wireshark_seen = None;
    while !SIGNALLED.load(Ordering::SeqCst) && !daemon.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        tick += 1;
        if tick.is_multiple_of(10) {
            // Once a second: forget the keys of deleted SAs; with wiresharkkeys=, rewrite the
            // tables when the set of SAs changed.
            let live = daemon.live_esp_keys();
            if let Some(dir) = &wireshark_dir {
                let ike: Vec<u64> = daemon
                    .pluto_view(false)
                    .map(|v| {
                        v.ike_sas
                            .iter()
                            .filter(|s| s.established)
                            .map(|s| s.serial)
                            .collect()
                    })
                    .unwrap_or_default();
                let now: (Vec<(std::net::IpAddr, u32)>, Vec<u64>) =
                    (live.iter().map(|k| (k.dst, k.spi)).collect(), ike);
                if wireshark_seen.as_ref() != Some(&now) {
                    match daemon.write_wireshark(dir) {
                        Ok((esp, ike)) => log(&format!(
                            "WARNING: wiresharkkeys: wrote the keys of {esp} ESP SA(s) and {ike} IKE SA(s) to {}",
                            dir.display()
                        )),
                        Err(e) => log(&format!(
                            "wiresharkkeys: cannot write to {}: {e}",
                            dir.display()
                        )),
                    }
                    wireshark_seen = Some(now);
                }
            }
        }
        // SA lifetime events and acquires go to the keying thread.
        klips.expire(clock.now());
        // Bounds hit and full queues in the datapath, at a bounded rate.
        for l in klips.take_log_lines(clock.now()) {
            log_klips(&l);
        }
        if let Some(t) = tracer.as_mut() {
            for l in t.tick(&klips, clock.now_ms()) {
                log_klips(&l);
            }
        }
    }
    super::sdnotify::stopping();
    let restarting = guard.keeping();
    log(if restarting {
        "ipsec_setup: Stopping rswan IPsec for a restart (ipsecN, routes and blackholes stay)..."
    } else {
        "ipsec_setup: Stopping rswan IPsec..."
    });
    keying_stop.store(true, Ordering::SeqCst);
    let keying = daemon
        .keying
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(k) = keying {
        k.stop();
    }
    let names: Vec<String> = daemon
        .manual
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    for n in names {
        daemon.manual_down(&n, &mut String::new(), false);
        if let Ok(mut c) = IpsecConf::load(&paths.config) {
            c.resolve_names(|c| c.name == n, &system_resolve_in);
            let _ = firewall_updowns(&mut c);
            let _ = daemon.unroute(&n, &c);
        }
    }
    dp.stop();
    drop(daemon);
    if !restarting {
        // Everything rswan put into the kernel goes: routes (proto 115), blackholes, devices.
        for n in failclosed::clear_all(&paths.failclosed(), &dev_names) {
            log(&format!("ipsec_setup: {n}"));
        }
        crate::updown::firewall_clear();
    }
    let _ = std::fs::remove_file(paths.ctl());
    let _ = std::fs::remove_file(paths.pid());
    let _ = std::fs::remove_file(paths.info());
    log("ipsec_setup: ...rswan IPsec stopped");
    Ok(())
}

/// Applies `leftfirewall=yes` to every conn (the firewall variant of the default updown);
/// conns that also name an updown script are removed, their errors returned.
fn firewall_updowns(conf: &mut IpsecConf) -> Vec<ConfError> {
    let mut errors = Vec::new();
    conf.conns
        .retain_mut(|c| match crate::updown::apply_firewall(c) {
            Ok(()) => true,
            Err(e) => {
                errors.push(e);
                false
            }
        });
    errors
}

/// Applies `config setup`'s `syslog=` and `plutostderrlog=` (errors name file:line) and
/// returns the `klipsdebug=` switches.
fn configure_logging(conf: &IpsecConf) -> Result<super::trace::KlipsDebug, String> {
    let s = &conf.setup;
    let mut settings = syslog::Settings::default();
    if let Some(v) = s.get("syslog").filter(|v| !v.is_empty()) {
        settings.setup = syslog::Selector::parse(v)
            .map_err(|e| s.err_at("syslog", format!("syslog: {e}")).to_string())?;
    }
    settings.pluto_file = s
        .get("plutostderrlog")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    if let Some(f) = &settings.pluto_file {
        syslog::configure(settings.clone()).map_err(|e| {
            s.err_at(
                "plutostderrlog",
                format!("plutostderrlog: cannot open {}: {e}", f.display()),
            )
            .to_string()
        })?;
    } else {
        // Cannot fail without a file to open.
        let _ = syslog::configure(settings);
    }
    super::trace::KlipsDebug::parse(s.get("klipsdebug").unwrap_or("none"))
        .map_err(|e| s.err_at("klipsdebug", e).to_string())
}

/// ipsecN devices a start created, deleted on drop unless the start succeeded (cleared).
struct CreatedDevices(Vec<String>);

impl Drop for CreatedDevices {
    fn drop(&mut self) {
        for d in &self.0 {
            tun::destroy(d);
        }
    }
}

fn infos_for_pluto(klips: &Klips) -> Vec<Interface> {
    klips
        .devs()
        .into_iter()
        .flat_map(|d| {
            // IKE listens on each address of the physical interface, IPv4 and IPv6.
            let v4 = (!d.addr.is_unspecified()).then(|| Interface {
                virt: d.name.clone(),
                phys: d.phys.clone(),
                addr: d.addr.into(),
            });
            let v6 = d.addr6.map(|a| Interface {
                virt: d.name.clone(),
                phys: d.phys.clone(),
                addr: a.into(),
            });
            v4.into_iter().chain(v6)
        })
        .collect()
}

/// Pluto's settings from `config setup` and the host's interfaces.
fn pluto_config(
    conf: &IpsecConf,
    interfaces: &[Interface],
    defaultroute: Option<&(String, Ipv4Addr)>,
    defaultroute6: Option<&(String, std::net::Ipv6Addr)>,
) -> Result<PlutoConfig, ConfError> {
    let s = &conf.setup;
    let myid = match s.get("myid") {
        Some(v) => Some(
            crate::config::secrets::Id::parse(v)
                .map_err(|e| s.err_at("myid", format!("myid: {}", e.message())))?,
        ),
        None => None,
    };
    let defaultroute = defaultroute.and_then(|(dev, nh)| {
        iface::address_of(dev)
            .ok()
            .map(|a| (a.addr.into(), (*nh).into()))
    });
    let defaultroute6 = defaultroute6
        .and_then(|(dev, nh)| iface::address6_of(dev).map(|a| (a.into(), (*nh).into())));
    Ok(PlutoConfig {
        interfaces: interfaces.to_vec(),
        defaultroute,
        defaultroute6,
        myid,
        uniqueids: s.get_bool("uniqueids", true)?,
        nat_traversal: s.get_bool("nat_traversal", true)?,
        ike_version: match s.get("keyexchange") {
            Some("ikev2") => crate::pluto::version::IkeVersion::V2,
            _ => crate::pluto::version::IkeVersion::V1,
        },
        debug: DebugFlags::parse(s.get("plutodebug").unwrap_or("none")),
        shunt_scan_interval: s.get_duration("shuntscaninterval", 120)?.max(1),
        shunt_lifetime: match s.get("shuntlifetime") {
            Some(_) => Some(s.get_duration("shuntlifetime", 900)?.max(1)),
            None => None,
        },
        virtual_private: crate::config::VirtualPrivate::parse(s.get_or("virtual_private", ""))
            .map_err(|e| s.err_at("virtual_private", format!("virtual_private: {e}")))?,
        ..PlutoConfig::default()
    })
}
