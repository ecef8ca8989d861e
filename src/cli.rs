//! The `ipsec` command: FreeS/WAN's subcommands. Table commands (`eroute`, `spi`, `spigrp`,
//! `tncfg`, `look`) and `manual` are carried out by the running daemon over the control socket;
//! `setup` starts and stops the daemon; `_updown` is the default updown script.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::shell::control;
use crate::shell::daemon::{self, VERSION};
use crate::shell::paths::Paths;

const USAGE: &str = "\
Usage: ipsec [--config FILE] [--secrets FILE] [--rundir DIR] COMMAND [ARGS]
Commands:
  setup start|stop|restart|status [--nofork]   start or stop the gateway daemon
  manual --up|--down|--route|--unroute CONN    manually keyed connections
  auto --add|--delete|--replace|--up|--down|--route|--unroute CONN   IKE connections
  auto --status|--rereadsecrets|--rereadall|--ready                  IKE daemon
  whack --status|--name N --initiate|--terminate|...                 Pluto control
  look                                         brief status: eroutes, SAs, drops, routes
  eroute [--add|--replace|--del|--clear ...]   the eroute table
  spi [SA --esp|--ah|--comp|--ip4 ...|--del|--clear]   the SADB
  spigrp [--said SA...]                        SA groups
  tncfg                                        ipsecN devices
  newhostkey [--output F] [--bits N]           generate an RSA host key (ipsec.secrets block;
                                               stdout without --output, never a terminal)
  rsasigkey NBITS                              print a new RSA key block
  showhostkey [--left|--right|--txt GW|--ipseckey GW|--key|--pem|--pem-private]  show our RSA key
                                               (default: the DNS KEY record, --key)
  ranbits [--continuous] [--bytes] N           random bits in hex
  barf [--short]                               everything needed to debug this gateway
  verify                                       check the gateway's set-up ([OK]/[FAILED])
  status [--json]                              machine-readable status (docs/status-json.md)
  metrics                                      Prometheus text exposition of the status
  keys --wireshark DIR                         write Wireshark's ESP/IKE key tables to DIR
  --version                                    print the version
  --confdir | --directory                      where ipsec.conf / ipsec's programs are
Environment: IPSEC_CONF, IPSEC_SECRETS, IPSEC_RUNDIR.";

/// Runs the `ipsec` command line `args` (without the program name); returns the exit status.
pub fn main(mut args: Vec<String>) -> i32 {
    // Whether the user named the files: only then do `auto`/`manual` tell the daemon which
    // ones to read (else it keeps those it was started with, not /etc/ipsec.conf).
    let named = |opt: &str, env: &str| {
        args.iter()
            .any(|a| a == &format!("--{opt}") || a.starts_with(&format!("--{opt}=")))
            || std::env::var_os(env).is_some_and(|v| !v.is_empty())
    };
    let (named_config, named_secrets) = (
        named("config", "IPSEC_CONF"),
        named("secrets", "IPSEC_SECRETS"),
    );
    let paths = match Paths::take_from(&mut args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ipsec: {e}");
            return 2;
        }
    };
    let Some(cmd) = args.first().cloned() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let rest: Vec<String> = args[1..].to_vec();
    match cmd.as_str() {
        "--version" | "version" => {
            println!("Linux rswan {VERSION} (FreeS/WAN 2.04 compatible)");
            0
        }
        // FreeS/WAN's `ipsec --confdir` (where ipsec.conf lives) and `ipsec --directory`
        // (where ipsec's programs are).
        "--confdir" => {
            let dir = paths.config.parent().unwrap_or(Path::new("/"));
            println!(
                "{}",
                if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                }
                .display()
            );
            0
        }
        "--directory" => {
            let exe = std::path::PathBuf::from(crate::updown::self_exe());
            println!("{}", exe.parent().unwrap_or(Path::new("/")).display());
            0
        }
        "--help" | "help" => {
            println!("{USAGE}");
            0
        }
        "setup" => setup(&paths, &rest, named_config || named_secrets),
        "_updown" => crate::updown::default_script(rest.iter().any(|a| a == "ipfwadm")),
        "newhostkey" => newhostkey(&rest),
        "rsasigkey" => local(crate::cmd::keys::rsasigkey(&rest)),
        "showhostkey" => local(crate::cmd::keys::showhostkey(&rest, &paths.secrets)),
        "ranbits" => local(crate::cmd::keys::ranbits(&rest)),
        "eroute" | "spi" | "spigrp" | "tncfg" | "look" => forward(&paths, &args),
        "manual" | "auto" => {
            let mut a = args.clone();
            if named_config {
                a.push("--config".into());
                a.push(paths.config.display().to_string());
            }
            if named_secrets {
                a.push("--secrets".into());
                a.push(paths.secrets.display().to_string());
            }
            forward(&paths, &a)
        }
        "whack" | "metrics" => forward(&paths, &args),
        "status" => forward(&paths, &args),
        "keys" => {
            // The daemon writes the files: hand it an absolute directory.
            let mut a = args.clone();
            if let Some(d) = a.iter_mut().skip_while(|x| *x != "--wireshark").nth(1) {
                if let Ok(abs) = std::path::absolute(d.as_str()) {
                    *d = abs.display().to_string();
                }
            }
            forward(&paths, &a)
        }
        "barf" => crate::cmd::barf::run(&daemon_paths(&paths, named_config, named_secrets), &rest),
        "verify" => {
            crate::cmd::verify::run(&daemon_paths(&paths, named_config, named_secrets), &rest)
        }
        other => {
            eprintln!("ipsec: unknown command \"{other}\"\n{USAGE}");
            2
        }
    }
}

/// `ipsec newhostkey`: to `--output FILE`, or to stdout as in FreeS/WAN's
/// `ipsec newhostkey > /etc/ipsec.secrets` — but never to a terminal.
fn newhostkey(args: &[String]) -> i32 {
    use std::io::IsTerminal;
    let to_stdout = !args
        .iter()
        .any(|a| a == "--output" || a.starts_with("--output="));
    if to_stdout && std::io::stdout().is_terminal() {
        eprintln!(
            "ipsec newhostkey: refusing to write a private key to a terminal: redirect the output (ipsec newhostkey > FILE) or give --output FILE"
        );
        return 1;
    }
    let mut a = args.to_vec();
    if to_stdout {
        a.extend(["--output".to_string(), "-".to_string()]);
    }
    local(crate::cmd::keys::newhostkey(&a))
}

/// The files the running daemon was started with, for those the user did not name (several
/// gateways on one host differ only in `--rundir`).
fn daemon_paths(paths: &Paths, named_config: bool, named_secrets: bool) -> Paths {
    let mut p = paths.clone();
    if let Ok((0, text)) = control::call_capture(&paths.ctl(), &["paths".into()]) {
        let mut l = text.lines();
        if let (Some(c), Some(s)) = (l.next(), l.next()) {
            if !named_config {
                p.config = c.into();
            }
            if !named_secrets {
                p.secrets = s.into();
            }
        }
    }
    p
}

fn local(r: Result<String, crate::cmd::CmdError>) -> i32 {
    match r {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!("ipsec: {e}");
            1
        }
    }
}

fn forward(paths: &Paths, args: &[String]) -> i32 {
    match control::call(&paths.ctl(), args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "ipsec {}: rswan is not running ({}: {e}); start it with \"ipsec setup start\"",
                args[0],
                paths.ctl().display()
            );
            1
        }
    }
}

fn running(paths: &Paths) -> bool {
    std::os::unix::net::UnixStream::connect(paths.ctl()).is_ok()
}

fn setup(paths: &Paths, args: &[String], named: bool) -> i32 {
    let nofork = args.iter().any(|a| a == "--nofork");
    let ops: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [op] = ops.as_slice() else {
        eprintln!("usage: ipsec setup start|stop|restart|status [--nofork]");
        return 2;
    };
    match op.as_str() {
        "start" => start(paths, nofork),
        "stop" => stop(paths, false),
        "restart" => {
            // The stopping daemon leaves ipsecN, its routes and the blackhole fallbacks in place
            // and the new one adopts them: protected traffic is dropped, never sent in clear,
            // while no daemon runs.
            // Unless files were named, the new daemon reads those the running one was started
            // with (several gateways on one host differ only in --rundir).
            let paths = match (
                named,
                control::call_capture(&paths.ctl(), &["paths".into()]),
            ) {
                (false, Ok((0, text))) => {
                    let mut l = text.lines();
                    match (l.next(), l.next()) {
                        (Some(c), Some(s)) => Paths {
                            config: c.into(),
                            secrets: s.into(),
                            rundir: paths.rundir.clone(),
                        },
                        _ => paths.clone(),
                    }
                }
                _ => paths.clone(),
            };
            stop(&paths, true);
            start(&paths, nofork)
        }
        "status" => {
            if running(paths) {
                forward(paths, &["status".to_string()])
            } else {
                println!("IPsec stopped");
                3
            }
        }
        other => {
            eprintln!("ipsec setup: unknown operation \"{other}\"");
            2
        }
    }
}

fn start(paths: &Paths, nofork: bool) -> i32 {
    println!("ipsec_setup: Starting rswan IPsec {VERSION}...");
    if running(paths) {
        eprintln!(
            "ipsec_setup: rswan is already running ({})",
            paths.ctl().display()
        );
        return 1;
    }
    if nofork {
        return daemon::run(paths.clone());
    }
    if let Err(e) = std::fs::create_dir_all(&paths.rundir) {
        eprintln!("ipsec_setup: cannot create {}: {e}", paths.rundir.display());
        return 1;
    }
    let log = match open_log(&paths.log()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ipsec_setup: cannot open {}: {e}", paths.log().display());
            return 1;
        }
    };
    // This start's lines begin here: the log is appended to, never truncated.
    let from = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = crate::updown::self_exe();
    let mut c = Command::new(exe);
    c.args(["--config", &path_str(&paths.config)])
        .args(["--secrets", &path_str(&paths.secrets)])
        .args(["--rundir", &path_str(&paths.rundir)])
        .args(["setup", "start", "--nofork"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid() is async-signal-safe and touches no Rust state in the forked child.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            eprintln!("ipsec_setup: cannot start the daemon: {e}");
            return 1;
        }
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            eprint!("{}", setup_lines(&paths.log(), from));
            eprintln!(
                "ipsec_setup: daemon exited ({status}); see {}",
                paths.log().display()
            );
            return status.code().unwrap_or(1).max(1);
        }
        if running(paths) && since(&paths.log(), from).lines().any(is_started_line) {
            eprint!("{}", setup_lines(&paths.log(), from));
            println!("ipsec_setup: ...rswan IPsec started");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "ipsec_setup: the daemon did not come up in 20 s; see {}",
        paths.log().display()
    );
    1
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The daemon's last start-up line (`ipsec_setup: ...rswan IPsec 0.1.0 started`).
fn is_started_line(l: &str) -> bool {
    l.contains("ipsec_setup: ...rswan IPsec") && l.ends_with(" started")
}

/// Opens the daemon's log for appending, created 0600 (it names peers and conns).
fn open_log(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(p)
}

/// What the log gained since byte `from` (this start's lines).
fn since(p: &Path, from: u64) -> String {
    use std::io::{Seek, SeekFrom};
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut b = Vec::new();
            let _ = f.read_to_end(&mut b);
            s = String::from_utf8_lossy(&b).into_owned();
        }
    }
    s
}

/// This start's `ipsec_setup:` lines (interfaces, skipped conns and why, secrets problems,
/// adopted state) and `WARNING:` lines (e.g. short RSA keys at FILE:LINE), without their
/// timestamps, for the terminal as FreeS/WAN's `ipsec setup` showed them; the routine first and
/// last ones are printed by [`start`] itself.
fn setup_lines(p: &Path, from: u64) -> String {
    since(p, from)
        .lines()
        .filter_map(|l| {
            ["ipsec_setup: ", "WARNING: "]
                .iter()
                .filter_map(|w| l.find(w))
                .min()
                .map(|i| &l[i..])
        })
        .filter(|l| !l.contains("Starting rswan IPsec") && !is_started_line(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `ipsec setup stop` (`keep` = false) or the first half of `restart` (`keep`: the daemon leaves
/// the fail-closed kernel state for the next one). With no daemon running, `stop` still removes
/// what a crashed one left: persistent ipsecN devices, routes and blackholes.
fn stop(paths: &Paths, keep: bool) -> i32 {
    println!("ipsec_setup: Stopping rswan IPsec...");
    if !running(paths) {
        if !keep && paths.failclosed().exists() {
            for n in crate::shell::failclosed::clear_all(&paths.failclosed(), &[]) {
                eprintln!("ipsec_setup: {n}");
            }
            crate::updown::firewall_clear();
            let _ = std::fs::remove_file(paths.pid());
            let _ = std::fs::remove_file(paths.ctl());
            println!("ipsec_setup: removed the devices and routes a stopped daemon left");
        }
        println!("ipsec_setup: rswan IPsec is not running");
        return 0;
    }
    let mut req = vec!["shutdown".to_string()];
    if keep {
        req.push("--keep".into());
    }
    let _ = control::call(&paths.ctl(), &req);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if !paths.pid().exists() {
            println!("ipsec_setup: ...rswan IPsec stopped");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Ok(pid) = std::fs::read_to_string(paths.pid()) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: sending SIGKILL to the pid recorded by our own daemon.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let _ = std::fs::remove_file(paths.pid());
    let _ = std::fs::remove_file(paths.ctl());
    if !keep {
        for n in crate::shell::failclosed::clear_all(&paths.failclosed(), &[]) {
            eprintln!("ipsec_setup: {n}");
        }
    }
    println!("ipsec_setup: ...rswan IPsec stopped (killed)");
    0
}
