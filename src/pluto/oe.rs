//! Opportunistic encryption (spec 7; FreeS/WAN 2.x OE, RFC 4322): a `%trap` of an
//! opportunistic conn (a `%opportunisticgroup` instance such as `private-or-clear#0.0.0.0/0`,
//! or a `%opportunistic` conn such as `packetdefault`) caught a packet. The destination's
//! gateway and key are looked up in DNS; without them — or when the negotiation fails — the
//! packet's `%hold` becomes the conn's failure shunt (`%pass` for private-or-clear, `%drop`
//! for private; `failureshunt=none` keeps the `%hold`), kept as a bare shunt until it has been
//! idle for SHUNT_PATIENCE.

use std::net::Ipv4Addr;

use crate::addr::Subnet;
use crate::pluto::engine::Pluto;
use crate::pluto::output::{ErouteOp, Output};
use crate::said::Shunt;

impl Pluto {
    /// The `%trap` of opportunistic conn `key` caught a packet from `src` to `dst` (its
    /// `%hold` is recorded as a bare shunt waiting for `key`).
    pub(crate) fn oe_acquire(
        &mut self,
        key: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        what: &str,
        sport: u16,
        dport: u16,
    ) {
        let name = self.conn_quoted(key);
        self.log(format!(
            "{name}: initiate on demand from {src}:{sport} to {dst}:{dport} {what} (opportunistic)"
        ));
        self.oe_fail(
            key,
            src,
            dst,
            "no DNS resolver: opportunistic encryption cannot work",
        );
    }

    /// Opportunism failed for `src` → `dst` under conn `key`: the packet's `%hold` becomes
    /// the conn's failure shunt (the held packet is released through it: sent in clear by
    /// `%pass`, discarded by `%drop`), a bare shunt until idle for SHUNT_PATIENCE.
    pub(crate) fn oe_fail(&mut self, key: &str, src: Ipv4Addr, dst: Ipv4Addr, why: &str) {
        let shunt = self
            .conns
            .get(key)
            .and_then(|c| c.failureshunt)
            .unwrap_or(Shunt::Hold);
        let name = self.conn_quoted(key);
        self.log(format!(
            "{name}: cannot encrypt {src} -> {dst} opportunistically ({why}); failure shunt {shunt}"
        ));
        let (ours, his) = (Subnet::host(src), Subnet::host(dst));
        if shunt != Shunt::Hold {
            self.out.push_back(Output::Eroute {
                op: ErouteOp::Replace,
                src: ours,
                dst: his,
                said: Self::shunt_said(shunt),
            });
        }
        // No longer waiting for the conn: an ordinary bare shunt (expires when idle).
        self.bare_shunts.retain(|b| (b.ours, b.his) != (ours, his));
        let reason = format!("oe-failed: {why}");
        self.add_bare_shunt(ours, his, shunt, &reason, None);
        if shunt == Shunt::Hold {
            // Counted as activity-driven like the other failure shunts, not as an uncovered
            // %hold (which the next scan deletes).
            if let Some(b) = self
                .bare_shunts
                .iter_mut()
                .find(|b| (b.ours, b.his) == (ours, his))
            {
                b.conn = Some(key.to_string());
            }
        }
    }
}

impl Pluto {
    /// Says loudly (at start and after `--rereadgroups`) when routed policies ask for
    /// opportunistic encryption that cannot work: one line per reason, naming the policies.
    pub fn warn_oe_unusable(&mut self) {
        let pols = self.opportunistic_policies();
        if pols.is_empty() {
            return;
        }
        let list = pols
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut why = Vec::new();
        if !self.oe_resolver_available() {
            why.push("no DNS resolver is available to rswan".to_string());
        }
        if !self
            .secrets
            .entries()
            .iter()
            .any(|e| matches!(e.key, crate::config::secrets::SecretKey::Rsa(_)))
        {
            why.push("no RSA private key of ours in ipsec.secrets".to_string());
        }
        for w in why {
            self.log(format!(
                "WARNING: opportunistic encryption cannot work ({w}): {list} will fall back to their failure shunts"
            ));
        }
    }

    /// Whether DNS lookups for OE can be made.
    pub(crate) fn oe_resolver_available(&self) -> bool {
        false
    }
}
