//! `ipsec spigrp` (spec 5.5): list groups, or group SAs inner→outer.

use crate::said::Said;

use super::args::{err, CmdError};
use super::{said_arg, Ctx};

/// Runs `ipsec spigrp ARGS`.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Result<(), CmdError> {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(i) = a.iter().position(|x| *x == "--label") {
        if i + 1 >= a.len() {
            return err("option --label needs a value");
        }
        a.drain(i..i + 2);
    }
    if a.is_empty() {
        for l in ctx.klips.sadb().spigrp_lines() {
            ctx.line(l);
        }
        return Ok(());
    }
    let mut saids: Vec<Said> = Vec::new();
    if a[0] == "--said" {
        for s in &a[1..] {
            saids.push(
                s.parse()
                    .map_err(|e: crate::said::SaidError| CmdError(e.to_string()))?,
            );
        }
    } else {
        if !a.len().is_multiple_of(4) {
            return err("expected groups of AF DST SPI PROTO, or --said SA...");
        }
        for c in a.chunks(4) {
            let dst = said_arg::parse_ip("destination", c[1])?;
            match (c[0], dst.is_ipv6()) {
                ("inet", false) | ("inet6", true) => {}
                ("inet" | "inet6", _) => {
                    return err(format!("{dst} is not of address family {}", c[0]))
                }
                (af, _) => return err(format!("address family \"{af}\" is not supported")),
            }
            let spi = said_arg::parse_spi(c[2])?;
            let proto = said_arg::parse_proto(c[3])?;
            saids.push(Said::new(proto, spi, dst));
        }
    }
    ctx.klips.sadb_mut().group(&saids)?;
    Ok(())
}

impl From<crate::sadb::SaError> for CmdError {
    fn from(e: crate::sadb::SaError) -> CmdError {
        CmdError(e.0)
    }
}
