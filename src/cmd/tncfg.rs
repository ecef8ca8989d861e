//! `ipsec tncfg` (spec 5.6): lists ipsecN devices and their physical interfaces.

use super::args::{err, CmdError};
use super::Ctx;

/// The `/proc/net/ipsec_tncfg` lines: `ipsecN -> phys mtu=M(PMTU) -> physMTU`.
pub fn lines(ctx: &Ctx<'_>) -> Vec<String> {
    ctx.klips
        .devs()
        .iter()
        .map(|d| {
            format!(
                "{} -> {} mtu={}({}) -> {}",
                d.name, d.phys, d.mtu, d.mtu, d.phys_mtu
            )
        })
        .collect()
}

/// Runs `ipsec tncfg ARGS`. Attaching and detaching at run time is done by restarting with a
/// new `interfaces=` line; the options are refused with that advice.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Result<(), CmdError> {
    if let Some(a) = args.first() {
        return match a.as_str() {
            "--attach" | "--detach" | "--clear" => err(format!(
                "{a}: rswan attaches ipsecN devices from interfaces= in ipsec.conf; edit it and run \"ipsec setup restart\""
            )),
            _ => err(format!("unknown option {a}")),
        };
    }
    for l in lines(ctx) {
        ctx.line(l);
    }
    Ok(())
}
