//! Wire formats the datapath reads and writes directly: IPv4 and IPv6 headers (one module per
//! family), UDP, ICMP and ICMPv6. (ESP, AH and IPComp framing lives with their transforms in
//! `xform`.)

pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod offload;
pub mod udp;
