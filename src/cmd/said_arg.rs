//! The SA designation shared by `ipsec spi`, `ipsec eroute` and `ipsec spigrp`:
//! `--said SAID` or `--af inet --edst IP --spi 0xN --proto P`.

use std::net::IpAddr;

use crate::said::{Proto, Said};

use super::args::{err, CmdError, Opts};

/// Parses an SPI written `0x…` (hex) or decimal.
pub fn parse_spi(s: &str) -> Result<u32, CmdError> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| CmdError(format!("\"{s}\" is not an SPI")))
}

/// Parses a protocol name (`ah`, `esp`, `tun`, `comp`, `int`) or number.
pub fn parse_proto(s: &str) -> Result<Proto, CmdError> {
    match s {
        "ah" => Ok(Proto::Ah),
        "esp" => Ok(Proto::Esp),
        "tun" | "ipip" => Ok(Proto::Tun),
        "comp" => Ok(Proto::Comp),
        "int" => Ok(Proto::Int),
        _ => s
            .parse::<u8>()
            .ok()
            .and_then(Proto::from_number)
            .ok_or_else(|| CmdError(format!("unknown protocol \"{s}\""))),
    }
}

/// Parses an IPv4 or IPv6 address argument.
pub fn parse_ip(what: &str, s: &str) -> Result<IpAddr, CmdError> {
    s.parse()
        .map_err(|_| CmdError(format!("{what} \"{s}\" is not an IP address")))
}

/// The SA named by `--said` or by `--af/--edst/--spi/--proto`, if either form is present.
pub fn from_opts(o: &Opts) -> Result<Option<Said>, CmdError> {
    if let Some(s) = o.get("said") {
        return s
            .parse::<Said>()
            .map(Some)
            .map_err(|e| CmdError(e.to_string()));
    }
    if !(o.has("edst") || o.has("spi") || o.has("proto")) {
        return Ok(None);
    }
    let dst = parse_ip("--edst", o.need("edst")?)?;
    match (o.get("af"), dst) {
        (None | Some("inet"), IpAddr::V4(_)) | (None | Some("inet6"), IpAddr::V6(_)) => {}
        (Some(af @ ("inet" | "inet6")), _) => {
            return err(format!("--edst {dst} is not of address family {af}"));
        }
        (Some(af), _) => {
            return err(format!(
                "address family \"{af}\" is not supported (inet or inet6)"
            ));
        }
    }
    let spi = parse_spi(o.need("spi")?)?;
    let proto = parse_proto(o.need("proto")?)?;
    Ok(Some(Said::new(proto, spi, dst)))
}

/// The options this form uses (for `Opts::parse` value lists).
pub const VALUE_OPTS: [&str; 5] = ["said", "af", "edst", "spi", "proto"];
