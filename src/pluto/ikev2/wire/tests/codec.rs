//! Header, payloads, messages: hand-built bytes, round trips, errors, limits, robustness.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn hand_built_ike_sa_init_request() {
    let bytes = h(&init_request_hex());
    assert_eq!(bytes.len(), 0x1c6);
    let msg = parse_message(&bytes).unwrap();
    assert_eq!(msg, init_request_expected());
    assert_eq!(msg.to_bytes().unwrap(), bytes);
    // Typed access as an exchange handler uses it.
    let Payload::Sa(sa) = &msg.payloads[0] else {
        panic!("not an SA")
    };
    let p = &sa.proposals[0];
    let encr: Vec<_> = p.transforms_of(TransformType::Encr).collect();
    assert_eq!(encr.len(), 1);
    assert_eq!(encr[0].id, TransformId::Encr(EncrId::AesCbc));
    assert_eq!(encr[0].key_length, Some(256));
    assert_eq!(encr[0].id.to_string_parts(), ("ENCR", "ENCR_AES_CBC"));
    assert_eq!(
        msg.notify(NotifyType::SignatureHashAlgorithms)
            .unwrap()
            .hash_algorithms()
            .unwrap(),
        vec![
            HashAlgorithm::Sha2_256,
            HashAlgorithm::Sha2_384,
            HashAlgorithm::Sha2_512
        ]
    );
    assert!(msg
        .notify(NotifyType::Ikev2FragmentationSupported)
        .is_some());
    assert_eq!(msg.notifies().count(), 4);
    // The view agrees.
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.spi_i(), SPI_I);
    assert!(packet.spi_r().is_zero());
    assert_eq!(packet.major_version(), 2);
    assert_eq!(packet.exchange_type(), ExchangeType::IkeSaInit);
    assert!(packet.flags().initiator() && !packet.flags().response());
    assert_eq!(packet.length(), 0x1c6);
    assert_eq!(packet.body().len(), 0x1c6 - HEADER_LEN);
    // Raw access: offsets and bodies as received.
    let raws: Vec<RawPayload> = PayloadIter::new(packet.next_payload(), packet.body())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(raws.len(), 7);
    assert_eq!(raws[0].offset, 0);
    assert_eq!(raws[1].offset, 48);
    assert_eq!(raws[1].payload_type, PayloadType::Ke);
    assert_eq!(raws[2].body(), &[0x5a; 32]);
    let view = PayloadPacket::new_checked(raws[0].bytes).unwrap();
    assert_eq!(view.next_payload(), PayloadType::Ke);
    assert_eq!(view.payload_length(), 48);
    assert!(!view.critical());
}

/// Formatting helper for the transform's type and ID names.
trait Names {
    fn to_string_parts(&self) -> (&'static str, &'static str);
}

impl Names for TransformId {
    fn to_string_parts(&self) -> (&'static str, &'static str) {
        let t = self.transform_type().name().unwrap();
        let id = match self {
            TransformId::Encr(e) => e.name(),
            TransformId::Prf(p) => p.name(),
            TransformId::Integ(i) => i.name(),
            TransformId::Dh(d) => d.name(),
            TransformId::Esn(e) => e.name(),
            TransformId::Other { .. } => None,
        };
        (t, id.unwrap())
    }
}

#[test]
fn every_payload_round_trips() {
    let msg = sample_message();
    let bytes = msg.to_bytes().unwrap();
    assert_eq!(parse_message(&bytes).unwrap(), msg);
    // Each payload alone, through its generic header.
    for p in sample_payloads() {
        let mut out = Vec::new();
        p.emit(PayloadType::None, &mut out).unwrap();
        let parsed = parse_payloads(p.payload_type(), &out).unwrap();
        assert_eq!(parsed, vec![p.clone()], "{:?}", p.payload_type());
        // And inside an encrypted chain, except SK itself.
        if !matches!(p, Payload::Encrypted(_)) {
            let (first, plain) = inner_plaintext(std::slice::from_ref(&p), 16).unwrap();
            assert_eq!(plain.len() % 16, 0);
            assert_eq!(parse_decrypted(first, &plain).unwrap(), vec![p]);
        }
    }
    // The IDs decode as expected and print Pluto-style.
    let ids: Vec<String> = sample_payloads()
        .iter()
        .filter_map(|p| match p {
            Payload::IdI(i) | Payload::IdR(i) => Some(i.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        [
            "192.0.2.1",
            "@east.example.com",
            "user@example.com",
            "2001:db8::1",
            "ID_DER_ASN1_DN:3000",
            "@#01020304",
            "ID_NULL:"
        ]
    );
}

#[test]
fn ipv6_traffic_selector_bytes() {
    let ts = TsPayload::new([AddrSelector {
        ip_protocol: 58,
        start_port: 0x8000,
        end_port: 0x80ff,
        addresses: AddressRange::V6 {
            start: "2001:db8::".parse().unwrap(),
            end: "2001:db8::ffff:ffff".parse().unwrap(),
        },
    }]);
    let mut body = Vec::new();
    ts.emit_body(&mut body).unwrap();
    let want = h("01 000000
         08 3a 0028 8000 80ff
         20010db8000000000000000000000000
         20010db80000000000000000ffffffff");
    assert_eq!(body, want);
    assert_eq!(TsPayload::parse(&want, PayloadType::TsI).unwrap(), ts);
    assert_eq!(ts.addr_selectors().count(), 1);
    // A v6 selector claiming the v4 length, and vice versa, is refused.
    let mut bad = want.clone();
    bad[7] = 16;
    assert!(TsPayload::parse(&bad, PayloadType::TsI).is_err());
    let mut bad = want.clone();
    bad[4] = 7;
    assert!(TsPayload::parse(&bad, PayloadType::TsI).is_err());
    // Count larger or smaller than the selectors present.
    let mut bad = want.clone();
    bad[0] = 2;
    assert!(TsPayload::parse(&bad, PayloadType::TsI).is_err());
    let mut bad = want;
    bad[0] = 0;
    assert!(TsPayload::parse(&bad, PayloadType::TsI).is_err());
}

#[test]
fn header_checks() {
    let good = h(&init_request_hex());
    // Major version 3: reportable as INVALID_MAJOR_VERSION, whatever the rest says.
    let mut v3 = good.clone();
    v3[17] = 0x30;
    v3.truncate(40);
    let err = parse_message(&v3).unwrap_err();
    assert_eq!(err, ParseError::UnsupportedVersion { major: 3, minor: 0 });
    assert!(err.is_invalid_major_version());
    assert_eq!(err.notify_type(), NotifyType::InvalidMajorVersion);
    // The view still gives what the answer echoes.
    let p = Packet::new_unchecked(&v3[..]);
    assert_eq!((p.spi_i(), p.message_id()), (SPI_I, 0));
    // IKEv1 reaching this codec: an error, but not INVALID_MAJOR_VERSION.
    let mut v1 = good.clone();
    v1[17] = 0x10;
    let err = parse_message(&v1).unwrap_err();
    assert!(!err.is_invalid_major_version());
    // A higher minor version is ignored.
    let mut minor = good.clone();
    minor[17] = 0x21;
    assert_eq!(parse_message(&minor).unwrap(), init_request_expected());
    // Length field: trailing bytes, too short, past the datagram.
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        parse_message(&long),
        Err(ParseError::TrailingGarbage { extra: 1 })
    );
    let mut bad = good.clone();
    bad[24..28].copy_from_slice(&27u32.to_be_bytes());
    assert_eq!(
        parse_message(&bad),
        Err(ParseError::BadLength { length: 27 })
    );
    let mut bad = good.clone();
    bad[24..28].copy_from_slice(&(good.len() as u32 + 1).to_be_bytes());
    assert_eq!(parse_message(&bad), Err(ParseError::Truncated));
    // Flags.
    assert_eq!((Flags::INITIATOR | Flags::RESPONSE).to_string(), "I+R");
    assert_eq!(Flags::from_bits(0x39).to_string(), "I+V+R+0x01??");
    assert_eq!(Flags::NONE.to_string(), "none");
    // Unchecked view on garbage never panics.
    let p = Packet::new_unchecked(&[1u8, 2, 3][..]);
    assert_eq!(p.length(), 0);
    assert_eq!(p.body(), &[] as &[u8]);
    assert!(p.spi_i().is_zero());
    assert_eq!(
        Packet::new_checked(&[0u8; 27][..]).err(),
        Some(ParseError::Truncated)
    );
    // Setters and emit.
    let mut buf = [0u8; HEADER_LEN];
    let mut pk = Packet::new_unchecked(&mut buf[..]);
    init_request_expected().header.emit(&mut pk, 28).unwrap();
    pk.set_message_id(9);
    assert_eq!(Header::parse(&pk).unwrap().message_id, 9);
    assert_eq!(pk.body_mut().len(), 0);
    let mut small = [0u8; 10];
    assert_eq!(
        init_request_expected()
            .header
            .emit(&mut Packet::new_unchecked(&mut small[..]), 28),
        Err(EmitError::BufferTooSmall)
    );
    assert_eq!(SPI_R.to_string(), "a1b2c3d4e5f60718");
    assert_eq!(IkeSpi::from_u64(SPI_R.to_u64()), SPI_R);
}

#[test]
fn unknown_payloads_and_the_critical_bit() {
    let (first, mut chain) = emit_payloads(&[Payload::Nonce(vec![1; 16])]).unwrap();
    assert_eq!(first, PayloadType::Nonce);
    // Nonce -> type 99 -> VendorId.
    chain[0] = 99;
    chain.extend_from_slice(&[43, 0x00, 0, 6, 0xab, 0xcd]);
    chain.extend_from_slice(&[0, 0, 0, 5, 0x01]);
    let payloads = parse_payloads(first, &chain).unwrap();
    assert_eq!(
        payloads,
        vec![Payload::Nonce(vec![1; 16]), Payload::VendorId(vec![1])]
    );
    // The same payload with the critical bit set fails the whole chain.
    let mut critical = chain.clone();
    critical[21] = 0x80;
    let err = parse_payloads(first, &critical).unwrap_err();
    assert_eq!(
        err,
        ParseError::UnsupportedCriticalPayload { payload_type: 99 }
    );
    assert_eq!(err.notify_type(), NotifyType::UnsupportedCriticalPayload);
    assert_eq!(err.notify_data(), vec![99]);
    // Known payloads ignore the critical bit and the RESERVED bits.
    let mut known = chain.clone();
    known[1] = 0xff;
    assert_eq!(parse_payloads(first, &known).unwrap(), payloads);
    // A skipped first payload: the header names the first payload kept.
    let mut msg = init_request_expected();
    msg.header.next_payload = PayloadType::VendorId;
    msg.payloads = vec![Payload::VendorId(vec![7])];
    let mut bytes = msg.to_bytes().unwrap();
    bytes[16] = 99;
    let mut skip = bytes[..HEADER_LEN].to_vec();
    skip.extend_from_slice(&[43, 0, 0, 4]);
    skip.extend_from_slice(&bytes[HEADER_LEN..]);
    let len = skip.len() as u32;
    skip[24..28].copy_from_slice(&len.to_be_bytes());
    let parsed = parse_message(&skip).unwrap();
    assert_eq!(parsed, msg);
    // Non-critical unknowns still count towards the payload cap.
    let mut many = Vec::new();
    for _ in 0..MAX_PAYLOADS {
        many.extend_from_slice(&[99, 0, 0, 4]);
    }
    many.extend_from_slice(&[0, 0, 0, 4]);
    assert_eq!(
        parse_payloads(PayloadType::Unknown(99), &many),
        Err(ParseError::TooManyPayloads)
    );
    // The raw view exposes the bit.
    let raw = PayloadIter::new(first, &critical).nth(1).unwrap().unwrap();
    assert!(raw.critical);
    assert_eq!(raw.payload_type.to_string(), "99??");
}

#[test]
fn encrypted_payload_ends_the_chain() {
    let sk = Payload::Encrypted(EncryptedPayload {
        first_inner: PayloadType::IdI,
        data: vec![9; 40],
    });
    let (first, chain) = emit_payloads(&[Payload::VendorId(vec![1]), sk.clone()]).unwrap();
    assert_eq!(first, PayloadType::VendorId);
    // SK's next-payload field is the inner type, not a link.
    assert_eq!(chain[5], PayloadType::IdI.value());
    assert_eq!(
        parse_payloads(first, &chain).unwrap()[1],
        sk,
        "SK parsed as the last payload"
    );
    // Bytes after SK are garbage.
    let mut extra = chain.clone();
    extra.extend_from_slice(&[0, 0, 0, 4]);
    assert_eq!(
        parse_payloads(first, &extra),
        Err(ParseError::TrailingGarbage { extra: 4 })
    );
    // SK anywhere but last cannot be emitted.
    assert!(emit_payloads(&[sk.clone(), Payload::VendorId(vec![])]).is_err());
    // Nor inside an encrypted chain, nor parsed from one.
    assert!(inner_plaintext(std::slice::from_ref(&sk), 1).is_err());
    assert!(matches!(
        parse_inner(PayloadType::Encrypted, &chain[5..]),
        Err(ParseError::MalformedPayload { .. })
    ));
    // SKF fields checked both ways.
    let skf = |number, total| {
        Payload::EncryptedFragment(EncryptedFragmentPayload {
            first_inner: PayloadType::None,
            number,
            total,
            data: vec![1; 20],
        })
    };
    let (_, ok) = emit_payloads(&[skf(2, 3)]).unwrap();
    assert_eq!(
        parse_payloads(PayloadType::EncryptedFragment, &ok).unwrap(),
        vec![skf(2, 3)]
    );
    for (n, t) in [(0, 3), (4, 3), (1, 0)] {
        assert!(emit_payloads(&[skf(n, t)]).is_err(), "{n}/{t}");
        let mut bad = ok.clone();
        bad[4..6].copy_from_slice(&u16::to_be_bytes(n));
        bad[6..8].copy_from_slice(&u16::to_be_bytes(t));
        assert!(parse_payloads(PayloadType::EncryptedFragment, &bad).is_err());
    }
}

fn one(payload_type: PayloadType, body: &[u8]) -> Result<Vec<Payload>, ParseError> {
    let mut chain = vec![0, 0];
    chain.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    chain.extend_from_slice(body);
    parse_payloads(payload_type, &chain)
}

#[test]
fn payload_errors() {
    // Nonce bounds, both ways.
    for (len, ok) in [(15, false), (16, true), (256, true), (257, false)] {
        assert_eq!(one(PayloadType::Nonce, &vec![1; len]).is_ok(), ok, "{len}");
        assert_eq!(emit_payloads(&[Payload::Nonce(vec![1; len])]).is_ok(), ok);
    }
    // Fixed parts too short.
    for t in [
        PayloadType::Ke,
        PayloadType::IdI,
        PayloadType::IdR,
        PayloadType::Cert,
        PayloadType::CertReq,
        PayloadType::Auth,
        PayloadType::Notify,
        PayloadType::Delete,
        PayloadType::TsI,
        PayloadType::TsR,
        PayloadType::Config,
        PayloadType::EncryptedFragment,
        PayloadType::Sa,
    ] {
        assert!(
            matches!(
                one(t, &[]),
                Err(ParseError::BadPayloadLength { .. } | ParseError::MalformedPayload { .. })
            ),
            "{t}"
        );
    }
    // ID addresses of the wrong size.
    assert!(one(PayloadType::IdI, &[1, 0, 0, 0, 1, 2, 3]).is_err());
    assert!(one(PayloadType::IdI, &[5, 0, 0, 0, 1, 2, 3, 4]).is_err());
    assert!(one(PayloadType::IdI, &[1, 0, 0, 0, 1, 2, 3, 4]).is_ok());
    // Delete: count/size mismatch, wrong sizes, unknown protocol, IKE with SPIs.
    assert!(one(PayloadType::Delete, &[3, 4, 0, 2, 1, 2, 3, 4]).is_err());
    assert!(one(PayloadType::Delete, &[3, 4, 0xff, 0xff]).is_err());
    assert!(one(PayloadType::Delete, &[3, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
    assert!(one(PayloadType::Delete, &[1, 0, 0, 1]).is_err());
    assert!(one(PayloadType::Delete, &[1, 8, 0, 0]).is_err());
    assert!(one(PayloadType::Delete, &[7, 4, 0, 0]).is_err());
    assert!(one(PayloadType::Delete, &[1, 0, 0, 0]).is_ok());
    assert!(emit_payloads(&[Payload::Delete(DeletePayload::Child {
        protocol: ProtocolId::Ike,
        spis: vec![1]
    })])
    .is_err());
    // Notify SPI running past the end.
    assert!(one(PayloadType::Notify, &[3, 4, 0x40, 0x09, 1, 2]).is_err());
    assert!(one(PayloadType::Notify, &[3, 4, 0x40, 0x09, 1, 2, 3, 4]).is_ok());
    // Config attribute running past the end, or truncated header.
    assert!(one(PayloadType::Config, &[1, 0, 0, 0, 0, 1, 0, 4, 0]).is_err());
    assert!(one(PayloadType::Config, &[1, 0, 0, 0, 0, 1, 0]).is_err());
    // The R bit of a config attribute type is ignored.
    assert_eq!(
        one(PayloadType::Config, &[2, 0, 0, 0, 0x80, 1, 0, 0]).unwrap(),
        vec![Payload::Config(ConfigPayload {
            cfg_type: CfgType::Reply,
            attributes: vec![ConfigAttribute {
                attr_type: ConfigAttrType::InternalIp4Address,
                value: vec![]
            }]
        })]
    );
    // Generic length under 4 or past the buffer.
    assert!(matches!(
        parse_payloads(PayloadType::VendorId, &[0, 0, 0, 3]),
        Err(ParseError::BadPayloadLength { length: 3, .. })
    ));
    assert!(matches!(
        parse_payloads(PayloadType::VendorId, &[0, 0, 0, 9, 1]),
        Err(ParseError::BadPayloadLength { length: 9, .. })
    ));
    assert_eq!(
        parse_payloads(PayloadType::VendorId, &[0, 0]),
        Err(ParseError::Truncated)
    );
    // Repr inconsistencies refused when emitting.
    for bad in [
        Payload::IdI(Identification::Other {
            id_type: IdType::Ipv4Addr,
            data: vec![1, 2, 3, 4],
        }),
        Payload::Notify(NotifyPayload {
            protocol: ProtocolId::None,
            spi: Spi::Other(vec![1, 2, 3, 4]),
            notify_type: NotifyType::InvalidSpi,
            data: vec![],
        }),
        Payload::TsI(TsPayload {
            selectors: vec![TrafficSelector::Other {
                ts_type: TsType::Ipv4AddrRange,
                octet: 0,
                data: vec![],
            }],
        }),
        Payload::Config(ConfigPayload {
            cfg_type: CfgType::Set,
            attributes: vec![ConfigAttribute {
                attr_type: ConfigAttrType::Unknown(0x8001),
                value: vec![],
            }],
        }),
        Payload::VendorId(vec![0; 70_000]),
    ] {
        assert!(
            emit_payloads(std::slice::from_ref(&bad)).is_err(),
            "{bad:?}"
        );
    }
    assert!(NotifyPayload::cookie(vec![]).is_err());
    assert!(NotifyPayload::cookie(vec![0; 65]).is_err());
}

/// An SA payload body with `proposals` ESP proposals of `transforms` transforms of
/// `attrs` extra attributes each, written by hand (so counts above the caps can be made).
fn raw_sa(proposals: usize, transforms: usize, attrs: usize) -> Vec<u8> {
    let mut sa = Vec::new();
    for p in 0..proposals {
        let mut body = vec![(p + 1) as u8, 3, 4, transforms as u8, 0, 0, 0x10, 0];
        for t in 0..transforms {
            let mut tb = vec![1, 0, 0, 12];
            for a in 0..attrs {
                tb.extend_from_slice(&(0x8000u16 | (20 + a as u16)).to_be_bytes());
                tb.extend_from_slice(&[0, 1]);
            }
            body.push(if t + 1 == transforms { 0 } else { 3 });
            body.push(0);
            body.extend_from_slice(&((tb.len() + 4) as u16).to_be_bytes());
            body.extend_from_slice(&tb);
        }
        sa.push(if p + 1 == proposals { 0 } else { 2 });
        sa.push(0);
        sa.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        sa.extend_from_slice(&body);
    }
    sa
}

#[test]
fn limits() {
    // Payloads per chain.
    let build = |n: usize| Message {
        header: sample_message().header,
        payloads: vec![Payload::VendorId(vec![]); n],
    };
    let ok = build(MAX_PAYLOADS).to_bytes().unwrap();
    assert_eq!(parse_message(&ok).unwrap().payloads.len(), MAX_PAYLOADS);
    let too_many = build(MAX_PAYLOADS + 1).to_bytes().unwrap();
    assert_eq!(parse_message(&too_many), Err(ParseError::TooManyPayloads));
    let (first, inner) = inner_plaintext(&build(MAX_PAYLOADS + 1).payloads, 1).unwrap();
    assert_eq!(
        parse_decrypted(first, &inner),
        Err(ParseError::TooManyPayloads)
    );
    // Proposals, transforms, attributes.
    for (p, t, a, ok) in [
        (MAX_PROPOSALS, 1, 0, true),
        (MAX_PROPOSALS + 1, 1, 0, false),
        (1, MAX_TRANSFORMS, 0, true),
        (1, MAX_TRANSFORMS + 1, 0, false),
        (1, 1, MAX_TRANSFORM_ATTRIBUTES, true),
        (1, 1, MAX_TRANSFORM_ATTRIBUTES + 1, false),
    ] {
        let r = SaPayload::parse(&raw_sa(p, t, a));
        assert_eq!(r.is_ok(), ok, "{p} {t} {a}: {r:?}");
        if let Ok(sa) = r {
            // What parses re-emits identically.
            let mut out = Vec::new();
            sa.emit_body(&mut out).unwrap();
            assert_eq!(out, raw_sa(p, t, a));
        }
    }
    // Emission refuses what parsing would refuse.
    let big = SaPayload {
        proposals: vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::Esp,
                spi: Spi::Child(1),
                transforms: vec![Transform::new(TransformId::Esn(EsnId::NoEsn))],
            };
            MAX_PROPOSALS + 1
        ],
    };
    assert!(big.emit_body(&mut Vec::new()).is_err());
    // Traffic selectors.
    let sel = AddrSelector::any(AddressRange::V4 {
        start: Ipv4Addr::UNSPECIFIED,
        end: Ipv4Addr::BROADCAST,
    });
    let ts = TsPayload::new(vec![sel; MAX_TRAFFIC_SELECTORS]);
    let mut body = Vec::new();
    ts.emit_body(&mut body).unwrap();
    assert_eq!(TsPayload::parse(&body, PayloadType::TsI).unwrap(), ts);
    assert!(TsPayload::new(vec![sel; MAX_TRAFFIC_SELECTORS + 1])
        .emit_body(&mut Vec::new())
        .is_err());
    let mut over = body.clone();
    over[0] += 1;
    over.extend_from_slice(&body[4..20]);
    assert!(TsPayload::parse(&over, PayloadType::TsI).is_err());
    // Config attributes.
    let cp = |n| {
        Payload::Config(ConfigPayload {
            cfg_type: CfgType::Request,
            attributes: vec![
                ConfigAttribute {
                    attr_type: ConfigAttrType::InternalIp4Dns,
                    value: vec![],
                };
                n
            ],
        })
    };
    let (_, ok) = emit_payloads(&[cp(MAX_CONFIG_ATTRIBUTES)]).unwrap();
    assert!(parse_payloads(PayloadType::Config, &ok).is_ok());
    assert!(emit_payloads(&[cp(MAX_CONFIG_ATTRIBUTES + 1)]).is_err());
    let mut over = ok.clone();
    over.extend_from_slice(&[0, 3, 0, 0]);
    let len = over.len() as u16;
    over[2..4].copy_from_slice(&len.to_be_bytes());
    assert!(parse_payloads(PayloadType::Config, &over).is_err());
    // Counts that lie about the data are refused without allocating for them.
    assert!(TsPayload::parse(&[255, 0, 0, 0], PayloadType::TsI).is_err());
    assert!(one(PayloadType::Delete, &[3, 4, 0xff, 0xff]).is_err());
    let mut lying = raw_sa(1, 1, 0);
    lying[7] = 255;
    assert!(SaPayload::parse(&lying).is_err());
}

#[test]
fn sa_substructure_errors() {
    let good = raw_sa(2, 2, 1);
    assert!(SaPayload::parse(&good).is_ok());
    let malformed = |b: &[u8]| {
        matches!(
            SaPayload::parse(b),
            Err(ParseError::MalformedPayload {
                payload_type: PayloadType::Sa,
                ..
            } | ParseError::BadPayloadLength {
                payload_type: PayloadType::Sa,
                ..
            })
        )
    };
    // Bad Last Substruc of a proposal (offset 0) and of a transform (offset 12).
    let mut b = good.clone();
    b[0] = 3;
    assert!(malformed(&b));
    let mut b = good.clone();
    b[12] = 2;
    assert!(malformed(&b));
    // "More" proposals that are not there.
    let first_len = u16::from_be_bytes([good[2], good[3]]) as usize;
    assert!(malformed(&good[..first_len]));
    // Proposal says fewer transforms than present.
    let mut b = good.clone();
    b[7] = 1;
    assert!(malformed(&b));
    // SPI size wrong for the protocol: ESP with 8, IKE with 4.
    let mut b = raw_sa(1, 1, 0);
    b[6] = 8;
    assert!(malformed(&b));
    let mut b = raw_sa(1, 1, 0);
    b[5] = 1;
    assert!(malformed(&b));
    // No transforms; empty SA.
    let mut b = raw_sa(1, 1, 0);
    b[7] = 0;
    assert!(malformed(&b));
    assert!(malformed(&[]));
    // Key Length: in TLV form, or twice.
    let t = |attrs: &[u8]| {
        let mut tb = vec![1, 0, 0, 12];
        tb.extend_from_slice(attrs);
        let mut p = vec![1, 1, 0, 1];
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&((tb.len() + 4) as u16).to_be_bytes());
        p.extend_from_slice(&tb);
        let mut sa = vec![0, 0];
        sa.extend_from_slice(&((p.len() + 4) as u16).to_be_bytes());
        sa.extend_from_slice(&p);
        SaPayload::parse(&sa)
    };
    assert_eq!(
        t(&[0x80, 14, 0, 128]).unwrap().proposals[0].transforms[0].key_length,
        Some(128)
    );
    assert!(t(&[0, 14, 0, 2, 0, 128]).is_err());
    assert!(t(&[0x80, 14, 0, 128, 0x80, 14, 1, 0]).is_err());
    assert!(t(&[0x80, 14, 0]).is_err());
    assert!(t(&[0, 20, 0, 9, 1]).is_err());
    // Emission: Other with a known type; Key Length among the attributes; no transforms.
    let emit = |t: Transform| {
        SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::Ike,
                spi: Spi::None,
                transforms: vec![t],
            }],
        }
        .emit_body(&mut Vec::new())
    };
    assert!(emit(Transform::new(TransformId::Other {
        transform_type: 1,
        id: 12
    }))
    .is_err());
    assert!(emit(Transform {
        id: TransformId::Prf(PrfId::HmacSha1),
        key_length: None,
        attributes: vec![TransformAttribute {
            attr_type: TransformAttrType::KeyLength,
            value: AttrValue::Tv(1)
        }],
    })
    .is_err());
    assert!(SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::Esp,
            spi: Spi::None,
            transforms: vec![Transform::new(TransformId::Esn(EsnId::NoEsn))],
        }]
    }
    .emit_body(&mut Vec::new())
    .is_err());
    assert!(SaPayload { proposals: vec![] }
        .emit_body(&mut Vec::new())
        .is_err());
}

/// Every message the tests know, as bytes.
pub(super) fn all_messages() -> Vec<Vec<u8>> {
    let mut v = vec![h(&init_request_hex()), sample_message().to_bytes().unwrap()];
    for file in [
        include_str!("../testdata/strongswan_psk_cbc.txt"),
        include_str!("../testdata/strongswan_rsapss_gcm.txt"),
        include_str!("../testdata/strongswan_default.txt"),
    ] {
        let d = testdata(file);
        for k in ["init_req", "init_resp", "auth_req", "auth_resp"] {
            v.push(d[k].clone());
        }
    }
    v
}

#[test]
fn every_truncation_fails_without_panicking() {
    for bytes in all_messages() {
        assert!(parse_message(&bytes).is_ok());
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            assert!(parse_message(cut).is_err(), "length {len}");
            let _ = Protected::locate(cut, 16, 16);
            let _ = Header::parse_datagram(cut);
            // With the header length fixed up to match, the chain is cut short.
            if len >= HEADER_LEN {
                let mut fixed = cut.to_vec();
                fixed[24..28].copy_from_slice(&(len as u32).to_be_bytes());
                assert!(parse_message(&fixed).is_err(), "fixed-up length {len}");
                let _ = Protected::locate(&fixed, 8, 16);
            }
            // Inner chains too.
            let body = cut.get(HEADER_LEN..).unwrap_or(&[]);
            let first = PayloadType::from(bytes[16]);
            if first != PayloadType::Encrypted {
                assert!(parse_inner(first, body).is_err() || body.is_empty());
            }
            let _ = parse_decrypted(first, body);
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let seeds = all_messages();
    let mut rng = StdRng::seed_from_u64(0x2072_96ac);
    let mut parsed_ok = 0usize;
    for round in 0..20_000 {
        let mut m = seeds[round % seeds.len()].clone();
        for _ in 0..rng.gen_range(1..=4) {
            match rng.gen_range(0..10) {
                0 if !m.is_empty() => {
                    let at = rng.gen_range(0..m.len());
                    m.truncate(at);
                }
                1 => {
                    let extra = rng.gen_range(1..8);
                    m.extend((0..extra).map(|_| rng.gen::<u8>()));
                }
                2 if m.len() >= HEADER_LEN => {
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
            let again = msg.to_bytes().expect("a parsed message re-emits");
            assert_eq!(parse_message(&again).unwrap(), msg);
        }
        let body = m.get(HEADER_LEN..).unwrap_or(&[]);
        let first = PayloadType::from(m.get(16).copied().unwrap_or(33));
        if let Ok(p) = parse_decrypted(first, body) {
            let (f, plain) = inner_plaintext(&p, 1).unwrap();
            assert_eq!(parse_decrypted(f, &plain).unwrap(), p);
        }
        let _ = Protected::locate(&m, 16, 12);
        for raw in PayloadIter::new(first, body).flatten() {
            let _ = raw.parse();
        }
    }
    assert!(parsed_ok > 1000, "{parsed_ok}");
}

#[test]
fn names() {
    assert_eq!(ExchangeType::IkeSaInit.to_string(), "IKE_SA_INIT");
    assert_eq!(ExchangeType::from(36), ExchangeType::CreateChildSa);
    assert!(ExchangeType::IkeSaInit.is_cleartext());
    assert!(!ExchangeType::Informational.is_cleartext());
    assert_eq!(PayloadType::EncryptedFragment.value(), 53);
    assert_eq!(
        NotifyType::from(16430).to_string(),
        "IKEV2_FRAGMENTATION_SUPPORTED"
    );
    assert_eq!(NotifyType::SignatureHashAlgorithms.value(), 16431);
    assert_eq!(NotifyType::from(38), NotifyType::TsUnacceptable);
    assert!(NotifyType::AuthenticationFailed.is_error());
    assert!(!NotifyType::Cookie.is_error());
    assert_eq!(NotifyType::from(60000).to_string(), "60000??");
    assert_eq!(DhGroup::from(31).to_string(), "CURVE_25519");
    assert_eq!(AuthMethod::from(14), AuthMethod::DigitalSignature);
    assert_eq!(
        TransformId::from_raw(3, 12),
        TransformId::Integ(IntegId::HmacSha2_256_128)
    );
    assert_eq!(
        TransformId::from_raw(9, 1),
        TransformId::Other {
            transform_type: 9,
            id: 1
        }
    );
    assert_eq!(TransformId::from_raw(9, 1).id(), 1);
}
