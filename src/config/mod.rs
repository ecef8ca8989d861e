//! Configuration layer: FreeS/WAN 2 `ipsec.conf` and `ipsec.secrets`, and the text formats they
//! use.
//!
//! * [`conf`]: `ipsec.conf` — `version 2`, `include`, `config setup` / `conn` sections,
//!   `also=`/`alsoflip=`, `%default`, keyword tables and light value checks; every error is a
//!   [`ConfError`] displayed as `FILE:LINE: message`.
//! * [`secrets`]: `ipsec.secrets` — PSK and RSA private keys with their ID indices, the
//!   "most specific wins" selection rules, and the permission check on the file.
//! * [`ttodata`](mod@ttodata): FreeS/WAN `0x`/`0s`/`0t` data notation.
//! * [`duration`]: `N`, `Ns`, `N[.N]m|h|d` durations.
//! * [`secret`]: [`Secret`], the wiped-on-drop buffer all key material is kept in.
//! * [`virtual_private`]: the `virtual_private=` list (private clients a NATed peer may claim).
//!
//! Everything here is plain parsing over files and strings; nothing is resolved (DNS,
//! `%defaultroute`, `%myid`) — that is the job of the callers.

pub mod conf;
pub mod duration;
mod include;
pub mod secret;
pub mod secrets;
pub mod ttodata;
pub mod virtual_private;

#[cfg(test)]
pub(crate) mod testutil;

pub use conf::{
    builtin_implicit_conns, ConfError, ConnSection, IpsecConf, Section, Value, CONN_KEYWORDS,
    IMPLICIT_FILE, SETUP_KEYWORDS,
};
pub use duration::{parse_duration, DurationError};
pub use secret::Secret;
pub use secrets::{
    check_permissions, Id, IdError, RsaPrivateKey, SecretEntry, SecretKey, Secrets, SecretsError,
};
pub use ttodata::{encode_base64, encode_hex, ttodata, ttodata_key, TtodataError};
pub use virtual_private::{VirtualPrivate, VirtualPrivateError};
