//! Pluto: the embedded IKE keying daemon.
//!
//! This is the sans-IO foundation: plain Rust over byte buffers, time passed in.
//!
//! * [`isakmp`] — the ISAKMP / IKEv1 wire codec (header, payloads, NAT-T framing).
//! * [`crypto`] — primitives shared by IKEv1 and (later) IKEv2: MODP Diffie-Hellman, PRFs,
//!   CBC ciphers, RSA keys and signatures, `0x`/`0s`/`0t` text data.
//! * [`ikev1`] — IKEv1-specific computations (RFC 2409 key derivation, hashes, IV chaining,
//!   message encryption).

#![deny(missing_docs)]

pub mod crypto;
pub mod ikev1;
pub mod isakmp;
