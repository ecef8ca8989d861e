//! `ipsec verify` (spec 6.5): FreeS/WAN's checklist of a gateway's set-up, one check per line
//! as `%-65s` label and `[OK]`, `[FAILED]`, `[WARNING]` or `[N/A]`, with a hint under a line
//! that is not OK. Exit status 1 when a check failed.
//!
//! Checks: the binary and its version, TUN support, an RSA key in ipsec.secrets when a conn
//! needs one, the secrets file's permissions and syntax, ipsec.conf's syntax, the daemon
//! running and listening on UDP 500 and 4500, IP forwarding, rp_filter on ipsecN (strict
//! reverse-path filtering drops decapsulated packets whose source is not routed back through
//! ipsecN), NAT rules that would catch tunnel traffic, the fail-closed routing rule, and the
//! OE DNS records when opportunistic conns are configured. Runs local programs (`ip`, `nft`).

use std::process::Command;

use crate::config::conf::IpsecConf;
use crate::config::secrets::{SecretKey, Secrets};
use crate::shell::control;
use crate::shell::paths::Paths;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Will not work.
    Failed,
    /// May not work.
    Warning,
    /// Does not apply.
    NotApplicable,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Ok => "[OK]",
            Verdict::Failed => "[FAILED]",
            Verdict::Warning => "[WARNING]",
            Verdict::NotApplicable => "[N/A]",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub label: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, or what to do (printed under a line that is not OK).
    pub hint: String,
}

/// The `%-65s [VERDICT]` line and its hint.
pub fn format(c: &Check) -> String {
    let mut s = format!("{:<65}{}\n", c.label, c.verdict.text());
    if !c.hint.is_empty() {
        for l in c.hint.lines() {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s
}

fn check(label: &str, verdict: Verdict, hint: impl Into<String>) -> Check {
    Check {
        label: label.to_string(),
        verdict,
        hint: hint.into(),
    }
}

/// A file's name for a label (the full path goes into hints).
fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn sysctl(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn output(prog: &str, args: &[&str]) -> Option<String> {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Whether something listens on UDP `port` (any address) in this network namespace.
fn udp_listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| local.ends_with(&want))
            })
        })
        .unwrap_or(false)
}

/// Runs every check.
pub fn checks(paths: &Paths) -> Vec<Check> {
    use Verdict::*;
    let mut v = Vec::new();
    v.push(check(
        &format!(
            "Version check and ipsec on-path (rswan {})",
            crate::shell::daemon::VERSION
        ),
        Ok,
        "",
    ));
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun");
    v.push(match tun {
        Result::Ok(_) => check("Checking for TUN support (/dev/net/tun)", Ok, ""),
        Err(e) => check(
            "Checking for TUN support (/dev/net/tun)",
            Failed,
            format!(
                "/dev/net/tun: {e} (load the tun module; containers need --device /dev/net/tun)"
            ),
        ),
    });
    let conf = IpsecConf::load(&paths.config);
    let secrets = Secrets::load(&paths.secrets);
    let label = format!("Checking {} syntax", file_name(&paths.secrets));
    v.push(match &secrets {
        Result::Ok(_) => check(&label, Ok, ""),
        Err(e) => check(&label, Failed, e.to_string()),
    });
    let label = format!("Checking {} permissions", file_name(&paths.secrets));
    v.push(match std::fs::metadata(&paths.secrets) {
        Result::Ok(m) => {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                check(&label, Failed, format!("mode {mode:04o}: chmod 600 it"))
            } else if m.uid() != 0 {
                check(
                    &label,
                    Failed,
                    format!("owned by uid {}: chown root it", m.uid()),
                )
            } else {
                check(&label, Ok, "")
            }
        }
        Err(e) => check(&label, Failed, format!("{}: {e}", paths.secrets.display())),
    });
    let rsa_needed = conf.as_ref().is_ok_and(|c| {
        c.conns.iter().any(|s| {
            matches!(s.params.get_or("auto", "ignore"), "add" | "route" | "start")
                && s.params.get_or("authby", "rsasig").contains("rsasig")
        })
    });
    let has_rsa = secrets.as_ref().is_ok_and(|s| {
        s.entries()
            .iter()
            .any(|e| matches!(e.key, SecretKey::Rsa(_)))
    });
    let label = format!(
        "Checking for RSA private key in {}",
        file_name(&paths.secrets)
    );
    v.push(match (has_rsa, rsa_needed) {
        (true, _) => check(&label, Ok, ""),
        (false, false) => check(&label, Ok, "none, and no conn uses authby=rsasig"),
        (false, true) => check(
            &label,
            Failed,
            "a conn uses authby=rsasig but there is no RSA key: ipsec newhostkey --output FILE",
        ),
    });
    let label = format!("Checking {} syntax", file_name(&paths.config));
    v.push(match &conf {
        Result::Ok(_) => check(&label, Ok, ""),
        Err(e) => check(&label, Failed, e.to_string()),
    });
    let running = control::call_capture(&paths.ctl(), &["status".into()])
        .is_ok_and(|(c, t)| c == 0 && t.starts_with("IPsec running"));
    v.push(if running {
        check("Checking that pluto is running", Ok, "")
    } else {
        check(
            "Checking that pluto is running",
            Failed,
            format!("no answer on {}: ipsec setup start", paths.ctl().display()),
        )
    });
    for (port, what) in [(500, "IKE"), (4500, "IKE/NAT-T")] {
        let label = format!("  Pluto listening for {what} on udp {port}");
        v.push(if udp_listening(port) {
            check(&label, Ok, "")
        } else {
            check(&label, Failed, format!("nothing listens on UDP {port}"))
        });
    }
    let devs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ipsec"))
                .collect()
        })
        .unwrap_or_default();
    let fwd = sysctl("/proc/sys/net/ipv4/ip_forward");
    v.push(match fwd {
        Some(1) => check("Checking IP forwarding (net.ipv4.ip_forward)", Ok, ""),
        _ => check(
            "Checking IP forwarding (net.ipv4.ip_forward)",
            Failed,
            "a gateway forwards between its subnet and ipsecN: sysctl -w net.ipv4.ip_forward=1",
        ),
    });
    let all = sysctl("/proc/sys/net/ipv4/conf/all/rp_filter").unwrap_or(0);
    for d in &devs {
        let own = sysctl(&format!("/proc/sys/net/ipv4/conf/{d}/rp_filter")).unwrap_or(0);
        let eff = own.max(all);
        let label = format!("Checking rp_filter on {d}");
        v.push(if eff == 1 {
            check(
                &label,
                Failed,
                format!("strict reverse-path filtering (rp_filter={eff}) drops decapsulated packets whose source is not routed through {d}: sysctl -w net.ipv4.conf.{d}.rp_filter=0 (and conf.all.rp_filter=0 or 2)"),
            )
        } else {
            check(&label, Ok, "")
        });
    }
    v.push(nat_check(conf.as_ref().ok()));
    let rule = output("ip", &["rule", "list"]).unwrap_or_default();
    let label = "Checking the fail-closed rule (not fwmark 0x115 lookup 115)";
    v.push(if rule.contains("not from all fwmark 0x115 lookup 115") {
        check(label, Ok, "")
    } else if running {
        check(
            label,
            Failed,
            "the rule is missing: protected traffic could leave in clear if ipsecN went away; ipsec setup restart",
        )
    } else {
        check(label, Warning, "not installed (rswan is not running)")
    });
    v.push(oe_check(conf.as_ref().ok()));
    v
}

/// NAT rules (nftables masquerade/snat, iptables MASQUERADE/SNAT) that do not exclude the
/// configured peer subnets would rewrite tunnel traffic before it reaches ipsecN.
fn nat_check(conf: Option<&IpsecConf>) -> Check {
    let label = "Checking NAT and MASQUERADEing";
    let mut rules: Vec<String> = Vec::new();
    if let Some(t) = output("nft", &["list", "ruleset"]) {
        rules.extend(
            t.lines()
                .filter(|l| l.contains("masquerade") || l.contains(" snat "))
                .map(|l| l.trim().to_string()),
        );
    }
    if let Some(t) = output("iptables-save", &["-t", "nat"]) {
        rules.extend(
            t.lines()
                .filter(|l| l.contains("MASQUERADE") || l.contains("SNAT"))
                .map(str::to_owned),
        );
    }
    if rules.is_empty() {
        return check(label, Verdict::Ok, "");
    }
    let peers: Vec<String> = conf
        .map(|c| {
            c.conns
                .iter()
                .filter(|s| s.params.get_or("auto", "ignore") != "ignore")
                .flat_map(|s| {
                    ["leftsubnet", "rightsubnet"]
                        .iter()
                        .filter_map(|k| s.params.get(k).map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    let catching: Vec<&String> = rules
        .iter()
        .filter(|r| !peers.iter().any(|p| r.contains(p.as_str())))
        .collect();
    if catching.is_empty() {
        check(label, Verdict::Ok, "")
    } else {
        check(
            label,
            Verdict::Warning,
            format!(
                "these NAT rules do not exclude the tunnels' subnets and would rewrite tunnel traffic:\n{}\nexclude them, e.g. ip daddr != PEERSUBNET masquerade",
                catching
                    .iter()
                    .map(|r| format!("  {r}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        )
    }
}

/// OE needs DNS TXT records (RFC 4322); checked only when opportunistic conns are configured.
fn oe_check(conf: Option<&IpsecConf>) -> Check {
    let label = "Opportunistic Encryption DNS checks";
    let oe = conf.is_some_and(|c| {
        c.conns.iter().any(|s| {
            s.params.get_or("auto", "ignore") != "ignore"
                && ["left", "right"].iter().any(|k| {
                    s.params
                        .get(k)
                        .is_some_and(|v| v.starts_with("%opportunistic"))
                })
        })
    });
    if !oe {
        return check(label, Verdict::NotApplicable, "");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    match output("host", &["-t", "TXT", host]) {
        Some(t) if t.contains("X-IPsec-Server") => check(label, Verdict::Ok, ""),
        Some(_) => check(
            label,
            Verdict::Failed,
            format!("no X-IPsec-Server TXT record for {host}: ipsec showhostkey --txt GW"),
        ),
        None => check(
            label,
            Verdict::Warning,
            format!("cannot look up TXT records of {host} (is `host` installed?)"),
        ),
    }
}

/// `ipsec verify`: prints the checklist; exit status 1 if a check failed.
pub fn run(paths: &Paths, args: &[String]) -> i32 {
    if !args.is_empty() {
        eprintln!("Usage: ipsec verify");
        return 2;
    }
    println!("Checking your system to see if IPsec got installed and started correctly:");
    let cs = checks(paths);
    for c in &cs {
        print!("{}", format(c));
    }
    i32::from(cs.iter().any(|c| c.verdict == Verdict::Failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let c = check("Checking rp_filter on ipsec0", Verdict::Failed, "why\nmore");
        assert_eq!(
            format(&c),
            format!(
                "{:<65}[FAILED]\n    why\n    more\n",
                "Checking rp_filter on ipsec0"
            )
        );
    }
}
