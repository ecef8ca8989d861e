//! The SADB: security associations keyed by SAID, SA groups (spigrp), anti-replay windows,
//! lifetimes and counters.

pub mod lifetime;
pub mod replay;
