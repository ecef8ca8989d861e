//! Messages captured from strongSwan 5.9.8 (two charons in namespaces, see the testdata
//! headers): parsed, re-emitted byte for byte, and the IKE_AUTH messages located, checked and
//! decrypted with the keys charon logged, then their AUTH payloads verified — which shows the
//! codec hands the crypto exactly the bytes RFC 7296 2.15 and RFC 5282 cover.

use super::*;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn psk_cbc() -> HashMap<String, Vec<u8>> {
    testdata(include_str!("../testdata/strongswan_psk_cbc.txt"))
}

fn rsapss_gcm() -> HashMap<String, Vec<u8>> {
    testdata(include_str!("../testdata/strongswan_rsapss_gcm.txt"))
}

fn default_proposals() -> HashMap<String, Vec<u8>> {
    testdata(include_str!("../testdata/strongswan_default.txt"))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn notify_types(msg: &[Payload]) -> Vec<NotifyType> {
    notifies(msg).map(|n| n.notify_type).collect()
}

fn nonce(msg: &Message) -> &[u8] {
    msg.payloads
        .iter()
        .find_map(|p| match p {
            Payload::Nonce(n) => Some(&n[..]),
            _ => None,
        })
        .unwrap()
}

#[test]
fn ike_sa_init_with_default_proposals() {
    let d = default_proposals();
    let req = parse_message(&d["init_req"]).unwrap();
    assert_eq!(
        req.to_bytes().unwrap(),
        d["init_req"],
        "re-emitted identically"
    );
    assert_eq!(req.header.exchange_type, ExchangeType::IkeSaInit);
    assert_eq!(req.header.flags, Flags::INITIATOR);
    assert_eq!(req.header.message_id, 0);
    assert!(req.header.spi_r.is_zero() && !req.header.spi_i.is_zero());
    let Payload::Sa(sa) = &req.payloads[0] else {
        panic!("SA first")
    };
    // strongSwan's default proposal(s): IKE, no SPI, numbered from 1, with AES-CBC-128,
    // HMAC-SHA2-256 and Curve25519 among many transforms.
    for (i, p) in sa.proposals.iter().enumerate() {
        assert_eq!(p.number as usize, i + 1);
        assert_eq!(p.protocol, ProtocolId::Ike);
        assert_eq!(p.spi, Spi::None);
    }
    let all: Vec<&Transform> = sa.proposals.iter().flat_map(|p| &p.transforms).collect();
    assert!(all.len() > 20, "{}", all.len());
    assert!(all.contains(&&Transform::encr(EncrId::AesCbc, Some(128))));
    assert!(all.contains(&&Transform::encr(EncrId::AesGcm16, Some(256))));
    assert!(all.contains(&&Transform::new(TransformId::Prf(PrfId::HmacSha2_256))));
    assert!(all.contains(&&Transform::new(TransformId::Integ(
        IntegId::HmacSha2_256_128
    ))));
    assert!(all.contains(&&Transform::new(TransformId::Dh(DhGroup::Curve25519))));
    assert!(all.contains(&&Transform::new(TransformId::Dh(DhGroup::Modp2048))));
    let Payload::Ke(ke) = &req.payloads[1] else {
        panic!("KE second")
    };
    assert_eq!(ke.group, DhGroup::Curve25519);
    assert_eq!(ke.data.len(), 32);
    assert_eq!(nonce(&req).len(), 32);
    assert_eq!(
        notify_types(&req.payloads),
        [
            NotifyType::NatDetectionSourceIp,
            NotifyType::NatDetectionDestinationIp,
            NotifyType::Ikev2FragmentationSupported,
            NotifyType::SignatureHashAlgorithms,
            NotifyType::RedirectSupported,
        ]
    );
    assert_eq!(
        req.notify(NotifyType::NatDetectionSourceIp)
            .unwrap()
            .data
            .len(),
        20
    );
    let hashes = req
        .notify(NotifyType::SignatureHashAlgorithms)
        .unwrap()
        .hash_algorithms()
        .unwrap();
    for hash in [
        HashAlgorithm::Sha2_256,
        HashAlgorithm::Sha2_384,
        HashAlgorithm::Sha2_512,
    ] {
        assert!(hashes.contains(&hash), "{hashes:?}");
    }
    // The response: the responder's SPI, one proposal (the chosen one), same group.
    let resp = parse_message(&d["init_resp"]).unwrap();
    assert_eq!(resp.to_bytes().unwrap(), d["init_resp"]);
    assert_eq!(resp.header.flags, Flags::RESPONSE);
    assert_eq!(resp.header.spi_i, req.header.spi_i);
    assert!(!resp.header.spi_r.is_zero());
    let Payload::Sa(chosen) = &resp.payloads[0] else {
        panic!("SA first")
    };
    assert_eq!(chosen.proposals.len(), 1);
    let kinds: Vec<TransformId> = chosen.proposals[0]
        .transforms
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        kinds,
        [
            TransformId::Encr(EncrId::AesCbc),
            TransformId::Integ(IntegId::HmacSha2_256_128),
            TransformId::Prf(PrfId::HmacSha2_256),
            TransformId::Dh(DhGroup::Curve25519),
        ]
    );
    assert!(resp.notify(NotifyType::ChildlessIkev2Supported).is_some());
    assert!(resp.notify(NotifyType::MultipleAuthSupported).is_some());
}

#[test]
fn psk_ike_auth_request_and_response_decrypt_and_verify() {
    let d = psk_cbc();
    let init_req = parse_message(&d["init_req"]).unwrap();
    let init_resp = parse_message(&d["init_resp"]).unwrap();
    assert_eq!(init_req.to_bytes().unwrap(), d["init_req"]);
    assert_eq!(init_resp.to_bytes().unwrap(), d["init_resp"]);
    // aes128-sha256-modp2048: AES-CBC-128 (IV 16, block 16), HMAC-SHA2-256-128 (ICV 16).
    let params = SkParams {
        iv_len: 16,
        icv_len: 16,
        block_size: 16,
    };
    for (msg, ke, ka, kp, want_first) in [
        ("auth_req", "sk_ei", "sk_ai", "sk_pi", PayloadType::IdI),
        ("auth_resp", "sk_er", "sk_ar", "sk_pr", PayloadType::IdR),
    ] {
        let bytes = &d[msg];
        // The generic parse sees a message whose only payload is SK.
        let m = parse_message(bytes).unwrap();
        assert_eq!(m.to_bytes().unwrap(), *bytes);
        assert_eq!(m.payloads.len(), 1);
        let p = Protected::locate(bytes, params.iv_len, params.icv_len).unwrap();
        assert_eq!(p.header.exchange_type, ExchangeType::IkeAuth);
        assert_eq!(p.header.message_id, 1);
        assert_eq!(p.first_inner, want_first);
        assert_eq!(p.ciphertext.len() % 16, 0);
        // ICV: HMAC-SHA2-256 over the IKE header to the end of the ciphertext, truncated.
        assert_eq!(
            &hmac_sha256(&d[ka], &[p.integrity_covered])[..16],
            p.icv,
            "{msg} ICV"
        );
        let mut plain = p.ciphertext.to_vec();
        cbc::Decryptor::<aes::Aes128>::new_from_slices(&d[ke], p.iv)
            .unwrap()
            .decrypt_padded_mut::<NoPadding>(&mut plain)
            .unwrap();
        let inner = parse_decrypted(p.first_inner, &plain).unwrap();
        // Re-emitting the inner payloads gives the chain strongSwan sent, with as much
        // padding (strongSwan pads minimally, with random octets); re-encrypting its
        // plaintext with the same IV into a SealFrame gives the message it sent.
        let (mut frame, replain) = SealFrame::for_payloads(&p.header, &inner, &params).unwrap();
        assert_eq!(replain.len(), plain.len());
        assert_eq!(
            strip_padding(&replain),
            strip_padding(&plain),
            "{msg} chain"
        );
        let replain = plain.clone();
        let parts = frame.parts();
        parts.iv.copy_from_slice(p.iv);
        parts.ciphertext.copy_from_slice(&replain);
        let n = parts.ciphertext.len();
        cbc::Encryptor::<aes::Aes128>::new_from_slices(&d[ke], p.iv)
            .unwrap()
            .encrypt_padded_mut::<NoPadding>(parts.ciphertext, n)
            .unwrap();
        let (covered, icv) = frame.split_for_icv();
        let mac = hmac_sha256(&d[ka], &[covered]);
        icv.copy_from_slice(&mac[..16]);
        assert_eq!(frame.bytes(), &bytes[..], "{msg} re-sealed");
        // AUTH (RFC 7296 2.15): prf(prf(PSK, "Key Pad for IKEv2"), <SignedOctets>) with
        // SignedOctets = first message | peer's nonce | prf(SK_p, ID payload body as sent).
        let chain = strip_padding(&plain).unwrap();
        let id_body = PayloadIter::new(p.first_inner, chain)
            .next()
            .unwrap()
            .unwrap()
            .body();
        let (own_first, peer_nonce) = if msg == "auth_req" {
            (&d["init_req"], nonce(&init_resp))
        } else {
            (&d["init_resp"], nonce(&init_req))
        };
        let maced_id = hmac_sha256(&d[kp], &[id_body]);
        let key = hmac_sha256(b"v2capture-secret", &[b"Key Pad for IKEv2"]);
        let want_auth = hmac_sha256(&key, &[own_first, peer_nonce, &maced_id]);
        let auth = inner
            .iter()
            .find_map(|p| match p {
                Payload::Auth(a) => Some(a),
                _ => None,
            })
            .unwrap();
        assert_eq!(auth.method, AuthMethod::SharedKeyMic);
        assert_eq!(auth.data, want_auth, "{msg} AUTH");
        let id = Identification::parse_for_test(id_body);
        if msg == "auth_req" {
            assert_eq!(id, Identification::Ipv4(Ipv4Addr::new(198, 51, 100, 1)));
            check_auth_request(&inner);
        } else {
            assert_eq!(id, Identification::Ipv4(Ipv4Addr::new(198, 51, 100, 2)));
            assert_eq!(
                notify_types(&inner),
                [
                    NotifyType::MobikeSupported,
                    NotifyType::NoAdditionalAddresses,
                    NotifyType::TsUnacceptable
                ]
            );
        }
    }
}

/// The decrypted IKE_AUTH request strongSwan sends: IDi N(INITIAL_CONTACT) IDr AUTH SA TSi
/// TSr N(MOBIKE_SUPPORTED) N(NO_ADDITIONAL_ADDRESSES) N(MULTIPLE_AUTH_SUPPORTED)
/// N(EAP_ONLY_AUTHENTICATION) N(IKEV2_MESSAGE_ID_SYNC_SUPPORTED).
fn check_auth_request(inner: &[Payload]) {
    let kinds: Vec<PayloadType> = inner.iter().map(Payload::payload_type).collect();
    assert_eq!(
        kinds,
        [
            PayloadType::IdI,
            PayloadType::Notify,
            PayloadType::IdR,
            PayloadType::Auth,
            PayloadType::Sa,
            PayloadType::TsI,
            PayloadType::TsR,
            PayloadType::Notify,
            PayloadType::Notify,
            PayloadType::Notify,
            PayloadType::Notify,
            PayloadType::Notify,
        ]
    );
    assert_eq!(
        notify_types(inner),
        [
            NotifyType::InitialContact,
            NotifyType::MobikeSupported,
            NotifyType::NoAdditionalAddresses,
            NotifyType::MultipleAuthSupported,
            NotifyType::EapOnlyAuthentication,
            NotifyType::Ikev2MessageIdSyncSupported,
        ]
    );
    let Payload::Sa(sa) = &inner[4] else {
        panic!("SA")
    };
    assert_eq!(sa.proposals.len(), 1);
    assert_eq!(sa.proposals[0].protocol, ProtocolId::Esp);
    assert!(matches!(sa.proposals[0].spi, Spi::Child(s) if s != 0));
    let esn: Vec<_> = sa.proposals[0]
        .transforms_of(TransformType::Esn)
        .map(|t| t.id)
        .collect();
    assert_eq!(esn, [TransformId::Esn(EsnId::NoEsn)]);
    let ts = |p: &Payload| match p {
        Payload::TsI(t) | Payload::TsR(t) => t.addr_selectors().copied().collect::<Vec<_>>(),
        _ => panic!("TS"),
    };
    assert_eq!(
        ts(&inner[5]),
        [AddrSelector::any(AddressRange::V4 {
            start: Ipv4Addr::new(10, 1, 0, 0),
            end: Ipv4Addr::new(10, 1, 0, 255)
        })]
    );
    assert_eq!(
        ts(&inner[6]),
        [AddrSelector::any(AddressRange::V4 {
            start: Ipv4Addr::new(10, 2, 0, 0),
            end: Ipv4Addr::new(10, 2, 0, 255)
        })]
    );
}

impl Identification {
    /// Parses an ID payload body (test helper over the private parser).
    fn parse_for_test(body: &[u8]) -> Identification {
        match Payload::parse(PayloadType::IdI, PayloadType::None, body).unwrap() {
            Payload::IdI(id) => id,
            _ => unreachable!(),
        }
    }
}

#[test]
fn rsa_pss_ike_auth_over_aes_gcm() {
    let d = rsapss_gcm();
    let init_resp = parse_message(&d["init_resp"]).unwrap();
    let Payload::Sa(sa) = &init_resp.payloads[0] else {
        panic!("SA")
    };
    assert_eq!(
        sa.proposals[0].transforms,
        [
            Transform::encr(EncrId::AesGcm16, Some(256)),
            Transform::new(TransformId::Prf(PrfId::HmacSha2_384)),
            Transform::new(TransformId::Dh(DhGroup::Ecp384)),
        ]
    );
    let Payload::Ke(ke) = &init_resp.payloads[1] else {
        panic!("KE")
    };
    assert_eq!((ke.group, ke.data.len()), (DhGroup::Ecp384, 96));
    for (msg, key, first) in [
        ("auth_req", "sk_ei", PayloadType::IdI),
        ("auth_resp", "sk_er", PayloadType::IdR),
    ] {
        let bytes = &d[msg];
        // AES-GCM-16 in IKEv2 (RFC 5282): 8-octet IV, 16-octet tag, salt = last 4 key octets.
        let p = Protected::locate(bytes, 8, 16).unwrap();
        assert_eq!(p.first_inner, first);
        assert_eq!(p.aad, &bytes[..HEADER_LEN + 4]);
        let (k, salt) = d[key].split_at(32);
        let mut nonce = salt.to_vec();
        nonce.extend_from_slice(p.iv);
        let mut plain = p.ciphertext.to_vec();
        Aes256Gcm::new_from_slice(k)
            .unwrap()
            .decrypt_in_place_detached(nonce[..].into(), p.aad, &mut plain, p.icv.into())
            .expect("tag verifies over the AAD the codec located");
        let inner = parse_decrypted(first, &plain).unwrap();
        let auth = inner
            .iter()
            .find_map(|p| match p {
                Payload::Auth(a) => Some(a),
                _ => None,
            })
            .unwrap();
        // strongSwan with rsa_pss = yes: RFC 7427 Digital Signature, RSASSA-PSS SHA-256,
        // encoded exactly as rswan encodes it.
        assert_eq!(auth.method, AuthMethod::DigitalSignature);
        let sig = auth.signature_auth().unwrap();
        assert_eq!(sig.scheme(), Some(SignatureScheme::RsaPssSha256));
        assert_eq!(
            sig.algorithm_identifier,
            SignatureScheme::RsaPssSha256.algorithm_identifier()
        );
        assert_eq!(sig.signature.len(), 256);
        if msg == "auth_req" {
            check_auth_request(&inner);
        }
        // Every truncation of the decrypted chain fails cleanly.
        let chain = strip_padding(&plain).unwrap();
        for len in 0..chain.len() {
            assert!(parse_inner(first, &chain[..len]).is_err(), "{msg} {len}");
            let _ = parse_decrypted(first, &plain[..len]);
        }
    }
}
