//! Configuration files with their secrets removed, for `ipsec barf` (FreeS/WAN's `_keycensor`
//! and `_secretcensor`): what a mailing list may see. Manual keys in ipsec.conf and every secret
//! of ipsec.secrets (PSKs, RSA private fields) become `[censored]`; public keys are shortened.

/// ipsec.conf keywords whose values are secret (manual keys).
const SECRET_CONF_KEYS: [&str; 5] = ["espenckey", "espauthkey", "ahkey", "espkey", "key"];

/// ipsec.conf with manual keys censored and RSA public keys shortened.
pub fn conf(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        let line = match l.split_once('=') {
            Some((k, _)) => {
                let name = k.trim();
                let bare = name
                    .strip_prefix("left")
                    .or_else(|| name.strip_prefix("right"))
                    .unwrap_or(name);
                if SECRET_CONF_KEYS.contains(&bare) && !name.starts_with('#') {
                    format!("{k}=[censored]")
                } else if bare.starts_with("rsasigkey") {
                    let v = l[k.len() + 1..].trim();
                    let short: String = v.chars().take(12).collect();
                    format!("{k}=[public key {short}...]")
                } else {
                    l.to_string()
                }
            }
            None => l.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// RSA key fields of ipsec.secrets that are public.
const PUBLIC_RSA_FIELDS: [&str; 2] = ["Modulus", "PublicExponent"];

/// ipsec.secrets with every secret censored: PSKs, XAUTH/EAP passwords, RSA private fields and
/// anything else that is not a comment, an ID list or a public RSA field.
pub fn secrets(text: &str) -> String {
    let mut out = String::new();
    let mut in_rsa = false;
    for l in text.lines() {
        let t = l.trim_start();
        let line = if t.is_empty() || t.starts_with('#') {
            // Comments (the `# RSA 2048 bits host date` and `#pubkey=` lines are public).
            l.to_string()
        } else if in_rsa {
            if t.starts_with('}') {
                in_rsa = false;
                l.to_string()
            } else {
                let indent = &l[..l.len() - t.len()];
                match t.split_once(':') {
                    Some((f, v)) if PUBLIC_RSA_FIELDS.contains(&f.trim()) => {
                        let short: String = v.trim().chars().take(12).collect();
                        format!("{indent}{f}: {short}... [public]")
                    }
                    Some((f, _)) => format!("{indent}{f}: [censored]"),
                    None => format!("{indent}[censored]"),
                }
            }
        } else if t.starts_with("include ") {
            l.to_string()
        } else if let Some((ids, rest)) = l.split_once(':') {
            let rest_t = rest.trim_start();
            let kind: String = rest_t
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            if kind.eq_ignore_ascii_case("RSA") {
                in_rsa = rest_t.contains('{') && !rest_t.contains('}');
                format!("{ids}: RSA {{") + if in_rsa { "" } else { " [censored] }" }
            } else if kind.is_empty() {
                // A bare PSK (`ids : "secret"`).
                format!("{ids}: [censored]")
            } else {
                format!("{ids}: {kind} [censored]")
            }
        } else {
            "[censored]".to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_keys_censored() {
        let c = conf("conn m\n\tespenckey=0x0102030405060708\n\tleftespauthkey = 0xaabb\n\tahkey=0x11\n\tleftrsasigkey=0sAQOF8tZ2abcdefghijklmnop\n\tleft=192.0.2.1\n");
        assert!(
            !c.contains("0102030405060708") && !c.contains("aabb") && !c.contains("0x11"),
            "{c}"
        );
        assert!(c.contains("\tespenckey=[censored]\n"), "{c}");
        assert!(c.contains("\tleftespauthkey =[censored]\n"), "{c}");
        assert!(
            c.contains("leftrsasigkey=[public key 0sAQOF8tZ2ab...]"),
            "{c}"
        );
        assert!(c.contains("\tleft=192.0.2.1\n"));
    }

    #[test]
    fn secrets_censored() {
        let s = secrets(
            "# comment\n192.0.2.1 192.0.2.2 : PSK \"very secret words\"\n@rw : \"bare psk\"\n: RSA {\n\t# RSA 2048 bits gw date\n\t#pubkey=0sAQOpublic\n\tModulus: 0xc0ffee0123456789abcdef\n\tPublicExponent: 0x03\n\t# everything after this point is secret\n\tPrivateExponent: 0xdeadbeefcafe\n\tPrime1: 0x1234567\n\t}\ninclude /etc/more.secrets\n",
        );
        for secret in ["very secret", "bare psk", "deadbeefcafe", "1234567"] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert!(s.contains("192.0.2.1 192.0.2.2 : PSK [censored]\n"), "{s}");
        assert!(s.contains("@rw : [censored]\n"), "{s}");
        assert!(s.contains("\tPrivateExponent: [censored]\n"), "{s}");
        assert!(s.contains("\tModulus: 0xc0ffee0123... [public]\n"), "{s}");
        assert!(s.contains("\t#pubkey=0sAQOpublic\n"), "{s}");
        assert!(s.contains("include /etc/more.secrets\n"));
    }
}
