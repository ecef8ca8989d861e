//! MODP Diffie-Hellman (RFC 2409 6.2, RFC 3526) with constant-time exponentiation.
//!
//! Groups 2 (1024-bit), 5 (1536-bit) and 14 (2048-bit), generator 2. Arithmetic uses
//! `crypto-bigint`'s Montgomery residues (`DynResidue`), whose exponentiation runs in time
//! independent of the exponent's value (only the fixed exponent bit length is visible).
//!
//! Private exponents are random numbers of [`DhGroup::exponent_bits`] bits (256 for groups 2
//! and 5, 320 for group 14): at least twice the groups' estimated strength, as RFC 3526 section
//! 8 suggests, and much cheaper than full-size exponents. Peers cannot tell the difference.
//!
//! Public values and shared secrets are big-endian, left-padded with zeros to the prime
//! length, as IKE puts them on the wire and into SKEYID. Private exponents and shared secrets
//! are wiped on drop.

use core::fmt;
use std::sync::OnceLock;

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Limb, Uint, Word, U1024, U1536, U2048, U512};
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// The 1024-bit MODP prime of RFC 2409 6.2 (group 2).
const MODP1024_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";

/// The 1536-bit MODP prime of RFC 3526 2 (group 5).
const MODP1536_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF";

/// The 2048-bit MODP prime of RFC 3526 3 (group 14).
const MODP2048_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/// Container of private exponents (the largest [`DhGroup::exponent_bits`] must fit).
type Exponent = U512;

/// A MODP Diffie-Hellman group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 2: 1024-bit MODP (RFC 2409 6.2).
    Modp1024,
    /// Group 5: 1536-bit MODP (RFC 3526 2).
    Modp1536,
    /// Group 14: 2048-bit MODP (RFC 3526 3).
    Modp2048,
}

impl DhGroup {
    /// Every supported group, weakest first.
    pub const ALL: [DhGroup; 3] = [DhGroup::Modp1024, DhGroup::Modp1536, DhGroup::Modp2048];

    /// The group from its IKE number (IKEv1 group description / IKEv2 transform ID).
    pub fn from_id(id: u16) -> Option<DhGroup> {
        match id {
            2 => Some(DhGroup::Modp1024),
            5 => Some(DhGroup::Modp1536),
            14 => Some(DhGroup::Modp2048),
            _ => None,
        }
    }

    /// The IKE group number.
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
        }
    }

    /// Pluto's short name (`MODP1024`, as in `3DES_CBC_192-SHA-MODP1024`).
    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "MODP1024",
            DhGroup::Modp1536 => "MODP1536",
            DhGroup::Modp2048 => "MODP2048",
        }
    }

    fn prime_hex(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => MODP1024_P,
            DhGroup::Modp1536 => MODP1536_P,
            DhGroup::Modp2048 => MODP2048_P,
        }
    }

    /// The prime, big-endian.
    pub fn prime(self) -> Vec<u8> {
        let hex = self.prime_hex().as_bytes();
        hex.chunks_exact(2)
            .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1]))
            .collect()
    }

    /// Length in bytes of the prime, hence of public values and shared secrets.
    pub fn prime_len(self) -> usize {
        self.prime_hex().len() / 2
    }

    /// Length in bits of the random private exponents generated for this group.
    pub fn exponent_bits(self) -> usize {
        match self {
            DhGroup::Modp1024 | DhGroup::Modp1536 => 256,
            DhGroup::Modp2048 => 320,
        }
    }
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a Diffie-Hellman computation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhError {
    /// The peer's public value is not exactly the prime's length.
    BadLength {
        /// The prime's length.
        expected: usize,
        /// What was received.
        got: usize,
    },
    /// The peer's public value is not in 2..=p-2 (0, 1, p-1 and ≥ p are refused).
    OutOfRange,
    /// A private exponent given to [`DhKeyPair::from_secret`] is too long or below 2.
    BadSecret,
}

impl fmt::Display for DhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhError::BadLength { expected, got } => write!(
                f,
                "Diffie-Hellman public value has {got} bytes, expected {expected}"
            ),
            DhError::OutOfRange => f.write_str("Diffie-Hellman public value out of range"),
            DhError::BadSecret => f.write_str("unusable Diffie-Hellman private exponent"),
        }
    }
}

impl std::error::Error for DhError {}

/// A shared secret g^xy, left-padded to the prime length, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret({} bytes)", self.0.len())
    }
}

/// Our half of a Diffie-Hellman exchange: private exponent and public value g^x.
pub struct DhKeyPair {
    group: DhGroup,
    secret: Exponent,
    public: Vec<u8>,
}

impl Drop for DhKeyPair {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("group", &self.group)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl DhKeyPair {
    /// Draws a fresh private exponent of [`DhGroup::exponent_bits`] bits and computes g^x.
    pub fn generate<R: RngCore + CryptoRng>(group: DhGroup, rng: &mut R) -> DhKeyPair {
        let bytes = group.exponent_bits() / 8;
        let mut buf = Zeroizing::new(vec![0u8; Exponent::BYTES]);
        loop {
            rng.fill_bytes(&mut buf[Exponent::BYTES - bytes..]);
            let secret = Exponent::from_be_slice(&buf);
            if secret > Exponent::ONE {
                return Self::with_exponent(group, secret);
            }
        }
    }

    /// Uses the given big-endian private exponent (for tests and known-answer checks): at most
    /// [`DhGroup::exponent_bits`] bits, and at least 2.
    pub fn from_secret(group: DhGroup, secret: &[u8]) -> Result<DhKeyPair, DhError> {
        let significant = strip_zeros(secret);
        if significant.len() * 8 > group.exponent_bits() {
            return Err(DhError::BadSecret);
        }
        let mut buf = Zeroizing::new(vec![0u8; Exponent::BYTES]);
        buf[Exponent::BYTES - significant.len()..].copy_from_slice(significant);
        let secret = Exponent::from_be_slice(&buf);
        if secret <= Exponent::ONE {
            return Err(DhError::BadSecret);
        }
        Ok(Self::with_exponent(group, secret))
    }

    fn with_exponent(group: DhGroup, secret: Exponent) -> DhKeyPair {
        let mut generator = vec![0u8; group.prime_len()];
        if let Some(last) = generator.last_mut() {
            *last = 2;
        }
        let public = modexp(group, &generator, &secret);
        DhKeyPair {
            group,
            secret,
            public,
        }
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our public value g^x (prime length, big-endian): the KE payload data.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Validates the peer's public value and computes the shared secret (g^y)^x.
    pub fn compute_shared(&self, peer_public: &[u8]) -> Result<SharedSecret, DhError> {
        validate_public_value(self.group, peer_public)?;
        Ok(SharedSecret(Zeroizing::new(modexp(
            self.group,
            peer_public,
            &self.secret,
        ))))
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Checks a peer's public value: exactly the prime's length, and 1 < y < p-1.
pub fn validate_public_value(group: DhGroup, y: &[u8]) -> Result<(), DhError> {
    if y.len() != group.prime_len() {
        return Err(DhError::BadLength {
            expected: group.prime_len(),
            got: y.len(),
        });
    }
    let in_range = match group {
        DhGroup::Modp1024 => in_range(consts_1024(), y),
        DhGroup::Modp1536 => in_range(consts_1536(), y),
        DhGroup::Modp2048 => in_range(consts_2048(), y),
    };
    if in_range {
        Ok(())
    } else {
        Err(DhError::OutOfRange)
    }
}

/// `bytes` (at most `Uint::<L>::BYTES` long) as a Uint, left-padded.
fn uint_from_be<const L: usize>(bytes: &[u8]) -> Option<Uint<L>> {
    let len = Uint::<L>::BYTES;
    if bytes.len() > len {
        return None;
    }
    let mut buf = Zeroizing::new(vec![0u8; len]);
    buf[len - bytes.len()..].copy_from_slice(bytes);
    Some(Uint::<L>::from_be_slice(&buf))
}

/// A Uint as big-endian bytes, the last `out_len` bytes kept.
fn uint_to_be<const L: usize>(value: &Uint<L>, out_len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(Uint::<L>::BYTES);
    for word in value.as_words().iter().rev() {
        let word: Word = *word;
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    debug_assert_eq!(Limb::BYTES * L, bytes.len());
    let start = bytes.len().saturating_sub(out_len);
    let out = bytes[start..].to_vec();
    bytes.zeroize();
    out
}

/// A group's prime and its Montgomery parameters, computed once per process.
/// `DynResidueParams::new` finds R mod p and R² mod p by bit-serial long division: for MODP2048
/// that cost a third as much as the exponentiation itself, on every one of the four
/// exponentiations each side of a Main Mode + PFS Quick Mode does (docs/performance.md).
struct GroupConsts<const L: usize> {
    p: Uint<L>,
    params: DynResidueParams<L>,
}

impl<const L: usize> GroupConsts<L> {
    fn new(group: DhGroup) -> GroupConsts<L> {
        let p = uint_from_be::<L>(&group.prime()).expect("the prime fits its Uint");
        // The MODP primes are odd, so the Montgomery parameters always exist.
        GroupConsts {
            p,
            params: DynResidueParams::new(&p),
        }
    }
}

fn consts_1024() -> &'static GroupConsts<{ U1024::LIMBS }> {
    static C: OnceLock<GroupConsts<{ U1024::LIMBS }>> = OnceLock::new();
    C.get_or_init(|| GroupConsts::new(DhGroup::Modp1024))
}

fn consts_1536() -> &'static GroupConsts<{ U1536::LIMBS }> {
    static C: OnceLock<GroupConsts<{ U1536::LIMBS }>> = OnceLock::new();
    C.get_or_init(|| GroupConsts::new(DhGroup::Modp1536))
}

fn consts_2048() -> &'static GroupConsts<{ U2048::LIMBS }> {
    static C: OnceLock<GroupConsts<{ U2048::LIMBS }>> = OnceLock::new();
    C.get_or_init(|| GroupConsts::new(DhGroup::Modp2048))
}

fn in_range<const L: usize>(c: &GroupConsts<L>, y: &[u8]) -> bool {
    match uint_from_be::<L>(y) {
        Some(y) => y > Uint::<L>::ONE && y < c.p.wrapping_sub(&Uint::<L>::ONE),
        None => false,
    }
}

/// base^exp mod p for the group, constant time in `exp`; `base` at most prime length.
fn modexp(group: DhGroup, base: &[u8], exp: &Exponent) -> Vec<u8> {
    let bits = group.exponent_bits();
    let len = group.prime_len();
    match group {
        DhGroup::Modp1024 => modexp_limbs(consts_1024(), len, base, exp, bits),
        DhGroup::Modp1536 => modexp_limbs(consts_1536(), len, base, exp, bits),
        DhGroup::Modp2048 => modexp_limbs(consts_2048(), len, base, exp, bits),
    }
}

fn modexp_limbs<const L: usize>(
    c: &GroupConsts<L>,
    out_len: usize,
    base: &[u8],
    exp: &Exponent,
    exp_bits: usize,
) -> Vec<u8> {
    let Some(b) = uint_from_be::<L>(base) else {
        return Vec::new();
    };
    let mut result = DynResidue::new(&b, c.params)
        .pow_bounded_exp(exp, exp_bits.min(Exponent::BITS))
        .retrieve();
    let out = uint_to_be(&result, out_len);
    result.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn primes_are_right() {
        for group in DhGroup::ALL {
            let p = group.prime();
            assert_eq!(p.len(), group.prime_len());
            let expected_bits = match group {
                DhGroup::Modp1024 => 1024,
                DhGroup::Modp1536 => 1536,
                DhGroup::Modp2048 => 2048,
            };
            // Top bit set, so the bit length is exactly the byte length * 8.
            assert_eq!(p.len() * 8, expected_bits);
            assert!(p[0] & 0x80 != 0);
            // RFC 2409 / 3526 primes start and end with 64 one bits.
            assert!(p[..8].iter().chain(&p[p.len() - 8..]).all(|&b| b == 0xff));
        }
    }

    fn fermat<const L: usize>(group: DhGroup) -> bool {
        let p = uint_from_be::<L>(&group.prime()).unwrap();
        let params = DynResidueParams::new(&p);
        let two = DynResidue::new(&Uint::<L>::from_u8(2), params);
        let pm1 = p.wrapping_sub(&Uint::<L>::ONE);
        two.pow(&pm1).retrieve() == Uint::<L>::ONE
    }

    #[test]
    fn montgomery_parameters_are_computed_once_and_right() {
        fn check<const L: usize>(group: DhGroup, c: fn() -> &'static GroupConsts<L>) {
            // One instance per process, not one per exponentiation.
            assert!(std::ptr::eq(c(), c()));
            let p = uint_from_be::<L>(&group.prime()).unwrap();
            assert_eq!(c().p, p);
            assert_eq!(c().params, DynResidueParams::new(&p));
        }
        check(DhGroup::Modp1024, consts_1024);
        check(DhGroup::Modp1536, consts_1536);
        check(DhGroup::Modp2048, consts_2048);
        // And results through the cached parameters match ones computed from scratch.
        let mut rng = StdRng::seed_from_u64(3);
        let kp = DhKeyPair::generate(DhGroup::Modp2048, &mut rng);
        let p = uint_from_be::<{ U2048::LIMBS }>(&DhGroup::Modp2048.prime()).unwrap();
        let fresh = DynResidue::new(&U2048::from_u8(2), DynResidueParams::new(&p))
            .pow_bounded_exp(&kp.secret, DhGroup::Modp2048.exponent_bits())
            .retrieve();
        assert_eq!(kp.public_value(), &uint_to_be(&fresh, 256)[..]);
    }

    #[test]
    fn fermat_test_passes() {
        assert!(fermat::<{ U1024::LIMBS }>(DhGroup::Modp1024));
        assert!(fermat::<{ U1536::LIMBS }>(DhGroup::Modp1536));
        assert!(fermat::<{ U2048::LIMBS }>(DhGroup::Modp2048));
    }

    #[test]
    fn two_parties_agree() {
        let mut rng = StdRng::seed_from_u64(7);
        for group in DhGroup::ALL {
            let a = DhKeyPair::generate(group, &mut rng);
            let b = DhKeyPair::generate(group, &mut rng);
            assert_eq!(a.public_value().len(), group.prime_len());
            let sa = a.compute_shared(b.public_value()).unwrap();
            let sb = b.compute_shared(a.public_value()).unwrap();
            assert_eq!(sa, sb);
            assert_eq!(sa.as_bytes().len(), group.prime_len());
            assert_ne!(a.public_value(), b.public_value());
        }
    }

    #[test]
    fn small_exponent_known_answer() {
        // g^3 = 8, left-padded; (g^5)^3 = 2^15 = 32768.
        for group in DhGroup::ALL {
            let kp = DhKeyPair::from_secret(group, &[3]).unwrap();
            let mut expected = vec![0u8; group.prime_len()];
            *expected.last_mut().unwrap() = 8;
            assert_eq!(kp.public_value(), &expected[..]);
            let other = DhKeyPair::from_secret(group, &[0, 5]).unwrap();
            let shared = kp.compute_shared(other.public_value()).unwrap();
            let mut expected = vec![0u8; group.prime_len()];
            let n = expected.len();
            expected[n - 2..].copy_from_slice(&32768u16.to_be_bytes());
            assert_eq!(shared.as_bytes(), &expected[..]);
        }
        assert_eq!(
            DhKeyPair::from_secret(DhGroup::Modp1024, &[1]).unwrap_err(),
            DhError::BadSecret
        );
        assert_eq!(
            DhKeyPair::from_secret(DhGroup::Modp1024, &[1; 33]).unwrap_err(),
            DhError::BadSecret
        );
    }

    #[test]
    fn full_size_exponent_known_answer() {
        // Cross-checked with Python: pow(2, 0x0123...ef (32 bytes), p1024), last 16 bytes.
        let secret: Vec<u8> = (0u8..32).collect();
        let kp = DhKeyPair::from_secret(DhGroup::Modp1024, &secret).unwrap();
        let value = kp.public_value();
        assert_eq!(value.len(), 128);
        assert_eq!(hex::encode(&value[112..]), KAT_1024_TAIL);
    }

    const KAT_1024_TAIL: &str = "7b99cdb0808eed2225aeb50a0838b3d7";

    #[test]
    fn invalid_peer_values_refused() {
        let mut rng = StdRng::seed_from_u64(9);
        for group in DhGroup::ALL {
            let kp = DhKeyPair::generate(group, &mut rng);
            let n = group.prime_len();
            let zero = vec![0u8; n];
            let mut one = vec![0u8; n];
            one[n - 1] = 1;
            let p = group.prime();
            let mut pm1 = p.clone();
            pm1[n - 1] -= 1;
            let ff = vec![0xffu8; n];
            for bad in [&zero, &one, &pm1, &p, &ff] {
                assert_eq!(kp.compute_shared(bad).unwrap_err(), DhError::OutOfRange);
            }
            assert_eq!(
                kp.compute_shared(&kp.public_value()[1..]).unwrap_err(),
                DhError::BadLength {
                    expected: n,
                    got: n - 1
                }
            );
            let mut long = vec![0u8];
            long.extend_from_slice(kp.public_value());
            assert!(matches!(
                kp.compute_shared(&long),
                Err(DhError::BadLength { .. })
            ));
            // 2 and p-2 are the extreme accepted values.
            let mut two = vec![0u8; n];
            two[n - 1] = 2;
            assert!(kp.compute_shared(&two).is_ok());
            let mut pm2 = p.clone();
            pm2[n - 1] -= 2;
            assert!(kp.compute_shared(&pm2).is_ok());
        }
    }
}
