//! Codec tests: round trips, a hand-built Main Mode message, truncation, mutation, limits.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// Main Mode message 1 built by hand from RFC 2408/2409: SA (one ISAKMP proposal, one KEY_IKE
/// transform 3DES / SHA1 / PSK / MODP1024 / 86400 s as a 4-byte TLV) and the DPD Vendor ID.
const MM1: &str = "
    0102030405060708 0000000000000000 01 10 02 00 00000000 00000068
    0d 00 0038 00000001 00000001
      00 00 002c 01 01 00 01
        00 00 0024 00 01 0000
          80010005 80020002 80030001 80040002 800b0001 000c0004 00015180
    00 00 0014 afcad71368a1f1c96b8696fc77570100";

fn mm1_expected() -> Message {
    Message {
        header: Header {
            initiator_cookie: [1, 2, 3, 4, 5, 6, 7, 8],
            responder_cookie: [0; 8],
            next_payload: PayloadType::Sa,
            exchange_type: ExchangeType::MainMode,
            flags: Flags::NONE,
            message_id: 0,
        },
        body: MessageBody::Payloads(vec![
            Payload::Sa(SaPayload {
                doi: Doi::Ipsec,
                situation: SIT_IDENTITY_ONLY,
                proposals: vec![Proposal {
                    number: 1,
                    protocol: ProtocolId::Isakmp,
                    spi: vec![],
                    transforms: vec![Transform {
                        number: 0,
                        transform_id: IkeTransformId::KeyIke.value(),
                        attributes: vec![
                            Attribute::basic(IkeAttrType::EncryptionAlgorithm.value(), 5),
                            Attribute::basic(IkeAttrType::HashAlgorithm.value(), 2),
                            Attribute::basic(IkeAttrType::AuthenticationMethod.value(), 1),
                            Attribute::basic(IkeAttrType::GroupDescription.value(), 2),
                            Attribute::basic(IkeAttrType::LifeType.value(), 1),
                            Attribute::variable(
                                IkeAttrType::LifeDuration.value(),
                                vec![0, 1, 0x51, 0x80],
                            ),
                        ],
                    }],
                }],
            }),
            Payload::VendorId(natt::vendor_id::DPD.to_vec()),
        ]),
    }
}

#[test]
fn hand_built_main_mode_1() {
    let bytes = h(MM1);
    let msg = parse_message(&bytes).unwrap();
    assert_eq!(msg, mm1_expected());
    // Typed access as the state machine will use it.
    let Payload::Sa(sa) = &msg.payloads()[0] else {
        panic!("not an SA")
    };
    let t = &sa.proposals[0].transforms[0];
    let enc = OakleyEncAlg::from(
        t.ike_attr(IkeAttrType::EncryptionAlgorithm)
            .unwrap()
            .as_u64()
            .unwrap() as u16,
    );
    assert_eq!(enc.to_string(), "OAKLEY_3DES_CBC");
    let group = OakleyGroup::from(
        t.ike_attr(IkeAttrType::GroupDescription)
            .unwrap()
            .as_u64()
            .unwrap() as u16,
    );
    assert_eq!(group, OakleyGroup::Modp1024);
    assert_eq!(
        t.ike_attr(IkeAttrType::LifeDuration).unwrap().as_u64(),
        Some(86400)
    );
    assert_eq!(t.ike_attr(IkeAttrType::KeyLength), None);
    // Emitting the Repr gives back the same bytes.
    assert_eq!(msg.to_bytes().unwrap(), bytes);
    // The view agrees.
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.length(), 0x68);
    assert_eq!(packet.exchange_type(), ExchangeType::MainMode);
    assert_eq!(packet.next_payload(), PayloadType::Sa);
    assert_eq!(packet.body().len(), 0x68 - 28);
    // Raw access: the SA body as received (SAi_b), offsets.
    let raws: Vec<RawPayload> = PayloadIter::new(packet.next_payload(), packet.body())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(raws.len(), 2);
    assert_eq!(raws[0].offset, 0);
    assert_eq!(raws[0].body(), &bytes[32..84]);
    assert_eq!(raws[1].offset, 56);
    assert_eq!(raws[1].payload_type, PayloadType::VendorId);
    let view = PayloadPacket::new_checked(raws[0].bytes).unwrap();
    assert_eq!(view.next_payload(), PayloadType::VendorId);
    assert_eq!(view.payload_length(), 56);
}

fn sample_payloads() -> Vec<Payload> {
    vec![
        Payload::Sa(SaPayload::ipsec(vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::Esp,
                spi: vec![0xf2, 0xb4, 0xc6, 0xd8],
                transforms: vec![
                    Transform {
                        number: 0,
                        transform_id: EspTransformId::TripleDes.value(),
                        attributes: vec![
                            Attribute::basic(IpsecAttrType::SaLifeType.value(), 1),
                            Attribute::number(IpsecAttrType::SaLifeDuration.value(), 28800),
                            Attribute::basic(IpsecAttrType::GroupDescription.value(), 5),
                            Attribute::basic(
                                IpsecAttrType::EncapsulationMode.value(),
                                EncapsulationMode::UdpTunnel.value(),
                            ),
                            Attribute::basic(
                                IpsecAttrType::AuthAlgorithm.value(),
                                AuthAlgorithm::HmacSha1.value(),
                            ),
                        ],
                    },
                    Transform {
                        number: 1,
                        transform_id: EspTransformId::Aes.value(),
                        attributes: vec![
                            Attribute::basic(IpsecAttrType::KeyLength.value(), 256),
                            Attribute::number(IpsecAttrType::SaLifeDuration.value(), 100_000),
                            Attribute::basic(
                                IpsecAttrType::EncapsulationMode.value(),
                                EncapsulationMode::UdpTunnelDraft.value(),
                            ),
                        ],
                    },
                ],
            },
            Proposal {
                number: 1,
                protocol: ProtocolId::Ipcomp,
                spi: vec![0x12, 0x34],
                transforms: vec![Transform {
                    number: 0,
                    transform_id: IpcompTransformId::Deflate.value(),
                    attributes: vec![],
                }],
            },
        ])),
        Payload::KeyExchange(vec![0x42; 128]),
        Payload::Id(IdPayload::new(
            &Identification::Ipv4Subnet {
                addr: Ipv4Addr::new(10, 0, 1, 0),
                mask: Ipv4Addr::new(255, 255, 255, 0),
            },
            0,
            0,
        )),
        Payload::Id(IdPayload::new(
            &Identification::Fqdn(b"west.example.com".to_vec()),
            17,
            500,
        )),
        Payload::Id(IdPayload::new(
            &Identification::UserFqdn(b"user@example.com".to_vec()),
            0,
            0,
        )),
        Payload::Id(IdPayload::new(
            &Identification::Ipv4Range {
                start: Ipv4Addr::new(10, 0, 0, 1),
                end: Ipv4Addr::new(10, 0, 0, 9),
            },
            6,
            80,
        )),
        Payload::Id(IdPayload::new(&Identification::KeyId(vec![1, 2, 3]), 0, 0)),
        Payload::Id(IdPayload::new(
            &Identification::Ipv4Addr(Ipv4Addr::new(192, 0, 2, 1)),
            17,
            500,
        )),
        Payload::Cert(CertPayload {
            encoding: CertEncoding::X509Signature,
            data: vec![0x30, 0x82, 0x01, 0x00],
        }),
        Payload::CertReq(CertPayload {
            encoding: CertEncoding::X509Signature,
            data: vec![],
        }),
        Payload::Hash(vec![0x11; 20]),
        Payload::Signature(vec![0x22; 128]),
        Payload::Nonce(vec![0x33; 16]),
        Payload::Notification(NotificationPayload {
            doi: Doi::Ipsec,
            protocol: ProtocolId::Isakmp,
            spi: vec![1; 16],
            notify_type: NotifyType::RUThere,
            data: 7u32.to_be_bytes().to_vec(),
        }),
        Payload::Notification(NotificationPayload {
            doi: Doi::Ipsec,
            protocol: ProtocolId::Esp,
            spi: vec![],
            notify_type: NotifyType::InitialContact,
            data: vec![],
        }),
        Payload::Delete(DeletePayload {
            doi: Doi::Ipsec,
            protocol: ProtocolId::Esp,
            spi_size: 4,
            spis: vec![vec![0xe8, 0xa1, 0xb2, 0xc3], vec![0, 0, 0x10, 0x01]],
        }),
        Payload::Delete(DeletePayload {
            doi: Doi::Ipsec,
            protocol: ProtocolId::Isakmp,
            spi_size: 16,
            spis: vec![vec![9; 16]],
        }),
        Payload::VendorId(natt::vendor_id::NAT_T_RFC3947.to_vec()),
        Payload::NatD(NatDPayload {
            hash: vec![0x44; 20],
            draft: false,
        }),
        Payload::NatD(NatDPayload {
            hash: vec![0x45; 16],
            draft: true,
        }),
        Payload::NatOa(NatOaPayload {
            id_type: IdType::Ipv4Addr,
            address: vec![10, 0, 0, 5],
            draft: false,
        }),
        Payload::NatOa(NatOaPayload {
            id_type: IdType::Ipv4Addr,
            address: vec![10, 0, 0, 6],
            draft: true,
        }),
        Payload::Unknown(UnknownPayload {
            payload_type: PayloadType::Unknown(77),
            critical: true,
            data: vec![1, 2, 3],
        }),
        Payload::Unknown(UnknownPayload {
            payload_type: PayloadType::Proposal,
            critical: false,
            data: vec![],
        }),
    ]
}

fn sample_message() -> Message {
    Message {
        header: Header {
            initiator_cookie: [0xaa; 8],
            responder_cookie: [0xbb; 8],
            next_payload: PayloadType::Sa,
            exchange_type: ExchangeType::QuickMode,
            flags: Flags::COMMIT,
            message_id: 0x0102_0304,
        },
        body: MessageBody::Payloads(sample_payloads()),
    }
}

#[test]
fn every_payload_round_trips() {
    for p in sample_payloads() {
        // Alone, as a chain of one.
        let bytes = emit_payloads(std::slice::from_ref(&p)).unwrap();
        let back = parse_payloads(p.payload_type(), &bytes).unwrap();
        assert_eq!(back, vec![p.clone()], "{:?}", p.payload_type());
        // Body-level parse.
        let body = p.body_bytes().unwrap();
        let reserved = if matches!(&p, Payload::Unknown(u) if u.critical) {
            0x80
        } else {
            0
        };
        assert_eq!(
            Payload::parse(p.payload_type(), reserved, &body).unwrap(),
            p
        );
    }
    // And all together in one message.
    let msg = sample_message();
    let bytes = msg.to_bytes().unwrap();
    assert_eq!(parse_message(&bytes).unwrap(), msg);
    assert_eq!(msg.payloads().len(), sample_payloads().len());
}

#[test]
fn identifications_decode() {
    for p in sample_payloads() {
        if let Payload::Id(id) = p {
            let ident = id.identification().unwrap();
            assert_eq!(IdPayload::new(&ident, id.protocol, id.port), id);
        }
    }
    let bad = IdPayload {
        id_type: IdType::Ipv4Addr,
        protocol: 0,
        port: 0,
        data: vec![1, 2, 3],
    };
    assert_eq!(bad.identification(), None);
    let bad = IdPayload {
        id_type: IdType::Ipv4AddrSubnet,
        protocol: 0,
        port: 0,
        data: vec![1; 7],
    };
    assert_eq!(bad.identification(), None);
}

#[test]
fn encrypted_message_and_decrypted_body() {
    let mut msg = sample_message();
    msg.header.flags = Flags::ENCRYPTION;
    msg.header.next_payload = PayloadType::Hash;
    msg.body = MessageBody::Encrypted(vec![0x5a; 32]);
    let bytes = msg.to_bytes().unwrap();
    assert_eq!(parse_message(&bytes).unwrap(), msg);
    let (header, body) = Header::parse_datagram(&bytes).unwrap();
    assert_eq!(header, msg.header);
    assert_eq!(body, &[0x5a; 32]);

    // A decrypted body: payloads then zero padding.
    let payloads = vec![Payload::Hash(vec![1; 20]), Payload::Nonce(vec![2; 16])];
    let mut plain = emit_payloads(&payloads).unwrap();
    let end = plain.len();
    plain.extend_from_slice(&[0; 4]);
    assert_eq!(
        parse_decrypted_payloads(PayloadType::Hash, &plain).unwrap(),
        (payloads.clone(), end)
    );
    // Strict parsing refuses the padding.
    assert_eq!(
        parse_payloads(PayloadType::Hash, &plain),
        Err(ParseError::TrailingGarbage { extra: 4 })
    );
    // Padding has a bound.
    plain.extend_from_slice(&[0; MAX_DECRYPTED_PADDING]);
    assert!(matches!(
        parse_decrypted_payloads(PayloadType::Hash, &plain),
        Err(ParseError::TrailingGarbage { .. })
    ));
}

#[test]
fn header_checks() {
    let good = h(MM1);
    // IKEv2 version.
    let mut v2 = good.clone();
    v2[17] = 0x20;
    assert_eq!(
        parse_message(&v2),
        Err(ParseError::UnsupportedVersion { major: 2, minor: 0 })
    );
    let mut v11 = good.clone();
    v11[17] = 0x11;
    assert_eq!(
        parse_message(&v11),
        Err(ParseError::UnsupportedVersion { major: 1, minor: 1 })
    );
    // Trailing garbage after the announced length.
    let mut long = good.clone();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(
        parse_message(&long),
        Err(ParseError::TrailingGarbage { extra: 2 })
    );
    // Length field larger than the datagram.
    let mut big = good.clone();
    big[27] += 1;
    assert_eq!(parse_message(&big), Err(ParseError::Truncated));
    // Length field smaller than the header.
    let mut small = good.clone();
    small[24..28].copy_from_slice(&20u32.to_be_bytes());
    assert_eq!(
        parse_message(&small),
        Err(ParseError::BadLength { length: 20 })
    );
    // Length field shorter than the chain: the chain runs past the end.
    let mut short = good.clone();
    short[24..28].copy_from_slice(&100u32.to_be_bytes());
    short.truncate(100);
    assert!(parse_message(&short).is_err());
    // Flags display.
    assert_eq!(
        (Flags::ENCRYPTION | Flags::COMMIT).to_string(),
        "ISAKMP_FLAG_ENCRYPTION+ISAKMP_FLAG_COMMIT"
    );
    assert_eq!(Flags::from_bits(0x09).unknown_bits(), 0x08);
    // Unchecked view on garbage never panics.
    let p = Packet::new_unchecked(&[1u8, 2, 3][..]);
    assert_eq!(p.length(), 0);
    assert_eq!(p.body(), &[] as &[u8]);
    assert_eq!(
        Packet::new_checked(&[0u8; 27][..]).err(),
        Some(ParseError::Truncated)
    );
}

#[test]
fn every_truncation_fails() {
    for bytes in [h(MM1), sample_message().to_bytes().unwrap()] {
        for len in 0..bytes.len() {
            assert!(parse_message(&bytes[..len]).is_err(), "length {len}");
            // Even with the header length fixed up to match, the chain is cut short.
            if len >= HEADER_LEN {
                let mut cut = bytes[..len].to_vec();
                cut[24..28].copy_from_slice(&(len as u32).to_be_bytes());
                assert!(parse_message(&cut).is_err(), "fixed-up length {len}");
            }
        }
        assert!(parse_message(&bytes).is_ok());
    }
}

#[test]
fn payload_length_errors() {
    let good = h(MM1);
    // SA payload length (offset 28+2) oversize: runs past the datagram.
    let mut over = good.clone();
    over[31] = 0xff;
    assert_eq!(
        parse_message(&over),
        Err(ParseError::BadPayloadLength {
            payload_type: PayloadType::Sa,
            length: 0xff
        })
    );
    // Undersize: below the generic header.
    let mut under = good.clone();
    under[31] = 3;
    assert_eq!(
        parse_message(&under),
        Err(ParseError::BadPayloadLength {
            payload_type: PayloadType::Sa,
            length: 3
        })
    );
    // Undersize: not even DOI and situation.
    let mut under = good.clone();
    under[31] = 8;
    assert!(matches!(
        parse_message(&under),
        Err(ParseError::BadPayloadLength {
            payload_type: PayloadType::Sa,
            ..
        })
    ));
    // Proposal length (offset 40+2) past the SA.
    let mut p = good.clone();
    p[43] = 0x2d;
    assert!(matches!(
        parse_message(&p),
        Err(ParseError::BadPayloadLength {
            payload_type: PayloadType::Proposal,
            ..
        })
    ));
    // Transform count mismatch (offset 40+7).
    let mut p = good.clone();
    p[47] = 2;
    assert!(matches!(
        parse_message(&p),
        Err(ParseError::MalformedPayload {
            payload_type: PayloadType::Proposal,
            ..
        })
    ));
    // TLV attribute running past the transform: life duration length 4 -> 5.
    let mut p = good.clone();
    p[79] = 5;
    assert!(matches!(
        parse_message(&p),
        Err(ParseError::MalformedPayload {
            payload_type: PayloadType::Transform,
            ..
        })
    ));
    // Notification SPI size past the end; Delete count mismatch; zero-size SPIs.
    assert!(Payload::parse(PayloadType::Notification, 0, &[0, 0, 0, 1, 1, 9, 0, 1]).is_err());
    assert!(Payload::parse(PayloadType::Notification, 0, &[0, 0, 0, 1, 1, 0, 0]).is_err());
    assert!(Payload::parse(
        PayloadType::Delete,
        0,
        &[0, 0, 0, 1, 3, 4, 0, 2, 1, 2, 3, 4]
    )
    .is_err());
    assert!(Payload::parse(PayloadType::Delete, 0, &[0, 0, 0, 1, 3, 0, 0xff, 0xff]).is_err());
    assert!(Payload::parse(PayloadType::Id, 0, &[1, 0, 0]).is_err());
    assert!(Payload::parse(PayloadType::Cert, 0, &[]).is_err());
    assert!(Payload::parse(PayloadType::NatOa, 0, &[1, 0, 0]).is_err());
}

#[test]
fn payload_count_limit() {
    let build = |n: usize| Message {
        header: sample_message().header,
        body: MessageBody::Payloads(vec![Payload::VendorId(vec![]); n]),
    };
    let ok = build(MAX_PAYLOADS).to_bytes().unwrap();
    assert_eq!(parse_message(&ok).unwrap().payloads().len(), MAX_PAYLOADS);
    let too_many = build(MAX_PAYLOADS + 1).to_bytes().unwrap();
    assert_eq!(parse_message(&too_many), Err(ParseError::TooManyPayloads));
    // Proposals and attributes have their own caps.
    let sa = |proposals: usize, attrs: usize| {
        Payload::Sa(SaPayload::ipsec(vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::Esp,
                spi: vec![0; 4],
                transforms: vec![Transform {
                    number: 0,
                    transform_id: 3,
                    attributes: vec![Attribute::basic(1, 1); attrs],
                }],
            };
            proposals
        ]))
    };
    for (p, a, ok) in [
        (MAX_PROPOSALS, 1, true),
        (MAX_PROPOSALS + 1, 1, false),
        (1, MAX_ATTRIBUTES, true),
        (1, MAX_ATTRIBUTES + 1, false),
    ] {
        let bytes = emit_payloads(&[sa(p, a)]).unwrap();
        assert_eq!(
            parse_payloads(PayloadType::Sa, &bytes).is_ok(),
            ok,
            "{p} {a}"
        );
    }
}

#[test]
fn unknown_payload_keeps_type_and_critical_bit() {
    let mut bytes = emit_payloads(&[Payload::Nonce(vec![1; 8])]).unwrap();
    // Chain: Nonce -> type 99 (critical) -> none.
    bytes[0] = 99;
    bytes.extend_from_slice(&[0, 0x80, 0, 6, 0xab, 0xcd]);
    let payloads = parse_payloads(PayloadType::Nonce, &bytes).unwrap();
    assert_eq!(
        payloads[1],
        Payload::Unknown(UnknownPayload {
            payload_type: PayloadType::Unknown(99),
            critical: true,
            data: vec![0xab, 0xcd],
        })
    );
    assert_eq!(payloads[1].payload_type().to_string(), "99??");
    // Non-zero RESERVED bytes of known payloads are ignored (strongSwan does the same).
    bytes[1] = 0x80;
    assert!(parse_payloads(PayloadType::Nonce, &bytes).is_ok());
}

#[test]
fn emit_errors() {
    let too_long = Payload::Nonce(vec![0; 70_000]);
    assert_eq!(
        emit_payloads(&[too_long]),
        Err(EmitError::TooLong("payload"))
    );
    let bad_delete = Payload::Delete(DeletePayload {
        doi: Doi::Ipsec,
        protocol: ProtocolId::Esp,
        spi_size: 4,
        spis: vec![vec![1, 2, 3]],
    });
    assert!(matches!(
        emit_payloads(&[bad_delete]),
        Err(EmitError::Inconsistent(_))
    ));
    let bad_attr = Attribute::basic(0x8001, 1);
    let sa = Payload::Sa(SaPayload::ipsec(vec![Proposal {
        number: 0,
        protocol: ProtocolId::Esp,
        spi: vec![],
        transforms: vec![Transform {
            number: 0,
            transform_id: 3,
            attributes: vec![bad_attr],
        }],
    }]));
    assert!(matches!(
        emit_payloads(&[sa]),
        Err(EmitError::Inconsistent(_))
    ));
    let none = Payload::Unknown(UnknownPayload {
        payload_type: PayloadType::None,
        critical: false,
        data: vec![],
    });
    assert!(emit_payloads(&[none]).is_err());
    let mut buf = [0u8; 10];
    assert_eq!(
        sample_message()
            .header
            .emit(&mut Packet::new_unchecked(&mut buf[..]), 28),
        Err(EmitError::BufferTooSmall)
    );
}

#[test]
fn attribute_values() {
    assert_eq!(Attribute::number(2, 28800), Attribute::basic(2, 28800));
    assert_eq!(
        Attribute::number(2, 86400),
        Attribute::variable(2, vec![0, 1, 0x51, 0x80])
    );
    assert_eq!(Attribute::variable(2, vec![0; 12]).as_u64(), Some(0));
    assert_eq!(Attribute::variable(2, vec![1; 9]).as_u64(), None);
    assert_eq!(Attribute::variable(2, vec![]).as_u64(), None);
    let mut v = vec![0; 4];
    v.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(Attribute::variable(2, v).as_u64(), Some(u64::MAX));
    assert!(Attribute::basic(1, 1).is_basic());
}

#[test]
fn random_mutations_never_panic() {
    let seeds = [h(MM1), sample_message().to_bytes().unwrap()];
    let mut rng = StdRng::seed_from_u64(0x1515_a4a4);
    let mut parsed_ok = 0usize;
    for round in 0..10_000 {
        let mut m = seeds[round % seeds.len()].clone();
        let edits = rng.gen_range(1..=4);
        for _ in 0..edits {
            match rng.gen_range(0..10) {
                0 if !m.is_empty() => {
                    let at = rng.gen_range(0..m.len());
                    m.truncate(at);
                }
                1 => {
                    let extra = rng.gen_range(1..8);
                    m.extend((0..extra).map(|_| rng.gen::<u8>()));
                }
                2 if m.len() >= 28 => {
                    // Keep the header length consistent so the body parser is exercised.
                    let len = m.len() as u32;
                    m[24..28].copy_from_slice(&len.to_be_bytes());
                }
                _ if !m.is_empty() => {
                    let at = rng.gen_range(0..m.len());
                    m[at] = rng.gen();
                }
                _ => {}
            }
        }
        if let Ok(msg) = parse_message(&m) {
            parsed_ok += 1;
            // What parses re-emits to something that parses to the same Repr.
            let again = msg.to_bytes().expect("a parsed message re-emits");
            assert_eq!(parse_message(&again).unwrap(), msg);
        }
        let body = m.get(HEADER_LEN..).unwrap_or(&[]);
        let first = PayloadType::from(m.get(16).copied().unwrap_or(1));
        let _ = parse_decrypted_payloads(first, body);
        let _ = Header::parse_datagram(&m);
        for raw in PayloadIter::new(first, body).flatten() {
            let _ = raw.parse();
        }
        let _ = natt::classify_port4500(&m);
    }
    // Some mutations (e.g. of cookies or attribute values) still parse.
    assert!(parsed_ok > 100, "{parsed_ok}");
}
