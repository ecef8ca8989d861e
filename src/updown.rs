//! `_updown` (spec 9): the PLUTO_* environment handed to `leftupdown` scripts, running the script,
//! and rswan's own default script (`ipsec _updown`) that adds and removes routes to ipsecN.

use std::net::Ipv4Addr;
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
    /// Next hop toward the peer.
    pub next_hop: Ipv4Addr,
    /// ipsecN.
    pub interface: String,
    /// Our public address.
    pub me: Ipv4Addr,
    /// Our ID.
    pub my_id: String,
    /// Our client network (host ⇒ /32).
    pub my_client: Subnet,
    /// Peer's public address.
    pub peer: Ipv4Addr,
    /// Peer's ID.
    pub peer_id: String,
    /// Peer's client network.
    pub peer_client: Subnet,
    /// The `leftupdown` command (None = the default script).
    pub command: Option<String>,
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
            e("PLUTO_MY_CLIENT_NET", self.my_client.addr().to_string()),
            e("PLUTO_MY_CLIENT_MASK", self.my_client.netmask().to_string()),
            e("PLUTO_PEER", self.peer.to_string()),
            e("PLUTO_PEER_ID", self.peer_id.clone()),
            e("PLUTO_PEER_CLIENT", self.peer_client.to_string()),
            e("PLUTO_PEER_CLIENT_NET", self.peer_client.addr().to_string()),
            e(
                "PLUTO_PEER_CLIENT_MASK",
                self.peer_client.netmask().to_string(),
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

/// rswan's default updown script (`ipsec _updown`), driven by the PLUTO_* environment.
/// Returns the exit status.
pub fn default_script() -> i32 {
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
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_verbs() {
        let u = UpdownInfo {
            connection: "net-net".into(),
            next_hop: Ipv4Addr::new(192, 0, 2, 2),
            interface: "ipsec0".into(),
            me: Ipv4Addr::new(192, 0, 2, 1),
            my_id: "192.0.2.1".into(),
            my_client: "10.0.1.0/24".parse().unwrap(),
            peer: Ipv4Addr::new(192, 0, 2, 2),
            peer_id: "192.0.2.2".into(),
            peer_client: "10.0.2.0/24".parse().unwrap(),
            command: None,
        };
        assert_eq!(u.verb_text(Verb::Route), "route-client");
        let env = u.env(Verb::Up);
        assert!(env.contains(&("PLUTO_PEER_CLIENT_MASK".into(), "255.255.255.0".into())));
        assert!(env.contains(&("PLUTO_VERSION".into(), "1.1".into())));
        let c = default_script_commands("route-client", "0.0.0.0/0", "192.0.2.2", "ipsec0");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0][2], "0.0.0.0/1");
        assert!(default_script_commands("up-client", "10.0.2.0/24", "x", "ipsec0").is_empty());
    }
}
