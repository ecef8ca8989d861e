//! Whack: the control commands of `ipsec auto` / `ipsec whack` (add, replace, delete, up,
//! down, route, unroute, status, secrets, listen, deletestate, debug, shutdown), and the
//! lines and final status each client gets back.

use crate::pluto::connection::Connection;
use crate::pluto::engine::Pluto;
use crate::pluto::ids::{SerialNo, WhackClient};
use crate::pluto::output::{rc, whack_status, Output, WhackCmd};

impl Pluto {
    /// Runs a whack command for `client`. Progress lines and a final
    /// [`Output::WhackDone`] come out through [`Pluto::poll_output`] (for `Up`, possibly much
    /// later, when the negotiation ends).
    pub fn whack(&mut self, now_ms: u64, client: WhackClient, cmd: WhackCmd) {
        self.now = now_ms;
        match cmd {
            WhackCmd::Add(sec) => {
                if self.conns.contains_key(&sec.name) {
                    self.whack_done_code(
                        client,
                        rc::DUPNAME,
                        format!("attempt to redefine connection \"{}\"", sec.name),
                    );
                    return;
                }
                self.add_conn(client, &sec);
            }
            WhackCmd::Replace(sec) => {
                if self.conns.contains_key(&sec.name) {
                    self.delete_conn(&sec.name.clone());
                }
                self.add_conn(client, &sec);
            }
            WhackCmd::Delete(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                self.delete_conn(&name);
                self.whack_done(client, 0);
            }
            WhackCmd::Up { name, asynchronous } => {
                let Some(c) = self.conns.get_mut(&name) else {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                };
                if !c.negotiates() || c.is_template() || c.that.host.is_none() {
                    let why = if c.is_template() {
                        "cannot initiate connection with a wildcard peer (%any)"
                    } else if c.negotiates() {
                        "cannot initiate an opportunistic connection or policy group: it starts when its %trap catches a packet"
                    } else {
                        "cannot initiate: connection does not negotiate (authby=never or shunt type)"
                    };
                    let q = c.quoted();
                    self.whack_done_code(client, rc::ORIENT, format!("{q}: {why}"));
                    return;
                }
                c.up = true;
                c.tries = 0;
                let w = if asynchronous { None } else { Some(client) };
                self.initiate(&name, w, None);
                if asynchronous {
                    self.whack_done(client, 0);
                }
            }
            WhackCmd::Down(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                self.down_conn(&name);
                self.whack_done(client, 0);
            }
            WhackCmd::Route(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                match self.route_conn(&name) {
                    Ok(()) => self.whack_done(client, 0),
                    Err(e) => self.whack_done_code(client, rc::ROUTE, e),
                }
            }
            WhackCmd::Unroute(name) => {
                if !self.conns.contains_key(&name) {
                    self.whack_done_code(
                        client,
                        rc::UNKNOWN_NAME,
                        format!("no connection named \"{name}\""),
                    );
                    return;
                }
                match self.unroute_conn(&name) {
                    Ok(()) => self.whack_done(client, 0),
                    Err(e) => self.whack_done_code(client, rc::ROUTE, e),
                }
            }
            WhackCmd::Status => {
                for line in self.status_lines() {
                    self.out.push_back(Output::Whack {
                        client,
                        code: rc::COMMENT,
                        text: line,
                    });
                }
                self.whack_done(client, 0);
            }
            WhackCmd::RereadSecrets(s) => {
                self.load_secrets(s);
                self.whack_done(client, 0);
            }
            WhackCmd::Listen(s) => {
                if let Some(s) = s {
                    self.load_secrets(s);
                }
                let ifaces: Vec<String> = self
                    .cfg
                    .interfaces
                    .iter()
                    .map(|i| format!("adding interface {}/{} {}", i.virt, i.phys, i.addr))
                    .collect();
                for l in ifaces {
                    self.log(l);
                }
                self.whack_done(client, 0);
            }
            WhackCmd::RereadGroups(g) => {
                self.load_policy_groups(g);
                self.warn_oe_unusable();
                self.check_own_oe_keys();
                self.whack_done(client, 0);
            }
            WhackCmd::DeleteState(n) => {
                if self.sas.contains(n) {
                    self.delete_sa(n, true);
                    self.whack_done(client, 0);
                } else {
                    self.whack_done_code(client, rc::UNKNOWN_NAME, format!("no state #{n}"));
                }
            }
            WhackCmd::Rekey { name, ike } => self.force_rekey(client, &name, ike),
            WhackCmd::Debug(flags) => {
                self.cfg.debug = super::output::DebugFlags::parse(&flags);
                self.whack_done(client, 0);
            }
            WhackCmd::Shutdown => {
                self.log("shutting down".into());
                for w in std::mem::take(&mut self.mm_waiting) {
                    if let Some(c) = w.whack {
                        self.whack_done(c, whack_status(rc::NORETRANSMISSION));
                    }
                }
                for s in self.sas.serials().into_iter().rev() {
                    self.delete_sa(s, false);
                }
                let keys: Vec<String> = self.conns.keys().cloned().collect();
                for k in keys {
                    let _ = self.unroute_conn(&k);
                }
                self.conns.clear();
                self.whack_done(client, 0);
            }
        }
    }

    fn add_conn(&mut self, client: WhackClient, sec: &crate::config::conf::ConnSection) {
        match Connection::from_section(sec, &self.cfg) {
            Ok(c) => {
                for w in super::connection::key_warnings(sec) {
                    self.log(format!("WARNING: {w}"));
                }
                let key = c.key();
                self.conns.insert(key.clone(), c);
                let line = format!("added connection description \"{key}\"");
                self.log(line.clone());
                self.out.push_back(Output::Whack {
                    client,
                    code: rc::LOG,
                    text: line,
                });
                self.whack_done(client, 0);
            }
            Err((code, e)) => self.whack_done_code(client, code, e.to_string()),
        }
    }

    pub(crate) fn delete_conn(&mut self, name: &str) {
        let keys: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.name == name)
            .map(|c| c.key())
            .collect();
        for key in keys.iter().rev() {
            self.drop_waiting_main_mode(key);
            for s in self.sas.of_conn(key).into_iter().rev() {
                self.delete_sa(s, true);
            }
            if let Some(c) = self.conns.get_mut(key) {
                c.policy_routed = false;
            }
            let _ = self.unroute_conn(key);
            self.conns.remove(key);
        }
        self.log(format!("deleting connection \"{name}\""));
    }

    /// `--down`: delete SAs (sending Deletes); the %trap stays if the conn is routed.
    fn down_conn(&mut self, name: &str) {
        let keys: Vec<String> = self
            .conns
            .values()
            .filter(|c| c.name == name)
            .map(|c| c.key())
            .collect();
        for key in keys {
            self.drop_waiting_main_mode(&key);
            if let Some(c) = self.conns.get_mut(&key) {
                c.up = false;
            }
            // Child SAs first (their Deletes ride on the IKE SA), then IKE SAs, oldest first.
            let ikes: Vec<SerialNo> = self.sas.ikes_of_conn(&key).map(|s| s.serial()).collect();
            let children: Vec<(SerialNo, bool)> = self
                .sas
                .children_of_conn(&key)
                .map(|c| {
                    // IKEv2: a child whose established IKE SA goes too needs no Delete of its
                    // own — deleting an IKE SA closes its child SAs (RFC 7296 1.4.1) — and a
                    // second INFORMATIONAL request sent before the first is answered would
                    // exceed the peer's window of one (RFC 7296 2.3): strongSwan drops it,
                    // keeping the IKE SA.
                    let covered = ikes.contains(&c.parent())
                        && self
                            .sas
                            .ike(c.parent())
                            .is_some_and(|p| p.established && p.exchange.v2().is_some());
                    (c.serial(), !covered)
                })
                .collect();
            for (s, notify) in children {
                self.delete_sa(s, notify);
            }
            for s in ikes {
                self.delete_sa(s, true);
            }
            self.settle_narrow_holds(&key, None);
            self.instance_gc(&key);
        }
    }

    /// `--rekey-ike` / `--rekey-ipsec`: starts replacing the newest IKE SA (`ike`) or child
    /// SA of each conn named `name` now, the way its rekey timer would; the old SA lives on
    /// until it expires or the peer deletes it (make-before-break).
    fn force_rekey(&mut self, client: WhackClient, name: &str, ike: bool) {
        let what = if ike { "IKE" } else { "IPsec" };
        let targets: Vec<(String, Option<SerialNo>)> = self
            .conns
            .values()
            .filter(|c| c.name == name && !c.is_template())
            .map(|c| {
                let newest = if ike { c.newest_isakmp } else { c.newest_ipsec };
                (c.key(), newest)
            })
            .collect();
        if targets.is_empty() {
            self.whack_done_code(
                client,
                rc::UNKNOWN_NAME,
                format!("no connection named \"{name}\""),
            );
            return;
        }
        let mut started = 0;
        for (key, newest) in targets {
            let Some(old) = newest.filter(|&s| self.sas.contains(s)) else {
                continue;
            };
            let line = format!("\"{key}\" #{old}: forced rekey of {what} SA");
            self.log(line.clone());
            self.out.push_back(Output::Whack {
                client,
                code: rc::LOG,
                text: line,
            });
            if ike {
                self.initiate_ike(&key, None, 1, None, Some(old));
            } else {
                self.initiate(&key, None, Some(old));
            }
            started += 1;
        }
        if started == 0 {
            self.whack_done_code(
                client,
                rc::UNKNOWN_NAME,
                format!("\"{name}\": no established {what} SA to rekey"),
            );
        } else {
            self.whack_done(client, 0);
        }
    }

    /// The command of `client` is over, with exit `status`.
    pub(crate) fn whack_done(&mut self, client: WhackClient, status: i32) {
        self.out.push_back(Output::WhackDone { client, status });
    }

    /// The command of `client` failed: log `text`, show it with `code`, exit with that code.
    pub(crate) fn whack_done_code(&mut self, client: WhackClient, code: u16, text: String) {
        self.log(text.clone());
        self.out.push_back(Output::Whack { client, code, text });
        self.out.push_back(Output::WhackDone {
            client,
            status: whack_status(code),
        });
    }
}
