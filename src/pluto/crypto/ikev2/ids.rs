//! The IKEv2 transform IDs (IANA "IKEv2 Parameters", transform types 1–4) of the algorithms
//! this module implements, both ways, as raw numbers so the wire codec's typed enums
//! (`crate::pluto::ikev2::wire::{EncrId, PrfId, IntegId, DhGroup}`) map through `.value()` /
//! `From<u16>`. Anything else — other transforms, a missing or unsupported Key Length — is
//! `None`: not acceptable.

use crate::crypto::{AuthAlg, EncAlg};
use crate::pluto::crypto::{DhGroup, Prf};
use crate::pluto::proposal::Esn;

/// ENCR_3DES.
pub const ENCR_3DES: u16 = 3;
/// ENCR_AES_CBC (Key Length attribute required).
pub const ENCR_AES_CBC: u16 = 12;
/// ENCR_AES_GCM_16 (Key Length attribute required).
pub const ENCR_AES_GCM_16: u16 = 20;
/// ENCR_CHACHA20_POLY1305 (no Key Length attribute, RFC 7634 section 3).
pub const ENCR_CHACHA20_POLY1305: u16 = 28;

/// The cipher for an encryption transform ID and its Key Length attribute (bits).
pub fn enc_from_id(id: u16, key_bits: Option<u16>) -> Option<EncAlg> {
    Some(match (id, key_bits) {
        (ENCR_3DES, None) => EncAlg::TripleDesCbc,
        (ENCR_AES_CBC, Some(128)) => EncAlg::AesCbc128,
        (ENCR_AES_CBC, Some(192)) => EncAlg::AesCbc192,
        (ENCR_AES_CBC, Some(256)) => EncAlg::AesCbc256,
        (ENCR_AES_GCM_16, Some(128)) => EncAlg::AesGcm16_128,
        (ENCR_AES_GCM_16, Some(256)) => EncAlg::AesGcm16_256,
        (ENCR_CHACHA20_POLY1305, None) => EncAlg::ChaCha20Poly1305,
        _ => return None,
    })
}

/// The encryption transform ID and Key Length attribute (bits) of a cipher; `None` for DES
/// and NULL, which IKEv2 does not negotiate here.
pub fn enc_id(enc: EncAlg) -> Option<(u16, Option<u16>)> {
    Some(match enc {
        EncAlg::TripleDesCbc => (ENCR_3DES, None),
        EncAlg::AesCbc128 => (ENCR_AES_CBC, Some(128)),
        EncAlg::AesCbc192 => (ENCR_AES_CBC, Some(192)),
        EncAlg::AesCbc256 => (ENCR_AES_CBC, Some(256)),
        EncAlg::AesGcm16_128 => (ENCR_AES_GCM_16, Some(128)),
        EncAlg::AesGcm16_256 => (ENCR_AES_GCM_16, Some(256)),
        EncAlg::ChaCha20Poly1305 => (ENCR_CHACHA20_POLY1305, None),
        EncAlg::NullEnc | EncAlg::Des => return None,
    })
}

/// The PRF for a PRF transform ID (PRF_HMAC_MD5 1, _SHA1 2, _SHA2_256/384/512 5/6/7).
pub fn prf_from_id(id: u16) -> Option<Prf> {
    Some(match id {
        1 => Prf::HmacMd5,
        2 => Prf::HmacSha1,
        5 => Prf::HmacSha256,
        6 => Prf::HmacSha384,
        7 => Prf::HmacSha512,
        _ => return None,
    })
}

/// The PRF transform ID of a PRF.
pub fn prf_id(prf: Prf) -> u16 {
    match prf {
        Prf::HmacMd5 => 1,
        Prf::HmacSha1 => 2,
        Prf::HmacSha256 => 5,
        Prf::HmacSha384 => 6,
        Prf::HmacSha512 => 7,
    }
}

/// The integrity algorithm for an integrity transform ID (AUTH_HMAC_MD5_96 1, _SHA1_96 2,
/// _SHA2_256_128 12, _SHA2_384_192 13, _SHA2_512_256 14). ID 0 (NONE, with AEADs) is `None`
/// here too: the caller tells "no integrity" from "unknown integrity".
pub fn integ_from_id(id: u16) -> Option<AuthAlg> {
    Some(match id {
        1 => AuthAlg::HmacMd5_96,
        2 => AuthAlg::HmacSha1_96,
        12 => AuthAlg::HmacSha2_256_128,
        13 => AuthAlg::HmacSha2_384_192,
        14 => AuthAlg::HmacSha2_512_256,
        _ => return None,
    })
}

/// The integrity transform ID of an integrity algorithm.
pub fn integ_id(integ: AuthAlg) -> u16 {
    match integ {
        AuthAlg::HmacMd5_96 => 1,
        AuthAlg::HmacSha1_96 => 2,
        AuthAlg::HmacSha2_256_128 => 12,
        AuthAlg::HmacSha2_384_192 => 13,
        AuthAlg::HmacSha2_512_256 => 14,
    }
}

/// The Extended Sequence Numbers transform ID (type 5): 0 no ESN, 1 ESN.
pub fn esn_id(esn: Esn) -> u16 {
    match esn {
        Esn::No => 0,
        Esn::Yes => 1,
    }
}

/// The ESN choice of an Extended Sequence Numbers transform ID.
pub fn esn_from_id(id: u16) -> Option<Esn> {
    match id {
        0 => Some(Esn::No),
        1 => Some(Esn::Yes),
        _ => None,
    }
}

/// The Diffie-Hellman group for a transform type 4 ID (same numbers as IKEv1's).
pub fn dh_from_id(id: u16) -> Option<DhGroup> {
    DhGroup::from_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pluto::ikev2::wire::{self, EncrId, IntegId, PrfId};

    #[test]
    fn ids_round_trip_and_match_the_wire_codec() {
        for enc in EncAlg::ALL {
            match enc_id(enc) {
                Some((id, bits)) => {
                    assert_eq!(enc_from_id(id, bits), Some(enc));
                    assert!(EncrId::from(id).name().is_some());
                }
                None => assert!(matches!(enc, EncAlg::Des | EncAlg::NullEnc)),
            }
        }
        assert_eq!(
            enc_from_id(EncrId::AesGcm16.value(), Some(256)),
            Some(EncAlg::AesGcm16_256)
        );
        assert_eq!(
            enc_from_id(EncrId::Chacha20Poly1305.value(), None),
            Some(EncAlg::ChaCha20Poly1305)
        );
        // AES without its Key Length, GCM-192, ChaCha with one, and others: not acceptable.
        assert_eq!(enc_from_id(EncrId::AesCbc.value(), None), None);
        assert_eq!(enc_from_id(EncrId::AesGcm16.value(), Some(192)), None);
        assert_eq!(
            enc_from_id(EncrId::Chacha20Poly1305.value(), Some(256)),
            None
        );
        assert_eq!(enc_from_id(EncrId::AesCcm16.value(), Some(128)), None);
        for prf in [
            Prf::HmacMd5,
            Prf::HmacSha1,
            Prf::HmacSha256,
            Prf::HmacSha384,
            Prf::HmacSha512,
        ] {
            assert_eq!(prf_from_id(prf_id(prf)), Some(prf));
        }
        assert_eq!(
            prf_from_id(PrfId::HmacSha2_384.value()),
            Some(Prf::HmacSha384)
        );
        assert_eq!(prf_from_id(PrfId::Aes128Xcbc.value()), None);
        for a in AuthAlg::ALL {
            assert_eq!(integ_from_id(integ_id(a)), Some(a));
        }
        assert_eq!(
            integ_from_id(IntegId::HmacSha2_512_256.value()),
            Some(AuthAlg::HmacSha2_512_256)
        );
        assert_eq!(integ_from_id(IntegId::None.value()), None);
        for g in DhGroup::ALL {
            let w = wire::DhGroup::from(g.id());
            assert_eq!(dh_from_id(w.value()), Some(g));
            assert!(w.name().is_some(), "{g}");
        }
        assert_eq!(dh_from_id(wire::DhGroup::Curve448.value()), None);
    }
}
