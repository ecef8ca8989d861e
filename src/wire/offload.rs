//! TUN offloads (`IFF_VNET_HDR`): the `virtio_net_hdr` in front of every packet, splitting the
//! TCP super-packets the kernel hands us (TSO) into MTU-size segments with valid checksums, and
//! coalescing consecutive TCP segments of one flow into a super-packet for the kernel (GRO), so
//! the datapath moves one large packet per system call instead of dozens of small ones.

use super::ipv4::{self, proto};

/// Length of the `virtio_net_hdr` rswan asks the TUN device for.
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the L4 checksum is partial and must be completed (`csum_start`/`csum_offset`).
pub const F_NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a super-packet.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4 super-packet.
pub const GSO_TCPV4: u8 = 1;

/// Largest packet a coalesced super-packet may become (IPv4 total length).
pub const MAX_SUPER: usize = 65535;

/// The `virtio_net_hdr` fields (little-endian on the wire, as TUN uses on x86/arm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM` or 0.
    pub flags: u8,
    /// `GSO_NONE`, `GSO_TCPV4`, … (ECN bit 0x80 possible).
    pub gso_type: u8,
    /// Length of the headers (IP + TCP) of a super-packet.
    pub hdr_len: u16,
    /// Payload bytes per segment of a super-packet.
    pub gso_size: u16,
    /// Where checksumming starts (the L4 header).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the header at the front of `b`.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        if b.len() < VNET_HDR_LEN {
            return None;
        }
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Writes the header into `b[..10]`.
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }
}

/// Why a packet from TUN could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// Headers shorter than they say, or not IPv4/TCP where a TCP super-packet was announced.
    Malformed,
    /// A GSO type rswan did not ask for.
    Unsupported,
}

/// Completes a partial checksum (`F_NEEDS_CSUM`): the field at `start + offset` holds the
/// pseudo-header sum; the one's-complement sum of everything from `start` goes there.
pub fn complete_csum(pkt: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let at = start + offset;
    if at + 2 > pkt.len() || start > pkt.len() {
        return Err(OffloadError::Malformed);
    }
    let c = !ipv4::fold(ipv4::sum(&pkt[start..], 0));
    // UDP uses 0xffff for a computed zero; TCP never sends 0 either way.
    let c = if c == 0 { 0xffff } else { c };
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// TCP checksum of `seg` (IPv4 header of length `ihl` then TCP), written into the TCP header.
fn tcp_checksum(seg: &mut [u8], ihl: usize) {
    let tcp_len = seg.len() - ihl;
    seg[ihl + 16..ihl + 18].copy_from_slice(&[0, 0]);
    let mut acc = ipv4::sum(&seg[12..20], 0);
    acc = acc.wrapping_add(u32::from(proto::TCP));
    acc = acc.wrapping_add(tcp_len as u32);
    acc = ipv4::sum(&seg[ihl..], acc);
    let c = !ipv4::fold(acc);
    seg[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
}

/// The pseudo-header sum (not complemented) the kernel expects in the TCP checksum field of a
/// super-packet marked `F_NEEDS_CSUM`.
fn tcp_pseudo(seg: &mut [u8], ihl: usize) {
    let tcp_len = seg.len() - ihl;
    let mut acc = ipv4::sum(&seg[12..20], 0);
    acc = acc.wrapping_add(u32::from(proto::TCP));
    acc = acc.wrapping_add(tcp_len as u32);
    let c = ipv4::fold(acc);
    seg[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
}

/// Turns one packet read from TUN (vnet header already parsed, `pkt` after it) into ordinary
/// IPv4 packets with complete checksums, appended to `out`. A TCP super-packet becomes
/// segments of `gso_size` payload bytes each (sequence numbers, IP ids, lengths and flags fixed).
pub fn split(h: &VnetHdr, pkt: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), OffloadError> {
    match h.gso_type & 0x7f {
        GSO_NONE => {
            let mut p = pkt.to_vec();
            if h.flags & F_NEEDS_CSUM != 0 {
                complete_csum(
                    &mut p,
                    usize::from(h.csum_start),
                    usize::from(h.csum_offset),
                )?;
            }
            out.push(p);
            Ok(())
        }
        GSO_TCPV4 => split_tcp4(h, pkt, out),
        _ => Err(OffloadError::Unsupported),
    }
}

fn split_tcp4(h: &VnetHdr, pkt: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), OffloadError> {
    let g = Tcp4Super::parse(h, pkt)?;
    for i in 0..g.count {
        let (a, e) = g.range(i);
        let mut s = Vec::with_capacity(g.hl + e - a);
        s.extend_from_slice(&pkt[..g.hl]);
        s.extend_from_slice(&g.payload(pkt)[a..e]);
        g.fix(&mut s, i);
        out.push(s);
    }
    Ok(())
}

/// Why [`split_into`] could not place a packet's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// See [`OffloadError`].
    Offload(OffloadError),
    /// More segments than buffers, or a segment larger than a buffer.
    NoRoom,
}

/// [`split`] into caller-owned buffers instead of new vectors: each segment (or the whole
/// packet when it is not a super-packet) is written once into the next buffer of `bufs`, with
/// complete checksums. Returns how many buffers were filled. This is the outbound path's one
/// copy per packet (from the TUN read buffer into a buffer with head- and tailroom).
pub fn split_into(
    h: &VnetHdr,
    pkt: &[u8],
    bufs: &mut [crate::klips::PacketBuf],
) -> Result<usize, SplitError> {
    match h.gso_type & 0x7f {
        GSO_NONE => {
            let b = bufs.first_mut().ok_or(SplitError::NoRoom)?;
            if !b.fill(pkt) {
                return Err(SplitError::NoRoom);
            }
            if h.flags & F_NEEDS_CSUM != 0 {
                complete_csum(
                    b.bytes_mut(),
                    usize::from(h.csum_start),
                    usize::from(h.csum_offset),
                )
                .map_err(SplitError::Offload)?;
            }
            Ok(1)
        }
        GSO_TCPV4 => {
            let g = Tcp4Super::parse(h, pkt).map_err(SplitError::Offload)?;
            if g.count > bufs.len() {
                return Err(SplitError::NoRoom);
            }
            for (i, b) in bufs[..g.count].iter_mut().enumerate() {
                let (a, e) = g.range(i);
                let n = g.hl + e - a;
                let space = b.read_space();
                if n > space.len() {
                    return Err(SplitError::NoRoom);
                }
                space[..g.hl].copy_from_slice(&pkt[..g.hl]);
                space[g.hl..n].copy_from_slice(&g.payload(pkt)[a..e]);
                b.set_len(n);
                g.fix(b.bytes_mut(), i);
            }
            Ok(g.count)
        }
        _ => Err(SplitError::Offload(OffloadError::Unsupported)),
    }
}

/// A TCP/IPv4 super-packet's layout, for cutting it into segments.
struct Tcp4Super {
    ihl: usize,
    hl: usize,
    end: usize,
    mss: usize,
    id0: u16,
    seq0: u32,
    flags: u8,
    count: usize,
}

impl Tcp4Super {
    fn parse(h: &VnetHdr, pkt: &[u8]) -> Result<Tcp4Super, OffloadError> {
        if pkt.len() < 40 || pkt[0] >> 4 != 4 || pkt[9] != proto::TCP {
            return Err(OffloadError::Malformed);
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
        if ihl < 20 || pkt.len() < ihl + 20 {
            return Err(OffloadError::Malformed);
        }
        let thl = usize::from(pkt[ihl + 12] >> 4) * 4;
        let hl = ihl + thl;
        // The kernel may leave the IP total length at 0 for >64 KiB; trust the buffer then.
        let end = if total >= hl && total <= pkt.len() {
            total
        } else {
            pkt.len()
        };
        let mss = usize::from(h.gso_size);
        if thl < 20 || hl > end || mss == 0 {
            return Err(OffloadError::Malformed);
        }
        let plen = end - hl;
        // A segment must fit the IPv4 total length field.
        if hl + mss.min(plen) > usize::from(u16::MAX) {
            return Err(OffloadError::Malformed);
        }
        Ok(Tcp4Super {
            ihl,
            hl,
            end,
            mss,
            id0: u16::from_be_bytes([pkt[4], pkt[5]]),
            seq0: u32::from_be_bytes([pkt[ihl + 4], pkt[ihl + 5], pkt[ihl + 6], pkt[ihl + 7]]),
            flags: pkt[ihl + 13],
            count: plen.div_ceil(mss).max(1),
        })
    }

    fn payload<'a>(&self, pkt: &'a [u8]) -> &'a [u8] {
        &pkt[self.hl..self.end]
    }

    /// Payload byte range of segment `i`.
    fn range(&self, i: usize) -> (usize, usize) {
        let plen = self.end - self.hl;
        let a = i * self.mss;
        (a, (a + self.mss).min(plen))
    }

    /// Fixes lengths, IP id and checksum, sequence number, flags and TCP checksum of segment
    /// `i` (headers copied from the super-packet, payload in place).
    fn fix(&self, s: &mut [u8], i: usize) {
        let ihl = self.ihl;
        let len = s.len() as u16;
        s[2..4].copy_from_slice(&len.to_be_bytes());
        s[4..6].copy_from_slice(&self.id0.wrapping_add(i as u16).to_be_bytes());
        s[10..12].copy_from_slice(&[0, 0]);
        let c = ipv4::checksum(&s[..ihl]);
        s[10..12].copy_from_slice(&c.to_be_bytes());
        let (a, _) = self.range(i);
        s[ihl + 4..ihl + 8].copy_from_slice(&self.seq0.wrapping_add(a as u32).to_be_bytes());
        let mut f = self.flags;
        if i + 1 < self.count {
            f &= !(0x01 | 0x08); // FIN, PSH only on the last segment
        }
        if i > 0 {
            f &= !0x80; // CWR only on the first
        }
        s[ihl + 13] = f;
        tcp_checksum(s, ihl);
    }
}

/// The identity of a TCP/IPv4 segment for coalescing, without allocation: addresses, ports,
/// TOS, TTL, DF, ACK, window and options must all match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    addrs: [u8; 8],
    ports: [u8; 4],
    tos: u8,
    ttl: u8,
    df: bool,
    ack: [u8; 4],
    win: [u8; 2],
    opts: [u8; 40],
    opts_len: u8,
}

/// (key, IP header length, IP+TCP header length, sequence number, payload length) of a
/// coalescable segment (the rules of [`Coalescer`]).
fn flow_key(p: &[u8]) -> Option<(FlowKey, usize, usize, u32, usize)> {
    if p.len() < 40 || p[0] >> 4 != 4 || p[9] != proto::TCP {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl != 20 || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
        return None;
    }
    if usize::from(u16::from_be_bytes([p[2], p[3]])) != p.len() {
        return None;
    }
    let thl = usize::from(p[ihl + 12] >> 4) * 4;
    let hl = ihl + thl;
    if thl < 20 || hl > p.len() {
        return None;
    }
    let flags = p[ihl + 13];
    if flags & !(0x10 | 0x08) != 0 || flags & 0x10 == 0 || p.len() == hl {
        return None;
    }
    let mut k = FlowKey {
        addrs: [0; 8],
        ports: [0; 4],
        tos: p[1],
        ttl: p[8],
        df: p[6] & 0x40 != 0,
        ack: [0; 4],
        win: [p[ihl + 14], p[ihl + 15]],
        opts: [0; 40],
        opts_len: (thl - 20) as u8,
    };
    k.addrs.copy_from_slice(&p[12..20]);
    k.ports.copy_from_slice(&p[ihl..ihl + 4]);
    k.ack.copy_from_slice(&p[ihl + 8..ihl + 12]);
    k.opts[..thl - 20].copy_from_slice(&p[ihl + 20..hl]);
    let seq = u32::from_be_bytes([p[ihl + 4], p[ihl + 5], p[ihl + 6], p[ihl + 7]]);
    Some((k, ihl, hl, seq, p.len() - hl))
}

/// Plans how received packets go into the TUN device: consecutive TCP/IPv4 segments of one
/// flow (the rules of [`Coalescer`]) become one GSO super-packet, written as a header (an
/// adjusted copy of the first segment's) followed by every segment's payload *where it lies*
/// (an I/O vector), so coalescing copies no payload. Everything else is written as is; order
/// within a flow is kept. Reused batch after batch (nothing allocated once warm).
#[derive(Debug, Default)]
pub struct GroPlan {
    items: Vec<GroItem>,
    /// Next member of the same super-packet, by packet index.
    next: Vec<usize>,
    /// The header of the super-packet being written.
    hdr: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum GroItem {
    /// Written as is; the addresses and ports, if it has them (nothing of that flow may be
    /// coalesced past it).
    Plain(usize, Option<([u8; 8], [u8; 4])>),
    Super(GroRun),
}

#[derive(Debug, Clone, Copy)]
struct GroRun {
    key: FlowKey,
    first: usize,
    last: usize,
    count: usize,
    ihl: usize,
    hl: usize,
    seg: usize,
    next_seq: u32,
    total: usize,
    psh: bool,
    closed: bool,
}

/// Most segments in one planned super-packet.
pub const GRO_MAX_SEGS: usize = 64;

const END: usize = usize::MAX;

/// One write [`GroPlan::finish`] asks for.
#[derive(Debug)]
pub enum GroWrite<'p> {
    /// Packet number `.0`, as it is (with an empty vnet header).
    Plain(usize),
    /// A super-packet: vnet header, then `header`, then for each member `(index, offset)` the
    /// bytes of that packet from `offset` on (its payload).
    Super {
        /// Its vnet header.
        vnet: VnetHdr,
        /// IP + TCP header of the super-packet.
        header: &'p [u8],
        /// The members' payloads.
        members: GroMembers<'p>,
    },
}

/// The members of a planned super-packet: `(packet index, payload offset)` in order.
#[derive(Debug, Clone)]
pub struct GroMembers<'p> {
    next: &'p [usize],
    cur: usize,
    hl: usize,
}

impl Iterator for GroMembers<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.cur == END {
            return None;
        }
        let c = self.cur;
        self.cur = self.next.get(c).copied().unwrap_or(END);
        Some((c, self.hl))
    }
}

impl GroPlan {
    /// An empty plan.
    pub fn new() -> GroPlan {
        GroPlan::default()
    }

    /// Adds packet number `idx` (its bytes `p`, complete checksums). Indices must grow.
    pub fn push(&mut self, idx: usize, p: &[u8]) {
        if self.next.len() <= idx {
            self.next.resize(idx + 1, END);
        }
        self.next[idx] = END;
        let Some((key, ihl, hl, seq, payload)) = flow_key(p) else {
            let id = (p.len() >= 24).then(|| {
                let mut a = [0u8; 8];
                let mut q = [0u8; 4];
                a.copy_from_slice(&p[12..20]);
                q.copy_from_slice(&p[20..24]);
                (a, q)
            });
            self.items.push(GroItem::Plain(idx, id));
            return;
        };
        let psh = p[ihl + 13] & 0x08 != 0;
        // A segment may join only the most recent run of its flow, so order is kept.
        for it in self.items.iter_mut().rev() {
            match it {
                GroItem::Super(r) if r.key.addrs == key.addrs && r.key.ports == key.ports => {
                    let fits = r.key == key
                        && !r.closed
                        && r.next_seq == seq
                        && payload <= r.seg
                        && r.total + payload <= MAX_SUPER
                        && r.count < GRO_MAX_SEGS;
                    if fits {
                        self.next[r.last] = idx;
                        r.last = idx;
                        r.count += 1;
                        r.total += payload;
                        r.next_seq = seq.wrapping_add(payload as u32);
                        r.psh |= psh;
                        r.closed = payload < r.seg || psh;
                        return;
                    }
                    break;
                }
                GroItem::Plain(_, Some((a, q))) if *a == key.addrs && *q == key.ports => break,
                _ => {}
            }
        }
        self.items.push(GroItem::Super(GroRun {
            key,
            first: idx,
            last: idx,
            count: 1,
            ihl,
            hl,
            seg: payload,
            next_seq: seq.wrapping_add(payload as u32),
            total: p.len(),
            psh,
            closed: psh,
        }));
    }

    /// Hands every planned write to `write`, in order, and empties the plan. `pkt(i)` must
    /// return the bytes of packet `i` as pushed.
    pub fn finish<'a>(
        &mut self,
        pkt: impl Fn(usize) -> &'a [u8],
        mut write: impl FnMut(GroWrite<'_>),
    ) {
        let items = std::mem::take(&mut self.items);
        for it in &items {
            match *it {
                GroItem::Plain(i, _) => write(GroWrite::Plain(i)),
                GroItem::Super(r) if r.count == 1 => write(GroWrite::Plain(r.first)),
                GroItem::Super(r) => {
                    self.hdr.clear();
                    self.hdr.extend_from_slice(&pkt(r.first)[..r.hl]);
                    let h = &mut self.hdr;
                    let len = r.total as u16;
                    h[2..4].copy_from_slice(&len.to_be_bytes());
                    h[10..12].copy_from_slice(&[0, 0]);
                    let c = ipv4::checksum(&h[..r.ihl]);
                    h[10..12].copy_from_slice(&c.to_be_bytes());
                    if r.psh {
                        h[r.ihl + 13] |= 0x08;
                    }
                    // The pseudo-header sum the kernel expects with F_NEEDS_CSUM.
                    let mut acc = ipv4::sum(&h[12..20], 0);
                    acc = acc.wrapping_add(u32::from(proto::TCP));
                    acc = acc.wrapping_add((r.total - r.ihl) as u32);
                    let c = ipv4::fold(acc);
                    h[r.ihl + 16..r.ihl + 18].copy_from_slice(&c.to_be_bytes());
                    let vnet = VnetHdr {
                        flags: F_NEEDS_CSUM,
                        gso_type: GSO_TCPV4,
                        hdr_len: r.hl as u16,
                        gso_size: r.seg as u16,
                        csum_start: r.ihl as u16,
                        csum_offset: 16,
                    };
                    write(GroWrite::Super {
                        vnet,
                        header: &self.hdr,
                        members: GroMembers {
                            next: &self.next,
                            cur: r.first,
                            hl: r.hl,
                        },
                    });
                }
            }
        }
        self.items = items;
        self.items.clear();
    }
}

/// Identity of a TCP/IPv4 segment for coalescing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flow {
    addrs: [u8; 8],
    ports: [u8; 4],
    tos: u8,
    ttl: u8,
    df: bool,
    /// TCP header bytes 8..20 except the checksum and the flags' PSH bit: ack, offset, window,
    /// urgent — must be identical — plus any options.
    opts: Vec<u8>,
    ack: [u8; 4],
    win: [u8; 2],
}

struct Super {
    flow: Flow,
    ihl: usize,
    hl: usize,
    seg: usize,
    next_seq: u32,
    buf: Vec<u8>,
    /// The last segment was shorter than `seg` (or carried PSH): nothing may follow it.
    closed: bool,
    count: usize,
}

/// Groups consecutive TCP/IPv4 segments of one flow (same addresses, ports, ACK, window,
/// options, equal payload sizes, contiguous sequence numbers, plain ACK/PSH flags) into
/// super-packets the kernel resegments (GRO). Other packets pass through unchanged, and
/// packet order within each flow is kept.
#[derive(Default)]
pub struct Coalescer {
    items: Vec<Item>,
}

enum Item {
    Plain(Vec<u8>),
    Super(Super),
}

fn flow_of(p: &[u8]) -> Option<(Flow, usize, usize, u32, usize)> {
    if p.len() < 40 || p[0] >> 4 != 4 || p[9] != proto::TCP {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl != 20 || p.len() < ihl + 20 {
        return None;
    }
    if u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
        return None; // fragment
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if total != p.len() {
        return None;
    }
    let thl = usize::from(p[ihl + 12] >> 4) * 4;
    let hl = ihl + thl;
    if thl < 20 || hl > p.len() {
        return None;
    }
    let flags = p[ihl + 13];
    // Only ACK (and PSH on the last one) may be set: no SYN/FIN/RST/URG/ECE/CWR.
    if flags & !(0x10 | 0x08) != 0 || flags & 0x10 == 0 {
        return None;
    }
    let payload = p.len() - hl;
    if payload == 0 {
        return None;
    }
    let seq = u32::from_be_bytes([p[ihl + 4], p[ihl + 5], p[ihl + 6], p[ihl + 7]]);
    let mut addrs = [0u8; 8];
    addrs.copy_from_slice(&p[12..20]);
    let mut ports = [0u8; 4];
    ports.copy_from_slice(&p[ihl..ihl + 4]);
    let mut ack = [0u8; 4];
    ack.copy_from_slice(&p[ihl + 8..ihl + 12]);
    let win = [p[ihl + 14], p[ihl + 15]];
    Some((
        Flow {
            addrs,
            ports,
            tos: p[1],
            ttl: p[8],
            df: p[6] & 0x40 != 0,
            opts: p[ihl + 20..hl].to_vec(),
            ack,
            win,
        },
        ihl,
        hl,
        seq,
        payload,
    ))
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    /// Adds one IPv4 packet (complete checksums).
    pub fn push(&mut self, p: Vec<u8>) {
        let Some((flow, ihl, hl, seq, payload)) = flow_of(&p) else {
            self.items.push(Item::Plain(p));
            return;
        };
        let psh = p[ihl + 13] & 0x08 != 0;
        // Options other than timestamps-style equality are fine as long as identical; a
        // segment may join only the most recent super-packet of its flow, so order is kept.
        for it in self.items.iter_mut().rev() {
            match it {
                Item::Super(s) if s.flow.addrs == flow.addrs && s.flow.ports == flow.ports => {
                    let fits = s.flow == flow
                        && !s.closed
                        && s.next_seq == seq
                        && payload <= s.seg
                        && s.buf.len() + payload <= MAX_SUPER;
                    if fits {
                        s.buf.extend_from_slice(&p[hl..]);
                        s.next_seq = seq.wrapping_add(payload as u32);
                        s.count += 1;
                        if psh {
                            s.buf[ihl + 13] |= 0x08;
                        }
                        if payload < s.seg || psh {
                            s.closed = true;
                        }
                        return;
                    }
                    break;
                }
                Item::Plain(q)
                    if q.len() >= 24
                        && q[12..20] == flow.addrs[..]
                        && q[20..24] == flow.ports[..] =>
                {
                    break;
                }
                _ => {}
            }
        }
        let closed = psh;
        self.items.push(Item::Super(Super {
            flow,
            ihl,
            hl,
            seg: payload,
            next_seq: seq.wrapping_add(payload as u32),
            buf: p,
            closed,
            count: 1,
        }));
    }

    /// Emits everything pushed, in order: each as (vnet header, packet) ready for TUN.
    pub fn finish(&mut self, mut emit: impl FnMut(VnetHdr, Vec<u8>)) {
        for it in self.items.drain(..) {
            match it {
                Item::Plain(p) => emit(VnetHdr::default(), p),
                Item::Super(s) if s.count == 1 => emit(VnetHdr::default(), s.buf),
                Item::Super(mut s) => {
                    let len = s.buf.len() as u16;
                    s.buf[2..4].copy_from_slice(&len.to_be_bytes());
                    s.buf[10..12].copy_from_slice(&[0, 0]);
                    let c = ipv4::checksum(&s.buf[..s.ihl]);
                    s.buf[10..12].copy_from_slice(&c.to_be_bytes());
                    tcp_pseudo(&mut s.buf, s.ihl);
                    let h = VnetHdr {
                        flags: F_NEEDS_CSUM,
                        gso_type: GSO_TCPV4,
                        hdr_len: s.hl as u16,
                        gso_size: s.seg as u16,
                        csum_start: s.ihl as u16,
                        csum_offset: 16,
                    };
                    emit(h, s.buf)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
    use std::net::Ipv4Addr;

    fn tcp_packet(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 20 + payload.len()];
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 1, 10),
            dst: Ipv4Addr::new(10, 0, 2, 10),
            protocol: proto::TCP,
            tos: 0,
            ttl: 63,
            ident: 100,
            dont_frag: true,
            payload_len: 20 + payload.len(),
        }
        .emit(&mut p);
        p[20..22].copy_from_slice(&5001u16.to_be_bytes());
        p[22..24].copy_from_slice(&40000u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[28..32].copy_from_slice(&7u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        p[34..36].copy_from_slice(&500u16.to_be_bytes());
        p[40..].copy_from_slice(payload);
        tcp_checksum(&mut p, 20);
        p
    }

    fn tcp_ok(p: &[u8]) -> bool {
        let ihl = 20;
        let mut acc = ipv4::sum(&p[12..20], 0);
        acc = acc.wrapping_add(u32::from(proto::TCP));
        acc = acc.wrapping_add((p.len() - ihl) as u32);
        acc = ipv4::sum(&p[ihl..], acc);
        ipv4::fold(acc) == 0xffff && ipv4::checksum(&p[..20]) == 0
    }

    #[test]
    fn split_super_packet_into_valid_segments() {
        let data: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        // A super-packet as TSO delivers it: headers once, partial checksum.
        let mut sp = tcp_packet(1000, &data, 0x18);
        tcp_pseudo(&mut sp, 20);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1300,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut out = Vec::new();
        split(&h, &sp, &mut out).unwrap();
        assert_eq!(out.len(), 4);
        let mut re = Vec::new();
        for (i, s) in out.iter().enumerate() {
            assert!(tcp_ok(s), "segment {i} checksums");
            assert!(s.len() <= 1340);
            let p = Ipv4Packet::new_checked(s).unwrap();
            let seq = u32::from_be_bytes(s[24..28].try_into().unwrap());
            assert_eq!(seq, 1000 + (i as u32) * 1300);
            assert_eq!(s[33] & 0x08 != 0, i == 3, "PSH only on the last");
            re.extend_from_slice(&p.payload()[20..]);
        }
        assert_eq!(re, data);
    }

    #[test]
    fn coalesce_then_split_round_trip() {
        let mut c = Coalescer::new();
        let seg = 1300;
        for i in 0..5u32 {
            let payload = vec![i as u8; if i == 4 { 700 } else { seg }];
            c.push(tcp_packet(5000 + i * seg as u32, &payload, 0x10));
        }
        // A packet of another flow passes through.
        let mut other = tcp_packet(1, b"x", 0x10);
        other[20..22].copy_from_slice(&80u16.to_be_bytes());
        tcp_checksum(&mut other, 20);
        c.push(other.clone());
        let mut got = Vec::new();
        c.finish(|h, p| got.push((h, p)));
        assert_eq!(got.len(), 2);
        let (h, sp) = &got[0];
        assert_eq!(h.gso_type, GSO_TCPV4);
        assert_eq!(usize::from(h.gso_size), seg);
        assert_eq!(sp.len(), 40 + 4 * seg + 700);
        let mut segs = Vec::new();
        split(h, sp, &mut segs).unwrap();
        assert_eq!(segs.len(), 5);
        for s in &segs {
            assert!(tcp_ok(s));
        }
        assert_eq!(got[1].1, other);
        assert_eq!(got[1].0, VnetHdr::default());
    }

    #[test]
    fn gaps_and_flags_break_coalescing() {
        let mut c = Coalescer::new();
        c.push(tcp_packet(0, &[1; 100], 0x10));
        c.push(tcp_packet(200, &[2; 100], 0x10)); // gap
        c.push(tcp_packet(300, &[3; 100], 0x11)); // FIN
        let mut n = 0;
        c.finish(|h, _| {
            assert_eq!(h.gso_type, GSO_NONE);
            n += 1;
        });
        assert_eq!(n, 3);
    }

    /// `split_into` produces exactly what `split` does, into reused buffers.
    #[test]
    fn split_into_matches_split() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut sp = tcp_packet(77, &data, 0x18);
        tcp_pseudo(&mut sp, 20);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1300,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut want = Vec::new();
        split(&h, &sp, &mut want).unwrap();
        let mut bufs: Vec<crate::klips::PacketBuf> =
            (0..8).map(|_| crate::klips::PacketBuf::new(1500)).collect();
        let n = split_into(&h, &sp, &mut bufs).unwrap();
        assert_eq!(n, want.len());
        for (b, w) in bufs.iter().zip(&want) {
            assert_eq!(b.bytes(), &w[..]);
        }
        assert_eq!(split_into(&h, &sp, &mut bufs[..2]), Err(SplitError::NoRoom));
        let mut small: Vec<crate::klips::PacketBuf> =
            (0..8).map(|_| crate::klips::PacketBuf::new(500)).collect();
        assert_eq!(split_into(&h, &sp, &mut small), Err(SplitError::NoRoom));
        let plain = tcp_packet(1, b"abc", 0x18);
        let n = split_into(&VnetHdr::default(), &plain, &mut bufs).unwrap();
        assert_eq!((n, bufs[0].bytes()), (1, &plain[..]));
    }

    /// The zero-copy plan writes the same bytes the copying coalescer produces.
    #[test]
    fn gro_plan_matches_coalescer() {
        let seg = 1300;
        let mut pkts = Vec::new();
        for i in 0..5u32 {
            let payload = vec![i as u8; if i == 4 { 700 } else { seg }];
            pkts.push(tcp_packet(5000 + i * seg as u32, &payload, 0x10));
        }
        let mut other = tcp_packet(1, b"x", 0x10);
        other[20..22].copy_from_slice(&80u16.to_be_bytes());
        tcp_checksum(&mut other, 20);
        pkts.insert(2, other);
        pkts.push(tcp_packet(9, b"fin", 0x11));
        let mut c = Coalescer::new();
        for p in &pkts {
            c.push(p.clone());
        }
        let mut want = Vec::new();
        c.finish(|h, p| want.push((h, p)));
        let mut plan = GroPlan::new();
        for round in 0..2 {
            for (i, p) in pkts.iter().enumerate() {
                plan.push(i, p);
            }
            let mut got = Vec::new();
            plan.finish(
                |i| &pkts[i][..],
                |w| match w {
                    GroWrite::Plain(i) => got.push((VnetHdr::default(), pkts[i].clone())),
                    GroWrite::Super {
                        vnet,
                        header,
                        members,
                    } => {
                        let mut v = header.to_vec();
                        for (i, off) in members {
                            v.extend_from_slice(&pkts[i][off..]);
                        }
                        got.push((vnet, v));
                    }
                },
            );
            assert_eq!(got, want, "round {round}");
        }
    }

    #[test]
    fn segments_larger_than_ipv4_allows_are_refused() {
        let data = vec![7u8; 65_600];
        let sp = tcp_packet(1, &data[..65_000], 0x10);
        let mut big = sp.clone();
        big.extend_from_slice(&data[65_000..]);
        big[2..4].copy_from_slice(&[0, 0]); // >64 KiB: total length left at 0
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 65_535,
            ..VnetHdr::default()
        };
        let mut out = Vec::new();
        assert_eq!(split(&h, &big, &mut out), Err(OffloadError::Malformed));
        assert!(out.is_empty());
        // The same with segments that fit is split.
        split(
            &VnetHdr {
                gso_size: 1400,
                ..h
            },
            &big,
            &mut out,
        )
        .unwrap();
        assert!(out.iter().all(|s| s.len() <= 1440));
    }

    /// `split_into` applies the same bound as `split`: what matters is the largest segment
    /// (headers plus at most `gso_size` payload bytes), not `gso_size` alone.
    #[test]
    fn split_into_bounds_segments_like_split() {
        let mut bufs: Vec<crate::klips::PacketBuf> = (0..2)
            .map(|_| crate::klips::PacketBuf::new(MAX_SUPER))
            .collect();
        // A short super-packet whose gso_size is larger than any IPv4 packet: its one segment
        // (40 + 1000 bytes) fits, and both cut it the same way.
        let small = tcp_packet(5, &[9u8; 1000], 0x18);
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 65_535,
            ..VnetHdr::default()
        };
        let mut want = Vec::new();
        split(&h, &small, &mut want).unwrap();
        assert_eq!(want.len(), 1);
        assert_eq!(split_into(&h, &small, &mut bufs), Ok(1));
        assert_eq!(bufs[0].bytes(), &want[0][..]);
        // A segment of 40 + 65,535 bytes does not fit the total length field: both refuse.
        let mut big = tcp_packet(1, &vec![7u8; 65_000], 0x10);
        big.extend_from_slice(&[7u8; 600]);
        big[2..4].copy_from_slice(&[0, 0]); // >64 KiB: total length left at 0
        let mut out = Vec::new();
        assert_eq!(split(&h, &big, &mut out), Err(OffloadError::Malformed));
        assert_eq!(
            split_into(&h, &big, &mut bufs),
            Err(SplitError::Offload(OffloadError::Malformed))
        );
    }

    #[test]
    fn partial_checksum_completed() {
        let mut p = tcp_packet(9, b"hello", 0x18);
        let good = p.clone();
        tcp_pseudo(&mut p, 20);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        let mut out = Vec::new();
        split(&h, &p, &mut out).unwrap();
        assert_eq!(out[0], good);
        assert!(split(&VnetHdr { gso_type: 3, ..h }, &p, &mut out).is_err());
    }
}
