//! The IKEv2 key schedule (RFC 7296 2.13, 2.14, 2.17, 2.18).
//!
//! ```text
//! prf+ (K,S)  = T1 | T2 | T3 | …     T1 = prf (K, S | 0x01), Tn = prf (K, Tn-1 | S | n)
//! SKEYSEED    = prf(Ni | Nr, g^ir)
//! {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
//! KEYMAT      = prf+(SK_d, [g^ir (new) |] Ni | Nr)                  (child SAs)
//! SKEYSEED'   = prf(SK_d (old), g^ir (new) | Ni | Nr)               (IKE SA rekey, old PRF)
//! ```
//!
//! Ni and Nr are the nonce *data* (payload bodies after the generic header), g^ir the shared
//! secret as [`super::super::dh`] returns it, SPIi/SPIr the 8-byte IKE SPIs. Key lengths:
//! SK_d, SK_pi and SK_pr are the PRF's preferred key length — its output length for the HMAC
//! PRFs (RFC 4868 2.2 for PRF_HMAC_SHA2_*); SK_ai/SK_ar the integrity key length
//! ([`AuthAlg::key_len`]); SK_ei/SK_er the cipher key plus, for the AEADs, the 4-byte salt
//! ([`EncAlg::key_len`], RFC 5282 7.1 and RFC 7634 2). An AEAD has no SK_a (empty).

use core::fmt;

use zeroize::Zeroizing;

use super::Ikev2CryptoError;
use crate::crypto::{AuthAlg, EncAlg};
use crate::pluto::crypto::Prf;

/// Secret bytes, wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// prf+ (RFC 7296 2.13): `len` bytes of T1 | T2 | …, with T1 = prf(K, S | 0x01) and
/// Tn = prf(K, Tn-1 | S | n); `seed` is S given in parts. At most 255 blocks.
pub fn prf_plus(
    prf: Prf,
    key: &[u8],
    seed: &[&[u8]],
    len: usize,
) -> Result<Secret, Ikev2CryptoError> {
    let max = 255 * prf.output_len();
    if len > max {
        return Err(Ikev2CryptoError::PrfPlusTooLong {
            requested: len,
            max,
        });
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + prf.output_len()));
    let mut t: Secret = Zeroizing::new(Vec::new());
    let mut n: u8 = 1;
    while out.len() < len {
        let counter = [n];
        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        parts.push(&t);
        parts.extend_from_slice(seed);
        parts.push(&counter);
        let next = Zeroizing::new(prf.prf(key, &parts));
        out.extend_from_slice(&next);
        t = next;
        n = n.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 2.14).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], gir: &[u8]) -> Secret {
    let key = Zeroizing::new([ni, nr].concat());
    Zeroizing::new(prf.prf(&key, &[gir]))
}

/// SKEYSEED of a rekeyed IKE SA: prf(SK_d (old), g^ir (new) | Ni | Nr), with the *old* IKE
/// SA's PRF (RFC 7296 2.18). Ni/Nr are the CREATE_CHILD_SA nonces, the exchange initiator's
/// first.
pub fn rekey_skeyseed(
    old_prf: Prf,
    old_sk_d: &[u8],
    gir_new: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Secret {
    Zeroizing::new(old_prf.prf(old_sk_d, &[gir_new, ni, nr]))
}

/// The algorithms an IKE SA's keys are split by: the PRF, the encryption transform and, for
/// non-AEAD ciphers, the integrity transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSaAlgs {
    /// PRF (PRF_HMAC_*).
    pub prf: Prf,
    /// Encryption (ENCR_AES_CBC, ENCR_AES_GCM_16, ENCR_CHACHA20_POLY1305, ENCR_3DES).
    pub enc: EncAlg,
    /// Integrity (AUTH_HMAC_*); `None` exactly when `enc` is an AEAD.
    pub integ: Option<AuthAlg>,
}

impl IkeSaAlgs {
    /// Checks that the combination can protect IKE messages: an AEAD without integrity, or a
    /// CBC cipher with one; never DES or NULL.
    pub fn validate(&self) -> Result<(), Ikev2CryptoError> {
        match (self.enc, self.enc.is_aead(), self.integ) {
            (EncAlg::Des | EncAlg::NullEnc, _, _) => Err(Ikev2CryptoError::BadAlgorithms(
                "IKE SA encryption must not be DES or NULL",
            )),
            (_, true, Some(_)) => Err(Ikev2CryptoError::BadAlgorithms(
                "an AEAD IKE SA must not have an integrity algorithm",
            )),
            (_, false, None) => Err(Ikev2CryptoError::BadAlgorithms(
                "a non-AEAD IKE SA needs an integrity algorithm",
            )),
            _ => Ok(()),
        }
    }

    /// Length of SK_d, SK_pi and SK_pr: the PRF's preferred key length (its output length).
    pub fn prf_key_len(&self) -> usize {
        self.prf.output_len()
    }

    /// Length of SK_ai and SK_ar (0 for an AEAD).
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, AuthAlg::key_len)
    }

    /// Length of SK_ei and SK_er, salt included for the AEADs.
    pub fn enc_key_len(&self) -> usize {
        self.enc.key_len()
    }

    /// Bytes of prf+ output the IKE SA consumes.
    pub fn keymat_len(&self) -> usize {
        3 * self.prf_key_len() + 2 * self.integ_key_len() + 2 * self.enc_key_len()
    }
}

/// The keys of one IKE SA, wiped on drop.
#[derive(Clone)]
pub struct IkeSaKeys {
    /// The algorithms the keys were split by.
    pub algs: IkeSaAlgs,
    /// SK_d: derives child SA keys and the next IKE SA's SKEYSEED.
    pub sk_d: Secret,
    /// SK_ai: integrity of messages from the IKE SA's original initiator (empty for AEADs).
    pub sk_ai: Secret,
    /// SK_ar: integrity of messages from the original responder (empty for AEADs).
    pub sk_ar: Secret,
    /// SK_ei: encryption of messages from the original initiator (key, then salt for AEADs).
    pub sk_ei: Secret,
    /// SK_er: encryption of messages from the original responder.
    pub sk_er: Secret,
    /// SK_pi: the initiator's AUTH payload (prf(SK_pi, IDi')).
    pub sk_pi: Secret,
    /// SK_pr: the responder's AUTH payload.
    pub sk_pr: Secret,
}

impl fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IkeSaKeys")
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

impl IkeSaKeys {
    /// Splits {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr |
    /// SPIi | SPIr) by `algs` (RFC 7296 2.14).
    pub fn derive(
        algs: IkeSaAlgs,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeSaKeys, Ikev2CryptoError> {
        algs.validate()?;
        let keymat = prf_plus(
            algs.prf,
            skeyseed,
            &[ni, nr, spi_i, spi_r],
            algs.keymat_len(),
        )?;
        let mut rest: &[u8] = &keymat;
        let mut take = |n: usize| -> Secret {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Zeroizing::new(head.to_vec())
        };
        let (p, a, e) = (algs.prf_key_len(), algs.integ_key_len(), algs.enc_key_len());
        Ok(IkeSaKeys {
            algs,
            sk_d: take(p),
            sk_ai: take(a),
            sk_ar: take(a),
            sk_ei: take(e),
            sk_er: take(e),
            sk_pi: take(p),
            sk_pr: take(p),
        })
    }

    /// The keys of a new IKE SA from IKE_SA_INIT: SKEYSEED from the nonces and g^ir, then
    /// [`IkeSaKeys::derive`].
    pub fn from_exchange(
        algs: IkeSaAlgs,
        ni: &[u8],
        nr: &[u8],
        gir: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeSaKeys, Ikev2CryptoError> {
        let seed = skeyseed(algs.prf, ni, nr, gir);
        Self::derive(algs, &seed, ni, nr, spi_i, spi_r)
    }

    /// The keys of the IKE SA that replaces this one through CREATE_CHILD_SA (RFC 7296
    /// 2.18): SKEYSEED = prf(SK_d, g^ir (new) | Ni | Nr) with this SA's PRF, then
    /// [`IkeSaKeys::derive`] with the new SA's algorithms and SPIs. Ni/Nr and SPIi/SPIr are
    /// those of the rekeying exchange's initiator and responder.
    pub fn rekey(
        &self,
        new_algs: IkeSaAlgs,
        gir_new: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeSaKeys, Ikev2CryptoError> {
        let seed = rekey_skeyseed(self.algs.prf, &self.sk_d, gir_new, ni, nr);
        Self::derive(new_algs, &seed, ni, nr, spi_i, spi_r)
    }

    /// KEYMAT for a child SA (RFC 7296 2.17): prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir (new) |
    /// Ni | Nr) with PFS, split into the initiator→responder keys then the responder→initiator
    /// keys; within each direction the encryption key (salt included) before the integrity
    /// key. "Initiator" is the initiator of the exchange that creates the child SA.
    pub fn child_keys(
        &self,
        child: ChildAlgs,
        gir_new: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildKeys, Ikev2CryptoError> {
        child.validate()?;
        let (e, a) = (child.enc_key_len(), child.integ_key_len());
        let seed: Vec<&[u8]> = match gir_new {
            Some(g) => vec![g, ni, nr],
            None => vec![ni, nr],
        };
        let keymat = prf_plus(self.algs.prf, &self.sk_d, &seed, 2 * (e + a))?;
        let dir = |k: &[u8]| ChildDirKeys {
            enc: Zeroizing::new(k[..e].to_vec()),
            integ: Zeroizing::new(k[e..].to_vec()),
        };
        let (i_to_r, r_to_i) = keymat.split_at(e + a);
        Ok(ChildKeys {
            i_to_r: dir(i_to_r),
            r_to_i: dir(r_to_i),
        })
    }

    /// SK_pi for the initiator's AUTH, SK_pr for the responder's (`initiator`: whose AUTH).
    pub fn sk_p(&self, initiator: bool) -> &[u8] {
        if initiator {
            &self.sk_pi
        } else {
            &self.sk_pr
        }
    }
}

/// The algorithms of a child SA's keys: ESP with a cipher (and integrity unless an AEAD), or
/// AH (integrity only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildAlgs {
    /// The ESP cipher; `None` for AH.
    pub enc: Option<EncAlg>,
    /// The integrity algorithm; `None` for an AEAD.
    pub integ: Option<AuthAlg>,
}

impl ChildAlgs {
    /// ESP with `enc` and, for CBC ciphers, `integ`.
    pub fn esp(enc: EncAlg, integ: Option<AuthAlg>) -> ChildAlgs {
        ChildAlgs {
            enc: Some(enc),
            integ,
        }
    }

    /// Checks the combination: an AEAD takes no integrity algorithm, and something is keyed.
    pub fn validate(&self) -> Result<(), Ikev2CryptoError> {
        match (self.enc, self.integ) {
            (Some(e), Some(_)) if e.is_aead() => Err(Ikev2CryptoError::BadAlgorithms(
                "an AEAD child SA must not have an integrity algorithm",
            )),
            (None, None) => Err(Ikev2CryptoError::BadAlgorithms(
                "a child SA needs a cipher or an integrity algorithm",
            )),
            _ => Ok(()),
        }
    }

    /// Encryption keying material per direction ([`EncAlg::key_len`], salt included).
    pub fn enc_key_len(&self) -> usize {
        self.enc.map_or(0, EncAlg::key_len)
    }

    /// Integrity key length per direction.
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, AuthAlg::key_len)
    }
}

/// One direction's keys of a child SA, wiped on drop.
#[derive(Clone)]
pub struct ChildDirKeys {
    /// ESP encryption keying material as the datapath takes it (key, then salt for AEADs);
    /// empty for AH.
    pub enc: Secret,
    /// Integrity key; empty for AEADs.
    pub integ: Secret,
}

impl fmt::Debug for ChildDirKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChildDirKeys({} + {} bytes, <secret>)",
            self.enc.len(),
            self.integ.len()
        )
    }
}

/// Both directions' keys of a child SA.
#[derive(Debug, Clone)]
pub struct ChildKeys {
    /// Keys of the SA carrying data from the exchange initiator to the responder.
    pub i_to_r: ChildDirKeys,
    /// Keys of the SA carrying data from the responder to the initiator.
    pub r_to_i: ChildDirKeys,
}

impl ChildKeys {
    /// Our outbound SA's keys (`initiator`: we initiated the exchange that made the SA).
    pub fn outbound(&self, initiator: bool) -> &ChildDirKeys {
        if initiator {
            &self.i_to_r
        } else {
            &self.r_to_i
        }
    }

    /// Our inbound SA's keys.
    pub fn inbound(&self, initiator: bool) -> &ChildDirKeys {
        self.outbound(!initiator)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    fn hx(b: &[u8]) -> String {
        hex::encode(b)
    }

    #[test]
    fn prf_plus_matches_a_hand_computation() {
        // T1 = HMAC(K, S | 01), T2 = HMAC(K, T1 | S | 02), T3 = HMAC(K, T2 | S | 03), straight
        // from the hmac crate.
        let key = b"prf+ key";
        let seed = b"the seed S";
        let mac = |parts: &[&[u8]]| {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        };
        let t1 = mac(&[seed, &[1]]);
        let t2 = mac(&[&t1, seed, &[2]]);
        let t3 = mac(&[&t2, seed, &[3]]);
        let want = [t1.clone(), t2, t3].concat();
        let got = prf_plus(Prf::HmacSha256, key, &[b"the ", b"seed S"], 80).unwrap();
        assert_eq!(hx(&got), hx(&want[..80]));
        // Shorter outputs are prefixes; one block needs no T2.
        let one = prf_plus(Prf::HmacSha256, key, &[seed], 7).unwrap();
        assert_eq!(&one[..], &t1[..7]);
        assert!(prf_plus(Prf::HmacSha256, key, &[seed], 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn prf_plus_stops_at_255_blocks() {
        let max = 255 * 20;
        let all = prf_plus(Prf::HmacSha1, b"k", &[b"s"], max).unwrap();
        assert_eq!(all.len(), max);
        assert_eq!(
            prf_plus(Prf::HmacSha1, b"k", &[b"s"], max + 1).unwrap_err(),
            Ikev2CryptoError::PrfPlusTooLong {
                requested: max + 1,
                max
            }
        );
    }

    /// NIST CAVS IKEv2 KDF (SP 800-135) example, SHA-1, DKM of 1056 bits — the run quoted in
    /// Libreswan's CAVP tool. Its 132-byte DKM is exactly the split of an HMAC-SHA1 /
    /// AES-CBC-128 / HMAC-SHA1-96 IKE SA (3·20 + 2·20 + 2·16).
    #[test]
    fn nist_cavs_ikev2_kdf_sha1() {
        let gir = h("4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52");
        let gir_new = h("863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330");
        let ni = h("32b50d5f4a3763f3");
        let nr = h("9206a04b26564cb1");
        let spi_i: [u8; 8] = h("34c9e7c188868785").try_into().unwrap();
        let spi_r: [u8; 8] = h("3ff77d760d2b2199").try_into().unwrap();
        let dkm = "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002\
                   a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a\
                   5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd1119\
                   8af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435\
                   a7a56cc4";
        let dkm_child = "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c581\
                         1a8e7b5d1cdabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee7181\
                         4ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf\
                         285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e66499\
                         4d234cb4";
        let dkm_child_dh = "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d373016\
                            28190e38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c04000\
                            52f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a\
                            05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054\
                            d56fd74c";
        let seed = skeyseed(Prf::HmacSha1, &ni, &nr, &gir);
        assert_eq!(hx(&seed), "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7");
        let all = prf_plus(Prf::HmacSha1, &seed, &[&ni, &nr, &spi_i, &spi_r], 132).unwrap();
        assert_eq!(hx(&all), dkm);
        let algs = IkeSaAlgs {
            prf: Prf::HmacSha1,
            enc: EncAlg::AesCbc128,
            integ: Some(AuthAlg::HmacSha1_96),
        };
        assert_eq!(algs.keymat_len(), 132);
        let k = IkeSaKeys::from_exchange(algs, &ni, &nr, &gir, &spi_i, &spi_r).unwrap();
        let split = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ]
        .iter()
        .map(|s| hx(s))
        .collect::<String>();
        assert_eq!(split, dkm);
        assert_eq!(hx(&k.sk_d), &dkm[..40]);
        let child = prf_plus(Prf::HmacSha1, &k.sk_d, &[&ni, &nr], 132).unwrap();
        assert_eq!(hx(&child), dkm_child);
        let child_dh = prf_plus(Prf::HmacSha1, &k.sk_d, &[&gir_new, &ni, &nr], 132).unwrap();
        assert_eq!(hx(&child_dh), dkm_child_dh);
        // The child API takes its keys from the front of the same KEYMAT: i→r then r→i.
        let esp = ChildAlgs::esp(EncAlg::AesCbc256, Some(AuthAlg::HmacSha1_96));
        for (pfs, want) in [(None, &child), (Some(&gir_new[..]), &child_dh)] {
            let c = k.child_keys(esp, pfs, &ni, &nr).unwrap();
            let got = [
                &c.i_to_r.enc,
                &c.i_to_r.integ,
                &c.r_to_i.enc,
                &c.r_to_i.integ,
            ]
            .iter()
            .map(|s| hx(s))
            .collect::<String>();
            assert_eq!(got, hx(&want[..2 * (32 + 20)]));
        }
        let rekey = rekey_skeyseed(Prf::HmacSha1, &k.sk_d, &gir_new, &ni, &nr);
        assert_eq!(hx(&rekey), "63e81194946ebd05df7df5ebf5d8750056bf1f1d");
    }

    // ---- scripts/ike-crypto-vectors.py (Python hmac/hashlib) ------------------------------

    fn ni() -> Vec<u8> {
        (0x10..0x30).collect()
    }
    fn nr() -> Vec<u8> {
        (0x40..0x60).collect()
    }
    fn gir() -> Vec<u8> {
        (0..256u32).map(|i| ((7 * i + 3) % 256) as u8).collect()
    }
    fn gir_new() -> Vec<u8> {
        (0..32u32).map(|i| ((5 * i + 1) % 256) as u8).collect()
    }
    const SPI_I: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const SPI_R: [u8; 8] = [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18];

    /// Case A: PRF_HMAC_SHA2_256, AES-CBC-128, AUTH_HMAC_SHA2_256_128.
    pub(crate) fn case_a() -> IkeSaKeys {
        let algs = IkeSaAlgs {
            prf: Prf::HmacSha256,
            enc: EncAlg::AesCbc128,
            integ: Some(AuthAlg::HmacSha2_256_128),
        };
        IkeSaKeys::from_exchange(algs, &ni(), &nr(), &gir(), &SPI_I, &SPI_R).unwrap()
    }

    fn check(k: &IkeSaKeys, want: [&str; 7]) {
        let got = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ];
        let names = ["SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr"];
        for ((g, w), n) in got.iter().zip(want).zip(names) {
            assert_eq!(hx(g), w, "{n} of {:?}", k.algs);
        }
    }

    #[test]
    fn key_schedule_sha256_aes_cbc() {
        assert_eq!(
            hx(&skeyseed(Prf::HmacSha256, &ni(), &nr(), &gir())),
            "3ac5d9644d0d6d94ed7d017e1c7a48b78d4a5783f16b09946e1203f668a52de7"
        );
        let a = case_a();
        check(
            &a,
            [
                "24a8a262815c8f208c4030cd75a52288f2796e7651cb41be4fae1637e15946ae",
                "69a168ef8f87402f48a341eaee1a89108f3db07816cacb9ab4087264ebe6d85a",
                "c7f195a5548788a4361a76023d8c7929c7fa86cd75f9dbf6f0e9000116ef35f8",
                "68b765fde33744725fa7eb17515430b4",
                "235b3367c5c78b62cd58cda24ba6176d",
                "90e3dcbd797c2adc79a48f817d0f05169f83f304fb9f53930833defbcdd3c62f",
                "397f435446f84e31d9ce994d891a86a3e4efdb8c5115b45883bc2ded50a7a5cb",
            ],
        );
        assert_eq!(a.sk_p(true), &a.sk_pi[..]);
        assert_eq!(a.sk_p(false), &a.sk_pr[..]);
        // Child A1: AES-GCM-16-128 (20 bytes with salt each way), no PFS.
        let c = a
            .child_keys(
                ChildAlgs::esp(EncAlg::AesGcm16_128, None),
                None,
                &ni(),
                &nr(),
            )
            .unwrap();
        assert_eq!(
            hx(&c.i_to_r.enc),
            "e7c0c0368cec6bef8617e74fe3da23d385eef669"
        );
        assert_eq!(
            hx(&c.r_to_i.enc),
            "9f5086666e357f2cfe1632272ab2530deab01636"
        );
        assert!(c.i_to_r.integ.is_empty() && c.r_to_i.integ.is_empty());
        // Child A2: AES-CBC-256 + HMAC-SHA2-512-256 with PFS: encryption before integrity.
        let c = a
            .child_keys(
                ChildAlgs::esp(EncAlg::AesCbc256, Some(AuthAlg::HmacSha2_512_256)),
                Some(&gir_new()),
                &ni(),
                &nr(),
            )
            .unwrap();
        assert_eq!(
            hx(&c.i_to_r.enc),
            "bb4f95ded990d0aa859aefd6faf2cc5b85108e998966ae9360822d57cc458cdf"
        );
        assert_eq!(
            hx(&c.i_to_r.integ),
            "bb697c6d44d69de2909b38ca03f63e645c929e1a1316d391ad938efcb06d98de\
             8bf45eb96ef14d826ec88a82aa90eaf62a5484c962223fcf2517f9326dd5582f"
        );
        assert_eq!(
            hx(&c.r_to_i.enc),
            "bc75dbf55ba08b5132250e6fd5f2369779343da612531cc9bd053d340cc9efd3"
        );
        assert_eq!(c.r_to_i.integ.len(), 64);
        assert!(hx(&c.r_to_i.integ)
            .starts_with("aae06bb234a536653496998ea9d8565ba59e168ee0c1e3f2483010c1bac33b90"));
        // Our outbound SA is i→r when we initiated the exchange.
        assert_eq!(c.outbound(true).enc, c.i_to_r.enc);
        assert_eq!(c.inbound(true).enc, c.r_to_i.enc);
        assert_eq!(c.outbound(false).enc, c.r_to_i.enc);
        assert_eq!(c.inbound(false).enc, c.i_to_r.enc);
    }

    #[test]
    fn rekeyed_ike_sa_uses_the_old_prf_for_skeyseed() {
        // Case B: case A rekeyed by CREATE_CHILD_SA into PRF_HMAC_SHA2_384 + AES-GCM-16-256;
        // SKEYSEED' = HMAC-SHA-256(SK_d(A), g^ir(new) | Ni' | Nr'), then prf+ with SHA-384.
        let a = case_a();
        let ni2: Vec<u8> = (0x80..0x90).collect();
        let nr2: Vec<u8> = (0xa0..0xc0).collect();
        let spi_i2 = [0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28];
        let spi_r2 = [0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38];
        assert_eq!(
            hx(&rekey_skeyseed(
                Prf::HmacSha256,
                &a.sk_d,
                &gir_new(),
                &ni2,
                &nr2
            )),
            "9063f3f5861001c94967d1056c78b83bb93bbbfb24766d4bf0325bfbed654171"
        );
        let algs = IkeSaAlgs {
            prf: Prf::HmacSha384,
            enc: EncAlg::AesGcm16_256,
            integ: None,
        };
        let b = a
            .rekey(algs, &gir_new(), &ni2, &nr2, &spi_i2, &spi_r2)
            .unwrap();
        assert_eq!(b.algs, algs);
        check(
            &b,
            [
                "896c41464545c66e2f2baa6bda0184b31e4936306aab5c8bbb432968346a9be5\
                 c2bcd49a56161f383f81f898757cb9d6",
                "",
                "",
                "df778d84c497016822d385a677b5a28bb8b96387b5e80bd2ef2d9f326c4fe79a22159fef",
                "0c7ec912f4192fc947383ff195c601861ab8839a8b00f5f5184cc3e65159be0374af18de",
                "8f6a99aa25730108701b787d10fe98c9a089f4db977297ed90ef66ae3c048d34\
                 3f07e06b787de54f034709ca7f87c0fc",
                "5ae24c73772e140b6053be9fdb5003125ce52e1326956c180b0eb582269c47c4\
                 8e0cd5b85c995d8b97a294f80b3b9da4",
            ],
        );
    }

    #[test]
    fn key_schedule_sha512_chacha20_poly1305() {
        let algs = IkeSaAlgs {
            prf: Prf::HmacSha512,
            enc: EncAlg::ChaCha20Poly1305,
            integ: None,
        };
        assert_eq!(algs.keymat_len(), 3 * 64 + 2 * 36);
        let c = IkeSaKeys::from_exchange(algs, &ni(), &nr(), &gir(), &SPI_I, &SPI_R).unwrap();
        assert_eq!(
            hx(&c.sk_ei),
            "00d3af35a1ab8ab2983401fdfafc40040645177546ef4dc4fec34e5586ef756b2fe9cc96"
        );
        assert_eq!(
            hx(&c.sk_er),
            "db716cebe4d59b67cc9fa1dc88b8ca1467f33777b0669f43d0a46b3d032cf3a742bb24e3"
        );
        assert!(hx(&c.sk_d).starts_with("2f54d749b953d527d561c95e936e24bb"));
        assert!(hx(&c.sk_pr).ends_with("b6d56b618f4bb10b"));
        assert!(c.sk_ai.is_empty() && c.sk_ar.is_empty());
        let child = c
            .child_keys(
                ChildAlgs::esp(EncAlg::ChaCha20Poly1305, None),
                Some(&gir_new()),
                &ni(),
                &nr(),
            )
            .unwrap();
        assert_eq!(
            hx(&child.i_to_r.enc),
            "f56aeb06383284af94e3d51f43a92dbcd7f0be9bbdc571f935c1687ce2d2c945a2304e5b"
        );
        assert_eq!(
            hx(&child.r_to_i.enc),
            "8ab0d774495360bc1305bb2be8373c76a2bd21eb12505af7f498f0eb7521c088d6d91b9c"
        );
    }

    #[test]
    fn key_schedule_sha1_3des() {
        // 3·20 + 2·20 + 2·24 = 148 bytes: eight SHA-1 blocks of prf+.
        let algs = IkeSaAlgs {
            prf: Prf::HmacSha1,
            enc: EncAlg::TripleDesCbc,
            integ: Some(AuthAlg::HmacSha1_96),
        };
        let d = IkeSaKeys::from_exchange(algs, &ni(), &nr(), &gir(), &SPI_I, &SPI_R).unwrap();
        check(
            &d,
            [
                "4bf84aae6bd56dfaf12776969cf571ea6dbd54e8",
                "462e86afc6e1a535ba3a8dce74ea145904eb4f13",
                "c524d142ac7bcef8cd7e728bf6cdc2c7791f9ab6",
                "027c7cb53b940723e47b04c95c8b8ad0ddd2c037c49c004d",
                "05e65578f028229b5ca4136762a74f630fb683e8cae05b7e",
                "00b042da0eff6386be773ed856d357742fb562e7",
                "4c1ea902cde009a4b6fbb2740bce34e9284eda6d",
            ],
        );
    }

    #[test]
    fn algorithm_combinations_are_checked() {
        let ok = |prf, enc, integ| {
            IkeSaKeys::from_exchange(
                IkeSaAlgs { prf, enc, integ },
                b"n",
                b"n",
                b"g",
                &SPI_I,
                &SPI_R,
            )
        };
        assert!(ok(Prf::HmacSha256, EncAlg::AesGcm16_128, None).is_ok());
        for (enc, integ) in [
            (EncAlg::AesGcm16_256, Some(AuthAlg::HmacSha2_256_128)),
            (EncAlg::AesCbc256, None),
            (EncAlg::Des, Some(AuthAlg::HmacSha1_96)),
            (EncAlg::NullEnc, Some(AuthAlg::HmacSha1_96)),
        ] {
            assert!(
                matches!(
                    ok(Prf::HmacSha256, enc, integ),
                    Err(Ikev2CryptoError::BadAlgorithms(_))
                ),
                "{enc} {integ:?}"
            );
        }
        let a = case_a();
        let bad = ChildAlgs::esp(EncAlg::ChaCha20Poly1305, Some(AuthAlg::HmacSha1_96));
        assert!(matches!(
            a.child_keys(bad, None, b"n", b"n"),
            Err(Ikev2CryptoError::BadAlgorithms(_))
        ));
        let none = ChildAlgs {
            enc: None,
            integ: None,
        };
        assert!(a.child_keys(none, None, b"n", b"n").is_err());
        // AH: integrity keys only.
        let ah = ChildAlgs {
            enc: None,
            integ: Some(AuthAlg::HmacSha2_256_128),
        };
        let c = a.child_keys(ah, None, b"n", b"n").unwrap();
        assert!(c.i_to_r.enc.is_empty());
        assert_eq!(c.r_to_i.integ.len(), 32);
    }

    #[test]
    fn debug_output_hides_keys() {
        let a = case_a();
        let d = format!("{a:?}");
        assert!(!d.contains(&hx(&a.sk_d)[..8]), "{d}");
        assert!(d.contains("HmacSha256"));
        let c = a
            .child_keys(ChildAlgs::esp(EncAlg::AesGcm16_128, None), None, b"n", b"n")
            .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains(&hx(&c.i_to_r.enc)[..8]), "{d}");
    }
}
