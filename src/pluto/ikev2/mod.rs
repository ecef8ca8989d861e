//! IKEv2 (RFC 7296) beside IKEv1.
//!
//! So far only the message codec, [`wire`]: sans-IO parse and emit of IKEv2 messages and
//! payloads, the Encrypted (SK) and Encrypted Fragment (SKF, RFC 7383) framing, fragment
//! reassembly, and the RFC 7427 signature algorithm identifiers. The IKEv2 exchange handlers
//! are built on it.

pub mod wire;
