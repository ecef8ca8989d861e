//! `ipsec barf [--short]` (spec 6.5): everything needed to debug a gateway in one text report,
//! in FreeS/WAN's order and format — the host name and date, then sections headed
//! `+ _________________________ NAME`, each command shown as `+ COMMAND` before its output
//! (FreeS/WAN's barf ran under `sh -x`). The table sections come from the running daemon over
//! the control socket; the rest from the system (`ip`, `nft`, `/proc`). No key material: ESP and
//! AH keys are never printed by any section, ipsec.conf's manual keys and every secret of
//! ipsec.secrets are censored (`admin::censor`), and long hex runs in the log are masked.
//!
//! Unlike the table commands, barf runs local programs: it is the shell's, not a sans-IO core.

use std::path::Path;
use std::process::Command;

use crate::admin::censor;
use crate::shell::control;
use crate::shell::paths::Paths;

/// Log lines shown by default and with `--short` (FreeS/WAN: the whole log, or the last 500).
const LOG_LINES: usize = 2000;
const LOG_LINES_SHORT: usize = 500;

struct Report(String);

impl Report {
    fn section(&mut self, name: &str) {
        self.0
            .push_str(&format!("+ _________________________ {name}\n"));
    }

    fn cmd_line(&mut self, shown: &str) {
        self.0.push_str(&format!("+ {shown}\n"));
    }

    fn text(&mut self, t: &str) {
        self.0.push_str(t);
        if !t.is_empty() && !t.ends_with('\n') {
            self.0.push('\n');
        }
    }

    /// Runs a program and adds its output (stderr too).
    fn run(&mut self, prog: &str, args: &[&str]) {
        self.cmd_line(format!("{prog} {}", args.join(" ")).trim_end());
        match Command::new(prog).args(args).output() {
            Ok(o) => {
                self.text(&String::from_utf8_lossy(&o.stdout));
                self.text(&String::from_utf8_lossy(&o.stderr));
            }
            Err(e) => self.text(&format!("{prog}: {e}\n")),
        }
    }

    /// Asks the daemon (`ipsec ARGS`) and adds its output.
    fn daemon(&mut self, paths: &Paths, args: &[&str]) {
        self.cmd_line(&format!("ipsec {}", args.join(" ")));
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match control::call_capture(&paths.ctl(), &v) {
            Ok((_, out)) => self.text(&out),
            Err(e) => self.text(&format!(
                "rswan is not running ({}: {e})\n",
                paths.ctl().display()
            )),
        }
    }

    fn file(&mut self, p: &str) {
        self.cmd_line(&format!("cat {p}"));
        match std::fs::read_to_string(p) {
            Ok(t) => self.text(&t),
            Err(e) => self.text(&format!("{p}: {e}\n")),
        }
    }
}

/// Masks runs of 32 or more hex digits (keys a `plutodebug=private` log may hold).
pub fn mask_hex(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str("[hex censored]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The ipsecN devices of the running daemon (from `ipsec tncfg`), else every ipsecN present.
fn ipsec_devices(paths: &Paths) -> Vec<String> {
    if let Ok((0, t)) = control::call_capture(&paths.ctl(), &["tncfg".into()]) {
        let v: Vec<String> = t
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ipsec"))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the report.
pub fn report(paths: &Paths, short: bool) -> String {
    let mut r = Report(String::new());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    r.text(host.trim());
    let date = Command::new("date")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    r.text(date.trim());
    r.section("version");
    r.cmd_line("ipsec --version");
    r.text(&format!(
        "Linux rswan {} (FreeS/WAN 2.04 compatible)\n",
        crate::shell::daemon::VERSION
    ));
    r.section("/proc/version");
    r.file("/proc/version");
    r.section("ipsec/look");
    r.daemon(paths, &["look"]);
    r.section("ipsec/status");
    r.daemon(paths, &["auto", "--status"]);
    r.section("/proc/net/ipsec_eroute");
    r.daemon(paths, &["eroute"]);
    r.section("/proc/net/ipsec_spi");
    r.daemon(paths, &["spi"]);
    r.section("/proc/net/ipsec_spigrp");
    r.daemon(paths, &["spigrp"]);
    r.section("/proc/net/ipsec_tncfg");
    r.daemon(paths, &["tncfg"]);
    r.section("ip-addr-list");
    r.run("ip", &["addr", "list"]);
    r.section("ip-route-list");
    r.run("ip", &["route", "list"]);
    r.section("ip-route-table-115");
    r.run("ip", &["route", "show", "table", "115"]);
    r.section("ip-rule-list");
    r.run("ip", &["rule", "list"]);
    r.section("ip-s-link-ipsec");
    for d in ipsec_devices(paths) {
        r.run("ip", &["-s", "link", "show", &d]);
    }
    r.section("/proc/sys/net/ipv4/ip_forward");
    r.file("/proc/sys/net/ipv4/ip_forward");
    r.section("/proc/sys/net/ipv4/conf/star-rp_filter");
    r.cmd_line("cat /proc/sys/net/ipv4/conf/*/rp_filter");
    if let Ok(d) = std::fs::read_dir("/proc/sys/net/ipv4/conf") {
        let mut names: Vec<String> = d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let v = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{n}/rp_filter"))
                .unwrap_or_default();
            r.text(&format!("{n}/rp_filter = {}", v.trim()));
        }
    }
    r.section("nft-list-ruleset");
    r.run("nft", &["list", "ruleset"]);
    r.section("iptables-save");
    r.run("iptables-save", &[]);
    r.section("ipsec/conf");
    r.cmd_line(&format!("ipsec _keycensor < {}", paths.config.display()));
    match std::fs::read_to_string(&paths.config) {
        Ok(t) => r.text(&censor::conf(&t)),
        Err(e) => r.text(&format!("{}: {e}\n", paths.config.display())),
    }
    r.section("ipsec/secrets");
    r.run("ls", &["-l", &paths.secrets.display().to_string()]);
    r.cmd_line(&format!(
        "ipsec _secretcensor < {}",
        paths.secrets.display()
    ));
    match std::fs::read_to_string(&paths.secrets) {
        Ok(t) => r.text(&censor::secrets(&t)),
        Err(e) => r.text(&format!("{}: {e}\n", paths.secrets.display())),
    }
    r.section("ps");
    // The gateway's own processes only (FreeS/WAN's `ps alxwf` listed every process and its
    // arguments, which may carry other programs' secrets).
    r.run("ps", &["-C", "ipsec", "-o", "pid,ppid,stat,etime,rss,args"]);
    r.section("plog");
    let log = paths.log();
    let n = if short { LOG_LINES_SHORT } else { LOG_LINES };
    r.cmd_line(&format!("tail -n {n} {}", log.display()));
    r.text(&log_tail(&log, n));
    r.section("date");
    r.text(date.trim());
    r.0
}

/// The last `n` lines of the daemon's log, with long hex runs masked.
fn log_tail(p: &Path, n: usize) -> String {
    match std::fs::read_to_string(p) {
        Ok(t) => {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("{}\n", mask_hex(l)))
                .collect()
        }
        Err(e) => format!("{}: {e}\n", p.display()),
    }
}

/// `ipsec barf [--short]`: prints the report; exit status 0.
pub fn run(paths: &Paths, args: &[String]) -> i32 {
    let short = match args {
        [] => false,
        [a] if a == "--short" => true,
        _ => {
            eprintln!("Usage: ipsec barf [--short]");
            return 2;
        }
    };
    print!("{}", report(paths, short));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_runs_are_masked() {
        assert_eq!(
            mask_hex("| SKEYID: 00112233445566778899aabbccddeeff00 done 0x1234"),
            "| SKEYID: [hex censored] done 0x1234"
        );
        assert_eq!(mask_hex("esp.1a2b3c4d@192.0.2.1"), "esp.1a2b3c4d@192.0.2.1");
    }
}
