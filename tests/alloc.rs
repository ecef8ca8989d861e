//! The datapath's hot path allocates nothing: a counting global allocator watches batches of
//! TCP traffic go through the core as the reader threads run them — a TSO super-packet cut
//! into pooled buffers, encrypted in place (AES-GCM in raw ESP, AES-GCM in UDP, AES-CBC with
//! HMAC-SHA1), decrypted in place by the peer's core, and planned into a GRO super-packet for
//! the TUN device. After one warm-up batch (which sizes the reused vectors) the count must
//! stay at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::SeedableRng;

use rswan::eroute::Eroute;
use rswan::klips::{DevInfo, Klips, PacketBuf, Verdict, Work};
use rswan::sadb::{Dir, KeyBytes, Sa, SaSpec, UdpEncap, XformSpec};
use rswan::said::{Proto, Said};
use rswan::wire::offload::{self, GroPlan, GroWrite, VnetHdr};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // try_with: the thread-local may be gone while a thread exits.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(|n| n.get())
}

const A_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn esp(enc: rswan::crypto::EncAlg, auth: Option<rswan::crypto::AuthAlg>) -> XformSpec {
    XformSpec::Esp {
        enc,
        enckey: KeyBytes((0..enc.key_len() as u8).collect()),
        auth,
        authkey: KeyBytes(auth.map_or(Vec::new(), |a| (0..a.key_len() as u8).collect())),
    }
}

/// Gateway `me` with a tunnel (IPIP + ESP group, as `ipsec manual` makes it) to `peer`.
fn gateway(
    me: Ipv4Addr,
    peer: Ipv4Addr,
    out_spi: u32,
    in_spi: u32,
    x: &XformSpec,
    udp: bool,
) -> Klips {
    let k = Klips::new();
    k.set_devs(vec![DevInfo {
        name: "ipsec0".into(),
        phys: "eth0".into(),
        addr: me,
        addr6: None,
        phys_mtu: 1500,
        mtu: 1400,
    }]);
    let encap = udp.then_some(UdpEncap {
        sport: 4500,
        dport: 4500,
    });
    let (here, there): (rswan::addr::Subnet, rswan::addr::Subnet) = if me == A_ADDR {
        (
            "10.0.1.0/24".parse().unwrap(),
            "10.0.2.0/24".parse().unwrap(),
        )
    } else {
        (
            "10.0.2.0/24".parse().unwrap(),
            "10.0.1.0/24".parse().unwrap(),
        )
    };
    for (spi, dst, src, dir) in [(out_spi, peer, me, Dir::Out), (in_spi, me, peer, Dir::In)] {
        let spec = |said: Said, xform: XformSpec, encap| SaSpec {
            said,
            src: src.into(),
            dir: Some(dir),
            xform,
            replay_window: 64,
            life: Default::default(),
            encap,
            policy: (dir == Dir::In).then_some((there, here)),
        };
        let tun = Said::new(Proto::Tun, spi, dst);
        let e = Said::new(Proto::Esp, spi, dst);
        let mut db = k.sadb_mut();
        db.add(Sa::new(&spec(tun, XformSpec::Ipip, None), dir, 0).unwrap())
            .unwrap();
        db.add(Sa::new(&spec(e, x.clone(), encap), dir, 0).unwrap())
            .unwrap();
        db.group(&[tun, e]).unwrap();
    }
    k.eroutes_mut().replace(Eroute::new(
        here,
        there,
        Said::new(Proto::Tun, out_spi, peer),
    ));
    k
}

/// A TSO super-packet from host A (10.0.1.10) to host B: 40 KB of TCP payload, MSS 1300.
fn super_packet(seq: u32) -> (VnetHdr, Vec<u8>) {
    let payload = 40 * 1024;
    let mut p = vec![0u8; 40 + payload];
    rswan::wire::ipv4::Ipv4Repr {
        src: Ipv4Addr::new(10, 0, 1, 10),
        dst: Ipv4Addr::new(10, 0, 2, 10),
        protocol: 6,
        tos: 0,
        ttl: 63,
        ident: 1,
        dont_frag: true,
        payload_len: 20 + payload,
    }
    .emit(&mut p);
    p[20..22].copy_from_slice(&5001u16.to_be_bytes());
    p[22..24].copy_from_slice(&40000u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x10;
    p[34..36].copy_from_slice(&500u16.to_be_bytes());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let h = VnetHdr {
        flags: offload::F_NEEDS_CSUM,
        gso_type: offload::GSO_TCPV4,
        hdr_len: 40,
        gso_size: 1300,
        csum_start: 20,
        csum_offset: 16,
    };
    (h, p)
}

fn run(x: XformSpec, udp: bool) {
    let ga = gateway(A_ADDR, B_ADDR, 0x1001, 0x2001, &x, udp);
    let gb = gateway(B_ADDR, A_ADDR, 0x2001, 0x1001, &x, udp);
    let mut pool: Vec<PacketBuf> = (0..128).map(|_| PacketBuf::new(1500)).collect();
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(128);
    let mut rx: Vec<Vec<u8>> = (0..128).map(|_| vec![0u8; 2048]).collect();
    let mut lens: Vec<usize> = Vec::with_capacity(128);
    let mut delivered: Vec<(usize, std::ops::Range<usize>)> = Vec::with_capacity(128);
    let mut wa = Work::default();
    let mut wb = Work::default();
    let mut rng = StdRng::seed_from_u64(1);
    let mut plan = GroPlan::new();
    let mut written = 0usize;
    let mut batch = |(h, sp): &(VnetHdr, Vec<u8>)| {
        // Gateway A: the TUN reader's batch.
        let n = offload::split_into(h, sp, &mut pool).expect("split");
        let t = ga.tables();
        verdicts.clear();
        for b in &mut pool[..n] {
            verdicts.push(ga.outbound_buf(&t, 0, b, 1, &mut rng, &mut wa));
        }
        // The wire: what A sends is what B receives (the UDP socket hands B the payload).
        lens.clear();
        for (i, v) in verdicts.iter().enumerate() {
            let Verdict::Send(tx) = v else {
                panic!("not sent: {v:?}");
            };
            let off = if udp { tx.payload_offset } else { 0 };
            let bytes = &pool[i].bytes()[off..];
            rx[i][..bytes.len()].copy_from_slice(bytes);
            lens.push(bytes.len());
        }
        // Gateway B: the raw/UDP reader's batch, then the TUN writer's plan.
        let t = gb.tables();
        delivered.clear();
        for (i, &len) in lens.iter().enumerate() {
            let pkt = &mut rx[i][..len];
            let v = if udp {
                gb.inbound_udp_buf(
                    &t,
                    std::net::SocketAddrV4::new(A_ADDR, 4500),
                    B_ADDR,
                    pkt,
                    1,
                    &mut wb,
                )
            } else {
                gb.inbound_buf(&t, pkt, 1, &mut wb)
            };
            match v {
                Verdict::Deliver { at, .. } => delivered.push((i, at)),
                other => panic!("not delivered: {other:?}"),
            }
        }
        for (k, (i, at)) in delivered.iter().enumerate() {
            plan.push(k, &rx[*i][at.clone()]);
        }
        let pkt = |k: usize| {
            let (i, at) = &delivered[k];
            &rx[*i][at.clone()]
        };
        plan.finish(pkt, |w| match w {
            GroWrite::Super { members, .. } => written += members.count(),
            GroWrite::Plain(_) => written += 1,
        });
        assert!(wa.extra.is_empty() && wb.extra.is_empty());
        n
    };
    // Warm-up: the reused vectors find their size.
    let segs = batch(&super_packet(0));
    assert_eq!(segs, 32);
    for round in 1..20 {
        // The input is made outside the count (the kernel fills the read buffer).
        let input = super_packet(round * 40 * 1024);
        let n = allocations(|| {
            batch(&input);
        });
        assert_eq!(n, 0, "allocations in batch {round} ({x:?}, udp {udp})");
    }

    assert_eq!(written, 20 * 32, "every segment reached the TUN plan");
}

#[test]
fn gcm_batch_allocates_nothing() {
    run(esp(rswan::crypto::EncAlg::AesGcm16_128, None), false);
}

#[test]
fn gcm_in_udp_batch_allocates_nothing() {
    run(esp(rswan::crypto::EncAlg::AesGcm16_128, None), true);
}

#[test]
fn cbc_sha1_batch_allocates_nothing() {
    run(
        esp(
            rswan::crypto::EncAlg::AesCbc128,
            Some(rswan::crypto::AuthAlg::HmacSha1_96),
        ),
        false,
    );
}

#[test]
fn chacha_batch_allocates_nothing() {
    run(esp(rswan::crypto::EncAlg::ChaCha20Poly1305, None), true);
}

#[test]
fn counter_counts() {
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
