//! Every example configuration shipped in conf/ parses, and its manual connections plan cleanly
//! from the left gateway's point of view.

use std::net::Ipv4Addr;

use rswan::config::conf::IpsecConf;
use rswan::manual::{plan, HostFacts};

#[test]
fn shipped_examples_parse_and_plan() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        let conf = IpsecConf::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for c in &conf.conns {
            if c.params.get("auto") != Some("manual") {
                continue;
            }
            let left: Ipv4Addr = c.params.get("left").unwrap().parse().unwrap();
            let host = HostFacts {
                local: vec![left.into()],
                defaultroute: None,
                ipsec: vec![("ipsec0".into(), left.into())],
            };
            let p = plan(c, &host).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!p.sas.is_empty(), "{}: no SAs", c.name);
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected at least two manual example conns, found {n}"
    );
}

/// The FreeS/WAN policy group files shipped as examples parse without a complaint, and
/// `no_oe.conf` overrides every implicit group conn with `auto=ignore`.
#[test]
fn shipped_policy_groups_and_no_oe() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(format!("{dir}/freeswan-policies")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let (entries, errs) = rswan::pluto::groups::parse_group_file(&text, &path, &|_| None);
        assert!(errs.is_empty(), "{errs:?}");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "private-or-clear" {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].net.to_string(), "0.0.0.0/0");
        } else {
            assert!(entries.is_empty(), "{name}");
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "block",
            "clear",
            "clear-or-private",
            "private",
            "private-or-clear"
        ]
    );
    let conf = IpsecConf::load(format!("{dir}/no_oe.conf")).unwrap();
    assert!(conf.implicit_conns().is_empty());
    for c in &conf.conns {
        assert_eq!(c.params.get("auto"), Some("ignore"), "{}", c.name);
    }
    assert_eq!(conf.conns.len(), 6);
}
