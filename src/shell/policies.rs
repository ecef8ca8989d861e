//! Reading the policy group files (spec 4): `policies/NAME` in the `ipsec.d` directory beside
//! the configuration file (`/etc/ipsec.d/policies` for `/etc/ipsec.conf`; for a gateway
//! started with `--config DIR/gw.conf`, `DIR/ipsec.d/policies`), or the directory named by
//! `policygroupsdir=` in `config setup` (Pluto's `--policygroupsdir`, an rswan keyword).
//! Host names listed in `/etc/hosts` are taken from it (as the system resolver FreeS/WAN used
//! would); the others are left to Pluto, which resolves them through the DNS resolver thread
//! (the daemon never blocks on DNS).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::config::conf::{ConfError, IpsecConf};
use crate::pluto::groups::{parse_group_entries, GroupEntry, PolicyGroups};

/// Longest group file read (bytes); a longer one is refused with an error.
const MAX_FILE: u64 = 4 << 20;

/// The policy groups directory of the configuration `conf` read from `config`.
pub fn policy_groups_dir(conf: &IpsecConf, config: &Path) -> PathBuf {
    if let Some(d) = conf.setup.get("policygroupsdir").filter(|d| !d.is_empty()) {
        let d = Path::new(d);
        return if d.is_absolute() {
            d.to_path_buf()
        } else {
            config.parent().unwrap_or(Path::new("/")).join(d)
        };
    }
    config
        .parent()
        .unwrap_or(Path::new("/"))
        .join("ipsec.d")
        .join("policies")
}

/// Reads every group file of `dir` (regular files whose names are conn names; a missing
/// directory means empty groups). Errors name file:line; unreadable files are reported and
/// count as empty.
pub fn read_policy_groups(dir: &Path) -> (PolicyGroups, Vec<ConfError>) {
    let mut groups = PolicyGroups {
        dir: Some(dir.to_path_buf()),
        ..PolicyGroups::default()
    };
    let mut errs = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (groups, errs);
    };
    let mut files: Vec<_> = rd.flatten().collect();
    files.sort_by_key(|e| e.file_name());
    let mut etc_hosts: Option<HashMap<String, Ipv4Addr>> = None;
    for e in files {
        let name = e.file_name().to_string_lossy().into_owned();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        let path = e.path();
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if !valid || !md.is_file() {
            continue;
        }
        if md.len() > MAX_FILE {
            errs.push(ConfError::new(
                &path,
                0,
                format!("group file larger than {MAX_FILE} bytes: ignored"),
            ));
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(err) => {
                errs.push(ConfError::new(&path, 0, format!("cannot read: {err}")));
                continue;
            }
        };
        let (mut entries, mut hosts, mut es) = parse_group_entries(&text, &path);
        errs.append(&mut es);
        if !hosts.is_empty() {
            let known = etc_hosts.get_or_insert_with(|| {
                hosts_v4(&std::fs::read_to_string("/etc/hosts").unwrap_or_default())
            });
            hosts.retain(|h| match known.get(&h.name.to_ascii_lowercase()) {
                Some(&a) => {
                    entries.push(GroupEntry {
                        net: crate::addr::Subnet::host(a),
                        file: h.file.clone(),
                        line: h.line,
                    });
                    false
                }
                None => true,
            });
        }
        if !hosts.is_empty() {
            groups.hosts.insert(name.clone(), hosts);
        }
        groups.groups.insert(name, entries);
    }
    (groups, errs)
}

/// The IPv4 addresses of the names in an `/etc/hosts` text (`ADDRESS NAME [ALIAS…]`, `#`
/// comments; the first line naming a name wins, as in the C library), by lower-case name.
fn hosts_v4(text: &str) -> HashMap<String, Ipv4Addr> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(addr)) = words.next().map(str::parse::<Ipv4Addr>) else {
            continue;
        };
        for name in words {
            out.entry(name.to_ascii_lowercase()).or_insert(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_beside_the_config_or_from_setup() {
        let c = IpsecConf::parse_str("version 2\nconfig setup\n", "/tmp/x/gw.conf").unwrap();
        assert_eq!(
            policy_groups_dir(&c, Path::new("/tmp/x/gw.conf")),
            PathBuf::from("/tmp/x/ipsec.d/policies")
        );
        let c = IpsecConf::parse_str(
            "version 2\nconfig setup\n\tpolicygroupsdir=gA.policies\n",
            "/tmp/x/gw.conf",
        )
        .unwrap();
        assert_eq!(
            policy_groups_dir(&c, Path::new("/tmp/x/gw.conf")),
            PathBuf::from("/tmp/x/gA.policies")
        );
    }

    #[test]
    fn reads_group_files() {
        let d = std::env::temp_dir().join(format!("rswan-policies-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("private"),
            "10.0.0.0/8\n# c\n192.0.2.300\ngw.example.net\n",
        )
        .unwrap();
        std::fs::write(d.join("clear"), "").unwrap();
        std::fs::write(d.join(".hidden"), "10.0.0.0/8\n").unwrap();
        let (g, errs) = read_policy_groups(&d);
        assert_eq!(g.entries("private").len(), 1);
        // Host names are left to Pluto's resolver, not looked up here.
        assert_eq!(g.hosts["private"][0].name, "gw.example.net");
        assert_eq!(g.hosts["private"][0].line, 4);
        assert!(g.entries("clear").is_empty());
        assert!(!g.groups.contains_key(".hidden"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("private:3"), "{}", errs[0]);
        let (g, errs) = read_policy_groups(&d.join("missing"));
        assert!(g.groups.is_empty() && errs.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn etc_hosts_names() {
        let h = hosts_v4(
            "127.0.0.1 localhost\n# 10.9.9.9 commented\n192.0.2.7 GW.example.net gw # alias\n\
             2001:db8::1 gw6\n192.0.2.8 gw\nnonsense\n",
        );
        assert_eq!(h.get("gw.example.net"), Some(&Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(
            h.get("gw"),
            Some(&Ipv4Addr::new(192, 0, 2, 7)),
            "first line wins"
        );
        assert_eq!(h.get("localhost"), Some(&Ipv4Addr::LOCALHOST));
        assert!(!h.contains_key("commented") && !h.contains_key("gw6"));
    }
}
