//! RFC 7427 AlgorithmIdentifiers, Digital Signature AUTH data, SIGNATURE_HASH_ALGORITHMS.

use super::*;

/// RFC 7427 A.4.2: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
const RFC7427_PSS_SHA256: &str = "
    30 41 06 09 2a 86 48 86 f7 0d 01 01 0a 30 34 a0 0f 30 0d 06 09 60 86 48 01 65 03 04 02
    01 05 00 a1 1c 30 1a 06 09 2a 86 48 86 f7 0d 01 01 08 30 0d 06 09 60 86 48 01 65 03 04
    02 01 05 00 a2 03 02 01 20";
/// RFC 7427 A.1.2: sha256WithRSAEncryption.
const RFC7427_SHA256_RSA: &str = "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00";

#[test]
fn identifiers_match_rfc_7427() {
    assert_eq!(
        SignatureScheme::RsaPssSha256.algorithm_identifier(),
        &h(RFC7427_PSS_SHA256)[..]
    );
    assert_eq!(
        SignatureScheme::RsaPkcs1Sha256.algorithm_identifier(),
        &h(RFC7427_SHA256_RSA)[..]
    );
    // The SHA-384 / SHA-512 siblings differ in the OIDs' last octet and the salt.
    let pss384 = SignatureScheme::RsaPssSha384.algorithm_identifier();
    let mut want = h(RFC7427_PSS_SHA256);
    want[29] = 2;
    want[59] = 2;
    want[66] = 48;
    assert_eq!(pss384, &want[..]);
    let pss512 = SignatureScheme::RsaPssSha512.algorithm_identifier();
    want[29] = 3;
    want[59] = 3;
    want[66] = 64;
    assert_eq!(pss512, &want[..]);
    let mut want = h(RFC7427_SHA256_RSA);
    want[12] = 0x0d;
    assert_eq!(
        SignatureScheme::RsaPkcs1Sha512.algorithm_identifier(),
        &want[..]
    );
    // Each one is recognised as itself; properties.
    for s in SIGNATURE_SCHEMES {
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(s.algorithm_identifier()),
            Some(s),
            "{s}"
        );
        assert_eq!(s.salt_len().is_some(), s.is_pss());
    }
    assert_eq!(SignatureScheme::RsaPssSha384.salt_len(), Some(48));
    assert_eq!(
        SignatureScheme::RsaPkcs1Sha384.hash(),
        HashAlgorithm::Sha2_384
    );
    assert_eq!(
        SignatureScheme::RsaPssSha512.to_string(),
        "RSA_EMSA_PSS_SHA2_512"
    );
}

#[test]
fn equivalent_and_foreign_identifiers() {
    let pss = h(RFC7427_PSS_SHA256);
    // Hash parameters absent instead of NULL (RFC 4055 allows both).
    let absent = h("30 3d 06 09 2a 86 48 86 f7 0d 01 01 0a 30 30
         a0 0d 30 0b 06 09 60 86 48 01 65 03 04 02 01
         a1 1a 30 18 06 09 2a 86 48 86 f7 0d 01 01 08 30 0b 06 09 60 86 48 01 65 03 04 02 01
         a2 03 02 01 20");
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&absent),
        Some(SignatureScheme::RsaPssSha256)
    );
    // The default trailer field spelt out.
    let mut trailer = pss.clone();
    trailer.extend_from_slice(&[0xa3, 0x03, 0x02, 0x01, 0x01]);
    trailer[1] += 5;
    trailer[14] += 5;
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&trailer),
        Some(SignatureScheme::RsaPssSha256)
    );
    // PKCS#1 without the NULL.
    let no_null = h("30 0b 06 09 2a 86 48 86 f7 0d 01 01 0c");
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&no_null),
        Some(SignatureScheme::RsaPkcs1Sha384)
    );
    let not_ours = |der: &[u8]| SignatureScheme::from_algorithm_identifier(der).is_none();
    // Salt other than the hash length; trailer other than 1; MGF1 over another hash.
    let mut salt20 = pss.clone();
    salt20[66] = 20;
    assert!(not_ours(&salt20));
    let mut t2 = trailer.clone();
    t2[71] = 2;
    assert!(not_ours(&t2));
    let mut mgf384 = pss.clone();
    mgf384[59] = 2;
    assert!(not_ours(&mgf384));
    // RSASSA-PSS with default (SHA-1) parameters; sha1WithRSAEncryption; ECDSA; garbage.
    assert!(not_ours(&h("30 0d 06 09 2a 86 48 86 f7 0d 01 01 0a 30 00")));
    assert!(not_ours(&h("30 0b 06 09 2a 86 48 86 f7 0d 01 01 0a")));
    assert!(not_ours(&h("30 0d 06 09 2a 86 48 86 f7 0d 01 01 05 05 00")));
    assert!(not_ours(&h("30 0a 06 08 2a 86 48 ce 3d 04 03 02")));
    assert!(not_ours(&[]));
    assert!(not_ours(&[0x30, 0x81]));
    assert!(not_ours(&[0x30, 0x84, 0, 0, 0, 1]));
    // Trailing bytes at any level.
    let mut trailing = pss.clone();
    trailing.push(0);
    assert!(not_ours(&trailing));
    let mut pk = h(RFC7427_SHA256_RSA);
    pk.push(0);
    pk[1] += 1;
    assert!(not_ours(&pk));
    // Every truncation and every single-octet change: no panic, and truncations fail.
    for s in SIGNATURE_SCHEMES {
        let der = s.algorithm_identifier();
        for len in 0..der.len() {
            assert!(not_ours(&der[..len]));
        }
        for i in 0..der.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0xff] {
                let mut m = der.to_vec();
                m[i] = v;
                let _ = SignatureScheme::from_algorithm_identifier(&m);
            }
        }
    }
    // Long-form lengths are read.
    let mut long = vec![0x30, 0x81, 0x0d];
    long.extend_from_slice(&h(RFC7427_SHA256_RSA)[2..]);
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&long),
        Some(SignatureScheme::RsaPkcs1Sha256)
    );
}

#[test]
fn digital_signature_auth_data() {
    let sig = vec![0xab; 256];
    let auth = AuthPayload::digital_signature(SignatureScheme::RsaPssSha256, sig.clone()).unwrap();
    assert_eq!(auth.method, AuthMethod::DigitalSignature);
    assert_eq!(auth.data[0], 67);
    assert_eq!(&auth.data[1..68], &h(RFC7427_PSS_SHA256)[..]);
    assert_eq!(&auth.data[68..], &sig[..]);
    let parsed = auth.signature_auth().unwrap();
    assert_eq!(parsed.scheme(), Some(SignatureScheme::RsaPssSha256));
    assert_eq!(parsed.signature, sig);
    assert_eq!(parsed.to_bytes().unwrap(), auth.data);
    // Not method 14; length 0; identifier without signature; empty.
    let psk = AuthPayload {
        method: AuthMethod::SharedKeyMic,
        data: vec![1; 32],
    };
    assert!(psk.signature_auth().is_err());
    for bad in [&[0u8, 1, 2][..], &[3, 1, 2, 3], &[5, 1, 2], &[]] {
        assert!(SignatureAuth::parse(bad).is_err(), "{bad:?}");
    }
    // An unknown identifier parses; it just has no scheme.
    let other = SignatureAuth::parse(&[2, 0x30, 0x00, 9, 9]).unwrap();
    assert_eq!(other.scheme(), None);
    assert_eq!(other.signature, vec![9, 9]);
    let too_long = SignatureAuth {
        algorithm_identifier: vec![0; 256],
        signature: vec![],
    };
    assert!(too_long.to_bytes().is_err());
}

#[test]
fn signature_hash_algorithms_notify() {
    let n = NotifyPayload::signature_hash_algorithms(&[
        HashAlgorithm::Sha2_256,
        HashAlgorithm::Sha2_384,
        HashAlgorithm::Sha2_512,
    ]);
    assert_eq!(n.notify_type.value(), 16431);
    assert_eq!(n.data, vec![0, 2, 0, 3, 0, 4]);
    assert_eq!(
        n.hash_algorithms().unwrap(),
        SIGNATURE_SCHEMES[..3]
            .iter()
            .map(|s| s.hash())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        decode_hash_algorithms(&[0, 1, 0, 5, 0x12, 0x34]).unwrap(),
        vec![
            HashAlgorithm::Sha1,
            HashAlgorithm::Identity,
            HashAlgorithm::Unknown(0x1234)
        ]
    );
    assert!(decode_hash_algorithms(&[0, 2, 0]).is_err());
    assert!(decode_hash_algorithms(&[0; 2 * (notify::MAX_HASH_ALGORITHMS + 1)]).is_err());
    assert_eq!(decode_hash_algorithms(&[]).unwrap(), vec![]);
    // Other notification data helpers.
    let ke = NotifyPayload::invalid_ke_payload(DhGroup::Curve25519);
    assert_eq!(ke.data, vec![0, 31]);
    assert_eq!(ke.dh_group().unwrap(), DhGroup::Curve25519);
    assert!(NotifyPayload::new(NotifyType::InvalidKePayload, vec![1])
        .dh_group()
        .is_err());
    let c = NotifyPayload::cookie(vec![5; 8]).unwrap();
    assert_eq!(c.cookie_data().unwrap(), &[5; 8]);
    assert!(NotifyPayload::new(NotifyType::Cookie, vec![0; 65])
        .cookie_data()
        .is_err());
    let u = NotifyPayload::unsupported_critical_payload(99);
    assert_eq!(
        u,
        NotifyPayload::new(
            ParseError::UnsupportedCriticalPayload { payload_type: 99 }.notify_type(),
            ParseError::UnsupportedCriticalPayload { payload_type: 99 }.notify_data()
        )
    );
}
