//! `ipsec.secrets(5)` (spec §2): pre-shared keys and RSA private keys indexed by IDs, and the
//! rules Pluto uses to pick one for a pair of endpoints.
//!
//! Format, as read by FreeS/WAN 2 Pluto:
//!
//! * a record starts in column 0; its continuation lines are indented; blank lines and
//!   comments (`#` at the start of a token, i.e. at line start or after white space) are
//!   ignored anywhere;
//! * `include FILE` (shell wildcards, relative to the including file, nesting ≤ 10);
//! * `INDEX ... : KIND SECRET`: the `:` is a token of its own (a colon followed by white space
//!   also ends the word before it, so `10.0.0.1: PSK` works); the legacy form is
//!   `INDEX ... "string"` with no colon (a PSK);
//! * indices: IPv4 or IPv6 address, host name (kept unresolved, see [`Secrets::resolve_names`]),
//!   `@fqdn`, `user@fqdn`, `%any`, `%any6`, `0.0.0.0` (= `%any`); no index = default entry;
//! * `PSK` (case-insensitive; may be omitted): `"text"` / `'text'` or `0x`/`0s`/`0t` data;
//! * `RSA { Modulus: … PublicExponent: … PrivateExponent: … Prime1: … Prime2: … Exponent1: …
//!   Exponent2: … Coefficient: … }` — fields in that order, colons optional, the closing `}`
//!   indented.
//!
//! Errors ([`SecretsError`]) name file and line and never contain any text of the file other
//! than keywords, so a malformed record cannot leak a key into a log.

use super::conf::utf8_error_line;
use super::include::{self, MAX_INCLUDE_DEPTH};
use super::secret::{ct_eq_bytes, Secret};
use super::ttodata::{encode_base64, ttodata_key};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An `ipsec.secrets` problem at `file:line` (line 0 = the file as a whole, e.g. permissions).
///
/// `Display` gives `FILE:LINE: message` (`FILE: message` for line 0). The message never
/// contains secret material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsError {
    /// The secrets file concerned.
    pub file: PathBuf,
    /// 1-based line number, or 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl SecretsError {
    /// An error about `file:line`.
    pub fn new(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> SecretsError {
        SecretsError {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for SecretsError {}

/// An IKE identity as written in `ipsec.conf` (`leftid=`) and `ipsec.secrets` indices.
///
/// Equality follows Pluto's `same_id`: FQDNs, user FQDNs and host names compare
/// case-insensitively and ignoring one trailing dot; `Any` equals only `Any` (it is not a
/// wildcard — callers that want the Road-Warrior fallback query again with [`Id::Any`]).
#[derive(Clone, Debug, Eq)]
pub enum Id {
    /// An IPv4 address (`192.0.2.1`); never `0.0.0.0`, which is [`Id::Any`].
    Ipv4(Ipv4Addr),
    /// An IPv6 address (`2001:db8::1`); never `::`, which is [`Id::Any`].
    Ipv6(Ipv6Addr),
    /// `@west.example.com`, stored without the `@`, used literally (no DNS).
    Fqdn(String),
    /// `user@example.com`, stored as written.
    UserFqdn(String),
    /// `%any` / `%any6` / `0.0.0.0`: the unknown peer of a Road Warrior connection.
    Any,
    /// A host name still to be resolved to an address (`gw.example.com` without `@`).
    Name(String),
}

/// Why a text could not be read as an [`Id`]. The message does not repeat the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdError {
    message: String,
}

impl IdError {
    fn new(message: &str) -> IdError {
        IdError {
            message: message.to_string(),
        }
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IdError {}

fn strip_dot(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

impl Id {
    /// Parse the configuration-file form: `192.0.2.1`, `2001:db8::1`, `@host.example.com`,
    /// `user@example.com`, `%any`, `%any6`, `0.0.0.0`, `::`, or a host name. Other `%` words
    /// (`%myid`, `%defaultroute`, …) must be resolved by the caller first and are rejected here.
    pub fn parse(s: &str) -> Result<Id, IdError> {
        if s.is_empty() {
            return Err(IdError::new("empty ID"));
        }
        if s == "%any" || s == "%any6" {
            return Ok(Id::Any);
        }
        if s.starts_with('%') {
            return Err(IdError::new(
                "unsupported %-keyword as ID (only %any and %any6 are allowed here)",
            ));
        }
        if let Some(rest) = s.strip_prefix('@') {
            if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(IdError::new("malformed @FQDN ID"));
            }
            return Ok(Id::Fqdn(rest.to_string()));
        }
        if let Some((user, host)) = s.split_once('@') {
            if user.is_empty()
                || host.is_empty()
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(IdError::new("malformed user@FQDN ID"));
            }
            return Ok(Id::UserFqdn(s.to_string()));
        }
        if let Ok(a) = Ipv4Addr::from_str(s) {
            return Ok(if a.is_unspecified() {
                Id::Any
            } else {
                Id::Ipv4(a)
            });
        }
        if let Ok(a) = Ipv6Addr::from_str(s) {
            return Ok(if a.is_unspecified() {
                Id::Any
            } else {
                Id::Ipv6(a)
            });
        }
        if s.contains(':') {
            return Err(IdError::new("malformed IPv6 address"));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(IdError::new("malformed IPv4 address"));
        }
        let hostname_ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !s.starts_with('.')
            && !s.starts_with('-');
        if !hostname_ok {
            return Err(IdError::new(
                "not an IPv4 address, @FQDN, user@FQDN, %any or host name",
            ));
        }
        Ok(Id::Name(s.to_string()))
    }
}

impl Id {
    /// The ID of an address of either family (`ID_IPV4_ADDR` / `ID_IPV6_ADDR`).
    pub fn from_ip(ip: IpAddr) -> Id {
        match ip {
            IpAddr::V4(a) => Id::Ipv4(a),
            IpAddr::V6(a) => Id::Ipv6(a),
        }
    }

    /// The address of an address ID.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Id::Ipv4(a) => Some(IpAddr::V4(*a)),
            Id::Ipv6(a) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }
}

impl FromStr for Id {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Id, IdError> {
        Id::parse(s)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        match (self, other) {
            (Id::Ipv4(a), Id::Ipv4(b)) => a == b,
            (Id::Ipv6(a), Id::Ipv6(b)) => a == b,
            (Id::Any, Id::Any) => true,
            (Id::Fqdn(a), Id::Fqdn(b)) | (Id::Name(a), Id::Name(b)) => {
                strip_dot(a).eq_ignore_ascii_case(strip_dot(b))
            }
            (Id::UserFqdn(a), Id::UserFqdn(b)) => strip_dot(a).eq_ignore_ascii_case(strip_dot(b)),
            _ => false,
        }
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Id::Ipv4(a) => a.hash(state),
            Id::Ipv6(a) => a.hash(state),
            Id::Any => {}
            Id::Fqdn(s) | Id::UserFqdn(s) | Id::Name(s) => {
                for b in strip_dot(s).bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Ipv4(a) => write!(f, "{a}"),
            Id::Ipv6(a) => write!(f, "{a}"),
            Id::Fqdn(s) => write!(f, "@{s}"),
            Id::UserFqdn(s) | Id::Name(s) => f.write_str(s),
            Id::Any => f.write_str("%any"),
        }
    }
}

/// An RSA private key as written by `ipsec rsasigkey`, all numbers big-endian as given in the
/// file (leading zero bytes kept). The public parts are plain bytes, the private ones
/// [`Secret`]s. `Debug` shows only the size and key ID.
///
/// Only the shape is checked here (all fields present, modulus 1024–4096 bits; below 2048 bits a
/// warning, see [`Secrets::warnings`]); the arithmetic consistency (n = p·q, …) is for the
/// crypto layer.
#[derive(Clone)]
pub struct RsaPrivateKey {
    /// n.
    pub modulus: Vec<u8>,
    /// e (3 for FreeS/WAN-generated keys).
    pub public_exponent: Vec<u8>,
    /// d.
    pub private_exponent: Secret,
    /// p.
    pub prime1: Secret,
    /// q.
    pub prime2: Secret,
    /// d mod (p−1).
    pub exponent1: Secret,
    /// d mod (q−1).
    pub exponent2: Secret,
    /// q⁻¹ mod p.
    pub coefficient: Secret,
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&x| x == 0).count();
    &b[n..]
}

fn bit_len(b: &[u8]) -> usize {
    let b = strip_zeros(b);
    match b.first() {
        None => 0,
        Some(&first) => (b.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

impl RsaPrivateKey {
    /// Size of the modulus in bits.
    pub fn modulus_bits(&self) -> usize {
        bit_len(&self.modulus)
    }

    /// The RFC 3110 public key blob (`len exponent modulus`, with the 3-byte length form for
    /// exponents over 255 bytes), as used in `leftrsasigkey=0s…` and DNS KEY/TXT records.
    pub fn public_key_blob(&self) -> Vec<u8> {
        let e = strip_zeros(&self.public_exponent);
        let n = strip_zeros(&self.modulus);
        let mut blob = Vec::with_capacity(3 + e.len() + n.len());
        match u8::try_from(e.len()) {
            Ok(len) if len != 0 => blob.push(len),
            _ => {
                blob.push(0);
                blob.extend_from_slice(&u16::try_from(e.len()).unwrap_or(u16::MAX).to_be_bytes());
            }
        }
        blob.extend_from_slice(e);
        blob.extend_from_slice(n);
        blob
    }

    /// The key ID Pluto logs: the first 9 base64 characters of the public key blob
    /// (e.g. `AQOF8tZ2N`).
    pub fn key_id(&self) -> String {
        encode_base64(&self.public_key_blob())
            .chars()
            .take(9)
            .collect()
    }

    /// Whether both keys have the same public part (modulus and exponent, ignoring leading
    /// zero bytes).
    pub fn same_public_key(&self, other: &RsaPrivateKey) -> bool {
        strip_zeros(&self.modulus) == strip_zeros(&other.modulus)
            && strip_zeros(&self.public_exponent) == strip_zeros(&other.public_exponent)
    }
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPrivateKey")
            .field("bits", &self.modulus_bits())
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The secret of one `ipsec.secrets` entry.
#[derive(Clone, Debug)]
pub enum SecretKey {
    /// A pre-shared key (`PSK`, or the legacy bare quoted string).
    Psk(Secret),
    /// An RSA private key (`RSA { … }`).
    Rsa(RsaPrivateKey),
}

impl SecretKey {
    /// Same key? PSKs compare in constant time; RSA keys by their public part.
    fn agrees_with(&self, other: &SecretKey) -> bool {
        match (self, other) {
            (SecretKey::Psk(a), SecretKey::Psk(b)) => ct_eq_bytes(a.as_bytes(), b.as_bytes()),
            (SecretKey::Rsa(a), SecretKey::Rsa(b)) => a.same_public_key(b),
            _ => false,
        }
    }
}

/// One entry of `ipsec.secrets`: its indices, its key and where it was written.
#[derive(Clone, Debug)]
pub struct SecretEntry {
    /// The IDs before the `:`; empty for a default entry.
    pub ids: Vec<Id>,
    /// The key.
    pub key: SecretKey,
    /// The file the entry is in.
    pub file: PathBuf,
    /// Line where the entry's record starts.
    pub line: usize,
}

/// A loaded `ipsec.secrets` (with its includes), in file order.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    entries: Vec<SecretEntry>,
    warnings: Vec<SecretsError>,
}

/// Refuse a secrets file that group or others may access (`mode & 0o077 != 0`), or that is
/// owned by anyone but root (so nobody else can rewrite it into keys of their choosing). A
/// process running as another user (a key tool, a test) may also read files it owns itself.
///
/// The error is at line 0, e.g.
/// `/etc/ipsec.secrets: secrets file is readable by group or others (mode 0644); chmod 600 it`
/// or `/etc/ipsec.secrets: secrets file is owned by uid 1000, not root; chown root it`.
pub fn check_permissions(path: impl AsRef<Path>) -> Result<(), SecretsError> {
    check_permissions_owned_by(path, &[0, effective_uid()])
}

/// The effective uid of this process, from `/proc/self/status` (0, i.e. "root only", if that
/// cannot be read).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(0)
}

/// [`check_permissions`] with the owners allowed given.
fn check_permissions_owned_by(path: impl AsRef<Path>, owners: &[u32]) -> Result<(), SecretsError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = path.as_ref();
    let md = std::fs::metadata(path)
        .map_err(|e| SecretsError::new(path, 0, format!("cannot open secrets file: {e}")))?;
    if !owners.contains(&md.uid()) {
        return Err(SecretsError::new(
            path,
            0,
            format!(
                "secrets file is owned by uid {}, not root; chown root it",
                md.uid()
            ),
        ));
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        let what = if mode & 0o044 != 0 {
            "readable"
        } else if mode & 0o022 != 0 {
            "writable"
        } else {
            "accessible"
        };
        return Err(SecretsError::new(
            path,
            0,
            format!("secrets file is {what} by group or others (mode {mode:04o}); chmod 600 it"),
        ));
    }
    Ok(())
}

const MATCH_DEFAULT: u8 = 1;
const MATCH_HIM: u8 = 2;
const MATCH_ME: u8 = 4;

impl Secrets {
    /// Read `path` (and its includes), refusing any of them that group or others can access
    /// (see [`check_permissions`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Secrets, SecretsError> {
        let path = path.as_ref();
        let mut l = Loader {
            check_perms: true,
            entries: Vec::new(),
            warnings: Vec::new(),
            open_files: Vec::new(),
        };
        l.file(path, 0, None)?;
        Ok(Secrets {
            entries: l.entries,
            warnings: l.warnings,
        })
    }

    /// Parse `text` as if it were the file `pseudo_path`, without any permission checks (also
    /// not on included files, which are read relative to `pseudo_path`). For tests and tools.
    pub fn parse_str(text: &str, pseudo_path: impl AsRef<Path>) -> Result<Secrets, SecretsError> {
        let path = pseudo_path.as_ref();
        let mut l = Loader {
            check_perms: false,
            entries: Vec::new(),
            warnings: Vec::new(),
            open_files: vec![std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())],
        };
        l.text(path, text, 0)?;
        Ok(Secrets {
            entries: l.entries,
            warnings: l.warnings,
        })
    }

    /// Problems that do not stop the file from loading but that the daemon should log, each
    /// at `file:line` (today: RSA keys shorter than [`RSA_WARN_BITS`]).
    pub fn warnings(&self) -> &[SecretsError] {
        &self.warnings
    }

    /// All entries in file order.
    pub fn entries(&self) -> &[SecretEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replace host-name indices by addresses, as Pluto does at load time; names `resolve`
    /// returns `None` for stay [`Id::Name`] (and so match nothing but the same name).
    pub fn resolve_names(&mut self, mut resolve: impl FnMut(&str) -> Option<IpAddr>) {
        for e in &mut self.entries {
            for id in &mut e.ids {
                if let Id::Name(n) = id {
                    if let Some(a) = resolve(n) {
                        *id = Id::from_ip(a);
                    }
                }
            }
        }
    }

    /// The pre-shared key for a negotiation between any of `our_ids` and any of `peer_ids`.
    ///
    /// Most specific wins: an entry listing one of ours and one of the peer's IDs beats one
    /// whose single index is ours, which beats an entry with no index. Entries listing several
    /// IDs of which only ours match do not count. Equally good entries must hold the same key,
    /// otherwise this is an error (citing both entries, not the keys).
    pub fn find_psk(
        &self,
        our_ids: &[Id],
        peer_ids: &[Id],
    ) -> Result<Option<&Secret>, SecretsError> {
        Ok(self
            .select(false, our_ids, peer_ids)?
            .and_then(|e| match &e.key {
                SecretKey::Psk(s) => Some(s),
                SecretKey::Rsa(_) => None,
            }))
    }

    /// Our RSA private key for any of `our_ids`, by the same rules as [`Secrets::find_psk`]
    /// except that an entry only needs to list one of our IDs (RSA is asymmetric).
    pub fn find_rsa(&self, our_ids: &[Id]) -> Result<Option<&RsaPrivateKey>, SecretsError> {
        Ok(self.select(true, our_ids, &[])?.and_then(|e| match &e.key {
            SecretKey::Rsa(k) => Some(k),
            SecretKey::Psk(_) => None,
        }))
    }

    /// Pluto's `get_secret()`.
    fn select(
        &self,
        rsa: bool,
        our: &[Id],
        peer: &[Id],
    ) -> Result<Option<&SecretEntry>, SecretsError> {
        let mut best_match = 0u8;
        let mut best: Vec<&SecretEntry> = Vec::new();
        for e in &self.entries {
            if matches!(e.key, SecretKey::Rsa(_)) != rsa {
                continue;
            }
            let m = if e.ids.is_empty() {
                MATCH_DEFAULT
            } else {
                let mut m = 0;
                for id in &e.ids {
                    if our.contains(id) {
                        m |= MATCH_ME;
                    }
                    if peer.contains(id) {
                        m |= MATCH_HIM;
                    }
                }
                if m == MATCH_ME && e.ids.len() == 1 {
                    m |= MATCH_DEFAULT;
                }
                m
            };
            let acceptable = match m {
                MATCH_ME => rsa,
                MATCH_DEFAULT => true,
                x if x == MATCH_ME | MATCH_DEFAULT || x == MATCH_ME | MATCH_HIM => true,
                _ => false,
            };
            if !acceptable {
                continue;
            }
            if m > best_match {
                best_match = m;
                best.clear();
                best.push(e);
            } else if m == best_match {
                best.push(e);
            }
        }
        let Some(&first) = best.first() else {
            return Ok(None);
        };
        for other in &best[1..] {
            if !first.key.agrees_with(&other.key) {
                return Err(SecretsError::new(
                    &other.file,
                    other.line,
                    format!(
                        "multiple ipsec.secrets entries with distinct secrets match the endpoints \
                         equally well (this one and {}:{})",
                        first.file.display(),
                        first.line
                    ),
                ));
            }
        }
        Ok(Some(first))
    }
}

/// One lexical token; `text` borrows the file text (no copies of secrets are made).
#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    text: &'a str,
    quoted: bool,
    line: usize,
}

impl Tok<'_> {
    fn is(&self, word: &str) -> bool {
        !self.quoted && self.text.eq_ignore_ascii_case(word)
    }
}

/// A record: a column-0 line plus its indented continuation lines.
#[derive(Debug)]
struct Record<'a> {
    toks: Vec<Tok<'a>>,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Split one line into tokens (see the module docs). `Err(())` = unterminated quote.
fn lex_line<'a>(line: &'a str, lineno: usize, out: &mut Vec<Tok<'a>>) -> Result<(), ()> {
    let b = line.as_bytes();
    let mut i = 0;
    // All delimiters are ASCII, so every index we slice at is a char boundary.
    while i < b.len() {
        if is_ws(b[i]) {
            i += 1;
            continue;
        }
        match b[i] {
            b'#' => break,
            q @ (b'"' | b'\'') => {
                let Some(len) = b[i + 1..].iter().position(|&c| c == q) else {
                    return Err(());
                };
                out.push(Tok {
                    text: &line[i + 1..i + 1 + len],
                    quoted: true,
                    line: lineno,
                });
                i += len + 2;
            }
            _ => {
                let start = i;
                while i < b.len() && !is_ws(b[i]) {
                    if b[i] == b':' && (i + 1 == b.len() || is_ws(b[i + 1])) {
                        break;
                    }
                    i += 1;
                }
                if i > start {
                    out.push(Tok {
                        text: &line[start..i],
                        quoted: false,
                        line: lineno,
                    });
                }
                if i < b.len() && b[i] == b':' {
                    out.push(Tok {
                        text: ":",
                        quoted: false,
                        line: lineno,
                    });
                    i += 1;
                }
            }
        }
    }
    Ok(())
}

/// Group the lines of `text` into records.
fn records<'a>(file: &Path, text: &'a str) -> Result<Vec<Record<'a>>, SecretsError> {
    let mut recs: Vec<Record<'a>> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let mut toks = Vec::new();
        lex_line(line, lineno, &mut toks)
            .map_err(|()| SecretsError::new(file, lineno, "unterminated quoted string"))?;
        if toks.is_empty() {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if indented {
            match recs.last_mut() {
                Some(r) => r.toks.extend(toks),
                None => {
                    return Err(SecretsError::new(
                        file,
                        lineno,
                        "indented line outside of a record (records must start in column 0)",
                    ))
                }
            }
        } else {
            recs.push(Record { toks });
        }
    }
    Ok(recs)
}

const RSA_FIELDS: [&str; 8] = [
    "Modulus",
    "PublicExponent",
    "PrivateExponent",
    "Prime1",
    "Prime2",
    "Exponent1",
    "Exponent2",
    "Coefficient",
];

/// Smallest RSA modulus accepted, in bits: shorter keys are refused (the same bound as
/// [`crate::pluto::crypto::rsa::MIN_RSA_BITS`]).
pub const RSA_MIN_BITS: usize = 1024;
/// RSA keys shorter than this many bits load with a warning ([`Secrets::warnings`]).
pub const RSA_WARN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const RSA_MAX_BITS: usize = 4096;

fn has_data_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'0' && matches!(b[1], b'x' | b'X' | b's' | b'S' | b't' | b'T')
}

struct Loader {
    check_perms: bool,
    entries: Vec<SecretEntry>,
    warnings: Vec<SecretsError>,
    open_files: Vec<PathBuf>,
}

impl Loader {
    /// Read one file; `from` is the `include` line that named it (for open errors).
    fn file(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<(&Path, usize)>,
    ) -> Result<(), SecretsError> {
        let open_err = |e: std::io::Error| match from {
            Some((f, l)) => SecretsError::new(
                f,
                l,
                format!("cannot open secrets file \"{}\": {e}", path.display()),
            ),
            None => SecretsError::new(path, 0, format!("cannot open secrets file: {e}")),
        };
        std::fs::metadata(path).map_err(open_err)?;
        if self.check_perms {
            check_permissions(path)?;
        }
        let bytes = std::fs::read(path).map_err(open_err)?;
        // Keep the file contents in a wiped-on-drop buffer.
        let buf = Secret::new(bytes);
        let text = std::str::from_utf8(buf.as_bytes()).map_err(|e| {
            SecretsError::new(
                path,
                utf8_error_line(buf.as_bytes(), &e),
                "line is not valid UTF-8",
            )
        })?;
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.open_files.push(canon);
        let r = self.text(path, text, depth);
        self.open_files.pop();
        r
    }

    fn text(&mut self, file: &Path, text: &str, depth: usize) -> Result<(), SecretsError> {
        let recs = records(file, text)?;
        for (i, rec) in recs.iter().enumerate() {
            let next = recs.get(i + 1);
            self.record(file, rec, next, depth)?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        file: &Path,
        rec: &Record<'_>,
        next: Option<&Record<'_>>,
        depth: usize,
    ) -> Result<(), SecretsError> {
        let toks = &rec.toks;
        let Some(first) = toks.first() else {
            return Ok(());
        };
        let err = |line: usize, msg: &str| SecretsError::new(file, line, msg);
        let last_line = toks.last().map_or(first.line, |t| t.line);

        if first.is("include") {
            if toks.len() != 2 || toks[1].quoted {
                return Err(err(
                    first.line,
                    "include syntax error: expected exactly one file name",
                ));
            }
            return self.include(file, first.line, toks[1].text, depth);
        }

        let mut ids = Vec::new();
        let mut i = 0;
        let key = loop {
            let Some(t) = toks.get(i) else {
                return Err(err(
                    last_line,
                    "missing \": KIND SECRET\" after the indices",
                ));
            };
            if t.quoted {
                // legacy format: indices followed by a bare quoted PSK
                i += 1;
                break SecretKey::Psk(Secret::from_slice(t.text.as_bytes()));
            }
            if t.text == ":" {
                i += 1;
                let (key, next_i) = self.key(file, toks, i, next)?;
                i = next_i;
                break key;
            }
            if t.is("psk") || t.is("rsa") {
                return Err(err(
                    t.line,
                    "key kind must follow \":\" (missing colon after the indices?)",
                ));
            }
            match Id::parse(t.text) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    return Err(err(
                        t.line,
                        &format!("index {} is invalid: {e}", ids.len() + 1),
                    ));
                }
            }
            i += 1;
        };
        if let Some(extra) = toks.get(i) {
            return Err(err(
                extra.line,
                "unexpected text after the secret (expected end of record)",
            ));
        }
        self.entries.push(SecretEntry {
            ids,
            key,
            file: file.to_path_buf(),
            line: first.line,
        });
        Ok(())
    }

    /// Parse `KIND SECRET` starting at `toks[i]` (just after the colon); returns the key and
    /// the index after it.
    fn key(
        &mut self,
        file: &Path,
        toks: &[Tok<'_>],
        i: usize,
        next: Option<&Record<'_>>,
    ) -> Result<(SecretKey, usize), SecretsError> {
        let err = |line: usize, msg: &str| SecretsError::new(file, line, msg);
        let colon_line = toks.get(i.wrapping_sub(1)).map_or(0, |t| t.line);
        let Some(kind) = toks.get(i) else {
            return Err(err(colon_line, "missing key after \":\""));
        };
        if kind.is("psk") {
            let Some(data) = toks.get(i + 1) else {
                return Err(err(kind.line, "missing secret after PSK"));
            };
            return Ok((SecretKey::Psk(psk_value(file, data)?), i + 2));
        }
        if kind.is("rsa") {
            return self.rsa(file, toks, i + 1, kind.line, next);
        }
        if kind.quoted || has_data_prefix(kind.text) {
            return Ok((SecretKey::Psk(psk_value(file, kind)?), i + 1));
        }
        Err(err(
            kind.line,
            "unrecognized key kind (expected PSK or RSA)",
        ))
    }

    fn rsa(
        &mut self,
        file: &Path,
        toks: &[Tok<'_>],
        mut i: usize,
        rsa_line: usize,
        next: Option<&Record<'_>>,
    ) -> Result<(SecretKey, usize), SecretsError> {
        let err = |line: usize, msg: &str| SecretsError::new(file, line, msg.to_string());
        let mut last_line = match toks.get(i) {
            Some(t) if t.is("{") => {
                i += 1;
                t.line
            }
            Some(t) => return Err(err(t.line, "expected \"{\" after RSA")),
            None => return Err(err(rsa_line, "expected \"{\" after RSA")),
        };
        let mut values: Vec<Secret> = Vec::with_capacity(RSA_FIELDS.len());
        let mut modulus_line = rsa_line;
        for field in RSA_FIELDS {
            let Some(t) = toks.get(i) else {
                return Err(err(
                    last_line,
                    &format!("premature end of RSA key ({field} missing)"),
                ));
            };
            // "Name", "Name:" (colon split off by the lexer) or "Name:value"
            let (name, glued) = match t.text.split_once(':') {
                Some((n, v)) if !t.quoted => (n, Some(v).filter(|v| !v.is_empty())),
                _ => (t.text, None),
            };
            if t.quoted || !name.eq_ignore_ascii_case(field) {
                return Err(err(
                    t.line,
                    &format!("{field} keyword not found where expected in RSA key"),
                ));
            }
            if field == "Modulus" {
                modulus_line = t.line;
            }
            last_line = t.line;
            i += 1;
            let value_tok = match glued {
                Some(v) => Tok {
                    text: v,
                    quoted: false,
                    line: t.line,
                },
                None => {
                    if toks.get(i).is_some_and(|c| c.text == ":" && !c.quoted) {
                        i += 1;
                    }
                    let Some(&v) = toks.get(i) else {
                        return Err(err(
                            last_line,
                            &format!("premature end of RSA key ({field} has no value)"),
                        ));
                    };
                    i += 1;
                    v
                }
            };
            if value_tok.quoted {
                return Err(err(
                    value_tok.line,
                    &format!("RSA data malformed in {field}: quoted values are not allowed"),
                ));
            }
            let v = ttodata_key(value_tok.text).map_err(|e| {
                err(
                    value_tok.line,
                    &format!("RSA data malformed in {field}: {e}"),
                )
            })?;
            last_line = value_tok.line;
            values.push(v);
        }
        match toks.get(i) {
            None => {
                let line = match next.and_then(|r| r.toks.first()) {
                    Some(t) if t.text == "}" => t.line,
                    _ => last_line,
                };
                return Err(err(
                    line,
                    "malformed end of RSA private key -- indented '}' required",
                ));
            }
            Some(t) if t.text == "}" && !t.quoted => i += 1,
            Some(t) => {
                return Err(err(
                    t.line,
                    "malformed end of RSA private key -- '}' expected after Coefficient",
                ));
            }
        }
        if let Some(t) = toks.get(i) {
            return Err(err(
                t.line,
                "malformed end of RSA private key -- unexpected token after '}'",
            ));
        }
        let mut it = values.into_iter();
        let mut take = || it.next().unwrap_or_else(|| Secret::new(Vec::new()));
        let key = RsaPrivateKey {
            modulus: take().into_plain(),
            public_exponent: take().into_plain(),
            private_exponent: take(),
            prime1: take(),
            prime2: take(),
            exponent1: take(),
            exponent2: take(),
            coefficient: take(),
        };
        let bits = key.modulus_bits();
        if bits < RSA_MIN_BITS {
            return Err(err(
                modulus_line,
                &format!("RSA key is only {bits} bits; keys shorter than {RSA_MIN_BITS} bits are refused (make a new one with ipsec newhostkey --bits {RSA_WARN_BITS} or more)"),
            ));
        }
        if bits > RSA_MAX_BITS {
            return Err(err(
                modulus_line,
                &format!("RSA modulus is {bits} bits; at most {RSA_MAX_BITS} bits are supported"),
            ));
        }
        if bits < RSA_WARN_BITS {
            self.warnings.push(err(
                modulus_line,
                &format!("RSA key is only {bits} bits; keys shorter than {RSA_WARN_BITS} bits are weak (make a new one with ipsec newhostkey --bits {RSA_WARN_BITS} or more)"),
            ));
        }
        if strip_zeros(&key.public_exponent).is_empty() {
            return Err(err(rsa_line, "RSA public exponent is zero"));
        }
        Ok((SecretKey::Rsa(key), i))
    }

    fn include(
        &mut self,
        file: &Path,
        line: usize,
        pattern: &str,
        depth: usize,
    ) -> Result<(), SecretsError> {
        let err = |msg: String| SecretsError::new(file, line, msg);
        for path in include::expand(pattern, &include::base_dir(file)).map_err(err)? {
            let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if self.open_files.contains(&canon) {
                return Err(err(format!(
                    "include loop: \"{}\" is already being read",
                    path.display()
                )));
            }
            if depth + 1 > MAX_INCLUDE_DEPTH {
                return Err(err(format!(
                    "includes nested too deeply (more than {MAX_INCLUDE_DEPTH} levels)"
                )));
            }
            self.file(&path, depth + 1, Some((file, line)))?;
        }
        Ok(())
    }
}

fn psk_value(file: &Path, t: &Tok<'_>) -> Result<Secret, SecretsError> {
    if t.quoted {
        return Ok(Secret::from_slice(t.text.as_bytes()));
    }
    ttodata_key(t.text)
        .map_err(|e| SecretsError::new(file, t.line, format!("malformed PSK data: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::TempDir;

    const F: &str = "/etc/ipsec.secrets";

    fn parse(text: &str) -> Result<Secrets, SecretsError> {
        Secrets::parse_str(text, F)
    }

    fn perr(text: &str) -> String {
        match parse(text) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn id(s: &str) -> Id {
        Id::parse(s).unwrap()
    }

    fn psk<'a>(s: &'a Secrets, ours: &[&str], peers: &[&str]) -> Option<&'a [u8]> {
        let o: Vec<Id> = ours.iter().map(|x| id(x)).collect();
        let p: Vec<Id> = peers.iter().map(|x| id(x)).collect();
        s.find_psk(&o, &p).unwrap().map(Secret::as_bytes)
    }

    /// A toy (not mathematically valid) RSA block in `ipsec rsasigkey` layout.
    fn toy_rsa_block(modulus_hex: &str) -> String {
        format!(
            ": RSA\t{{\n\
             \t# RSA 2048 bits   west   Mon Jan  5 12:00:00 2004\n\
             \t#pubkey=0sAQOF8tZ2\n\
             \tModulus: 0x{modulus_hex}\n\
             \tPublicExponent: 0x03\n\
             \t# everything after this point is secret\n\
             \tPrivateExponent: 0x881c59fd\n\
             \tPrime1: 0xf49fd1f7\n\
             \tPrime2: 0xd5a91084\n\
             \tExponent1: 0xa31536a4\n\
             \tExponent2: 0x8e70b5ad\n\
             \tCoefficient: 0xafb761d0\n\
             \t}}\n\
             # do not change the indenting of that \"}}\"\n"
        )
    }

    /// A 2048-bit toy modulus (no warning).
    fn toy_modulus() -> String {
        format!("cc{}", "2a".repeat(255))
    }

    #[test]
    fn id_parsing_and_display() {
        assert_eq!(id("192.0.2.1"), Id::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(id("@west.example.com"), Id::Fqdn("west.example.com".into()));
        assert_eq!(
            id("user@example.com"),
            Id::UserFqdn("user@example.com".into())
        );
        assert_eq!(id("%any"), Id::Any);
        assert_eq!(id("%any6"), Id::Any);
        assert_eq!(id("0.0.0.0"), Id::Any);
        assert_eq!(id("gw.example.com"), Id::Name("gw.example.com".into()));
        for (text, shown) in [
            ("192.0.2.1", "192.0.2.1"),
            ("@west.example.com", "@west.example.com"),
            ("user@example.com", "user@example.com"),
            ("%any", "%any"),
            ("0.0.0.0", "%any"),
            ("::", "%any"),
            ("2001:DB8::1", "2001:db8::1"),
            ("gw", "gw"),
        ] {
            assert_eq!(id(text).to_string(), shown);
        }
        for bad in [
            "",
            "@",
            "user@",
            "@host name",
            "%myid",
            "%defaultroute",
            "fe80::1::2",
            "1.2.3",
            "256.1.1.1",
            "a b",
            "-x",
            "x/y",
            "é.example",
        ] {
            assert!(Id::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!("@x".parse::<Id>().is_ok());
        // same_id semantics
        assert_eq!(id("@West.Example.COM"), id("@west.example.com."));
        assert_eq!(id("User@Example.com"), id("user@example.com"));
        assert_ne!(id("@west"), id("west"));
        assert_ne!(id("@west"), id("west@west"));
        assert_ne!(id("192.0.2.1"), id("%any"));
        use std::collections::HashSet;
        let set: HashSet<Id> = [
            id("@A.example"),
            id("@a.example."),
            id("%any"),
            id("0.0.0.0"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn parses_spec_example() {
        let text = format!(
            "10.1.0.1 10.2.0.1: PSK \"secret shared by two hosts\"\n{}include ipsec.*.secrets\n",
            toy_rsa_block(&toy_modulus())
        );
        let s = Secrets::parse_str(&text, "/nonexistent-dir/ipsec.secrets").unwrap();
        assert_eq!(s.len(), 2);
        let e = &s.entries()[0];
        assert_eq!(e.ids, vec![id("10.1.0.1"), id("10.2.0.1")]);
        assert_eq!(e.line, 1);
        match &e.key {
            SecretKey::Psk(k) => assert_eq!(k.as_bytes(), b"secret shared by two hosts"),
            _ => panic!(),
        }
        let r = &s.entries()[1];
        assert!(r.ids.is_empty());
        assert_eq!(r.line, 2);
        let SecretKey::Rsa(k) = &r.key else { panic!() };
        assert_eq!(k.modulus_bits(), 2048);
        assert_eq!(k.modulus.len(), 256);
        assert_eq!(k.modulus[0], 0xcc);
        assert_eq!(k.public_exponent, vec![3]);
        assert_eq!(k.private_exponent.as_bytes(), &[0x88, 0x1c, 0x59, 0xfd]);
        assert_eq!(k.prime1.as_bytes(), &[0xf4, 0x9f, 0xd1, 0xf7]);
        assert_eq!(k.prime2.as_bytes(), &[0xd5, 0xa9, 0x10, 0x84]);
        assert_eq!(k.exponent1.as_bytes(), &[0xa3, 0x15, 0x36, 0xa4]);
        assert_eq!(k.exponent2.as_bytes(), &[0x8e, 0x70, 0xb5, 0xad]);
        assert_eq!(k.coefficient.as_bytes(), &[0xaf, 0xb7, 0x61, 0xd0]);
        let blob = k.public_key_blob();
        assert_eq!(&blob[..3], &[1, 3, 0xcc]);
        assert_eq!(blob.len(), 258);
        assert!(k.key_id().starts_with("AQPM"));
        assert_eq!(k.key_id().len(), 9);
        let dbg = format!("{k:?}");
        assert!(dbg.contains("bits: 2048") && !dbg.contains("881c") && !dbg.contains("136"));
        assert!(s.find_rsa(&[id("192.0.2.1")]).unwrap().is_some());
    }

    /// RSA keys below 1024 bits are refused at their Modulus line; below 2048 they load with a
    /// warning naming file:line; 2048 bits and more load quietly.
    #[test]
    fn short_rsa_keys_are_refused_or_warned_about() {
        let text = |bits: usize| {
            let n = bits.div_ceil(8);
            let top = 1u8 << (bits - (n - 1) * 8 - 1);
            let m = format!("{top:02x}{}", "55".repeat(n - 1));
            format!("@a : PSK \"x\"\n{}", toy_rsa_block(&m))
        };
        assert_eq!(
            perr(&text(1020)),
            "/etc/ipsec.secrets:5: RSA key is only 1020 bits; keys shorter than 1024 bits are refused (make a new one with ipsec newhostkey --bits 2048 or more)"
        );
        assert!(perr(&text(768)).contains("RSA key is only 768 bits; keys shorter than 1024"));
        for bits in [1024, 2044] {
            let s = parse(&text(bits)).unwrap();
            assert_eq!(s.len(), 2);
            let w: Vec<String> = s.warnings().iter().map(|w| w.to_string()).collect();
            assert_eq!(
                w,
                [format!("/etc/ipsec.secrets:5: RSA key is only {bits} bits; keys shorter than 2048 bits are weak (make a new one with ipsec newhostkey --bits 2048 or more)")]
            );
        }
        for bits in [2048, 4096] {
            assert!(parse(&text(bits)).unwrap().warnings().is_empty(), "{bits}");
        }
    }

    #[test]
    fn rsa_variants() {
        // colons optional, field names case-insensitive, 0s values, glued "Name:value"
        let m = ttodata_key(&format!("0x{}", toy_modulus())).unwrap();
        let m64 = encode_base64(m.as_bytes());
        let text = format!(
            "@west.example.com: rsa {{\n  modulus 0s{m64}\n  PUBLICEXPONENT : 0sAw==\n  PrivateExponent:0x01\n  \
             Prime1 0x02\n  Prime2: 0x03\n  Exponent1: 0x04\n  Exponent2: 0x05\n  Coefficient: 0x06 }}\n"
        );
        let s = parse(&text).unwrap();
        let SecretKey::Rsa(k) = &s.entries()[0].key else {
            panic!()
        };
        assert_eq!(k.modulus, m.as_bytes());
        assert_eq!(k.public_exponent, vec![3]);
        assert_eq!(k.private_exponent.as_bytes(), &[1]);
        assert_eq!(k.coefficient.as_bytes(), &[6]);
        // leading zero bytes are kept but ignored for size and blob
        let s = parse(&toy_rsa_block(&format!("00{}", toy_modulus()))).unwrap();
        let SecretKey::Rsa(k) = &s.entries()[0].key else {
            panic!()
        };
        assert_eq!(k.modulus.len(), 257);
        assert_eq!(k.modulus_bits(), 2048);
        assert_eq!(k.public_key_blob()[2], 0xcc);
    }

    #[test]
    fn rsa_errors() {
        let block = toy_rsa_block(&toy_modulus());
        // unindented closing brace
        let bad = block.replace("\t}\n", "}\n");
        assert_eq!(
            perr(&bad),
            "/etc/ipsec.secrets:13: malformed end of RSA private key -- indented '}' required"
        );
        // missing brace entirely
        let bad = block.replace("\t}\n", "");
        assert_eq!(
            perr(&bad),
            "/etc/ipsec.secrets:12: malformed end of RSA private key -- indented '}' required"
        );
        // token after the brace
        let bad = block.replace("\t}\n", "\t} extra\n");
        assert_eq!(
            perr(&bad),
            "/etc/ipsec.secrets:13: malformed end of RSA private key -- unexpected token after '}'"
        );
        // fields out of order
        let bad = block.replace("Prime1", "PrimeX");
        assert_eq!(
            perr(&bad),
            "/etc/ipsec.secrets:8: Prime1 keyword not found where expected in RSA key"
        );
        let bad = block.replace("\tExponent2: 0x8e70b5ad\n", "");
        assert_eq!(
            perr(&bad),
            "/etc/ipsec.secrets:11: Exponent2 keyword not found where expected in RSA key"
        );
        // no brace
        assert_eq!(
            perr(": RSA\n"),
            "/etc/ipsec.secrets:1: expected \"{\" after RSA"
        );
        assert_eq!(
            perr(": RSA Modulus 0x00\n"),
            "/etc/ipsec.secrets:1: expected \"{\" after RSA"
        );
        // premature end
        assert_eq!(
            perr(": RSA {\n  Modulus: 0x01\n  PublicExponent:\n"),
            "/etc/ipsec.secrets:3: premature end of RSA key (PublicExponent has no value)"
        );
        assert_eq!(
            perr(": RSA {\n  Modulus: 0x01\n"),
            "/etc/ipsec.secrets:2: premature end of RSA key (PublicExponent missing)"
        );
        // bad data
        let bad = block.replace("0xf49fd1f7", "0xf49fd1f");
        assert_eq!(
            perr(&bad),
            "/etc/ipsec.secrets:8: RSA data malformed in Prime1: odd number of hex digits (input ends in mid-byte, perhaps truncated)"
        );
        let bad = block.replace("0xd5a91084", "d5a91084");
        assert!(perr(&bad).starts_with("/etc/ipsec.secrets:9: RSA data malformed in Prime2: input does not begin with format prefix"));
        // modulus size
        let small = toy_rsa_block("c1");
        assert_eq!(
            perr(&small),
            "/etc/ipsec.secrets:4: RSA key is only 8 bits; keys shorter than 1024 bits are refused (make a new one with ipsec newhostkey --bits 2048 or more)"
        );
        let huge = toy_rsa_block(&"ff".repeat(513));
        assert_eq!(
            perr(&huge),
            "/etc/ipsec.secrets:4: RSA modulus is 4104 bits; at most 4096 bits are supported"
        );
        let zero_e = block.replace("PublicExponent: 0x03", "PublicExponent: 0x00");
        assert_eq!(
            perr(&zero_e),
            "/etc/ipsec.secrets:1: RSA public exponent is zero"
        );
    }

    #[test]
    fn psk_forms_and_indices() {
        let s = parse(
            "# comment line\n\
             \n\
             192.0.2.1 @east.example.com: PSK \"with # hash and spaces\"\n\
             user@example.com : psk 0x0011_2233\n\
             %any 10.0.0.1 : Psk 0sc2VjcmV0\n\
             %any6 : PSK 0tplain\n\
             gw.example.com : PSK 'single quoted'\n\
             0.0.0.0 10.0.0.2 \"legacy with indices\"\n\
             \"legacy bare\"\n\
             : \"default kind\"\n\
             10.9.9.9 :\n\
             \tPSK\n\
             \t\"continued\"   # trailing comment\n",
        )
        .unwrap();
        let e = s.entries();
        assert_eq!(e.len(), 9);
        let key = |i: usize| match &e[i].key {
            SecretKey::Psk(k) => k.as_bytes().to_vec(),
            _ => panic!(),
        };
        assert_eq!(
            e[0].ids,
            vec![id("192.0.2.1"), Id::Fqdn("east.example.com".into())]
        );
        assert_eq!(key(0), b"with # hash and spaces");
        assert_eq!(e[0].line, 3);
        assert_eq!(e[1].ids, vec![Id::UserFqdn("user@example.com".into())]);
        assert_eq!(key(1), vec![0, 0x11, 0x22, 0x33]);
        assert_eq!(e[2].ids, vec![Id::Any, id("10.0.0.1")]);
        assert_eq!(key(2), b"secret");
        assert_eq!(e[3].ids, vec![Id::Any]);
        assert_eq!(key(3), b"plain");
        assert_eq!(e[4].ids, vec![Id::Name("gw.example.com".into())]);
        assert_eq!(key(4), b"single quoted");
        assert_eq!(e[5].ids, vec![Id::Any, id("10.0.0.2")]);
        assert_eq!(key(5), b"legacy with indices");
        assert!(e[6].ids.is_empty());
        assert_eq!(key(6), b"legacy bare");
        assert!(e[7].ids.is_empty());
        assert_eq!(key(7), b"default kind");
        assert_eq!(key(8), b"continued");
        assert_eq!(e[8].line, 11);
        // CRLF line endings
        let s = parse("10.0.0.1 : PSK \"x\"\r\n: PSK \"y\"\r\n").unwrap();
        assert_eq!(s.len(), 2);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_cite_lines() {
        assert_eq!(
            perr("# c\n\t10.0.0.1 : PSK \"x\"\n"),
            "/etc/ipsec.secrets:2: indented line outside of a record (records must start in column 0)"
        );
        assert_eq!(
            perr("\n10.0.0.1 10.0.0.2\n"),
            "/etc/ipsec.secrets:2: missing \": KIND SECRET\" after the indices"
        );
        assert_eq!(
            perr("10.0.0.1 10.0.0.2 PSK \"x\"\n"),
            "/etc/ipsec.secrets:1: key kind must follow \":\" (missing colon after the indices?)"
        );
        assert_eq!(
            perr("a\nb : \n"),
            "/etc/ipsec.secrets:1: missing \": KIND SECRET\" after the indices"
        );
        assert_eq!(
            perr("10.0.0.1 :\n"),
            "/etc/ipsec.secrets:1: missing key after \":\""
        );
        assert_eq!(
            perr(": PSK\n"),
            "/etc/ipsec.secrets:1: missing secret after PSK"
        );
        assert_eq!(
            perr(": XAUTH foo\n"),
            "/etc/ipsec.secrets:1: unrecognized key kind (expected PSK or RSA)"
        );
        assert_eq!(
            perr(": PSK \"x\" \"y\"\n"),
            "/etc/ipsec.secrets:1: unexpected text after the secret (expected end of record)"
        );
        assert_eq!(
            perr(": PSK \"x\"\n  more\n"),
            "/etc/ipsec.secrets:2: unexpected text after the secret (expected end of record)"
        );
        assert_eq!(
            perr("\n\n: PSK \"x\n"),
            "/etc/ipsec.secrets:3: unterminated quoted string"
        );
        assert_eq!(perr(": PSK 0xabc\n"), "/etc/ipsec.secrets:1: malformed PSK data: odd number of hex digits (input ends in mid-byte, perhaps truncated)");
        assert_eq!(
            perr("10.0.0.1 %myid : PSK \"x\"\n"),
            "/etc/ipsec.secrets:1: index 2 is invalid: unsupported %-keyword as ID (only %any and %any6 are allowed here)"
        );
        assert_eq!(
            perr("fe80::1::2 : PSK \"x\"\n"),
            "/etc/ipsec.secrets:1: index 1 is invalid: malformed IPv6 address"
        );
        assert_eq!(
            perr("include\n"),
            "/etc/ipsec.secrets:1: include syntax error: expected exactly one file name"
        );
        assert_eq!(
            perr("include a b\n"),
            "/etc/ipsec.secrets:1: include syntax error: expected exactly one file name"
        );
        // multibyte text never makes the lexer panic
        assert!(parse("é : PSK \"ü\"\n").is_err());
        assert!(parse("@é.example : PSK \"ü\"\n").is_ok());
        assert!(parse("\u{a0}:\u{a0}PSK\n").is_err());
    }

    #[test]
    fn errors_never_contain_secrets() {
        const S: &str = "SuperSecretValue42";
        const H: &str = "deadbeefcafe";
        let cases = [
            format!(": PSK \"{S}"),
            format!(": PSK 0x{H}1"),
            format!(": PSK 0x{H}zz"),
            format!(": PSK 0s{S}!"),
            format!(": PSK {S}"),
            format!(": {S}"),
            S.to_string(),
            format!("{S} : PSK \"x\""),
            format!("10.0.0.1 {S}"),
            format!("%{S} : PSK \"x\""),
            format!(": PSK \"x\" {S}"),
            format!(": PSK \"{S}\" extra"),
            format!("\t{S}"),
            format!(": RSA {{ Modulus 0x{H}"),
            format!(": RSA {{ Modulus 0x{H} PublicExponent 0x{H}g"),
            format!(": RSA {{ {S} 0x{H}"),
            format!(
                "{}\n{S}",
                toy_rsa_block(&toy_modulus()).replace("\t}\n", "")
            ),
            format!("10.0.0.1 {S} \"{S}\"\n10.0.0.1 {S} \"other\""),
        ];
        for c in &cases {
            if let Err(e) = parse(c) {
                for shown in [e.to_string(), format!("{e:?}")] {
                    assert!(
                        !shown.contains(S) && !shown.contains(H),
                        "leak in {shown:?} for {c:?}"
                    );
                }
            }
        }
        // successful parses do not show keys in Debug either
        let s = parse(&format!(
            "10.0.0.1 : PSK \"{S}\"\n: PSK 0x{H}\n{}",
            toy_rsa_block(&toy_modulus())
        ))
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains(S) && !dbg.contains(H) && !dbg.contains("881c"),
            "{dbg}"
        );
        assert!(dbg.contains("<secret 18 bytes>"));
        // conflicting equal-best entries: the error names lines, not keys
        let s = parse(&format!("10.0.0.1 : PSK \"{S}\"\n10.0.0.1 : PSK 0x{H}\n")).unwrap();
        let e = s.find_psk(&[id("10.0.0.1")], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/ipsec.secrets:2: multiple ipsec.secrets entries with distinct secrets match the endpoints equally well (this one and /etc/ipsec.secrets:1)"
        );
    }

    #[test]
    fn psk_selection() {
        let s = parse(
            ": PSK \"default\"\n\
             10.1.0.1 : PSK \"west-any-peer\"\n\
             10.1.0.1 10.2.0.1 : PSK \"west-east\"\n\
             10.1.0.1 @alias.west : PSK \"two-of-ours\"\n\
             %any 10.1.0.1 : PSK \"west-roadwarrior\"\n\
             @East.Example.com. @west.example.com : PSK \"by-fqdn\"\n",
        )
        .unwrap();
        // both endpoints listed: most specific
        assert_eq!(
            psk(&s, &["10.1.0.1"], &["10.2.0.1"]),
            Some(&b"west-east"[..])
        );
        // symmetric: the other end finds the same entry
        assert_eq!(
            psk(&s, &["10.2.0.1"], &["10.1.0.1"]),
            Some(&b"west-east"[..])
        );
        // unknown peer: our single-index entry beats the default
        assert_eq!(
            psk(&s, &["10.1.0.1"], &["10.3.0.1"]),
            Some(&b"west-any-peer"[..])
        );
        // not us at all: default
        assert_eq!(psk(&s, &["10.9.0.1"], &["10.3.0.1"]), Some(&b"default"[..]));
        // road warrior fallback: the caller asks with %any as the peer
        assert_eq!(
            psk(&s, &["10.1.0.1"], &["%any"]),
            Some(&b"west-roadwarrior"[..])
        );
        // IDs compare like Pluto's same_id (case, trailing dot)
        assert_eq!(
            psk(&s, &["@WEST.example.com"], &["@east.example.com"]),
            Some(&b"by-fqdn"[..])
        );
        // several of our IDs: any of them may match; an entry listing only our IDs (2 of
        // them) is not a PSK match, the single-index one wins
        assert_eq!(
            psk(&s, &["10.1.0.1", "@alias.west"], &["10.3.0.1"]),
            Some(&b"west-any-peer"[..])
        );
        // PSK needs the peer for multi-index entries: without the single entry, the 2-index
        // entry naming only us falls back to the default
        let s2 = parse("10.1.0.1 10.2.0.1 : PSK \"pair\"\n: PSK \"dflt\"\n").unwrap();
        assert_eq!(psk(&s2, &["10.1.0.1"], &["10.3.0.1"]), Some(&b"dflt"[..]));
        // no default, nothing matches
        let s3 = parse("10.1.0.1 10.2.0.1 : PSK \"pair\"\n").unwrap();
        assert_eq!(psk(&s3, &["10.5.0.1"], &["10.2.0.1"]), None);
        // peer-only match is not enough
        assert_eq!(
            psk(
                &parse("10.2.0.1 : PSK \"x\"\n").unwrap(),
                &["10.1.0.1"],
                &["10.2.0.1"]
            ),
            None
        );
        // RSA entries are not PSKs
        assert_eq!(
            psk(
                &parse(&toy_rsa_block(&toy_modulus())).unwrap(),
                &["10.1.0.1"],
                &[]
            ),
            None
        );
    }

    #[test]
    fn equal_best_must_agree() {
        // equal and identical: fine, the first is used
        let s = parse("10.1.0.1 : PSK \"same\"\n10.1.0.1 : PSK 0tsame\n").unwrap();
        assert_eq!(psk(&s, &["10.1.0.1"], &["10.2.0.1"]), Some(&b"same"[..]));
        // a conflict at a level that is beaten by a better match does not matter
        let s = parse(": PSK \"a\"\n: PSK \"b\"\n10.1.0.1 : PSK \"mine\"\n").unwrap();
        assert_eq!(psk(&s, &["10.1.0.1"], &[]), Some(&b"mine"[..]));
        let e = s.find_psk(&[id("10.9.9.9")], &[]).unwrap_err();
        assert_eq!((e.line, e.file.clone()), (2, PathBuf::from(F)));
        // two IDs of ours in two different single-index entries: equally good, must agree
        let s = parse("10.1.0.1 : PSK \"a\"\n@west : PSK \"b\"\n").unwrap();
        assert!(s.find_psk(&[id("10.1.0.1"), id("@west")], &[]).is_err());
    }

    #[test]
    fn rsa_selection() {
        let m1 = toy_modulus();
        let m2 = format!("dd{}", "2a".repeat(255));
        let text = format!(
            "{}@west {}10.1.0.1 10.2.0.1 {}",
            toy_rsa_block(&m1),
            toy_rsa_block(&m2),
            toy_rsa_block(&m1).replace("Exponent1", "exponent1"),
        );
        let s = parse(&text).unwrap();
        let bits0 = |k: &RsaPrivateKey| k.modulus[0];
        // single index naming us beats the default
        assert_eq!(s.find_rsa(&[id("@west")]).unwrap().map(bits0), Some(0xdd));
        // an entry listing us among several IDs counts for RSA (beats the default)
        assert_eq!(
            s.find_rsa(&[id("10.1.0.1")]).unwrap().map(bits0),
            Some(0xcc)
        );
        assert_eq!(
            s.find_rsa(&[id("10.2.0.1")]).unwrap().map(bits0),
            Some(0xcc)
        );
        // nothing specific: the default
        assert_eq!(
            s.find_rsa(&[id("10.7.7.7")]).unwrap().map(bits0),
            Some(0xcc)
        );
        // equal-best RSA keys must have the same public key
        let conflict = format!("{}{}", toy_rsa_block(&m1), toy_rsa_block(&m2));
        let s = parse(&conflict).unwrap();
        assert_eq!(s.find_rsa(&[id("10.7.7.7")]).unwrap_err().line, 15);
        let same = format!("{}{}", toy_rsa_block(&m1), toy_rsa_block(&m1));
        assert!(parse(&same).unwrap().find_rsa(&[]).unwrap().is_some());
        // PSKs are not RSA keys
        assert!(parse(": PSK \"x\"\n")
            .unwrap()
            .find_rsa(&[])
            .unwrap()
            .is_none());
    }

    #[test]
    fn never_panics_on_garbage() {
        let frags = [
            ":",
            " ",
            "\t",
            "\n",
            "PSK",
            "RSA",
            "{",
            "}",
            "\"",
            "'",
            "#",
            "0x",
            "0s",
            "0t",
            "ab",
            "=",
            "Modulus",
            "PublicExponent",
            "10.0.0.1",
            "@x",
            "%any",
            "é",
            "ü",
            "include",
            "\r",
            "\u{0}",
            "Coefficient:",
            "0x03",
            "*",
        ];
        for text in crate::config::testutil::fuzz_texts(&frags, 5000) {
            // (a directory that does not exist, so fuzzed includes read nothing)
            let _ = Secrets::parse_str(&text, "/nonexistent-rswan-dir/ipsec.secrets");
        }
    }

    #[test]
    fn resolve_names() {
        let mut s = parse("gw.example.com : PSK \"x\"\nunknown.example : PSK \"y\"\n").unwrap();
        assert_eq!(psk(&s, &["192.0.2.9"], &[]), None);
        s.resolve_names(|n| (n == "gw.example.com").then_some(Ipv4Addr::new(192, 0, 2, 9).into()));
        assert_eq!(psk(&s, &["192.0.2.9"], &[]), Some(&b"x"[..]));
        assert_eq!(s.entries()[1].ids, vec![Id::Name("unknown.example".into())]);
    }

    #[test]
    fn permission_check() {
        let t = TempDir::new("secrets-perm");
        let tp = t.path().display().to_string();
        let open = t.write_mode("ipsec.secrets", ": PSK \"x\"\n", 0o644);
        assert_eq!(
            check_permissions(&open).unwrap_err().to_string(),
            format!("{tp}/ipsec.secrets: secrets file is readable by group or others (mode 0644); chmod 600 it")
        );
        assert_eq!(
            Secrets::load(&open).unwrap_err().to_string(),
            format!("{tp}/ipsec.secrets: secrets file is readable by group or others (mode 0644); chmod 600 it")
        );
        let w = t.write_mode("w.secrets", "", 0o620);
        assert!(check_permissions(&w)
            .unwrap_err()
            .message
            .contains("writable by group or others (mode 0620)"));
        let x = t.write_mode("x.secrets", "", 0o601);
        assert!(check_permissions(&x)
            .unwrap_err()
            .message
            .contains("accessible by group or others (mode 0601)"));
        let ok = t.write_mode("ok.secrets", ": PSK \"x\"\n", 0o600);
        check_permissions(&ok).unwrap();
        assert_eq!(Secrets::load(&ok).unwrap().len(), 1);
        let ro = t.write_mode("ro.secrets", ": PSK \"x\"\n", 0o400);
        assert!(Secrets::load(&ro).is_ok());
        // owned by someone else: refused, naming the file and the owner
        use std::os::unix::fs::MetadataExt;
        let me = std::fs::metadata(&ok).unwrap().uid();
        assert_eq!(
            check_permissions_owned_by(&ok, &[me + 1])
                .unwrap_err()
                .to_string(),
            format!("{tp}/ok.secrets: secrets file is owned by uid {me}, not root; chown root it")
        );
        if effective_uid() == 0 {
            let theirs = t.write_mode("theirs.secrets", ": PSK \"x\"\n", 0o600);
            std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
            assert_eq!(
                Secrets::load(&theirs).unwrap_err().to_string(),
                format!("{tp}/theirs.secrets: secrets file is owned by uid 4242, not root; chown root it")
            );
            // an included file owned by someone else is refused too
            let inc = t.write_mode("main2.secrets", "include theirs.secrets\n", 0o600);
            assert!(Secrets::load(&inc)
                .unwrap_err()
                .to_string()
                .contains("theirs.secrets: secrets file is owned by uid 4242"));
        }
        // included files are checked too
        t.write_mode("inc.secrets", ": PSK \"y\"\n", 0o640);
        let main = t.write_mode("main.secrets", "include inc.secrets\n", 0o600);
        assert_eq!(
            Secrets::load(&main).unwrap_err().to_string(),
            format!("{tp}/inc.secrets: secrets file is readable by group or others (mode 0640); chmod 600 it")
        );
        // but parse_str does not check
        assert_eq!(
            Secrets::parse_str("include inc.secrets\n", t.path().join("virtual"))
                .unwrap()
                .len(),
            1
        );
        // missing file
        let e = Secrets::load(t.path().join("absent")).unwrap_err();
        assert_eq!(e.line, 0);
        assert!(e.message.starts_with("cannot open secrets file: "));
    }

    #[test]
    fn includes() {
        let t = TempDir::new("secrets-include");
        let tp = t.path().display().to_string();
        t.mkdir("ipsec.d");
        t.write("ipsec.b.secrets", "10.0.0.2 : PSK \"b\"\n");
        t.write(
            "ipsec.a.secrets",
            "10.0.0.1 : PSK \"a\"\ninclude ipsec.d/*.secrets\n",
        );
        t.write("ipsec.d/x.secrets", "@x : PSK \"x\"\n");
        let main = t.write(
            "ipsec.secrets",
            ": PSK \"first\"\ninclude ipsec.*.secrets\ninclude none.*.secrets\n@last : PSK \"last\"\n",
        );
        let s = Secrets::load(&main).unwrap();
        let got: Vec<(String, usize)> = s
            .entries()
            .iter()
            .map(|e| {
                (
                    e.file.strip_prefix(t.path()).unwrap().display().to_string(),
                    e.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ipsec.secrets".to_string(), 1),
                ("ipsec.a.secrets".to_string(), 1),
                ("ipsec.d/x.secrets".to_string(), 1),
                ("ipsec.b.secrets".to_string(), 1),
                ("ipsec.secrets".to_string(), 4)
            ]
        );
        // errors in included files cite them
        t.write("bad.secrets", "\n: PSK 0xz\n");
        let m = t.write("m.secrets", "include bad.secrets\n");
        assert_eq!(
            Secrets::load(&m).unwrap_err().to_string(),
            format!("{tp}/bad.secrets:2: malformed PSK data: non-hex digit in input (character 1 after the 0x prefix)")
        );
        // missing literal include
        let m = t.write("m2.secrets", "\ninclude nothere.secrets\n");
        assert!(Secrets::load(&m)
            .unwrap_err()
            .to_string()
            .starts_with(&format!(
                "{tp}/m2.secrets:2: cannot open secrets file \"{tp}/nothere.secrets\": "
            )));
        // loops and depth
        let m = t.write("self.secrets", "include self.secrets\n");
        assert_eq!(
            Secrets::load(&m).unwrap_err().to_string(),
            format!(
                "{tp}/self.secrets:1: include loop: \"{tp}/self.secrets\" is already being read"
            )
        );
        for i in 1..=9 {
            t.write(
                &format!("n{i}.secrets"),
                &format!("include n{}.secrets\n", i + 1),
            );
        }
        t.write("n10.secrets", ": PSK \"deep\"\n");
        let m = t.write("n0.secrets", "include n1.secrets\n");
        assert_eq!(Secrets::load(&m).unwrap().len(), 1);
        t.write("n10.secrets", "include n11.secrets\n");
        t.write("n11.secrets", ": PSK \"deeper\"\n");
        assert_eq!(
            Secrets::load(&m).unwrap_err().to_string(),
            format!("{tp}/n10.secrets:1: includes nested too deeply (more than 10 levels)")
        );
        // invalid UTF-8
        std::fs::write(
            t.path().join("bin.secrets"),
            b": PSK \"ok\"\n: PSK \"\xff\"\n",
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                t.path().join("bin.secrets"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        assert_eq!(
            Secrets::load(t.path().join("bin.secrets"))
                .unwrap_err()
                .to_string(),
            format!("{tp}/bin.secrets:2: line is not valid UTF-8")
        );
    }
}
