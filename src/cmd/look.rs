//! `ipsec look` (spec 5.7): a brief status — eroutes with their SA groups, tncfg, SAs, routes
//! through ipsecN — plus rswan's drop counters by reason and, when any is non-zero, the
//! datapath's bound and queue counters (`%trap` holds evicted, acquires lost, SA events
//! retried or lost).

use crate::said::Said;

use super::{tncfg, Ctx};

/// Runs `ipsec look` given the host name, date line and the routing table text (which the shell
/// gathers; the command itself does no I/O).
pub fn run(ctx: &mut Ctx<'_>, header: &str, routes: &str) {
    run_with(ctx, header, routes, None)
}

/// [`run`], with the keying daemon's bound counters (listed when any is non-zero).
pub fn run_with(
    ctx: &mut Ctx<'_>,
    header: &str,
    routes: &str,
    pluto: Option<&crate::pluto::LimitCounters>,
) {
    ctx.line(header);
    let groups = ctx.klips.sadb().spigrp_lines();
    let eroutes = ctx.klips.eroutes().sorted();
    for e in eroutes {
        let target = group_line(&groups, &e.said).unwrap_or_else(|| e.said.to_string());
        let l = format!(
            "{:<18} -> {:<18} => {} ({})",
            e.src.to_string(),
            e.dst.to_string(),
            target,
            e.packets()
        );
        ctx.line(l);
    }
    for l in tncfg::lines(ctx) {
        ctx.line(l.replace(" -> ", "->"));
    }
    let mut spis = super::spi::lines(ctx.klips, ctx.now);
    spis.sort();
    for l in spis {
        ctx.line(l);
    }
    let drops = ctx.klips.drops.nonzero();
    let (rx, tx) = ctx.klips.drops.totals();
    ctx.line(format!("drops: rx {rx} tx {tx}"));
    for (r, n) in drops {
        ctx.line(format!("  {:<32} {n}", r.text()));
    }
    // Bounds hit and full queues (only when something happened).
    let notices = ctx.klips.notices.nonzero();
    if !notices.is_empty() {
        let holds = ctx.klips.eroutes().trap_holds();
        let max = ctx.klips.max_trap_holds();
        ctx.line(format!("events: %trap holds {holds} of {max}"));
        for (n, c) in notices {
            ctx.line(format!("  {:<32} {c}", n.text()));
        }
    }
    let by_packet = ctx
        .klips
        .sent_by_packet
        .load(std::sync::atomic::Ordering::Relaxed);
    if by_packet != 0 {
        ctx.line(format!("packets sent by packet socket: {by_packet}"));
    }
    if let Some(p) = pluto {
        let hit = pluto_limits(p);
        if !hit.is_empty() {
            ctx.line("pluto limits hit:");
            for (what, n) in hit {
                ctx.line(format!("  {what:<32} {n}"));
            }
        }
    }
    ctx.out.push_str(routes);
}

/// The non-zero bound counters of the keying daemon, named for `ipsec look`.
fn pluto_limits(p: &crate::pluto::LimitCounters) -> Vec<(&'static str, u64)> {
    [
        ("half-open evicted", p.half_open_evicted),
        ("half-open refused", p.half_open_refused),
        ("half-open late messages", p.half_open_late),
        ("state table full", p.states_refused),
        ("ISAKMP SAs over peer limit", p.isakmp_sas_deleted),
        ("Quick Modes at IPsec SA limit", p.ipsec_sas_refused),
        ("Quick Modes at in-progress limit", p.quick_modes_refused),
        ("log lines suppressed", p.log_lines_suppressed),
        ("log lines dropped", p.log_lines_dropped),
    ]
    .into_iter()
    .filter(|(_, n)| *n != 0)
    .collect()
}

fn group_line(groups: &[String], said: &Said) -> Option<String> {
    let s = said.to_string();
    groups
        .iter()
        .find(|g| g.split(' ').next() == Some(s.as_str()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klips::{Klips, Notice};

    fn look(k: &Klips) -> String {
        let mut rng = rand::thread_rng();
        let mut ctx = super::super::Ctx::new(k, 0, &mut rng);
        run(&mut ctx, "host Mon Jan  5 12:00:00 2004", "");
        ctx.out
    }

    #[test]
    fn pluto_limits_are_listed_only_when_hit() {
        let k = Klips::new();
        let mut rng = rand::thread_rng();
        let quiet = crate::pluto::LimitCounters::default();
        let mut ctx = super::super::Ctx::new(&k, 0, &mut rng);
        run_with(&mut ctx, "h", "", Some(&quiet));
        assert!(!ctx.out.contains("pluto limits"), "{}", ctx.out);
        let hit = crate::pluto::LimitCounters {
            half_open_evicted: 16,
            log_lines_suppressed: 4990,
            ..quiet
        };
        let mut ctx = super::super::Ctx::new(&k, 0, &mut rng);
        run_with(&mut ctx, "h", "", Some(&hit));
        assert!(
            ctx.out.contains("pluto limits hit:\n  half-open evicted                16\n  log lines suppressed             4990\n"),
            "{}",
            ctx.out
        );
    }

    #[test]
    fn events_are_listed_only_when_counted() {
        let k = Klips::new();
        assert!(!look(&k).contains("events:"), "{}", look(&k));
        k.notices.count(Notice::HoldEvicted);
        k.notices.count(Notice::HoldEvicted);
        k.notices.count(Notice::SaEventMerged);
        let text = look(&k);
        assert!(
            text.contains(
                "drops: rx 0 tx 0\nevents: %trap holds 0 of 1024\n  %trap holds evicted              2\n  SA events merged (keying busy)   1\n"
            ),
            "{text}"
        );
    }
}
