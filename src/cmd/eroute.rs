//! `ipsec eroute` (spec 5.3): list, `--add`, `--replace`, `--del`, `--clear`.

use crate::addr::Subnet;
use crate::eroute::Eroute;

use super::args::{err, CmdError, Opts};
use super::{said_arg, Ctx};

fn subnet(what: &str, s: &str) -> Result<Subnet, CmdError> {
    s.parse().map_err(|e| CmdError(format!("{what}: {e}")))
}

/// Runs `ipsec eroute ARGS`.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Result<(), CmdError> {
    let mut vals = vec![
        "eraf",
        "src",
        "dst",
        "label",
        "transport-proto",
        "src-port",
        "dst-port",
    ];
    vals.extend(said_arg::VALUE_OPTS);
    let o = Opts::parse(args, &vals)?;
    let mut known = vec!["add", "replace", "del", "clear"];
    known.extend(&vals);
    o.only(&known)?;
    if let Some(x) = o.operands.first() {
        return err(format!("unexpected argument \"{x}\""));
    }
    if let Some(af) = o.get("eraf") {
        if af != "inet" {
            return err(format!("--eraf {af} is not supported (only inet)"));
        }
    }
    for unsupported in ["transport-proto", "src-port", "dst-port"] {
        if o.has(unsupported) {
            return err(format!("--{unsupported} is not supported yet"));
        }
    }
    let ops = ["add", "replace", "del", "clear"]
        .iter()
        .filter(|n| o.has(n))
        .count();
    if ops > 1 {
        return err("only one of --add, --replace, --del, --clear");
    }
    if o.has("clear") {
        ctx.klips.eroutes_mut().clear();
        return Ok(());
    }
    if ops == 0 {
        for e in ctx.klips.eroutes().sorted() {
            ctx.line(e.proc_line());
        }
        return Ok(());
    }
    let src = subnet("--src", o.need("src")?)?;
    let dst = subnet("--dst", o.need("dst")?)?;
    if o.has("del") {
        return match ctx.klips.eroutes_mut().delete(&src, &dst) {
            Some(_) => Ok(()),
            None => err(format!("no eroute {src} -> {dst}")),
        };
    }
    let said = said_arg::from_opts(&o)?
        .ok_or_else(|| CmdError("missing --said (or --edst, --spi and --proto)".into()))?;
    let e = Eroute::new(src, dst, said);
    let old = if o.has("add") {
        ctx.klips.eroutes_mut().add(e)?;
        None
    } else {
        ctx.klips.eroutes_mut().replace(e).1
    };
    if let Some(old) = old {
        // A %hold that is replaced sends the packet it was keeping through the new eroute.
        let dev = 0;
        ctx.klips
            .release_held(&old, dev, ctx.now, ctx.rng, &mut ctx.emits);
    }
    Ok(())
}
