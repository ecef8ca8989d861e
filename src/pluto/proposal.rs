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

fn ike_cipher(s: &str) -> Option<EncAlg> {
    Some(match s {
        "3des" => EncAlg::TripleDesCbc,
        "aes" | "aes128" => EncAlg::AesCbc128,
        "aes192" => EncAlg::AesCbc192,
        "aes256" => EncAlg::AesCbc256,
        _ => return None,
    })
}

fn ike_hash(s: &str) -> Option<Prf> {
    Some(match s {
        "md5" => Prf::HmacMd5,
        "sha" | "sha1" => Prf::HmacSha1,
        "sha2" | "sha256" | "sha2_256" => Prf::HmacSha256,
        _ => return None,
    })
}

pub(crate) fn ike_group(s: &str) -> Option<DhGroup> {
    Some(match s {
        "modp1024" | "dh2" => DhGroup::Modp1024,
        "modp1536" | "dh5" => DhGroup::Modp1536,
        "modp2048" | "dh14" => DhGroup::Modp2048,
        _ => return None,
    })
}

/// Parses an Openswan `ike=` value (the ciphers, hashes and MODP groups IKEv1 negotiates): comma-separated `cipher[-hash[-group]]` (a trailing `!`
/// is accepted and ignored). A missing hash means SHA1 then MD5; a missing group MODP1536
/// then MODP1024.
pub fn parse_ike(s: &str) -> Result<Vec<IkeAlg>, String> {
    let mut out = Vec::new();
    for item in s.trim().trim_end_matches('!').split(',') {
        let item = item.trim().to_ascii_lowercase();
        if item.is_empty() {
            continue;
        }
        let parts: Vec<&str> = item.split('-').collect();
        let cipher = parts
            .first()
            .and_then(|c| ike_cipher(c))
            .ok_or_else(|| format!("ike=\"{item}\": unknown or refused cipher"))?;
        let hashes = match parts.get(1) {
            Some(h) => {
                vec![ike_hash(h).ok_or_else(|| format!("ike=\"{item}\": unknown hash \"{h}\""))?]
            }
            None => vec![Prf::HmacSha1, Prf::HmacMd5],
        };
        let groups = match parts.get(2) {
            Some(g) => vec![ike_group(g)
                .ok_or_else(|| format!("ike=\"{item}\": unknown or refused DH group \"{g}\""))?],
            None => vec![DhGroup::Modp1536, DhGroup::Modp1024],
        };
        if parts.len() > 3 {
            return Err(format!("ike=\"{item}\": too many parts"));
        }
        for &prf in &hashes {
            for &group in &groups {
                let a = IkeAlg::new(cipher, prf, group);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    if out.is_empty() {
        return Err("ike= lists no algorithm".into());
    }
    Ok(out)
}

/// Parses an Openswan `esp=` value: comma-separated `cipher[-integrity]` (`aes128-sha1`,
/// `3des-md5`, `aes256gcm16`); a CBC cipher without integrity gets SHA1 then MD5. A `;modpN`
/// suffix (PFS group) is returned separately.
pub fn parse_esp(s: &str) -> Result<(Vec<EspAlg>, Option<DhGroup>), String> {
    let s = s.trim().trim_end_matches('!');
    let (list, group) = match s.split_once(';') {
        Some((l, g)) => (
            l,
            Some(ike_group(g.trim()).ok_or_else(|| format!("esp=: unknown PFS group \"{g}\""))?),
        ),
        None => (s, None),
    };
    let mut out = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (enc, auth) =
            crate::crypto::parse_esp_transform(item).map_err(|e| format!("esp=\"{item}\": {e}"))?;
        if matches!(enc, EncAlg::Des | EncAlg::NullEnc) {
            return Err(format!("esp=\"{item}\": refused cipher"));
        }
        if enc == EncAlg::ChaCha20Poly1305 {
            return Err(format!(
                "esp=\"{item}\": ChaCha20-Poly1305 has no IKEv1 transform (RFC 7634 defines it for IKEv2)"
            ));
        }
        let auths: Vec<Option<AuthAlg>> = match (enc.is_aead(), auth) {
            (true, _) => vec![None],
            (false, Some(a)) => vec![Some(a)],
            (false, None) => vec![Some(AuthAlg::HmacSha1_96), Some(AuthAlg::HmacMd5_96)],
        };
        for auth in auths {
            let a = EspAlg { enc, auth };
            if !out.contains(&a) {
                out.push(a);
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
    fn esp_strings() {
        let (v, g) = parse_esp("aes128-sha1, aes256gcm16, 3des-md5").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].auth, None);
        assert_eq!(g, None);
        let (_, g) = parse_esp("aes128-sha1;modp2048").unwrap();
        assert_eq!(g, Some(DhGroup::Modp2048));
        assert!(parse_esp("des-md5").is_err());
        // ChaCha20-Poly1305 is an ESP algorithm of the datapath but has no IKEv1 ID.
        let e = parse_esp("aes128-sha1, chacha20poly1305").unwrap_err();
        assert!(e.contains("no IKEv1 transform"), "{e}");
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
