//! Known-answer and round-trip tests of the IKEv1 computations.
//!
//! The expected values were computed independently (Python's `hmac`/`hashlib`, straight from
//! the RFC 2409 formulas) for the fixed inputs below; `step_by_step_with_hmac_crate`
//! additionally recomputes the chain with the `hmac` crate directly.

use super::*;
use crate::crypto::{default_provider, EncAlg};
use crate::pluto::isakmp::{
    emit_payloads, ExchangeType, Flags, IdPayload, Identification, PayloadIter, Proposal,
    SaPayload, Transform,
};
use hmac::{Hmac, Mac};
use std::net::Ipv4Addr;

struct Inputs {
    psk: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    gxy: Vec<u8>,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    sai_b: Vec<u8>,
    idii_b: Vec<u8>,
    idir_b: Vec<u8>,
    mid: u32,
}

fn inputs() -> Inputs {
    Inputs {
        psk: b"secret shared by two hosts".to_vec(),
        ni: (0u8..16).collect(),
        nr: (100u8..116).collect(),
        gxy: (0..128).map(|i| (i * 7 % 256) as u8).collect(),
        gxi: (0..128).map(|i| ((i * 3 + 1) % 256) as u8).collect(),
        gxr: (0..128).map(|i| ((i * 5 + 2) % 256) as u8).collect(),
        cky_i: [1, 2, 3, 4, 5, 6, 7, 8],
        cky_r: [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18],
        sai_b: (0u8..52).collect(),
        idii_b: vec![1, 17, 1, 244, 192, 0, 2, 1],
        idir_b: vec![1, 17, 1, 244, 198, 51, 100, 7],
        mid: 0x1234_5678,
    }
}

struct Expected {
    skeyid: &'static str,
    skeyid_d: &'static str,
    skeyid_a: &'static str,
    skeyid_e: &'static str,
    enc_key: &'static str,
    iv1: &'static str,
    iv2: &'static str,
    hash_i: &'static str,
    hash_r: &'static str,
    qm1: &'static str,
    qm2: &'static str,
    qm3: &'static str,
    keymat_pfs: &'static str,
    keymat: &'static str,
    natd: &'static str,
}

const MD5_3DES_PSK: Expected = Expected {
    skeyid: "20f68dd2c949e4f352fdfc17ee743995",
    skeyid_d: "e99b2c25c190f359cccd38a11c0247c7",
    skeyid_a: "9f681e9c9a2a9cc6e003e709135973fc",
    skeyid_e: "7a079dc4c2e41dde3f99156ba445fa0c",
    enc_key: "0934cdd2da52071c286a4666031080a126dd70f3b29c476e",
    iv1: "f982376002b17ee7",
    iv2: "12c49924325b14de",
    hash_i: "e2de2f69c1d32409614b6b2997dbbeb3",
    hash_r: "a4d9e8a86dce38fd9450a565924e5496",
    qm1: "417f04caec8d1a82de73a6b1d1f60c49",
    qm2: "0b4d1678a8537bc907ff97ccd637fc64",
    qm3: "e0f016afd830c3e5a866189c8c6cd393",
    keymat_pfs:
        "824c5e43efda69aa648d395affdd2f207c8b952a33fd34966738f4b2cccb9ebb38ffe2061dec2780e1f17230",
    keymat: "e1758e68e271f558a16a996e41d3ba16f915bea7eecc6ce75f7ba8c88a2162bc5b58f19b",
    natd: "cf5faa9384eb43f6272e122d4934e27f",
};

const SHA1_AES256_SIG: Expected = Expected {
    skeyid: "19ced98d3c4769a79108c16efbe7617a2f5dd783",
    skeyid_d: "88f4ac845b937d79ca905ed6344963b83c33d85f",
    skeyid_a: "27ef1cadb451f90d1d42af594fe96dbec7083d22",
    skeyid_e: "4b9f884fcfbd0467816959f808eca7098931b8a0",
    enc_key: "f6ada3eef200f526e11a8515c13c7e5dcee7c49db98ef3b0f4d02d6b699582ab",
    iv1: "0f0cdc095a9825715c2ad8ed5decece8",
    iv2: "7cbb1538d84f1477da8e03bf41978305",
    hash_i: "49ea65abdcf91f23af24fc23a4a35594e68aec22",
    hash_r: "4a5cebe853c657b49962a9cc1ca39e553c8759a9",
    qm1: "abca70aecf98474d4cce2ab5e2ef2f7bb016100d",
    qm2: "5bde4065cc26723cab766b080de2355a16b9f9b0",
    qm3: "733ad389cab45cc2f9650ae5e11b9a42eac5c1d6",
    keymat_pfs:
        "79ffa6a15d2bb793e87653299d268cf4fd26bde846c25a04b56df4a7be691cd339a893015749a9f26049b310",
    keymat: "dd4fac51e308de22b95e5c5f436815c8429ce77347bf4f3a6fcefb4ce3231d3ef5d887d4",
    natd: "d798d986143f878f70765e0e869c80bbc375f701",
};

fn check(prf: Prf, cipher: EncAlg, psk_auth: bool, e: &Expected) {
    let i = inputs();
    let skeyid = if psk_auth {
        skeyid_psk(prf, &i.psk, &i.ni, &i.nr)
    } else {
        skeyid_sig(prf, &i.ni, &i.nr, &i.gxy)
    };
    assert_eq!(hex::encode(&*skeyid), e.skeyid);
    let keys = derive_phase1_keys(prf, &skeyid, &i.gxy, &i.cky_i, &i.cky_r, cipher.key_len());
    assert_eq!(hex::encode(&*keys.skeyid_d), e.skeyid_d);
    assert_eq!(hex::encode(&*keys.skeyid_a), e.skeyid_a);
    assert_eq!(hex::encode(&*keys.skeyid_e), e.skeyid_e);
    assert_eq!(hex::encode(&*keys.enc_key), e.enc_key);
    let bs = cipher.block_size();
    assert_eq!(hex::encode(phase1_iv(prf, &i.gxi, &i.gxr, bs)), e.iv1);
    let last: Vec<u8> = (200..200 + bs as u8).collect();
    assert_eq!(hex::encode(phase2_iv(prf, &last, i.mid, bs)), e.iv2);
    let hi = hash_i(
        prf, &skeyid, &i.gxi, &i.gxr, &i.cky_i, &i.cky_r, &i.sai_b, &i.idii_b,
    );
    assert_eq!(hex::encode(hi), e.hash_i);
    let hr = hash_r(
        prf, &skeyid, &i.gxi, &i.gxr, &i.cky_i, &i.cky_r, &i.sai_b, &i.idir_b,
    );
    assert_eq!(hex::encode(hr), e.hash_r);
    let a = &keys.skeyid_a;
    assert_eq!(hex::encode(quick_hash1(prf, a, i.mid, b"REST")), e.qm1);
    assert_eq!(
        informational_hash(prf, a, i.mid, b"REST"),
        quick_hash1(prf, a, i.mid, b"REST")
    );
    assert_eq!(
        hex::encode(quick_hash2(prf, a, i.mid, &i.ni, b"REST")),
        e.qm2
    );
    assert_eq!(hex::encode(quick_hash3(prf, a, i.mid, &i.ni, &i.nr)), e.qm3);
    let gqm: Vec<u8> = (1..=128).collect();
    let km = keymat(
        prf,
        &keys.skeyid_d,
        Some(&gqm),
        3,
        &[0xde, 0xad, 0xbe, 0xef],
        &i.ni,
        &i.nr,
        44,
    );
    assert_eq!(hex::encode(&*km), e.keymat_pfs);
    let km = keymat(
        prf,
        &keys.skeyid_d,
        None,
        2,
        &[0, 0, 0x12, 0x34],
        &i.ni,
        &i.nr,
        36,
    );
    assert_eq!(hex::encode(&*km), e.keymat);
    let natd = nat_d_hash(
        prf,
        &i.cky_i,
        &i.cky_r,
        Ipv4Addr::new(192, 0, 2, 1).into(),
        500,
    );
    assert_eq!(hex::encode(natd), e.natd);
}

#[test]
fn known_answers_md5_3des_psk() {
    check(Prf::HmacMd5, EncAlg::TripleDesCbc, true, &MD5_3DES_PSK);
}

#[test]
fn known_answers_sha1_aes256_sig() {
    check(Prf::HmacSha1, EncAlg::AesCbc256, false, &SHA1_AES256_SIG);
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

#[test]
fn step_by_step_with_hmac_crate() {
    let i = inputs();
    let skeyid = hmac_sha1(&i.psk, &[&i.ni, &i.nr]);
    let d = hmac_sha1(&skeyid, &[&i.gxy, &i.cky_i, &i.cky_r, &[0]]);
    let a = hmac_sha1(&skeyid, &[&d, &i.gxy, &i.cky_i, &i.cky_r, &[1]]);
    let e = hmac_sha1(&skeyid, &[&a, &i.gxy, &i.cky_i, &i.cky_r, &[2]]);
    // 3DES needs 24 bytes, SHA1 gives 20: K1 = prf(e, 0), K2 = prf(e, K1).
    let k1 = hmac_sha1(&e, &[&[0]]);
    let k2 = hmac_sha1(&e, &[&k1]);
    let enc = [k1, k2].concat()[..24].to_vec();

    let ours = skeyid_psk(Prf::HmacSha1, &i.psk, &i.ni, &i.nr);
    assert_eq!(*ours, skeyid);
    let keys = derive_phase1_keys(Prf::HmacSha1, &ours, &i.gxy, &i.cky_i, &i.cky_r, 24);
    assert_eq!(*keys.skeyid, skeyid);
    assert_eq!(*keys.skeyid_d, d);
    assert_eq!(*keys.skeyid_a, a);
    assert_eq!(*keys.skeyid_e, e);
    assert_eq!(*keys.enc_key, enc);
    // AES-128 with SHA1: no expansion, first 16 bytes of SKEYID_e.
    let keys16 = derive_phase1_keys(Prf::HmacSha1, &ours, &i.gxy, &i.cky_i, &i.cky_r, 16);
    assert_eq!(*keys16.enc_key, e[..16].to_vec());

    // KEYMAT for ESP 3DES + HMAC-SHA1 (24 + 20 bytes), no PFS.
    let spi = [0xca, 0xfe, 0xba, 0xbe];
    let tail: Vec<u8> = [&[3u8][..], &spi, &i.ni, &i.nr].concat();
    let k1 = hmac_sha1(&d, &[&tail]);
    let k2 = hmac_sha1(&d, &[&k1, &tail]);
    let k3 = hmac_sha1(&d, &[&k2, &tail]);
    let expected = [k1, k2, k3].concat()[..44].to_vec();
    let km = keymat(Prf::HmacSha1, &d, None, 3, &spi, &i.ni, &i.nr, 44);
    assert_eq!(*km, expected);
    // Exactly one block needs no expansion.
    assert_eq!(
        *keymat(Prf::HmacSha1, &d, None, 3, &spi, &i.ni, &i.nr, 20),
        expected[..20].to_vec()
    );
}

fn header(message_id: u32, exchange_type: ExchangeType) -> Header {
    Header {
        initiator_cookie: [1, 2, 3, 4, 5, 6, 7, 8],
        responder_cookie: [9, 10, 11, 12, 13, 14, 15, 16],
        next_payload: PayloadType::None,
        exchange_type,
        flags: Flags::NONE,
        message_id,
    }
}

#[test]
fn encryption_with_iv_chaining() {
    let prf = Prf::HmacSha1;
    for alg in [EncAlg::TripleDesCbc, EncAlg::AesCbc128, EncAlg::AesCbc256] {
        let i = inputs();
        let skeyid = skeyid_psk(prf, &i.psk, &i.ni, &i.nr);
        let keys = derive_phase1_keys(prf, &skeyid, &i.gxy, &i.cky_i, &i.cky_r, alg.key_len());
        let cipher = &CbcCipher::new(default_provider(), alg, &keys.enc_key).unwrap();
        let iv0 = phase1_iv(prf, &i.gxi, &i.gxr, cipher.block_size());

        // MI3: ID + HASH_I, encrypted with the phase-1 IV.
        let id = IdPayload::new(
            &Identification::Ipv4Addr(Ipv4Addr::new(192, 0, 2, 1)),
            17,
            500,
        );
        let mi3 = vec![Payload::Id(id), Payload::Hash(vec![0xaa; 20])];
        let (dg1, iv1) =
            encrypt_message(&header(0, ExchangeType::MainMode), &mi3, cipher, &iv0).unwrap();
        assert_eq!(iv1, dg1[dg1.len() - cipher.block_size()..].to_vec());
        assert_eq!((dg1.len() - HEADER_LEN) % cipher.block_size(), 0);
        let got = decrypt_message(&dg1, cipher, &iv0).unwrap();
        assert_eq!(got.payloads, mi3);
        assert_eq!(got.next_iv, iv1);
        assert!(got.header.flags.encrypted());
        assert_eq!(got.header.next_payload, PayloadType::Id);
        assert!(got.plaintext[got.payload_end..].iter().all(|&b| b == 0));
        assert_eq!(got.payload_end, emit_payloads(&mi3).unwrap().len());

        // MR3 chains on MI3's last block.
        let mr3 = vec![
            Payload::Id(IdPayload::new(
                &Identification::Fqdn(b"east.example.com".to_vec()),
                0,
                0,
            )),
            Payload::Hash(vec![0xbb; 20]),
        ];
        let (dg2, iv2) =
            encrypt_message(&header(0, ExchangeType::MainMode), &mr3, cipher, &iv1).unwrap();
        let got = decrypt_message(&dg2, cipher, &iv1).unwrap();
        assert_eq!(got.payloads, mr3);
        assert_eq!(got.next_iv, iv2);
        // The wrong IV garbles the first block.
        match decrypt_message(&dg2, cipher, &iv0) {
            Ok(m) => assert_ne!(m.payloads, mr3),
            Err(e) => assert!(matches!(e, MessageCryptoError::Parse(_))),
        }

        // Quick Mode: IV from the last phase-1 block and the message ID; HASH(1) over the
        // payloads after the HASH payload, recomputed by the receiver from raw bytes.
        let mid = 0xdead_beef;
        let qm_iv = phase2_iv(prf, &iv2, mid, cipher.block_size());
        let sa = SaPayload::ipsec(vec![Proposal {
            number: 0,
            protocol: crate::pluto::isakmp::ProtocolId::Esp,
            spi: vec![0x12, 0x34, 0x56, 0x78],
            transforms: vec![Transform {
                number: 0,
                transform_id: 3,
                attributes: vec![],
            }],
        }]);
        let rest = vec![Payload::Sa(sa), Payload::Nonce(i.ni.clone())];
        let hash1 = quick_hash1(prf, &keys.skeyid_a, mid, &emit_payloads(&rest).unwrap());
        let qi1 = [vec![Payload::Hash(hash1.clone())], rest].concat();
        let (dg3, _iv3) =
            encrypt_message(&header(mid, ExchangeType::QuickMode), &qi1, cipher, &qm_iv).unwrap();
        let got = decrypt_message(&dg3, cipher, &qm_iv).unwrap();
        assert_eq!(got.payloads, qi1);
        let first = PayloadIter::new(got.header.next_payload, &got.plaintext)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(first.payload_type, PayloadType::Hash);
        let after = &got.plaintext[first.bytes.len()..got.payload_end];
        assert_eq!(
            quick_hash1(prf, &keys.skeyid_a, got.header.message_id, after),
            hash1
        );
        assert_eq!(first.body(), &hash1[..]);
    }
}

#[test]
fn body_padding_and_errors() {
    let key: Vec<u8> = (1..=24).collect();
    let c = &CbcCipher::new(default_provider(), EncAlg::TripleDesCbc, &key).unwrap();
    let iv = [1u8; 8];
    // Aligned plaintext gets no padding; unaligned is zero-padded.
    let (ct, next) = encrypt_body(c, &iv, &[5u8; 16]).unwrap();
    assert_eq!(ct.len(), 16);
    assert_eq!(next, ct[8..].to_vec());
    let (ct, _) = encrypt_body(c, &iv, &[5u8; 17]).unwrap();
    assert_eq!(ct.len(), 24);
    let (pt, next2) = decrypt_body(c, &iv, &ct).unwrap();
    assert_eq!(&pt[..17], &[5u8; 17]);
    assert_eq!(&pt[17..], &[0u8; 7]);
    assert_eq!(next2, ct[16..].to_vec());
    assert_eq!(
        decrypt_body(c, &iv, &ct[1..]),
        Err(CipherError::NotBlockAligned)
    );
    assert_eq!(decrypt_body(c, &iv, &[]), Err(CipherError::NotBlockAligned));
    assert_eq!(
        CbcCipher::new(default_provider(), EncAlg::TripleDesCbc, &key[1..]).unwrap_err(),
        CipherError::BadKeyLength
    );
    // An unencrypted datagram is refused by decrypt_message.
    let plain = crate::pluto::isakmp::Message {
        header: header(0, ExchangeType::Informational),
        body: crate::pluto::isakmp::MessageBody::Payloads(vec![Payload::VendorId(vec![1])]),
    }
    .to_bytes()
    .unwrap();
    assert_eq!(
        decrypt_message(&plain, c, &iv),
        Err(MessageCryptoError::NotEncrypted)
    );
}
