//! Per-core throughput of each IPsec transform, outbound (encapsulate) and inbound (ICV check +
//! decrypt, or AH verify, or IPComp inflate), at 64, 512 and 1400-byte packets.
//!
//! Run: `cargo bench --bench xform` (optionally `-- FILTER`, e.g. `-- gcm`). Knobs:
//! `RSWAN_BENCH_REPS` (default 9), `RSWAN_BENCH_MS` (default 40 ms per repetition).
//!
//! In-run baseline: a plain `copy_from_slice` of the same size ("memcpy"); the ratio columns are
//! the transform's throughput as a fraction of memcpy's, measured in the same process minutes
//! apart, so they survive a noisy machine better than the absolute figures.
//!
//! What one iteration is:
//! * ESP encrypt: `EspCrypto::encapsulate` of an N-byte inner packet into a reused `Vec`
//!   (header, IV, padding, cipher, ICV). IVs: the sequence number for GCM (as the datapath
//!   does); a fixed IV for CBC (the datapath draws 8/16 random bytes per packet on top).
//! * ESP decrypt: copy the pristine N+overhead-byte ESP packet into a work buffer (the datapath
//!   also copies each packet once), `verify_icv`, then `decrypt` in place.
//! * AH: `ah_output` of an N-byte IPv4 packet / `ah_input` of the result.
//! * IPComp: `ipcomp::compress` of N bytes of text-like data / `ipcomp::decompress` of the
//!   result. Payloads under 90 bytes are never compressed (RFC 2394), so the 64-byte row only
//!   measures that check. A second IPComp row uses random (incompressible) data with a fresh
//!   adaptive state each time: the cost of a failed attempt before KLIPS' adaptive skip kicks in.
//!
//! Mbit/s counts the N-byte inner packet (what the user sees), not the ESP overhead.

mod timing;

use rswan::crypto::{
    default_provider, AuthAlg, CryptoProvider, EncAlg, OpenSslAeadProvider, RingProvider,
    RustCryptoProvider,
};
use rswan::xform::ipcomp::{self, CompressOutcome, IpcompState};
use rswan::xform::{ah_input, ah_output, EspCrypto};
use timing::{keep, measure, selected, Sample};

const SIZES: [usize; 4] = [64, 512, 1400, 8900];

fn key(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Pseudo-random bytes (xorshift), deterministic.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Text-like, moderately compressible payload (HTTP-ish headers and prose).
fn text_bytes(len: usize) -> Vec<u8> {
    let corpus =
        b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: rswan-bench/1.0\r\n\
Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n\r\n\
The quick brown fox jumps over the lazy dog while the gateway encrypts every packet. ";
    corpus.iter().copied().cycle().take(len).collect()
}

/// An IPv4 packet of `len` bytes (20-byte header, protocol TCP) with a random payload.
fn ipv4_packet(len: usize) -> Vec<u8> {
    let mut p = random_bytes(len, 77);
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40;
    p[7] = 0;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 0, 1, 10]);
    p[16..20].copy_from_slice(&[10, 0, 2, 10]);
    p
}

struct Row {
    name: String,
    size: usize,
    enc: Option<Sample>,
    dec: Option<Sample>,
}

fn mbps(size: usize, s: &Sample) -> f64 {
    size as f64 * 8.0 * 1e3 / s.median_ns
}

fn kpps(s: &Sample) -> f64 {
    1e6 / s.median_ns
}

/// One ESP case with the default provider, and again with the pure-Rust one for comparison.
fn esp_case(name: &str, enc: EncAlg, auth: Option<AuthAlg>, rows: &mut Vec<Row>) {
    esp_case_with(default_provider(), name, enc, auth, rows);
    if default_provider().name() != RustCryptoProvider.name() {
        esp_case_with(&RustCryptoProvider, name, enc, auth, rows);
    }
}

fn esp_case_with(
    p: &dyn CryptoProvider,
    name: &str,
    enc: EncAlg,
    auth: Option<AuthAlg>,
    rows: &mut Vec<Row>,
) {
    let name = &format!("{name} [{}]", p.name());
    if !selected(name) {
        return;
    }
    let ek = key(enc.key_len(), 0x11);
    let ak = auth.map_or(Vec::new(), |a| key(a.key_len(), 0x22));
    let c = EspCrypto::new(p, enc, &ek, auth, &ak).expect("keying");
    for &size in &SIZES {
        let payload = random_bytes(size, size as u64);
        let mut out = Vec::with_capacity(size + c.max_overhead());
        let mut seq: u32 = 0;
        let fixed_iv = [0x5au8; 16];
        let e = measure(|| {
            seq = seq.wrapping_add(1);
            out.clear();
            let ivb = u64::from(seq).to_be_bytes();
            let iv: &[u8] = if c.is_aead() {
                &ivb[8 - c.iv_len()..]
            } else {
                &fixed_iv[..c.iv_len()]
            };
            c.encapsulate(0x1000, seq, 4, keep(&payload), iv, &mut out);
            keep(&out);
        });
        // A pristine packet to decrypt over and over.
        let mut pristine = Vec::new();
        let ivb = 7u64.to_be_bytes();
        let iv: &[u8] = if c.is_aead() {
            &ivb[8 - c.iv_len()..]
        } else {
            &fixed_iv[..c.iv_len()]
        };
        c.encapsulate(0x1000, 7, 4, &payload, iv, &mut pristine);
        let mut work = pristine.clone();
        {
            let (nh, r) = c.open(&mut work).expect("round trip");
            assert_eq!((nh, &work[r]), (4, &payload[..]));
        }
        let d = measure(|| {
            work.copy_from_slice(keep(&pristine));
            c.verify_icv(&work).expect("icv");
            let r = c.decrypt(&mut work).expect("decrypt");
            keep(r);
        });
        rows.push(Row {
            name: name.into(),
            size,
            enc: Some(e),
            dec: Some(d),
        });
    }
}

fn ah_case(name: &str, rows: &mut Vec<Row>) {
    if !selected(name) {
        return;
    }
    let integ = default_provider()
        .integrity(AuthAlg::HmacSha1_96, &key(20, 0x33))
        .unwrap();
    for &size in &SIZES {
        let ip = ipv4_packet(size);
        let mut out = Vec::with_capacity(size + 64);
        let mut seq = 0u32;
        let e = measure(|| {
            seq = seq.wrapping_add(1);
            out.clear();
            ah_output(integ.as_ref(), 0x1000, seq, keep(&ip), &mut out).expect("ah_output");
            keep(&out);
        });
        let mut pkt = Vec::new();
        ah_output(integ.as_ref(), 0x1000, 7, &ip, &mut pkt).unwrap();
        let d = measure(|| {
            let r = ah_input(integ.as_ref(), keep(&pkt)).expect("ah_input");
            keep(r);
        });
        rows.push(Row {
            name: name.into(),
            size,
            enc: Some(e),
            dec: Some(d),
        });
    }
}

fn ipcomp_case(name: &str, compressible: bool, rows: &mut Vec<Row>) {
    if !selected(name) {
        return;
    }
    for &size in &SIZES {
        let payload = if compressible {
            text_bytes(size)
        } else {
            random_bytes(size, 99)
        };
        let mut out = Vec::with_capacity(size + 64);
        let mut state = IpcompState::new();
        let e = measure(|| {
            out.clear();
            if !compressible {
                // Always really try: no adaptive skip.
                state = IpcompState::new();
            }
            let o = ipcomp::compress(&mut state, 0x1000, 4, keep(&payload), &mut out);
            keep(o);
        });
        let mut comp = Vec::new();
        let outcome = ipcomp::compress(&mut IpcompState::new(), 0x1000, 4, &payload, &mut comp);
        let d = if outcome == CompressOutcome::Compressed {
            let mut back = Vec::with_capacity(size);
            ipcomp::decompress(&comp, 65535, &mut back).unwrap();
            assert_eq!(back, payload);
            Some(measure(|| {
                back.clear();
                let r = ipcomp::decompress(keep(&comp), 65535, &mut back);
                keep(r.is_ok());
            }))
        } else {
            None
        };
        let label = match outcome {
            CompressOutcome::Compressed => format!("{name} [{}→{} B]", size, comp.len()),
            CompressOutcome::NotWorthIt => format!("{name} [not worth it]"),
            CompressOutcome::Skipped => format!("{name} [skipped <90 B]"),
        };
        rows.push(Row {
            name: label,
            size,
            enc: Some(e),
            dec: d,
        });
    }
}

fn main() {
    timing::preamble("rswan transform throughput (bench/xform.rs)");
    println!(
        "# provider: {}; Mbit/s and kpps count the inner packet of SIZE bytes; x/memcpy = throughput as a fraction of a plain memcpy of the same size measured in this run",
        default_provider().name()
    );

    // Baseline first (and again at the end, to show drift).
    let baseline = |rows: &mut Vec<Row>, tag: &str| {
        for &size in &SIZES {
            let src = random_bytes(size, 1);
            let mut dst = vec![0u8; size];
            let s = measure(|| {
                dst.copy_from_slice(keep(&src));
                keep(&dst);
            });
            rows.push(Row {
                name: format!("memcpy (baseline{tag})"),
                size,
                enc: Some(s),
                dec: Some(s),
            });
        }
    };
    let mut rows = Vec::new();
    baseline(&mut rows, "");
    esp_case(
        "ESP 3DES-SHA1",
        EncAlg::TripleDesCbc,
        Some(AuthAlg::HmacSha1_96),
        &mut rows,
    );
    esp_case(
        "ESP AES128-CBC-SHA1",
        EncAlg::AesCbc128,
        Some(AuthAlg::HmacSha1_96),
        &mut rows,
    );
    esp_case(
        "ESP AES256-CBC-SHA2_256",
        EncAlg::AesCbc256,
        Some(AuthAlg::HmacSha2_256_128),
        &mut rows,
    );
    // The AEADs through every provider, per-call set-up included: what the default provider
    // routes (docs/performance.md section 2).
    let providers: [&dyn CryptoProvider; 3] =
        [&RustCryptoProvider, &OpenSslAeadProvider, &RingProvider];
    for (name, alg) in [
        ("ESP AES128-GCM16", EncAlg::AesGcm16_128),
        ("ESP AES256-GCM16", EncAlg::AesGcm16_256),
        ("ESP CHACHA20-POLY1305", EncAlg::ChaCha20Poly1305),
    ] {
        for p in providers {
            esp_case_with(p, name, alg, None, &mut rows);
        }
        esp_case_with(default_provider(), name, alg, None, &mut rows);
    }
    ah_case("AH HMAC-SHA1-96", &mut rows);
    ipcomp_case("IPComp deflate (text)", true, &mut rows);
    ipcomp_case("IPComp deflate (random)", false, &mut rows);
    baseline(&mut rows, ", again");

    let memcpy: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.name == "memcpy (baseline)")
        .map(|r| (r.size, r.enc.unwrap().median_ns))
        .collect();
    let base = |size: usize| memcpy.iter().find(|(s, _)| *s == size).map(|x| x.1);

    println!();
    println!(
        "| {:<38} | {:>5} | {:>10} | {:>9} | {:>9} | {:>10} | {:>9} | {:>9} | {:>7} |",
        "transform",
        "size",
        "enc Mbit/s",
        "enc kpps",
        "enc/memcpy",
        "dec Mbit/s",
        "dec kpps",
        "dec/memcpy",
        "spread"
    );
    println!(
        "|{:-<40}|{:->7}|{:->12}|{:->11}|{:->11}|{:->12}|{:->11}|{:->11}|{:->9}|",
        "", ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for r in &rows {
        let cell = |s: &Option<Sample>| match s {
            Some(s) => (
                format!("{:.0}", mbps(r.size, s)),
                format!("{:.0}", kpps(s)),
                base(r.size).map_or("-".into(), |b| format!("{:.4}", b / s.median_ns)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (em, ek, er) = cell(&r.enc);
        let (dm, dk, dr) = cell(&r.dec);
        let spread = [r.enc, r.dec]
            .iter()
            .flatten()
            .map(Sample::spread_pct)
            .fold(0.0, f64::max);
        println!(
            "| {:<38} | {:>5} | {:>10} | {:>9} | {:>10} | {:>10} | {:>9} | {:>10} | {:>6.1}% |",
            r.name, r.size, em, ek, er, dm, dk, dr, spread
        );
    }
}
