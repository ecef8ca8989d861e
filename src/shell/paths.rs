//! Where a gateway's files are: `--config`/`IPSEC_CONF`, `--secrets`/`IPSEC_SECRETS`,
//! `--rundir`/`IPSEC_RUNDIR` (control socket, pid file, log, ipsec.info). Several gateways can
//! run on one host with different run directories.

use std::path::PathBuf;

/// A gateway's file locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// ipsec.conf.
    pub config: PathBuf,
    /// ipsec.secrets.
    pub secrets: PathBuf,
    /// Run directory.
    pub rundir: PathBuf,
}

impl Paths {
    /// Takes `--config F`, `--secrets F`, `--rundir D` (also `--opt=value`) out of `args`,
    /// falling back to the environment, then to the FreeS/WAN defaults.
    pub fn take_from(args: &mut Vec<String>) -> Result<Paths, String> {
        let mut take = |name: &str| -> Result<Option<String>, String> {
            let flag = format!("--{name}");
            let eq = format!("--{name}=");
            let mut found = None;
            let mut i = 0;
            while i < args.len() {
                if args[i] == flag {
                    if i + 1 >= args.len() {
                        return Err(format!("option {flag} needs a value"));
                    }
                    found = Some(args.remove(i + 1));
                    args.remove(i);
                } else if let Some(v) = args[i].strip_prefix(&eq) {
                    found = Some(v.to_string());
                    args.remove(i);
                } else {
                    i += 1;
                }
            }
            Ok(found)
        };
        let config = take("config")?;
        let secrets = take("secrets")?;
        let rundir = take("rundir")?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Paths {
            config: config
                .or_else(|| env("IPSEC_CONF"))
                .unwrap_or_else(|| "/etc/ipsec.conf".into())
                .into(),
            secrets: secrets
                .or_else(|| env("IPSEC_SECRETS"))
                .unwrap_or_else(|| "/etc/ipsec.secrets".into())
                .into(),
            rundir: rundir
                .or_else(|| env("IPSEC_RUNDIR"))
                .unwrap_or_else(|| "/run/rswan".into())
                .into(),
        })
    }

    /// The control socket.
    pub fn ctl(&self) -> PathBuf {
        self.rundir.join("pluto.ctl")
    }

    /// The pid file.
    pub fn pid(&self) -> PathBuf {
        self.rundir.join("pluto.pid")
    }

    /// The daemon's log when it runs in the background.
    pub fn log(&self) -> PathBuf {
        self.rundir.join("rswan.log")
    }

    /// FreeS/WAN's `ipsec.info` (default-route facts).
    pub fn info(&self) -> PathBuf {
        self.rundir.join("ipsec.info")
    }

    /// The fail-closed record (`shell::failclosed`): devices and routed conns, for the next start.
    pub fn failclosed(&self) -> PathBuf {
        self.rundir.join("failclosed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_options_anywhere() {
        let mut a: Vec<String> = ["spi", "--config", "/x.conf", "--said", "e", "--rundir=/r"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = Paths::take_from(&mut a).unwrap();
        assert_eq!(p.config, PathBuf::from("/x.conf"));
        assert_eq!(p.rundir, PathBuf::from("/r"));
        assert_eq!(a, vec!["spi", "--said", "e"]);
        let mut b = vec!["--config".to_string()];
        assert!(Paths::take_from(&mut b).is_err());
    }
}
