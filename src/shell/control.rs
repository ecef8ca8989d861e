//! The control socket (`RUNDIR/pluto.ctl`): `ipsec` commands send their argument vector to the
//! running daemon and stream back its output and exit status, like whack talks to Pluto.
//!
//! Wire format (both directions length-prefixed, big-endian):
//! request  = u32 length, then the arguments joined by NUL bytes;
//! response = frames of kind u8 (1 stdout, 2 stderr, 0 exit) + u32 length + bytes; the exit
//! frame carries an i32 status and ends the exchange.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Largest request accepted (arguments are short; this bounds memory per client).
pub const MAX_REQUEST: usize = 1 << 20;

/// Sends `args` to the daemon at `sock` and copies its output to our stdout/stderr.
/// Returns the daemon's exit status.
pub fn call(sock: &Path, args: &[String]) -> io::Result<i32> {
    call_to(sock, args, &mut io::stdout(), &mut io::stderr())
}

/// Sends `args` to the daemon and returns its exit status and what it wrote to stdout.
pub fn call_capture(sock: &Path, args: &[String]) -> io::Result<(i32, String)> {
    let mut out = Vec::new();
    let code = call_to(sock, args, &mut out, &mut io::sink())?;
    Ok((code, String::from_utf8_lossy(&out).into_owned()))
}

fn call_to(
    sock: &Path,
    args: &[String],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> io::Result<i32> {
    exchange(UnixStream::connect(sock)?, args, stdout, stderr)
}

/// The client's side of one exchange on a connected stream: sends the request, copies the
/// output frames (read whole, whatever their length, in pieces of at most [`MAX_FRAME`]) and
/// returns the exit status.
fn exchange(
    mut s: UnixStream,
    args: &[String],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> io::Result<i32> {
    let body = args.join("\0");
    s.write_all(&(body.len() as u32).to_be_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let mut hdr = [0u8; 5];
        s.read_exact(&mut hdr)?;
        let mut left = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
        if hdr[0] == 0 {
            let mut code = [0u8; 4];
            let n = left.min(4);
            s.read_exact(&mut code[..n])?;
            left -= n;
            while left > 0 {
                let k = left.min(buf.len());
                s.read_exact(&mut buf[..k])?;
                left -= k;
            }
            return Ok(if n == 4 { i32::from_be_bytes(code) } else { 1 });
        }
        let to: &mut dyn Write = if hdr[0] == 1 { stdout } else { stderr };
        while left > 0 {
            let k = left.min(buf.len());
            s.read_exact(&mut buf[..k])?;
            to.write_all(&buf[..k])?;
            left -= k;
        }
        to.flush()?;
    }
}

/// Largest output frame the daemon sends (longer output goes in several).
pub const MAX_FRAME: usize = 64 * 1024;

/// The daemon's side of one client connection: output goes back as frames.
#[derive(Debug)]
pub struct Reply {
    stream: UnixStream,
    broken: bool,
}

impl Reply {
    fn frame(&mut self, kind: u8, data: &[u8]) {
        // Output longer than a frame goes in several (a client reads each whole).
        for piece in data
            .chunks(MAX_FRAME)
            .chain(data.is_empty().then_some(data))
        {
            if self.broken {
                return;
            }
            let mut f = Vec::with_capacity(5 + piece.len());
            f.push(kind);
            f.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            f.extend_from_slice(piece);
            if self.stream.write_all(&f).is_err() {
                self.broken = true;
            }
        }
    }

    /// Writes to the client's stdout.
    pub fn out(&mut self, s: &str) {
        self.frame(1, s.as_bytes());
    }

    /// Writes to the client's stderr.
    pub fn err(&mut self, s: &str) {
        self.frame(2, s.as_bytes());
    }

    /// Sends the exit status; the exchange is over.
    pub fn exit(mut self, code: i32) {
        self.frame(0, &code.to_be_bytes());
    }
}

/// Why a request frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Shorter than its 4-byte length prefix says (or than the prefix itself).
    Truncated,
    /// Longer than its length prefix says.
    TrailingBytes,
    /// The length prefix is above [`MAX_REQUEST`].
    TooLarge,
    /// The arguments are not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestError::Truncated => "request is truncated",
            RequestError::TrailingBytes => "request is longer than its length",
            RequestError::TooLarge => "request too large",
            RequestError::NotUtf8 => "request is not UTF-8",
        })
    }
}

impl std::error::Error for RequestError {}

impl From<RequestError> for io::Error {
    fn from(e: RequestError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The body length a request's 4-byte prefix announces, refused above [`MAX_REQUEST`].
fn body_len(prefix: [u8; 4]) -> Result<usize, RequestError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    Ok(len)
}

/// Parses one whole request frame (u32 length, then the arguments joined by NUL bytes) into
/// its argument vector; an empty body is no arguments. Sans-IO: [`read_request`] reads the
/// frame from the socket and hands it here.
pub fn parse_request(frame: &[u8]) -> Result<Vec<String>, RequestError> {
    let (prefix, body) = frame
        .split_first_chunk::<4>()
        .ok_or(RequestError::Truncated)?;
    let len = body_len(*prefix)?;
    if body.len() < len {
        return Err(RequestError::Truncated);
    }
    if body.len() > len {
        return Err(RequestError::TrailingBytes);
    }
    let text = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
    Ok(if text.is_empty() {
        Vec::new()
    } else {
        text.split('\0').map(str::to_owned).collect()
    })
}

/// Reads one request from a new connection.
pub fn read_request(mut stream: UnixStream) -> io::Result<(Vec<String>, Reply)> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix)?;
    let len = body_len(prefix)?;
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&prefix);
    stream.read_exact(&mut frame[4..])?;
    let args = parse_request(&frame)?;
    Ok((
        args,
        Reply {
            stream,
            broken: false,
        },
    ))
}

/// Binds the control socket, replacing a stale one, usable by root only: created under umask
/// 077, so it never exists with wider permissions, and every client is checked with
/// [`peer_uid`] as well.
pub fn listen(sock: &Path) -> io::Result<UnixListener> {
    if UnixStream::connect(sock).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use: is another rswan running?", sock.display()),
        ));
    }
    let _ = std::fs::remove_file(sock);
    // SAFETY: umask(2) only swaps the process's file mode mask; restored right after bind.
    let old = unsafe { libc::umask(0o077) };
    let l = UnixListener::bind(sock);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let l = l?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// The user id of the process at the other end of a control connection (SO_PEERCRED).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes a `struct ucred` into `cred`, whose size is passed in `len`;
    // both live for the call.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// How long a control thread with no client waits for the next one before it exits.
const IDLE_EXIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The threads that serve control clients, reused: a client goes to a thread that is waiting
/// for one, or a new thread is started for it when none is, so no client ever waits behind
/// another's long command (`ipsec auto --up` waits for IKE). A thread idle for [`IDLE_EXIT`]
/// exits. Saves starting and tearing down a thread per command when commands come in a
/// stream (scripts bringing up many conns).
pub struct ClientThreads {
    /// Rendezvous channel: a send succeeds only when an idle thread is receiving.
    tx: crossbeam_channel::Sender<UnixStream>,
    rx: crossbeam_channel::Receiver<UnixStream>,
    serve: std::sync::Arc<dyn Fn(UnixStream) + Send + Sync>,
}

impl ClientThreads {
    /// Threads that call `serve` for each client.
    pub fn new(serve: impl Fn(UnixStream) + Send + Sync + 'static) -> ClientThreads {
        let (tx, rx) = crossbeam_channel::bounded(0);
        ClientThreads {
            tx,
            rx,
            serve: std::sync::Arc::new(serve),
        }
    }

    /// Hands `client` to an idle thread, or to a new one.
    pub fn dispatch(&self, client: UnixStream) -> io::Result<()> {
        let client = match self.tx.try_send(client) {
            Ok(()) => return Ok(()),
            Err(e) => e.into_inner(),
        };
        let rx = self.rx.clone();
        let serve = self.serve.clone();
        std::thread::Builder::new()
            .name("ctl-client".into())
            .spawn(move || {
                serve(client);
                while let Ok(next) = rx.recv_timeout(IDLE_EXIT) {
                    serve(next);
                }
            })
            .map(drop)
    }
}

/// Answers a client that may not use the control socket: its request is read (so the client's
/// write never meets a closed socket) but not acted on, then an error line and exit status 1.
pub fn refuse(stream: UnixStream, why: &str) {
    let reply = match read_request(stream) {
        Ok((_, r)) => r,
        Err(_) => return,
    };
    let mut r = reply;
    r.err(&format!("ipsec: {why}\n"));
    r.exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn long_output_arrives_whole_and_the_exit_status_after_it() {
        let (client, daemon) = UnixStream::pair().unwrap();
        let big: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
        assert!(big.len() > 3 * MAX_REQUEST / 2, "longer than any one frame");
        let sent = big.clone();
        let t = std::thread::spawn(move || {
            let (args, mut reply) = read_request(daemon).unwrap();
            assert_eq!(args, ["auto", "--status"]);
            reply.out(&sent);
            reply.err("warning\n");
            reply.exit(3);
        });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = ["auto".to_string(), "--status".to_string()];
        let code = exchange(client, &args, &mut out, &mut err).unwrap();
        t.join().unwrap();
        assert_eq!(code, 3);
        assert!(
            out == big.as_bytes(),
            "stdout differs from what the daemon sent"
        );
        assert_eq!(err, b"warning\n");
    }

    #[test]
    fn client_threads_serve_concurrently_and_are_reused() {
        // Each client sends one byte: 1 = hold the thread until released, 0 = answer at once.
        let (release_tx, release_rx) = crossbeam_channel::unbounded::<()>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<std::thread::ThreadId>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let threads = ClientThreads::new(move |mut s: UnixStream| {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            if b[0] == 1 {
                let rx = release_rx.lock().unwrap().clone();
                rx.recv().unwrap();
            }
            done_tx.send(std::thread::current().id()).unwrap();
        });
        let client = |hold: u8| {
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            ours.write_all(&[hold]).unwrap();
            threads.dispatch(theirs).unwrap();
            ours
        };
        let _long = client(1);
        // The held client does not keep the next one waiting.
        let _quick = client(0);
        let quick_thread = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // Once a thread is idle again, the next client reuses it (given a moment to get back
        // to waiting; a client that comes sooner gets a new thread, which is allowed).
        let mut seen = vec![quick_thread];
        let mut reused = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            let _c = client(0);
            let t = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            if seen.contains(&t) {
                reused = true;
                break;
            }
            seen.push(t);
        }
        assert!(reused, "an idle thread serves the next client");
        release_tx.send(()).unwrap();
        let long_thread = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(!seen.contains(&long_thread));
    }
}
