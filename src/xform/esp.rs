//! ESP (RFC 4303) packet transform over byte buffers: CBC ciphers with an optional truncated
//! HMAC (RFC 2405/3602 + 2403/2404/4868), or AES-GCM (RFC 4106).
//!
//! Wire layout handled here (the bytes after the outer IP header, or after the UDP header for
//! RFC 3948 encapsulation):
//!
//! ```text
//! SPI(4) | Seq(4) | IV(iv_len) | E( payload | pad 1,2,3,… | pad_len(1) | next_header(1) ) | ICV
//! ```
//!
//! * CBC: the plaintext trailer is padded to the cipher block size (8 for 3DES, 16 for AES); the
//!   ICV (if any) is an HMAC over SPI … end of ciphertext ("encrypt-then-MAC").
//! * GCM: padded to 4 bytes; AAD = SPI || Seq (32-bit sequence numbers, no ESN); nonce =
//!   salt || IV; ICV = the 16-byte GCM tag.
//!
//! Outbound IVs come from [`EspCrypto::next_iv`]: fresh random bytes per packet for CBC; for an
//! AEAD a 64-bit counter that starts at a random offset drawn from the operating system when
//! the transform is keyed (see [`EspCrypto::next_iv`] for why that never repeats a nonce).
//!
//! Inbound processing is split into the steps the datapath runs in KLIPS order: [`EspCrypto::header`]
//! (SA lookup, replay check), [`EspCrypto::verify_icv`] (before decrypting), then
//! [`EspCrypto::decrypt`] (in place; also checks the GCM tag and the padding).

use std::fmt;
use std::ops::Range;

use rand::RngCore;

use crate::crypto::{Aead, AuthAlg, BlockCipher, CryptoError, CryptoProvider, EncAlg, Integrity};

/// Bytes of SPI + sequence number at the start of every ESP packet.
pub const ESP_HEADER_LEN: usize = 8;

/// Why an inbound ESP packet was rejected. Maps onto KLIPS' counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspError {
    /// Shorter than header + IV + minimal ciphertext + ICV (also: an IV of the wrong length
    /// passed to [`EspCrypto::try_encapsulate`] is reported as [`EspError::BadLength`]).
    Truncated,
    /// Ciphertext length is not a multiple of the cipher block size (KLIPS "ESP length not
    /// ×8"; per-SA `encr_size_errs`).
    BadLength,
    /// ICV (HMAC or GCM tag) mismatch (per-SA `auth_errs`).
    AuthFailed,
    /// Decrypted padding is not 1, 2, 3, … or the pad length does not fit (per-SA
    /// `encr_pad_errs`).
    BadPadding,
}

impl fmt::Display for EspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EspError::Truncated => "ESP packet truncated",
            EspError::BadLength => "ESP length not a multiple of the cipher block size",
            EspError::AuthFailed => "ESP authentication failed",
            EspError::BadPadding => "ESP padding invalid",
        })
    }
}

impl std::error::Error for EspError {}

/// The keyed cipher(s) of one ESP SA.
enum Keyed {
    /// CBC cipher, plus HMAC unless integrity is provided by AH (FreeS/WAN `auth=ah`).
    Cbc {
        cipher: Box<dyn BlockCipher>,
        integ: Option<Box<dyn Integrity>>,
    },
    /// Combined-mode cipher (AES-GCM).
    Aead(Box<dyn Aead>),
}

/// The keyed transform of one ESP SA: encapsulates outbound payloads and checks/decrypts
/// inbound packets. Immutable after construction, `Send + Sync`, used by `&self` from any
/// thread; nothing per packet allocates except growth of the caller's output `Vec`.
pub struct EspCrypto {
    keyed: Keyed,
    enc: EncAlg,
    auth: Option<AuthAlg>,
    iv_len: usize,
    icv_len: usize,
    align: usize,
    /// Random start of the AEAD IV counter of this instance (unused for CBC).
    iv_base: u64,
}

impl fmt::Debug for EspCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspCrypto")
            .field("enc", &self.enc)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl EspCrypto {
    /// Keys an ESP transform from `provider`.
    ///
    /// `enckey` is [`EncAlg::key_len`] bytes (for GCM the cipher key followed by the 4-byte
    /// salt). `auth` is the integrity algorithm with its `authkey`; `None` is allowed for CBC
    /// ciphers (integrity then comes from an AH SA in the same group) and required for GCM, in
    /// which case `authkey` must be empty.
    pub fn new(
        provider: &dyn CryptoProvider,
        enc: EncAlg,
        enckey: &[u8],
        auth: Option<AuthAlg>,
        authkey: &[u8],
    ) -> Result<EspCrypto, CryptoError> {
        if auth.is_none() && !authkey.is_empty() {
            return Err(CryptoError::BadCombination(
                "an ESP authentication key was given without an authentication algorithm",
            ));
        }
        let keyed = if enc.is_aead() {
            if auth.is_some() {
                return Err(CryptoError::BadCombination(
                    "AES-GCM provides its own integrity: ESP with GCM must not have an authentication algorithm",
                ));
            }
            Keyed::Aead(provider.aead(enc, enckey)?)
        } else {
            let cipher = provider.block_cipher(enc, enckey)?;
            let integ = match auth {
                Some(a) => Some(provider.integrity(a, authkey)?),
                None => None,
            };
            Keyed::Cbc { cipher, integ }
        };
        let (iv_len, icv_len, align) = match &keyed {
            Keyed::Cbc { cipher, integ } => (
                cipher.iv_len(),
                integ.as_ref().map_or(0, |i| i.icv_len()),
                cipher.block_size().max(4),
            ),
            Keyed::Aead(a) => (a.iv_len(), a.tag_len(), 4),
        };
        let iv_base = match keyed {
            Keyed::Aead(_) => random_iv_base()?,
            Keyed::Cbc { .. } => 0,
        };
        Ok(EspCrypto {
            keyed,
            enc,
            auth,
            iv_len,
            icv_len,
            align,
            iv_base,
        })
    }

    /// The same transform with the AEAD IV counter starting at `base` instead of a random
    /// offset: for tests that need known IVs. A fixed base in a real SA would repeat nonces
    /// across instances of the same manually keyed SA.
    #[cfg(test)]
    pub(crate) fn with_iv_base(mut self, base: u64) -> EspCrypto {
        self.iv_base = base;
        self
    }

    /// Writes the IV for the outbound packet with sequence number `seq` into `iv` (exactly
    /// [`EspCrypto::iv_len`] bytes; a longer buffer is filled only up to that, a shorter one as
    /// far as it goes).
    ///
    /// * CBC: fresh random bytes from `rng` for every packet, as CBC needs an unpredictable IV
    ///   (RFC 3602 section 3).
    /// * AEAD (AES-GCM, and any AEAD added later): the 64-bit big-endian value
    ///   `base + seq (mod 2^64)`, where `base` is drawn from the operating system's CSPRNG each
    ///   time the transform is keyed, independent of the key and of the sequence number. RFC
    ///   4106 section 3.1 only asks that an IV never repeat under one key. Within one SA
    ///   instance it cannot: the datapath never reuses a sequence number and kills the SA
    ///   before its 32-bit sequence number would wrap, so fewer than 2^32 consecutive values
    ///   of a 2^64 space are used and even the modular addition never comes back to a used
    ///   value. Across instances of the same manually keyed SA (`manual --down/--up`,
    ///   `ipsec setup restart`, a crash), each instance uses an interval starting at an
    ///   independent random point: two instances sending n1 and n2 packets overlap with
    ///   probability at most (n1 + n2) / 2^64, so k instances sending N packets in all repeat
    ///   an IV with probability at most k * N / 2^64 (e.g. below 2^-22 for 1024 restarts
    ///   and 2^32 packets). No state has to survive the process.
    pub fn next_iv(&self, seq: u32, rng: &mut dyn RngCore, iv: &mut [u8]) {
        let n = iv.len().min(self.iv_len);
        let iv = &mut iv[..n];
        match &self.keyed {
            Keyed::Cbc { .. } => rng.fill_bytes(iv),
            Keyed::Aead(_) => {
                let ctr = self.iv_base.wrapping_add(u64::from(seq)).to_be_bytes();
                iv.copy_from_slice(&ctr[ctr.len() - n..]);
            }
        }
    }

    /// The encryption algorithm.
    pub fn enc_alg(&self) -> EncAlg {
        self.enc
    }

    /// The integrity algorithm (`None` for GCM and for CBC under AH).
    pub fn auth_alg(&self) -> Option<AuthAlg> {
        self.auth
    }

    /// True for AES-GCM (the tag is checked by [`EspCrypto::decrypt`], not
    /// [`EspCrypto::verify_icv`]).
    pub fn is_aead(&self) -> bool {
        matches!(self.keyed, Keyed::Aead(_))
    }

    /// Bytes of explicit IV the caller must supply to [`EspCrypto::encapsulate`]: 8 for 3DES
    /// and GCM, 16 for AES-CBC.
    ///
    /// IV rule: for CBC the IV must be unpredictable — fresh random bytes per packet (RFC
    /// 3602 §3). For GCM it must never repeat under the key (RFC 4106 §3.1), also not across
    /// several instances of one manually keyed SA: [`EspCrypto::next_iv`] produces IVs that
    /// follow both rules.
    pub fn iv_len(&self) -> usize {
        self.iv_len
    }

    /// Bytes of ICV at the end of each packet (0 for CBC without integrity).
    pub fn icv_len(&self) -> usize {
        self.icv_len
    }

    /// What the plaintext trailer is padded to: the block size (8 or 16) for CBC, 4 for GCM.
    pub fn pad_align(&self) -> usize {
        self.align
    }

    /// Padding bytes [`EspCrypto::encapsulate`] adds for a payload of `payload_len` bytes.
    fn pad_len(&self, payload_len: usize) -> usize {
        let r = (payload_len + 2) % self.align;
        if r == 0 {
            0
        } else {
            self.align - r
        }
    }

    /// Exact number of bytes [`EspCrypto::encapsulate`] adds around a payload of
    /// `payload_len` bytes (header, IV, padding, pad length, next header, ICV).
    pub fn overhead(&self, payload_len: usize) -> usize {
        ESP_HEADER_LEN + self.iv_len + self.pad_len(payload_len) + 2 + self.icv_len
    }

    /// Largest possible [`EspCrypto::overhead`] over all payload lengths (for MTU
    /// computations and buffer reservations).
    pub fn max_overhead(&self) -> usize {
        ESP_HEADER_LEN + self.iv_len + (self.align - 1) + 2 + self.icv_len
    }

    /// Appends a complete ESP packet to `out`: SPI | seq | IV | ciphertext(payload | padding
    /// 1,2,3,… | pad length | next header) | ICV. Deterministic given `iv` (see
    /// [`EspCrypto::iv_len`] for how to choose it).
    ///
    /// `iv` must be exactly [`EspCrypto::iv_len`] bytes. This never panics: if the IV has the
    /// wrong length (a caller bug) nothing is appended and `out` is left as it was; use
    /// [`EspCrypto::try_encapsulate`] to get that as an error.
    pub fn encapsulate(
        &self,
        spi: u32,
        seq: u32,
        next_header: u8,
        payload: &[u8],
        iv: &[u8],
        out: &mut Vec<u8>,
    ) {
        let _ = self.try_encapsulate(spi, seq, next_header, payload, iv, out);
    }

    /// [`EspCrypto::encapsulate`], reporting a wrong IV length (or an internal cipher
    /// failure) as [`EspError::BadLength`]; on error `out` is unchanged.
    pub fn try_encapsulate(
        &self,
        spi: u32,
        seq: u32,
        next_header: u8,
        payload: &[u8],
        iv: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        if iv.len() != self.iv_len {
            return Err(EspError::BadLength);
        }
        let start = out.len();
        let r = self.encapsulate_inner(spi, seq, next_header, payload, iv, out, start);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn encapsulate_inner(
        &self,
        spi: u32,
        seq: u32,
        next_header: u8,
        payload: &[u8],
        iv: &[u8],
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), EspError> {
        let hl = ESP_HEADER_LEN + self.iv_len;
        let total = hl + payload.len() + self.pad_len(payload.len()) + 2 + self.icv_len;
        out.resize(start + total, 0);
        out[start + hl..start + hl + payload.len()].copy_from_slice(payload);
        self.seal_in_place(spi, seq, next_header, iv, &mut out[start..], payload.len())
            .map(|_| ())
    }

    /// Encrypts in place: `pkt` starts where the ESP header goes, its payload is already at
    /// `pkt[8 + iv_len ..][..payload_len]`, and at least [`EspCrypto::max_overhead`] minus the
    /// header and IV bytes of room follow it (for padding, pad length, next header and ICV).
    /// Writes SPI, sequence number, IV, trailer and ICV around the payload and returns the
    /// length of the ESP packet. The transform of the datapath: the packet is never copied.
    pub fn seal_in_place(
        &self,
        spi: u32,
        seq: u32,
        next_header: u8,
        iv: &[u8],
        pkt: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EspError> {
        if iv.len() != self.iv_len {
            return Err(EspError::BadLength);
        }
        let ct_start = ESP_HEADER_LEN + self.iv_len;
        let pad = self.pad_len(payload_len);
        let ct_len = payload_len + pad + 2;
        let ct_end = ct_start + ct_len;
        let total = ct_end + self.icv_len;
        if pkt.len() < total {
            return Err(EspError::Truncated);
        }
        pkt[..4].copy_from_slice(&spi.to_be_bytes());
        pkt[4..8].copy_from_slice(&seq.to_be_bytes());
        pkt[ESP_HEADER_LEN..ct_start].copy_from_slice(iv);
        let trailer = &mut pkt[ct_start + payload_len..ct_end];
        // pad <= 15, so the casts cannot truncate.
        for (i, b) in trailer[..pad].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        trailer[pad] = pad as u8;
        trailer[pad + 1] = next_header;
        let pkt = &mut pkt[..total];
        match &self.keyed {
            Keyed::Cbc { cipher, integ } => {
                let (head, rest) = pkt.split_at_mut(ct_start);
                let iv = &head[ESP_HEADER_LEN..];
                cipher
                    .encrypt(iv, &mut rest[..ct_len])
                    .map_err(|_| EspError::BadLength)?;
                if let Some(integ) = integ {
                    let (data, icv) = pkt.split_at_mut(ct_end);
                    integ.compute(&[data], icv);
                }
            }
            Keyed::Aead(a) => {
                let (head, rest) = pkt.split_at_mut(ct_start);
                let (aad, iv) = head.split_at(ESP_HEADER_LEN);
                let (ct, tag) = rest.split_at_mut(ct_len);
                a.seal(iv, aad, ct, tag).map_err(|_| EspError::BadLength)?;
            }
        }
        Ok(total)
    }

    /// Reads (SPI, sequence number) from the start of an ESP packet, for SA lookup and the
    /// replay check. Only checks that 8 bytes are present.
    pub fn header(esp: &[u8]) -> Result<(u32, u32), EspError> {
        match esp {
            [a, b, c, d, e, f, g, h, ..] => Ok((
                u32::from_be_bytes([*a, *b, *c, *d]),
                u32::from_be_bytes([*e, *f, *g, *h]),
            )),
            _ => Err(EspError::Truncated),
        }
    }

    /// Checks the HMAC ICV of an inbound packet (from the SPI to the end) before anything is
    /// decrypted, in constant time. For GCM, and for CBC without integrity, this only checks
    /// the minimum length and returns `Ok`: the GCM tag is verified by
    /// [`EspCrypto::decrypt`] (so for GCM the replay window must be updated after decrypt).
    pub fn verify_icv(&self, esp: &[u8]) -> Result<(), EspError> {
        if esp.len() < ESP_HEADER_LEN + self.iv_len + self.icv_len {
            return Err(EspError::Truncated);
        }
        if let Keyed::Cbc {
            integ: Some(integ), ..
        } = &self.keyed
        {
            let (data, icv) = esp.split_at(esp.len() - self.icv_len);
            if !integ.verify(&[data], icv) {
                return Err(EspError::AuthFailed);
            }
        }
        Ok(())
    }

    /// Decrypts an inbound packet in place and checks its trailer. Returns the next header
    /// and the payload's byte range within `esp`.
    ///
    /// Checks, in order: minimum length ([`EspError::Truncated`]), ciphertext length a
    /// multiple of the block size / 4 ([`EspError::BadLength`]), the GCM tag
    /// ([`EspError::AuthFailed`]; `esp` then holds no plaintext: left as it came or, with the
    /// `ring` provider, its ciphertext zeroed), padding 1,2,3,… and a pad
    /// length that fits ([`EspError::BadPadding`]). For CBC the HMAC is *not* checked here:
    /// call [`EspCrypto::verify_icv`] first (or use [`EspCrypto::open`]).
    pub fn decrypt(&self, esp: &mut [u8]) -> Result<(u8, Range<usize>), EspError> {
        let ct_start = ESP_HEADER_LEN + self.iv_len;
        if esp.len() < ct_start + self.icv_len {
            return Err(EspError::Truncated);
        }
        let ct_end = esp.len() - self.icv_len;
        let ct_len = ct_end - ct_start;
        if ct_len < 2 {
            return Err(EspError::Truncated);
        }
        if !ct_len.is_multiple_of(self.align) {
            return Err(EspError::BadLength);
        }
        let (head, rest) = esp.split_at_mut(ct_start);
        let (ct, icv) = rest.split_at_mut(ct_len);
        match &self.keyed {
            Keyed::Cbc { cipher, .. } => {
                cipher
                    .decrypt(&head[ESP_HEADER_LEN..], ct)
                    .map_err(|_| EspError::BadLength)?;
            }
            Keyed::Aead(a) => {
                let (aad, iv) = head.split_at(ESP_HEADER_LEN);
                a.open(iv, aad, ct, icv).map_err(|e| match e {
                    CryptoError::AuthFailed => EspError::AuthFailed,
                    _ => EspError::BadLength,
                })?;
            }
        }
        let (next_header, payload_len) = check_trailer(ct)?;
        Ok((next_header, ct_start..ct_start + payload_len))
    }

    /// Convenience for callers that do not need the steps separately:
    /// [`EspCrypto::verify_icv`] then [`EspCrypto::decrypt`].
    pub fn open(&self, esp: &mut [u8]) -> Result<(u8, Range<usize>), EspError> {
        self.verify_icv(esp)?;
        self.decrypt(esp)
    }
}

/// A fresh random start for the AEAD IV counter, straight from the operating system (no
/// user-space generator state that a fork or a restored snapshot could duplicate).
fn random_iv_base() -> Result<u64, CryptoError> {
    let mut b = [0u8; 8];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|_| CryptoError::NoRandomness)?;
    Ok(u64::from_be_bytes(b))
}

/// Validates the decrypted trailer `… | pad 1,2,3,… | pad_len | next_header` and returns
/// (next header, payload length).
fn check_trailer(pt: &[u8]) -> Result<(u8, usize), EspError> {
    let [.., pad_len, next_header] = *pt else {
        return Err(EspError::Truncated);
    };
    let pad_len = usize::from(pad_len);
    let payload_len = pt
        .len()
        .checked_sub(2 + pad_len)
        .ok_or(EspError::BadPadding)?;
    let pad = &pt[payload_len..payload_len + pad_len];
    if pad.iter().zip(1u8..).any(|(&b, want)| b != want) {
        return Err(EspError::BadPadding);
    }
    Ok((next_header, payload_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_provider;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    fn key(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    const ENCS: [EncAlg; 6] = [
        EncAlg::TripleDesCbc,
        EncAlg::AesCbc128,
        EncAlg::AesCbc192,
        EncAlg::AesCbc256,
        EncAlg::AesGcm16_128,
        EncAlg::AesGcm16_256,
    ];

    /// Every supported (enc, auth) combination, keyed deterministically.
    fn all_combos() -> Vec<EspCrypto> {
        let mut v = Vec::new();
        for enc in ENCS {
            let auths: Vec<Option<AuthAlg>> = if enc.is_aead() {
                vec![None]
            } else {
                std::iter::once(None)
                    .chain(AuthAlg::ALL.iter().copied().map(Some))
                    .collect()
            };
            for auth in auths {
                let ak = auth.map_or(Vec::new(), |a| key(a.key_len(), 0x55));
                v.push(
                    EspCrypto::new(
                        default_provider(),
                        enc,
                        &key(enc.key_len(), 0x11),
                        auth,
                        &ak,
                    )
                    .unwrap(),
                );
            }
        }
        v
    }

    fn iv_for(c: &EspCrypto, seq: u32) -> Vec<u8> {
        if c.is_aead() {
            u64::from(seq).to_be_bytes().to_vec()
        } else {
            (0..c.iv_len())
                .map(|i| (i as u8) ^ (seq as u8) ^ 0xa5)
                .collect()
        }
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn round_trip_every_combination_and_size() {
        for c in all_combos() {
            for len in [0usize, 1, 63, 64, 1400] {
                let p = payload(len);
                let iv = iv_for(&c, 7);
                let mut out = vec![0xee; 3]; // appends after existing bytes
                c.encapsulate(0x1234_5678, 7, 4, &p, &iv, &mut out);
                assert_eq!(&out[..3], &[0xee; 3]);
                let mut esp = out[3..].to_vec();
                assert_eq!(esp.len(), len + c.overhead(len), "{c:?} len {len}");
                assert!(c.overhead(len) <= c.max_overhead());
                let ct_len = esp.len() - 8 - c.iv_len() - c.icv_len();
                assert_eq!(ct_len % c.pad_align(), 0);
                assert_eq!(EspCrypto::header(&esp), Ok((0x1234_5678, 7)));
                assert_eq!(&esp[8..8 + c.iv_len()], &iv[..]);
                c.verify_icv(&esp).unwrap();
                let (nh, r) = c.decrypt(&mut esp).unwrap();
                assert_eq!(nh, 4);
                assert_eq!(&esp[r], &p[..], "{c:?} len {len}");
            }
        }
    }

    #[test]
    fn overhead_values() {
        let p = default_provider();
        let c = EspCrypto::new(
            p,
            EncAlg::TripleDesCbc,
            &key(24, 1),
            Some(AuthAlg::HmacSha1_96),
            &key(20, 2),
        )
        .unwrap();
        assert_eq!(c.iv_len(), 8);
        assert_eq!(c.icv_len(), 12);
        // 6 + 2 = 8: no padding.
        assert_eq!(c.overhead(6), 8 + 8 + 2 + 12);
        assert_eq!(c.overhead(0), 8 + 8 + 6 + 2 + 12);
        assert_eq!(c.max_overhead(), 8 + 8 + 7 + 2 + 12);
        let g = EspCrypto::new(p, EncAlg::AesGcm16_256, &key(36, 1), None, &[]).unwrap();
        assert_eq!(g.overhead(2), 8 + 8 + 2 + 16);
        assert_eq!(g.overhead(3), 8 + 8 + 3 + 2 + 16);
        assert_eq!(g.max_overhead(), 8 + 8 + 3 + 2 + 16);
    }

    #[test]
    fn construction_errors() {
        let p = default_provider();
        let e = EspCrypto::new(
            p,
            EncAlg::AesGcm16_128,
            &key(20, 1),
            Some(AuthAlg::HmacSha1_96),
            &key(20, 2),
        )
        .unwrap_err();
        assert!(matches!(e, CryptoError::BadCombination(_)));
        let e = EspCrypto::new(
            p,
            EncAlg::Des,
            &key(8, 1),
            Some(AuthAlg::HmacMd5_96),
            &key(16, 2),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "single DES is not supported: it is insecure");
        let e = EspCrypto::new(
            p,
            EncAlg::NullEnc,
            &[],
            Some(AuthAlg::HmacMd5_96),
            &key(16, 2),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "NULL encryption is not supported");
        let e = EspCrypto::new(p, EncAlg::AesCbc128, &key(8, 1), None, &[]).unwrap_err();
        assert_eq!(e.to_string(), "AES128 needs a 128-bit key, got 64 bits");
        let e = EspCrypto::new(
            p,
            EncAlg::AesCbc128,
            &key(16, 1),
            Some(AuthAlg::HmacSha2_256_128),
            &key(20, 2),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "HMAC_SHA2_256 needs a 256-bit key, got 160 bits"
        );
        assert!(EspCrypto::new(p, EncAlg::AesCbc128, &key(16, 1), None, &key(20, 2)).is_err());
        let c = EspCrypto::new(p, EncAlg::AesCbc128, &key(16, 1), None, &[]).unwrap();
        assert_eq!(
            format!("{c:?}"),
            "EspCrypto { enc: AesCbc128, auth: None, .. }"
        );
    }

    fn gcm(seed: u8) -> EspCrypto {
        EspCrypto::new(
            default_provider(),
            EncAlg::AesGcm16_128,
            &key(20, seed),
            None,
            &[],
        )
        .unwrap()
    }

    fn iv_u64(c: &EspCrypto, seq: u32) -> u64 {
        let mut iv = [0u8; 8];
        c.next_iv(seq, &mut rand::thread_rng(), &mut iv);
        u64::from_be_bytes(iv)
    }

    /// Two instances keyed with the same manual key (a restart) start their IV counters at
    /// independent random offsets, so their first packets do not share (key, IV).
    #[test]
    fn aead_iv_counter_starts_at_a_random_offset_per_instance() {
        let (a, b) = (gcm(3), gcm(3));
        assert_ne!(iv_u64(&a, 1), iv_u64(&b, 1));
        // Not the sequence number either (what a counter starting at zero would give).
        assert_ne!(iv_u64(&a, 1), 1);
        let mut pa = Vec::new();
        let mut pb = Vec::new();
        let mut iv = [0u8; 8];
        a.next_iv(1, &mut rand::thread_rng(), &mut iv);
        a.encapsulate(0x200, 1, 4, &payload(40), &iv, &mut pa);
        b.next_iv(1, &mut rand::thread_rng(), &mut iv);
        b.encapsulate(0x200, 1, 4, &payload(40), &iv, &mut pb);
        assert_eq!(pa[..8], pb[..8], "same SPI and sequence number");
        assert_ne!(pa[8..16], pb[8..16], "same IV under the same key");
        // Each decrypts the other's packets: the IV travels in the packet.
        b.open(&mut pa).unwrap();
    }

    #[test]
    fn aead_iv_counter_increments_with_each_packet() {
        let c = gcm(4);
        let first = iv_u64(&c, 1);
        for seq in 2..100u32 {
            assert_eq!(iv_u64(&c, seq), first.wrapping_add(u64::from(seq - 1)));
        }
        // The same sequence number always gives the same IV: the datapath never reuses one.
        assert_eq!(iv_u64(&c, 7), iv_u64(&c, 7));
    }

    #[test]
    fn aead_iv_counter_wraps_without_panic() {
        let c = gcm(5).with_iv_base(u64::MAX - 1);
        assert_eq!(iv_u64(&c, 1), u64::MAX);
        assert_eq!(iv_u64(&c, 2), 0);
        assert_eq!(iv_u64(&c, u32::MAX), u64::from(u32::MAX) - 2);
        let mut iv = [0u8; 8];
        c.next_iv(2, &mut rand::thread_rng(), &mut iv);
        let mut pkt = Vec::new();
        c.encapsulate(0x200, 2, 4, &payload(30), &iv, &mut pkt);
        let (nh, r) = c.open(&mut pkt).unwrap();
        assert_eq!((nh, &pkt[r]), (4, &payload(30)[..]));
        // A wrong-size buffer is filled as far as the IV goes, never a panic.
        let mut short = [0u8; 3];
        c.next_iv(1, &mut rand::thread_rng(), &mut short);
        assert_eq!(short, [0xff; 3]);
        let mut long = [0u8; 16];
        c.next_iv(1, &mut rand::thread_rng(), &mut long);
        assert_eq!(long[..8], [0xff; 8]);
        assert_eq!(long[8..], [0; 8]);
    }

    #[test]
    fn cbc_ivs_are_fresh_random_bytes() {
        use rand::SeedableRng;
        let c = EspCrypto::new(
            default_provider(),
            EncAlg::AesCbc128,
            &key(16, 1),
            None,
            &[],
        )
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        c.next_iv(1, &mut rng, &mut a);
        c.next_iv(1, &mut rng, &mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }

    #[test]
    fn wrong_iv_length_appends_nothing() {
        for c in all_combos() {
            let mut out = vec![1, 2, 3];
            c.encapsulate(1, 1, 4, b"hello", &[0u8; 3], &mut out);
            assert_eq!(out, [1, 2, 3]);
            assert_eq!(
                c.try_encapsulate(1, 1, 4, b"hello", &[0u8; 17], &mut out),
                Err(EspError::BadLength)
            );
            assert_eq!(out, [1, 2, 3]);
        }
    }

    /// RFC 3602 section 4 case #5: a transport-mode ESP packet with AES-128-CBC and no
    /// authentication, byte for byte.
    #[test]
    fn rfc3602_case5_esp_known_answer() {
        let c = EspCrypto::new(
            default_provider(),
            EncAlg::AesCbc128,
            &h("90d382b4 10eeba7a d938c46c ec1a82bf"),
            None,
            &[],
        )
        .unwrap();
        let iv = h("e96e8c08 ab465763 fd098d45 dd3ff893");
        let data = h(
            "08000ebd a70a0000 8e9c083d b95b0700 08090a0b 0c0d0e0f 10111213 14151617
                      18191a1b 1c1d1e1f 20212223 24252627 28292a2b 2c2d2e2f 30313233 34353637",
        );
        let want = h("00004321 00000001
                      e96e8c08 ab465763 fd098d45 dd3ff893
                      f663c25d 325c18c6 a9453e19 4e120849 a4870b66 cc6b9965 330013b4 898dc856
                      a4699e52 3a55db08 0b59ec3a 8e4b7e52 775b07d1 db34ed9c 538ab50c 551b874a
                      a269add0 47ad2d59 13ac19b7 cfbad4a6");
        let mut out = Vec::new();
        c.encapsulate(0x4321, 1, 1, &data, &iv, &mut out);
        assert_eq!(hex::encode(&out), hex::encode(&want));
        let mut esp = want.clone();
        let (nh, r) = c.open(&mut esp).unwrap();
        assert_eq!(nh, 1);
        assert_eq!(&esp[r], &data[..]);
        // The same packet with HMAC-SHA1-96 appended: the ciphertext is unchanged and the ICV
        // is the HMAC of everything before it.
        let authkey = key(20, 9);
        let ca = EspCrypto::new(
            default_provider(),
            EncAlg::AesCbc128,
            &h("90d382b410eeba7ad938c46cec1a82bf"),
            Some(AuthAlg::HmacSha1_96),
            &authkey,
        )
        .unwrap();
        let mut out = Vec::new();
        ca.encapsulate(0x4321, 1, 1, &data, &iv, &mut out);
        assert_eq!(&out[..want.len()], &want[..]);
        let integ = default_provider()
            .integrity(AuthAlg::HmacSha1_96, &authkey)
            .unwrap();
        let mut icv = [0u8; 12];
        integ.compute(&[&want], &mut icv);
        assert_eq!(&out[want.len()..], &icv);
    }

    /// draft-mcgrew-gcm-test-01 packets with 32-bit sequence numbers (RFC 4106-compatible):
    /// 128-bit key (SPI 0000a5f8, seq 10) and 256-bit key (SPI 4a2cbfe3, seq 2).
    #[test]
    fn gcm_esp_known_answers() {
        struct Case {
            key: &'static str,
            salt_iv: &'static str,
            spi: u32,
            seq: u32,
            pt: &'static str,
            pad: usize,
            ct: &'static str,
            tag: &'static str,
        }
        let cases = [
            Case {
                key: "feffe9928665731c6d6a8f9467308308",
                salt_iv: "cafebabefacedbaddecaf888",
                spi: 0x0000_a5f8,
                seq: 10,
                pt: "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100\
                     0001000000000000037369700963796265726369747902646b00000100010001",
                pad: 0,
                ct: "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c\
                     3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
                tag: "83b70d3aa8bc6ee4c309e9d85a41ad4a",
            },
            Case {
                key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
                salt_iv: "112233440102030405060708",
                spi: 0x4a2c_bfe3,
                seq: 2,
                pt: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000\
                     7002400020bf0000020405b40101040201020201",
                pad: 2,
                ct: "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763\
                     748a637985771d347f0545659f14e99def842d8e",
                tag: "b335f4eecfdbf831824b4c4915956c96",
            },
        ];
        for c in cases {
            let si = h(c.salt_iv);
            let mut keymat = h(c.key);
            keymat.extend_from_slice(&si[..4]);
            let enc = if keymat.len() == 20 {
                EncAlg::AesGcm16_128
            } else {
                EncAlg::AesGcm16_256
            };
            let e = EspCrypto::new(default_provider(), enc, &keymat, None, &[]).unwrap();
            let pt = h(c.pt);
            // The published plaintext includes the trailer: payload | pad | pad_len | nh.
            let payload = &pt[..pt.len() - 2 - c.pad];
            let nh = pt[pt.len() - 1];
            let mut out = Vec::new();
            e.encapsulate(c.spi, c.seq, nh, payload, &si[4..], &mut out);
            let mut want = Vec::new();
            want.extend_from_slice(&c.spi.to_be_bytes());
            want.extend_from_slice(&c.seq.to_be_bytes());
            want.extend_from_slice(&si[4..]);
            want.extend_from_slice(&h(c.ct));
            want.extend_from_slice(&h(c.tag));
            assert_eq!(hex::encode(&out), hex::encode(&want));
            let (n, r) = e.open(&mut out).unwrap();
            assert_eq!(n, nh);
            assert_eq!(&out[r], payload);
        }
    }

    #[test]
    fn tampering_any_byte_fails_authentication() {
        for c in all_combos() {
            if c.icv_len() == 0 {
                continue; // CBC under AH: ESP itself has no integrity.
            }
            let mut pkt = Vec::new();
            c.encapsulate(0x100, 42, 17, &payload(37), &iv_for(&c, 42), &mut pkt);
            for i in 0..pkt.len() {
                for bit in [0x01u8, 0x80] {
                    let mut t = pkt.clone();
                    t[i] ^= bit;
                    let r = c
                        .verify_icv(&t)
                        .and_then(|()| c.decrypt(&mut t).map(|_| ()));
                    assert_eq!(r, Err(EspError::AuthFailed), "{c:?} byte {i}");
                }
            }
            let mut t = pkt.clone();
            assert!(c.open(&mut t).is_ok());
        }
    }

    /// A forged AEAD packet leaves no plaintext behind, whichever provider: the RustCrypto and
    /// OpenSSL ones leave the packet as it came, `ring` zeroes the ciphertext.
    #[test]
    fn aead_auth_failure_leaves_no_plaintext() {
        let providers: [&dyn crate::crypto::CryptoProvider; 4] = [
            default_provider(),
            &crate::crypto::RustCryptoProvider,
            &crate::crypto::OpenSslAeadProvider,
            &crate::crypto::RingProvider,
        ];
        for p in providers {
            for alg in [EncAlg::AesGcm16_128, EncAlg::ChaCha20Poly1305] {
                let c = EspCrypto::new(p, alg, &key(alg.key_len(), 3), None, &[]).unwrap();
                let plain = payload(50);
                let mut pkt = Vec::new();
                c.encapsulate(0x100, 1, 4, &plain, &iv_for(&c, 1), &mut pkt);
                let last = pkt.len() - 1;
                pkt[last] ^= 1;
                let before = pkt.clone();
                assert_eq!(c.decrypt(&mut pkt), Err(EspError::AuthFailed));
                let body = &pkt[16..16 + plain.len()];
                assert_ne!(body, &plain[..], "{} {alg}", p.name());
                assert!(
                    pkt == before || body.iter().all(|&b| b == 0),
                    "{} {alg}: neither untouched nor wiped",
                    p.name()
                );
            }
        }
    }

    /// Builds an ESP packet by hand with arbitrary trailer bytes but a valid ICV/tag.
    fn build_raw(c: &EspCrypto, enckey: &[u8], authkey: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let p = default_provider();
        let iv = iv_for(c, 9);
        let mut pkt = Vec::new();
        pkt.extend_from_slice(&0x200u32.to_be_bytes());
        pkt.extend_from_slice(&9u32.to_be_bytes());
        pkt.extend_from_slice(&iv);
        let mut ct = plaintext.to_vec();
        if c.is_aead() {
            let a = p.aead(c.enc_alg(), enckey).unwrap();
            let mut tag = [0u8; 16];
            let aad = pkt[..8].to_vec();
            a.seal(&iv, &aad, &mut ct, &mut tag).unwrap();
            pkt.extend_from_slice(&ct);
            pkt.extend_from_slice(&tag);
        } else {
            let b = p.block_cipher(c.enc_alg(), enckey).unwrap();
            b.encrypt(&iv, &mut ct).unwrap();
            pkt.extend_from_slice(&ct);
            if let Some(a) = c.auth_alg() {
                let i = p.integrity(a, authkey).unwrap();
                let mut icv = vec![0u8; a.icv_len()];
                i.compute(&[&pkt], &mut icv);
                pkt.extend_from_slice(&icv);
            }
        }
        pkt
    }

    #[test]
    fn bad_padding_is_detected_behind_a_valid_icv() {
        let p = default_provider();
        for (enc, auth) in [
            (EncAlg::TripleDesCbc, Some(AuthAlg::HmacMd5_96)),
            (EncAlg::AesCbc128, Some(AuthAlg::HmacSha1_96)),
            (EncAlg::AesCbc256, Some(AuthAlg::HmacSha2_512_256)),
            (EncAlg::AesCbc192, None),
            (EncAlg::AesGcm16_128, None),
            (EncAlg::AesGcm16_256, None),
        ] {
            let ek = key(enc.key_len(), 0x21);
            let ak = auth.map_or(Vec::new(), |a| key(a.key_len(), 0x42));
            let c = EspCrypto::new(p, enc, &ek, auth, &ak).unwrap();
            let bs = c.pad_align();
            // Trailer with pad bytes 1,2,4 instead of 1,2,3.
            let mut pt = payload(bs * 2 - 5);
            pt.extend_from_slice(&[1, 2, 4, 3, 4]);
            let mut pkt = build_raw(&c, &ek, &ak, &pt);
            assert_eq!(c.verify_icv(&pkt), Ok(()));
            assert_eq!(c.decrypt(&mut pkt), Err(EspError::BadPadding), "{enc:?}");
            // Pad length larger than the plaintext.
            let mut pt = payload(bs - 2);
            pt.extend_from_slice(&[200, 4]);
            let mut pkt = build_raw(&c, &ek, &ak, &pt);
            assert_eq!(c.open(&mut pkt), Err(EspError::BadPadding), "{enc:?}");
            // Pad length exactly the plaintext minus the trailer: empty payload, still valid.
            let mut pt: Vec<u8> = (1..=(bs as u8 - 2)).collect();
            pt.extend_from_slice(&[bs as u8 - 2, 59]);
            let mut pkt = build_raw(&c, &ek, &ak, &pt);
            let (nh, r) = c.open(&mut pkt).unwrap();
            assert_eq!((nh, r.len()), (59, 0));
            // Non-default but valid: more padding than needed (a whole extra block).
            let mut pt = payload(bs - 2);
            pt.extend((1..=bs as u8).collect::<Vec<u8>>());
            pt.extend_from_slice(&[bs as u8, 6]);
            let mut pkt = build_raw(&c, &ek, &ak, &pt);
            let (nh, r) = c.open(&mut pkt).unwrap();
            assert_eq!(nh, 6);
            assert_eq!(&pkt[r], &payload(bs - 2)[..]);
        }
    }

    #[test]
    fn ciphertext_not_whole_blocks_is_bad_length() {
        let p = default_provider();
        for (enc, auth) in [
            (EncAlg::TripleDesCbc, Some(AuthAlg::HmacSha1_96)),
            (EncAlg::AesCbc128, None),
            (EncAlg::AesGcm16_128, None),
        ] {
            let ek = key(enc.key_len(), 0x21);
            let ak = auth.map_or(Vec::new(), |a| key(a.key_len(), 0x42));
            let c = EspCrypto::new(p, enc, &ek, auth, &ak).unwrap();
            let bs = c.pad_align();
            // A packet whose "ciphertext" is one block plus one byte, with a valid ICV.
            let mut pkt = Vec::new();
            pkt.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 1]);
            pkt.extend_from_slice(&vec![7u8; c.iv_len()]);
            pkt.extend_from_slice(&vec![9u8; bs + 1]);
            if let Some(a) = auth {
                let i = p.integrity(a, &ak).unwrap();
                let mut icv = vec![0u8; a.icv_len()];
                i.compute(&[&pkt], &mut icv);
                pkt.extend_from_slice(&icv);
            } else if enc.is_aead() {
                pkt.extend_from_slice(&[0u8; 16]);
            }
            assert_eq!(c.open(&mut pkt), Err(EspError::BadLength), "{enc:?}");
        }
    }

    #[test]
    fn truncations_never_panic() {
        for c in all_combos() {
            let mut pkt = Vec::new();
            c.encapsulate(0x300, 5, 4, &payload(45), &iv_for(&c, 5), &mut pkt);
            for len in 0..pkt.len() {
                let mut t = pkt[..len].to_vec();
                let h = EspCrypto::header(&t);
                assert_eq!(h.is_err(), len < 8);
                let r = c
                    .verify_icv(&t)
                    .and_then(|()| c.decrypt(&mut t).map(|_| ()));
                let mut t2 = pkt[..len].to_vec();
                let d = c.decrypt(&mut t2);
                if c.icv_len() > 0 {
                    assert!(r.is_err(), "{c:?} truncated to {len} accepted");
                }
                // decrypt alone (skipping verify_icv) must not panic either.
                let _ = d;
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(4303);
        let combos = all_combos();
        for _ in 0..3000 {
            let len = rng.gen_range(0..120);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let c = &combos[rng.gen_range(0..combos.len())];
            let _ = EspCrypto::header(&buf);
            let _ = c.verify_icv(&buf);
            if let Ok((_, r)) = c.decrypt(&mut buf) {
                assert!(r.end <= buf.len());
            }
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(EspError::Truncated.to_string(), "ESP packet truncated");
        assert_eq!(
            EspError::BadLength.to_string(),
            "ESP length not a multiple of the cipher block size"
        );
        assert_eq!(
            EspError::AuthFailed.to_string(),
            "ESP authentication failed"
        );
        assert_eq!(EspError::BadPadding.to_string(), "ESP padding invalid");
    }

    #[test]
    fn esp_crypto_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<EspCrypto>();
    }
}
