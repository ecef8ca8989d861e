//! Outbound: a packet read from ipsecN → eroute lookup → shunt action or the SA group applied
//! inner→outer (IPIP, IPComp, ESP, AH) → packets for the physical interface (spec 8).
//!
//! The packet is parsed once and transformed in place in its [`PacketBuf`]: IPIP and ESP
//! headers go into the headroom (the IP header is moved, not the payload), ESP's trailer and
//! ICV into the tailroom, and the cipher runs over the payload where it lies. The result says
//! where the packet goes ([`Transmit`]): nothing after the core parses it again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::RngCore;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::{Family, Subnet};
use crate::eroute::Eroute;
use crate::sadb::lifetime::Expiry;
use crate::sadb::sa::{Sa, Xform};
use crate::said::{Proto, Said, Shunt};
use crate::wire::ipv4::{self, proto, Ipv4Packet};
use crate::wire::ipv6::{self, nh, Ipv6Packet};
use crate::wire::{icmp, icmpv6};
use crate::xform::ipcomp::{self, CompressOutcome};

use super::packet::{PacketBuf, Parsed, Transmit, UdpFlow, Verdict, Work};
use super::{Acquire, DropReason, Emit, Klips, SaEvent, Tables};
use crate::sadb::SaRef;

/// The outcome of [`Klips::outbound_classify`].
#[derive(Debug)]
pub enum Decision<'t> {
    /// Finished: a shunt was applied, the packet dropped, held or sent as it is.
    Done(Verdict),
    /// For an SA group: [`Klips::outbound_finish`] transforms it.
    Tunnel {
        /// The group the eroute names (its head SA).
        sa: &'t SaRef,
        /// The packet's header, parsed once.
        h: Parsed,
    },
}

impl Decision<'_> {
    /// The group's transmit lock owner (its innermost SA), if this packet needs one.
    pub fn group(&self) -> Option<&std::sync::Arc<Sa>> {
        match self {
            Decision::Tunnel { sa, .. } => sa.group.first(),
            Decision::Done(_) => None,
        }
    }
}

/// IKE's ports: locally sourced IKE traffic bypasses eroutes that would send it into its own SA.
const IKE_PORTS: [u16; 2] = [500, 4500];

struct Dev {
    addr: Ipv4Addr,
    addr6: Option<Ipv6Addr>,
    phys_mtu: usize,
    mtu: usize,
}

/// The outermost header of the packet being built, tracked by each step (so nothing is
/// re-parsed).
#[derive(Clone, Copy)]
struct Cur {
    src: IpAddr,
    dst: IpAddr,
    tos: u8,
    dont_frag: bool,
    fragment: bool,
    /// IP header length (IPv6: with the extension headers in front of the payload).
    hl: usize,
    /// Offset of the byte naming the payload's protocol.
    nh_at: usize,
    /// The payload's protocol.
    proto: u8,
    /// ESP-in-UDP ports once ESP went into UDP.
    udp: Option<UdpFlow>,
}

impl Klips {
    /// Processes one packet the kernel routed into ipsecN `dev`: the legacy form of
    /// [`Klips::outbound_buf`] for cold paths (released holds, tests) — it copies the packet
    /// and returns owned [`Emit`]s.
    pub fn outbound(
        &self,
        dev: usize,
        pkt: &[u8],
        now: u64,
        rng: &mut dyn RngCore,
        out: &mut Vec<Emit>,
    ) {
        let t = self.tables();
        let mut buf = PacketBuf::from_slice(pkt);
        let mut w = Work::default();
        let v = self.outbound_buf(&t, dev, &mut buf, now, rng, &mut w);
        out.append(&mut w.extra);
        match v {
            Verdict::Send(tx) => out.push(Emit::Net {
                dev: tx.dev,
                pkt: buf.bytes().to_vec(),
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
            _ => {}
        }
    }

    /// Processes one packet the kernel routed into ipsecN `dev`, in place in `buf`, with the
    /// tables of `t` (the batch's view). Returns what to do with it; rare extra results
    /// (fragments, ICMP errors, a replaced held packet's drop) go to `w.extra`. The same as
    /// [`Klips::outbound_classify`] followed by [`Klips::outbound_finish`].
    pub fn outbound_buf(
        &self,
        t: &Tables,
        dev: usize,
        buf: &mut PacketBuf,
        now: u64,
        rng: &mut dyn RngCore,
        w: &mut Work,
    ) -> Verdict {
        match self.outbound_classify(t, dev, buf, w) {
            Decision::Done(v) => v,
            Decision::Tunnel { sa, h } => self.outbound_finish(t, sa, &h, dev, buf, now, rng, w),
        }
    }

    /// The first half of [`Klips::outbound_buf`]: parses the packet and looks its eroute up
    /// (once). Shunts are carried out at once ([`Decision::Done`]); a packet for an SA group
    /// comes back as [`Decision::Tunnel`], carrying the group, for
    /// [`Klips::outbound_finish`] — between the two a reader takes the group's transmit lock.
    pub fn outbound_classify<'t>(
        &self,
        t: &'t Tables,
        dev: usize,
        buf: &mut PacketBuf,
        w: &mut Work,
    ) -> Decision<'t> {
        let Ok(h) = Parsed::parse(buf.bytes()) else {
            // Not IPv4 (eroutes are IPv4 only) or malformed: nothing can cover it.
            return Decision::Done(self.dropped(dev, DropReason::NoEroute, false));
        };
        // Link padding beyond the IP length is not part of the packet.
        buf.narrow(0..h.total_len);
        let as_is = Transmit {
            dev,
            src: h.src,
            dst: h.dst,
            tos: h.tos,
            udp: None,
            payload_offset: h.header_len,
        };
        let Some(eroute) = t.eroutes.lookup(h.src, h.dst) else {
            if ike_bypass(t, &h, None) {
                return Decision::Done(Verdict::Send(as_is));
            }
            return Decision::Done(self.dropped(dev, DropReason::NoEroute, false));
        };
        if ike_bypass(t, &h, Some(eroute)) {
            return Decision::Done(Verdict::Send(as_is));
        }
        eroute.count.fetch_add(1, Ordering::Relaxed);
        let v = match eroute.said.shunt() {
            Some(Shunt::Pass) => Verdict::Send(as_is),
            Some(Shunt::Drop) => self.dropped(dev, DropReason::ShuntDrop, false),
            Some(Shunt::Reject) => {
                let d = t.devs.get(dev);
                let icmp = match h.family {
                    Family::V4 => Ipv4Packet::new_checked(buf.bytes()).ok().and_then(|p| {
                        let from = d.map_or(Ipv4Addr::UNSPECIFIED, |d| d.addr);
                        icmp::unreachable(&p, from, icmp::PKT_FILTERED, 0)
                    }),
                    Family::V6 => Ipv6Packet::new_checked(buf.bytes())
                        .ok()
                        .and_then(|p| icmpv6::unreachable(&p, d.and_then(|d| d.addr6)?)),
                };
                if let Some(pkt) = icmp {
                    w.extra.push(Emit::Local { pkt });
                }
                self.dropped(dev, DropReason::ShuntReject, false)
            }
            Some(Shunt::Hold) => {
                self.hold(eroute, buf.bytes(), dev, w);
                Verdict::Done
            }
            Some(s @ (Shunt::Trap | Shunt::TrapSubnet)) => {
                self.trap(s, eroute, &h, buf.bytes(), dev, w);
                Verdict::Done
            }
            None => match t.sas.get(&eroute.said) {
                Some(sa) => return Decision::Tunnel { sa, h },
                None => self.dropped(dev, DropReason::ErouteWithoutSa, false),
            },
        };
        Decision::Done(v)
    }

    /// The second half of [`Klips::outbound_buf`]: applies the group `sa` of a
    /// [`Decision::Tunnel`] (with the header `h` parsed there) inner→outer in place and says
    /// where the packet goes.
    #[allow(clippy::too_many_arguments)]
    pub fn outbound_finish(
        &self,
        t: &Tables,
        sa: &SaRef,
        h: &Parsed,
        dev: usize,
        buf: &mut PacketBuf,
        now: u64,
        rng: &mut dyn RngCore,
        w: &mut Work,
    ) -> Verdict {
        let dv = match t.devs.get(dev) {
            Some(d) => Dev {
                addr: d.addr,
                addr6: d.addr6,
                phys_mtu: d.phys_mtu,
                mtu: d.mtu,
            },
            None => Dev {
                addr: Ipv4Addr::UNSPECIFIED,
                addr6: None,
                phys_mtu: 1500,
                mtu: 1500,
            },
        };
        self.encapsulate(t, sa, h, buf, &dv, dev, now, rng, w)
    }

    /// Counts a discarded packet and says so.
    pub(crate) fn dropped(&self, dev: usize, reason: DropReason, inbound: bool) -> Verdict {
        self.drops.count(reason, inbound);
        Verdict::Drop {
            dev,
            reason,
            inbound,
        }
    }

    fn hold(&self, e: &Eroute, pkt: &[u8], dev: usize, w: &mut Work) {
        let mut held = e.held.lock().unwrap_or_else(|x| x.into_inner());
        if held.replace(pkt.to_vec()).is_some() {
            self.drop_out(dev, DropReason::HoldReplaced, &mut w.extra);
        }
    }

    fn trap(&self, s: Shunt, e: &Eroute, h: &Parsed, pkt: &[u8], dev: usize, w: &mut Work) {
        let (psrc, pdst) = (h.src, h.dst);
        let (sport, dport) = h.ports;
        let hold = Said::new(Proto::Int, Shunt::Hold.spi(), Ipv4Addr::UNSPECIFIED);
        let (src, dst) = if s == Shunt::TrapSubnet {
            (e.src, e.dst)
        } else {
            (Subnet::host(psrc), Subnet::host(pdst))
        };
        let (held, evicted) = {
            let mut t = self.eroutes_mut();
            match t.get(&src, &dst) {
                Some(h) if h.said.shunt() == Some(Shunt::Hold) => (h.clone(), Vec::new()),
                // %trapsubnet turns the configured eroute itself into the hold: bounded by
                // the configuration, not by traffic.
                _ if s == Shunt::TrapSubnet => {
                    (t.replace(Eroute::new(src, dst, hold)).0, Vec::new())
                }
                _ => t.add_trap_hold(src, dst, hold, self.max_trap_holds()),
            }
        };
        for e in evicted {
            self.notices.count(super::Notice::HoldEvicted);
            let pkt = e.held.lock().unwrap_or_else(|x| x.into_inner()).take();
            if pkt.is_some() {
                self.drop_out(dev, DropReason::HoldEvicted, &mut w.extra);
            }
        }
        self.hold(&held, pkt, dev, w);
        self.send_acquire(Acquire {
            src: psrc,
            dst: pdst,
            proto: h.proto,
            sport,
            dport,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn encapsulate(
        &self,
        t: &Tables,
        r: &SaRef,
        h: &Parsed,
        buf: &mut PacketBuf,
        d: &Dev,
        dev: usize,
        now: u64,
        rng: &mut dyn RngCore,
        w: &mut Work,
    ) -> Verdict {
        if h.dont_frag && buf.len() > d.mtu {
            match h.family {
                Family::V4 if t.params.fragicmp => {
                    if let Ok(p) = Ipv4Packet::new_checked(buf.bytes()) {
                        if let Some(icmp) =
                            icmp::unreachable(&p, d.addr, icmp::FRAG_NEEDED, d.mtu as u16)
                        {
                            w.extra.push(Emit::Local { pkt: icmp });
                        }
                    }
                }
                Family::V4 => {}
                // Routers never fragment IPv6 (RFC 8200 5): the sender learns the tunnel's MTU
                // from Packet Too Big and the packet goes no further.
                Family::V6 => {
                    let mtu = d.mtu.max(ipv6::MIN_MTU) as u32;
                    if let (Ok(p), Some(from)) = (Ipv6Packet::new_checked(buf.bytes()), d.addr6) {
                        if let Some(icmp) = icmpv6::packet_too_big(&p, from, mtu) {
                            w.extra.push(Emit::Local { pkt: icmp });
                        }
                    }
                    return self.dropped(dev, DropReason::Oversize, false);
                }
            }
        }
        let mut cur = Cur {
            src: h.src,
            dst: h.dst,
            tos: h.tos,
            dont_frag: h.dont_frag,
            fragment: h.fragment,
            hl: h.header_len,
            nh_at: h.nh_at,
            proto: h.proto,
            udp: None,
        };
        for sa in r.group.iter() {
            if let Err(reason) = self.apply(t, sa, buf, &mut cur, now, rng, w) {
                return self.dropped(dev, reason, false);
            }
        }
        if buf.len() <= d.phys_mtu {
            return Verdict::Send(Transmit {
                dev,
                src: cur.src,
                dst: cur.dst,
                tos: cur.tos,
                udp: cur.udp,
                payload_offset: cur.hl + if cur.udp.is_some() { 8 } else { 0 },
            });
        }
        let frags = if cur.dst.is_ipv6() {
            // ipsecN's MTU normally leaves room for the overhead; with a larger one
            // (`overridemtu=`) the outer packet is fragmented by us, its source, with an
            // unpredictable identification (RFC 8200 4.5, RFC 7739), since no router will.
            ipv6::fragment(buf.bytes(), d.phys_mtu, rng.next_u32())
        } else {
            ipv4::fragment(buf.bytes(), d.phys_mtu)
        };
        match frags {
            Some(frags) => {
                w.extra
                    .extend(frags.into_iter().map(|pkt| Emit::Net { dev, pkt }));
                Verdict::Done
            }
            None => self.dropped(dev, DropReason::Oversize, false),
        }
    }

    /// Applies one SA's transform to the packet in `buf` (whose outermost header `cur`
    /// describes), in place.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        t: &Tables,
        sa: &Sa,
        buf: &mut PacketBuf,
        cur: &mut Cur,
        now: u64,
        rng: &mut dyn RngCore,
        w: &mut Work,
    ) -> Result<(), DropReason> {
        let mut st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
        if st.dead {
            return Err(DropReason::SaExpired);
        }
        match sa.account(&mut st, buf.len(), now) {
            // The expiry timer removes the SA (and its group) and reports it.
            Expiry::Hard(_) => return Err(DropReason::SaExpired),
            Expiry::Soft(_) if !st.soft_reported => {
                // Not marked reported if it could not be queued: the next packet retries.
                st.soft_reported = self.send_event(SaEvent::SoftExpired(sa.said));
            }
            _ => {}
        }
        match &sa.xform {
            Xform::Ipip => {
                drop(st);
                let inner_len = buf.len();
                let tos = if t.params.hidetos { 0 } else { cur.tos };
                // The inner packet's family names the payload: IPv4 (4) or IPv6 (41).
                let inner = if cur.src.is_ipv6() {
                    nh::IPV6
                } else {
                    proto::IPIP
                };
                let (hl, nh_at) = match (sa.src, sa.said.dst) {
                    (IpAddr::V4(src), IpAddr::V4(dst)) => {
                        if !buf.push_front(ipv4::HEADER_LEN) {
                            return Err(DropReason::Oversize);
                        }
                        let repr = ipv4::Ipv4Repr {
                            src,
                            dst,
                            protocol: inner,
                            tos,
                            ttl: 64,
                            ident: self.next_ident(),
                            dont_frag: cur.dont_frag,
                            payload_len: inner_len,
                        };
                        if !repr.emit(buf.bytes_mut()) {
                            return Err(DropReason::Oversize);
                        }
                        (ipv4::HEADER_LEN, 9)
                    }
                    (IpAddr::V6(src), IpAddr::V6(dst)) => {
                        if !buf.push_front(ipv6::HEADER_LEN) {
                            return Err(DropReason::Oversize);
                        }
                        let repr = ipv6::Ipv6Repr {
                            src,
                            dst,
                            next_header: inner,
                            traffic_class: tos,
                            hop_limit: 64,
                            payload_len: inner_len,
                        };
                        if !repr.emit(buf.bytes_mut()) {
                            return Err(DropReason::Oversize);
                        }
                        (ipv6::HEADER_LEN, 6)
                    }
                    // Sa::new refuses such an SA; nothing of it is sent.
                    _ => return Err(DropReason::ErouteWithoutSa),
                };
                *cur = Cur {
                    src: sa.src,
                    dst: sa.said.dst,
                    tos,
                    dont_frag: cur.dont_frag,
                    fragment: false,
                    hl,
                    nh_at,
                    proto: inner,
                    udp: None,
                };
            }
            Xform::Deflate(state) => {
                drop(st);
                if cur.fragment {
                    return Ok(());
                }
                let mut state = state.lock().unwrap_or_else(|x| x.into_inner());
                let hl = cur.hl;
                w.scratch.clear();
                let outcome = ipcomp::compress(
                    &mut state,
                    sa.said.spi as u16,
                    cur.proto,
                    &buf.bytes()[hl..],
                    &mut w.scratch,
                );
                if outcome == CompressOutcome::Compressed {
                    let before = buf.len() - hl;
                    sa.comp_ratio.0.fetch_add(before as u64, Ordering::Relaxed);
                    sa.comp_ratio
                        .1
                        .fetch_add(w.scratch.len() as u64, Ordering::Relaxed);
                    let n = w.scratch.len();
                    buf.bytes_mut()[hl..hl + n].copy_from_slice(&w.scratch);
                    buf.narrow(0..hl + n);
                    fix_outer(buf.bytes_mut(), cur, proto::COMP);
                }
            }
            Xform::Esp { crypto, .. } => {
                // Sequence numbers are never reused and never wrap: the AEAD IV counter
                // (`EspCrypto::next_iv`) relies on that for nonce uniqueness.
                if st.seq_out == u32::MAX {
                    st.dead = true;
                    return Err(DropReason::SaExpired);
                }
                st.seq_out += 1;
                let seq = st.seq_out;
                drop(st);
                let mut ivb = [0u8; crate::crypto::MAX_IV_LEN];
                let iv = &mut ivb[..crypto.iv_len()];
                crypto.next_iv(seq, rng, iv);
                let hl = cur.hl;
                let payload_len = buf.len() - hl;
                let udp = sa.encap.map(|e| UdpFlow {
                    sport: e.sport,
                    dport: e.dport,
                });
                let udp_len = if udp.is_some() { 8 } else { 0 };
                let head = udp_len + crate::xform::esp::ESP_HEADER_LEN + crypto.iv_len();
                let tail = crypto.overhead(payload_len) - (head - udp_len);
                // The IP header moves into the headroom; the payload stays where it is.
                if !buf.open_gap(hl, head) || !buf.push_back(tail) {
                    return Err(DropReason::Oversize);
                }
                let esp = &mut buf.bytes_mut()[hl + udp_len..];
                crypto
                    .seal_in_place(sa.said.spi, seq, cur.proto, iv, esp, payload_len)
                    .map_err(|_| DropReason::Oversize)?;
                let pkt = buf.bytes_mut();
                if let Some(f) = udp {
                    let ulen = (pkt.len() - hl) as u16;
                    pkt[hl..hl + 2].copy_from_slice(&f.sport.to_be_bytes());
                    pkt[hl + 2..hl + 4].copy_from_slice(&f.dport.to_be_bytes());
                    pkt[hl + 4..hl + 6].copy_from_slice(&ulen.to_be_bytes());
                    // RFC 3948 2.1: the checksum is sent as zero over IPv4; over IPv6 a zero
                    // UDP checksum is not allowed (RFC 8200 8.1), so it is computed.
                    pkt[hl + 6..hl + 8].copy_from_slice(&[0, 0]);
                    if let (IpAddr::V6(s), IpAddr::V6(d)) = (cur.src, cur.dst) {
                        let c = ipv6::upper_checksum(s, d, proto::UDP, &pkt[hl..]);
                        pkt[hl + 6..hl + 8].copy_from_slice(&c.to_be_bytes());
                    }
                    fix_outer(pkt, cur, proto::UDP);
                } else {
                    fix_outer(pkt, cur, proto::ESP);
                }
                cur.udp = udp;
            }
            Xform::Ah { integ, .. } => {
                if cur.dst.is_ipv4() && cur.hl > ipv4::HEADER_LEN {
                    return Err(DropReason::IpOptions);
                }
                st.seq_out = st.seq_out.checked_add(1).ok_or(DropReason::SaExpired)?;
                let seq = st.seq_out;
                drop(st);
                w.scratch.clear();
                crate::xform::ah::ah_output(
                    integ.as_ref(),
                    sa.said.spi,
                    seq,
                    buf.bytes(),
                    &mut w.scratch,
                )
                .map_err(|_| DropReason::IpOptions)?;
                let grow = w.scratch.len().saturating_sub(buf.len());
                if !buf.push_front(grow) {
                    return Err(DropReason::Oversize);
                }
                buf.bytes_mut().copy_from_slice(&w.scratch);
                cur.proto = proto::AH;
                cur.udp = None;
            }
        }
        Ok(())
    }

    /// Re-sends the packet held by a replaced `%hold` eroute through the new eroute.
    pub fn release_held(
        &self,
        old: &Eroute,
        dev: usize,
        now: u64,
        rng: &mut dyn RngCore,
        out: &mut Vec<Emit>,
    ) {
        let held = old.held.lock().unwrap_or_else(|x| x.into_inner()).take();
        if let Some(pkt) = held {
            self.outbound(dev, &pkt, now, rng, out);
        }
    }
}

/// Sets the outermost header's payload protocol to `next` and its length to the packet's (after
/// a transform in transport position), for either family.
fn fix_outer(pkt: &mut [u8], cur: &mut Cur, next: u8) {
    if cur.dst.is_ipv6() {
        ipv6::fix_header(pkt, cur.nh_at, next);
    } else {
        ipv4::fix_header(pkt, next);
    }
    cur.proto = next;
}

/// Locally sourced IKE (UDP 500/4500 from one of our addresses) skips eroutes that would send
/// it into its own SA.
fn ike_bypass(t: &Tables, h: &Parsed, e: Option<&Arc<Eroute>>) -> bool {
    let (src, dst) = (h.src, h.dst);
    if h.proto != proto::UDP || !t.is_local(src) {
        return false;
    }
    if !IKE_PORTS.contains(&h.ports.0) {
        return false;
    }
    match e {
        None => true,
        Some(e) => e.said.shunt().is_some() || e.said.dst == dst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::klips::DevInfo;
    use crate::wire::ipv4::Ipv4Repr;

    fn klips_with(shunt: Shunt) -> Klips {
        let k = Klips::new();
        k.set_devs(vec![DevInfo {
            name: "ipsec0".into(),
            phys: "eth0".into(),
            addr: "192.0.2.1".parse().unwrap(),
            addr6: None,
            phys_mtu: 1500,
            mtu: 1355,
        }]);
        k.eroutes_mut()
            .add(Eroute::new(
                "10.0.1.0/24".parse().unwrap(),
                "10.0.2.0/24".parse().unwrap(),
                Said::new(Proto::Int, shunt.spi(), std::net::Ipv4Addr::UNSPECIFIED),
            ))
            .unwrap();
        k
    }

    fn udp_from_host_a() -> Vec<u8> {
        let mut p = vec![0u8; 20 + 12];
        Ipv4Repr {
            src: "10.0.1.10".parse().unwrap(),
            dst: "10.0.2.10".parse().unwrap(),
            protocol: proto::UDP,
            tos: 0,
            ttl: 63,
            ident: 1,
            dont_frag: false,
            payload_len: 12,
        }
        .emit(&mut p);
        p[20..24].copy_from_slice(&[0x30, 0x39, 0x27, 0x0f]);
        p[24..26].copy_from_slice(&12u16.to_be_bytes());
        p
    }

    /// `%reject`'s ICMP comes from one of our addresses: it must leave through the host's own
    /// stack, never be written into ipsecN (where the kernel drops it as a martian).
    #[test]
    fn reject_icmp_is_sent_locally() {
        let k = klips_with(Shunt::Reject);
        let mut out = Vec::new();
        k.outbound(0, &udp_from_host_a(), 0, &mut rand::thread_rng(), &mut out);
        assert!(!out
            .iter()
            .any(|e| matches!(e, Emit::Tun { .. } | Emit::Net { .. })));
        let icmp = out
            .iter()
            .find_map(|e| match e {
                Emit::Local { pkt } => Some(pkt),
                _ => None,
            })
            .expect("an ICMP error");
        let p = Ipv4Packet::new_checked(icmp).unwrap();
        assert_eq!(p.dst().to_string(), "10.0.1.10");
        assert_eq!(p.protocol(), proto::ICMP);
        assert_eq!(&p.payload()[..2], &[icmp::DEST_UNREACH, icmp::PKT_FILTERED]);
        assert_eq!(k.drops.get(DropReason::ShuntReject), 1);
    }

    /// A UDP packet from host A to `dst`.
    fn udp_to(dst: std::net::Ipv4Addr) -> Vec<u8> {
        let mut p = udp_from_host_a();
        p[16..20].copy_from_slice(&dst.octets());
        ipv4::fix_header(&mut p, proto::UDP);
        p
    }

    /// Host A sends to 10 destinations behind a `%trap` with room for 4 holds: the 4 newest
    /// pairs keep a hold, each eviction is counted (and its held packet dropped under its own
    /// reason), every trapped packet still produced an acquire, and the `%trap` stays.
    #[test]
    fn trap_holds_are_bounded_and_evictions_counted() {
        let k = klips_with(Shunt::Trap);
        k.set_max_trap_holds(4);
        let dst = |i: u8| std::net::Ipv4Addr::new(10, 0, 2, 100 + i);
        for i in 0..10 {
            let mut out = Vec::new();
            k.outbound(0, &udp_to(dst(i)), 0, &mut rand::thread_rng(), &mut out);
            assert!(
                !out.iter().any(|e| matches!(e, Emit::Net { .. })),
                "{out:?}"
            );
        }
        let t = k.eroutes();
        assert_eq!(t.trap_holds(), 4);
        assert_eq!(t.len(), 5, "the %trap and 4 holds");
        let src = Subnet::host("10.0.1.10".parse::<std::net::Ipv4Addr>().unwrap());
        for i in 0..10 {
            let h = t.get(&src, &Subnet::host(dst(i)));
            assert_eq!(h.is_some(), i >= 6, "hold for {}", dst(i));
        }
        drop(t);
        assert_eq!(k.notices.get(crate::klips::Notice::HoldEvicted), 6);
        assert_eq!(k.drops.get(DropReason::HoldEvicted), 6);
        let mut ev = Vec::new();
        k.take_events(&mut ev);
        assert_eq!(ev.len(), 10, "one acquire per trapped pair: {ev:?}");
        // One log line at once, then nothing until the interval has passed, then a summary.
        let lines = k.take_log_lines(100);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("%trap hold limit (4) reached: 6 oldest"),
            "{lines:?}"
        );
        let mut out = Vec::new();
        k.outbound(0, &udp_to(dst(10)), 0, &mut rand::thread_rng(), &mut out);
        assert!(k.take_log_lines(101).is_empty());
        assert!(k
            .take_log_lines(100 + crate::klips::NOTICE_LOG_INTERVAL - 1)
            .is_empty());
        let lines = k.take_log_lines(100 + crate::klips::NOTICE_LOG_INTERVAL);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(": 1 oldest %hold eroute(s) evicted (7 since start)"));
        assert!(k.take_log_lines(1000).is_empty(), "nothing new");
    }

    /// A second packet of a held pair reuses its hold (newest packet kept), evicting nothing.
    #[test]
    fn retrapped_pair_reuses_its_hold() {
        let k = klips_with(Shunt::Trap);
        k.set_max_trap_holds(1);
        let pkt = udp_to("10.0.2.7".parse().unwrap());
        for _ in 0..3 {
            k.outbound(0, &pkt, 0, &mut rand::thread_rng(), &mut Vec::new());
        }
        assert_eq!(k.eroutes().trap_holds(), 1);
        assert_eq!(k.notices.get(crate::klips::Notice::HoldEvicted), 0);
        assert_eq!(k.drops.get(DropReason::HoldReplaced), 2);
    }

    /// A manually keyed AES-GCM SA as `ipsec manual` builds it: the same spec every time.
    fn gcm_spec() -> crate::sadb::SaSpec {
        use crate::sadb::{Dir, KeyBytes, SaSpec, XformSpec};
        SaSpec {
            said: Said::new(
                Proto::Esp,
                0x200,
                "192.0.2.2".parse::<std::net::Ipv4Addr>().unwrap(),
            ),
            src: "192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into(),
            dir: Some(Dir::Out),
            xform: XformSpec::Esp {
                enc: crate::crypto::EncAlg::AesGcm16_128,
                enckey: KeyBytes((0..20).collect()),
                auth: None,
                authkey: KeyBytes(Vec::new()),
            },
            replay_window: 0,
            life: Default::default(),
            encap: None,
            policy: None,
        }
    }

    /// A datapath with the manual GCM SA installed and an eroute to it.
    fn klips_with_gcm_sa() -> Klips {
        let k = klips_with(Shunt::Pass);
        let spec = gcm_spec();
        let sa = Sa::new(&spec, crate::sadb::Dir::Out, 0).unwrap();
        k.sadb_mut().add(sa).unwrap();
        k.eroutes_mut().replace(Eroute::new(
            "10.0.1.0/24".parse().unwrap(),
            "10.0.2.0/24".parse().unwrap(),
            spec.said,
        ));
        k
    }

    /// (SPI, sequence number, IV) of the ESP packets `k` sends for `n` packets from host A.
    fn esp_ivs(k: &Klips, n: usize) -> Vec<(u32, u32, u64)> {
        let mut v = Vec::new();
        for _ in 0..n {
            let mut out = Vec::new();
            k.outbound(0, &udp_from_host_a(), 0, &mut rand::thread_rng(), &mut out);
            for e in out {
                let Emit::Net { pkt, .. } = e else {
                    panic!("not sent: {e:?}");
                };
                let p = Ipv4Packet::new_checked(&pkt[..]).unwrap();
                assert_eq!(p.protocol(), proto::ESP);
                let esp = p.payload();
                let word = |r: std::ops::Range<usize>| {
                    esp[r].iter().fold(0u64, |a, &b| a << 8 | u64::from(b))
                };
                v.push((word(0..4) as u32, word(4..8) as u32, word(8..16)));
            }
        }
        v
    }

    /// Two instances of the same manual AES-GCM SA (`manual --down/--up`, a restart) send
    /// their first packets with the same SPI and sequence numbers but different IVs; within an
    /// instance the IV counts up by one per packet.
    #[test]
    fn manual_gcm_sa_instances_never_share_an_iv() {
        let first = esp_ivs(&klips_with_gcm_sa(), 5);
        let second = esp_ivs(&klips_with_gcm_sa(), 5);
        assert_eq!(first.len(), 5);
        for (a, b) in first.iter().zip(&second) {
            assert_eq!((a.0, a.1), (b.0, b.1), "same SPI and sequence number");
        }
        for w in first.windows(2).chain(second.windows(2)) {
            assert_eq!(w[1].1, w[0].1 + 1);
            assert_eq!(w[1].2, w[0].2.wrapping_add(1));
        }
        let ivs: std::collections::HashSet<u64> =
            first.iter().chain(&second).map(|x| x.2).collect();
        assert_eq!(ivs.len(), 10, "an IV repeated: {first:x?} {second:x?}");
    }

    #[test]
    fn drop_is_silent() {
        let k = klips_with(Shunt::Drop);
        let mut out = Vec::new();
        k.outbound(0, &udp_from_host_a(), 0, &mut rand::thread_rng(), &mut out);
        assert_eq!(
            out,
            vec![Emit::Drop {
                dev: 0,
                reason: DropReason::ShuntDrop,
                inbound: false
            }]
        );
    }
}
