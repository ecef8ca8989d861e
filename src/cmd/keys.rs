//! Key tools that run without the daemon: `ipsec newhostkey`, `ipsec rsasigkey`,
//! `ipsec showhostkey` (including PEM export for strongSwan/Libreswan) and `ipsec ranbits`
//! (spec 3).

use std::io::Write;
use std::path::Path;

use rand::rngs::OsRng;
use rand::RngCore;

use crate::config::secrets::{RsaPrivateKey, SecretKey, Secrets};
use crate::pluto::crypto::rsa::{
    PrivateKey, PrivateKeyParts, MAX_RSA_BITS, MIN_RSA_BITS, WARN_RSA_BITS,
};

use super::args::{err, CmdError, Opts};

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn date() -> String {
    std::process::Command::new("date")
        .arg("+%a %b %e %H:%M:%S %Y")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn bits_arg(s: &str) -> Result<usize, CmdError> {
    let bits: usize = s
        .parse()
        .map_err(|_| CmdError(format!("\"{s}\" is not a number of bits")))?;
    if !bits.is_multiple_of(16) || !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return err(format!(
            "key size {bits} must be a multiple of 16 between {MIN_RSA_BITS} and {MAX_RSA_BITS}"
        ));
    }
    if bits < WARN_RSA_BITS {
        eprintln!(
            "ipsec: warning: a {bits}-bit RSA key is weak; use at least {WARN_RSA_BITS} bits"
        );
    }
    Ok(bits)
}

fn generate(bits: usize, host: &str) -> Result<(PrivateKey, String), CmdError> {
    let key = PrivateKey::generate(&mut OsRng, bits).map_err(|e| CmdError(e.to_string()))?;
    let comment = format!("RSA {bits} bits   {host}   {}", date());
    Ok((key, comment))
}

/// `ipsec rsasigkey [--hostname H] NBITS`: prints the indented key block (values in 0x).
pub fn rsasigkey(args: &[String]) -> Result<String, CmdError> {
    let o = Opts::parse(args, &["hostname", "random", "rounds", "oldkey"])?;
    o.only(&["hostname", "random", "rounds", "verbose", "noopt", "oldkey"])?;
    if o.has("oldkey") {
        return err("--oldkey is not supported: generate a new key");
    }
    let [n] = o.operands.as_slice() else {
        return err("usage: ipsec rsasigkey [--hostname H] NBITS");
    };
    let host = o.get("hostname").map_or_else(hostname, str::to_owned);
    let (key, comment) = generate(bits_arg(n)?, &host)?;
    Ok(key.to_secrets_body(&comment).to_string())
}

/// `ipsec newhostkey --output F [--bits N] [--hostname H] [--quiet]`: writes a `: RSA { … }`
/// block (mode 0600) to F, or to stdout with `--output -`.
pub fn newhostkey(args: &[String]) -> Result<String, CmdError> {
    let o = Opts::parse(
        args,
        &[
            "output",
            "bits",
            "hostname",
            "random",
            "configdir",
            "password",
        ],
    )?;
    o.only(&[
        "output",
        "bits",
        "hostname",
        "random",
        "quiet",
        "configdir",
        "password",
    ])?;
    let out = o
        .get("output")
        .ok_or_else(|| CmdError("--output FILE is required".into()))?;
    let bits = bits_arg(o.get("bits").unwrap_or("2192"))?;
    let host = o.get("hostname").map_or_else(hostname, str::to_owned);
    if !o.has("quiet") {
        eprintln!("ipsec newhostkey: generating {bits}-bit RSA key for {host}...");
    }
    let (key, comment) = generate(bits, &host)?;
    let mut text = String::from(": RSA\t{\n");
    text.push_str(&key.to_secrets_body(&comment));
    text.push_str("\t}\n# do not change the indenting of that \"}\"\n");
    if out == "-" {
        return Ok(text);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| CmdError(format!("cannot create {out}: {e}")))?;
    f.write_all(text.as_bytes())
        .map_err(|e| CmdError(format!("cannot write {out}: {e}")))?;
    Ok(String::new())
}

fn to_private(k: &RsaPrivateKey) -> Result<PrivateKey, CmdError> {
    let parts = PrivateKeyParts {
        modulus: k.modulus.clone(),
        public_exponent: k.public_exponent.clone(),
        private_exponent: k.private_exponent.as_bytes().to_vec(),
        prime1: k.prime1.as_bytes().to_vec(),
        prime2: k.prime2.as_bytes().to_vec(),
        exponent1: k.exponent1.as_bytes().to_vec(),
        exponent2: k.exponent2.as_bytes().to_vec(),
        coefficient: k.coefficient.as_bytes().to_vec(),
    };
    PrivateKey::from_parts(&parts).map_err(|e| CmdError(format!("RSA key: {e}")))
}

fn rsa(e: &crate::config::secrets::SecretEntry) -> Option<&RsaPrivateKey> {
    match &e.key {
        SecretKey::Rsa(k) => Some(k),
        _ => None,
    }
}

/// `ipsec showhostkey [--left|--right|--txt GW|--ipseckey GW|--key|--pem|--pem-private] [--file F] [--id ID]`;
/// with no format, the DNS KEY record (`--key`), as FreeS/WAN's documentation shows it.
pub fn showhostkey(args: &[String], default_file: &Path) -> Result<String, CmdError> {
    let o = Opts::parse(args, &["txt", "ipseckey", "file", "id"])?;
    o.only(&[
        "left",
        "right",
        "txt",
        "ipseckey",
        "key",
        "pem",
        "pem-private",
        "file",
        "id",
    ])?;
    let file = o
        .get("file")
        .map_or_else(|| default_file.to_path_buf(), Into::into);
    let secrets = Secrets::load(&file).map_err(|e| CmdError(e.to_string()))?;
    let want_id = o.get("id");
    // Without --id: the default key (`: RSA { … }`, no IDs) as FreeS/WAN chose it, else the
    // first RSA key.
    let key = match want_id {
        Some(id) => secrets
            .entries()
            .iter()
            .filter(|e| e.ids.iter().any(|i| i.to_string() == id))
            .find_map(rsa),
        None => secrets
            .entries()
            .iter()
            .filter(|e| e.ids.is_empty())
            .find_map(rsa)
            .or_else(|| secrets.entries().iter().find_map(rsa)),
    }
    .ok_or_else(|| {
        CmdError(format!(
            "no RSA key{} found in {}",
            want_id.map(|i| format!(" for {i}")).unwrap_or_default(),
            file.display()
        ))
    })?;
    let private = to_private(key)?;
    let public = private.public_key();
    let text = public.to_text();
    let b64 = text.trim_start_matches("0s");
    let host = hostname();
    let bits = key.modulus_bits();
    Ok(if o.has("left") || o.has("right") {
        let side = if o.has("left") { "left" } else { "right" };
        format!(
            "\t# RSA {bits} bits   {host}   {}\n\t{side}rsasigkey={text}\n",
            date()
        )
    } else if let Some(gw) = o.get("txt") {
        format!(
            "; RSA {bits} bits   {host}   {}\n\tIN\tTXT\t{}\n",
            date(),
            txt_strings(gw, b64)
        )
    } else if let Some(gw) = o.get("ipseckey") {
        // RFC 4025 presentation: precedence, gateway type (1: IPv4, 3: name), algorithm 2
        // (RSA), gateway, base64 key.
        let gtype = if gw.parse::<std::net::Ipv4Addr>().is_ok() {
            1
        } else {
            3
        };
        let gw = gw.trim_start_matches('@');
        format!(
            "; RSA {bits} bits   {host}   {}\n\tIN\tIPSECKEY\t10 {gtype} 2 {gw} {b64}\n",
            date()
        )
    } else if o.has("key") || !(o.has("pem") || o.has("pem-private")) {
        // FreeS/WAN's documented `ipsec showhostkey`: the DNS KEY record.
        format!(
            "; RSA {bits} bits   {host}   {}\n{host}.\tIN\tKEY\t0x4200 4 1 {b64}\n",
            date()
        )
    } else if o.has("pem") {
        public.to_pem().map_err(|e| CmdError(e.to_string()))?
    } else {
        // --pem-private
        private
            .to_pem()
            .map_err(|e| CmdError(e.to_string()))?
            .to_string()
    })
}

/// The character-strings of the TXT record `X-IPsec-Server(10)=GW KEY`, each at most 255
/// bytes (a TXT string's limit): the gateway part, then the key in chunks, the first led by
/// a space, as FreeS/WAN split long records at the key.
pub fn txt_strings(gw: &str, b64: &str) -> String {
    let mut v = vec![format!("\"X-IPsec-Server(10)={gw}\"")];
    let key = format!(" {b64}");
    for chunk in key.as_bytes().chunks(255) {
        v.push(format!("\"{}\"", String::from_utf8_lossy(chunk)));
    }
    v.join(" ")
}

/// Formats random bytes as FreeS/WAN's ranbits does: `0x` lowercase hex, `_` every 8 digits
/// unless `continuous`.
pub fn ranbits_format(bytes: &[u8], continuous: bool) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if continuous {
        return format!("0x{hex}");
    }
    let groups: Vec<&str> = hex
        .as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!("0x{}", groups.join("_"))
}

/// `ipsec ranbits [--quick] [--continuous] [--bytes] N`.
pub fn ranbits(args: &[String]) -> Result<String, CmdError> {
    let o = Opts::parse(args, &[])?;
    o.only(&["quick", "continuous", "bytes"])?;
    let [n] = o.operands.as_slice() else {
        return err("usage: ipsec ranbits [--quick] [--continuous] [--bytes] N");
    };
    let n: usize = n
        .parse()
        .ok()
        .filter(|n| *n > 0 && *n <= 65536)
        .ok_or_else(|| CmdError(format!("\"{n}\" is not a size 1..65536")))?;
    let bytes = if o.has("bytes") { n } else { n.div_ceil(8) };
    let mut v = vec![0u8; bytes];
    OsRng.fill_bytes(&mut v);
    Ok(format!("{}\n", ranbits_format(&v, o.has("continuous"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranbits_grouping() {
        assert_eq!(
            ranbits_format(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5], false),
            "0xdeadbeef_01020304_05"
        );
        assert_eq!(ranbits_format(&[0xab, 0xcd], true), "0xabcd");
        let s = ranbits(&["128".to_string()]).unwrap();
        assert_eq!(s.trim().len(), 2 + 32 + 3);
        assert!(ranbits(&["0".to_string()]).is_err());
    }

    #[test]
    fn bits_checked() {
        assert!(bits_arg("2192").is_ok());
        assert!(bits_arg("1000").is_err());
        assert!(bits_arg("x").is_err());
        // Below 1024 bits is refused (FreeS/WAN allowed 512); 1024 is allowed with a warning.
        for short in ["512", "768", "1008"] {
            assert_eq!(
                bits_arg(short).unwrap_err().to_string(),
                format!("key size {short} must be a multiple of 16 between 1024 and 4096")
            );
        }
        assert!(bits_arg("1024").is_ok());
        assert!(bits_arg("4112").is_err());
    }
}
