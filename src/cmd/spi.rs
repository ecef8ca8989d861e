//! `ipsec spi` (spec 5.4): list SAs, add one (`--esp`, `--ah`, `--comp`, `--ip4`), delete a
//! group (`--del`), or `--clear`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::addr::Subnet;
use crate::config::ttodata::ttodata;
use crate::crypto::{parse_esp_transform, AuthAlg};
use crate::klips::Klips;
use crate::sadb::lifetime::Lifetimes;
use crate::sadb::replay::DEFAULT_WINDOW;
use crate::sadb::{Dir, KeyBytes, Sa, SaSpec, UdpEncap, XformSpec};
use crate::said::{Proto, Said};

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
        for l in lines(ctx.klips, ctx.now) {
            ctx.line(l);
        }
        return Ok(());
    };
    if o.has("del") {
        ctx.klips.sadb_mut().delete(&said)?;
        return Ok(());
    }
    let kinds = ["esp", "ah", "comp", "ip4", "ip6"]
        .iter()
        .filter(|n| o.has(n))
        .count();
    if kinds != 1 {
        return err("give exactly one of --esp, --ah, --comp, --ip4, --ip6");
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
        // --ip4 / --ip6 name the outer header's family (KLIPS' IPIP encapsulations).
        let (flag, v6) = if o.has("ip6") {
            ("--ip6", true)
        } else {
            ("--ip4", false)
        };
        if said.proto != Proto::Tun {
            return err(format!("{flag} needs a tun SA, not {said}"));
        }
        if said.dst.is_ipv6() != v6 {
            return err(format!(
                "{flag} does not match the SA's destination {}",
                said.dst
            ));
        }
        XformSpec::Ipip
    };
    let src = said_arg::parse_ip("--src", o.need("src")?)?;
    if src.is_ipv6() != said.dst.is_ipv6() {
        return err(format!(
            "--src {src} and the SA's destination {} are of different address families",
            said.dst
        ));
    }
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

/// KLIPS' SA reference numbers (`ref=`): each live SA gets the next number the first time it is
/// listed and keeps it while it exists (KLIPS numbered SAs in its SAref table when they were
/// added; a number is only meaningful while its SA lives).
struct RefTable {
    next: u32,
    refs: std::collections::BTreeMap<(Said, usize), u32>,
}

static REFS: Mutex<RefTable> = Mutex::new(RefTable {
    next: 1,
    refs: std::collections::BTreeMap::new(),
});

/// The `/proc/net/ipsec_spi` lines (spec 5.4) with KLIPS' trailing `refcount=N ref=N`:
/// `refcount` counts the references to the SA — the SADB's own, the previous SA of its group
/// (spigrp link) and each eroute that targets it; `ref` is its reference number.
pub fn lines(klips: &Klips, now: u64) -> Vec<String> {
    let sadb = klips.sadb();
    let sas = sadb.sorted();
    let mut targets: HashMap<Said, usize> = HashMap::new();
    for e in klips.eroutes().iter() {
        *targets.entry(e.said).or_default() += 1;
    }
    let mut t = REFS.lock().unwrap_or_else(|p| p.into_inner());
    let live: std::collections::HashSet<(Said, usize)> = sas
        .iter()
        .map(|sa| (sa.said, std::sync::Arc::as_ptr(sa) as usize))
        .collect();
    t.refs.retain(|k, _| live.contains(k));
    let mut out = Vec::with_capacity(sas.len());
    for sa in &sas {
        let key = (sa.said, std::sync::Arc::as_ptr(sa) as usize);
        let next = t.next;
        let r = *t.refs.entry(key).or_insert(next);
        if r == next {
            t.next = t.next.wrapping_add(1).max(1);
        }
        let linked = sadb
            .group_of(&sa.said)
            .is_some_and(|g| g.len() > 1 && g.first().is_some_and(|h| h.said != sa.said));
        let refcount = 1 + usize::from(linked) + targets.get(&sa.said).copied().unwrap_or(0);
        let mut l = sa.proc_line(now);
        // `expired` stays the last word, after KLIPS' fields.
        let expired = l.ends_with(" expired");
        if expired {
            l.truncate(l.len() - " expired".len());
        }
        l.push_str(&format!(" refcount={refcount} ref={r}"));
        if expired {
            l.push_str(" expired");
        }
        out.push(l);
    }
    out
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
    ctx.installed.push(spec.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(k: &Klips, f: fn(&mut Ctx<'_>, &[String]) -> Result<(), CmdError>, a: &str) -> String {
        let mut rng = rand::thread_rng();
        let mut ctx = Ctx::new(k, 0, &mut rng);
        let args: Vec<String> = a.split_whitespace().map(String::from).collect();
        f(&mut ctx, &args).unwrap();
        ctx.out
    }

    /// `refcount=` counts the SADB, the group link and eroutes; `ref=` is stable while the SA
    /// lives and never reused for another SA.
    #[test]
    fn refcount_and_ref_fields() {
        let k = Klips::new();
        cmd(
            &k,
            run,
            "--said tun0x300@192.0.2.2 --ip4 --src 192.0.2.1 --dst 192.0.2.2",
        );
        cmd(
            &k,
            run,
            "--said esp0x300@192.0.2.2 --src 192.0.2.1 --esp aes128-sha1-96 --enckey 0x000102030405060708090a0b0c0d0e0f --authkey 0x000102030405060708090a0b0c0d0e0f10111213",
        );
        cmd(
            &k,
            super::super::spigrp::run,
            "--said tun0x300@192.0.2.2 esp0x300@192.0.2.2",
        );
        cmd(
            &k,
            super::super::eroute::run,
            "--add --eraf inet --src 10.0.1.0/24 --dst 10.0.2.0/24 --said tun0x300@192.0.2.2",
        );
        let first = cmd(&k, run, "");
        let field = |text: &str, said: &str, name: &str| -> String {
            let l = text.lines().find(|l| l.starts_with(said)).unwrap();
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {l}"))
                .to_string()
        };
        // tun: the SADB and the eroute; esp: the SADB and the link from tun.
        assert_eq!(field(&first, "tun0x300", "refcount"), "2");
        assert_eq!(field(&first, "esp0x300", "refcount"), "2");
        assert!(first.lines().all(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w[w.len() - 2].starts_with("refcount=") && w[w.len() - 1].starts_with("ref=")
        }));
        let tun_ref = field(&first, "tun0x300", "ref");
        let esp_ref = field(&first, "esp0x300", "ref");
        assert_ne!(tun_ref, esp_ref);
        let again = cmd(&k, run, "");
        assert_eq!(field(&again, "tun0x300", "ref"), tun_ref);
        assert_eq!(field(&again, "esp0x300", "ref"), esp_ref);
        // Key material never appears.
        assert!(!again.contains("0001020304050607"), "{again}");
    }
}
