//! Why packets are discarded, and the counters behind `ipsec look` and `ifconfig ipsecN`
//! (spec 8: KLIPS' list, plus the reasons a userspace datapath adds).

use std::sync::atomic::{AtomicU64, Ordering};

/// A reason a packet was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Not an IPsec packet (bad IP header, unknown protocol, garbage on UDP 4500).
    NotIpsec,
    /// Shorter than its headers say.
    Truncated,
    /// AH payload length not a multiple of 4 / inconsistent.
    PayloadLenNotX4,
    /// AH authenticator length does not match the SA.
    BadAuthLen,
    /// No SA for (destination, SPI, protocol).
    NoSa,
    /// Outer source address differs from the SA's source.
    SaSourceMismatch,
    /// Sequence number outside the window or already seen.
    Replay,
    /// ICV did not verify.
    AuthFailure,
    /// ESP ciphertext length not a multiple of the cipher block size.
    EspLenNotX8,
    /// ESP padding bytes are not 1, 2, 3, ….
    BadPadding,
    /// IP options where they are not allowed (AH).
    IpOptions,
    /// TTL expired.
    TtlExpired,
    /// No eroute covers the packet (outbound).
    NoEroute,
    /// The eroute names an SA that does not exist (outbound).
    ErouteWithoutSa,
    /// The eroute is `%drop` (or `%trap`/`%hold` replaced an older held packet).
    ShuntDrop,
    /// The eroute is `%reject`.
    ShuntReject,
    /// The packet was held by a `%hold` eroute and later replaced by a newer one.
    HoldReplaced,
    /// The packet was held by a `%hold` eroute made by `%trap` that was evicted because too
    /// many such holds existed.
    HoldEvicted,
    /// The SA's hard lifetime is reached.
    SaExpired,
    /// Decapsulated addresses are outside the SA's policy (tunnel-exit check).
    ArrivalCheck,
    /// Nested SA is not the next SA of the group.
    GroupMismatch,
    /// IPComp data did not inflate.
    DecompressFailure,
    /// Too big to send even after fragmentation.
    Oversize,
    /// A device or socket refused the packet.
    SendFailure,
    /// ESP arrived encapsulated differently than its SA says: raw (IP protocol 50) for an SA
    /// that uses ESP-in-UDP, or in UDP for one that does not.
    EncapMismatch,
    /// An IPv6 extension header chain that cannot be walked (runs past the packet, hop-by-hop
    /// options not first, too long).
    BadExtHeaders,
}

impl DropReason {
    /// Every reason, in display order.
    pub const ALL: [DropReason; 26] = [
        DropReason::NotIpsec,
        DropReason::Truncated,
        DropReason::PayloadLenNotX4,
        DropReason::BadAuthLen,
        DropReason::NoSa,
        DropReason::SaSourceMismatch,
        DropReason::Replay,
        DropReason::AuthFailure,
        DropReason::EspLenNotX8,
        DropReason::BadPadding,
        DropReason::IpOptions,
        DropReason::TtlExpired,
        DropReason::NoEroute,
        DropReason::ErouteWithoutSa,
        DropReason::ShuntDrop,
        DropReason::ShuntReject,
        DropReason::HoldReplaced,
        DropReason::HoldEvicted,
        DropReason::SaExpired,
        DropReason::ArrivalCheck,
        DropReason::GroupMismatch,
        DropReason::DecompressFailure,
        DropReason::Oversize,
        DropReason::SendFailure,
        DropReason::EncapMismatch,
        DropReason::BadExtHeaders,
    ];

    /// The human text, KLIPS' wording where KLIPS had one.
    pub fn text(self) -> &'static str {
        match self {
            DropReason::NotIpsec => "not an IPsec packet",
            DropReason::Truncated => "truncated",
            DropReason::PayloadLenNotX4 => "payload length not x4",
            DropReason::BadAuthLen => "bad authenticator length",
            DropReason::NoSa => "no SA",
            DropReason::SaSourceMismatch => "SA source mismatch",
            DropReason::Replay => "replay",
            DropReason::AuthFailure => "auth failure",
            DropReason::EspLenNotX8 => "ESP length not x8",
            DropReason::BadPadding => "bad padding",
            DropReason::IpOptions => "IP options",
            DropReason::TtlExpired => "TTL expired",
            DropReason::NoEroute => "no eroute",
            DropReason::ErouteWithoutSa => "eroute without SA",
            DropReason::ShuntDrop => "%drop shunt",
            DropReason::ShuntReject => "%reject shunt",
            DropReason::HoldReplaced => "%hold replaced",
            DropReason::HoldEvicted => "%hold evicted",
            DropReason::SaExpired => "SA expired",
            DropReason::ArrivalCheck => "inner address outside SA policy",
            DropReason::GroupMismatch => "not next SA of group",
            DropReason::DecompressFailure => "IPComp decompression failure",
            DropReason::Oversize => "oversize",
            DropReason::SendFailure => "send failure",
            DropReason::EncapMismatch => "ESP encapsulation mismatch",
            DropReason::BadExtHeaders => "bad IPv6 extension headers",
        }
    }
}

/// Datapath events that are not packet drops but hit a bound or were merged while the keying
/// daemon was busy: counted for `ipsec look` and reported in the log at a bounded rate
/// ([`super::Klips::take_log_lines`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Notice {
    /// A `%hold` eroute made by `%trap` was evicted (oldest first) because the trap-hold limit
    /// was reached.
    HoldEvicted,
    /// An acquire identical to one still waiting for the keying daemon was merged into it.
    AcquireMerged,
    /// An acquire found [`super::EVENT_QUEUE_LEN`] others waiting and was left to the keying
    /// daemon's next shunt scan (its `%hold` stays; the scan treats it as an acquire).
    AcquireOverflow,
    /// An SA lifetime event identical to one still waiting was merged into it.
    SaEventMerged,
    /// An SA lifetime event could not be queued ([`super::MAX_DEFERRED_SA_EVENTS`] waiting).
    /// Nothing is lost: a soft expiry is reported again by the SA's next packet, a hard expiry
    /// by the next expiry pass ([`super::Klips::expire`]).
    SaEventLost,
}

impl Notice {
    /// Every notice, in display order.
    pub const ALL: [Notice; 5] = [
        Notice::HoldEvicted,
        Notice::AcquireMerged,
        Notice::AcquireOverflow,
        Notice::SaEventMerged,
        Notice::SaEventLost,
    ];

    /// The human text, as `ipsec look` lists it.
    pub fn text(self) -> &'static str {
        match self {
            Notice::HoldEvicted => "%trap holds evicted",
            Notice::AcquireMerged => "acquires merged (keying busy)",
            Notice::AcquireOverflow => "acquires left to shunt scan",
            Notice::SaEventMerged => "SA events merged (keying busy)",
            Notice::SaEventLost => "SA events deferred (queue full)",
        }
    }
}

/// Counters of [`Notice`]s, shared by all datapath threads.
#[derive(Debug, Default)]
pub struct NoticeStats {
    counts: [AtomicU64; Notice::ALL.len()],
}

impl NoticeStats {
    /// Counts one occurrence.
    pub fn count(&self, n: Notice) {
        self.counts[n as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for one notice.
    pub fn get(&self, n: Notice) -> u64 {
        self.counts[n as usize].load(Ordering::Relaxed)
    }

    /// Non-zero counters in display order.
    pub fn nonzero(&self) -> Vec<(Notice, u64)> {
        Notice::ALL
            .iter()
            .map(|&n| (n, self.get(n)))
            .filter(|&(_, c)| c != 0)
            .collect()
    }
}

/// Drop counters by reason, shared by all datapath threads.
#[derive(Debug, Default)]
pub struct DropStats {
    counts: [AtomicU64; DropReason::ALL.len()],
    rx: AtomicU64,
    tx: AtomicU64,
}

impl DropStats {
    /// Counts one discarded packet; `inbound` tells whether it came from the network (RX) or
    /// was on its way out through ipsecN (TX).
    pub fn count(&self, r: DropReason, inbound: bool) {
        self.counts[r as usize].fetch_add(1, Ordering::Relaxed);
        if inbound { &self.rx } else { &self.tx }.fetch_add(1, Ordering::Relaxed);
    }

    /// The count for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        self.counts[r as usize].load(Ordering::Relaxed)
    }

    /// Non-zero counters in display order.
    pub fn nonzero(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n != 0)
            .collect()
    }

    /// Sum of inbound (RX) and outbound (TX) drops.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.rx.load(Ordering::Relaxed),
            self.tx.load(Ordering::Relaxed),
        )
    }

    /// Zeroes every counter.
    pub fn clear(&self) {
        for c in self.counts.iter().chain([&self.rx, &self.tx]) {
            c.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn notices_are_in_discriminant_order() {
        for (i, n) in Notice::ALL.iter().enumerate() {
            assert_eq!(*n as usize, i);
        }
        let s = NoticeStats::default();
        s.count(Notice::AcquireMerged);
        assert_eq!(s.nonzero(), vec![(Notice::AcquireMerged, 1)]);
    }

    #[test]
    fn counting() {
        let s = DropStats::default();
        s.count(DropReason::Replay, true);
        s.count(DropReason::Replay, true);
        s.count(DropReason::NoEroute, false);
        assert_eq!(s.get(DropReason::Replay), 2);
        assert_eq!(s.totals(), (2, 1));
        assert_eq!(s.nonzero().len(), 2);
    }
}
