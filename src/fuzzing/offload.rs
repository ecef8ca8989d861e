//! The TUN offload code ([`crate::wire::offload`]): splitting what the kernel hands the TUN
//! reader (a `virtio_net_hdr`, then a packet or a TCP super-packet) and coalescing what the
//! TUN writer delivers (GRO).
//!
//! First byte even: `virtio_net_hdr` (10 bytes) + packet (with bit 1 set, grown to 60 KB or
//! more) → [`split`]; every segment of a TCP
//! super-packet must be a well-formed IPv4/TCP packet (total length = its size, valid IP and
//! TCP checksums), together carrying exactly the super-packet's payload; then the segments
//! go through the coalescer. First byte odd: a list of packets (u16 length, a flag byte
//! whose bit 0 sets the IPv4 total length to the packet's size, bytes) for the coalescer.
//! Coalescing must keep every flow's packets in order and intact: the super-packets it
//! emits split back into exactly the payloads that went in.
//!
//! The datapath's allocation-free forms are held to the same: [`split_into`] must cut a packet
//! exactly as [`split`] does (or refuse it for the same reason, or find no room only when the
//! segments do not fit its buffers), and a [`GroPlan`]'s writes must keep every flow intact as
//! the coalescer's do.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::klips::PacketBuf;
use crate::wire::ipv4::{self, proto};
use crate::wire::offload::{
    split, split_into, Coalescer, GroPlan, GroWrite, OffloadError, SplitError, VnetHdr, GSO_NONE,
    GSO_TCPV4, MAX_SUPER, VNET_HDR_LEN,
};

/// Buffers [`split_into`] cuts into, as many as a TUN reader's pool has at most.
const POOL_LEN: usize = 64;

thread_local! {
    /// Reused from input to input (64 buffers of 64 KiB).
    static POOL: RefCell<Vec<PacketBuf>> =
        RefCell::new((0..POOL_LEN).map(|_| PacketBuf::new(MAX_SUPER)).collect());
}

/// Harness of the `tun_offload` target.
pub fn tun_offload(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let packets = if mode & 1 == 0 {
        let Some(h) = VnetHdr::parse(rest) else {
            return;
        };
        let mut pkt = rest[VNET_HDR_LEN..].to_vec();
        if mode & 2 != 0 {
            // Super-packets as large as a TUN read can be (and larger), which the fuzzer's
            // input length would not reach.
            pkt.resize(60_000 + usize::from(mode) * 40, 0xa5);
        }
        let pkt = &pkt[..];
        let mut out = Vec::new();
        let r = split(&h, pkt, &mut out);
        split_into_agrees(&h, pkt, r.map(|()| &out[..]));
        if r.is_err() {
            assert!(out.is_empty(), "a refused packet yields nothing");
            return;
        }
        if h.gso_type & 0x7f == GSO_TCPV4 {
            check_segments(pkt, &out);
        } else {
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].len(), pkt.len());
        }
        out
    } else {
        let mut v = Vec::new();
        let mut r = rest;
        while let [a, b, flags, tail @ ..] = r {
            let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
            let mut p = tail[..n].to_vec();
            if flags & 1 != 0 && p.len() >= 20 {
                let len = p.len() as u16;
                p[2..4].copy_from_slice(&len.to_be_bytes());
            }
            v.push(p);
            r = &tail[n..];
        }
        v
    };
    coalesce(packets);
}

/// [`split_into`] into the pool gives what [`split`] gave (`want`): the same segments, the
/// same refusal, or no room — only when the segments are more than the buffers or larger
/// than one.
fn split_into_agrees(h: &VnetHdr, pkt: &[u8], want: Result<&[Vec<u8>], OffloadError>) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        match (split_into(h, pkt, &mut pool), want) {
            (Ok(n), Ok(segs)) => {
                assert_eq!(n, segs.len(), "split_into cuts as many segments as split");
                for (i, (b, s)) in pool.iter().zip(segs).enumerate() {
                    assert_eq!(b.bytes(), &s[..], "segment {i} of split_into");
                }
            }
            (Err(SplitError::NoRoom), Ok(segs)) => assert!(
                segs.len() > POOL_LEN || segs.iter().any(|s| s.len() > MAX_SUPER),
                "split_into found no room for {} segments of at most {} bytes",
                segs.len(),
                segs.iter().map(Vec::len).max().unwrap_or(0)
            ),
            // Not a super-packet: the copy that does not fit comes before the checksum.
            (Err(SplitError::NoRoom), Err(_)) => assert!(
                h.gso_type & 0x7f == GSO_NONE && pkt.len() > MAX_SUPER,
                "split_into: no room where split refused the packet"
            ),
            (Err(SplitError::Offload(e)), Err(w)) => {
                assert_eq!(e, w, "split_into refuses for split's reason")
            }
            (got, want) => panic!(
                "split_into {got:?}, split {:?}",
                want.map(|segs| segs.len())
            ),
        }
    });
}

/// IPv4/TCP facts of a packet: (flow key, TCP payload), if it is one.
fn tcp4(p: &[u8]) -> Option<([u8; 12], &[u8])> {
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != proto::TCP {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl + 20 {
        return None;
    }
    let hl = ihl + usize::from(p[ihl + 12] >> 4) * 4;
    if hl < ihl + 20 || hl > p.len() {
        return None;
    }
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&p[12..20]);
    key[8..].copy_from_slice(&p[ihl..ihl + 4]);
    Some((key, &p[hl..]))
}

/// Every segment is a valid IPv4/TCP packet; together they carry the super-packet's payload.
fn check_segments(pkt: &[u8], segs: &[Vec<u8>]) {
    let mut payload = Vec::new();
    for s in segs {
        assert!(
            s.len() <= usize::from(u16::MAX),
            "segment of {} bytes",
            s.len()
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([s[2], s[3]])),
            s.len(),
            "segment total length"
        );
        let ihl = usize::from(s[0] & 0x0f) * 4;
        assert_eq!(ipv4::checksum(&s[..ihl]), 0, "segment IP checksum");
        let mut acc = ipv4::sum(&s[12..20], 0);
        acc = acc.wrapping_add(u32::from(proto::TCP));
        acc = acc.wrapping_add((s.len() - ihl) as u32);
        acc = ipv4::sum(&s[ihl..], acc);
        assert_eq!(ipv4::fold(acc), 0xffff, "segment TCP checksum");
        let (_, p) = tcp4(s).expect("segment is TCP/IPv4");
        payload.extend_from_slice(p);
    }
    let (_, whole) = tcp4(pkt).expect("a split super-packet is TCP/IPv4");
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let hl = pkt.len() - whole.len();
    let end = if total >= hl && total <= pkt.len() {
        total
    } else {
        pkt.len()
    };
    assert_eq!(
        payload,
        pkt[hl..end],
        "segments carry the super-packet's payload"
    );
}

/// Per flow (TCP addresses and ports; everything else is one flow of whole packets): the
/// payloads in order.
fn flows(packets: &[Vec<u8>]) -> BTreeMap<Option<[u8; 12]>, Vec<Vec<u8>>> {
    let mut m: BTreeMap<_, Vec<Vec<u8>>> = BTreeMap::new();
    for p in packets {
        match tcp4(p) {
            Some((k, pl)) => m.entry(Some(k)).or_default().push(pl.to_vec()),
            None => m.entry(None).or_default().push(p.clone()),
        }
    }
    m
}

fn coalesce(packets: Vec<Vec<u8>>) {
    gro_plan(&packets);
    let before = flows(&packets);
    let mut c = Coalescer::new();
    for p in packets {
        c.push(p);
    }
    let mut after = Vec::new();
    c.finish(|h, p| {
        if h.gso_type == GSO_NONE {
            after.push(p);
            return;
        }
        assert_eq!(h.gso_type, GSO_TCPV4);
        assert!(
            p.len() <= usize::from(u16::MAX),
            "super-packet of {} bytes",
            p.len()
        );
        let mut segs = Vec::new();
        split(&h, &p, &mut segs).expect("a coalesced super-packet splits");
        after.extend(segs);
    });
    assert_eq!(
        flows(&after),
        before,
        "coalescing keeps every flow's payloads in order"
    );
}

/// The datapath's zero-copy coalescing ([`GroPlan`]): what it writes (super-packets gathered
/// from a header and the members' payloads, the rest as is) keeps every flow's payloads in
/// order, and each super-packet splits back.
fn gro_plan(packets: &[Vec<u8>]) {
    let mut plan = GroPlan::new();
    for (i, p) in packets.iter().enumerate() {
        plan.push(i, p);
    }
    let mut after = Vec::new();
    plan.finish(
        |i| &packets[i][..],
        |w| match w {
            GroWrite::Plain(i) => after.push(packets[i].clone()),
            GroWrite::Super {
                vnet,
                header,
                members,
            } => {
                assert_eq!(vnet.gso_type, GSO_TCPV4);
                let mut p = header.to_vec();
                for (i, off) in members {
                    p.extend_from_slice(&packets[i][off..]);
                }
                assert!(
                    p.len() <= MAX_SUPER,
                    "planned super-packet of {} bytes",
                    p.len()
                );
                let mut segs = Vec::new();
                split(&vnet, &p, &mut segs).expect("a planned super-packet splits");
                after.extend(segs);
            }
        },
    );
    assert_eq!(
        flows(&after),
        flows(packets),
        "the GRO plan keeps every flow's payloads in order"
    );
}
