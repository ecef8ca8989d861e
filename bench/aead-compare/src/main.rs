//! Seals and opens ESP-sized payloads in place with each AEAD implementation, one call per
//! packet (so per-call overhead counts), and prints Gbit/s per size and the ratio to `ring`
//! measured in the same run. Rounds are interleaved so machine noise hits every provider alike.
//!
//! Run: `cargo run --release --manifest-path bench/aead-compare/Cargo.toml [ROUNDS]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 5] = [64, 512, 1400, 4096, 8900];
const AAD: [u8; 8] = [0, 0, 0x12, 0x34, 0, 0, 0, 1];

/// One provider's sealing of a buffer (payload || 16-byte tag room) with a fresh nonce.
trait Aead {
    fn name(&self) -> &'static str;
    fn seal(&mut self, nonce: [u8; 12], buf: &mut Vec<u8>, len: usize);
}

struct RustCryptoGcm(aes_gcm::Aes128Gcm);
struct RustCryptoChacha(chacha20poly1305::ChaCha20Poly1305);
struct RingAead(ring::aead::LessSafeKey, &'static str);
struct AwsLcAead(aws_lc_rs::aead::LessSafeKey, &'static str);
struct OpenSslAead(openssl::symm::Cipher, Vec<u8>, &'static str);

impl Aead for RustCryptoGcm {
    fn name(&self) -> &'static str {
        "RustCrypto aes-gcm"
    }
    fn seal(&mut self, nonce: [u8; 12], buf: &mut Vec<u8>, len: usize) {
        use aes_gcm::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce.into(), &AAD, &mut buf[..len])
            .unwrap();
        buf[len..len + 16].copy_from_slice(&tag);
    }
}

impl Aead for RustCryptoChacha {
    fn name(&self) -> &'static str {
        "RustCrypto chacha20poly1305"
    }
    fn seal(&mut self, nonce: [u8; 12], buf: &mut Vec<u8>, len: usize) {
        use chacha20poly1305::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce.into(), &AAD, &mut buf[..len])
            .unwrap();
        buf[len..len + 16].copy_from_slice(&tag);
    }
}

impl Aead for RingAead {
    fn name(&self) -> &'static str {
        self.1
    }
    fn seal(&mut self, nonce: [u8; 12], buf: &mut Vec<u8>, len: usize) {
        use ring::aead::{Aad, Nonce};
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut buf[..len],
            )
            .unwrap();
        buf[len..len + 16].copy_from_slice(tag.as_ref());
    }
}

impl Aead for AwsLcAead {
    fn name(&self) -> &'static str {
        self.1
    }
    fn seal(&mut self, nonce: [u8; 12], buf: &mut Vec<u8>, len: usize) {
        use aws_lc_rs::aead::{Aad, Nonce};
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut buf[..len],
            )
            .unwrap();
        buf[len..len + 16].copy_from_slice(tag.as_ref());
    }
}

impl Aead for OpenSslAead {
    fn name(&self) -> &'static str {
        self.2
    }
    fn seal(&mut self, nonce: [u8; 12], buf: &mut Vec<u8>, len: usize) {
        // The safe one-shot API: it allocates the output (what a caller of the safe crate pays).
        let mut tag = [0u8; 16];
        let out =
            openssl::symm::encrypt_aead(self.0, &self.1, Some(&nonce), &AAD, &buf[..len], &mut tag)
                .unwrap();
        buf[..len].copy_from_slice(&out);
        buf[len..len + 16].copy_from_slice(&tag);
    }
}

fn providers() -> Vec<Box<dyn Aead>> {
    use aes_gcm::KeyInit;
    let k16 = [7u8; 16];
    let k32 = [9u8; 32];
    vec![
        Box::new(RustCryptoGcm(aes_gcm::Aes128Gcm::new(&k16.into()))),
        Box::new(RingAead(
            ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &k16).unwrap(),
            ),
            "ring AES-128-GCM",
        )),
        Box::new(AwsLcAead(
            aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_128_GCM, &k16).unwrap(),
            ),
            "aws-lc-rs AES-128-GCM",
        )),
        Box::new(OpenSslAead(
            openssl::symm::Cipher::aes_128_gcm(),
            k16.to_vec(),
            "OpenSSL AES-128-GCM",
        )),
        Box::new(RustCryptoChacha(chacha20poly1305::ChaCha20Poly1305::new(
            &k32.into(),
        ))),
        Box::new(RingAead(
            ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &k32).unwrap(),
            ),
            "ring ChaCha20-Poly1305",
        )),
        Box::new(AwsLcAead(
            aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::CHACHA20_POLY1305, &k32)
                    .unwrap(),
            ),
            "aws-lc-rs ChaCha20-Poly1305",
        )),
        Box::new(OpenSslAead(
            openssl::symm::Cipher::chacha20_poly1305(),
            k32.to_vec(),
            "OpenSSL ChaCha20-Poly1305",
        )),
    ]
}

/// Bytes sealed per second by `p` at `size` over about `dur`.
fn run(p: &mut dyn Aead, size: usize, dur: Duration) -> f64 {
    let mut buf = vec![0x5au8; size + 16];
    let mut n: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < dur {
        for _ in 0..64 {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&n.to_be_bytes());
            p.seal(nonce, &mut buf, size);
            black_box(&buf);
            n += 1;
        }
    }
    (n as f64 * size as f64) / start.elapsed().as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let mut ps = providers();
    // results[provider][size] = samples in Gbit/s
    let mut res = vec![vec![Vec::new(); SIZES.len()]; ps.len()];
    for _ in 0..rounds {
        for (si, &size) in SIZES.iter().enumerate() {
            for (pi, p) in ps.iter_mut().enumerate() {
                let bps = run(p.as_mut(), size, Duration::from_millis(150));
                res[pi][si].push(bps * 8.0 / 1e9);
            }
        }
    }
    let median = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!("seal, one call per packet, Gbit/s (median of {rounds} interleaved rounds); ratio to ring in brackets");
    print!("{:<30}", "provider");
    for s in SIZES {
        print!("{:>16}", format!("{s} B"));
    }
    println!();
    for (pi, p) in ps.iter().enumerate() {
        let base = if p.name().contains("ChaCha") || p.name().contains("chacha") {
            5
        } else {
            1
        };
        print!("{:<30}", p.name());
        for si in 0..SIZES.len() {
            let g = median(&res[pi][si]);
            let b = median(&res[base][si]);
            print!("{:>16}", format!("{g:.2} ({:.2}x)", g / b));
        }
        println!();
    }
}
