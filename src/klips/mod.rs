//! The KLIPS half of rswan: the sans-IO datapath core (outbound classification and transforms,
//! inbound checks and decapsulation, drop accounting). Devices and sockets live in `shell`.

pub mod drops;
