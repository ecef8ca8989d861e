//! SK framing (padding, layout, locate) and RFC 7383 fragmentation and reassembly.

use super::*;

fn header() -> Header {
    Header {
        spi_i: SPI_I,
        spi_r: SPI_R,
        next_payload: PayloadType::None,
        exchange_type: ExchangeType::IkeAuth,
        flags: Flags::INITIATOR,
        message_id: 1,
    }
}

#[test]
fn padding() {
    for block in [1usize, 4, 8, 16, 256] {
        for len in 0..40 {
            let chain = vec![7u8; len];
            let p = pad_plaintext(&chain, block).unwrap();
            assert_eq!(p.len() % block, 0, "{block} {len}");
            // The fewest padding octets.
            assert!(p.len() - len - 1 < block);
            assert_eq!(*p.last().unwrap() as usize, p.len() - len - 1);
            assert_eq!(strip_padding(&p).unwrap(), &chain[..]);
        }
    }
    for bad in [0, 257] {
        assert!(pad_plaintext(&[], bad).is_err());
    }
    // Any padding length and contents that fit are accepted.
    assert_eq!(strip_padding(&[1, 2, 0xff, 0xff, 2]).unwrap(), &[1, 2]);
    assert_eq!(strip_padding(&[0]).unwrap(), &[] as &[u8]);
    assert!(strip_padding(&[1, 2, 3]).is_err());
    assert!(strip_padding(&[]).is_err());
    // An empty inner chain (e.g. an empty INFORMATIONAL, a liveness check).
    let (first, p) = inner_plaintext(&[], 16).unwrap();
    assert_eq!(first, PayloadType::None);
    assert_eq!(p, {
        let mut v = vec![0; 15];
        v.push(15);
        v
    });
    assert_eq!(parse_decrypted(first, &p).unwrap(), vec![]);
    // Garbage between the chain and the padding is refused.
    let (first, mut p) = inner_plaintext(&[Payload::VendorId(vec![1])], 1).unwrap();
    p.insert(p.len() - 1, 0);
    assert!(parse_decrypted(first, &p).is_err());
}

/// "Encrypts" with the identity function (the layout is what is under test).
fn seal(frame: &mut SealFrame, plaintext: &[u8], iv: u8, icv: u8) {
    let parts = frame.parts();
    assert_eq!(parts.ciphertext.len(), plaintext.len());
    parts.iv.fill(iv);
    parts.ciphertext.copy_from_slice(plaintext);
    parts.icv.fill(icv);
}

#[test]
fn seal_frame_and_locate_agree() {
    let inner = vec![
        Payload::IdI(Identification::Fqdn(b"west".to_vec())),
        Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: vec![3; 32],
        }),
    ];
    for params in [
        SkParams {
            iv_len: 16,
            icv_len: 16,
            block_size: 16,
        },
        SkParams {
            iv_len: 8,
            icv_len: 16,
            block_size: 1,
        },
        SkParams {
            iv_len: 8,
            icv_len: 12,
            block_size: 8,
        },
    ] {
        let (mut frame, plaintext) = SealFrame::for_payloads(&header(), &inner, &params).unwrap();
        seal(&mut frame, &plaintext, 0x11, 0);
        {
            let (covered, icv) = frame.split_for_icv();
            assert_eq!(
                covered.len() + icv.len(),
                frame_len(&params, plaintext.len())
            );
            icv.fill(0x22);
        }
        let bytes = frame.into_bytes();
        // A regular message: the header announces SK, the SK payload covers the rest.
        let msg = parse_message(&bytes).unwrap();
        assert_eq!(msg.header.next_payload, PayloadType::Encrypted);
        assert_eq!(msg.payloads.len(), 1);
        let p = Protected::locate(&bytes, params.iv_len, params.icv_len).unwrap();
        assert_eq!(p.header.message_id, 1);
        assert_eq!(p.header.next_payload, PayloadType::Encrypted);
        assert!(p.cleartext.is_empty());
        assert_eq!(p.first_inner, PayloadType::IdI);
        assert_eq!(p.fragment, None);
        assert_eq!(p.aad, &bytes[..HEADER_LEN + 4]);
        assert_eq!(p.iv, &vec![0x11; params.iv_len][..]);
        assert_eq!(p.ciphertext, &plaintext[..]);
        assert_eq!(p.icv, &vec![0x22; params.icv_len][..]);
        assert_eq!(p.integrity_covered, &bytes[..bytes.len() - params.icv_len]);
        assert_eq!(parse_decrypted(p.first_inner, p.ciphertext).unwrap(), inner);
        // IV and ICV longer than the payload.
        let body = bytes.len() - HEADER_LEN - 4;
        assert!(Protected::locate(&bytes, body + 1, 0).is_err());
        assert!(Protected::locate(&bytes, 0, body + 1).is_err());
        assert!(Protected::locate(&bytes, body - params.icv_len, params.icv_len).is_ok());
    }
    // Cleartext payloads before SK are returned; a message without SK is not protected.
    let mut msg = parse_message(&init_request_hex_bytes()).unwrap();
    assert_eq!(
        Protected::locate(&init_request_hex_bytes(), 0, 0),
        Err(ParseError::NotEncrypted)
    );
    msg.payloads.truncate(1);
    msg.payloads.push(Payload::Encrypted(EncryptedPayload {
        first_inner: PayloadType::None,
        data: vec![1; 24],
    }));
    let bytes = msg.to_bytes().unwrap();
    let p = Protected::locate(&bytes, 8, 8).unwrap();
    assert_eq!(p.cleartext, msg.payloads[..1]);
    assert_eq!(p.ciphertext.len(), 8);
    assert_eq!(p.aad.len(), bytes.len() - 24);
    // SKF frames carry number and total inside the AAD.
    let f = FragmentInfo {
        number: 2,
        total: 3,
    };
    let frame = SealFrame::new(&header(), PayloadType::None, Some(f), 8, 5, 16).unwrap();
    let bytes = frame.bytes();
    let p = Protected::locate(bytes, 8, 16).unwrap();
    assert_eq!(p.fragment, Some(f));
    assert_eq!(p.header.next_payload, PayloadType::EncryptedFragment);
    assert_eq!(p.aad.len(), HEADER_LEN + 8);
    assert_eq!(&p.aad[HEADER_LEN + 4..], &[0, 2, 0, 3]);
    assert_eq!(p.ciphertext.len(), 5);
    assert!(SealFrame::new(
        &header(),
        PayloadType::None,
        Some(FragmentInfo {
            number: 4,
            total: 3
        }),
        8,
        5,
        16
    )
    .is_err());
    assert!(SealFrame::new(&header(), PayloadType::None, None, 8, 70_000, 16).is_err());
}

fn frame_len(params: &SkParams, ct: usize) -> usize {
    HEADER_LEN + 4 + params.iv_len + ct + params.icv_len
}

fn init_request_hex_bytes() -> Vec<u8> {
    h(&init_request_hex())
}

/// A large IKE_AUTH-like inner chain.
fn big_inner() -> Vec<Payload> {
    let mut p = sample_payloads();
    p.pop(); // the SK payload
    p.push(Payload::Cert(CertPayload {
        encoding: CertEncoding::X509Signature,
        data: (0..3000u32).map(|i| i as u8).collect(),
    }));
    p
}

/// Fragments `inner`, seals each piece, locates and strips it again: the received
/// (info, next payload, content) of each fragment.
fn send_fragments(
    inner: &[Payload],
    max: usize,
    params: &SkParams,
) -> Vec<(FragmentInfo, PayloadType, Vec<u8>)> {
    let (first, chain) = emit_inner(inner).unwrap();
    let pieces = fragment_plaintexts(first, &chain, max, params, MAX_FRAGMENTS).unwrap();
    let n = pieces.len();
    pieces
        .iter()
        .map(|piece| {
            let mut frame = piece.frame(&header(), params).unwrap();
            seal(&mut frame, &piece.plaintext, piece.info.number as u8, 0xff);
            let bytes = frame.into_bytes();
            assert!(bytes.len() <= max, "{} > {max}", bytes.len());
            if (piece.info.number as usize) < n {
                // Full fragments use the room up to one block.
                assert!(bytes.len() + params.block_size > max, "{}", bytes.len());
            }
            let p = Protected::locate(&bytes, params.iv_len, params.icv_len).unwrap();
            assert_eq!(p.ciphertext.len() % params.block_size, 0);
            (
                p.fragment.unwrap(),
                p.first_inner,
                strip_padding(p.ciphertext).unwrap().to_vec(),
            )
        })
        .collect()
}

#[test]
fn fragmentation_round_trips() {
    let inner = big_inner();
    for (max, params) in [
        (
            576,
            SkParams {
                iv_len: 16,
                icv_len: 16,
                block_size: 16,
            },
        ),
        (
            1280,
            SkParams {
                iv_len: 8,
                icv_len: 16,
                block_size: 1,
            },
        ),
        (
            200,
            SkParams {
                iv_len: 8,
                icv_len: 12,
                block_size: 8,
            },
        ),
    ] {
        let frags = send_fragments(&inner, max, &params);
        assert!(frags.len() > 1);
        assert!(frags.iter().all(|f| f.0.total as usize == frags.len()));
        assert_eq!(frags[0].1, inner[0].payload_type());
        assert!(frags[1..].iter().all(|f| f.1 == PayloadType::None));
        // Reassembled in reverse order.
        let mut r = Reassembly::new();
        let mut done = None;
        for (i, (info, next, content)) in frags.iter().rev().enumerate() {
            match r.add(*info, *next, content).unwrap() {
                FragmentStatus::Incomplete { received, total } => {
                    assert_eq!(received as usize, i + 1);
                    assert_eq!(total as usize, frags.len());
                }
                FragmentStatus::Complete(m) => done = Some(m),
                FragmentStatus::Duplicate => panic!("duplicate"),
            }
        }
        let m = done.expect("complete");
        assert!(r.is_empty());
        assert_eq!(parse_inner(m.first_inner, &m.chain).unwrap(), inner);
    }
    // A small message is one fragment.
    let small = vec![Payload::VendorId(vec![1])];
    let frags = send_fragments(
        &small,
        1280,
        &SkParams {
            iv_len: 16,
            icv_len: 16,
            block_size: 16,
        },
    );
    assert_eq!(frags.len(), 1);
    assert_eq!(
        frags[0].0,
        FragmentInfo {
            number: 1,
            total: 1
        }
    );
    // Limits: no room at all, too many fragments.
    let params = SkParams {
        iv_len: 16,
        icv_len: 16,
        block_size: 16,
    };
    let (first, chain) = emit_inner(&inner).unwrap();
    assert!(fragment_plaintexts(first, &chain, 80, &params, MAX_FRAGMENTS).is_err());
    assert!(fragment_plaintexts(first, &chain, 96, &params, MAX_FRAGMENTS).is_err());
    assert_eq!(
        fragment_plaintexts(first, &chain, 576, &params, 3),
        Err(EmitError::TooLong("fragment count"))
    );
    let bad = SkParams {
        block_size: 0,
        ..params
    };
    assert!(fragment_plaintexts(first, &chain, 576, &bad, MAX_FRAGMENTS).is_err());
}

fn info(number: u16, total: u16) -> FragmentInfo {
    FragmentInfo { number, total }
}

#[test]
fn reassembly_out_of_order_and_duplicates() {
    let mut r = Reassembly::new();
    assert_eq!(r.total(), 0);
    assert_eq!(
        r.add(info(3, 3), PayloadType::None, b"cc").unwrap(),
        FragmentStatus::Incomplete {
            received: 1,
            total: 3
        }
    );
    assert_eq!(
        r.add(info(3, 3), PayloadType::None, b"cc").unwrap(),
        FragmentStatus::Duplicate
    );
    // The first inner type comes from fragment 1, whenever it arrives.
    assert_eq!(
        r.add(info(1, 3), PayloadType::IdI, b"aa").unwrap(),
        FragmentStatus::Incomplete {
            received: 2,
            total: 3
        }
    );
    assert_eq!(r.len(), 4);
    assert_eq!(
        r.add(info(1, 3), PayloadType::IdI, b"aa").unwrap(),
        FragmentStatus::Duplicate
    );
    assert_eq!(
        r.add(info(2, 3), PayloadType::Unknown(9), b"bb").unwrap(),
        FragmentStatus::Complete(Reassembled {
            first_inner: PayloadType::IdI,
            chain: b"aabbcc".to_vec()
        })
    );
    // Afresh after completion.
    assert!(r.is_empty());
    assert_eq!(r.total(), 0);
}

#[test]
fn reassembly_inconsistent_totals() {
    let mut r = Reassembly::new();
    r.add(info(1, 3), PayloadType::IdI, b"a1").unwrap();
    r.add(info(2, 3), PayloadType::None, b"a2").unwrap();
    // Smaller total: a stale fragment, dropped; what was held stays.
    assert_eq!(
        r.add(info(1, 2), PayloadType::IdI, b"zz"),
        Err(FragmentError::StaleTotal {
            total: 2,
            current: 3
        })
    );
    assert_eq!(r.received(), 2);
    // Larger total: the sender re-fragmented smaller; start again with this one.
    assert_eq!(
        r.add(info(4, 4), PayloadType::None, b"b4").unwrap(),
        FragmentStatus::Incomplete {
            received: 1,
            total: 4
        }
    );
    for (n, c) in [(2, b"b2"), (3, b"b3")] {
        r.add(info(n, 4), PayloadType::None, c).unwrap();
    }
    let FragmentStatus::Complete(m) = r.add(info(1, 4), PayloadType::Sa, b"b1").unwrap() else {
        panic!("not complete")
    };
    assert_eq!(m.chain, b"b1b2b3b4");
    assert_eq!(m.first_inner, PayloadType::Sa);
    // Invalid numbers are dropped and do not disturb the reassembly.
    r.add(info(1, 2), PayloadType::IdI, b"x").unwrap();
    for (n, t) in [(0, 2), (3, 2), (1, 0), (0, 0)] {
        assert_eq!(
            r.add(info(n, t), PayloadType::None, b"y"),
            Err(FragmentError::InvalidNumber {
                number: n,
                total: t
            })
        );
    }
    assert_eq!(r.received(), 1);
    assert!(r.add(info(2, 2), PayloadType::None, b"z").is_ok());
}

#[test]
fn reassembly_limits() {
    // Too many fragments: refused, and what was held is discarded.
    let mut r = Reassembly::with_limits(4, 1000);
    r.add(info(1, 4), PayloadType::IdI, b"a").unwrap();
    assert_eq!(
        r.add(info(1, 5), PayloadType::IdI, b"a"),
        Err(FragmentError::TooManyFragments { total: 5, max: 4 })
    );
    assert!(r.is_empty());
    let mut d = Reassembly::new();
    assert_eq!(
        d.add(info(1, MAX_FRAGMENTS + 1), PayloadType::IdI, b"a"),
        Err(FragmentError::TooManyFragments {
            total: MAX_FRAGMENTS + 1,
            max: MAX_FRAGMENTS
        })
    );
    assert!(d
        .add(info(MAX_FRAGMENTS, MAX_FRAGMENTS), PayloadType::None, b"a")
        .is_ok());
    // Oversized: the fragment that crosses the limit discards everything.
    let mut r = Reassembly::with_limits(8, 10);
    r.add(info(1, 3), PayloadType::IdI, &[0; 6]).unwrap();
    assert_eq!(
        r.add(info(2, 3), PayloadType::None, &[0; 5]),
        Err(FragmentError::TooLarge { max: 10 })
    );
    assert!(r.is_empty());
    assert_eq!(r.len(), 0);
    // Exactly at the limit is fine.
    r.add(info(1, 2), PayloadType::IdI, &[1; 6]).unwrap();
    assert!(matches!(
        r.add(info(2, 2), PayloadType::None, &[2; 4]).unwrap(),
        FragmentStatus::Complete(_)
    ));
    // Default limits hold a full 64 KiB message and no more.
    let mut r = Reassembly::new();
    let chunk = vec![0u8; MAX_REASSEMBLED_LEN / MAX_FRAGMENTS as usize];
    for n in 1..MAX_FRAGMENTS {
        r.add(info(n, MAX_FRAGMENTS), PayloadType::None, &chunk)
            .unwrap();
    }
    let mut last = chunk.clone();
    last.push(0);
    assert!(r
        .add(info(MAX_FRAGMENTS, MAX_FRAGMENTS), PayloadType::None, &last)
        .is_err());
    assert!(r.is_empty());
    assert_eq!(
        FragmentError::TooLarge { max: 10 }.to_string(),
        "fragmented message larger than 10 octets"
    );
}
