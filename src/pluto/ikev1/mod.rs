//! IKEv1 (RFC 2409) specifics on top of the shared [`crate::pluto::isakmp`] codec and
//! [`crate::pluto::crypto`] primitives. For now: [`crypto`], the RFC 2409 key derivation,
//! authentication hashes, IV chaining and message encryption.

pub mod crypto;
