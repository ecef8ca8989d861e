//! `ipsec auto --status` text (spec 5.8), without the `000 ` prefix (the shell prints whack
//! lines with their code).
//!
//! Order: interfaces, `%myid`, debug, spacer; the algorithms rswan supports (Openswan's
//! `algorithm ESP …` block, spacer, `algorithm IKE …` block, spacer); the bounds in force and
//! how often each was hit (`limits: …`, `limits hit: …`), spacer; conns, spacer; states
//! (each ISAKMP SA followed by the Quick Mode waiting for it), spacer; bare shunts, then a
//! spacer if there are any.

use crate::crypto::{AuthAlg, EncAlg};
use crate::pluto::engine::Pluto;
use crate::pluto::ids::SerialNo;

/// `AES_128-HMAC_SHA2_256` (Openswan's `ESP algorithm newest`; `NONE` without integrity).
fn esp_alg_text(enc: EncAlg, auth: Option<AuthAlg>) -> String {
    let e = match enc {
        EncAlg::TripleDesCbc => "3DES_192".to_string(),
        EncAlg::AesGcm16_128 | EncAlg::AesGcm16_256 => {
            format!("AES_GCM_16_{}", (enc.key_len() - 4) * 8)
        }
        e => format!("AES_{}", e.key_len() * 8),
    };
    format!("{e}-{}", auth.map_or("NONE", auth_text))
}

fn auth_text(a: AuthAlg) -> &'static str {
    match a {
        AuthAlg::HmacMd5_96 => "HMAC_MD5",
        AuthAlg::HmacSha1_96 => "HMAC_SHA1",
        AuthAlg::HmacSha2_256_128 => "HMAC_SHA2_256",
        AuthAlg::HmacSha2_384_192 => "HMAC_SHA2_384",
        AuthAlg::HmacSha2_512_256 => "HMAC_SHA2_512",
    }
}

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
        // What rswan can negotiate, in IKEv1's IDs (Openswan's `algorithm …` block).
        crate::pluto::ikev1::proposal::algorithm_lines(&mut v);
        self.limit_status_lines(&mut v);
        for c in self.conns.values() {
            let q = c.quoted();
            v.push(format!(
                "{q}: {}; {}; eroute owner: #{}",
                c.describe(),
                c.routing.text(),
                SerialNo::or_zero(c.eroute_owner)
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
                    SerialNo::or_zero(c.newest_isakmp),
                    SerialNo::or_zero(c.newest_ipsec)
                ));
                let ike = c
                    .newest_isakmp
                    .and_then(|n| self.sas.ike(n))
                    .and_then(|s| s.exchange.alg_text());
                if let Some(alg) = ike {
                    v.push(format!("{q}:   IKE algorithm newest: {alg}"));
                }
                let ipsec = c
                    .newest_ipsec
                    .and_then(|n| self.sas.child(n))
                    .and_then(|s| s.negotiated.as_ref());
                if let Some(n) = ipsec {
                    let pfs = match (c.pfs, c.pfsgroup) {
                        (false, _) => "<N/A>".to_string(),
                        (true, None) => "<Phase1>".to_string(),
                        (true, Some(g)) => g.name().to_string(),
                    };
                    if let Some(e) = &n.esp {
                        v.push(format!(
                            "{q}:   ESP algorithm newest: {}; pfsgroup={pfs}",
                            esp_alg_text(e.enc, e.integ)
                        ));
                    }
                    if let Some(a) = &n.ah {
                        v.push(format!(
                            "{q}:   AH algorithm newest: {}; pfsgroup={pfs}",
                            auth_text(a.alg)
                        ));
                    }
                }
            }
        }
        v.push(" ".into());
        for serial in self.sas.serials().into_iter().rev() {
            let (Some(key), Some((info, _))) = (self.sas.conn_of(serial), self.state_info(serial))
            else {
                continue;
            };
            let c = self.conns.get(key);
            let name = c.map_or_else(|| format!("\"{key}\""), |c| c.log_name());
            let mut line = format!("#{serial}: {name} {} ({})", info.name, info.story);
            match self.sas.timers.event(serial) {
                Some((at, ev)) => line.push_str(&format!(
                    "; {} in {}s",
                    ev.name(),
                    at.saturating_sub(self.now).div_ceil(1000)
                )),
                None => line.push_str("; EVENT_NULL"),
            }
            if c.is_some_and(|c| c.newest_isakmp == Some(serial)) {
                line.push_str("; newest ISAKMP");
            }
            if c.is_some_and(|c| c.newest_ipsec == Some(serial)) {
                line.push_str("; newest IPSEC");
            }
            if c.is_some_and(|c| c.eroute_owner == Some(serial)) {
                line.push_str("; eroute owner");
            }
            v.push(line);
            if let Some(ch) = self.sas.child(serial) {
                if ch.inbound.is_empty() && ch.outbound.is_empty() {
                    continue;
                }
                let mut saids = Vec::new();
                for proto in [
                    crate::said::Proto::Ah,
                    crate::said::Proto::Esp,
                    crate::said::Proto::Comp,
                    crate::said::Proto::Tun,
                ] {
                    for s in ch.outbound.iter().chain(ch.inbound.iter()) {
                        if s.proto == proto {
                            saids.push(s.pluto());
                        }
                    }
                }
                let used = ch.last_used().map_or(String::new(), |t| {
                    format!("used {}s ago; ", self.now.saturating_sub(t) / 1000)
                });
                v.push(format!("#{serial}: {name} {used}{}", saids.join(" ")));
            } else if let Some(pq) = self.sas.ike(serial).and_then(|s| s.pending_child) {
                // FreeS/WAN's show_pending_phase2: a child SA waiting for this IKE SA.
                let conn = c.map_or_else(|| format!("\"{key}\""), |c| c.quoted());
                v.push(format!(
                    "#{serial}: pending Phase 2 for {conn} replacing #{}",
                    SerialNo::or_zero(pq.replacing)
                ));
            }
        }
        for w in &self.mm_waiting {
            // Not a state yet: a Main Mode that waits for one of ours to the same peer
            // address to get past MI3 (limits.rs).
            let conn = self
                .conns
                .get(&w.key)
                .map_or_else(|| format!("\"{}\"", w.key), |c| c.quoted());
            v.push(format!(
                "{conn}: Main Mode to {} waiting: max_half_open_per_peer of ours in progress",
                w.peer
            ));
        }
        v.push(" ".into());
        for b in &self.bare_shunts {
            // FreeS/WAN's show_shunt_status: ports and protocol are 0 (rswan's holds are
            // host pairs), prio 0 (BOTTOM_PRIO, as for an acquire's %hold).
            v.push(format!(
                "{}:0 -0-> {}:0 => {} 0    {}",
                b.ours, b.his, b.shunt, b.why
            ));
        }
        if !self.bare_shunts.is_empty() {
            v.push(" ".into());
        }
        v
    }
}

impl Pluto {
    /// Read-only view for the administrator's tools (`ipsec status --json`, metrics, Wireshark
    /// key tables): loaded conns, IKE SAs and IPsec SA bundles. IKE encryption keys are
    /// included only with `with_keys` (`ipsec keys --wireshark`).
    pub fn admin_view(&self, with_keys: bool) -> crate::admin::view::PlutoView {
        use crate::admin::view::{ChildSaView, ConnView, IkeKeys, IkeSaView, PlutoView};
        use crate::pluto::version::IkeVersion;
        let secs = |at: u64| at.saturating_sub(self.now).div_ceil(1000);
        let event = |serial: SerialNo| {
            self.sas
                .timers
                .event(serial)
                .map(|(at, ev)| (ev.name().to_string(), secs(at)))
        };
        let mut v = PlutoView {
            limits: self.limit_counters(),
            ..PlutoView::default()
        };
        for (key, c) in &self.conns {
            let up = c
                .newest_ipsec
                .and_then(|n| self.sas.child(n))
                .is_some_and(|s| s.established);
            v.conns.push(ConnView {
                name: key.clone(),
                base: c.name.clone(),
                routing: c.routing.text().to_string(),
                up,
                describe: c.describe(),
                policy: c.policy_text(),
                our_client: c.this.client,
                peer_client: c.that.client,
                newest_isakmp: SerialNo::or_zero(c.newest_isakmp),
                newest_ipsec: SerialNo::or_zero(c.newest_ipsec),
                ike_life: c.ikelifetime,
                ipsec_life: c.keylife,
            });
        }
        for s in self.sas.ikes() {
            let keys = match (s.exchange.v1().and_then(|x| x.keys.as_ref()), with_keys) {
                (Some(k), true) => Some(IkeKeys::V1 {
                    enc_key: k.enc_key.clone(),
                }),
                _ => None,
            };
            v.ike_sas.push(IkeSaView {
                serial: s.serial().get(),
                conn: s.conn().to_string(),
                version: match s.exchange.version() {
                    IkeVersion::V1 => 1,
                    IkeVersion::V2 => 2,
                },
                state: s.exchange.info().name.to_string(),
                established: s.established,
                initiator: s.initiator,
                local: s.local,
                remote: s.remote,
                icookie: s.spi_i(),
                rcookie: s.spi_r,
                algorithm: s.exchange.alg_text(),
                event: event(s.serial()),
                expires_in: if s.established { secs(s.expires_at) } else { 0 },
                keys,
            });
        }
        for c in self.sas.children() {
            let algorithm = c.negotiated.as_ref().and_then(|n| {
                n.esp
                    .as_ref()
                    .map(|e| esp_alg_text(e.enc, e.integ))
                    .or_else(|| n.ah.as_ref().map(|a| format!("AH_{}", auth_text(a.alg))))
            });
            v.child_sas.push(ChildSaView {
                serial: c.serial().get(),
                conn: c.conn().to_string(),
                parent: c.parent().get(),
                state: c.exchange.info().name.to_string(),
                established: c.established,
                algorithm,
                our_client: c.our_client,
                peer_client: c.peer_client,
                inbound: c.inbound.clone(),
                outbound: c.outbound.clone(),
                event: event(c.serial()),
                expires_in: if c.established { secs(c.expires_at) } else { 0 },
                used_ago: c.last_used().map(|t| self.now.saturating_sub(t) / 1000),
            });
        }
        v
    }
}
