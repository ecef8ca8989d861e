//! The algorithm vocabulary shared by every IKE version: IKE SA suites ([`IkeAlg`]:
//! encryption, PRF, integrity, DH group), ESP suites ([`EspAlg`]), ESN ([`Esn`]) and the
//! authentication methods ([`AuthKind`]), in the datapath's types
//! ([`crate::crypto::EncAlg`], [`crate::crypto::AuthAlg`]) and Pluto's
//! ([`crate::pluto::crypto::Prf`], [`crate::pluto::crypto::DhGroup`]). `ike=` and `esp=`
//! (Openswan syntax) parse into it once, with the default lists; each version maps it to its
//! own wire IDs (IKEv1: `crate::pluto::ikev1::proposal`; IKEv2:
//! [`crate::pluto::crypto::ikev2::ids`]).

use crate::crypto::{AuthAlg, EncAlg};
use crate::pluto::crypto::{DhGroup, Prf};

/// Most ISAKMP SA lifetime accepted (seconds; Pluto's code value, 24 h).
pub const MAX_IKE_LIFETIME: u64 = 86400;
/// Most IPsec SA lifetime accepted (seconds).
pub const MAX_IPSEC_LIFETIME: u64 = 86400;

/// One IKE SA suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeAlg {
    /// Message encryption.
    pub enc: EncAlg,
    /// PRF (IKEv1: the HMAC of the negotiated hash).
    pub prf: Prf,
    /// Message integrity (IKEv2's INTEG transform; `None` for an AEAD). IKEv1 authenticates
    /// with the PRF's hash and does not negotiate it.
    pub integ: Option<AuthAlg>,
    /// DH group.
    pub group: DhGroup,
}

/// The integrity algorithm that goes with a PRF's hash (`sha2_256` in `ike=` means
/// PRF_HMAC_SHA2_256 and AUTH_HMAC_SHA2_256_128).
pub fn integ_for_prf(prf: Prf) -> AuthAlg {
    match prf {
        Prf::HmacMd5 => AuthAlg::HmacMd5_96,
        Prf::HmacSha1 => AuthAlg::HmacSha1_96,
        Prf::HmacSha256 => AuthAlg::HmacSha2_256_128,
        Prf::HmacSha384 => AuthAlg::HmacSha2_384_192,
        Prf::HmacSha512 => AuthAlg::HmacSha2_512_256,
    }
}

impl IkeAlg {
    /// The suite `enc`-`prf`-`group`, with the integrity of the PRF's hash (none for an
    /// AEAD).
    pub fn new(enc: EncAlg, prf: Prf, group: DhGroup) -> IkeAlg {
        IkeAlg {
            enc,
            prf,
            integ: (!enc.is_aead()).then(|| integ_for_prf(prf)),
            group,
        }
    }

    /// Pluto's algorithm string, e.g. `AES_CBC_128-SHA2_256-MODP2048`.
    pub fn name(&self) -> String {
        format!(
            "{}-{}-{}",
            ike_enc_name(self.enc),
            self.prf.hash_name(),
            self.group.name()
        )
    }
}

/// Pluto's name of an IKE cipher (`3DES_CBC_192`, `AES_CBC_128`, `AES_GCM_16_256`, …).
pub fn ike_enc_name(enc: EncAlg) -> &'static str {
    match enc {
        EncAlg::TripleDesCbc => "3DES_CBC_192",
        EncAlg::AesCbc128 => "AES_CBC_128",
        EncAlg::AesCbc192 => "AES_CBC_192",
        EncAlg::AesCbc256 => "AES_CBC_256",
        EncAlg::AesGcm16_128 => "AES_GCM_16_128",
        EncAlg::AesGcm16_256 => "AES_GCM_16_256",
        EncAlg::ChaCha20Poly1305 => "CHACHA20_POLY1305",
        EncAlg::NullEnc => "NULL",
        EncAlg::Des => "DES_CBC",
    }
}

/// Authentication method of an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// Pre-shared key.
    Psk,
    /// RSA signatures.
    Rsa,
}

/// One ESP suite (`auth` None for an AEAD, or for ESP under AH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspAlg {
    /// Cipher.
    pub enc: EncAlg,
    /// Integrity.
    pub auth: Option<AuthAlg>,
}

/// Extended Sequence Numbers (RFC 4303 2.2.1). The datapath keeps 32-bit sequence numbers,
/// so child SAs are proposed and accepted without ESN (IKEv1 has no ESN attribute; IKEv2
/// maps it to transform type 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Esn {
    /// 32-bit sequence numbers.
    #[default]
    No,
    /// 64-bit sequence numbers.
    Yes,
}

/// The default IKE SA list: AES/SHA2/MODP2048 first, then FreeS/WAN's own four.
pub fn default_ike() -> Vec<IkeAlg> {
    use DhGroup::*;
    use EncAlg::*;
    use Prf::*;
    [
        (AesCbc128, HmacSha256, Modp2048),
        (AesCbc256, HmacSha256, Modp2048),
        (AesCbc128, HmacSha1, Modp2048),
        (TripleDesCbc, HmacMd5, Modp1536),
        (TripleDesCbc, HmacSha1, Modp1536),
        (TripleDesCbc, HmacSha1, Modp1024),
        (TripleDesCbc, HmacMd5, Modp1024),
    ]
    .into_iter()
    .map(|(enc, prf, group)| IkeAlg::new(enc, prf, group))
    .collect()
}

/// The default ESP list: AES/SHA2 first, then FreeS/WAN's 3DES-MD5 and 3DES-SHA1.
pub fn default_esp() -> Vec<EspAlg> {
    use AuthAlg::*;
    use EncAlg::*;
    [
        (AesCbc128, HmacSha2_256_128),
        (AesCbc256, HmacSha2_256_128),
        (AesCbc128, HmacSha1_96),
        (TripleDesCbc, HmacMd5_96),
        (TripleDesCbc, HmacSha1_96),
    ]
    .into_iter()
    .map(|(enc, auth)| EspAlg {
        enc,
        auth: Some(auth),
    })
    .collect()
}

/// The default IKE SA list of IKEv2 conns: AES-GCM and AES-CBC with SHA2 over Curve25519
/// first, then MODP2048 (for peers without Curve25519; the KE payload is Curve25519's, so
/// such a peer answers INVALID_KE_PAYLOAD and the initiator retries with MODP2048).
pub fn default_ike_v2() -> Vec<IkeAlg> {
    use DhGroup::*;
    use EncAlg::*;
    use Prf::*;
    [
        (AesGcm16_256, HmacSha256, Curve25519),
        (AesGcm16_128, HmacSha256, Curve25519),
        (AesCbc256, HmacSha256, Curve25519),
        (AesCbc128, HmacSha256, Curve25519),
        (AesGcm16_256, HmacSha256, Modp2048),
        (AesCbc256, HmacSha256, Modp2048),
        (AesCbc128, HmacSha256, Modp2048),
        (AesCbc128, HmacSha1, Modp2048),
    ]
    .into_iter()
    .map(|(enc, prf, group)| IkeAlg::new(enc, prf, group))
    .collect()
}

/// The default ESP list of IKEv2 conns: AES-GCM, ChaCha20-Poly1305, then AES-CBC with SHA2
/// and SHA1.
pub fn default_esp_v2() -> Vec<EspAlg> {
    use AuthAlg::*;
    use EncAlg::*;
    [
        (AesGcm16_256, None),
        (AesGcm16_128, None),
        (ChaCha20Poly1305, None),
        (AesCbc128, Some(HmacSha2_256_128)),
        (AesCbc256, Some(HmacSha2_256_128)),
        (AesCbc128, Some(HmacSha1_96)),
    ]
    .into_iter()
    .map(|(enc, auth)| EspAlg { enc, auth })
    .collect()
}

fn ike_hash(s: &str) -> Option<Prf> {
    Some(match s {
        "md5" => Prf::HmacMd5,
        "sha" | "sha1" => Prf::HmacSha1,
        "sha2" | "sha256" | "sha2_256" => Prf::HmacSha256,
        "sha384" | "sha2_384" => Prf::HmacSha384,
        "sha512" | "sha2_512" => Prf::HmacSha512,
        _ => return None,
    })
}

fn ike_prf(s: &str) -> Option<Prf> {
    ike_hash(s.strip_prefix("prf")?)
}

/// A DH group by its strongSwan / Openswan name (`modp2048`, `dh14`, `ecp384`, `curve25519`).
pub(crate) fn ike_group(s: &str) -> Option<DhGroup> {
    Some(match s {
        "modp1024" | "dh2" => DhGroup::Modp1024,
        "modp1536" | "dh5" => DhGroup::Modp1536,
        "modp2048" | "dh14" => DhGroup::Modp2048,
        "modp3072" | "dh15" => DhGroup::Modp3072,
        "modp4096" | "dh16" => DhGroup::Modp4096,
        "ecp256" | "dh19" => DhGroup::Ecp256,
        "ecp384" | "dh20" => DhGroup::Ecp384,
        "ecp521" | "dh21" => DhGroup::Ecp521,
        "curve25519" | "x25519" | "dh31" => DhGroup::Curve25519,
        _ => return None,
    })
}

impl IkeAlg {
    /// Whether IKEv1 can negotiate this suite: a CBC cipher, a MODP group of FreeS/WAN's, and
    /// integrity that is the PRF's hash.
    pub fn ikev1_capable(&self) -> bool {
        !self.enc.is_aead() && self.group.is_ikev1() && self.integ == Some(integ_for_prf(self.prf))
    }
}

/// Parses an `ike=` value: comma-separated proposals, each a `-`-separated list of
/// algorithms in any order — strongSwan style (`aes256gcm16-prfsha384-ecp384`,
/// `aes128-sha256-modp2048`, `aes128-aes256-sha256-prfsha384-curve25519-modp3072`) or the
/// FreeS/WAN/Openswan `cipher[-hash[-group]]` (a trailing `!` is accepted and ignored). Each
/// proposal is every combination of its ciphers, PRFs (with integrity), and groups. A CBC
/// cipher's hash is both its integrity and, without `prf…`, its PRF; an AEAD's hash (or
/// `prf…`) is its PRF. FreeS/WAN's defaults fill what is missing: no hash means SHA1 then
/// MD5 (SHA2_256 for an AEAD), no group MODP1536 then MODP1024.
pub fn parse_ike(s: &str) -> Result<Vec<IkeAlg>, String> {
    let mut out = Vec::new();
    for item in s.trim().trim_end_matches('!').split(',') {
        let item = item.trim().to_ascii_lowercase();
        if item.is_empty() {
            continue;
        }
        let (mut ciphers, mut hashes, mut prfs, mut groups) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in item.split('-') {
            if let Some(h) = ike_hash(t) {
                hashes.push(h);
            } else if let Some(p) = ike_prf(t) {
                prfs.push(p);
            } else if let Some(g) = ike_group(t) {
                groups.push(g);
            } else {
                match t.parse::<EncAlg>() {
                    Ok(EncAlg::Des | EncAlg::NullEnc) => {
                        return Err(format!("ike=\"{item}\": refused cipher \"{t}\""))
                    }
                    Ok(e) => ciphers.push(e),
                    Err(_) => {
                        return Err(format!(
                            "ike=\"{item}\": unknown or refused algorithm \"{t}\""
                        ))
                    }
                }
            }
        }
        if ciphers.is_empty() {
            return Err(format!("ike=\"{item}\": no cipher"));
        }
        if groups.is_empty() {
            groups = vec![DhGroup::Modp1536, DhGroup::Modp1024];
        }
        for &enc in &ciphers {
            // (PRF, integrity) pairs.
            let pairs: Vec<(Prf, Option<AuthAlg>)> = if enc.is_aead() {
                let p = if !prfs.is_empty() {
                    prfs.clone()
                } else if !hashes.is_empty() {
                    hashes.clone()
                } else {
                    vec![Prf::HmacSha256]
                };
                p.into_iter().map(|p| (p, None)).collect()
            } else {
                let h = if hashes.is_empty() {
                    if !prfs.is_empty() {
                        return Err(format!(
                            "ike=\"{item}\": a CBC cipher needs an integrity algorithm"
                        ));
                    }
                    vec![Prf::HmacSha1, Prf::HmacMd5]
                } else {
                    hashes.clone()
                };
                if prfs.is_empty() {
                    h.iter().map(|&p| (p, Some(integ_for_prf(p)))).collect()
                } else {
                    prfs.iter()
                        .flat_map(|&p| h.iter().map(move |&i| (p, Some(integ_for_prf(i)))))
                        .collect()
                }
            };
            for &(prf, integ) in &pairs {
                for &group in &groups {
                    let a = IkeAlg {
                        enc,
                        prf,
                        integ,
                        group,
                    };
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err("ike= lists no algorithm".into());
    }
    Ok(out)
}

/// Parses an `esp=` value: comma-separated proposals, each a `-`-separated list of ciphers,
/// integrity algorithms and optionally DH groups — strongSwan style (`aes128-sha256-modp2048`,
/// `aes256gcm16-ecp384`, `chacha20poly1305`; a group means PFS with that group) or the
/// FreeS/WAN/Openswan `cipher[-integrity]` (`aes128-sha1`, `3des-md5-96`, `aes256gcm16`) with
/// an optional `;modpN` PFS suffix. A CBC cipher without integrity gets SHA1 then MD5.
/// `noesn` is accepted (sequence numbers are 32 bits).
pub fn parse_esp(s: &str) -> Result<(Vec<EspAlg>, Option<DhGroup>), String> {
    let s = s.trim().trim_end_matches('!');
    let (list, mut group) = match s.split_once(';') {
        Some((l, g)) => (
            l,
            Some(ike_group(g.trim()).ok_or_else(|| format!("esp=: unknown PFS group \"{g}\""))?),
        ),
        None => (s, None),
    };
    let mut out = Vec::new();
    for item in list.split(',') {
        let item = item.trim().to_ascii_lowercase();
        if item.is_empty() {
            continue;
        }
        let (mut ciphers, mut auths) = (Vec::new(), Vec::new());
        let tokens: Vec<&str> = item.split('-').collect();
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i];
            // `sha2_256-128`, `md5-96`: an integrity name with its ICV length.
            let joined = tokens
                .get(i + 1)
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .map(|n| format!("{t}-{n}"));
            if let Some(a) = joined.as_deref().and_then(|j| j.parse::<AuthAlg>().ok()) {
                auths.push(a);
                i += 2;
                continue;
            }
            if let Some(g) = ike_group(t) {
                match group {
                    Some(old) if old != g => {
                        return Err(format!(
                            "esp=\"{item}\": more than one PFS group ({} and {})",
                            old.name(),
                            g.name()
                        ))
                    }
                    _ => group = Some(g),
                }
            } else if t == "noesn" {
            } else if let Ok(a) = t.parse::<AuthAlg>() {
                auths.push(a);
            } else {
                match t.parse::<EncAlg>() {
                    Ok(EncAlg::Des | EncAlg::NullEnc) => {
                        return Err(format!("esp=\"{item}\": refused cipher"))
                    }
                    Ok(e) => ciphers.push(e),
                    Err(e) => return Err(format!("esp=\"{item}\": {e}")),
                }
            }
            i += 1;
        }
        if ciphers.is_empty() {
            return Err(format!("esp=\"{item}\": no cipher"));
        }
        for &enc in &ciphers {
            let list: Vec<Option<AuthAlg>> = match (enc.is_aead(), auths.is_empty()) {
                (true, true) => vec![None],
                (true, false) => {
                    return Err(format!(
                        "esp=\"{item}\": AES-GCM and ChaCha20-Poly1305 take no integrity algorithm"
                    ))
                }
                (false, false) => auths.iter().copied().map(Some).collect(),
                (false, true) => vec![Some(AuthAlg::HmacSha1_96), Some(AuthAlg::HmacMd5_96)],
            };
            for auth in list {
                let a = EspAlg { enc, auth };
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    if out.is_empty() {
        return Err("esp= lists no algorithm".into());
    }
    Ok((out, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_strings() {
        let v = parse_ike("aes128-sha1-modp2048").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name(), "AES_CBC_128-SHA-MODP2048");
        let v = parse_ike("3des-sha1-modp1024, aes256-sha2_256-modp2048").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(parse_ike("3des").unwrap().len(), 4);
        assert!(parse_ike("des-md5").is_err());
        assert!(parse_ike("aes-sha1-modp768").is_err());
    }

    #[test]
    fn strongswan_style_proposals() {
        let v = parse_ike("aes256gcm16-prfsha384-ecp384").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name(), "AES_GCM_16_256-SHA2_384-ECP_384");
        assert_eq!(v[0].integ, None);
        assert!(!v[0].ikev1_capable());
        let v = parse_ike("aes128-sha256-modp2048").unwrap();
        assert_eq!(
            v,
            vec![IkeAlg::new(
                EncAlg::AesCbc128,
                Prf::HmacSha256,
                DhGroup::Modp2048
            )]
        );
        assert!(v[0].ikev1_capable());
        let v = parse_ike("chacha20poly1305-prfsha256-curve25519").unwrap();
        assert_eq!(v[0].enc, EncAlg::ChaCha20Poly1305);
        assert_eq!(v[0].group, DhGroup::Curve25519);
        // Several of each kind: every combination.
        let v = parse_ike("aes128-aes256-sha256-sha384-modp2048-curve25519").unwrap();
        assert_eq!(v.len(), 8);
        // A separate PRF: integrity from the hash, PRF from prf….
        let v = parse_ike("aes128-sha256-prfsha512-modp3072").unwrap();
        assert_eq!(v[0].prf, Prf::HmacSha512);
        assert_eq!(v[0].integ, Some(AuthAlg::HmacSha2_256_128));
        assert!(parse_ike("aes128-prfsha256-modp2048").is_err());
        assert!(parse_ike("aes128-sha256-ecp999").is_err());

        let (v, g) = parse_esp("aes128-sha256-modp2048").unwrap();
        assert_eq!(
            v,
            vec![EspAlg {
                enc: EncAlg::AesCbc128,
                auth: Some(AuthAlg::HmacSha2_256_128)
            }]
        );
        assert_eq!(g, Some(DhGroup::Modp2048));
        let (v, g) = parse_esp("chacha20poly1305").unwrap();
        assert_eq!(v[0].enc, EncAlg::ChaCha20Poly1305);
        assert_eq!(g, None);
        let (_, g) = parse_esp("aes256gcm16-ecp384-noesn").unwrap();
        assert_eq!(g, Some(DhGroup::Ecp384));
        let (v, _) = parse_esp("3des-md5-96, aes-sha2_256-128").unwrap();
        assert_eq!(v[0].auth, Some(AuthAlg::HmacMd5_96));
        assert_eq!(v[1].auth, Some(AuthAlg::HmacSha2_256_128));
        assert!(parse_esp("aes256gcm16-sha256").is_err());
        assert!(parse_esp("aes128-sha1-modp2048-ecp384").is_err());
    }

    #[test]
    fn esp_strings() {
        let (v, g) = parse_esp("aes128-sha1, aes256gcm16, 3des-md5").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].auth, None);
        assert_eq!(g, None);
        let (_, g) = parse_esp("aes128-sha1;modp2048").unwrap();
        assert_eq!(g, Some(DhGroup::Modp2048));
        assert!(parse_esp("des-md5").is_err());
    }

    /// Every suite the vocabulary holds maps to IKEv2 transform IDs (and back), so IKEv2 can
    /// negotiate from the same `ike=` / `esp=` lists.
    #[test]
    fn vocabulary_maps_to_ikev2_ids() {
        use crate::pluto::crypto::ikev2::ids;
        let ike = parse_ike("3des, aes128-sha2_256-modp2048, aes256-md5-modp1536").unwrap();
        for a in default_ike().into_iter().chain(ike) {
            let (id, bits) = ids::enc_id(a.enc).expect("an ENCR ID");
            assert_eq!(ids::enc_from_id(id, bits), Some(a.enc));
            assert_eq!(ids::prf_from_id(ids::prf_id(a.prf)), Some(a.prf));
            let integ = a.integ.expect("CBC suites have integrity");
            assert_eq!(ids::integ_from_id(ids::integ_id(integ)), Some(integ));
            assert_eq!(ids::dh_from_id(a.group.id()), Some(a.group));
        }
        let (esp, _) = parse_esp("aes128-sha1, aes256gcm16, 3des-md5, aes-sha2_512").unwrap();
        for e in default_esp().into_iter().chain(esp) {
            let (id, bits) = ids::enc_id(e.enc).expect("an ENCR ID");
            assert_eq!(ids::enc_from_id(id, bits), Some(e.enc));
            if let Some(a) = e.auth {
                assert_eq!(ids::integ_from_id(ids::integ_id(a)), Some(a));
            }
        }
        for esn in [Esn::No, Esn::Yes] {
            assert_eq!(ids::esn_from_id(ids::esn_id(esn)), Some(esn));
        }
        assert_eq!(Esn::default(), Esn::No);
        // An AEAD suite carries no integrity.
        let gcm = IkeAlg::new(EncAlg::AesGcm16_256, Prf::HmacSha384, DhGroup::Ecp384);
        assert_eq!(gcm.integ, None);
        assert_eq!(gcm.name(), "AES_GCM_16_256-SHA2_384-ECP_384");
    }
}
