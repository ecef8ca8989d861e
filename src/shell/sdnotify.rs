//! systemd's readiness protocol (`Type=notify`), done directly: one datagram of
//! `KEY=value` lines to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace), as `sd_notify(3)` sends it. Without `NOTIFY_SOCKET` nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1\nSTATUS=…"`) to the service manager. Returns whether a manager
/// asked for notifications (`NOTIFY_SOCKET` set).
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let path = path.to_string_lossy().into_owned();
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

/// Tells the service manager the daemon is up: it listens on its sockets and the control
/// socket, and the `auto=` conns are loaded (routed ones with their `%trap` eroutes).
pub fn ready(status: &str) {
    let msg = format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id());
    if let Err(e) = notify(&msg) {
        super::daemon::log(&format!(
            "ipsec_setup: cannot notify the service manager ($NOTIFY_SOCKET): {e}"
        ));
    }
}

/// Tells the service manager the daemon is stopping.
pub fn stopping() {
    let _ = notify("STOPPING=1\nSTATUS=stopping");
}
