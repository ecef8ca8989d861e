//! The configuration readers: `ipsec.conf` text (parser, `%default`/`also=` expansion, value
//! checks), each conn turned into a Pluto connection and a manual-keying plan, and
//! `ipsec.secrets` text. Bad input must come back as an error (naming file and line), never a
//! panic. Inputs with `include` are skipped: they would read the real file system.

use std::net::Ipv4Addr;

use crate::config::conf::IpsecConf;
use crate::config::secrets::Secrets;
use crate::manual::{self, HostFacts};
use crate::pluto::{Connection, Interface, PlutoConfig};

const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Harness of the `config_files` target.
pub fn config_files(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.to_ascii_lowercase().contains("include") {
        return;
    }
    if let Ok(conf) = IpsecConf::parse_str(text, "fuzz.conf") {
        let cfg = PlutoConfig {
            interfaces: vec![Interface {
                virt: "ipsec0".into(),
                phys: "eth0".into(),
                addr: ME.into(),
            }],
            defaultroute: Some((ME.into(), Ipv4Addr::new(192, 0, 2, 254).into())),
            ..PlutoConfig::default()
        };
        let facts = HostFacts {
            local: vec![ME.into()],
            defaultroute: cfg.defaultroute.and_then(|(a, n)| match (a, n) {
                (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => Some((a, n)),
                _ => None,
            }),
            ipsec: vec![("ipsec0".into(), ME.into())],
        };
        for c in &conf.conns {
            let _ = Connection::from_section(c, &cfg);
            let _ = manual::plan(c, &facts);
        }
    }
    let _ = Secrets::parse_str(text, "fuzz.secrets");
}
