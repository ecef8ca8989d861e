//! Traffic Selector payloads, TSi and TSr (RFC 7296 3.13).
//!
//! ```text
//! Payload body: Number of TSs(1) RESERVED(3) Traffic Selectors...
//! Selector:     TS Type(1) IP Protocol ID(1) Selector Length(2) Start Port(2) End Port(2)
//!               Starting Address(4|16) Ending Address(4|16)
//! ```
//! Ports are kept as sent: "any" is 0–65535, OPAQUE is start 65535 / end 0, and for ICMP the
//! type and code are packed into them (RFC 7296 3.13.1); addresses are not checked for order.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::consts::{PayloadType, TsType};
use super::error::{EmitError, ParseError};
use super::payload::{too_short, Reader};

/// Most traffic selectors accepted in one TS payload.
pub const MAX_TRAFFIC_SELECTORS: usize = 64;
/// Length of a TS_IPV4_ADDR_RANGE selector.
pub const TS_IPV4_LEN: usize = 16;
/// Length of a TS_IPV6_ADDR_RANGE selector.
pub const TS_IPV6_LEN: usize = 40;

/// The address range of a selector, of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressRange {
    /// TS_IPV4_ADDR_RANGE.
    V4 {
        /// Starting address.
        start: Ipv4Addr,
        /// Ending address (inclusive).
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    V6 {
        /// Starting address.
        start: Ipv6Addr,
        /// Ending address (inclusive).
        end: Ipv6Addr,
    },
}

/// An address-range traffic selector (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrSelector {
    /// IP protocol (0 = any).
    pub ip_protocol: u8,
    /// First port (0 for any).
    pub start_port: u16,
    /// Last port (65535 for any).
    pub end_port: u16,
    /// The addresses.
    pub addresses: AddressRange,
}

impl AddrSelector {
    /// All ports and protocols of an address range.
    pub fn any(addresses: AddressRange) -> AddrSelector {
        AddrSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses,
        }
    }

    /// The TS type for this family.
    pub fn ts_type(&self) -> TsType {
        match self.addresses {
            AddressRange::V4 { .. } => TsType::Ipv4AddrRange,
            AddressRange::V6 { .. } => TsType::Ipv6AddrRange,
        }
    }
}

/// One traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE.
    Addr(AddrSelector),
    /// Another type (e.g. TS_SECLABEL), kept as received: the octet after the type and the
    /// bytes after the Selector Length field. Emitting one of the two address types this way
    /// is refused.
    Other {
        /// The selector type.
        ts_type: TsType,
        /// Second octet (IP protocol for address selectors, RESERVED for TS_SECLABEL).
        octet: u8,
        /// The rest of the selector.
        data: Vec<u8>,
    },
}

/// A TSi or TSr payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TsPayload {
    /// Selectors in order (at most [`MAX_TRAFFIC_SELECTORS`]).
    pub selectors: Vec<TrafficSelector>,
}

impl TsPayload {
    /// A payload of address selectors.
    pub fn new(selectors: impl IntoIterator<Item = AddrSelector>) -> TsPayload {
        TsPayload {
            selectors: selectors.into_iter().map(TrafficSelector::Addr).collect(),
        }
    }

    /// The address selectors (others skipped).
    pub fn addr_selectors(&self) -> impl Iterator<Item = &AddrSelector> {
        self.selectors.iter().filter_map(|s| match s {
            TrafficSelector::Addr(a) => Some(a),
            TrafficSelector::Other { .. } => None,
        })
    }

    /// Parses a TS payload body; `payload_type` (TSi or TSr) names it in errors.
    pub fn parse(body: &[u8], payload_type: PayloadType) -> Result<TsPayload, ParseError> {
        let malformed = |reason| ParseError::MalformedPayload {
            payload_type,
            reason,
        };
        let mut r = Reader::new(body);
        let count = r.u8().ok_or_else(|| too_short(payload_type, body))?;
        r.take(3).ok_or_else(|| too_short(payload_type, body))?;
        if count as usize > MAX_TRAFFIC_SELECTORS {
            return Err(malformed("too many traffic selectors"));
        }
        let mut selectors = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (Some(ts_type), Some(octet), Some(len)) = (r.u8(), r.u8(), r.u16()) else {
                return Err(malformed("traffic selector header truncated"));
            };
            let ts_type = TsType::from(ts_type);
            let data = (len as usize)
                .checked_sub(4)
                .and_then(|n| r.take(n))
                .ok_or(malformed("bad traffic selector length"))?;
            let mut d = Reader::new(data);
            let selector = match ts_type {
                TsType::Ipv4AddrRange | TsType::Ipv6AddrRange => {
                    let want = if ts_type == TsType::Ipv4AddrRange {
                        TS_IPV4_LEN
                    } else {
                        TS_IPV6_LEN
                    };
                    if len as usize != want {
                        return Err(malformed("address selector of the wrong length"));
                    }
                    let (Some(start_port), Some(end_port)) = (d.u16(), d.u16()) else {
                        return Err(malformed("traffic selector truncated"));
                    };
                    let addresses = if ts_type == TsType::Ipv4AddrRange {
                        match (d.array::<4>(), d.array::<4>()) {
                            (Some(s), Some(e)) => AddressRange::V4 {
                                start: Ipv4Addr::from(s),
                                end: Ipv4Addr::from(e),
                            },
                            _ => return Err(malformed("traffic selector truncated")),
                        }
                    } else {
                        match (d.array::<16>(), d.array::<16>()) {
                            (Some(s), Some(e)) => AddressRange::V6 {
                                start: Ipv6Addr::from(s),
                                end: Ipv6Addr::from(e),
                            },
                            _ => return Err(malformed("traffic selector truncated")),
                        }
                    };
                    TrafficSelector::Addr(AddrSelector {
                        ip_protocol: octet,
                        start_port,
                        end_port,
                        addresses,
                    })
                }
                _ => TrafficSelector::Other {
                    ts_type,
                    octet,
                    data: data.to_vec(),
                },
            };
            selectors.push(selector);
        }
        if !r.is_empty() {
            return Err(malformed("data after the last traffic selector"));
        }
        Ok(TsPayload { selectors })
    }

    /// Appends the payload body to `out`.
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        if self.selectors.len() > MAX_TRAFFIC_SELECTORS {
            return Err(EmitError::TooLong("traffic selector count"));
        }
        out.extend_from_slice(&[self.selectors.len() as u8, 0, 0, 0]);
        for s in &self.selectors {
            match s {
                TrafficSelector::Addr(a) => {
                    let len = match a.addresses {
                        AddressRange::V4 { .. } => TS_IPV4_LEN,
                        AddressRange::V6 { .. } => TS_IPV6_LEN,
                    } as u16;
                    out.extend_from_slice(&[a.ts_type().value(), a.ip_protocol]);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&a.start_port.to_be_bytes());
                    out.extend_from_slice(&a.end_port.to_be_bytes());
                    match a.addresses {
                        AddressRange::V4 { start, end } => {
                            out.extend_from_slice(&start.octets());
                            out.extend_from_slice(&end.octets());
                        }
                        AddressRange::V6 { start, end } => {
                            out.extend_from_slice(&start.octets());
                            out.extend_from_slice(&end.octets());
                        }
                    }
                }
                TrafficSelector::Other {
                    ts_type,
                    octet,
                    data,
                } => {
                    if matches!(ts_type, TsType::Ipv4AddrRange | TsType::Ipv6AddrRange) {
                        return Err(EmitError::Inconsistent(
                            "address selector type in TrafficSelector::Other",
                        ));
                    }
                    let len = u16::try_from(data.len() + 4)
                        .map_err(|_| EmitError::TooLong("traffic selector"))?;
                    out.extend_from_slice(&[ts_type.value(), *octet]);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(data);
                }
            }
        }
        Ok(())
    }
}
