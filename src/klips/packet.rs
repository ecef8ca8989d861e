//! The datapath's packet types: a buffer with headroom and tailroom that the core transforms
//! in place ([`PacketBuf`]), the header facts parsed once per packet ([`Parsed`], dispatching
//! on the address family), and what the core decides for a packet ([`Verdict`], with a
//! [`Transmit`] that says where and how it leaves, so no later stage parses it again).

use std::net::IpAddr;
use std::ops::Range;

use crate::addr::Family;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;

use super::DropReason;

/// Bytes kept free in front of a packet for the headers the outbound path adds: outer IP
/// (IPv4 20, IPv6 40), UDP 8, ESP header 8 and IV (up to 16), an IPIP header (up to 40), AH
/// (12 + up to 32 of ICV) — 160 at most — rounded up.
pub const HEADROOM: usize = 192;

/// Bytes kept free behind a packet for ESP padding (up to 15), pad length and next header, and
/// the ICV (up to 32).
pub const TAILROOM: usize = 64;

/// A packet in a reusable buffer with [`HEADROOM`] in front and [`TAILROOM`] behind. The shell
/// keeps a pool of them per thread; the core grows the packet into the rooms (outer headers,
/// trailer) and shrinks it (decapsulation) without copying it.
#[derive(Clone)]
pub struct PacketBuf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PacketBuf({} bytes)", self.len())
    }
}

impl PacketBuf {
    /// A buffer for packets of up to `max_packet` bytes (plus the rooms).
    pub fn new(max_packet: usize) -> PacketBuf {
        PacketBuf {
            data: vec![0u8; HEADROOM + max_packet + TAILROOM].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
        }
    }

    /// A buffer holding a copy of `pkt` (tests, cold paths).
    pub fn from_slice(pkt: &[u8]) -> PacketBuf {
        let mut b = PacketBuf::new(pkt.len());
        b.fill(pkt);
        b
    }

    /// Largest packet the buffer takes at its initial position.
    pub fn max_packet(&self) -> usize {
        self.data.len() - HEADROOM - TAILROOM
    }

    /// Empties the buffer and resets the rooms.
    pub fn clear(&mut self) {
        self.start = HEADROOM;
        self.end = HEADROOM;
    }

    /// Replaces the contents with a copy of `pkt` (the one copy of the outbound path); false,
    /// leaving the buffer empty, if it does not fit.
    pub fn fill(&mut self, pkt: &[u8]) -> bool {
        self.clear();
        if pkt.len() > self.max_packet() {
            return false;
        }
        self.data[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
        self.end = HEADROOM + pkt.len();
        true
    }

    /// The space a reader may fill (then [`PacketBuf::set_len`]).
    pub fn read_space(&mut self) -> &mut [u8] {
        self.clear();
        let n = self.max_packet();
        &mut self.data[HEADROOM..HEADROOM + n]
    }

    /// After a read into [`PacketBuf::read_space`]: the packet is its first `n` bytes.
    pub fn set_len(&mut self, n: usize) {
        self.end = self.start + n.min(self.data.len() - TAILROOM - self.start);
    }

    /// The packet.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The packet, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Packet length.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the buffer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Bytes free in front.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Bytes free behind.
    pub fn tailroom(&self) -> usize {
        self.data.len() - self.end
    }

    /// Grows the packet by `n` bytes in front; false (unchanged) without the room.
    pub fn push_front(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }

    /// Grows the packet by `n` bytes behind; false (unchanged) without the room.
    pub fn push_back(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n;
        true
    }

    /// Makes the packet `bytes()[r]` (shrinking from both ends).
    pub fn narrow(&mut self, r: Range<usize>) {
        let len = self.len();
        let (a, b) = (r.start.min(len), r.end.min(len));
        self.end = self.start + b.max(a);
        self.start += a;
    }

    /// The packet plus `extra` bytes of tailroom, writable (for an in-place transform that
    /// appends a trailer).
    pub fn with_tail(&mut self, extra: usize) -> &mut [u8] {
        let end = (self.end + extra).min(self.data.len());
        &mut self.data[self.start..end]
    }

    /// Copies `n` bytes at the front `by` bytes further into the headroom (making a gap of
    /// `by` bytes after them: an IP header moved to make room for a header behind it).
    pub fn open_gap(&mut self, n: usize, by: usize) -> bool {
        if by > self.start || n > self.len() {
            return false;
        }
        let s = self.start;
        self.data.copy_within(s..s + n, s - by);
        self.start -= by;
        true
    }
}

/// What the datapath needs from an IP header, parsed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Address family.
    pub family: Family,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (IPv4 protocol field; for IPv6 the last next header of the
    /// extension header chain).
    pub proto: u8,
    /// Header length in bytes (IPv4 options, IPv6 extension headers included): where the
    /// upper layer starts.
    pub header_len: usize,
    /// Offset of the byte naming `proto` (9 in IPv4; in IPv6 the fixed header's or the last
    /// extension header's next-header byte).
    pub nh_at: usize,
    /// Length of the packet as the header says (trailing link padding excluded).
    pub total_len: usize,
    /// Type of service / traffic class.
    pub tos: u8,
    /// Don't fragment (always for IPv6, which routers never fragment).
    pub dont_frag: bool,
    /// A fragment (not the whole datagram).
    pub fragment: bool,
    /// TCP/UDP ports of a first fragment, else (0, 0).
    pub ports: (u16, u16),
}

impl Parsed {
    /// Parses the IP header at the front of `pkt`.
    pub fn parse(pkt: &[u8]) -> Result<Parsed, DropReason> {
        match pkt.first().map(|b| b >> 4) {
            Some(4) => {
                let p = Ipv4Packet::new_checked(pkt).map_err(|_| DropReason::Truncated)?;
                Ok(Parsed {
                    family: Family::V4,
                    src: IpAddr::V4(p.src()),
                    dst: IpAddr::V4(p.dst()),
                    proto: p.protocol(),
                    header_len: p.header_len(),
                    nh_at: 9,
                    total_len: p.total_len(),
                    tos: p.tos(),
                    dont_frag: p.dont_frag(),
                    fragment: p.is_fragment(),
                    ports: p.ports(),
                })
            }
            Some(6) => {
                let p = Ipv6Packet::new_checked(pkt).map_err(|_| DropReason::Truncated)?;
                let u = p.upper().map_err(|_| DropReason::BadExtHeaders)?;
                Ok(Parsed {
                    family: Family::V6,
                    src: IpAddr::V6(p.src()),
                    dst: IpAddr::V6(p.dst()),
                    proto: u.proto,
                    header_len: u.offset,
                    nh_at: u.nh_at,
                    total_len: p.total_len(),
                    tos: p.traffic_class(),
                    dont_frag: true,
                    fragment: u.fragment.is_some(),
                    ports: if u.is_later_fragment() {
                        (0, 0)
                    } else {
                        crate::wire::ipv6::ports_at(pkt, u)
                    },
                })
            }
            _ => Err(DropReason::NotIpsec),
        }
    }
}

/// ESP-in-UDP ports of a [`Transmit`] (RFC 3948).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpFlow {
    /// Our port (normally 4500).
    pub sport: u16,
    /// The peer's port.
    pub dport: u16,
}

/// Where and how a packet the core built leaves (quinn's `Transmit`): the buffer holds the
/// complete outer packet; for ESP-in-UDP the shell may instead hand the UDP payload
/// (`bytes()[payload_offset..]`) to the UDP socket, batching equal-size datagrams of one flow
/// into one UDP GSO send with `segment_size` = their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The ipsecN device whose physical interface sends it.
    pub dev: usize,
    /// Outer source address (ours).
    pub src: IpAddr,
    /// Outer destination.
    pub dst: IpAddr,
    /// Outer TOS.
    pub tos: u8,
    /// For ESP-in-UDP: the UDP ports.
    pub udp: Option<UdpFlow>,
    /// Bytes of outer IP (and UDP) header before the payload a UDP socket would send.
    pub payload_offset: usize,
}

impl Transmit {
    /// Whether `self` and `o` are datagrams of the same UDP flow (one GSO send may carry both).
    pub fn same_udp_flow(&self, o: &Transmit) -> bool {
        self.udp.is_some()
            && self.udp == o.udp
            && self.src == o.src
            && self.dst == o.dst
            && self.dev == o.dev
            && self.tos == o.tos
    }
}

/// What the core decided for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Outbound: send the buffer as [`Transmit`] says.
    Send(Transmit),
    /// Inbound: deliver the inner packet `pkt[at]` into ipsecN `dev`.
    Deliver {
        /// The ipsecN device.
        dev: usize,
        /// Where the inner packet lies in the buffer handed in.
        at: Range<usize>,
    },
    /// Discarded and counted; inbound drops also raise RX dropped on ipsecN `dev`.
    Drop {
        /// The device charged.
        dev: usize,
        /// Why.
        reason: DropReason,
        /// From the network (as opposed to leaving through ipsecN).
        inbound: bool,
    },
    /// An IKE message on UDP 4500 (non-ESP marker stripped) at `pkt[at]`.
    Ike {
        /// Sender.
        src: std::net::SocketAddr,
        /// Our address.
        dst: std::net::IpAddr,
        /// Where the message lies.
        at: Range<usize>,
    },
    /// Nothing more for this packet: held by `%hold`, a NAT keepalive, or its results
    /// (fragments, an ICMP error, a decompressed packet) are in the work area's extra emits.
    Done,
}

/// Most datagrams in one UDP GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const GSO_MAX_SEGS: usize = 64;
/// Most payload bytes in one UDP GSO send (below the 64 KB datagram limit with headers).
pub const GSO_MAX_BYTES: usize = 60_000;

/// One send the shell makes for a run of a batch's [`Verdict::Send`] packets, as
/// [`gso_run`] plans it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoRun {
    /// One past the last packet of the run (the run is `first..end`).
    pub end: usize,
    /// With two or more packets: one UDP GSO send of the UDP payloads, each
    /// `segment_size` bytes (the last may be shorter). None: send the first packet alone.
    pub segment_size: Option<u16>,
}

/// Plans the send that starts with packet `first` of a batch: a run of ESP-in-UDP datagrams
/// of one flow (what a TCP super-packet becomes), equal in size but the last, within
/// [`GSO_MAX_SEGS`] and [`GSO_MAX_BYTES`], among the packets `sel` picks, becomes one UDP GSO
/// send with its segment size; anything else is sent alone. Sizes come from each packet's
/// [`Transmit::payload_offset`], never from parsing it again.
pub fn gso_run(
    bufs: &[PacketBuf],
    verdicts: &[Verdict],
    first: usize,
    sel: &impl Fn(usize) -> bool,
) -> GsoRun {
    let alone = GsoRun {
        end: first + 1,
        segment_size: None,
    };
    let Some(Verdict::Send(t0)) = verdicts.get(first) else {
        return alone;
    };
    if t0.udp.is_none() {
        return alone;
    }
    let seg = bufs[first].len().saturating_sub(t0.payload_offset);
    if seg == 0 || seg > usize::from(u16::MAX) {
        return alone;
    }
    let mut total = seg;
    let mut j = first + 1;
    while j < verdicts.len() && j - first < GSO_MAX_SEGS {
        match &verdicts[j] {
            Verdict::Send(t) if t.same_udp_flow(t0) && sel(j) => {
                let len = bufs[j].len().saturating_sub(t.payload_offset);
                if len > seg || total + len > GSO_MAX_BYTES {
                    break;
                }
                total += len;
                j += 1;
                if len < seg {
                    break;
                }
            }
            _ => break,
        }
    }
    if j - first < 2 {
        return alone;
    }
    GsoRun {
        end: j,
        segment_size: Some(seg as u16),
    }
}

/// Per-thread scratch the core works in: reused across batches, so the hot path allocates
/// nothing. `extra` collects the rare results that do not fit a [`Verdict`] (fragments,
/// ICMP errors, IPComp output); the shell drains it after each batch.
#[derive(Debug, Default)]
pub struct Work {
    /// Scratch for transforms that cannot work in place (IPComp, AH).
    pub scratch: Vec<u8>,
    /// Further packets produced (cold paths).
    pub extra: Vec<super::Emit>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;
    use std::net::Ipv4Addr;

    #[test]
    fn rooms_grow_and_shrink_without_copies() {
        let mut b = PacketBuf::new(100);
        assert!(b.fill(&[1, 2, 3, 4]));
        assert!(b.push_front(2));
        b.bytes_mut()[..2].copy_from_slice(&[8, 9]);
        assert!(b.push_back(1));
        b.bytes_mut()[6] = 5;
        assert_eq!(b.bytes(), &[8, 9, 1, 2, 3, 4, 5]);
        b.narrow(2..6);
        assert_eq!(b.bytes(), &[1, 2, 3, 4]);
        assert!(b.open_gap(2, 3));
        assert_eq!(&b.bytes()[..2], &[1, 2]);
        assert_eq!(b.len(), 7);
        assert!(!b.push_front(HEADROOM * 2));
        assert!(!b.fill(&[0; 101]));
        assert!(b.is_empty());
    }

    /// Equal-size datagrams of one flow make one GSO run (a shorter one ends it); another flow,
    /// a raw packet, an unselected one or the segment limit break it.
    #[test]
    fn gso_runs_from_transmits() {
        let tx = |dport: u16| Transmit {
            dev: 0,
            src: Ipv4Addr::new(192, 0, 2, 1).into(),
            dst: Ipv4Addr::new(192, 0, 2, 2).into(),
            tos: 0,
            udp: (dport != 0).then_some(UdpFlow { sport: 4500, dport }),
            payload_offset: 28,
        };
        let buf = |n: usize| PacketBuf::from_slice(&vec![0u8; 28 + n]);
        let mut bufs = Vec::new();
        let mut v = Vec::new();
        for (n, port) in [
            (1400, 4500),
            (1400, 4500),
            (700, 4500),
            (1400, 4500),
            (1400, 0),
        ] {
            bufs.push(buf(n));
            v.push(Verdict::Send(tx(port)));
        }
        bufs.push(buf(1400));
        v.push(Verdict::Send(tx(4501)));
        let all = |_: usize| true;
        assert_eq!(
            gso_run(&bufs, &v, 0, &all),
            GsoRun {
                end: 3,
                segment_size: Some(1400)
            }
        );
        let alone = |end| GsoRun {
            end,
            segment_size: None,
        };
        assert_eq!(
            gso_run(&bufs, &v, 3, &all),
            alone(4),
            "a raw packet follows"
        );
        assert_eq!(
            gso_run(&bufs, &v, 4, &all),
            alone(5),
            "raw ESP is never GSO"
        );
        assert_eq!(gso_run(&bufs, &v, 5, &all), alone(6));
        assert_eq!(gso_run(&bufs, &v, 0, &|i| i != 1), alone(1), "not selected");
        let many: Vec<PacketBuf> = (0..100).map(|_| buf(500)).collect();
        let vs: Vec<Verdict> = (0..100).map(|_| Verdict::Send(tx(4500))).collect();
        assert_eq!(gso_run(&many, &vs, 0, &all).end, GSO_MAX_SEGS);
        let big: Vec<PacketBuf> = (0..50).map(|_| buf(1400)).collect();
        let vb: Vec<Verdict> = (0..50).map(|_| Verdict::Send(tx(4500))).collect();
        assert_eq!(gso_run(&big, &vb, 0, &all).end, GSO_MAX_BYTES / 1400);
    }

    #[test]
    fn parse_dispatches_on_family() {
        let mut p = [0u8; 28];
        ipv4::Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 1, 10),
            dst: Ipv4Addr::new(10, 0, 2, 10),
            protocol: 17,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_frag: true,
            payload_len: 8,
        }
        .emit(&mut p);
        p[20..24].copy_from_slice(&[0, 53, 0, 54]);
        let h = Parsed::parse(&p).unwrap();
        assert_eq!(h.family, Family::V4);
        assert_eq!(h.ports, (53, 54));
        assert_eq!((h.header_len, h.total_len, h.proto), (20, 28, 17));
        p[0] = 0x70;
        assert_eq!(Parsed::parse(&p), Err(DropReason::NotIpsec));
        let mut p6 = [0u8; 48];
        crate::wire::ipv6::Ipv6Repr {
            src: "2001:db8:1::10".parse().unwrap(),
            dst: "2001:db8:2::10".parse().unwrap(),
            next_header: 17,
            traffic_class: 0,
            hop_limit: 64,
            payload_len: 8,
        }
        .emit(&mut p6);
        p6[40..44].copy_from_slice(&[0, 53, 0, 54]);
        let h = Parsed::parse(&p6).unwrap();
        assert_eq!(h.family, Family::V6);
        assert_eq!(
            (h.header_len, h.total_len, h.proto, h.nh_at),
            (40, 48, 17, 6)
        );
        assert_eq!(h.ports, (53, 54));
        assert_eq!(Parsed::parse(&p6[..30]), Err(DropReason::Truncated));
        assert_eq!(Parsed::parse(&[]), Err(DropReason::NotIpsec));
    }
}
