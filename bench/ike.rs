//! IKEv1 and IKEv2 keying rate of the sans-IO Pluto core: Main Mode + Quick Mode (IKEv2:
//! IKE_SA_INIT + IKE_AUTH with one child SA) completions between two in-memory engines with
//! 1,000 configured peers, PSK; and the IKEv2 floor — the crypto one side of one IKEv2
//! exchange cannot avoid (`-- floor` runs only the baselines and the floors; the script reads
//! its `FLOOR` lines).
//!
//! Run: `cargo bench --bench ike` (optionally `-- FILTER`, matched against the case names, e.g.
//! `-- 3des`). Knobs: `RSWAN_IKE_PEERS` (default 1000), `RSWAN_IKE_ROUNDS` (default 3; the
//! table shows the median round), `RSWAN_BENCH_REPS` / `RSWAN_BENCH_MS` for the baselines.
//!
//! The two engines run in this one thread, back to back over an in-memory FIFO "network" (no
//! sockets, no loss, a virtual clock that only moves when the network is quiet and a timer is
//! due). Each engine call (`whack`, `handle_datagram`, `handle_timeout`, and each drain of
//! `poll_output`) is timed separately with the thread's CPU clock (not wall time, which on this
//! shared machine includes time other processes hold the core), so the figures are the CPU
//! time of each side's Pluto core alone: no
//! syscalls, no SA installation into a datapath, no updown scripts, no log writing (log lines
//! are produced, then dropped). `scripts/bench-ike` measures whole daemons.
//!
//! "1,000 configured peers", two shapes:
//! * `addrs` — 1,000 peers at 1,000 distinct addresses (198.18.0.0/22), one conn each: the
//!   responder (192.0.2.2) has 1,000 conns whose peer end is 198.18.x.y, a secret line per
//!   peer, and the initiator owns the 1,000 addresses (1,000 interfaces) with the same conns. All 1,000
//!   `--up --asynchronous` are issued at once. This is the realistic hub with 1,000 spokes.
//! * `ids` — one address pair, 1,000 conns told apart by peer ID (`@peer-N`) and subnet, one
//!   shared PSK: what two rswan daemons can run (a daemon has one address per ipsecN), see
//!   `scripts/bench-ike`. Every conn still does its own Main Mode. The responder keeps at
//!   most 16 half-open Main Modes per peer address (`max_half_open_per_peer`; a 17th MI1
//!   evicts the oldest that has not sent MI2), so the initiator keeps a window of 16 conns in
//!   flight (as the script does; rswan's own initiator now paces itself the same way).
//!
//! Each peer's conn: `leftsubnet=10.A.B.0/24` (A.B = peer number) ↔ the hub's
//! `172.(16+A).B.0/24`.
//! Algorithms: `default` (no `ike=`/`esp=`: rswan's default offer, which negotiates
//! AES128-SHA256-MODP2048 and ESP AES128-SHA2_256 with PFS in MODP2048) and `3des-modp1024`
//! (`ike=3des-sha1-modp1024`, `esp=3des-sha1`, PFS in MODP1024). PFS is on (`pfs=yes` is the
//! default), so each completion costs each side 2 DH key pairs and 2 shared secrets.
//! IKEv2 (`keyexchange=ikev2`): `v2-modp2048` (AES128-SHA256-MODP2048, ESP AES128-SHA256) and
//! `v2-x25519` (AES256GCM16-PRFSHA256-Curve25519, ESP AES256-GCM16: the first suite of rswan's
//! IKEv2 default offer); the first child SA has no PFS, so each completion costs each side one
//! DH key pair and shared secret, and the PRF work of the key schedule and AUTH.
//!
//! In-run baselines (same process; before and after all cases, and a DH pair right before and
//! after each case, since the machine is noisy): one DH key pair + one
//! shared secret (`DhKeyPair::generate` + `compute_shared`) in MODP2048 and MODP1024, and one
//! HMAC-SHA256 PRF over 256 bytes. The "× DH floor" column divides a side's CPU per completion
//! by the cost of the two DH pairs it cannot avoid: 1.0 would mean nothing but modular
//! exponentiation. A small case with 10 peers shows what 1,000 configured peers add.

mod timing;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use rswan::config::conf::IpsecConf;
use rswan::config::secrets::Secrets;
use rswan::crypto::{AuthAlg, EncAlg};
use rswan::pluto::crypto::dh::{DhGroup, DhKeyPair};
use rswan::pluto::crypto::ikev2::auth::{psk_auth, signed_octets};
use rswan::pluto::crypto::ikev2::keys::{ChildAlgs, IkeSaAlgs, IkeSaKeys};
use rswan::pluto::crypto::prf::Prf;
use rswan::pluto::crypto::{PrivateKey, SignatureScheme};
use rswan::pluto::{Interface, Output, Pluto, PlutoConfig, WhackClient, WhackCmd};
use timing::{env_usize, keep, selected};

const HUB: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SPOKE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PSK: &str = "a fairly long pre-shared key for the benchmark";

/// CPU time of this thread so far (CLOCK_THREAD_CPUTIME_ID): unlike wall time, it does not
/// count the time other processes of the shared machine take the core away from us.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which lives on our stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median thread-CPU time of one call of `f`, over `reps` repetitions of `iters` calls, and the
/// largest deviation of a repetition from it (%).
fn cpu_measure<F: FnMut()>(iters: usize, reps: usize, mut f: F) -> (f64, f64) {
    f();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = cpu_now();
            for _ in 0..iters {
                f();
            }
            (cpu_now() - t).as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v[v.len() / 2];
    let spread = ((m - v[0]).max(v[v.len() - 1] - m)) / m * 100.0;
    (m, spread)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Addrs,
    Ids,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Addrs => "addrs",
            Shape::Ids => "ids",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Algs {
    Default,
    TripleDes,
    /// IKEv2, AES128-SHA256-MODP2048 / ESP AES128-SHA256 (the first child SA has no PFS).
    V2Modp2048,
    /// IKEv2, AES256GCM16-PRFSHA256-Curve25519 / ESP AES256-GCM16: the first suite of rswan's
    /// IKEv2 default offer.
    V2X25519,
}

impl Algs {
    fn name(self) -> &'static str {
        match self {
            Algs::Default => "default",
            Algs::TripleDes => "3des-modp1024",
            Algs::V2Modp2048 => "v2-modp2048",
            Algs::V2X25519 => "v2-x25519",
        }
    }
    fn lines(self) -> &'static str {
        match self {
            Algs::Default => "",
            Algs::TripleDes => "\tike=3des-sha1-modp1024\n\tesp=3des-sha1\n",
            Algs::V2Modp2048 => {
                "\tkeyexchange=ikev2\n\tike=aes128-sha256-modp2048\n\tesp=aes128-sha256\n"
            }
            Algs::V2X25519 => {
                "\tkeyexchange=ikev2\n\tike=aes256gcm16-prfsha256-curve25519\n\tesp=aes256gcm16\n"
            }
        }
    }
    fn group(self) -> DhGroup {
        match self {
            Algs::Default | Algs::V2Modp2048 => DhGroup::Modp2048,
            Algs::TripleDes => DhGroup::Modp1024,
            Algs::V2X25519 => DhGroup::Curve25519,
        }
    }
    fn v2(self) -> bool {
        matches!(self, Algs::V2Modp2048 | Algs::V2X25519)
    }
    /// The log line of a completion: (responder, initiator).
    fn markers(self) -> (&'static str, &'static str) {
        if self.v2() {
            (
                "STATE_V2_ESTABLISHED_CHILD_SA: IPsec SA established",
                "STATE_V2_ESTABLISHED_CHILD_SA: IPsec SA established",
            )
        } else {
            (
                "STATE_QUICK_R2: IPsec SA established",
                "STATE_QUICK_I2: sent QI2, IPsec SA established",
            )
        }
    }
    /// The IKE SA and child SA algorithms of an IKEv2 suite.
    fn v2_algs(self) -> (IkeSaAlgs, ChildAlgs) {
        match self {
            Algs::V2X25519 => (
                IkeSaAlgs {
                    prf: Prf::HmacSha256,
                    enc: EncAlg::AesGcm16_256,
                    integ: None,
                },
                ChildAlgs::esp(EncAlg::AesGcm16_256, None),
            ),
            _ => (
                IkeSaAlgs {
                    prf: Prf::HmacSha256,
                    enc: EncAlg::AesCbc128,
                    integ: Some(AuthAlg::HmacSha2_256_128),
                },
                ChildAlgs::esp(EncAlg::AesCbc128, Some(AuthAlg::HmacSha2_256_128)),
            ),
        }
    }
}

/// The address of peer `i` (0-based) in the `addrs` shape: 198.18.0.1 … 198.18.3.232.
fn peer_addr(i: usize) -> Ipv4Addr {
    let n = 198u32 << 24 | 18 << 16 | (i as u32 + 1);
    Ipv4Addr::from(n)
}

/// The subnet behind peer `i`: 10.A.B.0/24.
fn peer_subnet(i: usize) -> String {
    format!("10.{}.{}.0/24", i / 256, i % 256)
}

/// The hub's subnet for peer `i`: 172.(16+A).B.0/24 (as in scripts/bench-ike: no two conns
/// share a route on either side).
fn hub_subnet(i: usize) -> String {
    format!("172.{}.{}.0/24", 16 + i / 256, i % 256)
}

/// ipsec.conf and ipsec.secrets of the hub (responder) and the spoke side (initiator).
fn configs(shape: Shape, algs: Algs, n: usize) -> [(String, String); 2] {
    let mut hub = String::from("version 2\n\nconn %default\n\tauthby=secret\n\tauto=add\n");
    hub.push_str(algs.lines());
    let mut spoke = hub.clone();
    let mut hub_sec = String::new();
    let mut spoke_sec = String::new();
    if shape == Shape::Ids {
        hub_sec.push_str(&format!(": PSK \"{PSK}\"\n"));
        spoke_sec.push_str(&format!(": PSK \"{PSK}\"\n"));
    }
    for i in 0..n {
        let (left, ids) = match shape {
            Shape::Addrs => (peer_addr(i), String::new()),
            Shape::Ids => (SPOKE, format!("\tleftid=@peer-{i}\n\trightid=@hub\n")),
        };
        let body = format!(
            "\tleft={left}\n\tleftsubnet={}\n\tright={HUB}\n\trightsubnet={}\n{ids}",
            peer_subnet(i),
            hub_subnet(i)
        );
        hub.push_str(&format!("\nconn peer-{i}\n{body}"));
        spoke.push_str(&format!("\nconn peer-{i}\n{body}"));
        if shape == Shape::Addrs {
            // One secret per peer, as a hub with per-spoke keys has.
            let line = format!("{HUB} {left} : PSK \"{PSK} {i}\"\n");
            hub_sec.push_str(&line);
            spoke_sec.push_str(&line);
        }
    }
    [(hub, hub_sec), (spoke, spoke_sec)]
}

/// One engine and its accounting.
struct Side {
    p: Pluto,
    cpu: Duration,
    established: usize,
    messages_in: usize,
    log_lines: usize,
    failures: Vec<String>,
    marker: &'static str,
    outs: Vec<Output>,
}

impl Side {
    fn new(
        addrs: Vec<Ipv4Addr>,
        seed: u64,
        conf: &str,
        secrets: &str,
        marker: &'static str,
    ) -> Side {
        let cfg = PlutoConfig {
            interfaces: addrs
                .into_iter()
                .map(|addr| Interface {
                    virt: "ipsec0".into(),
                    phys: "eth0".into(),
                    addr: addr.into(),
                })
                .collect(),
            ..PlutoConfig::default()
        };
        let mut p = Pluto::new(cfg, Box::new(StdRng::seed_from_u64(seed)));
        let conf = IpsecConf::parse_str(conf, "/etc/ipsec.conf").expect("ipsec.conf parses");
        let errs = p.load_conns(&conf);
        assert!(errs.is_empty(), "{errs:?}");
        p.load_secrets(Secrets::parse_str(secrets, "/etc/ipsec.secrets").expect("secrets parse"));
        let mut s = Side {
            p,
            cpu: Duration::ZERO,
            established: 0,
            messages_in: 0,
            log_lines: 0,
            failures: Vec::new(),
            marker,
            outs: Vec::new(),
        };
        let mut sink = Vec::new();
        s.drain(&mut sink);
        s.cpu = Duration::ZERO;
        s.log_lines = 0;
        s
    }

    /// Takes every output (the polling timed), keeps the datagrams, counts completions.
    fn drain(&mut self, sends: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        let t = cpu_now();
        while let Some(o) = self.p.poll_output() {
            self.outs.push(o);
        }
        self.cpu += cpu_now() - t;
        for o in self.outs.drain(..) {
            match o {
                Output::Send {
                    local,
                    remote,
                    data,
                } => sends.push((local, remote, data)),
                Output::Log(l) => {
                    self.log_lines += 1;
                    if l.contains(self.marker) {
                        self.established += 1;
                    } else if (l.contains("refused")
                        || l.contains("failed")
                        || l.contains("no suitable")
                        || l.contains("cannot"))
                        && self.failures.len() < 5
                    {
                        self.failures.push(l);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The figures of one round.
struct Round {
    wall: Duration,
    thread_cpu: Duration,
    hub_cpu: Duration,
    spoke_cpu: Duration,
    hub_done: usize,
    spoke_done: usize,
    messages: usize,
    log_lines: usize,
    virtual_ms: u64,
    failures: Vec<String>,
}

/// Brings `n` conns up, `window` at a time, and returns the figures.
fn round(shape: Shape, algs: Algs, n: usize, window: usize, seed: u64) -> Round {
    let [(hub_conf, hub_sec), (spoke_conf, spoke_sec)] = configs(shape, algs, n);
    let spoke_addrs = match shape {
        Shape::Addrs => (0..n).map(peer_addr).collect(),
        Shape::Ids => vec![SPOKE],
    };
    let (hub_marker, spoke_marker) = algs.markers();
    let mut hub = Side::new(vec![HUB], seed, &hub_conf, &hub_sec, hub_marker);
    let mut spoke = Side::new(spoke_addrs, seed + 1, &spoke_conf, &spoke_sec, spoke_marker);
    let mut now: u64 = 1_000;
    let mut next = 0usize;
    let mut to_hub: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut to_spoke: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut sends = Vec::new();
    let start = Instant::now();
    let cpu_start = cpu_now();
    loop {
        // Keep `window` conns in flight on the initiator.
        while next < n && next - spoke.established.min(next) < window {
            let t = cpu_now();
            spoke.p.whack(
                now,
                WhackClient(next as u64 + 1),
                WhackCmd::Up {
                    name: format!("peer-{next}"),
                    asynchronous: true,
                },
            );
            spoke.cpu += cpu_now() - t;
            next += 1;
        }
        spoke.drain(&mut sends);
        to_hub.extend(sends.drain(..));
        hub.drain(&mut sends);
        to_spoke.extend(sends.drain(..));
        if to_hub.is_empty() && to_spoke.is_empty() {
            if spoke.established >= n && hub.established >= n {
                break;
            }
            if next < n && next - spoke.established.min(next) < window {
                continue;
            }
            // Quiet but unfinished: move the virtual clock to the next timer.
            let due = [hub.p.poll_timeout(), spoke.p.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match due {
                Some(t) if t < now + 600_000 => {
                    now = now.max(t);
                    for s in [&mut hub, &mut spoke] {
                        if s.p.poll_timeout().is_some_and(|x| x <= now) {
                            let t0 = cpu_now();
                            s.p.handle_timeout(now);
                            s.cpu += cpu_now() - t0;
                        }
                    }
                    continue;
                }
                _ => break, // nothing will ever happen again: report what completed
            }
        }
        // Deliver everything queued, each side in arrival order.
        while let Some((local, remote, data)) = to_hub.pop_front() {
            hub.messages_in += 1;
            let t = cpu_now();
            hub.p.handle_datagram(now, remote, local, &data);
            hub.cpu += cpu_now() - t;
        }
        while let Some((local, remote, data)) = to_spoke.pop_front() {
            spoke.messages_in += 1;
            let t = cpu_now();
            spoke.p.handle_datagram(now, remote, local, &data);
            spoke.cpu += cpu_now() - t;
        }
    }
    let wall = start.elapsed();
    let thread_cpu = cpu_now() - cpu_start;
    let mut failures = hub.failures.clone();
    failures.extend(spoke.failures.iter().cloned());
    Round {
        wall,
        thread_cpu,
        hub_cpu: hub.cpu,
        spoke_cpu: spoke.cpu,
        hub_done: hub.established,
        spoke_done: spoke.established,
        messages: hub.messages_in + spoke.messages_in,
        log_lines: hub.log_lines + spoke.log_lines,
        virtual_ms: now - 1_000,
        failures,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// CPU µs of one DH pair (key pair + shared secret) in `g`: median of 5 repetitions.
fn dh_pair_now(g: DhGroup) -> f64 {
    let mut rng = StdRng::seed_from_u64(11);
    let peer_pub = DhKeyPair::generate(g, &mut rng).public_value().to_vec();
    let iters = if g == DhGroup::Modp2048 { 10 } else { 40 };
    cpu_measure(iters, 5, || {
        let kp = DhKeyPair::generate(g, &mut rng);
        keep(kp.compute_shared(&peer_pub).expect("valid"));
    })
    .0
}

/// The crypto one side of one IKEv2 IKE_SA_INIT + IKE_AUTH exchange with its first child SA
/// cannot avoid, for suite `algs`: one DH key pair and shared secret, SKEYSEED and the IKE
/// SA's prf+ key material, the two AUTH values (its own and the one it checks: prf(SK_p, ID')
/// and the PSK's prf(prf(PSK, "Key Pad for IKEv2"), signed octets) over a 400-byte first
/// message), and the child SA's prf+ key material; with `rsa`, an RSA-2048 PKCS#1 SHA-256
/// signature and one verification instead of the two PSK AUTH values. Returns the median
/// CPU µs of one such set and its spread (%).
fn v2_floor(algs: Algs, rsa: Option<&PrivateKey>, reps: usize) -> (f64, f64) {
    let g = algs.group();
    let (ike, child) = algs.v2_algs();
    let mut rng = StdRng::seed_from_u64(13);
    let peer_pub = DhKeyPair::generate(g, &mut rng).public_value().to_vec();
    let (ni, nr, spi_i, spi_r) = ([0x11u8; 32], [0x22u8; 32], [1u8; 8], [2u8; 8]);
    let (message, id) = ([0x33u8; 400], [0x44u8; 12]);
    let signature = rsa.map(|k| {
        let octets = signed_octets(ike.prf, &message, &nr, &[0x55; 32], &id);
        k.sign_ikev2(&mut rng, SignatureScheme::Pkcs1Sha256, &octets)
            .expect("sign")
    });
    let iters = match (g, rsa) {
        (_, Some(_)) => 5,
        (DhGroup::Curve25519, None) => 200,
        _ => 10,
    };
    cpu_measure(iters, reps, || {
        let kp = DhKeyPair::generate(g, &mut rng);
        let gir = kp.compute_shared(&peer_pub).expect("valid");
        let keys =
            IkeSaKeys::from_exchange(ike, &ni, &nr, gir.as_bytes(), &spi_i, &spi_r).expect("keys");
        for own in [true, false] {
            let octets = signed_octets(ike.prf, &message, &nr, keys.sk_p(own), &id);
            match (rsa, &signature) {
                (Some(k), Some(sig)) if own => {
                    keep(k.sign_ikev2(&mut rng, SignatureScheme::Pkcs1Sha256, &octets))
                        .expect("sign");
                    keep(sig);
                }
                (Some(k), Some(sig)) => {
                    // The peer's signature (over other octets: it fails, at full cost).
                    let _ = keep(k.public_key().verify_ikev2(
                        SignatureScheme::Pkcs1Sha256,
                        &octets,
                        sig,
                    ));
                }
                _ => {
                    keep(psk_auth(ike.prf, PSK.as_bytes(), &octets));
                }
            }
        }
        keep(keys.child_keys(child, None, &ni, &nr).expect("child keys"));
    })
}

/// The IKEv2 floors (per side, one completion) of both suites, with PSK and with RSA-2048,
/// and one machine-readable `FLOOR <suite> <auth> <µs>` line each for scripts/bench-ike.
fn print_v2_floors(reps: usize) {
    let mut rng = StdRng::seed_from_u64(17);
    let key = PrivateKey::generate(&mut rng, 2048).expect("RSA key");
    println!(
        "| IKEv2 floor, one side of one IKE_SA_INIT + IKE_AUTH (+ first child SA) | µs | spread |"
    );
    println!("|---|---:|---:|");
    let mut lines = Vec::new();
    for algs in [Algs::V2Modp2048, Algs::V2X25519] {
        for (auth, rsa) in [("psk", None), ("rsa2048", Some(&key))] {
            let (m, sp) = v2_floor(algs, rsa, reps);
            println!(
                "| {} {}: DH pair + SKEYSEED/prf+ + 2 AUTH + child prf+ | {m:.1} | {sp:.1}% |",
                algs.name(),
                auth
            );
            lines.push(format!("FLOOR {} {auth} {m:.1}", algs.name()));
        }
    }
    println!();
    for l in lines {
        println!("{l}");
    }
    println!();
}

/// Baselines: (name, µs, spread %). DH pair = one key pair + one shared secret.
fn baselines() -> Vec<(String, f64, f64)> {
    let reps = timing::reps();
    let mut rng = StdRng::seed_from_u64(7);
    let mut base = Vec::new();
    for (g, iters) in [(DhGroup::Modp2048, 20), (DhGroup::Modp1024, 80)] {
        let peer = DhKeyPair::generate(g, &mut rng);
        let peer_pub = peer.public_value().to_vec();
        let (m, sp) = cpu_measure(iters, reps, || {
            let kp = DhKeyPair::generate(g, &mut rng);
            keep(kp.compute_shared(&peer_pub).expect("valid"));
        });
        base.push((format!("DH pair {} (keygen + shared)", g.name()), m, sp));
    }
    let key = [0x42u8; 32];
    let data = [0x17u8; 256];
    let (m, sp) = cpu_measure(20_000, reps, || {
        keep(Prf::HmacSha256.prf(&key, &[&data]));
    });
    base.push(("HMAC-SHA256 PRF, 256 bytes".into(), m, sp));
    let (m, sp) = cpu_measure(20_000, reps, || {
        keep(cpu_now());
    });
    base.push((
        "reading the thread CPU clock (timer overhead)".into(),
        m,
        sp,
    ));
    base
}

fn print_baselines(title: &str, base: &[(String, f64, f64)]) {
    println!("| {title} | µs | spread |");
    println!("|---|---:|---:|");
    for (name, m, sp) in base {
        println!("| {name} | {m:.2} | {sp:.1}% |");
    }
    println!();
}

fn main() {
    timing::preamble("rswan IKEv1 keying rate, two in-memory Pluto engines (bench/ike.rs)");
    let peers = env_usize("RSWAN_IKE_PEERS", 1000);
    let rounds = env_usize("RSWAN_IKE_ROUNDS", 3);
    println!("# {peers} configured peers per case, {rounds} round(s) per case (10-peer cases: 10× as many), median round shown");
    println!("# all times are CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), not wall time");
    println!();

    let base = baselines();
    print_baselines("baseline (before the cases)", &base);
    if selected("floor") {
        print_v2_floors(timing::reps());
    }

    // --- Cases.
    let mut cases: Vec<(Shape, Algs, usize, usize)> = Vec::new();
    for algs in [
        Algs::Default,
        Algs::TripleDes,
        Algs::V2Modp2048,
        Algs::V2X25519,
    ] {
        cases.push((Shape::Addrs, algs, peers, peers));
        cases.push((Shape::Ids, algs, peers, 16));
        cases.push((Shape::Addrs, algs, 10.min(peers), 10.min(peers)));
    }
    println!("| case | peers | window | completed (hub/init) | completions/s | CPU µs/completion, both | initiator µs | responder µs | × DH floor (init / resp) | msgs/completion | log lines/completion | spread of rounds | thread CPU / wall | DH pair µs before / after |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|");
    for (shape, algs, n, window) in cases {
        let name = format!("{}-{}-{}", shape.name(), algs.name(), n);
        if !selected(&name) {
            continue;
        }
        let reps = if n < 100 { rounds * 10 } else { rounds };
        // The side's floor: for IKEv1 two DH pairs (Main Mode + PFS), for IKEv2 the whole
        // crypto of the exchange ([`v2_floor`], PSK); measured right before and after.
        let floor_now = || {
            if algs.v2() {
                v2_floor(algs, None, 5).0
            } else {
                dh_pair_now(algs.group())
            }
        };
        let dh_before = floor_now();
        let mut rs: Vec<Round> = (0..reps)
            .map(|r| round(shape, algs, n, window, 100 + r as u64 * 2))
            .collect();
        rs.sort_by_key(|r| r.hub_cpu + r.spoke_cpu);
        let lo = us(rs[0].hub_cpu + rs[0].spoke_cpu);
        let hi = us(rs[rs.len() - 1].hub_cpu + rs[rs.len() - 1].spoke_cpu);
        let r = &rs[rs.len() / 2];
        let done = r.spoke_done.min(r.hub_done).max(1) as f64;
        let both = us(r.hub_cpu + r.spoke_cpu) / done;
        let init = us(r.spoke_cpu) / done;
        let resp = us(r.hub_cpu) / done;
        let dh_after = floor_now();
        // The side's unavoidable work, from the baselines measured right before and after.
        let floor = if algs.v2() {
            (dh_before + dh_after) / 2.0
        } else {
            dh_before + dh_after
        };
        let med = us(r.hub_cpu + r.spoke_cpu);
        let spread = ((med - lo).max(hi - med)) / med * 100.0;
        println!(
            "| {name} | {n} | {window} | {}/{} | {:.0} | {both:.0} | {init:.0} | {resp:.0} | {:.2} / {:.2} | {:.1} | {:.1} | {spread:.1}% | {:.0}% | {dh_before:.0} / {dh_after:.0} |",
            r.hub_done,
            r.spoke_done,
            done / (r.hub_cpu + r.spoke_cpu).as_secs_f64(),
            init / floor,
            resp / floor,
            r.messages as f64 / done,
            r.log_lines as f64 / done,
            r.thread_cpu.as_secs_f64() / r.wall.as_secs_f64() * 100.0,
        );
        if r.hub_done < n || r.spoke_done < n {
            println!(
                "|   ↳ INCOMPLETE: {} of {n} (virtual time used {} ms); first failures: {:?} | | | | | | | | | | | | | |",
                r.hub_done.min(r.spoke_done),
                r.virtual_ms,
                r.failures
            );
        } else if r.virtual_ms > 0 {
            println!(
                "|   ↳ needed {} ms of (virtual) timer time: retransmissions | | | | | | | | | | | | | |",
                r.virtual_ms
            );
        }
        eprintln!(
            "{name}: median round wall {:.2} s, thread CPU {:.2} s (harness included), engines {:.2} s",
            r.wall.as_secs_f64(),
            r.thread_cpu.as_secs_f64(),
            (r.hub_cpu + r.spoke_cpu).as_secs_f64()
        );
    }
    println!();
    print_baselines("baseline (again, after the cases)", &baselines());
    println!("completions/s = completed MM+QM pairs / CPU time of both engines (on two cores with one daemon each, the ceiling is up to twice that). thread CPU / wall < 100 % = the machine took the core away part of the time (not counted).");
    println!(
        "× DH floor = a side's CPU per completion / (2 × DH pair of the group, the mean of the pairs measured right before and after the case): the two key pairs and two shared secrets (Main Mode + PFS) each side must compute. For the v2-* cases the floor is the IKEv2 floor above (PSK: one DH pair, SKEYSEED and prf+, two AUTH values, the child's prf+), and the 'DH pair µs' column shows that floor before / after."
    );
    println!("The FLOOR lines give the IKEv2 floor per side in µs for scripts/bench-ike.");
}
