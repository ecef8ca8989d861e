//! `ipsec verify` (spec 6.5): FreeS/WAN's checklist of a gateway's set-up, one check per line
//! as `%-65s` label and `[OK]`, `[FAILED]`, `[WARNING]` or `[N/A]`, with a hint under a line
//! that is not OK. Exit status 1 when a check failed.
//!
//! Checks: the binary and its version, TUN support, an RSA key in ipsec.secrets when a conn
//! needs one, the secrets file's permissions and syntax, ipsec.conf's syntax, the daemon
//! running and listening on UDP 500 and 4500, IP forwarding, rp_filter on ipsecN (strict
//! reverse-path filtering drops decapsulated packets whose source is not routed back through
//! ipsecN), NAT rules that would catch tunnel traffic, the fail-closed routing rule, and —
//! where opportunistic encryption is configured (a routed OE policy group with entries, or a
//! conn with an opportunistic or group peer) — that DNS publishes our key as an OE peer would
//! look it up (TXT `X-IPsec-Server`, KEY, IPSECKEY of our reverse map and `@fqdn` ID), asked
//! with rswan's own resolver. Runs local programs (`ip`, `nft`).

use std::net::Ipv4Addr;
use std::process::Command;

use crate::config::conf::{system_resolve_v4, IpsecConf};
use crate::config::secrets::{SecretKey, Secrets};
use crate::dns::message::reverse_name;
use crate::dns::records::{self, Gateway};
use crate::dns::{Lookup, LookupId, Record, RrType};
use crate::pluto::crypto::PublicKey;
use crate::pluto::groups::PolicyGroups;
use crate::shell::paths::Paths;
use crate::shell::policies::{policy_groups_dir, read_policy_groups};
use crate::shell::{control, iface, resolver};

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
    v.push(oe_check(paths, conf.as_ref().ok(), secrets.as_ref().ok()));
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

/// The policy groups that try opportunistic encryption (FreeS/WAN 2.x's implicit conns).
const OE_GROUPS: [&str; 3] = ["clear-or-private", "private-or-clear", "private"];

/// How long `ipsec verify` waits for one DNS answer (ms).
const DNS_WAIT_MS: u64 = 3000;

/// The policies that ask for opportunistic encryption: the implicit groups that try OE
/// (not overridden by a user conn, e.g. `auto=ignore`) with entries in their group files,
/// and user conns (not `auto=ignore`) with an `%opportunistic`, `%opportunisticgroup` or
/// authenticated `%group` peer. Each with our side's `left`/`right` and ID values.
fn oe_policies(conf: &IpsecConf, groups: &PolicyGroups) -> Vec<OePolicy> {
    let mut v: Vec<OePolicy> = conf
        .implicit_conns()
        .into_iter()
        .filter(|c| OE_GROUPS.contains(&c.name.as_str()) && !groups.entries(&c.name).is_empty())
        .map(|c| OePolicy {
            name: c.name.clone(),
            host: c.params.get_or("left", "%defaultroute").to_string(),
            id: c.params.get("leftid").map(str::to_owned),
        })
        .collect();
    let peer = |v: &str| v.starts_with("%opportunistic") || v == "%group";
    for s in &conf.conns {
        if s.params.get_or("auto", "ignore") == "ignore"
            || s.params.get_or("authby", "rsasig") == "never"
        {
            continue;
        }
        let (l, r) = (s.params.get_or("left", ""), s.params.get_or("right", ""));
        let ours = if peer(r) {
            "left"
        } else if peer(l) {
            "right"
        } else {
            continue;
        };
        v.push(OePolicy {
            name: s.name.clone(),
            host: s.params.get_or(ours, "%defaultroute").to_string(),
            id: s.params.get(&format!("{ours}id")).map(str::to_owned),
        });
    }
    v
}

/// One policy asking for OE, and our side of it as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OePolicy {
    name: String,
    host: String,
    id: Option<String>,
}

/// A DNS name where an OE peer looks for our key: the reverse map of the address we
/// negotiate from (its TXT `X-IPsec-Server` must name that address as the gateway), or the
/// forward name of an `@fqdn` ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyName {
    name: String,
    /// For a reverse name: our address.
    addr: Option<Ipv4Addr>,
}

/// Where peers look for the key of `policies` (`default_addr`: the default route's
/// interface address, for `%defaultroute`; `myid`: `myid=` of `config setup`).
fn key_names(
    policies: &[OePolicy],
    default_addr: Option<Ipv4Addr>,
    myid: Option<&str>,
    resolve: &dyn Fn(&str) -> Option<Ipv4Addr>,
) -> (Vec<KeyName>, Vec<String>) {
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for p in policies {
        let addr = match p.host.as_str() {
            "%defaultroute" => default_addr,
            h => h.parse().ok().or_else(|| resolve(h)),
        };
        match addr {
            Some(a) => names.push(KeyName {
                name: reverse_name(a),
                addr: Some(a),
            }),
            None => problems.push(format!(
                "\"{}\": cannot tell the address it negotiates from ({})",
                p.name,
                if p.host == "%defaultroute" {
                    "%defaultroute, but no default route".to_string()
                } else {
                    format!("{} does not resolve", p.host)
                }
            )),
        }
        let id = match p.id.as_deref() {
            Some("%myid") => myid,
            i => i,
        };
        if let Some(n) = id
            .and_then(|i| i.strip_prefix('@'))
            .filter(|n| !n.starts_with('@'))
        {
            names.push(KeyName {
                name: n.trim_end_matches('.').to_ascii_lowercase(),
                addr: None,
            });
        }
    }
    names.sort();
    names.dedup();
    (names, problems)
}

/// The RSA keys (normalized RFC 3110 blobs) an answer to `qtype` for `at` publishes; `Err`
/// when a record is there but unreadable.
fn published_keys(at: &KeyName, qtype: RrType, recs: &[Record]) -> Result<Vec<Vec<u8>>, String> {
    let norm = |b: &[u8]| {
        PublicKey::from_rfc3110(b)
            .map(|k| k.to_rfc3110())
            .map_err(|e| format!("bad RSA key in the {qtype} record of {}: {e}", at.name))
    };
    let mut keys = Vec::new();
    for r in recs {
        let blob = match qtype {
            RrType::Txt => {
                let server = records::parse_txt(&r.rdata)
                    .and_then(|t| records::parse_ipsec_server(&t))
                    .map_err(|e| format!("bad TXT record of {}: {e}", at.name))?;
                server
                    .filter(|s| at.addr.is_none_or(|a| s.gateway == Gateway::Ipv4(a)))
                    .and_then(|s| s.key)
            }
            RrType::Key => Some(
                records::parse_key(&r.rdata)
                    .map_err(|e| format!("bad KEY record of {}: {e}", at.name))?,
            ),
            RrType::Ipseckey => records::parse_ipseckey(&r.rdata)
                .map_err(|e| format!("bad IPSECKEY record of {}: {e}", at.name))
                .map(|k| (k.algorithm == records::IPSECKEY_RSA).then_some(k.key))?,
            _ => None,
        };
        if let Some(b) = blob {
            keys.push(norm(&b)?);
        }
    }
    Ok(keys)
}

/// The record types an OE peer asks for our key, in its order.
const KEY_QUERIES: [RrType; 3] = [RrType::Txt, RrType::Key, RrType::Ipseckey];

/// The verdict for one name from the answers to its lookups (in [`KEY_QUERIES`] order,
/// stopping early at a key of ours or a name server that does not answer).
fn judge_name(at: &KeyName, ours: &[Vec<u8>], answers: &[(RrType, Lookup)]) -> (Verdict, String) {
    let mut others = 0;
    for (qtype, result) in answers {
        match result {
            Lookup::Answer(recs) => match published_keys(at, *qtype, recs) {
                Ok(keys) => {
                    if keys.iter().any(|k| ours.contains(k)) {
                        return (
                            Verdict::Ok,
                            format!("our key is published in the {qtype} record of {}", at.name),
                        );
                    }
                    others += keys.len();
                }
                Err(e) => return (Verdict::Failed, e),
            },
            Lookup::NoRecord => {}
            Lookup::Malformed(e) => {
                return (
                    Verdict::Failed,
                    format!("malformed DNS answer for {qtype} {}: {e}", at.name),
                )
            }
            Lookup::ServerError(_) | Lookup::Timeout | Lookup::NoServer => {
                return (
                    Verdict::Warning,
                    format!("no name server answers for {qtype} {} ({result})", at.name),
                )
            }
        }
    }
    let publish = match at.addr {
        Some(a) => format!("ipsec showhostkey --txt {a}"),
        None => "ipsec showhostkey --key".to_string(),
    };
    if others > 0 {
        (
            Verdict::Failed,
            format!(
                "{}: published key does not match ours (ipsec.secrets): publish `{publish}`",
                at.name
            ),
        )
    } else {
        (
            Verdict::Failed,
            format!(
                "no X-IPsec-Server record for {}: publish `{publish}` (no KEY or IPSECKEY record with a key either)",
                at.name
            ),
        )
    }
}

/// The checklist line from the verdicts of every name (worst wins; every hint kept).
fn combine(label: &str, results: Vec<(Verdict, String)>) -> Check {
    let rank = |v: Verdict| match v {
        Verdict::Failed => 3,
        Verdict::Warning => 2,
        Verdict::Ok => 1,
        Verdict::NotApplicable => 0,
    };
    let worst = results
        .iter()
        .map(|r| r.0)
        .max_by_key(|v| rank(*v))
        .unwrap_or(Verdict::NotApplicable);
    let hint = results
        .into_iter()
        .map(|r| r.1)
        .collect::<Vec<_>>()
        .join("\n");
    check(label, worst, hint)
}

/// Our RSA public keys (normalized RFC 3110 blobs) in ipsec.secrets.
fn own_public_keys(secrets: &Secrets) -> Vec<Vec<u8>> {
    secrets
        .entries()
        .iter()
        .filter_map(|e| match &e.key {
            SecretKey::Rsa(k) => PublicKey::from_rfc3110(&k.public_key_blob()).ok(),
            _ => None,
        })
        .map(|k| k.to_rfc3110())
        .collect()
}

/// Opportunistic encryption needs our key in DNS (RFC 4322): where policies ask for OE, asks
/// the name servers OE uses (`dnsserver=`, else resolv.conf) for our key the way a peer
/// would and compares it with the key in ipsec.secrets.
fn oe_check(paths: &Paths, conf: Option<&IpsecConf>, secrets: Option<&Secrets>) -> Check {
    let label = "Opportunistic Encryption DNS checks";
    let Some(conf) = conf else {
        return check(label, Verdict::NotApplicable, "");
    };
    let (mut groups, _) = read_policy_groups(&policy_groups_dir(conf, &paths.config));
    // A command may wait for DNS (the daemon resolves these through its resolver thread).
    for (g, hosts) in std::mem::take(&mut groups.hosts) {
        for h in hosts {
            if let Some(a) = system_resolve_v4(&h.name) {
                groups.groups.entry(g.clone()).or_default().push(
                    crate::pluto::groups::GroupEntry {
                        net: crate::addr::Subnet::host(a),
                        file: h.file,
                        line: h.line,
                    },
                );
            }
        }
    }
    let policies = oe_policies(conf, &groups);
    if policies.is_empty() {
        return check(label, Verdict::NotApplicable, "");
    }
    let ours = secrets.map(own_public_keys).unwrap_or_default();
    if ours.is_empty() {
        return check(
            label,
            Verdict::Failed,
            "opportunistic encryption is configured but ipsec.secrets has no RSA key: ipsec newhostkey --output FILE",
        );
    }
    let route = iface::default_route();
    let default_addr = route
        .as_ref()
        .and_then(|(dev, _)| iface::address_of(dev).ok())
        .map(|a| a.addr);
    let (names, mut results): (Vec<KeyName>, Vec<(Verdict, String)>) = {
        let (n, p) = key_names(
            &policies,
            default_addr,
            conf.setup.get("myid"),
            &system_resolve_v4,
        );
        (n, p.into_iter().map(|p| (Verdict::Warning, p)).collect())
    };
    let servers = match resolver::name_servers(conf.setup.get("dnsserver")) {
        Result::Ok(s) if !s.is_empty() => s,
        Result::Ok(_) => return check(
            label,
            Verdict::Warning,
            "no name server: set dnsserver= in config setup or a nameserver in /etc/resolv.conf",
        ),
        Err(e) => return check(label, Verdict::Failed, e),
    };
    let handle = match resolver::start(
        servers,
        route.as_ref().map(|r| r.0.as_str()),
        std::sync::Arc::new(|_: &str| {}),
    ) {
        Result::Ok(h) => h,
        Err(e) => {
            return check(
                label,
                Verdict::Warning,
                format!("cannot start the DNS resolver: {e}"),
            )
        }
    };
    let mut next = 0u64;
    let mut ask = |name: &str, qtype: RrType| -> Lookup {
        next += 1;
        let id = LookupId(next);
        if let Some(a) = handle.lookup(id, name.to_string(), qtype) {
            return a.result;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(DNS_WAIT_MS);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match handle.answers.recv_timeout(left) {
                Result::Ok(a) if a.id == id => return a.result,
                Result::Ok(_) => {}
                Err(_) => return Lookup::Timeout,
            }
        }
    };
    for at in &names {
        let mut answers = Vec::new();
        for q in KEY_QUERIES {
            let r = ask(&at.name, q);
            let stop = match &r {
                Lookup::Answer(recs) => published_keys(at, q, recs)
                    .map_or(true, |ks| ks.iter().any(|k| ours.contains(k))),
                Lookup::NoRecord => false,
                _ => true,
            };
            answers.push((q, r));
            if stop {
                break;
            }
        }
        results.push(judge_name(at, &ours, &answers));
    }
    combine(label, results)
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

    fn key(seed: u64) -> PublicKey {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        crate::pluto::crypto::PrivateKey::generate_with_exponent(&mut rng, 1024, 3)
            .unwrap()
            .public_key()
    }

    fn txt(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
        out
    }

    fn answer(name: &str, rtype: RrType, rdata: Vec<u8>) -> Lookup {
        Lookup::Answer(vec![Record {
            name: name.to_string(),
            rtype,
            ttl: 60,
            rdata,
            target: None,
        }])
    }

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const REV: &str = "1.2.0.192.in-addr.arpa";

    fn reverse() -> KeyName {
        KeyName {
            name: REV.to_string(),
            addr: Some(GW),
        }
    }

    fn groups(files: &[(&str, &str)]) -> PolicyGroups {
        let mut g = PolicyGroups::default();
        for (name, text) in files {
            let (e, errs) =
                crate::pluto::groups::parse_group_file(text, std::path::Path::new(name), &|_| None);
            assert!(errs.is_empty());
            g.groups.insert((*name).to_string(), e);
        }
        g
    }

    fn conf(text: &str) -> IpsecConf {
        IpsecConf::parse_str(&format!("version 2\nconfig setup\n{text}"), "/tmp/gw.conf").unwrap()
    }

    #[test]
    fn oe_is_configured_by_routed_groups_with_entries_or_opportunistic_conns() {
        let none = conf("");
        assert!(oe_policies(&none, &groups(&[])).is_empty());
        // Groups that do not try OE, or an OE group without entries.
        let g = groups(&[
            ("clear", "0.0.0.0/0\n"),
            ("block", "10.0.0.1\n"),
            ("private", "# none\n"),
        ]);
        assert!(oe_policies(&none, &g).is_empty());
        for name in OE_GROUPS {
            let g = groups(&[(name, "0.0.0.0/0\n")]);
            let p = oe_policies(&none, &g);
            assert_eq!(p.len(), 1, "{name}");
            assert_eq!(p[0].name, name);
            assert_eq!(p[0].host, "%defaultroute");
            assert_eq!(p[0].id.as_deref(), Some("%myid"));
            // FreeS/WAN's no_oe.conf idiom turns it off.
            let off = conf(&format!("conn {name}\n\tauto=ignore\n"));
            assert!(oe_policies(&off, &g).is_empty(), "{name}");
        }
        // Conns with opportunistic peers (our side is the other one).
        let c = conf("conn oe\n\tleft=%opportunistic\n\tright=192.0.2.7\n\trightid=@gw.example\n\tauto=route\n");
        let p = oe_policies(&c, &groups(&[]));
        assert_eq!(
            p,
            vec![OePolicy {
                name: "oe".into(),
                host: "192.0.2.7".into(),
                id: Some("@gw.example".into())
            }]
        );
        let c = conf("conn g\n\tleft=%defaultroute\n\tright=%group\n\tauto=route\n\tauthby=never\n\ttype=passthrough\n");
        assert!(oe_policies(&c, &groups(&[])).is_empty());
        let c = conf("conn g\n\tleft=%defaultroute\n\tright=%opportunisticgroup\n\tauto=ignore\n");
        assert!(oe_policies(&c, &groups(&[])).is_empty());
    }

    #[test]
    fn names_peers_look_up() {
        let p = |host: &str, id: Option<&str>| OePolicy {
            name: "private-or-clear".into(),
            host: host.into(),
            id: id.map(str::to_owned),
        };
        let (n, errs) = key_names(
            &[
                p("%defaultroute", Some("%myid")),
                p("192.0.2.1", Some("@GW.example.")),
            ],
            Some(GW),
            Some("@gw.example"),
            &|_| None,
        );
        assert!(errs.is_empty());
        assert_eq!(
            n,
            vec![
                reverse(),
                KeyName {
                    name: "gw.example".into(),
                    addr: None
                }
            ]
        );
        let (n, errs) = key_names(&[p("%defaultroute", None)], None, None, &|_| None);
        assert!(n.is_empty());
        assert!(errs[0].contains("no default route"), "{errs:?}");
    }

    #[test]
    fn published_key_is_judged_against_ours() {
        let (ours, other) = (key(1), key(2));
        let our_blobs = vec![ours.to_rfc3110()];
        let rec = |k: &PublicKey, gw: &str| {
            answer(
                REV,
                RrType::Txt,
                txt(&format!("X-IPsec-Server(10)={gw} {}", k.to_text())),
            )
        };
        // Our key in the TXT record naming us as the gateway.
        let (v, h) = judge_name(
            &reverse(),
            &our_blobs,
            &[(RrType::Txt, rec(&ours, "192.0.2.1"))],
        );
        assert_eq!(v, Verdict::Ok, "{h}");
        // Another key.
        let (v, h) = judge_name(
            &reverse(),
            &our_blobs,
            &[
                (RrType::Txt, rec(&other, "192.0.2.1")),
                (RrType::Key, Lookup::NoRecord),
                (RrType::Ipseckey, Lookup::NoRecord),
            ],
        );
        assert_eq!(v, Verdict::Failed);
        assert!(h.contains("published key does not match ours"), "{h}");
        // Our key, but for another gateway: not ours to use.
        let (v, h) = judge_name(
            &reverse(),
            &our_blobs,
            &[
                (RrType::Txt, rec(&ours, "192.0.2.9")),
                (RrType::Key, Lookup::NoRecord),
                (RrType::Ipseckey, Lookup::NoRecord),
            ],
        );
        assert_eq!(v, Verdict::Failed);
        assert!(h.starts_with("no X-IPsec-Server record for 1.2.0.192.in-addr.arpa: publish `ipsec showhostkey --txt 192.0.2.1`"), "{h}");
        // Only an IPSECKEY record, with our key.
        let (v, h) = judge_name(
            &reverse(),
            &our_blobs,
            &[
                (RrType::Txt, Lookup::NoRecord),
                (RrType::Key, Lookup::NoRecord),
                (
                    RrType::Ipseckey,
                    answer(
                        REV,
                        RrType::Ipseckey,
                        records::ipseckey_rdata(10, Some(GW), &ours.to_rfc3110()),
                    ),
                ),
            ],
        );
        assert_eq!(v, Verdict::Ok, "{h}");
        // Nothing at all.
        let (v, h) = judge_name(
            &reverse(),
            &our_blobs,
            &[
                (RrType::Txt, Lookup::NoRecord),
                (RrType::Key, Lookup::NoRecord),
                (RrType::Ipseckey, Lookup::NoRecord),
            ],
        );
        assert_eq!(v, Verdict::Failed);
        assert!(
            h.starts_with("no X-IPsec-Server record for 1.2.0.192.in-addr.arpa"),
            "{h}"
        );
        // No name server answers: cannot tell.
        for r in [
            Lookup::Timeout,
            Lookup::ServerError(crate::dns::Rcode::ServFail),
        ] {
            let (v, h) = judge_name(&reverse(), &our_blobs, &[(RrType::Txt, r)]);
            assert_eq!(v, Verdict::Warning, "{h}");
            assert!(h.contains("no name server answers"), "{h}");
        }
        // A bad record is named.
        let (v, h) = judge_name(
            &reverse(),
            &our_blobs,
            &[(
                RrType::Txt,
                answer(REV, RrType::Txt, txt("X-IPsec-Server(x)=1.2.3.4")),
            )],
        );
        assert_eq!(v, Verdict::Failed);
        assert!(
            h.contains("bad TXT record of 1.2.0.192.in-addr.arpa"),
            "{h}"
        );
    }

    #[test]
    fn worst_verdict_wins() {
        let c = combine(
            "L",
            vec![(Verdict::Ok, "a".into()), (Verdict::Warning, "b".into())],
        );
        assert_eq!((c.verdict, c.hint.as_str()), (Verdict::Warning, "a\nb"));
        let c = combine(
            "L",
            vec![
                (Verdict::Failed, "x".into()),
                (Verdict::Warning, "b".into()),
            ],
        );
        assert_eq!(c.verdict, Verdict::Failed);
    }
}
