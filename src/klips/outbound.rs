//! Outbound: a packet read from ipsecN → eroute lookup → shunt action or the SA group applied
//! inner→outer (IPIP, IPComp, ESP, AH) → packets for the physical interface (spec 8).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::RngCore;

use crate::addr::Subnet;
use crate::eroute::Eroute;
use crate::sadb::lifetime::Expiry;
use crate::sadb::sa::{Sa, Xform};
use crate::said::{Proto, Said, Shunt};
use crate::wire::icmp;
use crate::wire::ipv4::{self, proto, Ipv4Packet, Ipv4Repr};
use crate::xform::ipcomp::{self, CompressOutcome};

use super::{Acquire, DropReason, Emit, Klips, SaEvent};

/// IKE's ports: locally sourced IKE traffic bypasses eroutes that would send it into its own SA.
const IKE_PORTS: [u16; 2] = [500, 4500];

struct Dev {
    addr: std::net::Ipv4Addr,
    phys_mtu: usize,
    mtu: usize,
}

impl Klips {
    /// Processes one packet the kernel routed into ipsecN `dev`.
    pub fn outbound(
        &self,
        dev: usize,
        pkt: &[u8],
        now: u64,
        rng: &mut dyn RngCore,
        out: &mut Vec<Emit>,
    ) {
        let Ok(p) = Ipv4Packet::new_checked(pkt) else {
            // Not IPv4 (eroutes are IPv4 only) or malformed: nothing can cover it.
            self.drop_out(dev, DropReason::NoEroute, out);
            return;
        };
        let d = {
            let devs = super::read(&self.devs);
            match devs.get(dev) {
                Some(d) => Dev {
                    addr: d.addr,
                    phys_mtu: d.phys_mtu,
                    mtu: d.mtu,
                },
                None => Dev {
                    addr: std::net::Ipv4Addr::UNSPECIFIED,
                    phys_mtu: 1500,
                    mtu: 1500,
                },
            }
        };
        let eroute = match self.eroutes().lookup(p.src(), p.dst()) {
            Some(e) => e.clone(),
            None => {
                if self.ike_bypass(&p, None) {
                    out.push(Emit::Net {
                        dev,
                        pkt: p.packet().to_vec(),
                    });
                } else {
                    self.drop_out(dev, DropReason::NoEroute, out);
                }
                return;
            }
        };
        if self.ike_bypass(&p, Some(&eroute)) {
            out.push(Emit::Net {
                dev,
                pkt: p.packet().to_vec(),
            });
            return;
        }
        eroute.count.fetch_add(1, Ordering::Relaxed);
        match eroute.said.shunt() {
            Some(Shunt::Pass) => out.push(Emit::Net {
                dev,
                pkt: p.packet().to_vec(),
            }),
            Some(Shunt::Drop) => self.drop_out(dev, DropReason::ShuntDrop, out),
            Some(Shunt::Reject) => {
                if let Some(icmp) = icmp::unreachable(&p, d.addr, icmp::PKT_FILTERED, 0) {
                    out.push(Emit::Local { pkt: icmp });
                }
                self.drop_out(dev, DropReason::ShuntReject, out);
            }
            Some(Shunt::Hold) => self.hold(&eroute, &p, dev, out),
            Some(s @ (Shunt::Trap | Shunt::TrapSubnet)) => self.trap(s, &eroute, &p, dev, out),
            None => self.encapsulate(&eroute.said, &p, &d, dev, now, rng, out),
        }
    }

    fn ike_bypass(&self, p: &Ipv4Packet<'_>, e: Option<&Arc<Eroute>>) -> bool {
        if p.protocol() != proto::UDP || !self.is_local(p.src()) {
            return false;
        }
        let (sport, _) = p.ports();
        if !IKE_PORTS.contains(&sport) {
            return false;
        }
        match e {
            None => true,
            Some(e) => e.said.shunt().is_some() || e.said.dst == p.dst(),
        }
    }

    fn hold(&self, e: &Eroute, p: &Ipv4Packet<'_>, dev: usize, out: &mut Vec<Emit>) {
        let mut held = e.held.lock().unwrap_or_else(|x| x.into_inner());
        if held.replace(p.packet().to_vec()).is_some() {
            self.drop_out(dev, DropReason::HoldReplaced, out);
        }
    }

    fn trap(&self, s: Shunt, e: &Eroute, p: &Ipv4Packet<'_>, dev: usize, out: &mut Vec<Emit>) {
        let (sport, dport) = p.ports();
        let hold = Said::new(
            Proto::Int,
            Shunt::Hold.spi(),
            std::net::Ipv4Addr::UNSPECIFIED,
        );
        let (src, dst) = if s == Shunt::TrapSubnet {
            (e.src, e.dst)
        } else {
            (Subnet::host(p.src()), Subnet::host(p.dst()))
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
                self.drop_out(dev, DropReason::HoldEvicted, out);
            }
        }
        self.hold(&held, p, dev, out);
        self.send_acquire(Acquire {
            src: p.src(),
            dst: p.dst(),
            proto: p.protocol(),
            sport,
            dport,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn encapsulate(
        &self,
        said: &Said,
        p: &Ipv4Packet<'_>,
        d: &Dev,
        dev: usize,
        now: u64,
        rng: &mut dyn RngCore,
        out: &mut Vec<Emit>,
    ) {
        let Some(group) = self.sadb().group_of(said) else {
            self.drop_out(dev, DropReason::ErouteWithoutSa, out);
            return;
        };
        if p.dont_frag() && p.packet().len() > d.mtu && self.params().fragicmp {
            if let Some(icmp) = icmp::unreachable(p, d.addr, icmp::FRAG_NEEDED, d.mtu as u16) {
                out.push(Emit::Local { pkt: icmp });
            }
        }
        let mut cur = p.packet().to_vec();
        for sa in group.iter() {
            if let Err(r) = self.apply(sa, &mut cur, now, rng) {
                self.drop_out(dev, r, out);
                return;
            }
        }
        if cur.len() <= d.phys_mtu {
            out.push(Emit::Net { dev, pkt: cur });
            return;
        }
        match ipv4::fragment(&cur, d.phys_mtu) {
            Some(frags) => out.extend(frags.into_iter().map(|pkt| Emit::Net { dev, pkt })),
            None => self.drop_out(dev, DropReason::Oversize, out),
        }
    }

    /// Applies one SA's transform to the IPv4 packet in `cur` (replacing its payload, or
    /// wrapping it in a new header for IPIP).
    fn apply(
        &self,
        sa: &Sa,
        cur: &mut Vec<u8>,
        now: u64,
        rng: &mut dyn RngCore,
    ) -> Result<(), DropReason> {
        let mut st = sa.state.lock().unwrap_or_else(|x| x.into_inner());
        if st.dead {
            return Err(DropReason::SaExpired);
        }
        match sa.account(&mut st, cur.len(), now) {
            // The expiry timer removes the SA (and its group) and reports it.
            Expiry::Hard(_) => return Err(DropReason::SaExpired),
            Expiry::Soft(_) if !st.soft_reported => {
                // Not marked reported if it could not be queued: the next packet retries.
                st.soft_reported = self.send_event(SaEvent::SoftExpired(sa.said));
            }
            _ => {}
        }
        let ip = Ipv4Packet::new_checked(cur).map_err(|_| DropReason::Truncated)?;
        let hl = ip.header_len();
        match &sa.xform {
            Xform::Ipip => {
                let repr = Ipv4Repr {
                    src: sa.src,
                    dst: sa.said.dst,
                    protocol: proto::IPIP,
                    tos: if self.params().hidetos { 0 } else { ip.tos() },
                    ttl: 64,
                    ident: self.next_ident(),
                    dont_frag: ip.dont_frag(),
                    payload_len: cur.len(),
                };
                let mut n = vec![0u8; ipv4::HEADER_LEN + cur.len()];
                if !repr.emit(&mut n) {
                    return Err(DropReason::Oversize);
                }
                n[ipv4::HEADER_LEN..].copy_from_slice(cur);
                *cur = n;
            }
            Xform::Deflate(state) => {
                if ip.is_fragment() {
                    return Ok(());
                }
                let mut state = state.lock().unwrap_or_else(|x| x.into_inner());
                let mut c = Vec::with_capacity(cur.len());
                let outcome = ipcomp::compress(
                    &mut state,
                    sa.said.spi as u16,
                    ip.protocol(),
                    ip.payload(),
                    &mut c,
                );
                if outcome == CompressOutcome::Compressed {
                    sa.comp_ratio
                        .0
                        .fetch_add(ip.payload().len() as u64, Ordering::Relaxed);
                    sa.comp_ratio.1.fetch_add(c.len() as u64, Ordering::Relaxed);
                    cur.truncate(hl);
                    cur.extend_from_slice(&c);
                    ipv4::fix_header(cur, proto::COMP);
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
                let mut iv = [0u8; crate::crypto::MAX_IV_LEN];
                let iv = &mut iv[..crypto.iv_len()];
                crypto.next_iv(seq, rng, iv);
                let nh = ip.protocol();
                let mut n = Vec::with_capacity(cur.len() + crypto.max_overhead() + 8);
                n.extend_from_slice(&cur[..hl]);
                let encap = sa.encap;
                if encap.is_some() {
                    n.extend_from_slice(&[0u8; 8]);
                }
                crypto.encapsulate(sa.said.spi, seq, nh, &cur[hl..], iv, &mut n);
                if let Some(e) = encap {
                    let ulen = (n.len() - hl) as u16;
                    n[hl..hl + 2].copy_from_slice(&e.sport.to_be_bytes());
                    n[hl + 2..hl + 4].copy_from_slice(&e.dport.to_be_bytes());
                    n[hl + 4..hl + 6].copy_from_slice(&ulen.to_be_bytes());
                    // RFC 3948 2.1: the checksum is sent as zero.
                    ipv4::fix_header(&mut n, proto::UDP);
                } else {
                    ipv4::fix_header(&mut n, proto::ESP);
                }
                *cur = n;
            }
            Xform::Ah { integ, .. } => {
                if ip.has_options() {
                    return Err(DropReason::IpOptions);
                }
                st.seq_out = st.seq_out.checked_add(1).ok_or(DropReason::SaExpired)?;
                let seq = st.seq_out;
                drop(st);
                let mut n = Vec::with_capacity(cur.len() + 48);
                crate::xform::ah::ah_output(integ.as_ref(), sa.said.spi, seq, cur, &mut n)
                    .map_err(|_| DropReason::IpOptions)?;
                *cur = n;
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
        let src = Subnet::host("10.0.1.10".parse().unwrap());
        for i in 0..10 {
            let h = t.get(&src, &Subnet::host(dst(i)));
            assert_eq!(h.is_some(), i >= 6, "hold for {}", dst(i));
        }
        drop(t);
        assert_eq!(k.notices.get(crate::klips::Notice::HoldEvicted), 6);
        assert_eq!(k.drops.get(DropReason::HoldEvicted), 6);
        assert_eq!(k.acquires().len(), 10);
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
            said: Said::new(Proto::Esp, 0x200, "192.0.2.2".parse().unwrap()),
            src: "192.0.2.1".parse().unwrap(),
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
