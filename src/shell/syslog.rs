//! The daemon's log destinations, as FreeS/WAN had them: syslog lines tagged `pluto[PID]`
//! (facility authpriv; FreeS/WAN's Pluto logged at warning, its `| ` debug lines at debug),
//! `ipsec_setup` for start-up and shutdown (facility and priority from `config setup`
//! `syslog=`, default `daemon.error`) and `klips[PID]` for the datapath (`klipsdebug=`
//! tracing and bound notices, daemon.info); `plutostderrlog=FILE` sends Pluto's lines to FILE
//! (timestamped, appended) instead of syslog.
//!
//! The syslog client is a few lines over a Unix datagram socket (RFC 3164 framing, as glibc's
//! `syslog(3)` sends it): `/dev/log`, or the socket named by the `RSWAN_SYSLOG_SOCKET`
//! environment variable (tests point a daemon in a network namespace at their own socket, since
//! `/dev/log` is shared by every namespace).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The environment variable naming another syslog socket than `/dev/log`.
pub const SOCKET_ENV: &str = "RSWAN_SYSLOG_SOCKET";

/// Who a log line is from: it decides the syslog tag, facility and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The keying daemon and the process in general: tag `pluto[PID]`, facility authpriv.
    Pluto,
    /// Start-up and shutdown (`ipsec_setup: ` lines): tag `ipsec_setup`, `syslog=`.
    Setup,
    /// The datapath (`klipsdebug=` tracing, bound notices): tag `klips[PID]`, daemon.info.
    Klips,
}

impl Source {
    /// The source of a daemon log line: `ipsec_setup: …` lines are start-up's, the rest Pluto's.
    pub fn of(line: &str) -> Source {
        if line.starts_with("ipsec_setup: ") {
            Source::Setup
        } else {
            Source::Pluto
        }
    }
}

/// Syslog facilities by name (RFC 5424 numbers).
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Syslog priorities (severities) by name; `warn`, `err`, `crit` and `panic` as logger(1)
/// accepts them.
const PRIORITIES: [(&str, u8); 12] = [
    ("emerg", 0),
    ("panic", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
    ("none", 7),
];

/// Facility `authpriv` (Pluto's).
pub const AUTHPRIV: u8 = 10;
/// Facility `daemon`.
pub const DAEMON: u8 = 3;
/// Priority `warning`.
pub const WARNING: u8 = 4;
/// Priority `info`.
pub const INFO: u8 = 6;
/// Priority `debug`.
pub const DEBUG: u8 = 7;
/// Priority `error`.
pub const ERROR: u8 = 3;

/// A `facility.priority` pair (`syslog=daemon.error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    /// Facility number.
    pub facility: u8,
    /// Priority (severity) number.
    pub priority: u8,
}

impl Selector {
    /// FreeS/WAN's default for `syslog=`: `daemon.error`.
    pub const SETUP_DEFAULT: Selector = Selector {
        facility: DAEMON,
        priority: ERROR,
    };

    /// Parses `facility.priority` as logger(1) does (`daemon.error`, `local3.notice`, `user`
    /// alone means priority notice).
    pub fn parse(s: &str) -> Result<Selector, String> {
        let (f, p) = s.split_once('.').unwrap_or((s, "notice"));
        let facility = FACILITIES
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("unknown syslog facility \"{f}\""))?;
        let priority = PRIORITIES
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("unknown syslog priority \"{p}\""))?;
        Ok(Selector { facility, priority })
    }

    /// The PRI value of a syslog message.
    pub fn pri(self) -> u16 {
        u16::from(self.facility) * 8 + u16::from(self.priority)
    }
}

/// Where the daemon's lines go besides its own log (stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `syslog=`: facility and priority of the `ipsec_setup` lines.
    pub setup: Selector,
    /// The syslog socket (`/dev/log`, or `RSWAN_SYSLOG_SOCKET`).
    pub socket: PathBuf,
    /// `plutostderrlog=FILE`: Pluto's lines go there instead of to syslog.
    pub pluto_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            setup: Selector::SETUP_DEFAULT,
            socket: std::env::var_os(SOCKET_ENV)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from),
            pluto_file: None,
        }
    }
}

struct Logger {
    settings: Settings,
    sock: Option<UnixDatagram>,
    /// When to try connecting again after the syslog socket could not be reached.
    retry_at: Option<std::time::Instant>,
    pluto_file: Option<std::fs::File>,
}

static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

fn with_logger<T>(f: impl FnOnce(&mut Logger) -> T) -> T {
    let mut g = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    let l = g.get_or_insert_with(|| Logger {
        settings: Settings::default(),
        sock: None,
        retry_at: None,
        pluto_file: None,
    });
    f(l)
}

/// Opens a log file for appending, created 0600 (log lines name peers and conns).
pub fn open_append(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(p)
}

/// Applies `config setup`'s logging settings; fails when `plutostderrlog=` cannot be opened.
pub fn configure(settings: Settings) -> std::io::Result<()> {
    let file = match &settings.pluto_file {
        Some(p) => Some(open_append(p)?),
        None => None,
    };
    with_logger(|l| {
        l.settings = settings;
        l.pluto_file = file;
        // The socket may have changed: connect afresh on the next line.
        l.sock = None;
        l.retry_at = None;
    });
    Ok(())
}

/// The settings in force.
pub fn settings() -> Settings {
    with_logger(|l| l.settings.clone())
}

/// Sends `line` (one or more lines) from `source` to syslog, or for Pluto with
/// `plutostderrlog=` to that file (each line prefixed with `stamp`).
pub fn write(source: Source, stamp: &str, line: &str) {
    let pid = std::process::id();
    with_logger(|l| {
        if source == Source::Pluto {
            if let Some(f) = l.pluto_file.as_mut() {
                let _ = f.write_all(stamped_lines(stamp, line).as_bytes());
                return;
            }
        }
        let time = syslog_time();
        for t in line.lines() {
            let msg = message(source, &l.settings, pid, &time, t);
            // A missing syslog socket loses the line there, never the daemon. A socket that
            // fails is dropped and the line tried once more on a fresh one (the syslog daemon
            // restarted: its old socket refuses).
            for _ in 0..2 {
                let Some(sock) = l.connected() else {
                    break;
                };
                if sock.send(msg.as_bytes()).is_ok() {
                    break;
                }
                l.sock = None;
            }
        }
    })
}

impl Logger {
    /// The socket connected to the syslog socket (connected once, so a line is one `send`
    /// without a path lookup); None if it cannot be reached now.
    fn connected(&mut self) -> Option<&UnixDatagram> {
        if self.sock.is_none() {
            // No syslog daemon listening: its lines are lost (as with glibc's syslog), and a
            // connection is tried again at most once a second, not for every line.
            let now = std::time::Instant::now();
            if self.retry_at.is_some_and(|t| now < t) {
                return None;
            }
            let s =
                UnixDatagram::unbound().and_then(|s| s.connect(&self.settings.socket).map(|()| s));
            let Ok(s) = s else {
                self.retry_at = Some(now + std::time::Duration::from_secs(1));
                return None;
            };
            self.retry_at = None;
            self.sock = Some(s);
        }
        self.sock.as_ref()
    }
}

/// `line`'s lines, each as `STAMP text\n`, in one buffer (written with one call).
pub fn stamped_lines(stamp: &str, line: &str) -> String {
    let mut s = String::with_capacity(line.len() + stamp.len() + 2);
    for t in line.lines() {
        s.push_str(stamp);
        s.push(' ');
        s.push_str(t);
        s.push('\n');
    }
    s
}

/// The RFC 3164 datagram for one line: `<PRI>Mmm dd hh:mm:ss TAG: text`.
pub fn message(source: Source, settings: &Settings, pid: u32, time: &str, text: &str) -> String {
    let owned: String;
    let (sel, tag, text) = match source {
        Source::Setup => (
            settings.setup,
            "ipsec_setup".to_string(),
            text.strip_prefix("ipsec_setup: ").unwrap_or(text),
        ),
        Source::Pluto => {
            // A debug line of a state (`"c" #2: | …`) is written as FreeS/WAN's DBG_log wrote
            // it: `| "c" #2: …`.
            let debug = match text.split_once(": | ") {
                _ if text.starts_with("| ") => Some(text.to_string()),
                Some((prefix, rest)) if prefix.starts_with(['"', '#']) => {
                    Some(format!("| {prefix}: {rest}"))
                }
                _ => None,
            };
            let priority = if debug.is_some() { DEBUG } else { WARNING };
            owned = debug.unwrap_or_default();
            (
                Selector {
                    facility: AUTHPRIV,
                    priority,
                },
                format!("pluto[{pid}]"),
                if owned.is_empty() { text } else { &owned },
            )
        }
        Source::Klips => (
            Selector {
                facility: DAEMON,
                priority: if text.starts_with("klips_debug") {
                    DEBUG
                } else {
                    INFO
                },
            },
            format!("klips[{pid}]"),
            text,
        ),
    };
    // NUL ends a C string at the reader; keep lines bounded as syslog daemons do.
    let text: String = text.replace('\0', " ").chars().take(4000).collect();
    format!("<{}>{time} {tag}: {text}", sel.pri())
}

/// Local time as syslog writes it: `Dec  7 14:52:22`.
fn syslog_time() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let tm = super::daemon::local_tm(std::time::SystemTime::now());
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Whether stderr is the systemd journal (`JOURNAL_STREAM` names its device and inode): then
/// the daemon's lines reach the journal through syslog with their tags, and a second, untagged
/// copy on stderr is left out.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(js) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = js.split_once(':') else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_a_restarted_syslog_socket() {
        let dir = std::env::temp_dir().join(format!("rswan-syslog-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        // Whether `sock` receives a message ending in `text` (other tests' lines may come too).
        let receives = |sock: &UnixDatagram, text: &str| {
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut b = [0u8; 2048];
            while let Ok(n) = sock.recv(&mut b) {
                if String::from_utf8_lossy(&b[..n]).ends_with(text) {
                    return true;
                }
            }
            false
        };
        let first = UnixDatagram::bind(&path).unwrap();
        let settings = Settings {
            socket: path.clone(),
            ..Settings::default()
        };
        configure(settings).unwrap();
        write(Source::Klips, "stamp", "one");
        assert!(receives(&first, "one"));
        // The syslog daemon restarts: a new socket at the same path.
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        write(Source::Klips, "stamp", "two");
        assert!(
            receives(&second, "two"),
            "the line after a restart is sent again"
        );
        configure(Settings::default()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn selectors() {
        assert_eq!(
            Selector::parse("daemon.error").unwrap(),
            Selector::SETUP_DEFAULT
        );
        assert_eq!(Selector::parse("authpriv.info").unwrap().pri(), 86);
        assert_eq!(Selector::parse("local3").unwrap().pri(), 19 * 8 + 5);
        assert!(Selector::parse("nosuch.info")
            .unwrap_err()
            .contains("facility \"nosuch\""));
        assert!(Selector::parse("daemon.loud")
            .unwrap_err()
            .contains("priority \"loud\""));
    }

    #[test]
    fn messages_carry_tag_facility_and_priority() {
        let s = Settings {
            setup: Selector::parse("local2.notice").unwrap(),
            socket: "/nonexistent".into(),
            pluto_file: None,
        };
        let t = "Dec  7 14:52:22";
        assert_eq!(
            message(
                Source::Setup,
                &s,
                42,
                t,
                "ipsec_setup: Starting rswan IPsec 0.1.0..."
            ),
            "<149>Dec  7 14:52:22 ipsec_setup: Starting rswan IPsec 0.1.0..."
        );
        // authpriv (10) * 8 + warning (4); debug lines at debug.
        assert_eq!(
            message(Source::Pluto, &s, 42, t, "\"net\" #1: STATE_MAIN_I4"),
            "<84>Dec  7 14:52:22 pluto[42]: \"net\" #1: STATE_MAIN_I4"
        );
        assert!(message(Source::Pluto, &s, 42, t, "| deleting state #1").starts_with("<87>"));
        assert_eq!(
            message(Source::Pluto, &s, 42, t, "\"net\" #2: | installing SAs"),
            "<87>Dec  7 14:52:22 pluto[42]: | \"net\" #2: installing SAs"
        );
        assert!(message(Source::Klips, &s, 7, t, "klips_debug:eroute").starts_with("<31>"));
        assert_eq!(Source::of("ipsec_setup: x"), Source::Setup);
        assert_eq!(Source::of("\"c\" #1: x"), Source::Pluto);
    }
}
