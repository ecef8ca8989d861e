//! The IKEv2 crypto against strongSwan 5.9.8: IKE_AUTH messages two charons exchanged (the
//! wire codec's captures, `src/pluto/ikev2/wire/testdata`, with the SK_* keys charon logged)
//! are opened by [`SkCipher`], re-sealed byte for byte where the sender's choices are known,
//! and their shared-key AUTH payloads verified with [`signed_octets`] / [`verify_psk_auth`].
//! strongSwan's key schedule inputs (g^ir) are not in the captures, so the key schedule is
//! covered by the NIST and Python vectors in [`super::keys`] instead.

use std::collections::HashMap;

use super::*;
use crate::crypto::{default_provider, AuthAlg, EncAlg};
use crate::pluto::crypto::{Prf, SignatureScheme};
use crate::pluto::ikev2::wire::{
    parse_decrypted, parse_message, strip_padding, AuthMethod, Payload, PayloadIter, Protected,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn testdata(text: &str) -> HashMap<String, Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), hex::decode(v).unwrap())
        })
        .collect()
}

fn nonce(datagram: &[u8]) -> Vec<u8> {
    parse_message(datagram)
        .unwrap()
        .payloads
        .iter()
        .find_map(|p| match p {
            Payload::Nonce(n) => Some(n.to_vec()),
            _ => None,
        })
        .unwrap()
}

/// The AUTH payload and the first inner payload's body (the ID payload, as sent).
fn auth_and_id(
    first: crate::pluto::ikev2::wire::PayloadType,
    plain: &[u8],
) -> (AuthMethod, Vec<u8>, Vec<u8>) {
    let inner = parse_decrypted(first, plain).unwrap();
    let auth = inner
        .iter()
        .find_map(|p| match p {
            Payload::Auth(a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    let chain = strip_padding(plain).unwrap();
    let id_body = PayloadIter::new(first, chain)
        .next()
        .unwrap()
        .unwrap()
        .body()
        .to_vec();
    (auth.method, auth.data, id_body)
}

#[test]
fn strongswan_psk_aes_cbc_hmac_sha256() {
    // aes128-sha256-modp2048, PSK "v2capture-secret".
    for d in [
        testdata(include_str!(
            "../../ikev2/wire/testdata/strongswan_psk_cbc.txt"
        )),
        testdata(include_str!(
            "../../ikev2/wire/testdata/strongswan_default.txt"
        )),
    ] {
        for (msg, first_msg, peer_init, ke, ka, kp, initiator) in [
            (
                "auth_req",
                "init_req",
                "init_resp",
                "sk_ei",
                "sk_ai",
                "sk_pi",
                true,
            ),
            (
                "auth_resp",
                "init_resp",
                "init_req",
                "sk_er",
                "sk_ar",
                "sk_pr",
                false,
            ),
        ] {
            let bytes = &d[msg];
            let c = SkCipher::new(
                default_provider(),
                EncAlg::AesCbc128,
                Some(AuthAlg::HmacSha2_256_128),
                &d[ke],
                &d[ka],
            )
            .unwrap();
            let p = Protected::locate(bytes, c.iv_len(), c.icv_len()).unwrap();
            let body = &bytes[p.aad.len()..];
            let chain = c.open(p.aad, body).unwrap();
            // strongSwan pads with random octets; the decrypted chain is what the codec reads.
            let mut plain = p.ciphertext.to_vec();
            crate::crypto::default_provider()
                .block_cipher(EncAlg::AesCbc128, &d[ke])
                .unwrap()
                .decrypt(p.iv, &mut plain)
                .unwrap();
            assert_eq!(chain, strip_padding(&plain).unwrap(), "{msg}");
            // The other direction's keys refuse it.
            let (other_e, other_a) = if initiator {
                ("sk_er", "sk_ar")
            } else {
                ("sk_ei", "sk_ai")
            };
            let other = SkCipher::new(
                default_provider(),
                EncAlg::AesCbc128,
                Some(AuthAlg::HmacSha2_256_128),
                &d[other_e],
                &d[other_a],
            )
            .unwrap();
            assert_eq!(
                other.open(p.aad, body).unwrap_err(),
                Ikev2CryptoError::IntegrityFailed
            );
            // AUTH = prf(prf(PSK, "Key Pad for IKEv2"), first message | peer nonce |
            // prf(SK_p, ID')).
            let (method, auth, id_body) = auth_and_id(p.first_inner, &plain);
            assert_eq!(method, AuthMethod::SharedKeyMic);
            let octets = signed_octets(
                Prf::HmacSha256,
                &d[first_msg],
                &nonce(&d[peer_init]),
                &d[kp],
                &id_body,
            );
            verify_psk_auth(Prf::HmacSha256, b"v2capture-secret", &octets, &auth).unwrap();
            assert_eq!(
                psk_auth(Prf::HmacSha256, b"v2capture-secret", &octets),
                auth
            );
            assert_eq!(
                verify_psk_auth(Prf::HmacSha256, b"v2capture-secreT", &octets, &auth),
                Err(Ikev2CryptoError::AuthFailed)
            );
        }
    }
}

#[test]
fn strongswan_aes_gcm_256_ike_auth() {
    // aes256gcm16-prfsha384-ecp384, RSA-PSS: the IKE_AUTH messages open with SkCipher, and
    // since an AEAD needs no padding and strongSwan's IV is a counter, re-sealing the chain
    // with that IV gives strongSwan's bytes exactly.
    let d = testdata(include_str!(
        "../../ikev2/wire/testdata/strongswan_rsapss_gcm.txt"
    ));
    for (msg, key) in [("auth_req", "sk_ei"), ("auth_resp", "sk_er")] {
        let bytes = &d[msg];
        let mut c =
            SkCipher::new(default_provider(), EncAlg::AesGcm16_256, None, &d[key], &[]).unwrap();
        let p = Protected::locate(bytes, c.iv_len(), c.icv_len()).unwrap();
        let body = &bytes[p.aad.len()..];
        let chain = c.open(p.aad, body).unwrap();
        assert_eq!(body.len(), c.body_len(chain.len()), "{msg}: no padding");
        c.set_next_iv(u64::from_be_bytes(p.iv.try_into().unwrap()));
        let resealed = c
            .seal(&mut StdRng::seed_from_u64(1), p.aad, &chain)
            .unwrap();
        assert_eq!(resealed, body, "{msg}");
        // The AUTH payload is RFC 7427 RSASSA-PSS SHA-256, which maps to our scheme.
        let mut plain = chain.clone();
        plain.push(0);
        let (method, auth, _) = auth_and_id(p.first_inner, &plain);
        assert_eq!(method, AuthMethod::DigitalSignature);
        let sig = crate::pluto::ikev2::wire::AuthPayload { method, data: auth }
            .signature_auth()
            .unwrap();
        let scheme = SignatureScheme::from(sig.scheme().unwrap());
        assert_eq!(scheme, SignatureScheme::PssSha256);
        assert_eq!(sig.signature.len(), 256);
        // A flipped tag or header byte is refused.
        let mut bad = body.to_vec();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            c.open(p.aad, &bad).unwrap_err(),
            Ikev2CryptoError::IntegrityFailed
        );
        let mut aad = p.aad.to_vec();
        aad[20] ^= 1; // message ID
        assert_eq!(
            c.open(&aad, body).unwrap_err(),
            Ikev2CryptoError::IntegrityFailed
        );
    }
}
