//! Inbound: ESP (50), AH (51) or ESP-in-UDP (4500) addressed to us → checks in order (SA lookup,
//! encapsulation, source, replay window, ICV before decryption, replay update, decryption,
//! padding) → nested SAs of the same group → tunnel-exit address check → delivery through ipsecN
//! (spec 8).
//!
//! The encapsulation check: ESP must arrive the way its SA says — in UDP (RFC 3948) for an SA
//! with ESP-in-UDP ports, as IP protocol 50 otherwise. A mismatch is dropped and counted as
//! [`DropReason::EncapMismatch`] before any cryptography, so a packet of a NAT-T SA cannot be
//! slipped in raw past a filter that only watches UDP 4500, nor the other way round.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::sadb::lifetime::Expiry;
use crate::sadb::sa::{Sa, Xform};
use crate::sadb::SaGroup;
use crate::said::{Proto, Said};
use crate::wire::ipv4::{self, proto, Ipv4Packet};
use crate::xform::ah::{self, AhError};
use crate::xform::esp::{EspCrypto, EspError};
use crate::xform::ipcomp;

use super::{DropReason, Emit, Klips, SaEvent};

/// The outer header facts carried down through nested SAs.
struct Outer<'a> {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// The outer IPv4 header (rebuilt around the payload in transport mode).
    header: &'a [u8],
    /// The outermost ESP arrived in UDP (port 4500) rather than as IP protocol 50.
    udp: bool,
}

impl Klips {
    /// Processes one IPv4 packet from the ESP or AH raw socket.
    pub fn inbound(&self, pkt: &[u8], now: u64, out: &mut Vec<Emit>) {
        let p = match Ipv4Packet::new_checked(pkt) {
            Ok(p) => p,
            Err(_) => {
                self.drop_in(0, DropReason::NotIpsec, out);
                return;
            }
        };
        let dev = self.dev_for_addr(p.dst());
        let outer = Outer {
            src: p.src(),
            dst: p.dst(),
            header: p.header(),
            udp: false,
        };
        let r = match p.protocol() {
            proto::ESP => {
                let mut esp = p.payload().to_vec();
                self.esp_in(&outer, &mut esp, None, now)
            }
            proto::AH => self.ah_in(&outer, p.packet(), now),
            _ => Err(DropReason::NotIpsec),
        };
        match r {
            Ok(inner) => out.push(Emit::Tun { dev, pkt: inner }),
            Err(reason) => self.drop_in(dev, reason, out),
        }
    }

    /// Processes one datagram received on UDP 4500: NAT keepalives are ignored, IKE (non-ESP
    /// marker) goes to the keying daemon, anything else must be ESP for one of our SAs.
    pub fn inbound_udp(
        &self,
        src: SocketAddrV4,
        dst: Ipv4Addr,
        data: &[u8],
        now: u64,
        out: &mut Vec<Emit>,
    ) {
        let dev = self.dev_for_addr(dst);
        if data == [0xff] {
            return;
        }
        if data.len() >= 4 && data[..4] == [0, 0, 0, 0] {
            out.push(Emit::Ike {
                src,
                dst,
                data: data[4..].to_vec(),
            });
            return;
        }
        if data.len() < 8 {
            self.drop_in(dev, DropReason::NotIpsec, out);
            return;
        }
        // Rebuild a plain header for transport-mode reassembly and the arrival check.
        let mut hdr = [0u8; ipv4::HEADER_LEN];
        ipv4::Ipv4Repr {
            src: *src.ip(),
            dst,
            protocol: proto::ESP,
            tos: 0,
            ttl: 64,
            ident: 0,
            dont_frag: false,
            payload_len: data.len(),
        }
        .emit(&mut hdr);
        let outer = Outer {
            src: *src.ip(),
            dst,
            header: &hdr,
            udp: true,
        };
        let mut esp = data.to_vec();
        match self.esp_in(&outer, &mut esp, None, now) {
            Ok(inner) => out.push(Emit::Tun { dev, pkt: inner }),
            Err(reason) => self.drop_in(dev, reason, out),
        }
    }

    fn lookup(&self, proto: Proto, spi: u32, dst: Ipv4Addr) -> Option<(Arc<Sa>, SaGroup)> {
        let db = self.sadb();
        let said = Said::new(proto, spi, dst);
        let sa = db.get(&said)?.clone();
        let group = db.group_of(&said)?;
        Some((sa, group))
    }

    /// Checks that `sa` is usable for a packet from `src` and accounts it.
    fn admit(&self, sa: &Sa, src: Ipv4Addr, len: usize, now: u64) -> Result<(), DropReason> {
        if !sa.src.is_unspecified() && sa.src != src {
            return Err(DropReason::SaSourceMismatch);
        }
        let mut st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
        if st.dead {
            return Err(DropReason::SaExpired);
        }
        match sa.account(&mut st, len, now) {
            // The expiry timer removes the SA (and its group) and reports it.
            Expiry::Hard(_) => Err(DropReason::SaExpired),
            Expiry::Soft(_) if !st.soft_reported => {
                // Not marked reported if it could not be queued: the next packet retries.
                st.soft_reported = self.send_event(SaEvent::SoftExpired(sa.said));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn replay_check(&self, sa: &Sa, seq: u32) -> Result<(), DropReason> {
        let st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
        st.replay.check(seq).map_err(|e| {
            sa.note_replay(e);
            DropReason::Replay
        })
    }

    fn replay_update(&self, sa: &Sa, seq: u32) -> Result<(), DropReason> {
        let mut st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
        st.replay.update(seq).map_err(|e| {
            sa.note_replay(e);
            DropReason::Replay
        })
    }

    /// ESP: `esp` is the ESP header onward. `expect` is the SA the group requires here (nested).
    fn esp_in(
        &self,
        outer: &Outer<'_>,
        esp: &mut [u8],
        expect: Option<(&Arc<Sa>, &SaGroup)>,
        now: u64,
    ) -> Result<Vec<u8>, DropReason> {
        let (spi, seq) = EspCrypto::header(esp).map_err(|_| DropReason::Truncated)?;
        let (sa, group) = match expect {
            Some((sa, g)) => {
                if sa.said.spi != spi || sa.said.proto != Proto::Esp {
                    return Err(DropReason::GroupMismatch);
                }
                (sa.clone(), g.clone())
            }
            None => {
                let (sa, group) = self
                    .lookup(Proto::Esp, spi, outer.dst)
                    .ok_or(DropReason::NoSa)?;
                if sa.encap.is_some() != outer.udp {
                    return Err(DropReason::EncapMismatch);
                }
                (sa, group)
            }
        };
        let Xform::Esp { crypto, enc, .. } = &sa.xform else {
            return Err(DropReason::NoSa);
        };
        if !sa.src.is_unspecified() && sa.src != outer.src {
            return Err(DropReason::SaSourceMismatch);
        }
        self.replay_check(&sa, seq)?;
        crypto.verify_icv(esp).map_err(|e| self.esp_err(&sa, e))?;
        // For AEAD transforms the tag is checked by decrypt, so the window moves only after it.
        let (nh, range) = crypto.decrypt(esp).map_err(|e| self.esp_err(&sa, e))?;
        self.replay_update(&sa, seq)?;
        if !enc.is_aead() {
            let iv = esp.get(8..8 + enc.iv_len()).unwrap_or_default().to_vec();
            sa.state.lock().unwrap_or_else(|x| x.into_inner()).last_iv = iv;
        }
        self.admit(&sa, outer.src, esp.len(), now)?;
        let payload = &esp[range];
        self.next_header(outer, &sa, &group, nh, payload, now)
    }

    fn esp_err(&self, sa: &Sa, e: EspError) -> DropReason {
        match e {
            EspError::Truncated => DropReason::Truncated,
            EspError::BadLength => {
                sa.errors.encr_size.fetch_add(1, Ordering::Relaxed);
                DropReason::EspLenNotX8
            }
            EspError::AuthFailed => {
                sa.errors.auth.fetch_add(1, Ordering::Relaxed);
                DropReason::AuthFailure
            }
            EspError::BadPadding => {
                sa.errors.encr_pad.fetch_add(1, Ordering::Relaxed);
                DropReason::BadPadding
            }
        }
    }

    /// AH over the whole IPv4 packet `pkt`.
    fn ah_in(&self, outer: &Outer<'_>, pkt: &[u8], now: u64) -> Result<Vec<u8>, DropReason> {
        let (spi, seq) = ah::ah_header(pkt).map_err(ah_reason)?;
        let (sa, group) = self
            .lookup(Proto::Ah, spi, outer.dst)
            .ok_or(DropReason::NoSa)?;
        let Xform::Ah { integ, .. } = &sa.xform else {
            return Err(DropReason::NoSa);
        };
        if !sa.src.is_unspecified() && sa.src != outer.src {
            return Err(DropReason::SaSourceMismatch);
        }
        self.replay_check(&sa, seq)?;
        let info = ah::ah_input(integ.as_ref(), pkt).map_err(|e| {
            if e == AhError::AuthFailed {
                sa.errors.auth.fetch_add(1, Ordering::Relaxed);
            }
            ah_reason(e)
        })?;
        self.replay_update(&sa, seq)?;
        self.admit(&sa, outer.src, pkt.len(), now)?;
        let payload = pkt.get(info.header_len..).ok_or(DropReason::Truncated)?;
        self.next_header(outer, &sa, &group, info.next_header, payload, now)
    }

    /// After one SA: descend into the next inner SA of the group, or finish.
    fn next_header(
        &self,
        outer: &Outer<'_>,
        sa: &Arc<Sa>,
        group: &SaGroup,
        nh: u8,
        payload: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, DropReason> {
        let pos = group.iter().position(|s| Arc::ptr_eq(s, sa)).unwrap_or(0);
        let inner = pos.checked_sub(1).and_then(|i| group.get(i));
        // IPComp is skipped for small or incompressible packets (RFC 3173 2.2): then the
        // payload goes straight to the SA inside the comp SA.
        let inner_skip_comp = match inner {
            Some(c) if c.said.proto == Proto::Comp && nh != proto::COMP => {
                pos.checked_sub(2).and_then(|i| group.get(i))
            }
            other => other,
        };
        match nh {
            proto::ESP => {
                let inner = inner.ok_or(DropReason::GroupMismatch)?;
                let mut esp = payload.to_vec();
                self.esp_in(outer, &mut esp, Some((inner, group)), now)
            }
            proto::COMP => {
                let inner = inner.ok_or(DropReason::GroupMismatch)?;
                if inner.said.proto != Proto::Comp {
                    return Err(DropReason::GroupMismatch);
                }
                let cpi = payload
                    .get(2..4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .ok_or(DropReason::Truncated)?;
                if u32::from(cpi) != inner.said.spi & 0xffff {
                    return Err(DropReason::GroupMismatch);
                }
                let mut data = Vec::with_capacity(payload.len() * 4);
                let nh2 = ipcomp::decompress(payload, 65535, &mut data)
                    .map_err(|_| DropReason::DecompressFailure)?;
                self.admit(inner, inner.src, payload.len(), now)?;
                inner
                    .comp_ratio
                    .0
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                inner
                    .comp_ratio
                    .1
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                self.next_header(outer, inner, group, nh2, &data, now)
            }
            proto::IPIP => {
                let checker = match inner_skip_comp {
                    Some(t) if t.said.proto == Proto::Tun => {
                        self.admit(t, t.src, payload.len(), now)?;
                        t
                    }
                    Some(_) => return Err(DropReason::GroupMismatch),
                    None => sa,
                };
                let p = Ipv4Packet::new_checked(payload).map_err(|_| DropReason::Truncated)?;
                self.arrival_check(checker, &p)?;
                Ok(p.packet().to_vec())
            }
            _ => {
                if inner_skip_comp.is_some_and(|i| i.said.proto == Proto::Tun) {
                    // The group says tunnel mode but the packet is transport: refuse.
                    return Err(DropReason::GroupMismatch);
                }
                let hl = outer.header.len();
                let mut pkt = Vec::with_capacity(hl + payload.len());
                pkt.extend_from_slice(outer.header);
                pkt.extend_from_slice(payload);
                ipv4::fix_header(&mut pkt, nh);
                let p = Ipv4Packet::new_checked(&pkt).map_err(|_| DropReason::Truncated)?;
                self.arrival_check(sa, &p)?;
                Ok(pkt)
            }
        }
    }

    fn arrival_check(&self, sa: &Sa, inner: &Ipv4Packet<'_>) -> Result<(), DropReason> {
        if self.params().disable_arrival_check {
            return Ok(());
        }
        match sa.policy {
            Some((src, dst)) if !src.contains(inner.src()) || !dst.contains(inner.dst()) => {
                Err(DropReason::ArrivalCheck)
            }
            _ => Ok(()),
        }
    }
}

fn ah_reason(e: AhError) -> DropReason {
    match e {
        AhError::Truncated => DropReason::Truncated,
        AhError::BadLength => DropReason::BadAuthLen,
        AhError::IpOptions => DropReason::IpOptions,
        AhError::AuthFailed => DropReason::AuthFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::EncAlg;
    use crate::klips::DevInfo;
    use crate::sadb::{Dir, KeyBytes, SaSpec, UdpEncap, XformSpec};

    const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const RAW_SPI: u32 = 0x201;
    const UDP_SPI: u32 = 0x301;

    fn gcm_key() -> Vec<u8> {
        (100..120).collect()
    }

    /// Two inbound GCM SAs from the peer: one raw ESP, one ESP-in-UDP.
    fn klips() -> Klips {
        let k = Klips::new();
        k.set_devs(vec![DevInfo {
            name: "ipsec0".into(),
            phys: "eth0".into(),
            addr: US,
            phys_mtu: 1500,
            mtu: 1400,
        }]);
        for (spi, encap) in [
            (RAW_SPI, None),
            (
                UDP_SPI,
                Some(UdpEncap {
                    sport: 4500,
                    dport: 4500,
                }),
            ),
        ] {
            let spec = SaSpec {
                said: Said::new(Proto::Esp, spi, US),
                src: PEER,
                dir: Some(Dir::In),
                xform: XformSpec::Esp {
                    enc: EncAlg::AesGcm16_128,
                    enckey: KeyBytes(gcm_key()),
                    auth: None,
                    authkey: KeyBytes(Vec::new()),
                },
                replay_window: 32,
                life: Default::default(),
                encap,
                policy: None,
            };
            k.sadb_mut()
                .add(Sa::new(&spec, Dir::In, 0).unwrap())
                .unwrap();
        }
        k
    }

    /// A valid tunnel-mode ESP packet (from the SPI on) for `spi` with sequence number `seq`.
    fn esp(spi: u32, seq: u32) -> Vec<u8> {
        let c = EspCrypto::new(
            crate::crypto::default_provider(),
            EncAlg::AesGcm16_128,
            &gcm_key(),
            None,
            &[],
        )
        .unwrap();
        let mut inner = vec![0u8; 28];
        ipv4::Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 2, 10),
            dst: Ipv4Addr::new(10, 0, 1, 10),
            protocol: proto::UDP,
            tos: 0,
            ttl: 64,
            ident: 7,
            dont_frag: false,
            payload_len: 8,
        }
        .emit(&mut inner);
        let mut iv = [0u8; 8];
        c.next_iv(seq, &mut rand::thread_rng(), &mut iv);
        let mut out = Vec::new();
        c.encapsulate(spi, seq, proto::IPIP, &inner, &iv, &mut out);
        out
    }

    fn raw(esp: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; ipv4::HEADER_LEN + esp.len()];
        ipv4::Ipv4Repr {
            src: PEER,
            dst: US,
            protocol: proto::ESP,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_frag: false,
            payload_len: esp.len(),
        }
        .emit(&mut p);
        p[ipv4::HEADER_LEN..].copy_from_slice(esp);
        p
    }

    fn delivered(out: &[Emit]) -> bool {
        matches!(out, [Emit::Tun { .. }])
    }

    /// ESP must arrive the way its SA says: raw for a plain SA, in UDP 4500 for a NAT-T one.
    /// A mismatch is dropped under its own reason before any cryptography (so the replay
    /// window does not move), and the same packet arriving the right way is then accepted.
    #[test]
    fn esp_must_arrive_encapsulated_as_its_sa_says() {
        let k = klips();
        let peer = SocketAddrV4::new(PEER, 4500);
        let mut out = Vec::new();
        k.inbound_udp(peer, US, &esp(RAW_SPI, 1), 0, &mut out);
        assert_eq!(
            out,
            vec![Emit::Drop {
                dev: 0,
                reason: DropReason::EncapMismatch,
                inbound: true
            }]
        );
        out.clear();
        k.inbound(&raw(&esp(UDP_SPI, 1)), 0, &mut out);
        assert_eq!(
            out,
            vec![Emit::Drop {
                dev: 0,
                reason: DropReason::EncapMismatch,
                inbound: true
            }]
        );
        assert_eq!(k.drops.get(DropReason::EncapMismatch), 2);
        assert_eq!(k.drops.totals(), (2, 0));
        // The same sequence numbers the right way round: accepted (nothing else moved).
        out.clear();
        k.inbound(&raw(&esp(RAW_SPI, 1)), 0, &mut out);
        assert!(delivered(&out), "{out:?}");
        out.clear();
        k.inbound_udp(peer, US, &esp(UDP_SPI, 1), 0, &mut out);
        assert!(delivered(&out), "{out:?}");
        assert_eq!(k.drops.totals(), (2, 0));
    }
}
