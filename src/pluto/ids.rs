//! Typed identifiers of the Pluto core: [`SerialNo`] (Pluto's `#N`) and [`WhackClient`].

use std::fmt;

/// A state's serial number, Pluto's `#N`: one serial space shared by IKE SAs (ISAKMP SAs) and
/// child SAs (IPsec SAs), handed out in increasing order from 1, never reused while the
/// process runs (as in FreeS/WAN and Libreswan). Displays as the bare number (`#{serial}` in
/// format strings gives `#3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SerialNo(u64);

impl SerialNo {
    /// The first serial number handed out.
    pub const FIRST: SerialNo = SerialNo(1);

    /// The serial number `n` (as typed by an admin, e.g. `whack --deletestate 3`).
    pub const fn new(n: u64) -> SerialNo {
        SerialNo(n)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The serial number after this one.
    pub(crate) fn next(self) -> SerialNo {
        SerialNo(self.0.saturating_add(1))
    }

    /// The number of an optional serial, `0` for none (`#0` in `--status`, as Pluto shows an
    /// unset `so_serial_t`).
    pub fn or_zero(s: Option<SerialNo>) -> u64 {
        s.map_or(0, SerialNo::get)
    }
}

impl fmt::Display for SerialNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for SerialNo {
    type Err = std::num::ParseIntError;

    /// Parses the number of `#N` (without the `#`).
    fn from_str(s: &str) -> Result<SerialNo, Self::Err> {
        s.parse().map(SerialNo)
    }
}

impl From<u64> for SerialNo {
    fn from(n: u64) -> SerialNo {
        SerialNo(n)
    }
}

/// A whack client: one `ipsec auto`/`ipsec whack` command connected to the control socket,
/// numbered by the shell. Its progress lines ([`Output::Whack`](super::Output::Whack)) and
/// the end of its command ([`Output::WhackDone`](super::Output::WhackDone)) carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WhackClient(pub u64);

impl fmt::Display for WhackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for WhackClient {
    fn from(n: u64) -> WhackClient {
        WhackClient(n)
    }
}
