//! Wire formats the datapath reads and writes directly: IPv4, UDP and ICMP headers.
//! (ESP, AH and IPComp framing lives with their transforms in `xform`.)

pub mod icmp;
pub mod ipv4;
pub mod offload;
pub mod udp;
