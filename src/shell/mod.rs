//! The thin I/O shell around the sans-IO cores: TUN devices, sockets, datapath threads, the
//! control socket and the daemon that ties them together. `unsafe` code lives only here.

pub mod control;
pub mod daemon;
pub mod datapath;
pub mod failclosed;
pub mod iface;
pub mod keying;
pub mod metrics;
pub mod net;
pub mod netlink;
pub mod paths;
pub mod policies;
pub mod resolver;
pub mod sdnotify;
pub mod syslog;
pub mod trace;
pub mod tun;
