//! One security association: its identity, transform (IPIP, IPComp, ESP or AH) with keyed crypto,
//! anti-replay window, lifetimes and live counters, and its `ipsec spi` line (spec 5.4).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::addr::Subnet;
use crate::crypto::{self, AuthAlg, EncAlg, Integrity};
use crate::said::{Proto, Said};
use crate::xform::esp::EspCrypto;
use crate::xform::ipcomp::IpcompState;

use super::lifetime::{Expiry, LifeCurrent, Lifetimes};
use super::replay::{ReplayError, ReplayWindow};

/// Direction of an SA relative to this gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Decapsulates packets arriving for us.
    In,
    /// Encapsulates packets we send.
    Out,
}

/// ESP-in-UDP encapsulation ports (RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEncap {
    /// Source port of outgoing datagrams (ours, normally 4500).
    pub sport: u16,
    /// Destination port (the peer's, normally 4500).
    pub dport: u16,
}

/// How to build an SA: what `ipsec spi`, `ipsec manual` and the keying daemon hand the SADB.
#[derive(Clone, Debug)]
pub struct SaSpec {
    /// Identity.
    pub said: Said,
    /// Source address (outer source for tunnel mode; checked on inbound); the same family as
    /// `said.dst`.
    pub src: IpAddr,
    /// Direction; when None it is derived: inbound if `said.dst` is one of our addresses.
    pub dir: Option<Dir>,
    /// The transform.
    pub xform: XformSpec,
    /// Replay window (0 = off).
    pub replay_window: u32,
    /// Lifetime limits.
    pub life: Lifetimes,
    /// ESP-in-UDP ports, for ESP SAs that ride in UDP 4500.
    pub encap: Option<UdpEncap>,
    /// For inbound SAs: (source, destination) networks decapsulated packets must lie in.
    pub policy: Option<(Subnet, Subnet)>,
}

/// The transform part of an [`SaSpec`]. Keys are wiped when the spec is dropped.
#[derive(Clone, Debug)]
pub enum XformSpec {
    /// IP-in-IP.
    Ipip,
    /// IPComp DEFLATE.
    Deflate,
    /// ESP.
    Esp {
        /// Cipher.
        enc: EncAlg,
        /// Cipher key (plus salt for GCM).
        enckey: KeyBytes,
        /// Integrity algorithm (None for AEAD, or for ESP under AH).
        auth: Option<AuthAlg>,
        /// Integrity key.
        authkey: KeyBytes,
    },
    /// AH.
    Ah {
        /// Integrity algorithm.
        auth: AuthAlg,
        /// Integrity key.
        authkey: KeyBytes,
    },
}

/// Key bytes that are overwritten when dropped and never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyBytes(pub Vec<u8>);

impl Drop for KeyBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // black_box keeps the compiler from eliding stores to memory about to be freed.
            *b = std::hint::black_box(0);
        }
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<key {} bits>", self.0.len() * 8)
    }
}

/// The keyed transform of a live SA.
pub enum Xform {
    /// IP-in-IP.
    Ipip,
    /// IPComp with its adaptive state.
    Deflate(Mutex<IpcompState>),
    /// ESP.
    Esp {
        /// Keyed cipher and integrity.
        crypto: EspCrypto,
        /// Cipher.
        enc: EncAlg,
        /// Integrity.
        auth: Option<AuthAlg>,
    },
    /// AH.
    Ah {
        /// Keyed integrity.
        integ: Box<dyn Integrity>,
        /// Algorithm.
        auth: AuthAlg,
    },
}

impl std::fmt::Debug for Xform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Xform {
    /// KLIPS' transform name: `IPIP`, `COMP_DEFLATE`, `ESP_3DES_HMAC_SHA1`, `AH_HMAC_MD5`, ….
    pub fn name(&self) -> String {
        match self {
            Xform::Ipip => "IPIP".into(),
            Xform::Deflate(_) => "COMP_DEFLATE".into(),
            Xform::Esp { enc, auth, .. } => match auth {
                Some(a) => format!("ESP_{}_{}", enc.klips_name(), a.klips_name()),
                None => format!("ESP_{}", enc.klips_name()),
            },
            Xform::Ah { auth, .. } => format!("AH_{}", auth.klips_name()),
        }
    }
}

/// Mutable per-SA state touched by one packet at a time.
#[derive(Debug)]
pub struct SaState {
    /// Last sequence number sent (outbound).
    pub seq_out: u32,
    /// Anti-replay window (inbound).
    pub replay: ReplayWindow,
    /// When first used (seconds, daemon clock).
    pub first_used: Option<u64>,
    /// When last used.
    pub last_used: Option<u64>,
    /// The soft-expiry event was already reported.
    pub soft_reported: bool,
    /// The SA hit a hard limit.
    pub dead: bool,
    /// Last IV seen (inbound CBC), for display: the first `last_iv_len` bytes.
    pub last_iv: [u8; crypto::MAX_IV_LEN],
    /// How many bytes of `last_iv` are set (0: none seen yet).
    pub last_iv_len: usize,
}

/// Per-SA error counters (`ooo_errs`, `auth_errs`, `encr_size_errs`, `encr_pad_errs`).
#[derive(Debug, Default)]
pub struct SaErrors {
    /// Replay check failures.
    pub ooo: AtomicU64,
    /// ICV failures.
    pub auth: AtomicU64,
    /// Ciphertext length not a multiple of the block size.
    pub encr_size: AtomicU64,
    /// Bad padding.
    pub encr_pad: AtomicU64,
}

/// A live SA.
#[derive(Debug)]
pub struct Sa {
    /// Identity.
    pub said: Said,
    /// Direction.
    pub dir: Dir,
    /// Source address (the family of `said.dst`).
    pub src: IpAddr,
    /// Keyed transform.
    pub xform: Xform,
    /// Limits.
    pub life: Lifetimes,
    /// Seconds (daemon clock) when added.
    pub added: u64,
    /// ESP-in-UDP ports.
    pub encap: Option<UdpEncap>,
    /// Inbound policy (source net, destination net) for the tunnel-exit check.
    pub policy: Option<(Subnet, Subnet)>,
    /// Key sizes for display: (auth key bits, enc key bits).
    pub key_bits: (usize, usize),
    /// Bytes processed.
    pub bytes: AtomicU64,
    /// Packets processed.
    pub packets: AtomicU64,
    /// Uncompressed:compressed byte totals for IPComp (`ratio=`).
    pub comp_ratio: (AtomicU64, AtomicU64),
    /// Error counters.
    pub errors: SaErrors,
    /// Sequence, replay and usage state.
    pub state: Mutex<SaState>,
    /// Held by a datapath thread from numbering an outbound group's packets until it has sent
    /// them (the group's innermost SA's lock stands for the group): several readers of one
    /// device never interleave an SA's sequence numbers on the wire.
    pub tx: Mutex<()>,
}

/// Why an SA could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaError(pub String);

impl std::fmt::Display for SaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SaError {}

impl Sa {
    /// Keys the transform and builds the SA, added at time `now`.
    pub fn new(spec: &SaSpec, dir: Dir, now: u64) -> Result<Sa, SaError> {
        let provider = crypto::default_provider();
        let proto_ok = matches!(
            (&spec.xform, spec.said.proto),
            (XformSpec::Ipip, Proto::Tun)
                | (XformSpec::Deflate, Proto::Comp)
                | (XformSpec::Esp { .. }, Proto::Esp)
                | (XformSpec::Ah { .. }, Proto::Ah)
        );
        if !proto_ok {
            return Err(SaError(format!(
                "SA {}: transform does not match protocol {}",
                spec.said,
                spec.said.proto.prefix()
            )));
        }
        if !spec.src.is_unspecified() && spec.src.is_ipv6() != spec.said.dst.is_ipv6() {
            return Err(SaError(format!(
                "SA {}: source {} is not of the destination's address family",
                spec.said, spec.src
            )));
        }
        if spec.said.spi < 0x100 && spec.said.proto != Proto::Comp {
            return Err(SaError(format!(
                "SA {}: SPIs below 0x100 are reserved",
                spec.said
            )));
        }
        let mut key_bits = (0, 0);
        let xform = match &spec.xform {
            XformSpec::Ipip => Xform::Ipip,
            XformSpec::Deflate => Xform::Deflate(Mutex::new(IpcompState::default())),
            XformSpec::Esp {
                enc,
                enckey,
                auth,
                authkey,
            } => {
                let crypto = EspCrypto::new(provider, *enc, &enckey.0, *auth, &authkey.0)
                    .map_err(|e| SaError(format!("SA {}: {e}", spec.said)))?;
                key_bits = (authkey.0.len() * 8, enckey.0.len() * 8);
                Xform::Esp {
                    crypto,
                    enc: *enc,
                    auth: *auth,
                }
            }
            XformSpec::Ah { auth, authkey } => {
                let integ = provider
                    .integrity(*auth, &authkey.0)
                    .map_err(|e| SaError(format!("SA {}: {e}", spec.said)))?;
                key_bits = (authkey.0.len() * 8, 0);
                Xform::Ah { integ, auth: *auth }
            }
        };
        Ok(Sa {
            said: spec.said,
            dir,
            src: spec.src,
            xform,
            life: spec.life,
            added: now,
            encap: spec.encap,
            policy: spec.policy,
            key_bits,
            bytes: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            comp_ratio: (AtomicU64::new(0), AtomicU64::new(0)),
            errors: SaErrors::default(),
            tx: Mutex::new(()),
            state: Mutex::new(SaState {
                seq_out: 0,
                replay: ReplayWindow::new(spec.replay_window),
                first_used: None,
                last_used: None,
                soft_reported: false,
                dead: false,
                last_iv: [0; crypto::MAX_IV_LEN],
                last_iv_len: 0,
            }),
        })
    }

    /// Current lifetime values at time `now`.
    pub fn life_current(&self, st: &SaState, now: u64) -> LifeCurrent {
        LifeCurrent {
            allocations: 0,
            bytes: self.bytes.load(Ordering::Relaxed),
            addtime: now.saturating_sub(self.added),
            usetime: st.first_used.map_or(0, |t| now.saturating_sub(t)),
            packets: self.packets.load(Ordering::Relaxed),
        }
    }

    /// Accounts one packet of `len` bytes at `now` and returns the lifetime verdict.
    pub fn account(&self, st: &mut SaState, len: usize, now: u64) -> Expiry {
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.packets.fetch_add(1, Ordering::Relaxed);
        if st.first_used.is_none() {
            st.first_used = Some(now);
        }
        st.last_used = Some(now);
        self.expiry(st, now)
    }

    /// The lifetime verdict at `now` without using the SA; marks it dead on a hard limit.
    pub fn expiry(&self, st: &mut SaState, now: u64) -> Expiry {
        let e = self.life.check(&self.life_current(st, now));
        if let Expiry::Hard(_) = e {
            st.dead = true;
        }
        e
    }

    /// Records a replay failure in the per-SA counters.
    pub fn note_replay(&self, _e: ReplayError) {
        self.errors.ooo.fetch_add(1, Ordering::Relaxed);
    }

    /// The `/proc/net/ipsec_spi` line (spec 5.4).
    pub fn proc_line(&self, now: u64) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = format!(
            "{} {}: dir={:<3} src={}",
            self.said,
            self.xform.name(),
            match self.dir {
                Dir::In => "in",
                Dir::Out => "out",
            },
            self.src
        );
        if let (Some((ps, pd)), Dir::In) = (self.policy, self.dir) {
            let _ = write!(s, " policy={ps}->{pd}");
        }
        if let Xform::Esp { enc, .. } = &self.xform {
            if !enc.is_aead() && st.last_iv_len != 0 {
                let _ = write!(s, " iv_bits={}bits iv=0x", enc.iv_len() * 8);
                for b in &st.last_iv[..st.last_iv_len] {
                    let _ = write!(s, "{b:02x}");
                }
            }
        }
        if self.dir == Dir::In && st.replay.size() != 0 {
            let _ = write!(s, " ooowin={}", st.replay.size());
        }
        let ooo = self.errors.ooo.load(Ordering::Relaxed);
        if ooo != 0 {
            let _ = write!(s, " ooo_errs={ooo}");
        }
        let seq = if self.dir == Dir::In {
            st.replay.last()
        } else {
            st.seq_out
        };
        if seq != 0 {
            let _ = write!(s, " seq={seq}");
        }
        if self.dir == Dir::In && st.replay.bitmap() != 0 {
            let _ = write!(s, " bit=0x{:x}", st.replay.bitmap());
        }
        if let Some(e) = self.encap {
            let _ = write!(s, " natencap=udp {}->{}", e.sport, e.dport);
        }
        let alen = match &self.xform {
            Xform::Esp { auth: Some(a), .. } | Xform::Ah { auth: a, .. } => a.alen_bits(),
            _ => 0,
        };
        if alen != 0 {
            let _ = write!(s, " alen={alen}");
        }
        if self.key_bits.0 != 0 {
            let _ = write!(s, " aklen={}", self.key_bits.0);
        }
        for (name, c) in [
            ("auth_errs", &self.errors.auth),
            ("eklen", &AtomicU64::new(self.key_bits.1 as u64)),
            ("encr_size_errs", &self.errors.encr_size),
            ("encr_pad_errs", &self.errors.encr_pad),
        ] {
            let v = c.load(Ordering::Relaxed);
            if v != 0 {
                let _ = write!(s, " {name}={v}");
            }
        }
        let cur = self.life_current(&st, now);
        let _ = write!(s, " life(c,s,h)={}", self.life.proc_items(&cur));
        if let Some(t) = st.last_used {
            let _ = write!(s, " idle={}", now.saturating_sub(t));
        }
        let (u, c) = (
            self.comp_ratio.0.load(Ordering::Relaxed),
            self.comp_ratio.1.load(Ordering::Relaxed),
        );
        if c != 0 {
            let _ = write!(s, " ratio={u}:{c}");
        }
        if st.dead {
            s.push_str(" expired");
        }
        s
    }
}
