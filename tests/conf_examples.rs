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
