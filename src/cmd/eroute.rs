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
    let eraf = match o.get("eraf") {
        None => None,
        Some("inet") => Some(crate::addr::Family::V4),
        Some("inet6") => Some(crate::addr::Family::V6),
        Some(af) => return err(format!("--eraf {af} is not supported (inet or inet6)")),
    };
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
    for (what, n) in [("--src", src), ("--dst", dst)] {
        if eraf.is_some_and(|f| f != n.family()) || n.family() != src.family() {
            return err(format!(
                "{what} {n} is not of the eroute's address family ({})",
                eraf.unwrap_or(src.family())
            ));
        }
    }
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
        // A %hold that is replaced sends the packet it was keeping through the new eroute: out
        // of the device whose address is the new SA's (outer) source address, so a gateway with
        // several ipsecN devices uses the right physical interface (shunts: the first device).
        let dev = ctx
            .klips
            .sadb()
            .get(&said)
            .map_or(0, |sa| ctx.klips.dev_for_addr(sa.src));
        ctx.klips
            .release_held(&old, dev, ctx.now, ctx.rng, &mut ctx.emits);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klips::{DevInfo, Emit, Klips};

    fn run_cmd(
        k: &Klips,
        f: fn(&mut Ctx<'_>, &[String]) -> Result<(), CmdError>,
        a: &str,
    ) -> Vec<Emit> {
        let mut rng = rand::thread_rng();
        let mut ctx = Ctx::new(k, 0, &mut rng);
        let args: Vec<String> = a.split_whitespace().map(String::from).collect();
        f(&mut ctx, &args).unwrap();
        ctx.emits
    }

    fn dev(name: &str, addr: &str) -> DevInfo {
        DevInfo {
            name: name.into(),
            phys: format!("{name}-phys"),
            addr: addr.parse().unwrap(),
            addr6: None,
            phys_mtu: 1500,
            mtu: 1400,
        }
    }

    /// A held packet released by `--replace` leaves through the device of the new SA's source.
    #[test]
    fn released_hold_uses_the_sas_device() {
        let k = Klips::new();
        k.set_devs(vec![
            dev("ipsec0", "192.0.2.1"),
            dev("ipsec1", "198.51.100.1"),
        ]);
        run_cmd(
            &k,
            super::super::spi::run,
            "--said tun0x300@203.0.113.2 --ip4 --src 198.51.100.1 --dst 203.0.113.2",
        );
        run_cmd(
            &k,
            run,
            "--add --eraf inet --src 10.0.1.0/24 --dst 10.9.0.0/16 --said %hold",
        );
        let mut pkt = vec![0u8; 28];
        crate::wire::ipv4::Ipv4Repr {
            src: "10.0.1.10".parse().unwrap(),
            dst: "10.9.0.1".parse().unwrap(),
            protocol: 17,
            tos: 0,
            ttl: 63,
            ident: 7,
            dont_frag: false,
            payload_len: 8,
        }
        .emit(&mut pkt);
        let mut out = Vec::new();
        k.outbound(1, &pkt, 0, &mut rand::thread_rng(), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let emits = run_cmd(
            &k,
            run,
            "--replace --eraf inet --src 10.0.1.0/24 --dst 10.9.0.0/16 --said tun0x300@203.0.113.2",
        );
        assert_eq!(emits.len(), 1, "{emits:?}");
        match &emits[0] {
            Emit::Net { dev, pkt } => {
                assert_eq!(*dev, 1);
                assert_eq!(&pkt[12..16], &[198, 51, 100, 1]);
                assert_eq!(&pkt[20 + 12..20 + 16], &[10, 0, 1, 10]);
            }
            e => panic!("{e:?}"),
        }
    }

    fn lines_of(
        k: &Klips,
        f: fn(&mut Ctx<'_>, &[String]) -> Result<(), CmdError>,
        a: &str,
    ) -> Result<String, CmdError> {
        let mut rng = rand::thread_rng();
        let mut ctx = Ctx::new(k, 0, &mut rng);
        let args: Vec<String> = a.split_whitespace().map(String::from).collect();
        f(&mut ctx, &args)?;
        Ok(ctx.out)
    }

    /// IPv6 SAs, groups and eroutes through the commands, listed in the IPv4 formats; family
    /// mismatches are refused with the reason.
    #[test]
    fn ipv6_tables_through_the_commands() {
        let k = Klips::new();
        k.set_devs(vec![dev("ipsec0", "192.0.2.1")]);
        type Cmd = fn(&mut Ctx<'_>, &[String]) -> Result<(), CmdError>;
        let spi: Cmd = super::super::spi::run;
        let grp: Cmd = super::super::spigrp::run;
        let ero: Cmd = run;
        run_cmd(
            &k,
            spi,
            "--said tun0x300@2001:db8::2 --ip6 --src 2001:db8::1",
        );
        run_cmd(
            &k,
            spi,
            "--af inet6 --edst 2001:db8::2 --spi 0x301 --proto esp --src 2001:db8::1 --esp aes128-sha1-96 --enckey 0x000102030405060708090a0b0c0d0e0f --authkey 0x000102030405060708090a0b0c0d0e0f10111213",
        );
        run_cmd(
            &k,
            super::super::spigrp::run,
            "inet6 2001:db8::2 0x300 tun inet6 2001:db8::2 0x301 esp",
        );
        run_cmd(
            &k,
            run,
            "--add --eraf inet6 --src 2001:db8:1::/64 --dst 2001:db8:2::/64 --said tun0x300@2001:db8::2",
        );
        let e = lines_of(&k, run, "").unwrap();
        assert_eq!(
            e,
            "0          2001:db8:1::/64    -> 2001:db8:2::/64    => tun0x300@2001:db8::2\n"
        );
        let s = lines_of(&k, spi, "").unwrap();
        assert!(
            s.contains("tun0x300@2001:db8::2 IPIP: dir=out src=2001:db8::1"),
            "{s}"
        );
        assert!(
            s.contains("esp0x301@2001:db8::2 ESP_AES128_HMAC_SHA1: dir=out src=2001:db8::1"),
            "{s}"
        );
        let mut rng = rand::thread_rng();
        let mut ctx = Ctx::new(&k, 0, &mut rng);
        super::super::look::run(&mut ctx, "host", "");
        assert!(
            ctx.out.contains("2001:db8:1::/64    -> 2001:db8:2::/64    => tun0x300@2001:db8::2 esp0x301@2001:db8::2  (0)"),
            "{}",
            ctx.out
        );
        for (f, a, why) in [
            (
                spi,
                "--said tun0x302@2001:db8::2 --ip4 --src 2001:db8::1",
                "--ip4 does not match",
            ),
            (
                spi,
                "--said tun0x302@2001:db8::2 --ip6 --src 192.0.2.1",
                "different address families",
            ),
            (
                ero,
                "--add --eraf inet --src 2001:db8:1::/64 --dst 2001:db8:2::/64 --said %pass",
                "not of the eroute's address family",
            ),
            (
                ero,
                "--add --src 10.0.1.0/24 --dst 2001:db8:2::/64 --said %pass",
                "not of the eroute's address family",
            ),
            (
                grp,
                "inet 2001:db8::2 0x300 tun",
                "not of address family inet",
            ),
        ] {
            let e = lines_of(&k, f, a).unwrap_err().to_string();
            assert!(e.contains(why), "{a}: {e}");
        }
    }
}
