//! `ipsec spi` (spec 5.4): list SAs, add one (`--esp`, `--ah`, `--comp`, `--ip4`), delete a
//! group (`--del`), or `--clear`.

use crate::addr::Subnet;
use crate::config::ttodata::ttodata;
use crate::crypto::{parse_esp_transform, AuthAlg};
use crate::sadb::lifetime::Lifetimes;
use crate::sadb::replay::DEFAULT_WINDOW;
use crate::sadb::{Dir, KeyBytes, Sa, SaSpec, UdpEncap, XformSpec};
use crate::said::Proto;

use super::args::{err, CmdError, Opts};
use super::{said_arg, Ctx};

const VALUES: [&str; 13] = [
    "src",
    "dst",
    "esp",
    "ah",
    "comp",
    "enckey",
    "authkey",
    "replay_window",
    "life",
    "udpencap",
    "policy",
    "label",
    "iv",
];

fn key(o: &Opts, name: &str) -> Result<KeyBytes, CmdError> {
    let s = o.need(name)?;
    // Never echo key text in an error.
    ttodata(s)
        .map(KeyBytes)
        .map_err(|e| CmdError(format!("--{name}: {}", e.message())))
}

/// Parses `--udpencap SPORT:DPORT` (rswan's extension marking an ESP SA as ESP-in-UDP).
fn udpencap(s: &str) -> Result<UdpEncap, CmdError> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let p = |x: &str| {
        x.parse::<u16>()
            .map_err(|_| CmdError(format!("--udpencap \"{s}\" is not SPORT:DPORT")))
    };
    Ok(UdpEncap {
        sport: p(a)?,
        dport: p(b)?,
    })
}

/// Parses `--policy SRCNET->DSTNET` (the inbound tunnel-exit check's networks).
fn policy(s: &str) -> Result<(Subnet, Subnet), CmdError> {
    let (a, b) = s
        .split_once("->")
        .ok_or_else(|| CmdError(format!("--policy \"{s}\" is not SRCNET->DSTNET")))?;
    let n = |x: &str| {
        x.parse::<Subnet>()
            .map_err(|e| CmdError(format!("--policy: {e}")))
    };
    Ok((n(a)?, n(b)?))
}

/// Runs `ipsec spi ARGS`.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Result<(), CmdError> {
    let mut vals: Vec<&str> = VALUES.to_vec();
    vals.extend(said_arg::VALUE_OPTS);
    let o = Opts::parse(args, &vals)?;
    let mut known = vals.clone();
    known.extend(["del", "clear", "ip4", "ip6"]);
    o.only(&known)?;
    if let Some(x) = o.operands.first() {
        return err(format!("unexpected argument \"{x}\""));
    }
    if o.has("clear") {
        ctx.klips.sadb_mut().clear();
        return Ok(());
    }
    let Some(said) = said_arg::from_opts(&o)? else {
        if o.names().next().is_some() {
            return err("no SA given: use --said SAID or --af inet --edst IP --spi 0xN --proto P");
        }
        for sa in ctx.klips.sadb().sorted() {
            ctx.line(sa.proc_line(ctx.now));
        }
        return Ok(());
    };
    if o.has("del") {
        ctx.klips.sadb_mut().delete(&said)?;
        return Ok(());
    }
    if o.has("ip6") {
        return err("--ip6 is not supported (IPv4 only)");
    }
    let kinds = ["esp", "ah", "comp", "ip4"]
        .iter()
        .filter(|n| o.has(n))
        .count();
    if kinds != 1 {
        return err("give exactly one of --esp, --ah, --comp, --ip4");
    }
    let xform = if let Some(alg) = o.get("esp") {
        if said.proto != Proto::Esp {
            return err(format!("--esp needs an esp SA, not {said}"));
        }
        let (enc, auth) = parse_esp_transform(alg).map_err(|e| CmdError(e.to_string()))?;
        let authkey = match auth {
            Some(_) => key(&o, "authkey")?,
            None if o.has("authkey") => return err(format!("--esp {alg} takes no --authkey")),
            None => KeyBytes::default(),
        };
        XformSpec::Esp {
            enc,
            enckey: key(&o, "enckey")?,
            auth,
            authkey,
        }
    } else if let Some(alg) = o.get("ah") {
        if said.proto != Proto::Ah {
            return err(format!("--ah needs an ah SA, not {said}"));
        }
        XformSpec::Ah {
            auth: alg
                .parse::<AuthAlg>()
                .map_err(|e| CmdError(e.to_string()))?,
            authkey: key(&o, "authkey")?,
        }
    } else if let Some(alg) = o.get("comp") {
        if alg != "deflate" {
            return err(format!("--comp \"{alg}\": only deflate is supported"));
        }
        if said.proto != Proto::Comp {
            return err(format!("--comp needs a comp SA, not {said}"));
        }
        XformSpec::Deflate
    } else {
        if said.proto != Proto::Tun {
            return err(format!("--ip4 needs a tun SA, not {said}"));
        }
        XformSpec::Ipip
    };
    let src = said_arg::parse_ip("--src", o.need("src")?)?;
    if let Some(d) = o.get("dst") {
        if said_arg::parse_ip("--dst", d)? != said.dst {
            return err(format!(
                "--dst {d} differs from the SA's destination {}",
                said.dst
            ));
        }
    }
    let replay_window = match o.get("replay_window") {
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| *w <= crate::sadb::replay::MAX_WINDOW)
            .ok_or_else(|| {
                CmdError(format!(
                    "--replay_window \"{w}\" is not 0..{}",
                    crate::sadb::replay::MAX_WINDOW
                ))
            })?,
        None => DEFAULT_WINDOW,
    };
    let mut life = Lifetimes::default();
    if let Some(l) = o.get("life") {
        life.parse_arg(l)
            .map_err(|e| CmdError(format!("--life: {e}")))?;
    }
    let encap = o.get("udpencap").map(udpencap).transpose()?;
    if encap.is_some() && said.proto != Proto::Esp {
        return err("--udpencap applies to esp SAs only");
    }
    let spec = SaSpec {
        said,
        src,
        dir: None,
        xform,
        replay_window,
        life,
        encap,
        policy: o.get("policy").map(policy).transpose()?,
    };
    add(ctx, &spec)
}

/// Builds and adds an SA; inbound when its destination is one of our addresses.
pub fn add(ctx: &mut Ctx<'_>, spec: &SaSpec) -> Result<(), CmdError> {
    let dir = spec.dir.unwrap_or(if ctx.klips.is_local(spec.said.dst) {
        Dir::In
    } else {
        Dir::Out
    });
    let sa = Sa::new(spec, dir, ctx.now)?;
    ctx.klips.sadb_mut().add(sa)?;
    Ok(())
}
