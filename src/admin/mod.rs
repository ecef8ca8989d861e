//! The administrator's tools that are plain data and formats: Pluto's view for them
//! ([`view`]), the status with its JSON and Prometheus renderings ([`status`], [`json`]),
//! Wireshark's key tables ([`wireshark`]) and the censoring of configuration files for
//! `ipsec barf` ([`censor`]). The commands themselves are in `cli`, `cmd` and the daemon.

pub mod censor;
pub mod json;
pub mod status;
pub mod view;
pub mod wireshark;
