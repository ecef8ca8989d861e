//! `ipsec look` (spec 5.7): a brief status — eroutes with their SA groups, tncfg, SAs, routes
//! through ipsecN — plus rswan's drop counters by reason.

use crate::said::Said;

use super::{tncfg, Ctx};

/// Runs `ipsec look` given the host name, date line and the routing table text (which the shell
/// gathers; the command itself does no I/O).
pub fn run(ctx: &mut Ctx<'_>, header: &str, routes: &str) {
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
    let mut spis: Vec<String> = ctx
        .klips
        .sadb()
        .sorted()
        .iter()
        .map(|s| s.proc_line(ctx.now))
        .collect();
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
    ctx.out.push_str(routes);
}

fn group_line(groups: &[String], said: &Said) -> Option<String> {
    let s = said.to_string();
    groups
        .iter()
        .find(|g| g.split(' ').next() == Some(s.as_str()))
        .cloned()
}
