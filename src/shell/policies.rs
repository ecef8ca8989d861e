//! Reading the policy group files (spec 4): `policies/NAME` in the `ipsec.d` directory beside
//! the configuration file (`/etc/ipsec.d/policies` for `/etc/ipsec.conf`; for a gateway
//! started with `--config DIR/gw.conf`, `DIR/ipsec.d/policies`), or the directory named by
//! `policygroupsdir=` in `config setup` (Pluto's `--policygroupsdir`, an rswan keyword).
//! Host names are resolved here, with the system resolver, before Pluto sees the entries.

use std::path::{Path, PathBuf};

use crate::config::conf::{system_resolve_v4, ConfError, IpsecConf};
use crate::pluto::groups::{parse_group_file, PolicyGroups};

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
        let (entries, mut es) = parse_group_file(&text, &path, &system_resolve_v4);
        errs.append(&mut es);
        groups.groups.insert(name, entries);
    }
    (groups, errs)
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
        std::fs::write(d.join("private"), "10.0.0.0/8\n# c\n192.0.2.300\n").unwrap();
        std::fs::write(d.join("clear"), "").unwrap();
        std::fs::write(d.join(".hidden"), "10.0.0.0/8\n").unwrap();
        let (g, errs) = read_policy_groups(&d);
        assert_eq!(g.entries("private").len(), 1);
        assert!(g.entries("clear").is_empty());
        assert!(!g.groups.contains_key(".hidden"));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("private:3"), "{}", errs[0]);
        let (g, errs) = read_policy_groups(&d.join("missing"));
        assert!(g.groups.is_empty() && errs.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }
}
