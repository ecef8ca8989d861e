//! IKEv1 cryptographic computations (RFC 2409 sections 5, 5.5, 5.7, appendix B; RFC 3947).
//!
//! Notation follows RFC 2409: `prf` is the HMAC of the negotiated phase-1 hash, `hash` the
//! bare hash, `X_b` the body of payload X (after its generic header), `g^xi`/`g^xr` the
//! initiator's/responder's KE data, `g^xy` the shared secret, `CKY-I`/`CKY-R` the cookies,
//! `M-ID` the 4-byte message ID.
//!
//! Keys come back as [`Secret`]s, wiped on drop. Nothing here keeps state: the state machine
//! stores keys and the current IV per SA / message ID and passes them in.

use std::net::IpAddr;

use zeroize::Zeroizing;

use crate::pluto::crypto::{CbcCipher, CipherError, Prf};
use crate::pluto::isakmp::{
    parse_decrypted_payloads, Header, ParseError, Payload, PayloadType, HEADER_LEN,
};

/// Secret bytes, wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// SKEYID for pre-shared keys: prf(pre-shared-key, Ni_b | Nr_b).
pub fn skeyid_psk(prf: Prf, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Secret {
    Zeroizing::new(prf.prf(psk, &[ni_b, nr_b]))
}

/// SKEYID for signatures: prf(Ni_b | Nr_b, g^xy).
pub fn skeyid_sig(prf: Prf, ni_b: &[u8], nr_b: &[u8], gxy: &[u8]) -> Secret {
    let key = Zeroizing::new([ni_b, nr_b].concat());
    Zeroizing::new(prf.prf(&key, &[gxy]))
}

/// The keying material of an ISAKMP SA.
#[derive(Clone)]
pub struct Phase1Keys {
    /// SKEYID (needed again for HASH_I / HASH_R).
    pub skeyid: Secret,
    /// SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0): derives IPsec keys.
    pub skeyid_d: Secret,
    /// SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1): authenticates phase 2.
    pub skeyid_a: Secret,
    /// SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2).
    pub skeyid_e: Secret,
    /// The ISAKMP message encryption key, from SKEYID_e (appendix B expansion if needed).
    pub enc_key: Secret,
}

impl core::fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Phase1Keys(<secret>)")
    }
}

/// Derives SKEYID_d, SKEYID_a, SKEYID_e and the encryption key of `enc_key_len` bytes
/// (RFC 2409 5 and appendix B) from SKEYID.
pub fn derive_phase1_keys(
    prf: Prf,
    skeyid: &[u8],
    gxy: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    enc_key_len: usize,
) -> Phase1Keys {
    let skeyid_d = Zeroizing::new(prf.prf(skeyid, &[gxy, cky_i, cky_r, &[0]]));
    let skeyid_a = Zeroizing::new(prf.prf(skeyid, &[&skeyid_d, gxy, cky_i, cky_r, &[1]]));
    let skeyid_e = Zeroizing::new(prf.prf(skeyid, &[&skeyid_a, gxy, cky_i, cky_r, &[2]]));
    let enc_key = encryption_key(prf, &skeyid_e, enc_key_len);
    Phase1Keys {
        skeyid: Zeroizing::new(skeyid.to_vec()),
        skeyid_d,
        skeyid_a,
        skeyid_e,
        enc_key,
    }
}

/// The cipher key from SKEYID_e (RFC 2409 appendix B): its first `len` bytes if it is long
/// enough, else the first `len` bytes of Ka = K1 | K2 | …, K1 = prf(SKEYID_e, 0) (one zero
/// byte), Kn = prf(SKEYID_e, Kn-1).
pub fn encryption_key(prf: Prf, skeyid_e: &[u8], len: usize) -> Secret {
    if skeyid_e.len() >= len {
        return Zeroizing::new(skeyid_e[..len].to_vec());
    }
    let mut ka = Zeroizing::new(Vec::with_capacity(len + prf.output_len()));
    let mut k = Zeroizing::new(prf.prf(skeyid_e, &[&[0]]));
    loop {
        ka.extend_from_slice(&k);
        if ka.len() >= len {
            break;
        }
        k = Zeroizing::new(prf.prf(skeyid_e, &[&k]));
    }
    ka.truncate(len);
    ka
}

/// The phase-1 IV: hash(g^xi | g^xr), truncated to the cipher block size (RFC 2409 app. B).
pub fn phase1_iv(prf: Prf, gxi: &[u8], gxr: &[u8], block_size: usize) -> Vec<u8> {
    truncated(prf.hash(&[gxi, gxr]), block_size)
}

/// The first IV of a Quick Mode or Informational exchange: hash(last phase-1 CBC output
/// block | M-ID), truncated to the block size. `last_phase1_block` is the IV state after the
/// last Main Mode message (its last ciphertext block).
pub fn phase2_iv(
    prf: Prf,
    last_phase1_block: &[u8],
    message_id: u32,
    block_size: usize,
) -> Vec<u8> {
    truncated(
        prf.hash(&[last_phase1_block, &message_id.to_be_bytes()]),
        block_size,
    )
}

fn truncated(mut v: Vec<u8>, len: usize) -> Vec<u8> {
    v.truncate(len);
    v
}

#[allow(clippy::too_many_arguments)] // mirrors the RFC formula
/// HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b) (RFC 2409 5).
///
/// `sai_b` is the body of the initiator's SA payload *as sent*, `idii_b` the body of the
/// initiator's ID payload.
pub fn hash_i(
    prf: Prf,
    skeyid: &[u8],
    gxi: &[u8],
    gxr: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    sai_b: &[u8],
    idii_b: &[u8],
) -> Vec<u8> {
    prf.prf(skeyid, &[gxi, gxr, cky_i, cky_r, sai_b, idii_b])
}

#[allow(clippy::too_many_arguments)] // mirrors the RFC formula
/// HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b) (RFC 2409 5).
///
/// Arguments are given in initiator/responder order like [`hash_i`]; the function swaps them.
/// `sai_b` is still the *initiator's* SA body.
pub fn hash_r(
    prf: Prf,
    skeyid: &[u8],
    gxi: &[u8],
    gxr: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    sai_b: &[u8],
    idir_b: &[u8],
) -> Vec<u8> {
    prf.prf(skeyid, &[gxr, gxi, cky_r, cky_i, sai_b, idir_b])
}

/// Quick Mode HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr]): `after_hash` is
/// the message from the first payload after the HASH payload to the end of the last payload
/// (generic headers included, padding excluded).
pub fn quick_hash1(prf: Prf, skeyid_a: &[u8], message_id: u32, after_hash: &[u8]) -> Vec<u8> {
    prf.prf(skeyid_a, &[&message_id.to_be_bytes(), after_hash])
}

/// Quick Mode HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr]), with
/// `ni_b` the initiator's nonce body and `after_hash` as in [`quick_hash1`].
pub fn quick_hash2(
    prf: Prf,
    skeyid_a: &[u8],
    message_id: u32,
    ni_b: &[u8],
    after_hash: &[u8],
) -> Vec<u8> {
    prf.prf(skeyid_a, &[&message_id.to_be_bytes(), ni_b, after_hash])
}

/// Quick Mode HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
pub fn quick_hash3(
    prf: Prf,
    skeyid_a: &[u8],
    message_id: u32,
    ni_b: &[u8],
    nr_b: &[u8],
) -> Vec<u8> {
    prf.prf(skeyid_a, &[&[0], &message_id.to_be_bytes(), ni_b, nr_b])
}

/// Informational HASH(1) = prf(SKEYID_a, M-ID | N/D) (RFC 2409 5.7): `after_hash` is the
/// Notification or Delete payload(s) following the HASH payload, generic headers included.
pub fn informational_hash(
    prf: Prf,
    skeyid_a: &[u8],
    message_id: u32,
    after_hash: &[u8],
) -> Vec<u8> {
    prf.prf(skeyid_a, &[&message_id.to_be_bytes(), after_hash])
}

#[allow(clippy::too_many_arguments)] // mirrors the RFC formula
/// IPsec keying material for one SA direction (RFC 2409 5.5):
/// KEYMAT = K1 | K2 | …, K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
/// Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), truncated to `len`.
///
/// `gqm_xy` is the Quick Mode shared secret with PFS, `protocol` the proposal's protocol ID,
/// `spi` the SPI of this SA (the receiver's choice: ours for inbound, the peer's for
/// outbound). `len` is encryption key + integrity key length; the encryption key comes first.
pub fn keymat(
    prf: Prf,
    skeyid_d: &[u8],
    gqm_xy: Option<&[u8]>,
    protocol: u8,
    spi: &[u8],
    ni_b: &[u8],
    nr_b: &[u8],
    len: usize,
) -> Secret {
    let gxy: &[u8] = gqm_xy.unwrap_or(&[]);
    let tail: [&[u8]; 5] = [gxy, &[protocol], spi, ni_b, nr_b];
    let mut out = Zeroizing::new(Vec::with_capacity(len + prf.output_len()));
    let mut k = Zeroizing::new(prf.prf(skeyid_d, &tail));
    loop {
        out.extend_from_slice(&k);
        if out.len() >= len {
            break;
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(6);
        parts.push(&k);
        parts.extend_from_slice(&tail);
        k = Zeroizing::new(prf.prf(skeyid_d, &parts));
    }
    out.truncate(len);
    out
}

/// NAT-D hash (RFC 3947 3.2): HASH(CKY-I | CKY-R | IP | Port), with the negotiated hash, the
/// address in network order (4 or 16 bytes) and the UDP port big-endian.
pub fn nat_d_hash(prf: Prf, cky_i: &[u8; 8], cky_r: &[u8; 8], addr: IpAddr, port: u16) -> Vec<u8> {
    let ip: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    prf.hash(&[cky_i, cky_r, &ip, &port.to_be_bytes()])
}

/// Encrypts a plaintext message body: zero-pads it to the block size (no padding when it is
/// already aligned, as Pluto does) and CBC-encrypts with `iv`. Returns the ciphertext and
/// the next IV (its last block).
pub fn encrypt_body(
    cipher: &CbcCipher,
    iv: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CipherError> {
    let bs = cipher.block_size();
    let padded_len = plaintext.len().div_ceil(bs).max(1) * bs;
    let mut data = plaintext.to_vec();
    data.resize(padded_len, 0);
    let next_iv = cipher.encrypt(iv, &mut data)?;
    Ok((data, next_iv))
}

/// Decrypts a message body with `iv`. Returns the plaintext (padding still on: parse it with
/// [`parse_decrypted_payloads`]) and the next IV (the last ciphertext block). The caller
/// should only adopt the new IV once the message has been authenticated.
pub fn decrypt_body(
    cipher: &CbcCipher,
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CipherError> {
    let mut data = ciphertext.to_vec();
    let next_iv = cipher.decrypt(iv, &mut data)?;
    Ok((data, next_iv))
}

/// Errors of whole-message encryption and decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageCryptoError {
    /// The datagram or the decrypted payloads do not parse.
    Parse(ParseError),
    /// The payloads could not be emitted.
    Emit(crate::pluto::isakmp::EmitError),
    /// The cipher refused (bad key / IV, ciphertext not block-aligned).
    Cipher(CipherError),
    /// [`decrypt_message`] was given a message without the E flag.
    NotEncrypted,
}

impl core::fmt::Display for MessageCryptoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MessageCryptoError::Parse(e) => write!(f, "{e}"),
            MessageCryptoError::Emit(e) => write!(f, "{e}"),
            MessageCryptoError::Cipher(e) => write!(f, "decryption: {e}"),
            MessageCryptoError::NotEncrypted => f.write_str("message is not encrypted"),
        }
    }
}

impl std::error::Error for MessageCryptoError {}

/// Builds an encrypted datagram: `header` (E flag set, first payload type and length filled
/// in) followed by the encrypted payload chain. Returns the datagram and the next IV.
pub fn encrypt_message(
    header: &Header,
    payloads: &[Payload],
    cipher: &CbcCipher,
    iv: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), MessageCryptoError> {
    let plaintext = Zeroizing::new(
        crate::pluto::isakmp::emit_payloads(payloads).map_err(MessageCryptoError::Emit)?,
    );
    let (ciphertext, next_iv) =
        encrypt_body(cipher, iv, &plaintext).map_err(MessageCryptoError::Cipher)?;
    let mut header = *header;
    header.flags = header.flags | crate::pluto::isakmp::Flags::ENCRYPTION;
    header.next_payload = payloads
        .first()
        .map_or(PayloadType::None, Payload::payload_type);
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.extend_from_slice(
        &header
            .to_bytes(ciphertext.len())
            .map_err(MessageCryptoError::Emit)?,
    );
    out.extend_from_slice(&ciphertext);
    Ok((out, next_iv))
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedMessage {
    /// The header.
    pub header: Header,
    /// The payloads.
    pub payloads: Vec<Payload>,
    /// The plaintext body, padding included (walk it with
    /// [`PayloadIter`](crate::pluto::isakmp::PayloadIter) for raw bytes to hash).
    pub plaintext: Vec<u8>,
    /// Offset in `plaintext` where the last payload ends (and padding starts).
    pub payload_end: usize,
    /// The next IV (last ciphertext block); adopt it once the message is authenticated.
    pub next_iv: Vec<u8>,
}

/// Parses and decrypts an encrypted datagram (E flag required) with `iv`.
pub fn decrypt_message(
    datagram: &[u8],
    cipher: &CbcCipher,
    iv: &[u8],
) -> Result<DecryptedMessage, MessageCryptoError> {
    let (header, body) = Header::parse_datagram(datagram).map_err(MessageCryptoError::Parse)?;
    if !header.flags.encrypted() {
        return Err(MessageCryptoError::NotEncrypted);
    }
    let (plaintext, next_iv) =
        decrypt_body(cipher, iv, body).map_err(MessageCryptoError::Cipher)?;
    let (payloads, payload_end) = parse_decrypted_payloads(header.next_payload, &plaintext)
        .map_err(MessageCryptoError::Parse)?;
    Ok(DecryptedMessage {
        header,
        payloads,
        plaintext,
        payload_end,
        next_iv,
    })
}

#[cfg(test)]
mod tests;
