//! Two Pluto engines wired back to back over an in-memory network with a virtual clock.

mod groups;
mod ikev2;
mod ipv6;
mod limits;
mod oe;
mod peers;
mod scenarios;
mod strongswan;
mod usage;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::addr::Subnet;
use crate::config::conf::IpsecConf;
use crate::config::secrets::Secrets;
use crate::pluto::isakmp::natt::{strip_non_esp_marker, NAT_T_PORT};
use crate::pluto::{
    ErouteOp, Interface, Output, Pluto, PlutoConfig, SerialNo, WhackClient, WhackCmd,
};
use crate::sadb::SaSpec;
use crate::said::Said;
use crate::updown::Verb;

pub(crate) const WEST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(crate) const EAST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// Public address of the fake NAT in front of a node.
pub(crate) const NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

/// One engine and what it produced.
pub(crate) struct Node {
    pub p: Pluto,
    pub addr: IpAddr,
    pub logs: Vec<String>,
    pub whack: Vec<(u64, u16, String)>,
    pub done: Vec<(u64, i32)>,
    pub installs: Vec<(String, Vec<SaSpec>, Vec<Vec<Said>>)>,
    pub eroutes: Vec<(ErouteOp, Subnet, Subnet, Said)>,
    pub deleted: Vec<Said>,
    pub updown: Vec<Verb>,
    pub sent: Vec<(u64, SocketAddr, SocketAddr, Vec<u8>)>,
    pub keepalives: usize,
    /// Live SADB model.
    pub sadb: HashMap<Said, SaSpec>,
}

impl Node {
    pub fn new(addr: impl Into<IpAddr>, seed: u64, conf: &str, secrets: &str) -> Node {
        Node::with_cfg(addr, seed, conf, secrets, |_| {})
    }

    /// A node whose `PlutoConfig` (`config setup`) `setup` adjusts.
    pub fn with_cfg(
        addr: impl Into<IpAddr>,
        seed: u64,
        conf: &str,
        secrets: &str,
        setup: impl FnOnce(&mut PlutoConfig),
    ) -> Node {
        let addr: IpAddr = addr.into();
        let mut cfg = PlutoConfig {
            interfaces: vec![Interface {
                virt: "ipsec0".into(),
                phys: "eth0".into(),
                addr,
            }],
            ..PlutoConfig::default()
        };
        setup(&mut cfg);
        let mut p = Pluto::new(cfg, Box::new(StdRng::seed_from_u64(seed)));
        let conf = IpsecConf::parse_str(conf, "/etc/ipsec.conf").expect("ipsec.conf parses");
        let errs = p.load_conns(&conf);
        assert!(errs.is_empty(), "{errs:?}");
        p.load_secrets(Secrets::parse_str(secrets, "/etc/ipsec.secrets").expect("secrets parse"));
        Node {
            p,
            addr,
            logs: Vec::new(),
            whack: Vec::new(),
            done: Vec::new(),
            installs: Vec::new(),
            eroutes: Vec::new(),
            deleted: Vec::new(),
            updown: Vec::new(),
            sent: Vec::new(),
            keepalives: 0,
            sadb: HashMap::new(),
        }
    }

    /// The first ESP SA in the live SADB model (either direction).
    pub fn esp(&self) -> &SaSpec {
        self.esp_where(|_| true)
    }

    /// The first outbound ESP SA in the live SADB model.
    pub fn esp_out(&self) -> &SaSpec {
        self.esp_where(|s| s.dir == Some(crate::sadb::Dir::Out))
    }

    fn esp_where(&self, f: impl Fn(&SaSpec) -> bool) -> &SaSpec {
        self.sadb
            .values()
            .find(|s| s.said.proto == crate::said::Proto::Esp && f(s))
            .unwrap_or_else(|| panic!("no such ESP SA\n{}", self.dump()))
    }

    pub fn log_has(&self, s: &str) -> bool {
        self.logs.iter().any(|l| l.contains(s))
    }

    pub fn whack_has(&self, code: u16, s: &str) -> bool {
        self.whack
            .iter()
            .any(|(_, c, t)| *c == code && t.contains(s))
    }

    pub fn established_ipsec(&self) -> usize {
        self.p.sas.children().filter(|c| c.established).count()
    }

    pub fn established_isakmp(&self) -> usize {
        self.p.sas.ikes().filter(|s| s.established).count()
    }

    pub fn dump(&self) -> String {
        self.logs.join("\n")
    }

    /// Reports traffic to Pluto as the keying thread does: every installed ESP/AH SA of the
    /// chosen directions was last used `idle_ms` ago.
    pub fn use_sas(&mut self, now: u64, inbound: bool, outbound: bool, idle_ms: u64) {
        let usage: Vec<(Said, Option<u64>)> = self
            .sadb
            .values()
            .filter(|s| {
                matches!(
                    s.said.proto,
                    crate::said::Proto::Esp | crate::said::Proto::Ah
                )
            })
            .filter(|s| match s.dir {
                Some(crate::sadb::Dir::In) => inbound,
                _ => outbound,
            })
            .map(|s| (s.said, Some(idle_ms)))
            .collect();
        self.p.handle_sa_usage(now, &usage);
    }

    /// Informational exchanges (DPD, Delete, notifications) this node sent at or after `since`.
    pub fn informationals_since(&self, since: u64) -> usize {
        self.sent
            .iter()
            .filter(|(t, local, _, d)| {
                let off = if local.port() == NAT_T_PORT { 4 } else { 0 };
                *t >= since && d.get(off + 18) == Some(&5)
            })
            .count()
    }

    /// The `--status` lines.
    pub fn status(&mut self, now: u64) -> Vec<String> {
        self.p.whack(now, WhackClient(999), WhackCmd::Status);
        let mut v = Vec::new();
        while let Some(o) = self.p.poll_output() {
            if let Output::Whack {
                client: WhackClient(999),
                text,
                ..
            } = o
            {
                v.push(text);
            }
        }
        v
    }
}

/// Which direction a datagram travels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    AtoB,
    BtoA,
}

/// Decides whether a datagram is lost.
pub(crate) type DropFn = Box<dyn FnMut(Dir, &[u8]) -> bool>;

/// Datagrams an adversary slips in to B: (B's address, the (spoofed) source, the data).
pub(crate) type Injected = Vec<(SocketAddr, SocketAddr, Vec<u8>)>;

/// An adversary: sees B and the time, and injects datagrams into B right before each round
/// that delivers A's datagrams to B (so between the messages of A's exchanges).
pub(crate) type AdversaryFn = Box<dyn FnMut(&Node, u64) -> Injected>;

/// Two engines and the wire between them.
pub(crate) struct Net {
    pub a: Node,
    pub b: Node,
    pub now: u64,
    pub drop: DropFn,
    /// Node A sits behind a NAT (A's source is rewritten to NAT_PUBLIC, ports +1000).
    pub nat_a: bool,
    /// The NAT's public address (IPv4 [`NAT_PUBLIC`] unless a test puts an IPv6 one).
    pub nat_public: IpAddr,
    pub delivered: usize,
    /// Injects datagrams into B between A's messages.
    pub adversary: Option<AdversaryFn>,
}

/// A road warrior A (10.9.0.2, conn `rw`, `a_extra` added to it) behind a NAT whose public
/// address is [`NAT_PUBLIC`], and B at [`EAST`] with a `right=%any` template allowing A's
/// private client through `virtual_private=%v4:10.0.0.0/8`; one PSK.
pub(crate) fn nat_road_warrior(a_extra: &str) -> Net {
    let a = Node::new(
        Ipv4Addr::new(10, 9, 0, 2),
        1,
        &format!("version 2\nconn rw\n\tleft=10.9.0.2\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauthby=secret\n{a_extra}\tauto=add\n"),
        ": PSK \"rw secret\"\n",
    );
    let b = Node::with_cfg(
        EAST,
        2,
        &format!("version 2\nconn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauthby=secret\n\tauto=add\n"),
        ": PSK \"rw secret\"\n",
        |c| c.virtual_private = crate::config::VirtualPrivate::parse("%v4:10.0.0.0/8").unwrap(),
    );
    let mut net = Net::new(a, b);
    net.nat_a = true;
    net
}

impl Net {
    pub fn new(a: Node, b: Node) -> Net {
        Net {
            a,
            b,
            now: 0,
            drop: Box::new(|_, _| false),
            nat_a: false,
            nat_public: NAT_PUBLIC.into(),
            delivered: 0,
            adversary: None,
        }
    }

    fn drain(node: &mut Node, now: u64) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut sends = Vec::new();
        while let Some(o) = node.p.poll_output() {
            match o {
                Output::Send {
                    local,
                    remote,
                    data,
                } => {
                    if data == [0xff] {
                        node.keepalives += 1;
                        continue;
                    }
                    node.sent.push((now, local, remote, data.clone()));
                    sends.push((local, remote, data));
                }
                Output::InstallSas { conn, sas, groups } => {
                    for s in &sas {
                        node.sadb.insert(s.said, s.clone());
                    }
                    node.installs.push((conn, sas, groups));
                }
                Output::Eroute { op, src, dst, said } => node.eroutes.push((op, src, dst, said)),
                Output::DeleteSas { saids } => {
                    for s in &saids {
                        node.sadb.remove(s);
                    }
                    node.deleted.extend(saids)
                }
                Output::Updown { verb, .. } => node.updown.push(verb),
                Output::Log(l) => node.logs.push(l),
                Output::Whack { client, code, text } => node.whack.push((client.0, code, text)),
                Output::WhackDone { client, status } => node.done.push((client.0, status)),
                Output::DnsLookup { .. } => {}
            }
        }
        sends
    }

    /// Delivers everything until quiet (no time passes).
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            let now = self.now;
            let from_a = Self::drain(&mut self.a, now);
            let from_b = Self::drain(&mut self.b, now);
            if from_a.is_empty() && from_b.is_empty() {
                // Whatever happened, the SA tables' indexes and timers match their records.
                crate::pluto::sa::assert_consistent(&self.a.p.sas);
                crate::pluto::sa::assert_consistent(&self.b.p.sas);
                return;
            }
            if let (Some(adv), false) = (self.adversary.as_mut(), from_a.is_empty()) {
                for (local, src, data) in adv(&self.b, now) {
                    Self::deliver(&mut self.b, now, local, src, &data);
                }
            }
            for (local, remote, data) in from_a {
                if (self.drop)(Dir::AtoB, &data) || remote.ip() != self.b.addr {
                    continue;
                }
                let src = if self.nat_a {
                    SocketAddr::new(self.nat_public, local.port() + 1000)
                } else {
                    local
                };
                Self::deliver(&mut self.b, now, remote, src, &data);
                self.delivered += 1;
            }
            for (local, remote, data) in from_b {
                if (self.drop)(Dir::BtoA, &data) {
                    continue;
                }
                let dst = if self.nat_a {
                    if remote.ip() != self.nat_public {
                        continue;
                    }
                    SocketAddr::new(self.a.addr, remote.port() - 1000)
                } else {
                    if remote.ip() != self.a.addr {
                        continue;
                    }
                    remote
                };
                Self::deliver(&mut self.a, now, dst, local, &data);
                self.delivered += 1;
            }
        }
        panic!("network never went quiet");
    }

    fn deliver(node: &mut Node, now: u64, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let ike = if local.port() == NAT_T_PORT {
            match strip_non_esp_marker(data) {
                Some(d) => d,
                None => return,
            }
        } else {
            data
        };
        node.p.handle_datagram(now, local, remote, ike);
    }

    /// Runs timers and traffic until `t` (ms).
    pub fn advance_to(&mut self, t: u64) {
        loop {
            self.run();
            let next = [self.a.p.poll_timeout(), self.b.p.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= t => {
                    self.now = self.now.max(n);
                    let now = self.now;
                    if self.a.p.poll_timeout().is_some_and(|x| x <= now) {
                        self.a.p.handle_timeout(now);
                    }
                    if self.b.p.poll_timeout().is_some_and(|x| x <= now) {
                        self.b.p.handle_timeout(now);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
        self.run();
    }

    /// Advances to `t` in `step` ms steps, calling `each` after every step (traffic reports).
    pub fn advance_with(&mut self, t: u64, step: u64, mut each: impl FnMut(&mut Net)) {
        while self.now + step <= t {
            let next = self.now + step;
            self.advance_to(next);
            each(self);
            self.run();
        }
        self.advance_to(t);
    }

    pub fn whack_a(&mut self, client: u64, cmd: WhackCmd) {
        self.a.p.whack(self.now, WhackClient(client), cmd);
        self.run();
    }

    pub fn whack_b(&mut self, client: u64, cmd: WhackCmd) {
        self.b.p.whack(self.now, WhackClient(client), cmd);
        self.run();
    }

    /// `whack --name NAME --rekey-ike` (`ike`) or `--rekey-ipsec` on A, as client `client`.
    pub fn rekey_a(&mut self, client: u64, name: &str, ike: bool) {
        self.whack_a(
            client,
            WhackCmd::Rekey {
                name: name.into(),
                ike,
            },
        );
    }

    pub fn up_a(&mut self, name: &str) {
        self.whack_a(
            1,
            WhackCmd::Up {
                name: name.into(),
                asynchronous: false,
            },
        );
    }
}

/// A pair of conns, `west` (A) and `east` (B), with extra lines for both.
pub(crate) fn conf(name: &str, extra: &str) -> String {
    format!(
        "version 2\nconn {name}\n\tleft={WEST}\n\tleftsubnet=10.0.1.0/24\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauto=add\n{extra}"
    )
}

pub(crate) const PSK: &str = "192.0.2.1 198.51.100.7: PSK \"a very secret phrase\"\n";

/// West and east with the same PSK conn.
pub(crate) fn psk_pair(extra_both: &str) -> Net {
    psk_pair_each(extra_both, extra_both)
}

/// West (A) and east (B) with the PSK conn `net`, `extra_a`/`extra_b` added on each side.
pub(crate) fn psk_pair_each(extra_a: &str, extra_b: &str) -> Net {
    let a = Node::new(
        WEST,
        1,
        &conf("net", &format!("\tauthby=secret\n{extra_a}")),
        PSK,
    );
    let b = Node::new(
        EAST,
        2,
        &conf("net", &format!("\tauthby=secret\n{extra_b}")),
        PSK,
    );
    Net::new(a, b)
}
