//! Lookup cost of the datapath's two tables at 10,000 entries:
//! * eroute lookup (most specific (src, dst) match) among 10,000 eroutes with mixed prefix
//!   lengths (20 classes), for random hits and random misses: through the index the datapath
//!   uses (`ErouteView::lookup`), with 1,024 `%trap` holds in the host-pair overlay, and the
//!   class-by-class walk the table falls back to between a change and its index rebuild (the
//!   only lookup before the index existed);
//! * the same for IPv6: 10,000 IPv6 eroutes (prefix lengths /48../128, 20 classes) in one
//!   table with the 10,000 IPv4 ones, IPv6 hits and misses through the index;
//! * SA lookup (`Sadb::get` by SAID) among 10,000 ESP SAs, hits and misses;
//! * baseline, in the same run: `HashMap<u64, u64>::get` with 10,000 entries (std's default
//!   SipHash, as both tables use), hits and misses.
//!
//! Run: `cargo bench --bench tables` (knobs as in bench/xform.rs). Queries are drawn up front
//! (65,536 per case, random order) and walked in a loop, so the figure is ns per lookup
//! including the cache misses a random traffic mix causes, not one hot key.

mod timing;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use rswan::addr::Subnet;
use rswan::eroute::{Eroute, ErouteTable};
use rswan::sadb::lifetime::Lifetimes;
use rswan::sadb::{Dir, KeyBytes, Sa, SaSpec, Sadb, XformSpec};
use rswan::said::{Proto, Said};
use timing::{keep, measure, selected, Sample};

const N: usize = 10_000;
const QUERIES: usize = 1 << 16;

/// Source and destination prefix lengths used, with their weights: mostly /24 ↔ /24
/// (net-to-net), some hosts (/32, road warriors), some wider nets.
const SRC_LENS: [u8; 5] = [16, 20, 24, 28, 32];
const DST_LENS: [u8; 4] = [16, 24, 28, 32];

fn pick_len(rng: &mut StdRng, lens: &[u8]) -> u8 {
    lens[rng.gen_range(0..lens.len())]
}

/// A random address inside `n`.
fn inside(rng: &mut StdRng, n: &Subnet) -> Ipv4Addr {
    let host = if n.len() >= 32 {
        0
    } else {
        rng.gen::<u32>() & !n.mask()
    };
    Ipv4Addr::from(u32::from(n.addr()) | host)
}

/// IPv6 source and destination prefix lengths (site /48, subnet /64, hosts /128, …).
const SRC_LENS6: [u8; 5] = [48, 56, 64, 96, 128];
const DST_LENS6: [u8; 4] = [48, 64, 96, 128];

/// A random address inside the IPv6 network `n`.
fn inside6(rng: &mut StdRng, n: &Subnet) -> Ipv6Addr {
    let base = match n.ip() {
        std::net::IpAddr::V6(a) => u128::from(a),
        std::net::IpAddr::V4(_) => 0,
    };
    let host = if n.len() >= 128 {
        0
    } else {
        rng.gen::<u128>() & (u128::MAX >> n.len())
    };
    Ipv6Addr::from(base | host)
}

/// A random address in 2001:db8::/32 with the low 80 bits random and the rest fixed by `site`.
fn addr6(rng: &mut StdRng) -> Ipv6Addr {
    let site: u128 = 0x2001_0db8 << 96;
    Ipv6Addr::from(site | (u128::from(rng.gen::<u16>() & 0x0fff) << 80) | (rng.gen::<u128>() >> 48))
}

fn per_lookup(s: &Sample) -> Sample {
    let k = QUERIES as f64;
    Sample {
        median_ns: s.median_ns / k,
        min_ns: s.min_ns / k,
        max_ns: s.max_ns / k,
    }
}

fn main() {
    timing::preamble("rswan table lookups (bench/tables.rs)");
    let mut rng = StdRng::seed_from_u64(4301);
    let mut results: Vec<(String, Sample, String)> = Vec::new();

    // --- Baseline: HashMap<u64, u64>.
    let mut base: HashMap<u64, u64> = HashMap::new();
    while base.len() < N {
        let k: u64 = rng.gen();
        base.insert(k, k ^ 0x5555);
    }
    let keys: Vec<u64> = base.keys().copied().collect();
    let hits: Vec<u64> = (0..QUERIES)
        .map(|_| keys[rng.gen_range(0..keys.len())])
        .collect();
    let misses: Vec<u64> = (0..QUERIES)
        .map(|_| loop {
            let k: u64 = rng.gen();
            if !base.contains_key(&k) {
                break k;
            }
        })
        .collect();
    for (name, q) in [
        ("HashMap<u64,u64> get, hit (baseline)", &hits),
        ("HashMap<u64,u64> get, miss (baseline)", &misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for k in q.iter() {
                    acc = acc.wrapping_add(*keep(&base).get(k).unwrap_or(&0));
                }
                keep(acc);
            });
            results.push((name.into(), per_lookup(&s), format!("{N} entries")));
        }
    }

    // --- Eroutes: 10,000 (src, dst) pairs with mixed prefix lengths, inside 10.0.0.0/8.
    let mut table = ErouteTable::new();
    let mut routes: Vec<(Subnet, Subnet)> = Vec::with_capacity(N);
    while routes.len() < N {
        let src = Subnet::new(
            Ipv4Addr::from(0x0a00_0000 | (rng.gen::<u32>() & 0x00ff_ffff)),
            pick_len(&mut rng, &SRC_LENS),
        );
        let dst = Subnet::new(
            Ipv4Addr::from(0x0a00_0000 | (rng.gen::<u32>() & 0x00ff_ffff)),
            pick_len(&mut rng, &DST_LENS),
        );
        let said = Said::new(
            Proto::Tun,
            0x1000 + routes.len() as u32,
            Ipv4Addr::new(192, 0, 2, 2),
        );
        if table.add(Eroute::new(src, dst, said)).is_ok() {
            routes.push((src, dst));
        }
    }
    let classes = {
        let mut c: Vec<(u8, u8)> = routes.iter().map(|(s, d)| (s.len(), d.len())).collect();
        c.sort();
        c.dedup();
        c.len()
    };
    let e_hits: Vec<(Ipv4Addr, Ipv4Addr)> = (0..QUERIES)
        .map(|_| {
            let (s, d) = routes[rng.gen_range(0..routes.len())];
            (inside(&mut rng, &s), inside(&mut rng, &d))
        })
        .collect();
    assert!(e_hits.iter().all(|(s, d)| table.lookup(*s, *d).is_some()));
    // Misses: source inside a known net, destination outside 10/8 (the common miss: traffic for
    // a peer we have no tunnel to).
    let e_misses: Vec<(Ipv4Addr, Ipv4Addr)> = (0..QUERIES)
        .map(|_| {
            let (s, _) = routes[rng.gen_range(0..routes.len())];
            (
                inside(&mut rng, &s),
                Ipv4Addr::from(0xac10_0000 | (rng.gen::<u32>() & 0x000f_ffff)),
            )
        })
        .collect();
    assert!(e_misses.iter().all(|(s, d)| table.lookup(*s, *d).is_none()));
    let view = table.view();
    for (name, q) in [
        ("eroute lookup, hit, mixed", &e_hits),
        ("eroute lookup, miss, mixed", &e_misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for (src, dst) in q.iter() {
                    if let Some(e) = keep(&view).lookup(*src, *dst) {
                        acc = acc.wrapping_add(u64::from(e.said.spi));
                    }
                }
                keep(acc);
            });
            results.push((
                name.into(),
                per_lookup(&s),
                format!("{N} eroutes, {classes} prefix-length classes"),
            ));
        }
    }
    // --- IPv6 eroutes: 10,000 more in the same table, inside 2001:db8::/32.
    let mut routes6: Vec<(Subnet, Subnet)> = Vec::with_capacity(N);
    while routes6.len() < N {
        let src = Subnet::new(addr6(&mut rng), pick_len(&mut rng, &SRC_LENS6));
        let dst = Subnet::new(addr6(&mut rng), pick_len(&mut rng, &DST_LENS6));
        let said = Said::new(
            Proto::Tun,
            0x9000 + routes6.len() as u32,
            "2001:db8:ffff::2".parse::<Ipv6Addr>().expect("address"),
        );
        if table.add(Eroute::new(src, dst, said)).is_ok() {
            routes6.push((src, dst));
        }
    }
    let classes6 = {
        let mut c: Vec<(u8, u8)> = routes6.iter().map(|(s, d)| (s.len(), d.len())).collect();
        c.sort();
        c.dedup();
        c.len()
    };
    let e6_hits: Vec<(Ipv6Addr, Ipv6Addr)> = (0..QUERIES)
        .map(|_| {
            let (s, d) = routes6[rng.gen_range(0..routes6.len())];
            (inside6(&mut rng, &s), inside6(&mut rng, &d))
        })
        .collect();
    assert!(e6_hits.iter().all(|(s, d)| table.lookup(*s, *d).is_some()));
    // Misses: source inside a known net, destination outside 2001:db8::/32.
    let e6_misses: Vec<(Ipv6Addr, Ipv6Addr)> = (0..QUERIES)
        .map(|_| {
            let (s, _) = routes6[rng.gen_range(0..routes6.len())];
            let d = (0x2001_0db9u128 << 96) | (rng.gen::<u128>() >> 32);
            (inside6(&mut rng, &s), Ipv6Addr::from(d))
        })
        .collect();
    assert!(e6_misses
        .iter()
        .all(|(s, d)| table.lookup(*s, *d).is_none()));
    let view6 = table.view();
    assert!(e_hits.iter().all(|(s, d)| view6.lookup(*s, *d).is_some()));
    for (name, q) in [
        ("eroute lookup, hit, IPv6 mixed (+ IPv4 table)", &e6_hits),
        ("eroute lookup, miss, IPv6 mixed (+ IPv4 table)", &e6_misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for (src, dst) in q.iter() {
                    if let Some(e) = keep(&view6).lookup(*src, *dst) {
                        acc = acc.wrapping_add(u64::from(e.said.spi));
                    }
                }
                keep(acc);
            });
            results.push((
                name.into(),
                per_lookup(&s),
                format!("{N} IPv6 + {N} IPv4 eroutes, {classes6} IPv6 classes"),
            ));
        }
    }

    // The same table with 1,024 trap holds (src/32 -> dst/32 %hold, the default bound) in the
    // overlay the index consults first.
    let hold = Said::new(
        Proto::Int,
        rswan::said::Shunt::Hold.spi(),
        Ipv4Addr::UNSPECIFIED,
    );
    let mut held = ErouteTable::new();
    for (s, d) in &routes {
        held.add(Eroute::new(
            *s,
            *d,
            Said::new(Proto::Tun, 0x1000, Ipv4Addr::new(192, 0, 2, 2)),
        ))
        .expect("add");
    }
    for &(s, d) in e_hits.iter().take(1024) {
        held.add_trap_hold(Subnet::host(s), Subnet::host(d), hold, 1024);
    }
    let held_view = held.view();
    for (name, q) in [
        ("eroute lookup, hit, mixed + 1024 holds", &e_hits),
        ("eroute lookup, miss, mixed + 1024 holds", &e_misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for (src, dst) in q.iter() {
                    if let Some(e) = keep(&held_view).lookup(*src, *dst) {
                        acc = acc.wrapping_add(u64::from(e.said.spi));
                    }
                }
                keep(acc);
            });
            results.push((
                name.into(),
                per_lookup(&s),
                format!("{N} eroutes, {classes} classes, 1024 trap holds"),
            ));
        }
    }
    // The class walk: an untouched table whose index is stale (a change not yet refreshed).
    let mut walk = ErouteTable::new();
    for (s, d) in &routes {
        walk.add(Eroute::new(
            *s,
            *d,
            Said::new(Proto::Tun, 0x1000, Ipv4Addr::new(192, 0, 2, 2)),
        ))
        .expect("add");
    }
    for (name, q) in [
        ("eroute class walk, hit, mixed", &e_hits),
        ("eroute class walk, miss, mixed", &e_misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for (src, dst) in q.iter() {
                    if let Some(e) = keep(&walk).lookup(*src, *dst) {
                        acc = acc.wrapping_add(u64::from(e.said.spi));
                    }
                }
                keep(acc);
            });
            results.push((
                name.into(),
                per_lookup(&s),
                format!("{N} eroutes, {classes} classes, no index"),
            ));
        }
    }

    // --- The same count with a single class (every eroute /24 -> /24): lookup cost depends on
    // the number of distinct prefix-length classes, not on the number of eroutes.
    let mut flat = ErouteTable::new();
    let mut flat_routes: Vec<(Subnet, Subnet)> = Vec::with_capacity(N);
    while flat_routes.len() < N {
        let src = Subnet::new(
            Ipv4Addr::from(0x0a00_0000 | (rng.gen::<u32>() & 0x00ff_ff00)),
            24,
        );
        let dst = Subnet::new(
            Ipv4Addr::from(0x0a00_0000 | (rng.gen::<u32>() & 0x00ff_ff00)),
            24,
        );
        let said = Said::new(
            Proto::Tun,
            0x1000 + flat_routes.len() as u32,
            Ipv4Addr::new(192, 0, 2, 2),
        );
        if flat.add(Eroute::new(src, dst, said)).is_ok() {
            flat_routes.push((src, dst));
        }
    }
    let f_hits: Vec<(Ipv4Addr, Ipv4Addr)> = (0..QUERIES)
        .map(|_| {
            let (s, d) = flat_routes[rng.gen_range(0..flat_routes.len())];
            (inside(&mut rng, &s), inside(&mut rng, &d))
        })
        .collect();
    let f_misses: Vec<(Ipv4Addr, Ipv4Addr)> = (0..QUERIES)
        .map(|_| {
            let (s, _) = flat_routes[rng.gen_range(0..flat_routes.len())];
            (
                inside(&mut rng, &s),
                Ipv4Addr::from(0xac10_0000 | (rng.gen::<u32>() & 0x000f_ffff)),
            )
        })
        .collect();
    assert!(f_hits.iter().all(|(s, d)| flat.lookup(*s, *d).is_some()));
    assert!(f_misses.iter().all(|(s, d)| flat.lookup(*s, *d).is_none()));
    let flat = flat.view();
    for (name, q) in [
        ("eroute lookup, hit, 1 class", &f_hits),
        ("eroute lookup, miss, 1 class", &f_misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for (src, dst) in q.iter() {
                    if let Some(e) = keep(&flat).lookup(*src, *dst) {
                        acc = acc.wrapping_add(u64::from(e.said.spi));
                    }
                }
                keep(acc);
            });
            results.push((
                name.into(),
                per_lookup(&s),
                format!("{N} eroutes, all /24 -> /24"),
            ));
        }
    }

    // --- SADB: 10,000 ESP SAs (AES128-CBC-SHA1) to 250 peers.
    let mut db = Sadb::new();
    let mut saids = Vec::with_capacity(N);
    while saids.len() < N {
        let said = Said::new(
            Proto::Esp,
            rng.gen_range(0x100..u32::MAX),
            Ipv4Addr::new(192, 0, 2, 1 + (saids.len() % 250) as u8),
        );
        let spec = SaSpec {
            said,
            src: Ipv4Addr::new(198, 51, 100, 1).into(),
            dir: Some(Dir::In),
            xform: XformSpec::Esp {
                enc: rswan::crypto::EncAlg::AesCbc128,
                enckey: KeyBytes(vec![0x42; 16]),
                auth: Some(rswan::crypto::AuthAlg::HmacSha1_96),
                authkey: KeyBytes(vec![0x24; 20]),
            },
            replay_window: 32,
            life: Lifetimes::default(),
            encap: None,
            policy: None,
        };
        let sa = Sa::new(&spec, Dir::In, 0).expect("SA");
        if db.add(sa).is_ok() {
            saids.push(said);
        }
    }
    let s_hits: Vec<Said> = (0..QUERIES)
        .map(|_| saids[rng.gen_range(0..saids.len())])
        .collect();
    let s_misses: Vec<Said> = (0..QUERIES)
        .map(|_| loop {
            let s = Said::new(
                Proto::Esp,
                rng.gen(),
                saids[rng.gen_range(0..saids.len())].dst,
            );
            if db.get(&s).is_none() {
                break s;
            }
        })
        .collect();
    // The datapath's view of the same SADB (what a reader looks SAs up in).
    let view = db.view();
    for (name, q) in [
        ("SADB view get, hit (datapath)", &s_hits),
        ("SADB view get, miss (datapath)", &s_misses),
    ] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for said in q.iter() {
                    if let Some(r) = keep(&view).get(said) {
                        acc = acc.wrapping_add(u64::from(r.sa().said.spi));
                    }
                }
                keep(acc);
            });
            results.push((name.into(), per_lookup(&s), format!("{N} ESP SAs")));
        }
    }
    for (name, q) in [("SADB get, hit", &s_hits), ("SADB get, miss", &s_misses)] {
        if selected(name) {
            let s = measure(|| {
                let mut acc = 0u64;
                for said in q.iter() {
                    if let Some(sa) = keep(&db).get(said) {
                        acc = acc.wrapping_add(u64::from(sa.said.spi));
                    }
                }
                keep(acc);
            });
            results.push((name.into(), per_lookup(&s), format!("{N} ESP SAs")));
        }
    }

    let base_hit = results
        .iter()
        .find(|r| r.0.starts_with("HashMap") && r.0.contains("hit"))
        .map(|r| r.1.median_ns);
    let base_miss = results
        .iter()
        .find(|r| r.0.starts_with("HashMap") && r.0.contains("miss"))
        .map(|r| r.1.median_ns);
    println!();
    println!(
        "| {:<40} | {:>10} | {:>11} | {:>7} | {:<40} |",
        "lookup", "ns/lookup", "× baseline", "spread", "table"
    );
    println!(
        "|{:-<42}|{:->12}|{:->13}|{:->9}|{:-<42}|",
        "", ":", ":", ":", ""
    );
    for (name, s, note) in &results {
        let b = if name.contains("miss") {
            base_miss
        } else {
            base_hit
        };
        let ratio = b.map_or("-".into(), |b| format!("{:.2}", s.median_ns / b));
        println!(
            "| {:<40} | {:>10.1} | {:>11} | {:>6.1}% | {:<40} |",
            name,
            s.median_ns,
            ratio,
            s.spread_pct(),
            note
        );
    }
    println!();
    println!("# × baseline = ns/lookup divided by the HashMap<u64,u64> figure for the same outcome (hit or miss)");
}
