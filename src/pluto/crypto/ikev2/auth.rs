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
use crate::pluto::crypto::Prf;

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
