//! `ipsec auto --status` text (spec 5.8), without the `000 ` prefix (the shell prints whack
//! lines with their code).

use crate::pluto::engine::Pluto;
use crate::pluto::ikev1::state::Family;

impl Pluto {
    /// The status report, one line per entry (code 000 each).
    pub fn status_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        for i in &self.cfg.interfaces {
            v.push(format!("interface {}/{} {}", i.virt, i.phys, i.addr));
        }
        v.push(format!(
            "%myid = {}",
            self.cfg
                .myid
                .as_ref()
                .map_or("(none)".to_string(), |i| i.to_string())
        ));
        v.push(format!("debug {}", self.cfg.debug.describe()));
        v.push(" ".into());
        for c in self.conns.values() {
            let q = c.quoted();
            v.push(format!(
                "{q}: {}; {}; eroute owner: #{}",
                c.describe(),
                c.routing.text(),
                c.eroute_owner
            ));
            v.push(format!(
                "{q}:   ike_life: {}s; ipsec_life: {}s; rekey_margin: {}s; rekey_fuzz: {}%; keyingtries: {}",
                c.ikelifetime, c.keylife, c.rekeymargin, c.rekeyfuzz, c.keyingtries
            ));
            v.push(format!(
                "{q}:   policy: {}; prio: {},{}; interface: {}; ",
                c.policy_text(),
                c.this.client.len(),
                c.that.client.len(),
                c.interface.phys
            ));
            if c.negotiates() {
                v.push(format!(
                    "{q}:   newest ISAKMP SA: #{}; newest IPsec SA: #{}; ",
                    c.newest_isakmp, c.newest_ipsec
                ));
            }
        }
        v.push(" ".into());
        for st in self.states.values().rev() {
            let c = self.conns.get(&st.conn);
            let name = c.map_or_else(|| format!("\"{}\"", st.conn), |c| c.log_name());
            let mut line = format!(
                "#{}: {name} {} ({})",
                st.serial,
                st.kind.name(),
                st.kind.story()
            );
            match st.event {
                Some((at, ev)) => line.push_str(&format!(
                    "; {} in {}s",
                    ev.name(),
                    at.saturating_sub(self.now).div_ceil(1000)
                )),
                None => line.push_str("; EVENT_NULL"),
            }
            let newest_isakmp = c.is_some_and(|c| c.newest_isakmp == st.serial);
            let newest_ipsec = c.is_some_and(|c| c.newest_ipsec == st.serial);
            if newest_isakmp {
                line.push_str("; newest ISAKMP");
            }
            if newest_ipsec {
                line.push_str("; newest IPSEC");
            }
            if c.is_some_and(|c| c.eroute_owner == st.serial) {
                line.push_str("; eroute owner");
            }
            v.push(line);
            if let Family::P2(p2) = &st.family {
                if !p2.inbound.is_empty() || !p2.outbound.is_empty() {
                    let mut saids = Vec::new();
                    for proto in [
                        crate::said::Proto::Ah,
                        crate::said::Proto::Esp,
                        crate::said::Proto::Comp,
                        crate::said::Proto::Tun,
                    ] {
                        for s in p2.outbound.iter().chain(p2.inbound.iter()) {
                            if s.proto == proto {
                                saids.push(s.pluto());
                            }
                        }
                    }
                    v.push(format!("#{}: {name} {}", st.serial, saids.join(" ")));
                }
            }
        }
        v.push(" ".into());
        v
    }
}
