//! rswan: a userspace IPsec gateway for Linux routers — FreeS/WAN's KLIPS (packet path) and
//! Pluto (IKE keying daemon) in one process.
//!
//! The protocol cores (wire formats, transforms, SADB, eroute table, configuration) are plain Rust
//! over byte buffers with time passed in; the `shell` modules (TUN devices, sockets, threads, the
//! control socket) are a thin layer around them. See `docs/ARCHITECTURE.md`.

pub mod addr;
pub mod admin;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod crypto;
pub mod dns;
pub mod eroute;
pub mod fasthash;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod klips;
pub mod manual;
pub mod pluto;
pub mod ratelimit;
pub mod sadb;
pub mod said;
pub mod sanitize;
pub mod shell;
pub mod updown;
pub mod wire;
pub mod xform;
