//! AUTH payload computations (RFC 7296 2.15): the octets each side signs or MACs, and the
//! shared-key AUTH value. Signatures over those octets are
//! [`PrivateKey::sign_ikev2`](crate::pluto::crypto::PrivateKey::sign_ikev2) /
//! [`PublicKey::verify_ikev2`](crate::pluto::crypto::PublicKey::verify_ikev2) with a
//! [`SignatureScheme`](crate::pluto::crypto::rsa::SignatureScheme) (auth method 1, or 14 per
//! RFC 7427 — whose AlgorithmIdentifier the wire codec writes).
//!
//! ```text
//! InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
//! ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
//! AUTH (shared key)     = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
//! ```
//!
//! RealMessage is the whole first message that side sent (IKE_SA_INIT request or response,
//! as sent), Nonce data is the *peer's* nonce body, and RestOfIDPayload is the ID payload
//! body (ID Type, three reserved bytes, identification data).

use super::Ikev2CryptoError;
use crate::pluto::crypto::{Prf, SignatureScheme};
use crate::pluto::ikev2::wire;

/// The fixed key pad of shared-key authentication (17 ASCII bytes, no terminator).
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The octets an AUTH payload covers: `real_message | peer_nonce | prf(sk_p, id_body)`.
/// For the initiator's AUTH pass message 1, Nr, SK_pi and IDi's body; for the responder's,
/// message 2, Ni, SK_pr and IDr's body.
pub fn signed_octets(
    prf: Prf,
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p, &[id_body]);
    let mut octets = Vec::with_capacity(real_message.len() + peer_nonce.len() + maced_id.len());
    octets.extend_from_slice(real_message);
    octets.extend_from_slice(peer_nonce);
    octets.extend_from_slice(&maced_id);
    octets
}

/// The shared-key AUTH value (auth method 2): prf(prf(psk, "Key Pad for IKEv2"), octets).
pub fn psk_auth(prf: Prf, psk: &[u8], octets: &[u8]) -> Vec<u8> {
    let key = zeroize::Zeroizing::new(prf.prf(psk, &[KEY_PAD]));
    prf.prf(&key, &[octets])
}

/// Checks a received shared-key AUTH value in constant time.
pub fn verify_psk_auth(
    prf: Prf,
    psk: &[u8],
    octets: &[u8],
    auth_data: &[u8],
) -> Result<(), Ikev2CryptoError> {
    let key = zeroize::Zeroizing::new(prf.prf(psk, &[KEY_PAD]));
    if prf.verify(&key, &[octets], auth_data) {
        Ok(())
    } else {
        Err(Ikev2CryptoError::AuthFailed)
    }
}

/// The RFC 7427 scheme the wire codec read from (or will write as) an AlgorithmIdentifier,
/// as the signing/verifying scheme.
impl From<wire::SignatureScheme> for SignatureScheme {
    fn from(s: wire::SignatureScheme) -> SignatureScheme {
        match s {
            wire::SignatureScheme::RsaPkcs1Sha256 => SignatureScheme::Pkcs1Sha256,
            wire::SignatureScheme::RsaPkcs1Sha384 => SignatureScheme::Pkcs1Sha384,
            wire::SignatureScheme::RsaPkcs1Sha512 => SignatureScheme::Pkcs1Sha512,
            wire::SignatureScheme::RsaPssSha256 => SignatureScheme::PssSha256,
            wire::SignatureScheme::RsaPssSha384 => SignatureScheme::PssSha384,
            wire::SignatureScheme::RsaPssSha512 => SignatureScheme::PssSha512,
        }
    }
}

/// The wire codec's RFC 7427 scheme for a signing scheme; `None` for auth method 1, which
/// has no AlgorithmIdentifier.
pub fn wire_scheme(s: SignatureScheme) -> Option<wire::SignatureScheme> {
    wire::SIGNATURE_SCHEMES
        .into_iter()
        .find(|&w| SignatureScheme::from(w) == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pluto::crypto::ikev2::keys::tests::case_a;
    use crate::pluto::crypto::{PrivateKey, SignatureScheme};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const PSK: &[u8] = b"a shared secret, 32 bytes long..";

    /// The initiator's signed octets in scripts/ike-crypto-vectors.py: message 1 = bytes
    /// 0..100, Nr of keys::tests, IDi = ID_FQDN "west.example", SK_pi of case A.
    fn octets() -> Vec<u8> {
        let a = case_a();
        let message1: Vec<u8> = (0..100).collect();
        let nr: Vec<u8> = (0x40..0x60).collect();
        let mut idi = vec![2u8, 0, 0, 0];
        idi.extend_from_slice(b"west.example");
        signed_octets(a.algs.prf, &message1, &nr, a.sk_p(true), &idi)
    }

    #[test]
    fn signed_octets_layout() {
        let o = octets();
        assert_eq!(o.len(), 100 + 32 + 32);
        assert_eq!(&o[..100], &(0..100).collect::<Vec<u8>>()[..]);
        assert_eq!(&o[100..132], &(0x40..0x60).collect::<Vec<u8>>()[..]);
        assert_eq!(
            hex::encode(&o[132..]),
            "a7dfc9acf0414ffe1536657521a2eac0b2cdd6632d5738f38ec4296e96102010"
        );
    }

    #[test]
    fn shared_key_auth_known_answer() {
        assert_eq!(KEY_PAD.len(), 17);
        let auth = psk_auth(Prf::HmacSha256, PSK, &octets());
        assert_eq!(
            hex::encode(&auth),
            "b88c3a802dabd6b2f10b8fa4a106871df2aa01a4177631395a85321d6b0898f1"
        );
        verify_psk_auth(Prf::HmacSha256, PSK, &octets(), &auth).unwrap();
        // Wrong PSK, altered octets, truncated or altered AUTH data, another PRF: refused.
        let bad = Err(Ikev2CryptoError::AuthFailed);
        assert_eq!(
            verify_psk_auth(Prf::HmacSha256, b"another secret", &octets(), &auth),
            bad
        );
        let mut o = octets();
        o[5] ^= 1;
        assert_eq!(verify_psk_auth(Prf::HmacSha256, PSK, &o, &auth), bad);
        assert_eq!(
            verify_psk_auth(Prf::HmacSha256, PSK, &octets(), &auth[..16]),
            bad
        );
        let mut a = auth.clone();
        a[31] ^= 0x80;
        assert_eq!(verify_psk_auth(Prf::HmacSha256, PSK, &octets(), &a), bad);
        assert_eq!(verify_psk_auth(Prf::HmacSha384, PSK, &octets(), &auth), bad);
    }

    #[test]
    fn initiator_and_responder_octets_differ() {
        // The responder's octets use message 2, Ni and SK_pr: the initiator's AUTH cannot be
        // reflected back.
        let a = case_a();
        let id = [2u8, 0, 0, 0, b'x'];
        let i = signed_octets(a.algs.prf, b"msg", b"nonce", a.sk_p(true), &id);
        let r = signed_octets(a.algs.prf, b"msg", b"nonce", a.sk_p(false), &id);
        assert_ne!(i, r);
        assert_ne!(psk_auth(a.algs.prf, PSK, &i), psk_auth(a.algs.prf, PSK, &r));
    }

    #[test]
    fn wire_schemes_map_one_to_one() {
        for w in wire::SIGNATURE_SCHEMES {
            let s = SignatureScheme::from(w);
            assert_eq!(s.auth_method(), 14);
            assert_eq!(s.is_pss(), w.is_pss());
            if let Some(salt) = w.salt_len() {
                assert_eq!(salt, s.hash_len(), "{w:?}");
            }
            assert_eq!(wire_scheme(s), Some(w));
        }
        assert_eq!(wire_scheme(SignatureScheme::Pkcs1Sha1Method1), None);
    }

    #[test]
    fn signature_auth_round_trip() {
        let mut rng = StdRng::seed_from_u64(21);
        let key = PrivateKey::generate(&mut rng, 2048).unwrap();
        let o = octets();
        for scheme in SignatureScheme::ALL {
            let sig = key.sign_ikev2(&mut rng, scheme, &o).unwrap();
            key.public_key().verify_ikev2(scheme, &o, &sig).unwrap();
            let mut other = o.clone();
            other[140] ^= 1; // inside prf(SK_pi, IDi')
            assert!(key.public_key().verify_ikev2(scheme, &other, &sig).is_err());
        }
    }
}
