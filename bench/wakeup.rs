//! The cost of waking a blocked thread, the bound on a userspace datapath's round-trip time
//! (docs/performance.md section 0.6).
//!
//! Two threads play ping-pong: the first sends a token and blocks until the second, woken by it,
//! sends the token back — one round trip is two wake-ups of a blocked thread. Measured
//! back to back ("busy": the other side has just blocked, its CPU may still be awake) and after
//! `RSWAN_WAKE_IDLE_US` (default 5000) µs of sleep before each round trip ("idle": what
//! `ping -i 0.005` through the gateways sees, every CPU halted in between), over
//! * a UDP socket pair on loopback (the datapath readers block in `recvmmsg`/`poll` alike);
//! * a channel (a futex wake-up without any network stack).
//!
//! Run: `cargo bench --bench wakeup` for the threads where the scheduler puts them, and
//! `taskset -c 0 cargo bench --bench wakeup` (or `taskset -c 0 target/release/deps/wakeup-…`)
//! with both on one CPU: there a wake-up is a context switch, never an IPI to a halted CPU.
//! `RSWAN_WAKE_N` round trips per case (default 400). Reported: median, 10th and 90th percentile
//! µs per round trip.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One side's blocking transport for the token.
trait Pong: Send + 'static {
    fn send(&mut self);
    fn wait(&mut self);
}

struct Udp {
    sock: UdpSocket,
    buf: [u8; 16],
}

impl Pong for Udp {
    fn send(&mut self) {
        self.sock.send(&[1]).expect("udp send");
    }
    fn wait(&mut self) {
        self.sock.recv(&mut self.buf).expect("udp recv");
    }
}

fn udp_pair() -> (Udp, Udp) {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
    a.connect(b.local_addr().expect("addr")).expect("connect");
    b.connect(a.local_addr().expect("addr")).expect("connect");
    (
        Udp {
            sock: a,
            buf: [0; 16],
        },
        Udp {
            sock: b,
            buf: [0; 16],
        },
    )
}

struct Chan {
    tx: mpsc::SyncSender<()>,
    rx: mpsc::Receiver<()>,
}

impl Pong for Chan {
    fn send(&mut self) {
        self.tx.send(()).expect("chan send");
    }
    fn wait(&mut self) {
        self.rx.recv().expect("chan recv");
    }
}

fn chan_pair() -> (Chan, Chan) {
    let (t1, r1) = mpsc::sync_channel(1);
    let (t2, r2) = mpsc::sync_channel(1);
    (Chan { tx: t1, rx: r2 }, Chan { tx: t2, rx: r1 })
}

/// Round trips in µs: `n` of them, sleeping `idle` before each.
fn run<P: Pong>(mut a: P, mut b: P, n: usize, idle: Duration) -> Vec<f64> {
    let echo = thread::spawn(move || {
        for _ in 0..n + 10 {
            b.wait();
            b.send();
        }
    });
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 10 {
        if !idle.is_zero() {
            thread::sleep(idle);
        }
        let t = Instant::now();
        a.send();
        a.wait();
        // The first ten warm up.
        if i >= 10 {
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    echo.join().expect("echo thread");
    out
}

fn report(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<12} {:>8.1} {:>8.1} {:>8.1}   ({} round trips)",
        q(0.5),
        q(0.1),
        q(0.9),
        v.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; no filters here.
    let n = env_u64("RSWAN_WAKE_N", 400) as usize;
    let idle = Duration::from_micros(env_u64("RSWAN_WAKE_IDLE_US", 5000));
    let cpus = thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "thread wake-up round trips (2 wake-ups each), µs; CPUs allowed: {cpus}; idle gap {} µs",
        idle.as_micros()
    );
    println!("{:<12} {:>8} {:>8} {:>8}", "case", "median", "p10", "p90");
    let (a, b) = udp_pair();
    report("udp busy", run(a, b, n * 10, Duration::ZERO));
    let (a, b) = udp_pair();
    report("udp idle", run(a, b, n, idle));
    let (a, b) = chan_pair();
    report("chan busy", run(a, b, n * 10, Duration::ZERO));
    let (a, b) = chan_pair();
    report("chan idle", run(a, b, n, idle));
}
