//! The Pluto engine: three [`Pluto`] instances, west (A, 192.0.2.1), east (B, 198.51.100.7)
//! and a road warrior (C, 203.0.113.9), over an in-memory network, with a virtual clock and
//! seeded RNGs, so that a run is a pure function of the input.
//!
//! Both load the same conns — `net` (PSK, PFS, IPComp, DPD), `alt` (same hosts and IDs:
//! shares `net`'s ISAKMP SA; AH, no PFS, short lifetimes, `auto=route`), `host` (transport,
//! 3DES-MD5) and `rsa` (RSA signatures, `@west`/`@east`) — and east also a road-warrior
//! template `rw` (`right=%any`), which the road warrior's `rw` (its own address) and `rwnet`
//! (claiming west's client subnet) reach. MODP1024 keeps the DH cheap.
//!
//! [`pluto_engine`] reads a structured input ([`Input`], via `arbitrary`): a prologue (bring
//! one conn up and deliver some or all of the exchange) and a list of operations: deliver,
//! drop, duplicate or mutate datagrams in flight; inject raw datagrams from the peer or from
//! road warriors; let time pass (timers: retransmits, DPD, rekeys, expiries); whack commands;
//! acquires, SA events, usage reports and shunt scans. To get past encryption, operations
//! can re-encrypt an encrypted datagram in flight after changing its plaintext, or encrypt a
//! fuzzed plaintext (Main Mode messages 5/6, Quick Mode, Informational) with the keys of an
//! ISAKMP SA the receiver holds — optionally with the HASH (or RSA signature) the receiver
//! will check made right, so the payload parsers, proposal selection and state machines
//! after decryption and authentication see arbitrary input.
//!
//! [`pluto_first`] is the raw-bytes counterpart for unauthenticated input: a few datagrams
//! (Main Mode first messages and anything else) to a fresh responder.
//!
//! Invariants besides "no panic": every datagram Pluto sends is a well-formed ISAKMP message
//! (with the non-ESP marker on port 4500); every SA it installs can be built by the datapath;
//! timers make progress (no event stays due after `handle_timeout`).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::conf::IpsecConf;
use crate::config::secrets::Secrets;
use crate::klips::{Acquire, SaEvent};
use crate::pluto::crypto::PrivateKey;
use crate::pluto::ikev1::crypto as kc;
use crate::pluto::ikev1::msg::parse_chain;
use crate::pluto::ikev1::state::StateKind;
use crate::pluto::isakmp::natt::{strip_non_esp_marker, IKE_PORT, NAT_T_PORT};
use crate::pluto::isakmp::{ExchangeType, Flags, Header, PayloadType as PT};
use crate::pluto::proposal::AuthKind;
use crate::pluto::{
    ErouteOp, Interface, Output, Pluto, PlutoConfig, SerialNo, ShuntEroute, WhackClient, WhackCmd,
};
use crate::sadb::{Dir, Sa};
use crate::said::Said;

const WEST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const EAST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const ROADIE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
/// Most operations per input.
const MAX_OPS: usize = 48;
/// Most datagrams in flight (the oldest are lost beyond).
const MAX_FLIGHT: usize = 64;
/// Most deliveries of one "run until quiet".
const MAX_RUN: usize = 200;
/// Most simulated time per input (ms): ten hours, past every conn's first IPsec SA rekey
/// (`keylife` 8 h) and many of `alt`'s short lifetimes; more only slows the fuzzer down.
const MAX_TIME_MS: u64 = 10 * 3600 * 1000;
/// Log lines kept per node.
const MAX_LOGS: usize = 64;
/// Most timer rounds of one time step before the timers count as stuck.
const MAX_TIMER_ROUNDS: usize = 20_000;

/// Some other sender's address (no engine there).
fn stranger(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

/// One node's configuration.
struct Side {
    conf: IpsecConf,
    secrets: Secrets,
    rsa: PrivateKey,
}

struct Setup {
    a: Side,
    b: Side,
    c: Side,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let key = |seed| {
            PrivateKey::generate_with_exponent(&mut StdRng::seed_from_u64(seed), 1024, 3)
                .expect("RSA key")
        };
        let (wk, ek) = (key(11), key(12));
        let (wpub, epub) = (wk.public_key().to_text(), ek.public_key().to_text());
        let common = format!(
            "version 2\n\
             conn %default\n\tauthby=secret\n\tkeyingtries=2\n\tike=aes128-sha1-modp1024\n\
             conn net\n\tleft={WEST}\n\tleftsubnet=10.0.1.0/24\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\
             \tesp=aes128-sha1\n\tpfsgroup=modp1024\n\tcompress=yes\n\tdpddelay=10\n\tdpdtimeout=30\n\
             \tdpdaction=restart\n\tauto=add\n\
             conn alt\n\tleft={WEST}\n\tleftsubnet=10.0.3.0/24\n\tright={EAST}\n\trightsubnet=10.0.4.0/24\n\
             \tauth=ah\n\tesp=aes128-sha1\n\tpfs=no\n\tikelifetime=30m\n\tkeylife=20m\n\trekeymargin=3m\n\
             \tauto=route\n\
             conn host\n\tleft={WEST}\n\tright={EAST}\n\ttype=transport\n\tike=3des-md5-modp1024\n\
             \tesp=3des-md5\n\tpfs=no\n\tauto=add\n\
             conn rsa\n\tleft={WEST}\n\tleftid=@west\n\tleftsubnet=10.0.5.0/24\n\tright={EAST}\n\
             \trightid=@east\n\trightsubnet=10.0.6.0/24\n\tauthby=rsasig\n\tleftrsasigkey={wpub}\n\
             \trightrsasigkey={epub}\n\tauto=add\n"
        );
        let rw = format!(
            "conn rw\n\tleft={EAST}\n\tleftsubnet=10.0.2.0/24\n\tright=%any\n\tauto=add\n"
        );
        let roadie = format!(
            "version 2\n\
             conn %default\n\tauthby=secret\n\tkeyingtries=2\n\tike=aes128-sha1-modp1024\n\
             \tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauto=add\n\
             conn rw\n\tleft={ROADIE}\n\
             conn rwnet\n\tleft={ROADIE}\n\tleftsubnet=10.0.1.0/24\n"
        );
        let psk = format!("{WEST} {EAST}: PSK \"a very secret phrase\"\n");
        let rsa = |k: &PrivateKey| format!(": RSA {{\n{}\n\t}}\n", k.to_secrets_body("fuzz").as_str());
        let side = |conf: &str, secrets: String, rsa: PrivateKey| Side {
            conf: IpsecConf::parse_str(conf, "/etc/ipsec.conf").expect("fuzz ipsec.conf"),
            secrets: Secrets::parse_str(&secrets, "/etc/ipsec.secrets").expect("fuzz secrets"),
            rsa,
        };
        Setup {
            a: side(&common, format!("{psk}{}", rsa(&wk)), wk.clone()),
            b: side(
                &format!("{common}{rw}"),
                format!("{psk}{EAST} %any : PSK \"rw secret\"\n{}", rsa(&ek)),
                ek.clone(),
            ),
            c: side(
                &roadie,
                format!("{ROADIE} {EAST} : PSK \"rw secret\"\n"),
                wk.clone(),
            ),
        }
    })
}

/// One engine and the datapath facts the harness keeps for it.
struct Node {
    p: Pluto,
    side: &'static Side,
    /// SAs installed and not deleted.
    sas: Vec<Said>,
    /// Shunt eroutes in place (for shunt scans).
    shunts: Vec<ShuntEroute>,
    /// The latest log lines (for the harness's own tests).
    logs: VecDeque<String>,
}

impl Node {
    fn new(addr: Ipv4Addr, seed: u64, side: &'static Side) -> Node {
        let cfg = PlutoConfig {
            interfaces: vec![Interface {
                virt: "ipsec0".into(),
                phys: "eth0".into(),
                addr: addr.into(),
            }],
            ..PlutoConfig::default()
        };
        let mut p = Pluto::new(cfg, Box::new(StdRng::seed_from_u64(seed)));
        let errs = p.load_conns(&side.conf);
        assert!(errs.is_empty(), "fuzz conns load: {errs:?}");
        p.load_secrets(side.secrets.clone());
        Node {
            p,
            side,
            sas: Vec::new(),
            shunts: Vec::new(),
            logs: VecDeque::new(),
        }
    }
}

/// A datagram in flight (IKE bytes, without the non-ESP marker).
#[derive(Clone)]
struct Flight {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

struct World {
    a: Node,
    b: Node,
    c: Node,
    now: u64,
    flights: VecDeque<Flight>,
    next_client: u64,
}

/// The structured input of [`pluto_engine`].
#[derive(Arbitrary, Debug)]
pub struct Input {
    prologue: Prologue,
    ops: Vec<Op>,
}

/// West (or the road warrior: numbers after west's conns) brings conn number `conn` up (none
/// if out of range), then `deliveries` datagrams are delivered (all, until quiet, if `None`).
#[derive(Arbitrary, Debug)]
struct Prologue {
    conn: u8,
    deliveries: Option<u8>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Deliver the next `n + 1` datagrams in flight.
    Deliver(u8),
    /// Deliver until nothing is in flight.
    Run,
    /// Lose the next datagram.
    Drop,
    /// Deliver the next datagram twice.
    Duplicate,
    /// Deliver the next datagram with its bytes changed.
    Mutate(Vec<Edit>),
    /// Deliver the next datagram with its plaintext changed (re-encrypted with the keys the
    /// receiver will decrypt it with), optionally its HASH/SIG made right again.
    Reseal { edits: Vec<Edit>, fix_auth: bool },
    /// Encrypt a fuzzed plaintext for an ISAKMP SA the receiver holds.
    Sealed(Sealed),
    /// A datagram to node `to` from its usual peer (`from` 0), the road warrior (1) or a
    /// stranger's address.
    Raw {
        to: u8,
        from: u8,
        nat_t: bool,
        data: Vec<u8>,
    },
    /// Time passes (seconds); timers run, their datagrams join the flight (and, when `live`,
    /// are delivered at once, so rekeys complete on the way).
    Advance { secs: u16, live: bool },
    /// A whack command.
    Whack { node: u8, cmd: Cmd },
    /// A `%trap` caught a packet.
    Acquire {
        node: u8,
        src: u8,
        dst: u8,
        proto: u8,
        sport: u16,
        dport: u16,
    },
    /// The datapath reports an SA's soft or hard expiry.
    SaEvent { node: u8, hard: bool, pick: u8 },
    /// Usage report of every installed SA (`idle` seconds ago; 0: never used).
    Usage { node: u8, idle: u16 },
    /// Shunt scan (when due), each shunt having seen `packets` more packets.
    ShuntScan { node: u8, packets: u8 },
}

#[derive(Arbitrary, Debug)]
struct Sealed {
    /// The receiving node.
    to: u8,
    /// Which ISAKMP SA with keys of the receiver.
    sa: u8,
    kind: SealKind,
    msgid: u32,
    /// The first payload's type (the header's next payload).
    first: u8,
    plain: Vec<u8>,
    fix_auth: bool,
}

#[derive(Arbitrary, Debug)]
enum SealKind {
    /// Main Mode (message 5 or 6).
    Main,
    /// Quick Mode with a fresh Message ID (`None`) or that of an existing exchange.
    Quick(Option<u8>),
    /// Informational.
    Info,
}

#[derive(Arbitrary, Debug)]
enum Cmd {
    Up(u8, bool),
    Down(u8),
    Route(u8),
    Unroute(u8),
    Delete(u8),
    Add(u8),
    Replace(u8),
    Status,
    RereadSecrets,
    Listen(bool),
    DeleteState(u8),
    Debug(u8),
    Shutdown,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(u16, u8),
    Xor(u16, u8),
    Be16(u16, u16),
    Be32(u16, u32),
    Insert(u16, Vec<u8>),
    Remove(u16, u8),
    Truncate(u16),
}

fn apply(edits: &[Edit], v: &mut Vec<u8>) {
    for e in edits {
        let n = v.len();
        let at = |i: u16| usize::from(i) % n.max(1);
        match e {
            Edit::Set(i, b) if n > 0 => v[at(*i)] = *b,
            Edit::Xor(i, b) if n > 0 => v[at(*i)] ^= *b,
            Edit::Be16(i, x) if n >= 2 => {
                let i = usize::from(*i) % (n - 1);
                v[i..i + 2].copy_from_slice(&x.to_be_bytes());
            }
            Edit::Be32(i, x) if n >= 4 => {
                let i = usize::from(*i) % (n - 3);
                v[i..i + 4].copy_from_slice(&x.to_be_bytes());
            }
            Edit::Insert(i, bytes) => {
                let i = usize::from(*i) % (n + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove(i, len) if n > 0 => {
                let i = at(*i);
                let end = (i + usize::from(*len)).min(n);
                v.drain(i..end);
            }
            Edit::Truncate(len) => v.truncate(usize::from(*len)),
            _ => {}
        }
    }
}

/// How the receiver of an encrypted message will decrypt and authenticate it.
struct View {
    p1: SerialNo,
    exchange: ExchangeType,
    msgid: u32,
    iv: Vec<u8>,
    /// The Quick Mode exchange it belongs to: (state, Ni_b, Nr_b).
    p2: Option<(StateKind, Vec<u8>, Vec<u8>)>,
}

fn view(p: &Pluto, hdr: &Header) -> Option<View> {
    let p1 = p.find_p1(&hdr.initiator_cookie, &hdr.responder_cookie)?;
    let ph1 = p.sas.ike(p1)?.exchange.v1()?;
    let ch = ph1.choice.as_ref()?;
    ph1.keys.as_ref()?;
    let bs = ch.alg.enc.block_size();
    let msgid = hdr.message_id;
    let fresh = || kc::phase2_iv(ch.alg.prf, &ph1.iv, msgid, bs);
    let (iv, p2) = match hdr.exchange_type {
        ExchangeType::MainMode => (ph1.iv.clone(), None),
        ExchangeType::Informational => (fresh(), None),
        ExchangeType::QuickMode => {
            let q = p.sas.children_of(p1).find_map(|c| {
                let q = c.exchange.v1()?;
                (q.msgid == msgid).then_some((q.kind, q))
            });
            match q {
                Some((kind, q)) => (q.iv.clone(), Some((kind, q.ni.clone(), q.nr.clone()))),
                None => (fresh(), None),
            }
        }
        _ => return None,
    };
    Some(View {
        p1,
        exchange: hdr.exchange_type,
        msgid,
        iv,
        p2,
    })
}

/// Zero-pads to whole cipher blocks (at least one), as Pluto does.
fn pad(mut v: Vec<u8>, bs: usize) -> Vec<u8> {
    let n = v.len().div_ceil(bs).max(1) * bs;
    v.resize(n, 0);
    v
}

/// The payload that authenticates the message (its offset in `padded`) and the body the
/// receiver will accept there: Main Mode HASH_I/HASH_R (or the signature over it), Quick
/// Mode HASH(1)/(2)/(3), Informational HASH(1).
fn auth_body(
    p: &Pluto,
    v: &View,
    first: PT,
    padded: &[u8],
    signer: &PrivateKey,
) -> Option<(usize, Vec<u8>)> {
    let chain = parse_chain(first, padded, true).ok()?;
    let sa = p.sas.ike(v.p1)?;
    let p1 = sa.exchange.v1()?;
    let ch = p1.choice.as_ref()?;
    let keys = p1.keys.as_ref()?;
    let prf = ch.alg.prf;
    if v.exchange == ExchangeType::MainMode {
        let id_b = chain.get(PT::Id)?.raw.body();
        let hash = if sa.initiator { kc::hash_r } else { kc::hash_i };
        let h = hash(
            prf,
            &keys.skeyid,
            &p1.gxi,
            &p1.gxr,
            &sa.spi_i(),
            &sa.spi_r,
            &p1.sai_b,
            id_b,
        );
        return match ch.auth {
            AuthKind::Psk => Some((chain.get(PT::Hash)?.raw.offset, h)),
            AuthKind::Rsa => {
                let sig = signer.sign(&mut StdRng::seed_from_u64(0), &h).ok()?;
                Some((chain.get(PT::Signature)?.raw.offset, sig))
            }
        };
    }
    let f = chain.items.first()?;
    if f.raw.payload_type != PT::Hash {
        return None;
    }
    let after = padded.get(f.raw.bytes.len()..chain.end)?;
    let a = &keys.skeyid_a;
    let h = match (v.exchange, &v.p2) {
        (ExchangeType::Informational, _) => kc::informational_hash(prf, a, v.msgid, after),
        (_, Some((StateKind::QuickI1, ni, _))) => kc::quick_hash2(prf, a, v.msgid, ni, after),
        (_, Some((StateKind::QuickR1, ni, nr))) => kc::quick_hash3(prf, a, v.msgid, ni, nr),
        _ => kc::quick_hash1(prf, a, v.msgid, after),
    };
    Some((0, h))
}

/// `plain` padded, with its authenticating payload's body replaced by what the receiver
/// computes (when the chain parses and has one).
fn fix_auth(
    p: &Pluto,
    v: &View,
    first: PT,
    plain: Vec<u8>,
    bs: usize,
    signer: &PrivateKey,
) -> Vec<u8> {
    let padded = pad(plain, bs);
    let Some((off, body)) = auth_body(p, v, first, &padded, signer) else {
        return padded;
    };
    let old = usize::from(u16::from_be_bytes([padded[off + 2], padded[off + 3]]));
    let Ok(len) = u16::try_from(4 + body.len()) else {
        return padded;
    };
    let mut fixed = padded[..off + 2].to_vec();
    fixed.extend_from_slice(&len.to_be_bytes());
    fixed.extend_from_slice(&body);
    fixed.extend_from_slice(padded.get(off + old..).unwrap_or_default());
    let mut fixed = pad(fixed, bs);
    if v.exchange != ExchangeType::MainMode {
        // The hashed bytes follow the HASH payload: take them from the final layout.
        if let Some((0, h)) = auth_body(p, v, first, &fixed, signer) {
            if h.len() == body.len() {
                fixed[4..4 + h.len()].copy_from_slice(&h);
            }
        }
    }
    fixed
}

/// The RSA key that signs what `to` receives: west's for east, east's for the others.
fn signer(to: Ipv4Addr) -> &'static PrivateKey {
    if to == EAST {
        &setup().a.rsa
    } else {
        &setup().b.rsa
    }
}

/// Encrypts `plain` (header `hdr`, E flag set) the way the receiver `p` will decrypt it.
fn seal(
    p: &Pluto,
    hdr: &Header,
    plain: Vec<u8>,
    fix: bool,
    signer: &PrivateKey,
) -> Option<Vec<u8>> {
    let v = view(p, hdr)?;
    let ph1 = p.sas.ike(v.p1)?.exchange.v1()?;
    let cipher = ph1.cipher.as_ref()?;
    let bs = cipher.block_size();
    let plain = if fix {
        fix_auth(p, &v, hdr.next_payload, plain, bs, signer)
    } else {
        pad(plain, bs)
    };
    let (ct, _) = kc::encrypt_body(cipher, &v.iv, &plain).ok()?;
    let mut hdr = *hdr;
    hdr.flags = hdr.flags | Flags::ENCRYPTION;
    let mut out = hdr.to_bytes(ct.len()).ok()?.to_vec();
    out.extend_from_slice(&ct);
    Some(out)
}

impl World {
    fn new() -> World {
        let s = setup();
        World {
            a: Node::new(WEST, 1, &s.a),
            b: Node::new(EAST, 2, &s.b),
            c: Node::new(ROADIE, 3, &s.c),
            now: 0,
            flights: VecDeque::new(),
            next_client: 1,
        }
    }

    /// Node `i` (mod 3): west, east, road warrior.
    fn node(&mut self, i: u8) -> &mut Node {
        match i % 3 {
            0 => &mut self.a,
            1 => &mut self.b,
            _ => &mut self.c,
        }
    }

    /// The node at `addr`.
    fn node_at(&self, addr: Ipv4Addr) -> Option<&Node> {
        match addr {
            WEST => Some(&self.a),
            EAST => Some(&self.b),
            ROADIE => Some(&self.c),
            _ => None,
        }
    }

    /// Takes both nodes' outputs: datagrams join the flight, SAs and shunts the models.
    fn drain(&mut self) {
        let now = self.now;
        for node in [&mut self.a, &mut self.b, &mut self.c] {
            while let Some(o) = node.p.poll_output() {
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
                        // Responders accept IKEv2 too: its answers are IKEv2 messages.
                        if ike.get(17).map(|v| v >> 4) == Some(2) {
                            if let Err(e) = crate::pluto::ikev2::wire::Header::parse_datagram(&ike)
                            {
                                panic!("Pluto sent a malformed IKEv2 message ({e}): {ike:02x?}");
                            }
                        } else if let Err(e) = Header::parse_datagram(&ike) {
                            panic!("Pluto sent a malformed ISAKMP message ({e}): {ike:02x?}");
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
                            if !node.sas.contains(&s.said) {
                                node.sas.push(s.said);
                            }
                        }
                    }
                    Output::DeleteSas { saids } => node.sas.retain(|s| !saids.contains(s)),
                    Output::Eroute { op, src, dst, said } => {
                        node.shunts.retain(|e| (e.src, e.dst) != (src, dst));
                        if let (ErouteOp::Add | ErouteOp::Replace, Some(shunt)) = (op, said.shunt())
                        {
                            node.shunts.push(ShuntEroute {
                                src,
                                dst,
                                shunt,
                                packets: 0,
                            });
                        }
                    }
                    Output::Log(l) => {
                        if node.logs.len() >= MAX_LOGS {
                            node.logs.pop_front();
                        }
                        node.logs.push_back(l);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Hands a datagram to the node at its destination (others are lost).
    fn deliver(&mut self, f: &Flight) {
        let now = self.now;
        let node = match to_v4(f.to) {
            WEST => &mut self.a,
            EAST => &mut self.b,
            ROADIE => &mut self.c,
            _ => return,
        };
        node.p.handle_datagram(now, f.to, f.from, &f.data);
        self.drain();
    }

    fn deliver_next(&mut self) -> bool {
        match self.flights.pop_front() {
            Some(f) => {
                self.deliver(&f);
                true
            }
            None => false,
        }
    }

    fn run(&mut self) {
        for _ in 0..MAX_RUN {
            if !self.deliver_next() {
                return;
            }
        }
    }

    /// Lets `ms` pass, running every timer that falls due on the way (and delivering what
    /// they send at once when `live`).
    fn advance(&mut self, ms: u64, live: bool) {
        let target = self.now.saturating_add(ms).min(MAX_TIME_MS);
        for _ in 0..MAX_TIMER_ROUNDS {
            let next = [&self.a, &self.b, &self.c]
                .into_iter()
                .filter_map(|n| n.p.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for node in [&mut self.a, &mut self.b, &mut self.c] {
                        if node.p.poll_timeout().is_some_and(|t| t <= now) {
                            node.p.handle_timeout(now);
                        }
                    }
                    self.drain();
                    if live {
                        self.run();
                    }
                }
                _ => {
                    self.now = self.now.max(target);
                    return;
                }
            }
        }
        panic!("timers never settle: still due at {} ms", self.now);
    }

    fn whack(&mut self, node: u8, cmd: &Cmd) {
        let client = self.next_client;
        self.next_client += 1;
        let now = self.now;
        let node = self.node(node);
        let conns: Vec<String> = node.p.conns.keys().cloned().collect();
        let sections = &node.side.conf.conns;
        let name = |i: &u8| conns.get(usize::from(*i) % conns.len().max(1)).cloned();
        let section = |i: &u8| sections[usize::from(*i) % sections.len()].clone();
        let cmd = match cmd {
            Cmd::Up(i, asynchronous) => name(i).map(|name| WhackCmd::Up {
                name,
                asynchronous: *asynchronous,
            }),
            Cmd::Down(i) => name(i).map(WhackCmd::Down),
            Cmd::Route(i) => name(i).map(WhackCmd::Route),
            Cmd::Unroute(i) => name(i).map(WhackCmd::Unroute),
            Cmd::Delete(i) => name(i).map(WhackCmd::Delete),
            Cmd::Add(i) => Some(WhackCmd::Add(section(i))),
            Cmd::Replace(i) => Some(WhackCmd::Replace(section(i))),
            Cmd::Status => Some(WhackCmd::Status),
            Cmd::RereadSecrets => Some(WhackCmd::RereadSecrets(node.side.secrets.clone())),
            Cmd::Listen(fresh) => Some(WhackCmd::Listen(fresh.then(|| node.side.secrets.clone()))),
            Cmd::DeleteState(i) => {
                let serials: Vec<SerialNo> = node.p.sas.serials();
                serials
                    .get(usize::from(*i) % serials.len().max(1))
                    .map(|s| WhackCmd::DeleteState(*s))
            }
            Cmd::Debug(i) => Some(WhackCmd::Debug(
                ["none", "all", "all private", "control lifecycle klips"][usize::from(*i) % 4]
                    .into(),
            )),
            Cmd::Shutdown => Some(WhackCmd::Shutdown),
        };
        if let Some(cmd) = cmd {
            node.p.whack(now, WhackClient(client), cmd);
        }
        self.drain();
    }

    /// The next datagram in flight with its plaintext changed (see [`Op::Reseal`]).
    fn reseal(&self, f: &Flight, edits: &[Edit], fix: bool) -> Vec<u8> {
        let mut raw = f.data.clone();
        let Some(node) = self.node_at(to_v4(f.to)) else {
            return raw;
        };
        let resealed = (|| {
            let (hdr, body) = Header::parse_datagram(&f.data).ok()?;
            if !hdr.flags.encrypted() {
                return None;
            }
            let v = view(&node.p, &hdr)?;
            let ph1 = node.p.sas.ike(v.p1)?.exchange.v1()?;
            let cipher = ph1.cipher.as_ref()?;
            let (mut plain, _) = kc::decrypt_body(cipher, &v.iv, body).ok()?;
            apply(edits, &mut plain);
            let signer = signer(to_v4(f.to));
            seal(&node.p, &hdr, plain, fix, signer)
        })();
        match resealed {
            Some(d) => d,
            None => {
                apply(edits, &mut raw);
                raw
            }
        }
    }

    fn sealed(&mut self, s: &Sealed) {
        let to = [WEST, EAST, ROADIE][usize::from(s.to % 3)];
        let (Some(node), signer) = (self.node_at(to), signer(to)) else {
            return;
        };
        let p1s: Vec<SerialNo> = node
            .p
            .sas
            .ikes()
            .filter(|st| st.exchange.v1().is_some_and(|p| p.keys.is_some()))
            .map(|st| st.serial())
            .collect();
        let Some(&p1) = p1s.get(usize::from(s.sa) % p1s.len().max(1)) else {
            return;
        };
        let Some(ph1) = node.p.sas.ike(p1) else {
            return;
        };
        let (exchange, message_id) = match s.kind {
            SealKind::Main => (ExchangeType::MainMode, 0),
            SealKind::Info => (ExchangeType::Informational, s.msgid),
            SealKind::Quick(None) => (ExchangeType::QuickMode, s.msgid),
            SealKind::Quick(Some(i)) => {
                let ids: Vec<u32> = node
                    .p
                    .sas
                    .children_of(p1)
                    .filter_map(|c| c.exchange.v1().map(|q| q.msgid))
                    .collect();
                (
                    ExchangeType::QuickMode,
                    ids.get(usize::from(i) % ids.len().max(1))
                        .copied()
                        .unwrap_or(s.msgid),
                )
            }
        };
        let hdr = Header {
            initiator_cookie: ph1.spi_i(),
            responder_cookie: ph1.spi_r,
            next_payload: PT::from(s.first),
            exchange_type: exchange,
            flags: Flags::ENCRYPTION,
            message_id,
        };
        let (local, remote) = (ph1.local, ph1.remote);
        if let Some(data) = seal(&node.p, &hdr, s.plain.clone(), s.fix_auth, signer) {
            self.deliver(&Flight {
                from: remote,
                to: local,
                data,
            });
        }
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Deliver(n) => {
                for _ in 0..=*n {
                    if !self.deliver_next() {
                        break;
                    }
                }
            }
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
                    apply(edits, &mut f.data);
                    self.deliver(&f);
                }
            }
            Op::Reseal { edits, fix_auth } => {
                if let Some(mut f) = self.flights.pop_front() {
                    f.data = self.reseal(&f, edits, *fix_auth);
                    self.deliver(&f);
                }
            }
            Op::Sealed(s) => self.sealed(s),
            Op::Raw {
                to,
                from,
                nat_t,
                data,
            } => {
                let me = [WEST, EAST, ROADIE][usize::from(to % 3)];
                let port = if *nat_t { NAT_T_PORT } else { IKE_PORT };
                let src = match (from, me) {
                    (0, EAST) => WEST,
                    (0, _) => EAST,
                    (1, _) => ROADIE,
                    (n, _) => stranger(*n),
                };
                self.deliver(&Flight {
                    from: SocketAddr::from((src, port)),
                    to: SocketAddr::from((me, port)),
                    data: data.clone(),
                });
            }
            Op::Advance { secs, live } => self.advance(u64::from(*secs) * 1000, *live),
            Op::Whack { node, cmd } => self.whack(*node, cmd),
            Op::Acquire {
                node,
                src,
                dst,
                proto,
                sport,
                dport,
            } => {
                let (mine, theirs) = if node % 3 == 1 {
                    ([10, 0, 2, 9], [10, 0, 1, 5])
                } else {
                    ([10, 0, 1, 5], [10, 0, 2, 9])
                };
                let pick = |base: [u8; 4], sel: u8| match sel % 5 {
                    4 => Ipv4Addr::new(10, 9, 9, sel),
                    n => Ipv4Addr::new(base[0], base[1], base[2] + 2 * n, base[3]),
                };
                let now = self.now;
                let a = Acquire {
                    src: pick(mine, *src).into(),
                    dst: pick(theirs, *dst).into(),
                    proto: *proto,
                    sport: *sport,
                    dport: *dport,
                };
                self.node(*node).p.handle_acquire(now, a);
                self.drain();
            }
            Op::SaEvent { node, hard, pick } => {
                let now = self.now;
                let node = self.node(*node);
                let Some(&said) = node.sas.get(usize::from(*pick) % node.sas.len().max(1)) else {
                    return;
                };
                let e = if *hard {
                    node.sas.retain(|s| *s != said);
                    SaEvent::HardExpired(said)
                } else {
                    SaEvent::SoftExpired(said)
                };
                node.p.handle_sa_event(now, e);
                self.drain();
            }
            Op::Usage { node, idle } => {
                let now = self.now;
                let node = self.node(*node);
                let used = (*idle > 0).then(|| u64::from(*idle) * 1000);
                let usage: Vec<(Said, Option<u64>)> = node.sas.iter().map(|s| (*s, used)).collect();
                node.p.handle_sa_usage(now, &usage);
                self.drain();
            }
            Op::ShuntScan { node, packets } => {
                let now = self.now;
                let node = self.node(*node);
                if node.p.shunt_scan_due(now) {
                    for s in &mut node.shunts {
                        s.packets += u64::from(*packets);
                    }
                    let shunts = node.shunts.clone();
                    node.p.handle_shunt_scan(now, &shunts);
                    self.drain();
                }
            }
        }
    }
}

/// Harness of the `pluto_engine` target (see the module docs).
pub fn pluto_engine(data: &[u8]) {
    engine_run(data, |_| {});
}

/// [`pluto_engine`], calling `each` after the prologue and after every operation.
fn engine_run(data: &[u8], mut each: impl FnMut(&mut World)) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut w = World::new();
    w.drain();
    let conns: Vec<(u8, String)> = [0u8, 2]
        .into_iter()
        .flat_map(|n| {
            let names: Vec<String> = w.node(n).p.conns.keys().cloned().collect();
            names.into_iter().map(move |c| (n, c))
        })
        .collect();
    if let Some((node, name)) = conns.get(usize::from(input.prologue.conn)) {
        w.node(*node).p.whack(
            0,
            WhackClient(0),
            WhackCmd::Up {
                name: name.clone(),
                asynchronous: true,
            },
        );
        w.drain();
        match input.prologue.deliveries {
            None => w.run(),
            Some(n) => {
                for _ in 0..n {
                    w.deliver_next();
                }
            }
        }
    }
    each(&mut w);
    for op in input.ops.iter().take(MAX_OPS) {
        w.op(op);
        each(&mut w);
    }
}

/// Harness of the `pluto_first` target: datagrams (flag byte, u16 length, bytes) to fresh
/// engines; flag bit 0: port 4500, bits 1-2: from the peer (0), the road warrior (1) or a
/// stranger, bit 3: to west instead of east. Then the half-open timers run out.
pub fn pluto_first(data: &[u8]) {
    let mut w = World::new();
    w.drain();
    let mut rest = data;
    while let [flags, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (dgram, more) = tail.split_at(len);
        rest = more;
        let port = if flags & 1 != 0 { NAT_T_PORT } else { IKE_PORT };
        let (me, peer) = if flags & 8 != 0 {
            (WEST, EAST)
        } else {
            (EAST, WEST)
        };
        let src = match (flags >> 1) & 3 {
            0 => peer,
            1 => ROADIE,
            n => stranger(n),
        };
        w.deliver(&Flight {
            from: SocketAddr::from((src, port)),
            to: SocketAddr::from((me, port)),
            data: dgram.to_vec(),
        });
        w.now += 1000;
    }
    w.advance(120_000, false);
}

/// Seed inputs for `pluto_first` (name, bytes): the datagrams east receives in a real
/// exchange of each conn started by west or the road warrior (Main Mode and Quick Mode, in
/// `pluto_first`'s record format). They replay exactly against fresh engines — the RNGs are
/// seeded, so east answers with the same cookies — and give the fuzzer whole exchanges to
/// mutate.
#[cfg(test)]
pub(crate) fn first_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for node in [0u8, 2] {
        let names: Vec<String> = World::new().node(node).p.conns.keys().cloned().collect();
        for name in names {
            let mut w = World::new();
            w.drain();
            w.node(node).p.whack(
                0,
                WhackClient(0),
                WhackCmd::Up {
                    name: name.clone(),
                    asynchronous: true,
                },
            );
            w.drain();
            let mut bytes = Vec::new();
            for _ in 0..MAX_RUN {
                let Some(f) = w.flights.pop_front() else {
                    break;
                };
                if to_v4(f.to) == EAST {
                    let from_roadie = if node == 2 { 2 } else { 0 };
                    bytes.push(u8::from(f.to.port() == NAT_T_PORT) | from_roadie);
                    bytes.extend_from_slice(&(f.data.len() as u16).to_le_bytes());
                    bytes.extend_from_slice(&f.data);
                }
                w.deliver(&f);
            }
            let who = if node == 2 { "roadie" } else { "west" };
            seeds.push((format!("{who}-{name}"), bytes));
        }
    }
    seeds
}

/// The IPv4 address of a datagram's destination (the fuzzed nodes are IPv4).
fn to_v4(a: SocketAddr) -> Ipv4Addr {
    match a.ip() {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a corpus reaches: the distinct log lines (digits and hex folded) the inputs in
    /// `$RSWAN_FUZZ_CORPUS` make either engine write, with counts. A tool for judging a
    /// fuzzing run: `RSWAN_FUZZ_CORPUS=fuzz/corpus/pluto_engine cargo test --lib
    /// fuzzing::pluto::tests::corpus_reach -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn corpus_reach() {
        let dir = std::env::var("RSWAN_FUZZ_CORPUS").expect("RSWAN_FUZZ_CORPUS");
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for e in std::fs::read_dir(dir).expect("corpus dir") {
            // A running fuzzer may remove inputs meanwhile.
            let Ok(data) = std::fs::read(e.expect("entry").path()) else {
                continue;
            };
            engine_run(&data, |w| {
                let logs: Vec<String> = [&mut w.a, &mut w.b, &mut w.c]
                    .into_iter()
                    .flat_map(|n| n.logs.drain(..).collect::<Vec<_>>())
                    .collect();
                for l in logs {
                    let mut norm = String::new();
                    for word in l.split(' ') {
                        let hexy = word.chars().filter(|c| c.is_ascii_hexdigit()).count() > 6;
                        norm.push_str(if hexy { "X" } else { word });
                        norm.push(' ');
                    }
                    let norm: String = norm
                        .chars()
                        .map(|c| if c.is_ascii_digit() { 'N' } else { c })
                        .collect();
                    *seen.entry(norm).or_default() += 1;
                }
            });
        }
        for (l, n) in &seen {
            println!("{n:8} {l}");
        }
    }

    /// The seeds replay a whole exchange: east ends with an ISAKMP SA and, but for a claim it
    /// refuses, an IPsec SA.
    #[test]
    fn first_seeds_replay_whole_exchanges() {
        let seeds = first_seeds();
        assert_eq!(seeds.len(), 6);
        for (name, bytes) in &seeds {
            let mut w = World::new();
            w.drain();
            let mut rest = &bytes[..];
            while let [flags, l0, l1, tail @ ..] = rest {
                let len = usize::from(u16::from_le_bytes([*l0, *l1]));
                let port = if flags & 1 != 0 { NAT_T_PORT } else { IKE_PORT };
                let from = if flags & 2 != 0 { ROADIE } else { WEST };
                w.deliver(&Flight {
                    from: SocketAddr::from((from, port)),
                    to: SocketAddr::from((EAST, port)),
                    data: tail[..len].to_vec(),
                });
                rest = &tail[len..];
            }
            assert_eq!(
                count(&w.b, StateKind::isakmp_established),
                1,
                "{name}: {:?}",
                w.b.logs
            );
            // The road warrior's claim of west's client subnet is refused.
            let ipsec = usize::from(name != "roadie-rwnet");
            assert_eq!(
                count(&w.b, StateKind::ipsec_established),
                ipsec,
                "{name}: {:?}",
                w.b.logs
            );
        }
    }

    fn up(w: &mut World, conn: &str, deliveries: Option<usize>) {
        w.drain();
        w.a.p.whack(
            0,
            WhackClient(0),
            WhackCmd::Up {
                name: conn.into(),
                asynchronous: true,
            },
        );
        w.drain();
        match deliveries {
            None => w.run(),
            Some(n) => (0..n).for_each(|_| {
                w.deliver_next();
            }),
        }
    }

    fn count(n: &Node, f: impl Fn(StateKind) -> bool) -> usize {
        let ikes =
            n.p.sas
                .ikes()
                .filter_map(|s| s.exchange.v1())
                .map(|x| x.kind);
        let children =
            n.p.sas
                .children()
                .filter_map(|c| c.exchange.v1())
                .map(|q| q.kind);
        ikes.chain(children).filter(|k| f(*k)).count()
    }

    fn logged(n: &Node, s: &str) -> bool {
        n.logs.iter().any(|l| l.contains(s))
    }

    /// A generic payload header and body.
    fn payload(next: PT, body: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::from(next), 0];
        v.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn sealed(to_b: bool, kind: SealKind, msgid: u32, first: PT, plain: Vec<u8>, fix: bool) -> Op {
        Op::Sealed(Sealed {
            to: u8::from(to_b),
            sa: 0,
            kind,
            msgid,
            first: u8::from(first),
            plain,
            fix_auth: fix,
        })
    }

    #[test]
    fn every_conn_establishes() {
        for conn in ["net", "alt", "host", "rsa"] {
            let mut w = World::new();
            up(&mut w, conn, None);
            for n in [&w.a, &w.b] {
                assert_eq!(count(n, StateKind::isakmp_established), 1, "{conn}");
                assert_eq!(count(n, StateKind::ipsec_established), 1, "{conn}");
            }
            assert!(!w.a.sas.is_empty() && !w.b.sas.is_empty());
        }
    }

    /// The road warrior gets in through east's template conn.
    #[test]
    fn road_warrior_reaches_the_template() {
        let mut w = World::new();
        w.drain();
        w.c.p.whack(
            0,
            WhackClient(0),
            WhackCmd::Up {
                name: "rw".into(),
                asynchronous: true,
            },
        );
        w.drain();
        w.run();
        assert_eq!(
            count(&w.c, StateKind::ipsec_established),
            1,
            "{:?}",
            w.c.logs
        );
        let rw = w.b.p.sas.children().filter(|c| c.established);
        assert!(rw
            .map(|c| c.conn().to_string())
            .all(|c| c.starts_with("rw")));
        assert_eq!(
            count(&w.b, StateKind::ipsec_established),
            1,
            "{:?}",
            w.b.logs
        );
    }

    /// Main Mode message 5 made of a fuzzed plaintext: with the HASH made right east
    /// establishes, otherwise it refuses.
    #[test]
    fn sealed_main_mode_message_5() {
        for (conn, fix) in [("net", true), ("net", false), ("rsa", true)] {
            let mut w = World::new();
            // MI1, MR1, MI2, MR2: west's MI3 is in flight.
            up(&mut w, conn, Some(4));
            assert_eq!(count(&w.b, |k| k == StateKind::MainR2), 1);
            w.flights.clear();
            let (id, auth) = if conn == "rsa" {
                ([&[2u8, 0, 0, 0][..], b"west"].concat(), PT::Signature)
            } else {
                ([&[1u8, 0, 0, 0][..], &WEST.octets()].concat(), PT::Hash)
            };
            let plain = [payload(auth, &id), payload(PT::None, &[0; 20])].concat();
            w.op(&sealed(true, SealKind::Main, 0, PT::Id, plain, fix));
            let up = count(&w.b, StateKind::isakmp_established);
            assert_eq!(up, usize::from(fix), "{conn} {fix}: {:?}", w.b.logs);
        }
    }

    /// A fuzzed Quick Mode first message gets past HASH(1) only when it is made right.
    #[test]
    fn sealed_quick_mode_hash() {
        for fix in [true, false] {
            let mut w = World::new();
            up(&mut w, "host", None);
            let plain = [payload(PT::Nonce, &[0; 20]), payload(PT::None, &[7; 16])].concat();
            w.op(&sealed(
                true,
                SealKind::Quick(None),
                0x1234,
                PT::Hash,
                plain,
                fix,
            ));
            assert_eq!(
                logged(&w.b, "HASH(1) does not match"),
                !fix,
                "{:?}",
                w.b.logs
            );
            assert_eq!(
                logged(&w.b, "missing payload ISAKMP_NEXT_SA"),
                fix,
                "{:?}",
                w.b.logs
            );
        }
    }

    /// An authenticated Delete of the ISAKMP SA, encrypted for east, is honoured.
    #[test]
    fn sealed_informational_delete() {
        let mut w = World::new();
        up(&mut w, "host", None);
        let ph1 = w.b.p.sas.ikes().next().expect("ISAKMP SA");
        let mut del = vec![0, 0, 0, 1, 1, 16, 0, 1];
        del.extend_from_slice(&ph1.spi_i());
        del.extend_from_slice(&ph1.spi_r);
        let plain = [payload(PT::Delete, &[0; 20]), payload(PT::None, &del)].concat();
        w.op(&sealed(true, SealKind::Info, 77, PT::Hash, plain, true));
        assert_eq!(
            count(&w.b, StateKind::isakmp_established),
            0,
            "{:?}",
            w.b.logs
        );
    }

    /// Re-encrypting a datagram in flight without changes keeps the exchange working.
    #[test]
    fn reseal_round_trip() {
        let mut w = World::new();
        up(&mut w, "net", Some(4));
        for _ in 0..8 {
            w.op(&Op::Reseal {
                edits: Vec::new(),
                fix_auth: false,
            });
        }
        w.run();
        for n in [&w.a, &w.b] {
            assert_eq!(count(n, StateKind::ipsec_established), 1, "{:?}", n.logs);
        }
    }

    /// Time passing runs DPD, rekeys and expiries without the timers getting stuck.
    #[test]
    fn hours_of_timers() {
        let mut w = World::new();
        up(&mut w, "alt", None);
        w.advance(MAX_TIME_MS, true);
        assert!(w.now >= MAX_TIME_MS);
        assert_eq!(
            count(&w.a, StateKind::ipsec_established),
            1,
            "{:?}",
            w.a.logs
        );
        assert!(logged(&w.a, "to replace #"), "{:?}", w.a.logs);
    }
}
