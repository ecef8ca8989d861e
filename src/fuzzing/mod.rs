//! Fuzzing harnesses: one function per cargo-fuzz target in `fuzz/` (each target is a one-line
//! call), so that the regression inputs kept in `fuzz/regressions/<target>/` replay through the
//! very same code in the normal test run (`tests.rs`).
//!
//! Compiled only with the `fuzzing` feature (the fuzz crate turns it on) and in unit tests:
//! the Pluto harness reads the keys of established ISAKMP SAs out of the engine's states to
//! encrypt fuzzed plaintexts, which the product must never do.
//!
//! Every harness upholds the rule that bad input is an error or a counted drop: a panic (or a
//! failed invariant assertion) is a finding.

mod config;
mod control;
mod dns;
mod ikev2;
mod ikev2_engine;
mod isakmp;
mod klips;
mod offload;
mod pluto;

pub use config::config_files;
pub use control::control_request;
pub use dns::dns_parse;
pub use ikev2::ikev2_parse;
pub use ikev2_engine::ikev2_engine;
pub use isakmp::isakmp_parse;
pub use klips::klips_packets;
pub use offload::tun_offload;
pub use pluto::{pluto_engine, pluto_first};

/// A harness: one fuzz input in, a panic for a finding.
pub type Harness = fn(&[u8]);

/// Every harness by target name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// `fuzz/regressions/` directories).
pub const TARGETS: &[(&str, Harness)] = &[
    ("config_files", config_files),
    ("control_request", control_request),
    ("dns_parse", dns_parse),
    ("ikev2_engine", ikev2_engine),
    ("ikev2_parse", ikev2_parse),
    ("isakmp_parse", isakmp_parse),
    ("klips_packets", klips_packets),
    ("pluto_engine", pluto_engine),
    ("pluto_first", pluto_first),
    ("tun_offload", tun_offload),
];

#[cfg(test)]
mod tests;
