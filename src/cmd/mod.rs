//! The `ipsec` commands that act on the datapath tables (`eroute`, `spi`, `spigrp`, `tncfg`,
//! `look`): sans-IO functions over [`Klips`] that return their output text and any packets to
//! send (a `%hold` released by `eroute --replace`). The daemon runs them for control-socket
//! clients; unit tests run them directly.

pub mod args;
pub mod barf;
pub mod eroute;
pub mod keys;
pub mod look;
pub mod said_arg;
pub mod spi;
pub mod spigrp;
pub mod tncfg;
pub mod verify;

use rand::RngCore;

use crate::klips::{Emit, Klips};

pub use args::CmdError;

/// What a command works on and produces.
pub struct Ctx<'a> {
    /// The datapath.
    pub klips: &'a Klips,
    /// Seconds on the daemon clock.
    pub now: u64,
    /// Randomness for any packet the command causes to be sent.
    pub rng: &'a mut dyn RngCore,
    /// Text for the client's stdout.
    pub out: String,
    /// Packets to send.
    pub emits: Vec<Emit>,
    /// The SAs the command added (the daemon keeps ESP keys for Wireshark's tables).
    pub installed: Vec<crate::sadb::SaSpec>,
}

impl<'a> Ctx<'a> {
    /// A context with empty output.
    pub fn new(klips: &'a Klips, now: u64, rng: &'a mut dyn RngCore) -> Ctx<'a> {
        Ctx {
            klips,
            now,
            rng,
            out: String::new(),
            emits: Vec::new(),
            installed: Vec::new(),
        }
    }

    /// Appends a line to the output.
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }
}
