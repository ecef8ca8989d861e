//! `ipsec newhostkey`, `showhostkey` and `ranbits` through the real binary.

use std::process::Command;

fn ipsec(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ipsec"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn newhostkey_then_showhostkey() {
    let dir = std::env::temp_dir().join(format!("rswan-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("ipsec.secrets");
    let fs = f.to_str().unwrap();
    let (ok, _, e) = ipsec(&[
        "newhostkey",
        "--output",
        fs,
        "--bits",
        "1024",
        "--hostname",
        "west",
        "--quiet",
    ]);
    assert!(ok, "{e}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(
        text.starts_with(": RSA\t{\n\t# RSA 1024 bits   west   "),
        "{text}"
    );
    assert!(text.contains("\t# everything after this point is secret\n"));
    // Refuses to overwrite.
    assert!(!ipsec(&["newhostkey", "--output", fs, "--bits", "1024", "--quiet"]).0);

    let (ok, left, e) = ipsec(&["showhostkey", "--file", fs, "--left"]);
    assert!(ok, "{e}");
    let key = left
        .lines()
        .find_map(|l| l.trim().strip_prefix("leftrsasigkey="))
        .unwrap();
    assert!(key.starts_with("0sAwEAA"), "{key}");
    assert!(text.contains(&format!("#pubkey={key}")));
    let (ok, pem, _) = ipsec(&["showhostkey", "--file", fs, "--pem"]);
    assert!(ok && pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let (ok, pem, _) = ipsec(&["showhostkey", "--file", fs, "--pem-private"]);
    assert!(ok && pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let (ok, txt, _) = ipsec(&["showhostkey", "--file", fs, "--txt", "192.0.2.1"]);
    // The gateway, then the key in strings of at most 255 bytes (a TXT string's limit).
    assert!(
        ok && txt.contains("\"X-IPsec-Server(10)=192.0.2.1\" \" AwEAA"),
        "{txt}"
    );
    let rr = txt.lines().find(|l| l.contains("IN\tTXT")).unwrap();
    let strings: Vec<&str> = rr.split('"').skip(1).step_by(2).collect();
    assert!(
        strings.len() >= 2 && strings.iter().all(|s| s.len() <= 255),
        "{rr}"
    );
    assert_eq!(
        strings[1..].concat().trim(),
        key.trim_start_matches("0s"),
        "the key, whole"
    );
    let (ok, ik, _) = ipsec(&["showhostkey", "--file", fs, "--ipseckey", "192.0.2.1"]);
    assert!(
        ok && ik.contains(&format!(
            "\tIN\tIPSECKEY\t10 1 2 192.0.2.1 {}",
            key.trim_start_matches("0s")
        )),
        "{ik}"
    );

    // A secrets file readable by others is refused, naming the file.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, e) = ipsec(&["showhostkey", "--file", fs, "--left"]);
    assert!(!ok && e.contains(fs) && e.contains("chmod 600"), "{e}");
    // So is one owned by anybody but root.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&f, Some(4242), None).unwrap();
    let (ok, _, e) = ipsec(&["showhostkey", "--file", fs, "--left"]);
    assert!(
        !ok && e.contains(&format!(
            "{fs}: secrets file is owned by uid 4242, not root"
        )),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ranbits_output() {
    let (ok, out, _) = ipsec(&["ranbits", "64"]);
    assert!(ok);
    let out = out.trim();
    assert_eq!(out.len(), 2 + 16 + 1, "{out}");
    assert!(out.starts_with("0x") && out.as_bytes()[10] == b'_');
    let (ok, out, _) = ipsec(&["ranbits", "--continuous", "--bytes", "20"]);
    assert!(ok && out.trim().len() == 42 && !out.contains('_'));
    assert!(!ipsec(&["ranbits", "nope"]).0);
}

/// FreeS/WAN's documented idioms: `ipsec newhostkey > /etc/ipsec.secrets` (stdout, but never
/// a terminal), bare `ipsec showhostkey` (the DNS KEY record of the default key),
/// `ipsec --confdir` and `ipsec --directory`.
#[test]
fn freeswan_idioms() {
    let dir = std::env::temp_dir().join(format!("rswan-idioms-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, key, e) = ipsec(&[
        "newhostkey",
        "--bits",
        "1024",
        "--hostname",
        "gw",
        "--quiet",
    ]);
    assert!(ok, "{e}");
    assert!(
        key.starts_with(": RSA\t{\n\t# RSA 1024 bits   gw   "),
        "{key}"
    );
    assert!(key.contains("\tPrivateExponent: 0x"), "{key}");
    let f = dir.join("ipsec.secrets");
    std::fs::write(&f, &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A terminal gets nothing: `script` gives the command a pseudo-terminal as stdout.
    let bin = env!("CARGO_BIN_EXE_ipsec");
    let o = Command::new("script")
        .args([
            "-qec",
            &format!("{bin} newhostkey --bits 1024 --quiet"),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("refusing to write a private key to a terminal"),
        "{out}"
    );
    assert!(!out.contains("PrivateExponent"), "{out}");

    let (ok, rec, e) = ipsec(&["showhostkey", "--file", f.to_str().unwrap()]);
    assert!(ok, "{e}");
    let mut l = rec.lines();
    assert!(l.next().unwrap().starts_with("; RSA 1024 bits   "), "{rec}");
    let kl = l.next().unwrap();
    assert!(kl.contains(".\tIN\tKEY\t0x4200 4 1 AwEAA"), "{rec}");

    let (ok, confdir, _) = ipsec(&["--config", "/srv/gw/ipsec.conf", "--confdir"]);
    assert!(ok);
    assert_eq!(confdir, "/srv/gw\n");
    let (_, confdir, _) = ipsec(&["--confdir"]);
    assert_eq!(confdir, "/etc\n");
    let (ok, d, _) = ipsec(&["--directory"]);
    assert!(ok);
    assert_eq!(
        std::path::Path::new(d.trim()),
        std::path::Path::new(bin).parent().unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
