//! Inbound: ESP (50), AH (51) or ESP-in-UDP (4500) addressed to us → checks in order (SA lookup,
//! encapsulation, source, replay window, ICV before decryption, replay update, decryption,
//! padding) → nested SAs of the same group → tunnel-exit address check → delivery through ipsecN
//! (spec 8).
//!
//! The encapsulation check: ESP must arrive the way its SA says — in UDP (RFC 3948) for an SA
//! with ESP-in-UDP ports, as IP protocol 50 otherwise. A mismatch is dropped and counted as
//! [`DropReason::EncapMismatch`] before any cryptography, so a packet of a NAT-T SA cannot be
//! slipped in raw past a filter that only watches UDP 4500, nor the other way round.
//!
//! Everything happens in the receive buffer: ciphertext is decrypted where it lies and the
//! result names the inner packet's place in that buffer ([`Verdict::Deliver`]); only transport
//! mode moves the (20-byte) outer header next to the payload. IPComp, which must inflate into
//! new memory, is the exception (its packet comes back owned).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::Ordering;

use crate::sadb::lifetime::Expiry;
use crate::sadb::sa::{Sa, Xform};
use crate::sadb::SaRef;
use crate::said::{Proto, Said};
use crate::wire::ipv4::{self, proto};
use crate::wire::ipv6::{self, nh};
use crate::xform::ah::{self, AhError};
use crate::xform::esp::{EspCrypto, EspError};
use crate::xform::ipcomp;

use super::packet::{Parsed, Verdict, Work};
use super::{DropReason, Emit, Klips, SaEvent, Tables};

/// Longest outer header kept for transport mode: an IPv4 header with options, or an IPv6
/// header with extension headers in front of the IPsec header (a longer chain is dropped as
/// [`DropReason::BadExtHeaders`]).
const MAX_HDR: usize = 128;

/// The outer header facts carried down through nested SAs.
struct Outer {
    src: IpAddr,
    dst: IpAddr,
    /// The outer header (rebuilt around the payload in transport mode).
    hdr: [u8; MAX_HDR],
    hl: usize,
    /// Offset of the byte naming the payload's protocol in `hdr` (9 for IPv4).
    nh_at: usize,
    /// The outermost ESP arrived in UDP (port 4500) rather than as IP protocol 50.
    udp: bool,
}

/// Where the decapsulated packet is.
enum Inner {
    /// In the receive buffer.
    At(Range<usize>),
    /// In memory of its own (after IPComp, or transport mode without room in the buffer).
    Owned(Vec<u8>),
}

impl Klips {
    /// Processes one IPv4 packet from the ESP or AH raw socket: the legacy form of
    /// [`Klips::inbound_buf`] (copies; owned [`Emit`]s).
    pub fn inbound(&self, pkt: &[u8], now: u64, out: &mut Vec<Emit>) {
        let t = self.tables();
        let mut v = pkt.to_vec();
        let mut w = Work::default();
        let verdict = self.inbound_buf(&t, &mut v, now, &mut w);
        legacy(verdict, &v, &mut w, out);
    }

    /// Processes one datagram received on UDP 4500: the legacy form of
    /// [`Klips::inbound_udp_buf`].
    pub fn inbound_udp(
        &self,
        src: impl Into<SocketAddr>,
        dst: impl Into<IpAddr>,
        data: &[u8],
        now: u64,
        out: &mut Vec<Emit>,
    ) {
        let t = self.tables();
        let mut v = data.to_vec();
        let mut w = Work::default();
        let verdict = self.inbound_udp_buf(&t, src, dst, &mut v, now, &mut w);
        legacy(verdict, &v, &mut w, out);
    }

    /// Processes one IPv4 or IPv6 packet from the ESP or AH raw socket, decrypting in place
    /// in `pkt`.
    pub fn inbound_buf(&self, t: &Tables, pkt: &mut [u8], now: u64, w: &mut Work) -> Verdict {
        let (outer, total, ptype) = match Parsed::parse(pkt) {
            Ok(h) if h.header_len <= MAX_HDR && !h.fragment => {
                let mut hdr = [0u8; MAX_HDR];
                let hl = h.header_len;
                hdr[..hl].copy_from_slice(&pkt[..hl]);
                (
                    Outer {
                        src: h.src,
                        dst: h.dst,
                        hdr,
                        hl,
                        nh_at: h.nh_at,
                        udp: false,
                    },
                    h.total_len,
                    h.proto,
                )
            }
            Ok(h) if h.header_len > MAX_HDR => {
                let dev = t.dev_for_addr(h.dst);
                return self.dropped(dev, DropReason::BadExtHeaders, true);
            }
            Ok(h) => {
                let dev = t.dev_for_addr(h.dst);
                return self.dropped(dev, DropReason::NotIpsec, true);
            }
            Err(DropReason::BadExtHeaders) => {
                return self.dropped(0, DropReason::BadExtHeaders, true)
            }
            Err(_) => return self.dropped(0, DropReason::NotIpsec, true),
        };
        let dev = t.dev_for_addr(outer.dst);
        let r = match ptype {
            proto::ESP => self.esp_in(t, &outer, pkt, outer.hl..total, None, now, w),
            proto::AH => self.ah_in(t, &outer, pkt, 0..total, now, w),
            _ => Err(DropReason::NotIpsec),
        };
        self.finish_in(dev, r, w)
    }

    /// Processes one datagram received on UDP 4500, in place in `data`: NAT keepalives are
    /// ignored, IKE (non-ESP marker) goes to the keying daemon, anything else must be ESP for
    /// one of our SAs.
    pub fn inbound_udp_buf(
        &self,
        t: &Tables,
        src: impl Into<SocketAddr>,
        dst: impl Into<IpAddr>,
        data: &mut [u8],
        now: u64,
        w: &mut Work,
    ) -> Verdict {
        let (src, dst) = (src.into(), dst.into());
        let dev = t.dev_for_addr(dst);
        if data == [0xff] {
            return Verdict::Done;
        }
        if data.len() >= 4 && data[..4] == [0, 0, 0, 0] {
            return match (src, dst) {
                (SocketAddr::V4(_), IpAddr::V4(_)) | (SocketAddr::V6(_), IpAddr::V6(_)) => {
                    Verdict::Ike {
                        src,
                        dst,
                        at: 4..data.len(),
                    }
                }
                _ => self.dropped(dev, DropReason::NotIpsec, true),
            };
        }
        if data.len() < 8 {
            return self.dropped(dev, DropReason::NotIpsec, true);
        }
        // A plain header for transport-mode reassembly and the arrival check.
        let mut hdr = [0u8; MAX_HDR];
        let (hl, nh_at) = match (src.ip(), dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                ipv4::Ipv4Repr {
                    src: s,
                    dst: d,
                    protocol: proto::ESP,
                    tos: 0,
                    ttl: 64,
                    ident: 0,
                    dont_frag: false,
                    payload_len: data.len(),
                }
                .emit(&mut hdr);
                (ipv4::HEADER_LEN, 9)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ipv6::Ipv6Repr {
                    src: s,
                    dst: d,
                    next_header: proto::ESP,
                    traffic_class: 0,
                    hop_limit: 64,
                    payload_len: data.len(),
                }
                .emit(&mut hdr);
                (ipv6::HEADER_LEN, 6)
            }
            _ => return self.dropped(dev, DropReason::NotIpsec, true),
        };
        let outer = Outer {
            src: src.ip(),
            dst,
            hdr,
            hl,
            nh_at,
            udp: true,
        };
        let len = data.len();
        let r = self.esp_in(t, &outer, data, 0..len, None, now, w);
        self.finish_in(dev, r, w)
    }

    fn finish_in(&self, dev: usize, r: Result<Inner, DropReason>, w: &mut Work) -> Verdict {
        match r {
            Ok(Inner::At(at)) => Verdict::Deliver { dev, at },
            Ok(Inner::Owned(pkt)) => {
                w.extra.push(Emit::Tun { dev, pkt });
                Verdict::Done
            }
            Err(reason) => self.dropped(dev, reason, true),
        }
    }

    /// Checks that `sa` is usable for a packet from `src` and accounts it.
    fn admit(&self, sa: &Sa, src: IpAddr, len: usize, now: u64) -> Result<(), DropReason> {
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

    /// ESP at `pkt[esp]`. `expect` is the SA the group requires here (nested).
    #[allow(clippy::too_many_arguments)]
    fn esp_in(
        &self,
        t: &Tables,
        outer: &Outer,
        pkt: &mut [u8],
        esp: Range<usize>,
        expect: Option<(&SaRef, usize)>,
        now: u64,
        w: &mut Work,
    ) -> Result<Inner, DropReason> {
        let base = esp.start;
        let esp = pkt.get_mut(esp).ok_or(DropReason::Truncated)?;
        let (spi, seq) = EspCrypto::header(esp).map_err(|_| DropReason::Truncated)?;
        let here: SaRef = match expect {
            Some((g, pos)) => {
                let sa = &g.group[pos];
                if sa.said.spi != spi || sa.said.proto != Proto::Esp {
                    return Err(DropReason::GroupMismatch);
                }
                SaRef {
                    group: g.group.clone(),
                    pos,
                }
            }
            None => {
                let r = t
                    .sas
                    .get(&Said::new(Proto::Esp, spi, outer.dst))
                    .ok_or(DropReason::NoSa)?;
                if r.sa().encap.is_some() != outer.udp {
                    return Err(DropReason::EncapMismatch);
                }
                r.clone()
            }
        };
        let sa = here.sa();
        let Xform::Esp { crypto, enc, .. } = &sa.xform else {
            return Err(DropReason::NoSa);
        };
        if !sa.src.is_unspecified() && sa.src != outer.src {
            return Err(DropReason::SaSourceMismatch);
        }
        self.replay_check(sa, seq)?;
        crypto.verify_icv(esp).map_err(|e| esp_err(sa, e))?;
        // For AEAD transforms the tag is checked by decrypt, so the window moves only after it.
        let (nh, range) = crypto.decrypt(esp).map_err(|e| esp_err(sa, e))?;
        {
            let mut st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
            st.replay.update(seq).map_err(|e| {
                sa.note_replay(e);
                DropReason::Replay
            })?;
            if !enc.is_aead() {
                let n = enc.iv_len().min(st.last_iv.len());
                if let Some(iv) = esp.get(8..8 + n) {
                    st.last_iv[..n].copy_from_slice(iv);
                    st.last_iv_len = n;
                }
            }
        }
        self.admit(sa, outer.src, esp.len(), now)?;
        let payload = base + range.start..base + range.end;
        self.next_header(t, outer, &here, nh, pkt, payload, now, w)
    }

    /// AH over the whole IPv4 or IPv6 packet `pkt[ip]`.
    fn ah_in(
        &self,
        t: &Tables,
        outer: &Outer,
        pkt: &mut [u8],
        ip: Range<usize>,
        now: u64,
        w: &mut Work,
    ) -> Result<Inner, DropReason> {
        let base = ip.start;
        let whole = pkt.get(ip.clone()).ok_or(DropReason::Truncated)?;
        let (spi, seq) = ah::ah_header(whole).map_err(ah_reason)?;
        let here = t
            .sas
            .get(&Said::new(Proto::Ah, spi, outer.dst))
            .ok_or(DropReason::NoSa)?
            .clone();
        let sa = here.sa();
        let Xform::Ah { integ, .. } = &sa.xform else {
            return Err(DropReason::NoSa);
        };
        if !sa.src.is_unspecified() && sa.src != outer.src {
            return Err(DropReason::SaSourceMismatch);
        }
        self.replay_check(sa, seq)?;
        let info = ah::ah_input(integ.as_ref(), whole).map_err(|e| {
            if e == AhError::AuthFailed {
                sa.errors.auth.fetch_add(1, Ordering::Relaxed);
            }
            ah_reason(e)
        })?;
        {
            let mut st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
            st.replay.update(seq).map_err(|e| {
                sa.note_replay(e);
                DropReason::Replay
            })?;
        }
        self.admit(sa, outer.src, whole.len(), now)?;
        if info.header_len > whole.len() {
            return Err(DropReason::Truncated);
        }
        let payload = base + info.header_len..ip.end;
        self.next_header(t, outer, &here, info.next_header, pkt, payload, now, w)
    }

    /// After one SA: descend into the next inner SA of the group, or finish.
    #[allow(clippy::too_many_arguments)]
    fn next_header(
        &self,
        t: &Tables,
        outer: &Outer,
        here: &SaRef,
        nh: u8,
        pkt: &mut [u8],
        payload: Range<usize>,
        now: u64,
        w: &mut Work,
    ) -> Result<Inner, DropReason> {
        let group = &here.group;
        let pos = here.pos;
        let inner = pos.checked_sub(1);
        // IPComp is skipped for small or incompressible packets (RFC 3173 2.2): then the
        // payload goes straight to the SA inside the comp SA.
        let inner_skip_comp = match inner {
            Some(i) if group[i].said.proto == Proto::Comp && nh != proto::COMP => i.checked_sub(1),
            other => other,
        };
        match nh {
            proto::ESP => {
                let i = inner.ok_or(DropReason::GroupMismatch)?;
                self.esp_in(t, outer, pkt, payload, Some((here, i)), now, w)
            }
            proto::COMP => {
                let i = inner.ok_or(DropReason::GroupMismatch)?;
                let comp = &group[i];
                if comp.said.proto != Proto::Comp {
                    return Err(DropReason::GroupMismatch);
                }
                let data = &pkt[payload];
                let cpi = data
                    .get(2..4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .ok_or(DropReason::Truncated)?;
                if u32::from(cpi) != comp.said.spi & 0xffff {
                    return Err(DropReason::GroupMismatch);
                }
                let mut out = Vec::with_capacity(data.len() * 4);
                let nh2 = ipcomp::decompress(data, 65535, &mut out)
                    .map_err(|_| DropReason::DecompressFailure)?;
                self.admit(comp, comp.src, data.len(), now)?;
                comp.comp_ratio
                    .0
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                comp.comp_ratio
                    .1
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                let inner_ref = SaRef {
                    group: group.clone(),
                    pos: i,
                };
                let len = out.len();
                match self.next_header(t, outer, &inner_ref, nh2, &mut out, 0..len, now, w)? {
                    Inner::At(r) => {
                        out.truncate(r.end);
                        out.drain(..r.start);
                        Ok(Inner::Owned(out))
                    }
                    owned => Ok(owned),
                }
            }
            proto::IPIP | nh::IPV6 => {
                let checker = match inner_skip_comp {
                    Some(i) if group[i].said.proto == Proto::Tun => {
                        let tun = &group[i];
                        self.admit(tun, tun.src, payload.len(), now)?;
                        tun
                    }
                    Some(_) => return Err(DropReason::GroupMismatch),
                    None => here.sa(),
                };
                let p = Parsed::parse(&pkt[payload.clone()]).map_err(|e| match e {
                    DropReason::NotIpsec => DropReason::Truncated,
                    e => e,
                })?;
                // The next header names the inner family: 4 for IPv4, 41 for IPv6.
                if p.dst.is_ipv6() != (nh == nh::IPV6) {
                    return Err(DropReason::NotIpsec);
                }
                self.arrival_check(t, checker, p.src, p.dst)?;
                Ok(Inner::At(payload.start..payload.start + p.total_len))
            }
            _ => {
                if inner_skip_comp.is_some_and(|i| group[i].said.proto == Proto::Tun) {
                    // The group says tunnel mode but the packet is transport: refuse.
                    return Err(DropReason::GroupMismatch);
                }
                // Transport mode: the outer header goes back in front of the payload, in the
                // buffer when there is room before it.
                let hl = outer.hl;
                let fix = |p: &mut [u8]| {
                    if outer.dst.is_ipv6() {
                        ipv6::fix_header(p, outer.nh_at, nh);
                    } else {
                        ipv4::fix_header(p, nh);
                    }
                };
                let r = if payload.start >= hl {
                    let at = payload.start - hl..payload.end;
                    pkt[at.start..payload.start].copy_from_slice(&outer.hdr[..hl]);
                    fix(&mut pkt[at.clone()]);
                    Inner::At(at)
                } else {
                    let mut v = Vec::with_capacity(hl + payload.len());
                    v.extend_from_slice(&outer.hdr[..hl]);
                    v.extend_from_slice(&pkt[payload]);
                    fix(&mut v);
                    Inner::Owned(v)
                };
                self.arrival_check(t, here.sa(), outer.src, outer.dst)?;
                Ok(r)
            }
        }
    }

    fn arrival_check(
        &self,
        t: &Tables,
        sa: &Sa,
        isrc: IpAddr,
        idst: IpAddr,
    ) -> Result<(), DropReason> {
        if t.params.disable_arrival_check {
            return Ok(());
        }
        match sa.policy {
            Some((src, dst)) if !src.contains(isrc) || !dst.contains(idst) => {
                Err(DropReason::ArrivalCheck)
            }
            _ => Ok(()),
        }
    }
}

/// The owned [`Emit`]s of a verdict on the packet in `buf` (legacy interface).
fn legacy(v: Verdict, buf: &[u8], w: &mut Work, out: &mut Vec<Emit>) {
    out.append(&mut w.extra);
    match v {
        Verdict::Deliver { dev, at } => out.push(Emit::Tun {
            dev,
            pkt: buf[at].to_vec(),
        }),
        Verdict::Drop {
            dev,
            reason,
            inbound,
        } => out.push(Emit::Drop {
            dev,
            reason,
            inbound,
        }),
        Verdict::Ike { src, dst, at } => out.push(Emit::Ike {
            src,
            dst,
            data: buf[at].to_vec(),
        }),
        Verdict::Send(_) | Verdict::Done => {}
    }
}

fn esp_err(sa: &Sa, e: EspError) -> DropReason {
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
    use std::net::{Ipv4Addr, SocketAddrV4};

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
            addr6: None,
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
                src: PEER.into(),
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
