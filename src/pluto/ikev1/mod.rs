//! IKEv1 (RFC 2409) on top of the shared [`crate::pluto::isakmp`] codec and
//! [`crate::pluto::crypto`] primitives:
//!
//! * [`crypto`]: RFC 2409 key derivation, authentication hashes, IV chaining, message
//!   encryption.
//! * [`state`]: the ISAKMP SA and IPsec SA state families.
//! * `main_mode`, `quick_mode`, `informational`: the exchanges, as `impl Pluto` blocks
//!   (the engine owns connections, states and outputs).

pub mod crypto;
mod informational;
mod main_mode;
pub(crate) mod msg;
pub(crate) mod quick_mode;
pub mod state;
