//! The IKEv2 exchanges of the Pluto engine: west (A, 192.0.2.1) and east (B, 198.51.100.7)
//! over an in-memory network with a virtual clock and seeded RNGs, so that a run is a pure
//! function of the input.
//!
//! Both load IKEv2 PSK conns — `net` (AES-CBC/SHA2/Curve25519, DPD, PFS), `gcm` (AES-GCM,
//! ChaCha20-Poly1305 ESP, transport mode, short lifetimes so child SAs are rekeyed with
//! CREATE_CHILD_SA) — and east also a road-warrior template `rw`.
//!
//! [`ikev2_engine`] reads a structured input ([`Input`], via `arbitrary`): which conn to bring
//! up and how far to let the exchange run, then operations: deliver, drop, duplicate or
//! mutate datagrams in flight; inject raw datagrams; let time pass; whack commands; and —
//! to get past the SK payload — seal a fuzzed inner payload chain as a request or response
//! of any exchange type with the keys of an IKE SA the receiver holds (the message ID the
//! receiver expects, or near it), so the payload parsers, notifications, Deletes, child SA
//! negotiation and state machines after decryption see arbitrary input.
//!
//! Invariants besides "no panic": every datagram Pluto sends is a well-formed IKE message
//! (the non-ESP marker on port 4500); every SA it installs can be built by the datapath;
//! timers make progress.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::conf::IpsecConf;
use crate::config::secrets::Secrets;
use crate::pluto::crypto::ikev2::SkCipher;
use crate::pluto::ikev2::wire::{self, ExchangeType, Flags, Header, IkeSpi, PayloadType};
use crate::pluto::natt::{strip_non_esp_marker, IKE_PORT, NAT_T_PORT};
use crate::pluto::{Interface, Output, Pluto, PlutoConfig, WhackClient, WhackCmd};
use crate::sadb::{Dir, Sa};

const WEST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const EAST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const MAX_OPS: usize = 48;
const MAX_FLIGHT: usize = 64;
const MAX_RUN: usize = 200;
const MAX_TIME_MS: u64 = 4 * 3600 * 1000;
const MAX_TIMER_ROUNDS: usize = 20_000;

fn conf(me: Ipv4Addr, peer: Ipv4Addr, rw: bool) -> String {
    let (lsub, rsub) = if me == WEST {
        ("10.0.1.0/24", "10.0.2.0/24")
    } else {
        ("10.0.2.0/24", "10.0.1.0/24")
    };
    let mut c = format!(
        "version 2\n\
         conn net\n\tleft={me}\n\tleftsubnet={lsub}\n\tright={peer}\n\trightsubnet={rsub}\n\t\
         authby=secret\n\tkeyexchange=ikev2\n\tike=aes128-sha256-curve25519,aes256-sha384-modp2048\n\t\
         esp=aes128-sha256,aes256-sha512\n\tdpddelay=30s\n\tdpdtimeout=90s\n\tauto=add\n\
         conn gcm\n\tleft={me}\n\tright={peer}\n\ttype=transport\n\tauthby=secret\n\t\
         keyexchange=ikev2\n\tike=aes256gcm16-prfsha256-curve25519\n\t\
         esp=aes256gcm16,chacha20poly1305\n\tkeylife=20m\n\trekeymargin=5m\n\tikelifetime=1h\n\tauto=add\n"
    );
    if rw {
        c.push_str(&format!(
            "conn rw\n\tleft={me}\n\tleftsubnet={lsub}\n\tright=%any\n\tauthby=secret\n\tauto=add\n"
        ));
    }
    c
}

fn node(me: Ipv4Addr, peer: Ipv4Addr, seed: u64) -> Pluto {
    let cfg = PlutoConfig {
        interfaces: vec![Interface {
            virt: "ipsec0".into(),
            phys: "eth0".into(),
            addr: me.into(),
        }],
        ..PlutoConfig::default()
    };
    let mut p = Pluto::new(cfg, Box::new(StdRng::seed_from_u64(seed)));
    let c = IpsecConf::parse_str(&conf(me, peer, me == EAST), "/etc/ipsec.conf")
        .expect("harness conf parses");
    assert!(p.load_conns(&c).is_empty());
    p.load_secrets(
        Secrets::parse_str(
            &format!("{WEST} {EAST} : PSK \"fuzz psk\"\n%any {EAST} : PSK \"rw psk\"\n"),
            "/etc/ipsec.secrets",
        )
        .expect("harness secrets parse"),
    );
    p
}

/// One fuzzed operation.
#[derive(Debug, Arbitrary)]
enum Op {
    /// Deliver the oldest datagram in flight.
    Deliver,
    /// Deliver everything until quiet.
    Run,
    /// Lose the oldest datagram in flight.
    Drop,
    /// Deliver the oldest datagram twice.
    Duplicate,
    /// Change bytes of the oldest datagram, then deliver it.
    Mutate(Vec<(u16, u8)>),
    /// A raw datagram to B (or A), on port 500 (or 4500).
    Inject {
        to_a: bool,
        port4500: bool,
        data: Vec<u8>,
    },
    /// Let time pass (seconds).
    Wait(u16),
    /// A whack command on A (or B): up, down, status, delete the first state.
    Whack { on_b: bool, cmd: u8, conn: u8 },
    /// A message sealed with the keys of the receiver's IKE SA `sa` (an index).
    Sealed {
        to_a: bool,
        sa: u8,
        exchange: u8,
        response: bool,
        msgid_delta: i8,
        first: u8,
        chain: Vec<u8>,
    },
}

/// The fuzz input.
#[derive(Debug, Arbitrary)]
struct Input {
    /// Conn A brings up (index), if any.
    up: Option<u8>,
    /// Deliveries before the operations (`None`: until quiet).
    deliveries: Option<u8>,
    ops: Vec<Op>,
}

struct Flight {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

struct World {
    a: Pluto,
    b: Pluto,
    now: u64,
    flights: VecDeque<Flight>,
}

impl World {
    fn new() -> World {
        World {
            a: node(WEST, EAST, 1),
            b: node(EAST, WEST, 2),
            now: 0,
            flights: VecDeque::new(),
        }
    }

    fn drain(&mut self) {
        let now = self.now;
        for p in [&mut self.a, &mut self.b] {
            while let Some(o) = p.poll_output() {
                match o {
                    Output::Send {
                        local,
                        remote,
                        data,
                    } => {
                        if data == [0xff] {
                            assert_eq!(local.port(), NAT_T_PORT, "keepalive off port 4500");
                            continue;
                        }
                        let ike = if local.port() == NAT_T_PORT {
                            strip_non_esp_marker(&data)
                                .expect("IKE on port 4500 carries the non-ESP marker")
                                .to_vec()
                        } else {
                            data
                        };
                        if let Err(e) = Header::parse_datagram(&ike) {
                            panic!("Pluto sent a malformed IKEv2 message ({e}): {ike:02x?}");
                        }
                        if self.flights.len() >= MAX_FLIGHT {
                            self.flights.pop_front();
                        }
                        self.flights.push_back(Flight {
                            from: local,
                            to: remote,
                            data: ike,
                        });
                    }
                    Output::InstallSas { sas, .. } => {
                        for s in sas {
                            if let Err(e) = Sa::new(&s, s.dir.unwrap_or(Dir::Out), now) {
                                panic!("Pluto installs an SA the datapath cannot build: {e:?}");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn deliver(&mut self, f: &Flight) {
        let now = self.now;
        let p = if f.to.ip() == WEST {
            &mut self.a
        } else {
            &mut self.b
        };
        p.handle_datagram(now, f.to, f.from, &f.data);
        self.drain();
    }

    fn deliver_next(&mut self) {
        if let Some(f) = self.flights.pop_front() {
            self.deliver(&f);
        }
    }

    fn run(&mut self) {
        for _ in 0..MAX_RUN {
            if self.flights.is_empty() {
                return;
            }
            self.deliver_next();
        }
    }

    fn advance(&mut self, ms: u64) {
        let target = self.now.saturating_add(ms).min(MAX_TIME_MS);
        for _ in 0..MAX_TIMER_ROUNDS {
            let next = [&self.a, &self.b]
                .into_iter()
                .filter_map(|p| p.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for p in [&mut self.a, &mut self.b] {
                        if p.poll_timeout().is_some_and(|t| t <= now) {
                            p.handle_timeout(now);
                        }
                    }
                    self.drain();
                    self.run();
                }
                _ => {
                    self.now = self.now.max(target);
                    return;
                }
            }
        }
        panic!("timers never settle: still due at {} ms", self.now);
    }

    /// Seals `chain` for the receiver's `sa`-th IKEv2 SA with keys (as its peer would).
    #[allow(clippy::too_many_arguments)]
    fn sealed(
        &mut self,
        to_a: bool,
        sa: u8,
        exchange: u8,
        response: bool,
        msgid_delta: i8,
        first: u8,
        chain: &[u8],
    ) {
        let rx = if to_a { &self.a } else { &self.b };
        let ikes: Vec<_> = rx
            .sas
            .ikes()
            .filter(|s| s.exchange.v2().is_some_and(|x| x.keys.is_some()))
            .collect();
        if ikes.is_empty() {
            return;
        }
        let s = ikes[usize::from(sa) % ikes.len()];
        let Some(x) = s.exchange.v2() else {
            return;
        };
        let Some(keys) = &x.keys else {
            return;
        };
        // What the peer sends with: the other direction's keys of the receiver.
        let (sk_e, sk_a) = if s.initiator {
            (&keys.sk_er, &keys.sk_ar)
        } else {
            (&keys.sk_ei, &keys.sk_ai)
        };
        let a = keys.algs;
        let Ok(mut sk) = SkCipher::new(
            crate::crypto::default_provider(),
            a.enc,
            a.integ,
            sk_e,
            sk_a,
        ) else {
            return;
        };
        let base = if response {
            x.next_request.wrapping_sub(1)
        } else {
            x.peer_next_request
        };
        let mut flags = 0;
        if !s.initiator {
            flags |= Flags::INITIATOR.bits();
        }
        if response {
            flags |= Flags::RESPONSE.bits();
        }
        let exchange_type = match exchange % 5 {
            0 => ExchangeType::IkeAuth,
            1 => ExchangeType::CreateChildSa,
            2 => ExchangeType::Informational,
            3 => ExchangeType::IkeSaInit,
            _ => ExchangeType::from(exchange),
        };
        let header = Header {
            spi_i: IkeSpi(s.spi_i()),
            spi_r: IkeSpi(s.spi_r),
            next_payload: PayloadType::Encrypted,
            exchange_type,
            flags: Flags::from_bits(flags),
            message_id: base.wrapping_add(msgid_delta as u32),
        };
        let (local, remote) = (s.local, s.remote);
        let body_len = sk.body_len(chain.len());
        let Ok(sk_len) = u16::try_from(body_len + wire::GENERIC_HEADER_LEN) else {
            return;
        };
        let Ok(h) = header.to_bytes(usize::from(sk_len)) else {
            return;
        };
        let mut out = h.to_vec();
        out.push(first);
        out.push(0);
        out.extend_from_slice(&sk_len.to_be_bytes());
        let mut rng = StdRng::seed_from_u64(u64::from(first));
        let Ok(body) = sk.seal(&mut rng, &out, chain) else {
            return;
        };
        out.extend_from_slice(&body);
        let f = Flight {
            from: remote,
            to: local,
            data: out,
        };
        self.deliver(&f);
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Deliver => self.deliver_next(),
            Op::Run => self.run(),
            Op::Drop => {
                self.flights.pop_front();
            }
            Op::Duplicate => {
                if let Some(f) = self.flights.pop_front() {
                    self.deliver(&f);
                    self.deliver(&f);
                }
            }
            Op::Mutate(edits) => {
                if let Some(mut f) = self.flights.pop_front() {
                    for &(pos, val) in edits.iter().take(32) {
                        if !f.data.is_empty() {
                            let i = usize::from(pos) % f.data.len();
                            f.data[i] = val;
                        }
                    }
                    self.deliver(&f);
                }
            }
            Op::Inject {
                to_a,
                port4500,
                data,
            } => {
                let port = if *port4500 { NAT_T_PORT } else { IKE_PORT };
                let (me, peer) = if *to_a { (WEST, EAST) } else { (EAST, WEST) };
                let f = Flight {
                    from: SocketAddr::from((peer, port)),
                    to: SocketAddr::from((me, port)),
                    data: data.clone(),
                };
                self.deliver(&f);
            }
            Op::Wait(secs) => self.advance(u64::from(*secs) * 1000),
            Op::Whack { on_b, cmd, conn } => {
                let name = ["net", "gcm", "rw"][usize::from(*conn) % 3].to_string();
                let cmd = match cmd % 4 {
                    0 => WhackCmd::Up {
                        name,
                        asynchronous: true,
                    },
                    1 => WhackCmd::Down(name),
                    2 => WhackCmd::Status,
                    _ => {
                        let p = if *on_b { &self.b } else { &self.a };
                        match p.sas.serials().first() {
                            Some(s) => WhackCmd::DeleteState(*s),
                            None => WhackCmd::Status,
                        }
                    }
                };
                let now = self.now;
                let p = if *on_b { &mut self.b } else { &mut self.a };
                p.whack(now, WhackClient(1), cmd);
                self.drain();
            }
            Op::Sealed {
                to_a,
                sa,
                exchange,
                response,
                msgid_delta,
                first,
                chain,
            } => self.sealed(
                *to_a,
                *sa,
                *exchange,
                *response,
                *msgid_delta,
                *first,
                chain,
            ),
        }
    }
}

/// Harness of the `ikev2_engine` target (see the module documentation).
pub fn ikev2_engine(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut w = World::new();
    w.drain();
    if let Some(c) = input.up {
        let name = ["net", "gcm"][usize::from(c) % 2].to_string();
        w.a.whack(
            0,
            WhackClient(0),
            WhackCmd::Up {
                name,
                asynchronous: true,
            },
        );
        w.drain();
        match input.deliveries {
            None => w.run(),
            Some(n) => {
                for _ in 0..n {
                    w.deliver_next();
                }
            }
        }
    }
    for op in input.ops.iter().take(MAX_OPS) {
        w.op(op);
    }
    for p in [&w.a, &w.b] {
        if let Err(e) = p.sas.check_invariants() {
            panic!("SA table indexes drifted from the records: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness brings both conns up, and a sealed fuzzed chain reaches B's IKEv2 SA.
    #[test]
    fn harness_reaches_established_sas() {
        let mut w = World::new();
        w.drain();
        for name in ["net", "gcm"] {
            w.a.whack(
                0,
                WhackClient(0),
                WhackCmd::Up {
                    name: name.into(),
                    asynchronous: true,
                },
            );
            w.drain();
            w.run();
        }
        assert_eq!(w.a.sas.children().filter(|c| c.established).count(), 2);
        assert_eq!(w.b.sas.children().filter(|c| c.established).count(), 2);
        // An empty INFORMATIONAL request sealed with the keys: B answers it.
        let before = w.flights.len();
        w.sealed(false, 0, 2, false, 0, 0, &[]);
        assert_eq!(w.flights.len(), before + 1);
        // Time: child SA rekeys (CREATE_CHILD_SA, make-before-break) and DPD run; the
        // first `gcm` child SA is gone, replaced.
        let first_gcm = w.b.conns["gcm"].newest_ipsec;
        w.advance(30 * 60 * 1000);
        assert!(w.b.conns["gcm"].newest_ipsec.is_some());
        assert_ne!(w.b.conns["gcm"].newest_ipsec, first_gcm);
        assert!(first_gcm.is_some_and(|s| !w.b.sas.contains(s)));
        assert!(w.b.conns["net"].newest_ipsec.is_some());
        // Random bytes never panic.
        ikev2_engine(&[0u8; 64]);
        ikev2_engine(&(0..=255u8).cycle().take(3000).collect::<Vec<_>>());
    }
}
