//! Codec tests: hand-built messages from the RFC 7296 layouts, every payload round trip,
//! strongSwan captures (decrypted with the keys charon logged), truncation and mutation,
//! limits, SK framing, fragmentation and reassembly, RFC 7427 identifiers.

use super::*;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

mod codec;
mod frag;
mod sigalg;
mod strongswan;

pub(super) fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// Parses a `name hex` test-data file (lines starting with `#` are comments).
pub(super) fn testdata(text: &str) -> HashMap<String, Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), h(v))
        })
        .collect()
}

pub(super) const SPI_I: IkeSpi = IkeSpi([1, 2, 3, 4, 5, 6, 7, 8]);
pub(super) const SPI_R: IkeSpi = IkeSpi([0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18]);

/// An IKE_SA_INIT request built by hand from RFC 7296 3.1–3.10: SA (one IKE proposal:
/// ENCR_AES_CBC/256, PRF_HMAC_SHA2_256, AUTH_HMAC_SHA2_256_128, MODP_2048), KE (group 14),
/// Nonce (32), NAT_DETECTION_SOURCE_IP, NAT_DETECTION_DESTINATION_IP,
/// IKEV2_FRAGMENTATION_SUPPORTED, SIGNATURE_HASH_ALGORITHMS (SHA2-256/384/512).
pub(super) fn init_request_hex() -> String {
    format!(
        "0102030405060708 0000000000000000 21 20 22 08 00000000 000001c6
         22 00 0030
           00 00 002c 01 01 00 04
             03 00 000c 01 00 000c 800e0100
             03 00 0008 02 00 0005
             03 00 0008 03 00 000c
             00 00 0008 04 00 000e
         28 00 0108 000e 0000 {ke}
         29 00 0024 {nonce}
         29 00 001c 00 00 4004 {natd_s}
         29 00 001c 00 00 4005 {natd_d}
         29 00 0008 00 00 402e
         00 00 000e 00 00 402f 0002 0003 0004",
        ke = "aa".repeat(256),
        nonce = "5a".repeat(32),
        natd_s = "c1".repeat(20),
        natd_d = "d2".repeat(20),
    )
}

pub(super) fn init_request_expected() -> Message {
    Message {
        header: Header {
            spi_i: SPI_I,
            spi_r: IkeSpi::ZERO,
            next_payload: PayloadType::Sa,
            exchange_type: ExchangeType::IkeSaInit,
            flags: Flags::INITIATOR,
            message_id: 0,
        },
        payloads: vec![
            Payload::Sa(SaPayload {
                proposals: vec![Proposal {
                    number: 1,
                    protocol: ProtocolId::Ike,
                    spi: Spi::None,
                    transforms: vec![
                        Transform::encr(EncrId::AesCbc, Some(256)),
                        Transform::new(TransformId::Prf(PrfId::HmacSha2_256)),
                        Transform::new(TransformId::Integ(IntegId::HmacSha2_256_128)),
                        Transform::new(TransformId::Dh(DhGroup::Modp2048)),
                    ],
                }],
            }),
            Payload::Ke(KePayload {
                group: DhGroup::Modp2048,
                data: vec![0xaa; 256],
            }),
            Payload::Nonce(vec![0x5a; 32]),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NatDetectionSourceIp,
                vec![0xc1; 20],
            )),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NatDetectionDestinationIp,
                vec![0xd2; 20],
            )),
            Payload::Notify(NotifyPayload::new(
                NotifyType::Ikev2FragmentationSupported,
                vec![],
            )),
            Payload::Notify(NotifyPayload::signature_hash_algorithms(&[
                HashAlgorithm::Sha2_256,
                HashAlgorithm::Sha2_384,
                HashAlgorithm::Sha2_512,
            ])),
        ],
    }
}

/// One payload of every kind (and every variant that has its own encoding).
pub(super) fn sample_payloads() -> Vec<Payload> {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    vec![
        Payload::Sa(SaPayload {
            proposals: vec![
                Proposal {
                    number: 1,
                    protocol: ProtocolId::Esp,
                    spi: Spi::Child(0xc0ffee01),
                    transforms: vec![
                        Transform::encr(EncrId::AesGcm16, Some(256)),
                        Transform::encr(EncrId::Chacha20Poly1305, None),
                        Transform::new(TransformId::Dh(DhGroup::Curve25519)),
                        Transform::new(TransformId::Esn(EsnId::NoEsn)),
                        Transform::new(TransformId::Esn(EsnId::Esn)),
                    ],
                },
                Proposal {
                    number: 2,
                    protocol: ProtocolId::Ah,
                    spi: Spi::Child(0x1000),
                    transforms: vec![Transform::new(TransformId::Integ(
                        IntegId::HmacSha2_512_256,
                    ))],
                },
                Proposal {
                    number: 3,
                    protocol: ProtocolId::Ike,
                    spi: Spi::Ike(SPI_R),
                    transforms: vec![
                        Transform::encr(EncrId::AesCbc, Some(128)),
                        Transform::new(TransformId::Prf(PrfId::HmacSha2_384)),
                        Transform::new(TransformId::Integ(IntegId::HmacSha2_384_192)),
                        Transform::new(TransformId::Dh(DhGroup::Ecp384)),
                        Transform {
                            id: TransformId::Other {
                                transform_type: 200,
                                id: 7,
                            },
                            key_length: Some(1),
                            attributes: vec![
                                TransformAttribute {
                                    attr_type: TransformAttrType::Unknown(99),
                                    value: AttrValue::Tv(5),
                                },
                                TransformAttribute {
                                    attr_type: TransformAttrType::Unknown(100),
                                    value: AttrValue::Tlv(vec![1, 2, 3]),
                                },
                            ],
                        },
                    ],
                },
            ],
        }),
        Payload::Ke(KePayload {
            group: DhGroup::Curve25519,
            data: vec![0x42; 32],
        }),
        Payload::IdI(Identification::Ipv4(Ipv4Addr::new(192, 0, 2, 1))),
        Payload::IdR(Identification::Fqdn(b"east.example.com".to_vec())),
        Payload::IdI(Identification::Rfc822(b"user@example.com".to_vec())),
        Payload::IdR(Identification::Ipv6(v6("2001:db8::1"))),
        Payload::IdI(Identification::DerAsn1Dn(vec![0x30, 0x00])),
        Payload::IdI(Identification::KeyId(vec![1, 2, 3, 4])),
        Payload::IdR(Identification::Other {
            id_type: IdType::Null,
            data: vec![],
        }),
        Payload::Cert(CertPayload {
            encoding: CertEncoding::X509Signature,
            data: vec![0x30, 0x82, 0x01, 0x00],
        }),
        Payload::CertReq(CertPayload {
            encoding: CertEncoding::X509Signature,
            data: vec![0x77; 20],
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: vec![0x99; 32],
        }),
        Payload::Auth(
            AuthPayload::digital_signature(SignatureScheme::RsaPssSha384, vec![0x55; 256]).unwrap(),
        ),
        Payload::Nonce(vec![0x10; 16]),
        Payload::Nonce(vec![0x11; 256]),
        Payload::Notify(NotifyPayload::new(NotifyType::InitialContact, vec![])),
        Payload::Notify(NotifyPayload::child(
            NotifyType::RekeySa,
            ProtocolId::Esp,
            0x12345678,
            vec![],
        )),
        Payload::Notify(NotifyPayload::invalid_ke_payload(DhGroup::Ecp256)),
        Payload::Notify(NotifyPayload::cookie(vec![0xcc; 64]).unwrap()),
        Payload::Notify(NotifyPayload {
            protocol: ProtocolId::Ike,
            spi: Spi::Ike(SPI_I),
            notify_type: NotifyType::Unknown(40000),
            data: vec![1],
        }),
        Payload::Notify(NotifyPayload {
            protocol: ProtocolId::Unknown(9),
            spi: Spi::Other(vec![1, 2]),
            notify_type: NotifyType::UseTransportMode,
            data: vec![],
        }),
        Payload::Delete(DeletePayload::Ike),
        Payload::Delete(DeletePayload::Child {
            protocol: ProtocolId::Esp,
            spis: vec![0x1001, 0x1002, 0xffff_ffff],
        }),
        Payload::Delete(DeletePayload::Child {
            protocol: ProtocolId::Ah,
            spis: vec![],
        }),
        Payload::VendorId(b"rswan".to_vec()),
        Payload::TsI(TsPayload {
            selectors: vec![
                TrafficSelector::Addr(AddrSelector::any(AddressRange::V4 {
                    start: Ipv4Addr::new(10, 0, 1, 0),
                    end: Ipv4Addr::new(10, 0, 1, 255),
                })),
                TrafficSelector::Addr(AddrSelector {
                    ip_protocol: 6,
                    start_port: 443,
                    end_port: 443,
                    addresses: AddressRange::V6 {
                        start: v6("2001:db8:1::"),
                        end: v6("2001:db8:1::ffff"),
                    },
                }),
            ],
        }),
        Payload::TsR(TsPayload {
            selectors: vec![
                TrafficSelector::Addr(AddrSelector {
                    ip_protocol: 17,
                    start_port: 65535,
                    end_port: 0,
                    addresses: AddressRange::V4 {
                        start: Ipv4Addr::new(10, 0, 2, 7),
                        end: Ipv4Addr::new(10, 0, 2, 7),
                    },
                }),
                TrafficSelector::Other {
                    ts_type: TsType::SecLabel,
                    octet: 0,
                    data: b"system_u:object_r:ipsec_spd_t:s0".to_vec(),
                },
            ],
        }),
        Payload::TsR(TsPayload { selectors: vec![] }),
        Payload::Config(ConfigPayload {
            cfg_type: CfgType::Request,
            attributes: vec![
                ConfigAttribute {
                    attr_type: ConfigAttrType::InternalIp4Address,
                    value: vec![],
                },
                ConfigAttribute {
                    attr_type: ConfigAttrType::InternalIp6Dns,
                    value: vec![0x20; 16],
                },
            ],
        }),
        Payload::Eap(vec![1, 2, 0, 5, 1]),
        Payload::Encrypted(EncryptedPayload {
            first_inner: PayloadType::IdI,
            data: vec![0xee; 48],
        }),
    ]
}

pub(super) fn sample_message() -> Message {
    Message {
        header: Header {
            spi_i: SPI_I,
            spi_r: SPI_R,
            next_payload: PayloadType::Sa,
            exchange_type: ExchangeType::IkeAuth,
            flags: Flags::RESPONSE,
            message_id: 7,
        },
        payloads: sample_payloads(),
    }
}
