//! Pluto: the embedded IKE keying daemon, sans-IO.
//!
//! Plain Rust over byte buffers: no sockets, threads or clocks. Time goes in as milliseconds
//! (`now_ms`, any monotonic origin), randomness is injected at construction.
//!
//! # The endpoint ([`Pluto`])
//!
//! ```text
//! let mut p = Pluto::new(PlutoConfig { interfaces, defaultroute, .. }, Box::new(rng));
//! p.load_secrets(secrets);                    // config::Secrets
//! let errors = p.load_conns(&ipsec_conf);     // auto=add|route|start conns; route ones get %trap
//! for name in p.start_conns() { p.whack(now, 0, WhackCmd::Up { name, asynchronous: true }) }
//! loop {
//!     // inputs, in any order:
//!     p.handle_datagram(now, local, remote, ike_bytes);   // UDP 500, or 4500 minus marker
//!     p.handle_acquire(now, acquire);                     // from Klips::acquires()
//!     p.handle_sa_event(now, event);                      // from Klips::sa_events()
//!     p.whack(now, client_id, cmd);                       // control socket
//!     p.handle_sa_usage(now, &usage);     // ~1 s: (SAID, ms since last packet) of installed_sa()s
//!     if p.shunt_scan_due(now) { p.handle_shunt_scan(now, &shunt_eroutes) }  // SHUNT_SCAN_INTERVAL
//!     if p.poll_timeout().is_some_and(|t| t <= now) { p.handle_timeout(now) }
//!     // then drain and apply outputs IN ORDER:
//!     while let Some(o) = p.poll_output() { apply(o) }
//! }
//! ```
//!
//! SA usage is how Pluto sees traffic: inbound use is a sign of life of the peer (DPD probes
//! only a quiet peer, and dpdtimeout counts from the last sign of life), use in either direction
//! decides whether a `rekey=no` initiator replaces an SA (EVENT_SA_REPLACE_IF_USED) and is the
//! `used Ns ago` of `--status`. The shunt scan (spec 4) reports the datapath's shunt eroutes:
//! a `%hold` Pluto never heard of is handled like an acquire, idle bare shunts are removed.
//!
//! # Outputs ([`Output`]), applied in the order produced
//!
//! * `Send { local, remote, data }`: one UDP datagram, `data` verbatim (on port 4500 it
//!   already carries the non-ESP marker, or is the 1-byte NAT keepalive).
//! * `InstallSas { conn, sas, groups }`: add each `SaSpec` to the SADB (inbound first), then
//!   group each `groups` entry inner→outer (tun→comp→esp→ah), like `ipsec spigrp`.
//! * `Eroute { op, src, dst, said }`: add/replace/delete the eroute for (src, dst); `said`
//!   is the outbound group head or an `int` shunt (`%trap`, `%pass`, …). A Replace of a
//!   `%trap`/`%hold` releases the held packet.
//! * `DeleteSas { saids }`: delete those SAs.
//! * `Updown { verb, info }`: run the conn's `leftupdown` (`info.run(verb)`; the shell runs the
//!   default script in-process, `shell::netlink::run_updown`).
//! * `Log(line)`: Pluto-style log line (no key material unless `plutodebug=private`).
//! * `Whack { client, code, text }`: print `format!("{code:03} {text}")` to that client.
//! * `WhackDone { client, status }`: the command is over; exit status.
//!
//! # Layout
//!
//! The version-neutral engine: [`engine`] (the endpoint: inputs, outputs, logging, sending),
//! [`sa`] (IKE SA and child SA records, `#N` serials, indexes), [`timers`] (one timer table;
//! retransmission and keying attempts, rekey, expiry, liveness, keepalives), `lifecycle`
//! (starting, establishing, deleting SAs), `routing` (eroutes, updown, `%trap`/`%hold`, bare
//! shunts), [`install`] (the [`install::NegotiatedChild`] contract: child SAs into the SADB),
//! `whack`, `credentials`, `status`, [`connection`], [`proposal`] (the algorithm vocabulary),
//! [`peer_policy`] (what an authenticated peer may claim and delete), [`limits`] (bounds
//! against hostile peers and the rate limit on logging unauthenticated input), [`spi`],
//! [`ids`], [`natt`], [`output`].
//!
//! How an IKE version plugs in: [`version`]. IKEv1 exchanges: [`ikev1`]; IKEv2 exchanges
//! and codec: [`ikev2`]. Foundations: [`isakmp`] (IKEv1 codec), [`crypto`] (DH, PRFs, RSA, IKE
//! message ciphers through [`crate::crypto::CryptoProvider`], the IKEv2 key schedule).

#![deny(missing_docs)]

pub mod connection;
pub mod conns;
mod credentials;
pub mod crypto;
pub mod engine;
pub mod groups;
pub mod ids;
pub mod ikev1;
pub mod ikev2;
pub mod install;
pub mod isakmp;
mod lifecycle;
pub mod limits;
pub mod natt;
mod oe;
pub mod output;
pub mod peer_policy;
pub mod proposal;
mod routing;
pub mod sa;
pub mod spi;
mod status;
pub mod timers;
pub mod version;
mod whack;

#[cfg(test)]
mod tests;

pub use connection::Connection;
pub use engine::Pluto;
pub use ids::{SerialNo, WhackClient};
pub use limits::LimitCounters;
pub use output::{rc, DebugFlags, ErouteOp, Interface, Output, PlutoConfig, ShuntEroute, WhackCmd};
