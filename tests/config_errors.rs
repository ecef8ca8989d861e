//! Bad ipsec.conf input and bad command arguments through the real `ipsec` binary: a clear
//! message naming FILE:LINE (or the bad argument), a non-zero exit, no panic, no key material
//! echoed, and a running daemon left running.

mod common;
mod support;

use std::path::PathBuf;
use std::process::Output;

use common::*;
use support::*;

/// Key material that must never be echoed (each is also a wrong length for its algorithm).
const SECRET_ENC: &str = "0x5ec2e75ec2e75ec2e75ec2e75ec2e7";
const SECRET_AUTH: &str = "0xa17ea17ea17ea17ea17ea17ea17ea17ea17e";
const K128: &str = "0x00112233445566778899aabbccddeeff";
const K160: &str = "0x0123456789abcdef0123456789abcdef01234567";

struct Attempt {
    status: Option<i32>,
    text: String,
    log: String,
    cfg: PathBuf,
}

/// Writes `conf` and runs `ipsec setup start` with it in gateway A's namespace (an empty
/// ipsec.secrets, mode 0600).
fn setup_start(t: &Topo, name: &str, conf: &str) -> Attempt {
    setup_start_with(t, name, conf, Some(("", 0o600)))
}

/// Like [`setup_start`] with ipsec.secrets holding `text` with `mode` (None: no file).
fn setup_start_with(t: &Topo, name: &str, conf: &str, secrets: Option<(&str, u32)>) -> Attempt {
    let cfg = t.dir.path(&format!("{name}.conf"));
    std::fs::write(&cfg, conf).unwrap();
    let sfile = t.dir.path(&format!("{name}.secrets"));
    let _ = std::fs::remove_file(&sfile);
    if let Some((text, mode)) = secrets {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&sfile, text).unwrap();
        std::fs::set_permissions(&sfile, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let secrets = sfile;
    let rundir = t.dir.path(&format!("{name}.run"));
    let o = ns_run(
        &t.ga,
        &[
            ipsec_bin(),
            "--config",
            cfg.to_str().unwrap(),
            "--secrets",
            secrets.to_str().unwrap(),
            "--rundir",
            rundir.to_str().unwrap(),
            "setup",
            "start",
        ],
    );
    let log = std::fs::read_to_string(rundir.join("rswan.log")).unwrap_or_default();
    // If it did start, stop it again (the test asserts on the status below).
    if o.status.success() {
        ns_run(
            &t.ga,
            &[
                ipsec_bin(),
                "--rundir",
                rundir.to_str().unwrap(),
                "setup",
                "stop",
            ],
        );
    }
    Attempt {
        status: o.status.code(),
        text: output_text(&o),
        log,
        cfg,
    }
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn no_secrets(what: &str, text: &str) {
    for k in [SECRET_ENC, SECRET_AUTH, K128, K160] {
        let hex = &k[2..];
        for needle in [hex.to_string(), hex.to_uppercase(), hex[..16].to_string()] {
            assert!(
                !text.contains(&needle),
                "{what}: key material {needle} echoed:\n{text}"
            );
        }
    }
    assert!(!text.contains("panicked"), "{what}: panic:\n{text}");
}

/// `ipsec setup start` must fail with a message citing `cfg:line`.
fn refused(a: &Attempt, what: &str, line: usize, words: &str) {
    let at = format!("{}:{line}:", a.cfg.display());
    assert!(
        a.status.is_some_and(|c| c != 0),
        "{what}: setup start exited {:?}:\n{}",
        a.status,
        a.text
    );
    assert!(
        a.text.contains(&at) && a.text.contains(words),
        "{what}: no \"{at} …{words}…\" in:\n{}",
        a.text
    );
    no_secrets(what, &format!("{}{}", a.text, a.log));
}

fn base(conns: &str) -> String {
    format!("version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\n{conns}")
}

fn manual_conn(esp_lines: &str) -> String {
    format!(
        "conn net\n\tleft=192.0.2.1\n\tleftsubnet=10.0.1.0/24\n\tright=192.0.2.2\n\trightsubnet=10.0.2.0/24\n\tspibase=0x200\n{esp_lines}\tauto=manual\n"
    )
}

#[test]
fn bad_conf_refused_with_file_and_line() {
    let t = Topo::new();

    // (a) An unknown keyword, on line 5.
    let a = setup_start(
        &t,
        "unknown",
        "version 2\n\nconfig setup\n\tinterfaces=%defaultroute\n\tfrobnicate=yes\n",
    );
    refused(&a, "unknown keyword", 5, "frobnicate");

    // (b) No `version 2` line: the first line of content is cited.
    let a = setup_start(
        &t,
        "noversion",
        "# no version\nconfig setup\n\tinterfaces=%defaultroute\n",
    );
    refused(&a, "missing version", 2, "version 2");

    // An unknown keyword in a conn section, too.
    let a = setup_start(
        &t,
        "connkw",
        &base("conn x\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tespenkey=0x00\n"),
    );
    refused(&a, "unknown conn keyword", 9, "espenkey");

    // Nothing was left behind by the failed starts.
    let links = ns_must(&t.ga, &["ip", "-o", "link"]);
    assert!(!links.contains("ipsec0"), "ipsec0 left behind:\n{links}");
}

/// Conn-level errors (in an auto=manual conn): the daemon starts, logs FILE:LINE and what is
/// wrong, brings nothing up, and echoes no key.
#[test]
fn bad_manual_conns_logged_with_file_and_line() {
    let t = Topo::new();
    let cases: [(&str, String, usize, &str); 4] = [
        (
            "shortkey",
            manual_conn(&format!(
                "\tesp=aes128-sha1\n\tespenckey={SECRET_ENC}\n\tespauthkey={K160}\n"
            )),
            13,
            "espenckey: esp=aes128 needs a 128-bit key",
        ),
        (
            "shortauth",
            manual_conn(&format!(
                "\tesp=aes128-sha1\n\tespenckey={K128}\n\tespauthkey={SECRET_AUTH}\n"
            )),
            14,
            "espauthkey: ESP integrity sha1 needs a 160-bit key",
        ),
        (
            "des",
            manual_conn(&format!(
                "\tesp=des\n\tespenckey=0x0123456789abcdef\n\tespauthkey={K160}\n"
            )),
            12,
            "esp=des",
        ),
        (
            "null",
            manual_conn(&format!("\tesp=null-sha1\n\tespauthkey={K160}\n")),
            12,
            "null",
        ),
    ];
    for (name, conn, line, words) in cases {
        let a = setup_start(&t, name, &base(&conn));
        let all = format!("{}{}", a.text, a.log);
        let at = format!("{}:{line}:", a.cfg.display());
        let cited = all.lines().any(|l| l.contains(&at) && l.contains(words));
        if a.status == Some(0) {
            assert!(
                cited && all.contains("manual --up net"),
                "{name}: no logged \"{at} …{words}…\":\n{all}"
            );
            assert!(
                !all.contains("manual connection up"),
                "{name}: the conn came up:\n{all}"
            );
        } else {
            assert!(cited, "{name}: no \"{at} …{words}…\":\n{all}");
        }
        no_secrets(name, &all);
    }
}

#[test]
fn bad_command_arguments() {
    let mut t = Topo::new();
    let ga = t.ga.clone();
    t.start_gateway(&ga, &base(""));
    let bad: [(&[&str], &str); 6] = [
        (&["spi", "--said", "bogus"], "bogus"),
        (
            &[
                "eroute",
                "--add",
                "--eraf",
                "inet",
                "--src",
                "10.0.0.0/33",
                "--dst",
                "10.0.2.0/24",
                "--said",
                "%pass",
            ],
            "--src: \"33\" is not a prefix length",
        ),
        (
            &[
                "spi",
                "--said",
                "esp0x100@192.0.2.2",
                "--esp",
                "aes128-sha1",
                "--enckey",
                "0x00",
                "--authkey",
                "0x00",
                "--src",
                "192.0.2.1",
            ],
            "128-bit key",
        ),
        (
            &[
                "spi",
                "--said",
                "esp0x101@192.0.2.2",
                "--esp",
                "aes128-sha1",
                "--enckey",
                SECRET_ENC,
                "--authkey",
                K160,
                "--src",
                "192.0.2.1",
            ],
            "128-bit key",
        ),
        (
            &[
                "spi",
                "--said",
                "esp0x102@192.0.2.2",
                "--esp",
                "des-sha1",
                "--enckey",
                "0x0123456789abcdef",
                "--authkey",
                K160,
                "--src",
                "192.0.2.1",
            ],
            "single DES",
        ),
        (&["eroute", "--add", "--src", "10.0.1.0/24"], "--dst"),
    ];
    for (args, words) in bad {
        let o = t.ipsec(&ga, args);
        let text = output_text(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "ipsec {args:?} should exit 1:\n{text}"
        );
        assert!(
            text.starts_with(&format!("ipsec {}: ", args[0])) && text.contains(words),
            "ipsec {args:?}: unclear error:\n{text}"
        );
        no_secrets(&format!("ipsec {args:?}"), &text);
    }
    // Nothing was added, and the daemon is still there.
    assert!(daemon_alive(&t, &ga), "{}", t.log(&ga));
    assert_eq!(t.ipsec_ok(&ga, &["spi"]), "");
    assert_eq!(t.ipsec_ok(&ga, &["eroute"]), "");
    no_secrets("daemon log", &t.log(&ga));
    let st = t.ipsec(&ga, &["setup", "status"]);
    assert_eq!(st.status.code(), Some(0), "{}", output_text(&st));
}

/// `ipsec setup start` tells the truth on the terminal: every conn it skipped with FILE:LINE and
/// why, ipsec.secrets problems (missing, open mode, parse error) with a non-zero exit and no
/// daemon left running, and a named interface that does not exist with its FILE:LINE.
#[test]
fn setup_start_reports_what_it_skipped() {
    let t = Topo::new();
    // (a) A conn that cannot be oriented (neither end is this host) is skipped, not fatal.
    let a = setup_start(
        &t,
        "skip",
        &base("conn far\n\tleft=198.51.100.1\n\tright=198.51.100.2\n\tauthby=secret\n\tauto=add\n"),
    );
    assert_eq!(a.status, Some(0), "{}", a.text);
    let at = format!("{}:6:", a.cfg.display());
    assert!(
        a.text
            .lines()
            .any(|l| l.contains("conn \"far\" skipped") && l.contains(&at)),
        "no skipped-conn line citing {at} on the terminal:\n{}",
        a.text
    );

    // (b) ipsec.secrets readable by others: refused, the file named, non-zero exit.
    let conf = base("");
    let b = setup_start_with(&t, "mode", &conf, Some((": PSK \"x\"\n", 0o644)));
    assert!(b.status.is_some_and(|c| c != 0), "{}", b.text);
    assert!(
        b.text.contains("mode.secrets") && b.text.contains("chmod 600"),
        "secrets mode problem not shown:\n{}",
        b.text
    );
    // (c) no ipsec.secrets at all.
    let c = setup_start_with(&t, "missing", &conf, None);
    assert!(c.status.is_some_and(|c| c != 0), "{}", c.text);
    assert!(c.text.contains("missing.secrets"), "{}", c.text);
    // (d) a parse error, with its line.
    let d = setup_start_with(&t, "parse", &conf, Some(("\n: FROB \"x\"\n", 0o600)));
    assert!(d.status.is_some_and(|c| c != 0), "{}", d.text);
    assert!(d.text.contains("parse.secrets:2"), "{}", d.text);
    no_secrets("secrets", &format!("{}{}{}", b.text, c.text, d.text));
    for run in ["mode", "missing", "parse"] {
        let st = ns_run(
            &t.ga,
            &[
                ipsec_bin(),
                "--rundir",
                t.dir.path(&format!("{run}.run")).to_str().unwrap(),
                "setup",
                "status",
            ],
        );
        assert_eq!(st.status.code(), Some(3), "{run}: a daemon is running");
    }

    // (e) interfaces= naming an interface that does not exist, on line 4.
    let e = setup_start(
        &t,
        "iface",
        "version 2\n\nconfig setup\n\tinterfaces=ipsec0=nosuch0\n",
    );
    refused(&e, "missing interface", 4, "nosuch0");
    let links = ns_must(&t.ga, &["ip", "-o", "link"]);
    assert!(!links.contains("ipsec0"), "ipsec0 left behind:\n{links}");
}

/// The control socket serves root only (created 0600 under umask 077, and clients checked with
/// SO_PEERCRED even when the file mode is widened), and `rswan.log` is created 0600, appended to
/// across restarts and timestamped on every line.
#[test]
fn control_socket_is_root_only_and_the_log_is_appended() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut t = Topo::new();
    let ga = t.ga.clone();
    let rundir = t.start_gateway(&ga, &base(""));
    let ctl = rundir.join("pluto.ctl");
    let md = std::fs::metadata(&ctl).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(
        md.permissions().mode() & 0o777,
        0o600,
        "control socket mode"
    );
    // Widen the file mode: the uid check still refuses another user.
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&rundir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = ns_run(
        &ga,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            ipsec_bin(),
            "--rundir",
            rundir.to_str().unwrap(),
            "eroute",
        ],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "uid 65534 was served:\n{text}");
    assert!(text.contains("permission denied"), "{text}");
    assert!(t.log(&ga).contains("refused a request from uid 65534"));

    // The log: 0600, every line timestamped, and a restart appends.
    let log = rundir.join("rswan.log");
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = t.log(&ga);
    t.ipsec_ok(&ga, &["setup", "restart"]);
    let after = t.log(&ga);
    assert!(
        after.starts_with(&before),
        "the log was truncated by the restart"
    );
    assert!(after.len() > before.len());
    for l in after.lines() {
        let stamp = l.get(..23).unwrap_or("");
        let ok = stamp.len() == 23
            && stamp.as_bytes()[4] == b'-'
            && stamp.as_bytes()[10] == b' '
            && stamp.as_bytes()[19] == b'.';
        assert!(ok, "log line without a timestamp: {l:?}");
    }
}
