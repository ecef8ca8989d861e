//! `klipsdebug=` (FreeS/WAN's KLIPS debug switches) for a userspace datapath: instead of a
//! kernel line per packet, the daemon's 100 ms tick reports what changed since the previous
//! tick — packets dropped per reason (`rcv`, `tunnel`), SAs added and deleted (`spi`,
//! `xform`, `pfkey`), eroutes added, changed and deleted (`eroute`, `radij`) — as
//! `klips_debug:` lines at a bounded rate. The lines name SAIDs, transforms, subnets and counts,
//! never key material or packet contents.

use std::collections::BTreeMap;

use crate::klips::drops::DropReason;
use crate::klips::Klips;
use crate::ratelimit::{Limits, Rate, RateLimiter};

/// The `klipsdebug=` switches (FreeS/WAN's `ipsec klipsdebug` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KlipsDebug {
    /// `rcv` (also `esp`, `ah`, `ipcomp`): inbound packets dropped, per reason.
    pub rcv: bool,
    /// `tunnel`, `tunnel-xmit`: outbound packets dropped, per reason.
    pub xmit: bool,
    /// `spi`, `xform`, `pfkey`: SAs added and deleted.
    pub spi: bool,
    /// `eroute`, `radij`: eroutes added, changed and deleted.
    pub eroute: bool,
}

/// Every name `klipsdebug=` accepts.
const NAMES: [&str; 14] = [
    "tunnel",
    "tunnel-xmit",
    "pfkey",
    "xform",
    "eroute",
    "spi",
    "radij",
    "esp",
    "ah",
    "rcv",
    "ipcomp",
    "verbose",
    "all",
    "none",
];

impl KlipsDebug {
    /// Parses `none`, `all` or a space-separated list of FreeS/WAN's switch names.
    pub fn parse(s: &str) -> Result<KlipsDebug, String> {
        let mut d = KlipsDebug::default();
        for w in s.split_whitespace() {
            if !NAMES.contains(&w) {
                return Err(format!(
                    "klipsdebug: unknown switch \"{w}\" (known: {})",
                    NAMES.join(" ")
                ));
            }
            match w {
                "all" => {
                    d = KlipsDebug {
                        rcv: true,
                        xmit: true,
                        spi: true,
                        eroute: true,
                    }
                }
                "none" => d = KlipsDebug::default(),
                "rcv" | "esp" | "ah" | "ipcomp" => d.rcv = true,
                "tunnel" | "tunnel-xmit" => d.xmit = true,
                "spi" | "xform" | "pfkey" => d.spi = true,
                "eroute" | "radij" => d.eroute = true,
                _ => {}
            }
        }
        Ok(d)
    }

    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        self.rcv || self.xmit || self.spi || self.eroute
    }
}

/// Whether a drop reason belongs to the inbound path (`rcv`) rather than the outbound one.
fn inbound(r: DropReason) -> bool {
    use DropReason::*;
    matches!(
        r,
        NotIpsec
            | Truncated
            | PayloadLenNotX4
            | BadAuthLen
            | NoSa
            | SaSourceMismatch
            | Replay
            | AuthFailure
            | EspLenNotX8
            | BadPadding
            | ArrivalCheck
            | GroupMismatch
            | DecompressFailure
            | EncapMismatch
    )
}

/// At most this many trace lines at once, then [`TRACE_RATE`] per second.
const TRACE_BURST: u32 = 50;
/// Trace lines earned per second after the burst.
const TRACE_RATE: u64 = 10;

/// The previous tick's view and the rate limit.
pub struct Tracer {
    flags: KlipsDebug,
    drops: [u64; DropReason::ALL.len()],
    sas: BTreeMap<String, String>,
    eroutes: BTreeMap<String, String>,
    limiter: RateLimiter<()>,
}

impl Tracer {
    /// A tracer for `flags`; the first [`Tracer::tick`] only takes the starting point.
    pub fn new(flags: KlipsDebug, klips: &Klips) -> Tracer {
        let rate = Rate {
            burst: TRACE_BURST,
            interval_ms: 1000 / TRACE_RATE,
        };
        let mut t = Tracer {
            flags,
            drops: [0; DropReason::ALL.len()],
            sas: BTreeMap::new(),
            eroutes: BTreeMap::new(),
            limiter: RateLimiter::new(Limits {
                per_source: rate,
                total: rate,
                max_sources: 1,
                summary_ms: 10_000,
            }),
        };
        let _ = t.changes(klips);
        t
    }

    /// What changed since the last call, as `klips_debug:` lines (rate-limited; a summary line
    /// counts what was left out).
    pub fn tick(&mut self, klips: &Klips, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        for l in self.changes(klips) {
            if self.limiter.allow(now_ms, &()) {
                out.push(l);
            }
        }
        if let Some(s) = self.limiter.summary(now_ms) {
            out.push(format!(
                "klips_debug: {} trace lines suppressed in the last {} s (klipsdebug= rate limit)",
                s.suppressed,
                s.period_ms / 1000
            ));
        }
        out
    }

    fn changes(&mut self, klips: &Klips) -> Vec<String> {
        let mut out = Vec::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            let n = klips.drops.get(*r);
            let new = n.saturating_sub(self.drops[i]);
            self.drops[i] = n;
            let (on, path) = if inbound(*r) {
                (self.flags.rcv, "ipsec_rcv")
            } else {
                (self.flags.xmit, "ipsec_xmit")
            };
            if new != 0 && on {
                out.push(format!(
                    "klips_debug:{path}: {new} packet(s) dropped: {} ({n} since start)",
                    r.text()
                ));
            }
        }
        if self.flags.spi {
            let now: BTreeMap<String, String> = klips
                .sadb()
                .iter()
                .map(|sa| {
                    let dir = match sa.dir {
                        crate::sadb::Dir::In => "in",
                        crate::sadb::Dir::Out => "out",
                    };
                    (
                        sa.said.to_string(),
                        format!("{} dir={dir} src={}", sa.xform.name(), sa.src),
                    )
                })
                .collect();
            diff(&self.sas, &now, "pfkey_sa", &mut out);
            self.sas = now;
        }
        if self.flags.eroute {
            let now: BTreeMap<String, String> = klips
                .eroutes()
                .iter()
                .map(|e| (format!("{} -> {}", e.src, e.dst), e.said.to_string()))
                .collect();
            diff(&self.eroutes, &now, "eroute", &mut out);
            self.eroutes = now;
        }
        out
    }
}

fn diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    what: &str,
    out: &mut Vec<String>,
) {
    for (k, v) in new {
        match old.get(k) {
            None => out.push(format!("klips_debug:{what}: added {k} => {v}")),
            Some(o) if o != v => out.push(format!("klips_debug:{what}: replaced {k} => {v}")),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(format!("klips_debug:{what}: deleted {k}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Subnet;
    use crate::eroute::Eroute;
    use crate::said::Said;

    #[test]
    fn switches() {
        assert_eq!(KlipsDebug::parse("none").unwrap(), KlipsDebug::default());
        let d = KlipsDebug::parse("rcv eroute").unwrap();
        assert!(d.rcv && d.eroute && !d.spi && !d.xmit);
        assert!(KlipsDebug::parse("all").unwrap().spi);
        assert!(KlipsDebug::parse("loud")
            .unwrap_err()
            .contains("unknown switch \"loud\""));
    }

    #[test]
    fn reports_changes_once_and_rate_limits() {
        let k = Klips::new();
        let mut t = Tracer::new(KlipsDebug::parse("all").unwrap(), &k);
        assert!(t.tick(&k, 0).is_empty());
        k.drops.count(DropReason::Replay, true);
        k.drops.count(DropReason::Replay, true);
        k.drops.count(DropReason::NoEroute, false);
        let src: Subnet = "10.0.1.0/24".parse().unwrap();
        let dst: Subnet = "10.0.2.0/24".parse().unwrap();
        let said: Said = "%trap".parse().unwrap();
        k.eroutes_mut().replace(Eroute::new(src, dst, said));
        let lines = t.tick(&k, 100);
        assert_eq!(
            lines,
            vec![
                "klips_debug:ipsec_rcv: 2 packet(s) dropped: replay (2 since start)",
                "klips_debug:ipsec_xmit: 1 packet(s) dropped: no eroute (1 since start)",
                "klips_debug:eroute: added 10.0.1.0/24 -> 10.0.2.0/24 => %trap",
            ]
        );
        assert!(t.tick(&k, 200).is_empty());
        k.eroutes_mut().delete(&src, &dst);
        assert_eq!(
            t.tick(&k, 300),
            vec!["klips_debug:eroute: deleted 10.0.1.0/24 -> 10.0.2.0/24"]
        );
        // A flood of changes: the burst, then a summary of what was left out.
        let mut total = 0;
        for i in 0..200u64 {
            k.drops.count(DropReason::AuthFailure, true);
            total += t
                .tick(&k, 400 + i)
                .iter()
                .filter(|l| !l.contains("suppressed"))
                .count();
        }
        assert!(total <= TRACE_BURST as usize + 1, "{total}");
        let later = t.tick(&k, 20_000);
        assert!(
            later.iter().any(|l| l.contains("trace lines suppressed")),
            "{later:?}"
        );
    }
}
