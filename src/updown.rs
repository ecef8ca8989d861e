//! `_updown` (spec 9): the PLUTO_* environment handed to `leftupdown` scripts, running the script,
//! and rswan's own default script (`ipsec _updown`) that adds and removes routes to ipsecN.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use crate::addr::Subnet;

/// The verbs (without the `-host`/`-client` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Before routing: delete a stray route.
    Prepare,
    /// Route the peer client into ipsecN.
    Route,
    /// Remove that route.
    Unroute,
    /// The tunnel eroute is in place.
    Up,
    /// The tunnel eroute was removed.
    Down,
}

impl Verb {
    /// The verb's word.
    pub fn word(self) -> &'static str {
        match self {
            Verb::Prepare => "prepare",
            Verb::Route => "route",
            Verb::Unroute => "unroute",
            Verb::Up => "up",
            Verb::Down => "down",
        }
    }
}

/// What the script is told about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdownInfo {
    /// Connection name (with instance suffix if any).
    pub connection: String,
    /// Next hop toward the peer (the family of `peer`).
    pub next_hop: IpAddr,
    /// ipsecN.
    pub interface: String,
    /// Our public address.
    pub me: IpAddr,
    /// Our ID.
    pub my_id: String,
    /// Our client network (host ⇒ /32).
    pub my_client: Subnet,
    /// Peer's public address.
    pub peer: IpAddr,
    /// Peer's ID.
    pub peer_id: String,
    /// Peer's client network.
    pub peer_client: Subnet,
    /// The `leftupdown` command (None = the default script).
    pub command: Option<String>,
    /// The route into ipsecN gets rswan's fail-closed copy in table 115 (consulted before
    /// `main`). False for policy group and opportunistic routes: their peer client is often
    /// `0.0.0.0/0`, whose copy would take even directly connected networks away from `main`.
    pub fail_closed: bool,
}

impl UpdownInfo {
    /// `PLUTO_VERB` value: verb + `-host` when our client is our host, else `-client`.
    pub fn verb_text(&self, v: Verb) -> String {
        let host = self.my_client == Subnet::host(self.me);
        format!("{}-{}", v.word(), if host { "host" } else { "client" })
    }

    /// The PLUTO_* environment for `v`.
    pub fn env(&self, v: Verb) -> Vec<(String, String)> {
        let e = |k: &str, v: String| (k.to_string(), v);
        vec![
            e("PLUTO_VERSION", "1.1".into()),
            e("PLUTO_VERB", self.verb_text(v)),
            e("PLUTO_CONNECTION", self.connection.clone()),
            e("PLUTO_NEXT_HOP", self.next_hop.to_string()),
            e("PLUTO_INTERFACE", self.interface.clone()),
            e("PLUTO_ME", self.me.to_string()),
            e("PLUTO_MY_ID", self.my_id.clone()),
            e("PLUTO_MY_CLIENT", self.my_client.to_string()),
            e("PLUTO_MY_CLIENT_NET", self.my_client.ip().to_string()),
            e(
                "PLUTO_MY_CLIENT_MASK",
                self.my_client.netmask_ip().to_string(),
            ),
            e("PLUTO_PEER", self.peer.to_string()),
            e("PLUTO_PEER_ID", self.peer_id.clone()),
            e("PLUTO_PEER_CLIENT", self.peer_client.to_string()),
            e("PLUTO_PEER_CLIENT_NET", self.peer_client.ip().to_string()),
            e(
                "PLUTO_PEER_CLIENT_MASK",
                self.peer_client.netmask_ip().to_string(),
            ),
        ]
    }

    /// Runs the script for `v`. Ok(output) on exit 0; Err(log text) otherwise, with the
    /// script's output, as Pluto logs it ("VERB command exited with status N").
    pub fn run(&self, v: Verb) -> Result<String, String> {
        let verb = self.verb_text(v);
        let cmd = match &self.command {
            Some(c) => c.clone(),
            None => format!("{} _updown", self_exe()),
        };
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .envs(self.env(v))
            .output()
            .map_err(|e| format!("{verb} command could not be run: {e}"))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let text: String = text
            .lines()
            .map(|l| format!("{verb} output: {l}\n"))
            .collect();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{text}{verb} command exited with status {}",
                out.status.code().unwrap_or(-1)
            ))
        }
    }
}

/// Path of the running `ipsec` binary (for the default `ipsec _updown`).
pub fn self_exe() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ipsec".into())
}

/// The networks the default script routes for a peer client: 0.0.0.0/0 becomes 0.0.0.0/1 +
/// 128.0.0.0/1 so the default route stays.
pub fn default_route_nets(peer_client: Subnet) -> Vec<Subnet> {
    if peer_client == Subnet::ANY {
        vec![
            Subnet::new(Ipv4Addr::UNSPECIFIED, 1),
            Subnet::new(Ipv4Addr::new(128, 0, 0, 0), 1),
        ]
    } else if peer_client == Subnet::ANY6 {
        vec![
            Subnet::new(std::net::Ipv6Addr::UNSPECIFIED, 1),
            Subnet::new(std::net::Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0), 1),
        ]
    } else {
        vec![peer_client]
    }
}

/// The `ip route` argument lists the default script runs for a verb (empty for up/down).
/// The peer client 0.0.0.0/0 becomes 0.0.0.0/1 + 128.0.0.0/1 so the default route stays.
pub fn default_script_commands(
    verb: &str,
    peer_client: &str,
    next_hop: &str,
    iface: &str,
) -> Vec<Vec<String>> {
    let word = verb.split('-').next().unwrap_or("");
    let nets: Vec<String> = match peer_client.parse::<Subnet>() {
        Ok(c) => default_route_nets(c)
            .iter()
            .map(|n| n.to_string())
            .collect(),
        Err(_) => vec![peer_client.to_string()],
    };
    let s = |x: &str| x.to_string();
    nets.iter()
        .map(|n| n.as_str())
        .filter_map(|net| match word {
            "route" => Some(vec![
                s("route"),
                s("replace"),
                s(net),
                s("via"),
                s(next_hop),
                s("dev"),
                s(iface),
                s("onlink"),
            ]),
            "unroute" => Some(vec![s("route"), s("del"), s(net), s("dev"), s(iface)]),
            "prepare" => Some(vec![s("route"), s("del"), s(net)]),
            _ => None,
        })
        .collect()
}

/// The updown command of a conn with `leftfirewall=yes` (FreeS/WAN passed the argument
/// `ipfwadm` to the default script, which then added forwarding rules).
pub const FIREWALL_UPDOWN: &str = "ipsec _updown ipfwadm";

/// Whether a conn's updown command is the default script with firewall rules.
pub fn is_firewall_updown(cmd: Option<&str>) -> bool {
    cmd.is_some_and(|c| c.split_whitespace().collect::<Vec<_>>().join(" ") == FIREWALL_UPDOWN)
}

/// Turns `leftfirewall=yes` / `rightfirewall=yes` into `leftupdown=ipsec _updown ipfwadm` as
/// FreeS/WAN's `auto` did; the two are exclusive (an own updown script does its own firewall).
pub fn apply_firewall(
    sec: &mut crate::config::conf::ConnSection,
) -> Result<(), crate::config::ConfError> {
    for side in ["left", "right"] {
        let fw = format!("{side}firewall");
        let up = format!("{side}updown");
        let Some(v) = sec.params.value(&fw).cloned() else {
            continue;
        };
        if v.value != "yes" {
            continue;
        }
        if sec.params.get(&up).is_some() {
            return Err(sec.params.err_at(
                &fw,
                format!(
                    "{fw}=yes cannot be used with {up}= (add the firewall rules to that script)"
                ),
            ));
        }
        sec.params.set(
            up,
            crate::config::conf::Value::new(FIREWALL_UPDOWN.to_string(), v.file, v.line),
        );
    }
    Ok(())
}

/// The nftables table of `leftfirewall=yes` rules (family `inet`).
pub const NFT_TABLE: &str = "rswan";
/// Its base chain (hook forward, priority filter, policy accept).
pub const NFT_CHAIN: &str = "forward";

/// The comment that tags a conn's rules (`rswan conn NAME PEERCLIENT`).
fn nft_comment(info: &UpdownInfo) -> String {
    let name: String = info
        .connection
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\n'))
        .collect();
    format!("rswan conn {name} {}", info.peer_client)
}

/// The `nft -f` script that adds a conn's forwarding rules: traffic between our client and the
/// peer's in both directions through ipsecN is accepted (FreeS/WAN's `_updown` with
/// `iptables -I FORWARD … -j ACCEPT`).
pub fn nft_up_script(info: &UpdownInfo) -> String {
    let c = nft_comment(info);
    let (my, peer, dev) = (info.my_client, info.peer_client, &info.interface);
    format!(
        "add table inet {NFT_TABLE}\n\
         add chain inet {NFT_TABLE} {NFT_CHAIN} {{ type filter hook forward priority filter; policy accept; }}\n\
         add rule inet {NFT_TABLE} {NFT_CHAIN} iifname \"{dev}\" ip saddr {peer} ip daddr {my} counter accept comment \"{c}\"\n\
         add rule inet {NFT_TABLE} {NFT_CHAIN} oifname \"{dev}\" ip saddr {my} ip daddr {peer} counter accept comment \"{c}\"\n"
    )
}

/// The handles of a conn's rules in `nft -a list chain inet rswan forward` output.
pub fn nft_rule_handles(listing: &str, info: &UpdownInfo) -> Vec<u64> {
    let tag = format!("comment \"{}\"", nft_comment(info));
    listing
        .lines()
        .filter(|l| l.contains(&tag))
        .filter_map(|l| l.rsplit_once("# handle ")?.1.trim().parse().ok())
        .collect()
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = Command::new("nft");
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("nft: {e}"))?;
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        let _ = i.write_all(text.as_bytes());
    }
    let o = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// Adds a conn's forwarding rules (verb `up`).
pub fn firewall_up(info: &UpdownInfo) -> Result<(), String> {
    // Never twice (an `up` without a `down` in between, e.g. after a restart).
    firewall_down(info)?;
    nft(&["-f", "-"], Some(&nft_up_script(info))).map(|_| ())
}

/// Removes a conn's forwarding rules (verb `down`); nothing to do when there are none.
pub fn firewall_down(info: &UpdownInfo) -> Result<(), String> {
    let Ok(listing) = nft(&["-a", "list", "chain", "inet", NFT_TABLE, NFT_CHAIN], None) else {
        return Ok(());
    };
    for h in nft_rule_handles(&listing, info) {
        nft(
            &[
                "delete",
                "rule",
                "inet",
                NFT_TABLE,
                NFT_CHAIN,
                "handle",
                &h.to_string(),
            ],
            None,
        )?;
    }
    Ok(())
}

/// Removes the whole table (`ipsec setup stop`).
pub fn firewall_clear() {
    let _ = nft(&["delete", "table", "inet", NFT_TABLE], None);
}

/// rswan's default updown script (`ipsec _updown [ipfwadm]`), driven by the PLUTO_*
/// environment; with `ipfwadm` (leftfirewall=yes) the up and down verbs add and remove the
/// conn's nftables forwarding rules. Returns the exit status.
pub fn default_script(firewall: bool) -> i32 {
    let get = |k: &str| std::env::var(k).unwrap_or_default();
    let version = get("PLUTO_VERSION");
    if !version.starts_with("1.") || version == "1.0" {
        eprintln!("_updown: unknown interface version `{version}'");
        return 2;
    }
    let verb = get("PLUTO_VERB");
    let known = ["prepare", "route", "unroute", "up", "down"];
    let word = verb.split('-').next().unwrap_or("");
    if !known.contains(&word) {
        eprintln!("_updown: unknown verb `{verb}' or parameter `'");
        return 1;
    }
    for args in default_script_commands(
        &verb,
        &get("PLUTO_PEER_CLIENT"),
        &get("PLUTO_NEXT_HOP"),
        &get("PLUTO_INTERFACE"),
    ) {
        let out = match Command::new("ip").args(&args).output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("_updown: ip: {e}");
                return 1;
            }
        };
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            // prepare ignores a route that is not there
            if word == "prepare" || (word == "unroute" && msg.contains("No such process")) {
                continue;
            }
            eprintln!("_updown: `ip {}' failed ({})", args.join(" "), msg.trim());
            if word == "route" {
                eprintln!("_updown: incorrect or missing nexthop setting??");
            }
            return 7;
        }
    }
    if firewall && matches!(word, "up" | "down") {
        let info = UpdownInfo {
            connection: get("PLUTO_CONNECTION"),
            next_hop: get("PLUTO_NEXT_HOP")
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            interface: get("PLUTO_INTERFACE"),
            me: get("PLUTO_ME")
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            my_id: get("PLUTO_MY_ID"),
            my_client: get("PLUTO_MY_CLIENT").parse().unwrap_or(Subnet::ANY),
            peer: get("PLUTO_PEER")
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            peer_id: get("PLUTO_PEER_ID"),
            peer_client: get("PLUTO_PEER_CLIENT").parse().unwrap_or(Subnet::ANY),
            command: None,
            fail_closed: true,
        };
        let r = if word == "up" {
            firewall_up(&info)
        } else {
            firewall_down(&info)
        };
        if let Err(e) = r {
            eprintln!("_updown: {e}");
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_verbs() {
        let u = UpdownInfo {
            connection: "net-net".into(),
            next_hop: Ipv4Addr::new(192, 0, 2, 2).into(),
            interface: "ipsec0".into(),
            me: Ipv4Addr::new(192, 0, 2, 1).into(),
            my_id: "192.0.2.1".into(),
            my_client: "10.0.1.0/24".parse().unwrap(),
            peer: Ipv4Addr::new(192, 0, 2, 2).into(),
            peer_id: "192.0.2.2".into(),
            peer_client: "10.0.2.0/24".parse().unwrap(),
            command: None,
            fail_closed: true,
        };
        assert_eq!(u.verb_text(Verb::Route), "route-client");
        let env = u.env(Verb::Up);
        assert!(env.contains(&("PLUTO_PEER_CLIENT_MASK".into(), "255.255.255.0".into())));
        assert!(env.contains(&("PLUTO_VERSION".into(), "1.1".into())));
        let c = default_script_commands("route-client", "0.0.0.0/0", "192.0.2.2", "ipsec0");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0][2], "0.0.0.0/1");
        assert!(default_script_commands("up-client", "10.0.2.0/24", "x", "ipsec0").is_empty());
        let script = nft_up_script(&u);
        assert!(script.contains("add chain inet rswan forward { type filter hook forward priority filter; policy accept; }"), "{script}");
        assert!(script.contains("add rule inet rswan forward iifname \"ipsec0\" ip saddr 10.0.2.0/24 ip daddr 10.0.1.0/24 counter accept comment \"rswan conn net-net 10.0.2.0/24\""), "{script}");
        assert!(
            script.contains("oifname \"ipsec0\" ip saddr 10.0.1.0/24 ip daddr 10.0.2.0/24"),
            "{script}"
        );
        let listing = "table inet rswan {\n\tchain forward { # handle 1\n\t\tiifname \"ipsec0\" ip saddr 10.0.2.0/24 ip daddr 10.0.1.0/24 counter packets 0 bytes 0 accept comment \"rswan conn net-net 10.0.2.0/24\" # handle 4\n\t\toifname \"ipsec0\" ip saddr 10.0.9.0/24 ip daddr 10.0.2.0/24 counter packets 0 bytes 0 accept comment \"rswan conn other 10.0.2.0/24\" # handle 5\n\t}\n}\n";
        assert_eq!(nft_rule_handles(listing, &u), vec![4]);
        assert!(is_firewall_updown(Some("ipsec  _updown ipfwadm")));
        assert!(!is_firewall_updown(Some("/usr/local/bin/up")));
    }
}
