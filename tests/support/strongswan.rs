//! strongSwan 5.9 (Debian's charon + swanctl) as an IKEv1 peer inside one of a [`Topo`]'s
//! namespaces, for interop tests.
//!
//! How it runs (see shared/reference/strongswan-peer.md and scripts/lib/strongswan.sh, which does
//! the same in shell for scripts/bench-tunnel):
//! * the kernel here has no ESP transforms, so charon uses its `kernel-libipsec` plugin:
//!   userspace ESP over a TUN device `ipsec0`, always ESP-in-UDP (it fakes NAT-D), routes in
//!   table 220;
//! * `ip netns exec NS` bind-mounts `/etc/netns/NS/*` over `/etc/*`, which gives this charon its
//!   own `strongswan.conf` and `swanctl/`;
//! * charon keeps its pid file and vici socket in `/run`, shared by all namespaces, so it runs
//!   under `unshare -m` with a private tmpfs on `/run`, and swanctl runs in that same mount
//!   namespace (`nsenter -t PID -m -n swanctl …`).
//!
//! [`Charon`]'s `Drop` kills charon (by its pid) and removes the `/etc/netns/NS` directory it
//! wrote, also when a test panics. Its private mounts go away with its mount namespace.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Topo;

/// charon's binary (Debian: strongswan-charon).
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// The plugin directory.
pub const PLUGIN_DIR: &str = "/usr/lib/ipsec/plugins";

/// Panics with a clear message unless charon, swanctl, the kernel-libipsec plugin and
/// nsenter/unshare are installed. (Deliberately not a skip: the interop proof must run.)
pub fn require() {
    let mut missing = Vec::new();
    if !Path::new(CHARON).exists() {
        missing.push(format!("{CHARON} (strongswan-charon)"));
    }
    if !in_path("swanctl") {
        missing.push("swanctl (strongswan-swanctl)".into());
    }
    if !Path::new(PLUGIN_DIR)
        .join("libstrongswan-kernel-libipsec.so")
        .exists()
    {
        missing.push("the kernel-libipsec plugin (libcharon-extra-plugins)".into());
    }
    for c in ["nsenter", "unshare", "tcpdump"] {
        if !in_path(c) {
            missing.push(format!("{c} (util-linux / tcpdump)"));
        }
    }
    assert!(
        missing.is_empty(),
        "strongSwan interop tests need strongSwan 5.9 with kernel-libipsec; missing: {}.\n\
         Run scripts/install-deps (as root) to install them.",
        missing.join(", ")
    );
}

fn in_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// The crypto plugins to load: openssl first when installed (3DES comes from it: Debian ships
/// no `des` plugin), then the portable ones.
pub fn crypto_plugins() -> String {
    let mut p = String::new();
    if Path::new(PLUGIN_DIR)
        .join("libstrongswan-openssl.so")
        .exists()
    {
        p.push_str("openssl ");
    }
    p.push_str("random nonce aes sha1 sha2 md5 hmac gmp pem pkcs1 pubkey x509 gcm kdf");
    if Path::new(PLUGIN_DIR).join("libstrongswan-des.so").exists() {
        p.push_str(" des");
    }
    // Curve25519 and ChaCha20-Poly1305 (IKEv2; libstrongswan-extra-plugins).
    for x in ["curve25519", "chapoly"] {
        if Path::new(PLUGIN_DIR)
            .join(format!("libstrongswan-{x}.so"))
            .exists()
        {
            p.push(' ');
            p.push_str(x);
        }
    }
    p
}

/// One PSK net-to-net connection (swanctl.conf), named `rswan` with CHILD_SA `net`; IKEv1
/// unless `version` says 2.
#[derive(Debug, Clone)]
pub struct CharonConf {
    /// IKE version (`version =` of the connection): 1 or 2.
    pub version: u8,
    /// Our outer address (also our ID).
    pub local: String,
    /// The peer's outer address (also its ID).
    pub remote: String,
    /// Our protected subnet.
    pub local_ts: String,
    /// The peer's protected subnet.
    pub remote_ts: String,
    /// IKE proposal, e.g. `aes128-sha1-modp2048`.
    pub ike: String,
    /// ESP proposal; with a DH group (`aes128-sha1-modp2048`) = PFS.
    pub esp: String,
    /// The pre-shared key (used unless `rsa` is set).
    pub psk: String,
    /// RSA signature authentication instead of the PSK: (our private key as PKCS#1 PEM, our
    /// public key and the peer's as SubjectPublicKeyInfo PEM), written to
    /// `swanctl/rsa/charon.pem`, `swanctl/pubkey/charon-pub.pem` and `swanctl/pubkey/peer.pem`.
    pub rsa: Option<(String, String, String)>,
    /// `reauth_time` (IKEv1: the IKE_SA is re-authenticated by a new Main Mode); `0` = never,
    /// which also makes charon propose an ISAKMP lifetime of 0 s.
    pub reauth_time: String,
    /// `dpd_delay` of the IKE_SA (None: no DPD probes from charon).
    pub dpd_delay: Option<String>,
    /// `dpd_timeout` (IKEv1 only).
    pub dpd_timeout: Option<String>,
    /// The CHILD_SA's `dpd_action` (`clear`, `trap`, `restart`).
    pub dpd_action: String,
    /// Extra lines in the connection section.
    pub extra_conn: String,
    /// Extra lines in the CHILD_SA section.
    pub extra_child: String,
}

impl CharonConf {
    /// Gateway B of a [`Topo`] (192.0.2.2, 10.0.2.0/24) facing gateway A.
    pub fn gateway_b(ike: &str, esp: &str, psk: &str) -> CharonConf {
        CharonConf {
            version: 1,
            local: "192.0.2.2".into(),
            remote: "192.0.2.1".into(),
            local_ts: "10.0.2.0/24".into(),
            remote_ts: "10.0.1.0/24".into(),
            ike: ike.into(),
            esp: esp.into(),
            psk: psk.into(),
            rsa: None,
            reauth_time: "0".into(),
            dpd_delay: None,
            dpd_timeout: None,
            dpd_action: "clear".into(),
            extra_conn: String::new(),
            extra_child: String::new(),
        }
    }

    /// The strongswan.conf text, logging to `log`.
    pub fn strongswan_conf(&self, ns: &str, log: &Path) -> String {
        format!(
            "# Written by tests/support/strongswan.rs for namespace {ns}.
charon {{
	# Userspace ESP (kernel-libipsec) since the kernel has no ESP transforms.
	load = {plugins} kernel-libipsec kernel-netlink socket-default vici updown
	install_virtual_ip = no
	filelog {{
		test {{
			path = {log}
			time_format = %H:%M:%S
			flush_line = yes
			default = 1
			ike = 2
			knl = 2
			net = 1
			enc = 1
			cfg = 2
			chd = 2
		}}
	}}
	syslog {{
		identifier = charon-{ns}
		daemon {{
			default = -1
		}}
	}}
}}
",
            plugins = crypto_plugins(),
            log = log.display()
        )
    }

    /// The swanctl.conf text.
    pub fn swanctl_conf(&self) -> String {
        let mut dpd = String::new();
        if let Some(d) = &self.dpd_delay {
            dpd.push_str(&format!("\t\tdpd_delay = {d}\n"));
        }
        if let Some(d) = &self.dpd_timeout {
            dpd.push_str(&format!("\t\tdpd_timeout = {d}\n"));
        }
        format!(
            "# Written by tests/support/strongswan.rs.
connections {{
	rswan {{
		version = {version}
		local_addrs = {local}
		remote_addrs = {remote}
		proposals = {ike}
		# No XAuth/Mode Config: plain Main Mode + Quick Mode like FreeS/WAN.
		aggressive = no
		reauth_time = {reauth}
{dpd}{extra_conn}
		local {{
			auth = {auth}
			id = {local}{local_key}
		}}
		remote {{
			auth = {auth}
			id = {remote}{remote_key}
		}}
		children {{
			net {{
				local_ts = {lts}
				remote_ts = {rts}
				esp_proposals = {esp}
				mode = tunnel
				start_action = none
				dpd_action = {dpd_action}
{extra_child}
			}}
		}}
	}}
}}
secrets {{
	ike-rswan {{
		id-a = {local}
		id-b = {remote}
		secret = \"{psk}\"
	}}
}}
",
            version = self.version,
            local = self.local,
            remote = self.remote,
            ike = self.ike,
            esp = self.esp,
            lts = self.local_ts,
            rts = self.remote_ts,
            psk = self.psk,
            dpd_action = self.dpd_action,
            reauth = self.reauth_time,
            auth = if self.rsa.is_some() { "pubkey" } else { "psk" },
            local_key = if self.rsa.is_some() {
                "\n\t\t\tpubkeys = charon-pub.pem"
            } else {
                ""
            },
            remote_key = if self.rsa.is_some() {
                "\n\t\t\tpubkeys = peer.pem"
            } else {
                ""
            },
            extra_conn = self.extra_conn,
            extra_child = self.extra_child,
        )
    }
}

/// A charon running in a namespace.
pub struct Charon {
    /// The namespace.
    pub ns: String,
    /// `/etc/netns/NS` (removed on drop).
    etc: PathBuf,
    /// charon (`ip netns exec` and `unshare` exec in place, so this is charon itself).
    child: Option<Child>,
    pid: u32,
    /// charon's log file.
    pub log: PathBuf,
}

impl Charon {
    /// Writes the configuration into `/etc/netns/NS`, starts charon in `ns`, waits for its
    /// vici socket and loads the configuration (`swanctl --load-all`).
    pub fn start(t: &Topo, ns: &str, conf: &CharonConf) -> Charon {
        require();
        let etc = PathBuf::from(format!("/etc/netns/{ns}"));
        let log = t.dir.path(&format!("charon-{ns}.log"));
        // Own the directory at once so that Drop removes it whatever happens next.
        let mut c = Charon {
            ns: ns.to_string(),
            etc: etc.clone(),
            child: None,
            pid: 0,
            log: log.clone(),
        };
        // The credential directories swanctl --load-all scans (it warns about missing ones).
        for d in [
            "x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private",
            "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12",
        ] {
            fs::create_dir_all(etc.join("swanctl").join(d)).unwrap();
        }
        if let Some((private, public, peer_public)) = &conf.rsa {
            fs::write(etc.join("swanctl/rsa/charon.pem"), private).unwrap();
            fs::write(etc.join("swanctl/pubkey/charon-pub.pem"), public).unwrap();
            fs::write(etc.join("swanctl/pubkey/peer.pem"), peer_public).unwrap();
        }
        fs::write(etc.join("strongswan.conf"), conf.strongswan_conf(ns, &log)).unwrap();
        fs::write(etc.join("swanctl/swanctl.conf"), conf.swanctl_conf()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            etc.join("swanctl/swanctl.conf"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let stdout = fs::File::create(t.dir.path(&format!("charon-{ns}.stdout"))).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            ns,
            "unshare",
            "-m",
            "--propagation",
            "private",
        ])
        .args([
            "sh",
            "-c",
            "mount -t tmpfs -o mode=0755 rswan-ss-run /run && exec \"$0\"",
            CHARON,
        ])
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stdout);
        // If the test process dies without unwinding (SIGKILL, SIGTERM), charon goes too: the
        // parent-death signal survives the execs (ip, unshare, sh: none is set-user-ID).
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn charon");
        c.pid = child.id();
        c.child = Some(child);
        let t0 = Instant::now();
        loop {
            if let Some(Ok(Some(st))) = c.child.as_mut().map(|ch| ch.try_wait()) {
                panic!(
                    "charon in {ns} exited ({st}); log:\n{}\nstdout:\n{}",
                    c.log_text(),
                    fs::read_to_string(t.dir.path(&format!("charon-{ns}.stdout")))
                        .unwrap_or_default()
                );
            }
            let ok = Command::new("nsenter")
                .args([
                    "-t",
                    &c.pid.to_string(),
                    "-m",
                    "-n",
                    "test",
                    "-S",
                    "/run/charon.vici",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "charon in {ns} did not open its vici socket in 15 s; log:\n{}",
                c.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.swanctl_ok(&["--load-all", "--noprompt"]);
        c
    }

    /// Kills this charon (SIGKILL, no Deletes sent: a crash) and starts a new one in the same
    /// namespace with `conf`, with a fresh log (the old one is kept as `….log.1`).
    pub fn restart(&mut self, t: &Topo, conf: &CharonConf) {
        self.kill();
        let _ = fs::rename(&self.log, self.log.with_extension("log.1"));
        let new = Charon::start(t, &self.ns, conf);
        // The old value must not remove the /etc/netns directory the new charon uses.
        self.etc = PathBuf::new();
        *self = new;
    }

    /// charon's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True while charon runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Runs `swanctl ARGS` in charon's namespaces.
    pub fn swanctl(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "-n", "swanctl"])
            .args(args)
            .output()
            .expect("run swanctl")
    }

    /// `swanctl ARGS`; must succeed; returns stdout.
    pub fn swanctl_ok(&self, args: &[&str]) -> String {
        let o = self.swanctl(args);
        assert!(
            o.status.success(),
            "swanctl {} failed: {}{}\ncharon log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log_tail(80)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `swanctl --list-sas` (empty string if charon is gone).
    ///
    /// A failed `swanctl` (charon busy under load) is retried, so an empty answer means no SAs,
    /// never "could not ask"; if it keeps failing, its error is the answer.
    pub fn list_sas(&self) -> String {
        let mut last = String::new();
        for _ in 0..5 {
            let o = self.swanctl(&["--list-sas"]);
            let gone = !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
            if o.status.success() || gone {
                return String::from_utf8_lossy(&o.stdout).into_owned();
            }
            last = format!(
                "(swanctl --list-sas failed: {})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        last
    }

    /// `swanctl --initiate --child CHILD`; must succeed.
    pub fn initiate(&self, child: &str) -> String {
        self.swanctl_ok(&["--initiate", "--child", child, "--timeout", "30"])
    }

    /// charon's whole log.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of charon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let l = self.log_text();
        let v: Vec<&str> = l.lines().collect();
        v[v.len().saturating_sub(n)..].join("\n")
    }

    /// Sends `sig` to charon.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child process.
        unsafe { libc::kill(self.pid as libc::pid_t, sig) };
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL; reaps.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        self.stop();
        // Only the directory this charon wrote, never /etc/netns itself.
        if !self.ns.is_empty() && self.etc.starts_with("/etc/netns/") {
            let _ = fs::remove_dir_all(&self.etc);
        }
    }
}
