//! SA installation: the contract between a version module and the engine for child SAs.
//!
//! When a child SA's negotiation has settled (IKEv1: QR1 sent or received), the version module
//! hands the engine a [`NegotiatedChild`]: SPIs per direction, the protocols (ESP, AH,
//! IPComp, IPIP for tunnel mode) with the datapath's algorithms ([`EncAlg`], [`AuthAlg`]),
//! keys per direction already split into cipher and integrity keys, UDP encapsulation, the
//! traffic selectors (clients) and the lifetime. The engine builds the SADB entries
//! ([`SaSpec`]) and groups from it, installs the inbound and outbound halves when told to
//! (`install_child`; a responder installs inbound first, outbound once the
//! initiator has confirmed), tracks usage of every SA it installed, and routes the conn to the
//! outbound group (`route_to_child`). Once both halves are installed the keys are
//! dropped (wiped) from the record.

use std::net::IpAddr;

use crate::addr::Subnet;
use crate::crypto::{AuthAlg, EncAlg};
use crate::pluto::engine::Pluto;
use crate::pluto::ids::SerialNo;
use crate::pluto::natt::NAT_T_PORT;
use crate::pluto::output::Output;
use crate::sadb::{Dir, KeyBytes, SaSpec, UdpEncap, XformSpec};
use crate::said::{Proto, Said};

/// Tunnel or transport mode of a child SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildMode {
    /// Tunnel mode: an IPIP SA with these local pseudo-SPIs (inbound, outbound) is the
    /// innermost member of each group.
    Tunnel {
        /// Pseudo-SPI of the inbound IPIP SA.
        tun_in: u32,
        /// Pseudo-SPI of the outbound IPIP SA.
        tun_out: u32,
    },
    /// Transport mode.
    Transport,
}

/// The keys of one direction of an ESP SA.
#[derive(Clone)]
pub struct EspKeys {
    /// Cipher key ([`EncAlg::key_len`] bytes, salt included for the AEADs).
    pub enc: KeyBytes,
    /// Integrity key ([`AuthAlg::key_len`] bytes; empty without integrity).
    pub integ: KeyBytes,
}

/// A negotiated ESP SA pair.
#[derive(Clone)]
pub struct NegotiatedEsp {
    /// Cipher.
    pub enc: EncAlg,
    /// Integrity (`None` for an AEAD, or ESP under AH).
    pub integ: Option<AuthAlg>,
    /// Our SPI (inbound).
    pub spi_in: u32,
    /// The peer's SPI (outbound).
    pub spi_out: u32,
    /// Inbound keys.
    pub keys_in: EspKeys,
    /// Outbound keys.
    pub keys_out: EspKeys,
}

/// A negotiated AH SA pair.
#[derive(Clone)]
pub struct NegotiatedAh {
    /// Integrity algorithm.
    pub alg: AuthAlg,
    /// Our SPI (inbound).
    pub spi_in: u32,
    /// The peer's SPI (outbound).
    pub spi_out: u32,
    /// Inbound key.
    pub key_in: KeyBytes,
    /// Outbound key.
    pub key_out: KeyBytes,
}

/// Everything the engine needs to install a child SA, as a version module negotiated it.
#[derive(Clone)]
pub struct NegotiatedChild {
    /// Our address (outer source of outbound packets).
    pub local: IpAddr,
    /// The peer's address.
    pub remote: IpAddr,
    /// Our client (traffic selector).
    pub our_client: Subnet,
    /// The peer's client (traffic selector).
    pub peer_client: Subnet,
    /// Tunnel or transport.
    pub mode: ChildMode,
    /// ESP, if negotiated.
    pub esp: Option<NegotiatedEsp>,
    /// AH, if negotiated.
    pub ah: Option<NegotiatedAh>,
    /// IPComp CPIs (ours for inbound, the peer's for outbound), if negotiated.
    pub ipcomp: Option<(u16, u16)>,
    /// ESP in UDP (RFC 3948): the peer's port (ours is 4500).
    pub encap_port: Option<u16>,
    /// Lifetime (s).
    pub life: u64,
}

impl std::fmt::Debug for NegotiatedChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NegotiatedChild")
            .field("our_client", &self.our_client)
            .field("peer_client", &self.peer_client)
            .field("mode", &self.mode)
            .field("esp", &self.esp.as_ref().map(|e| (e.enc, e.integ)))
            .field("ah", &self.ah.as_ref().map(|a| a.alg))
            .field("ipcomp", &self.ipcomp)
            .field("encap_port", &self.encap_port)
            .finish_non_exhaustive()
    }
}

impl NegotiatedChild {
    /// ` {AH=>0x… <0x… ESP=>0x… <0x… IPCOMP=>0x… <0x…}` (peer's SPI, then ours), with
    /// `NATOA=none NATD=encap` when ESP rides in UDP: the tail of the established log line.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.ah {
            parts.push(format!("AH=>0x{:08x} <0x{:08x}", a.spi_out, a.spi_in));
        }
        if let Some(e) = &self.esp {
            parts.push(format!("ESP=>0x{:08x} <0x{:08x}", e.spi_out, e.spi_in));
        }
        if let Some((ours, peer)) = self.ipcomp {
            parts.push(format!("IPCOMP=>0x{peer:08x} <0x{ours:08x}"));
        }
        if self.encap_port.is_some() {
            parts.push("NATOA=none NATD=encap".into());
        }
        format!(" {{{}}}", parts.join(" "))
    }

    /// Wipes the keys (once both directions are installed).
    fn forget_keys(&mut self) {
        if let Some(e) = &mut self.esp {
            e.keys_in = EspKeys {
                enc: KeyBytes(Vec::new()),
                integ: KeyBytes(Vec::new()),
            };
            e.keys_out = e.keys_in.clone();
        }
        if let Some(a) = &mut self.ah {
            a.key_in = KeyBytes(Vec::new());
            a.key_out = KeyBytes(Vec::new());
        }
    }

    /// The SADB entries of one direction (`inbound` = to us) and their group, inner→outer
    /// (IPIP, IPComp, ESP, AH). The innermost inbound SA carries the tunnel-exit policy.
    pub fn build(&self, inbound: bool) -> (Vec<SaSpec>, Vec<Said>) {
        let (me, peer) = (self.local, self.remote);
        let (src, dst) = if inbound { (peer, me) } else { (me, peer) };
        let dir = if inbound { Dir::In } else { Dir::Out };
        let mut sas = Vec::new();
        let mut group = Vec::new();
        let mut policy = inbound.then_some((self.peer_client, self.our_client));
        let mut push = |said: Said, xform: XformSpec, window: u32, encap: Option<UdpEncap>| {
            sas.push(SaSpec {
                said,
                src,
                dir: Some(dir),
                xform,
                replay_window: window,
                life: Default::default(),
                encap,
                policy: policy.take(),
            });
            group.push(said);
        };
        if let ChildMode::Tunnel { tun_in, tun_out } = self.mode {
            let spi = if inbound { tun_in } else { tun_out };
            push(Said::new(Proto::Tun, spi, dst), XformSpec::Ipip, 0, None);
        }
        if let Some((ours, theirs)) = self.ipcomp {
            let cpi = if inbound { ours } else { theirs };
            push(
                Said::new(Proto::Comp, u32::from(cpi), dst),
                XformSpec::Deflate,
                0,
                None,
            );
        }
        if let Some(e) = &self.esp {
            let (spi, keys) = if inbound {
                (e.spi_in, &e.keys_in)
            } else {
                (e.spi_out, &e.keys_out)
            };
            let encap = self.encap_port.map(|p| UdpEncap {
                sport: NAT_T_PORT,
                dport: p,
            });
            push(
                Said::new(Proto::Esp, spi, dst),
                XformSpec::Esp {
                    enc: e.enc,
                    enckey: keys.enc.clone(),
                    auth: e.integ,
                    authkey: keys.integ.clone(),
                },
                64,
                encap,
            );
        }
        if let Some(a) = &self.ah {
            let (spi, key) = if inbound {
                (a.spi_in, &a.key_in)
            } else {
                (a.spi_out, &a.key_out)
            };
            push(
                Said::new(Proto::Ah, spi, dst),
                XformSpec::Ah {
                    auth: a.alg,
                    authkey: key.clone(),
                },
                64,
                None,
            );
        }
        (sas, group)
    }
}

impl Pluto {
    /// Records what child SA `serial` negotiated: its clients, lifetime and the peer's SPIs
    /// (indexed for the peer's Deletes).
    pub(crate) fn set_negotiated(&mut self, serial: SerialNo, n: NegotiatedChild) {
        let peer = crate::pluto::sa::PeerSpis {
            esp: n.esp.as_ref().map(|e| e.spi_out),
            ah: n.ah.as_ref().map(|a| a.spi_out),
        };
        let Some(c) = self.sas.child_mut(serial) else {
            return;
        };
        c.our_client = n.our_client;
        c.peer_client = n.peer_client;
        c.life = n.life;
        c.negotiated = Some(Box::new(n));
        self.sas.set_peer_spis(serial, peer);
    }

    /// Installs the inbound (and, with `outbound`, outbound) SAs of child SA `serial` from
    /// its [`NegotiatedChild`]: one [`Output::InstallSas`], inbound first. `false` (logged)
    /// if nothing was negotiated.
    pub(crate) fn install_child(
        &mut self,
        serial: SerialNo,
        inbound: bool,
        outbound: bool,
    ) -> bool {
        let Some(c) = self.sas.child(serial) else {
            return false;
        };
        let Some(n) = &c.negotiated else {
            self.slog(serial, "cannot derive IPsec keys; SA not installed".into());
            return false;
        };
        let conn = c.conn().to_string();
        let mut sas = Vec::new();
        let mut groups = Vec::new();
        let mut halves = Vec::new();
        for dir_in in [true, false] {
            if (dir_in && inbound) || (!dir_in && outbound) {
                let (s, g) = n.build(dir_in);
                sas.extend(s);
                halves.push((dir_in, g));
            }
        }
        let done = outbound && (inbound || !c.inbound.is_empty());
        for (dir_in, g) in halves {
            for said in &g {
                self.sa_owner.insert(*said, (serial, dir_in));
            }
            if let Some(c) = self.sas.child_mut(serial) {
                if dir_in {
                    c.inbound = g.clone();
                } else {
                    c.outbound = g.clone();
                }
            }
            groups.push(g);
        }
        if done {
            if let Some(n) = self
                .sas
                .child_mut(serial)
                .and_then(|c| c.negotiated.as_mut())
            {
                n.forget_keys();
            }
        }
        if self.cfg.debug.klips {
            let saids: Vec<String> = sas.iter().map(|s| s.said.pluto()).collect();
            self.slog(serial, format!("| installing SAs {}", saids.join(" ")));
        }
        self.out.push_back(Output::InstallSas { conn, sas, groups });
        true
    }
}
