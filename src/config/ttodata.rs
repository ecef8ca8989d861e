//! FreeS/WAN `ttodata(3)`: binary data written as text with a format prefix.
//!
//! * `0x…` / `0X…`: hexadecimal, an even number of digits, `_` separators allowed anywhere
//!   (`ipsec ranbits` writes one every 8 digits);
//! * `0s…` / `0S…`: base64 (RFC 4648 alphabet), `=` padding optional but, if present, correct;
//! * `0t…` / `0T…`: the text itself, byte for byte.
//!
//! Error messages never quote the input: it is usually key material.

use super::secret::Secret;
use std::fmt;

/// Why a `ttodata` string could not be decoded. The message never contains the input text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtodataError {
    message: String,
}

impl TtodataError {
    fn new(message: impl Into<String>) -> TtodataError {
        TtodataError {
            message: message.into(),
        }
    }

    /// The human-readable reason (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TtodataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TtodataError {}

/// Decode `0x`/`0s`/`0t` text into bytes. For key material use [`ttodata_key`], which never
/// leaves unwiped copies behind.
pub fn ttodata(s: &str) -> Result<Vec<u8>, TtodataError> {
    ttodata_key(s).map(Secret::into_plain)
}

/// Decode `0x`/`0s`/`0t` text straight into a [`Secret`] (no intermediate unwiped buffers).
pub fn ttodata_key(s: &str) -> Result<Secret, TtodataError> {
    let bytes = s.as_bytes();
    if bytes.len() < 2 {
        return Err(TtodataError::new("input too short to be valid"));
    }
    if bytes[0] != b'0' {
        return Err(TtodataError::new(
            "input does not begin with format prefix (0x, 0s or 0t)",
        ));
    }
    let body = &bytes[2..];
    match bytes[1] {
        b'x' | b'X' => decode_hex(body),
        b's' | b'S' => decode_base64(body),
        b't' | b'T' => {
            if body.is_empty() {
                Err(TtodataError::new("no data after 0t prefix"))
            } else {
                Ok(Secret::from_slice(body))
            }
        }
        _ => Err(TtodataError::new(
            "unknown format prefix (expected 0x, 0s or 0t)",
        )),
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(body: &[u8]) -> Result<Secret, TtodataError> {
    let mut out = Secret::with_capacity(body.len() / 2);
    let mut high: Option<u8> = None;
    let mut digits = 0usize;
    for (i, &c) in body.iter().enumerate() {
        if c == b'_' {
            continue;
        }
        let Some(v) = hex_val(c) else {
            return Err(TtodataError::new(format!(
                "non-hex digit in input (character {} after the 0x prefix)",
                i + 1
            )));
        };
        digits += 1;
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push((h << 4) | v),
        }
    }
    if digits == 0 {
        return Err(TtodataError::new("no hex digits after 0x prefix"));
    }
    if high.is_some() {
        return Err(TtodataError::new(
            "odd number of hex digits (input ends in mid-byte, perhaps truncated)",
        ));
    }
    Ok(out)
}

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn decode_base64(body: &[u8]) -> Result<Secret, TtodataError> {
    let pad = body.iter().rev().take_while(|&&c| c == b'=').count();
    let data = &body[..body.len() - pad];
    if data.is_empty() {
        return Err(TtodataError::new("no base64 data after 0s prefix"));
    }
    if pad > 2 {
        return Err(TtodataError::new("too much '=' padding in base64 data"));
    }
    if pad > 0 && !body.len().is_multiple_of(4) {
        return Err(TtodataError::new("incorrect '=' padding in base64 data"));
    }
    let mut out = Secret::with_capacity(data.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut nbits = 0u32;
    for (i, &c) in data.iter().enumerate() {
        let v = match b64_val(c) {
            Some(v) => v,
            None if c == b'=' => {
                return Err(TtodataError::new(
                    "'=' padding in the middle of base64 data",
                ))
            }
            None => {
                return Err(TtodataError::new(format!(
                    "non-base64 character in input (character {} after the 0s prefix)",
                    i + 1
                )))
            }
        };
        acc = ((acc << 6) | u32::from(v)) & 0xff_ffff;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(((acc >> nbits) & 0xff) as u8);
        }
    }
    // Scrub the accumulator (it held the last key bits).
    acc = 0;
    std::hint::black_box(acc);
    if data.len() % 4 == 1 {
        return Err(TtodataError::new(
            "base64 data ends in mid-byte, perhaps truncated",
        ));
    }
    Ok(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 text (with `=` padding, no `0s` prefix) of `data`; e.g. for RSA public key blobs.
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = |shift: u32| char::from(B64[((n >> shift) & 63) as usize]);
        out.push(idx(18));
        out.push(idx(12));
        out.push(if chunk.len() > 1 { idx(6) } else { '=' });
        out.push(if chunk.len() > 2 { idx(0) } else { '=' });
    }
    out
}

/// Lowercase hex text (no `0x` prefix, no separators) of `data`.
pub fn encode_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(data.len() * 2);
    for &b in data {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_vectors() {
        assert_eq!(ttodata("0x00ff10").unwrap(), vec![0, 0xff, 0x10]);
        assert_eq!(ttodata("0XABcd").unwrap(), vec![0xab, 0xcd]);
        assert_eq!(
            ttodata("0x01234567_89abcdef").unwrap(),
            vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        // separators may even split a byte
        assert_eq!(ttodata("0x1_2_3_4").unwrap(), vec![0x12, 0x34]);
    }

    #[test]
    fn hex_errors() {
        assert!(ttodata("0x123")
            .unwrap_err()
            .message()
            .contains("odd number"));
        assert!(ttodata("0x12g4").unwrap_err().message().contains("non-hex"));
        assert!(ttodata("0x")
            .unwrap_err()
            .message()
            .contains("no hex digits"));
        assert!(ttodata("0x__")
            .unwrap_err()
            .message()
            .contains("no hex digits"));
        assert!(ttodata("0x12 34").is_err());
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 test vectors
        assert_eq!(ttodata("0sZg==").unwrap(), b"f");
        assert_eq!(ttodata("0sZm8=").unwrap(), b"fo");
        assert_eq!(ttodata("0sZm9v").unwrap(), b"foo");
        assert_eq!(ttodata("0sZm9vYg==").unwrap(), b"foob");
        assert_eq!(ttodata("0sZm9vYmE=").unwrap(), b"fooba");
        assert_eq!(ttodata("0SZm9vYmFy").unwrap(), b"foobar");
        // unpadded is accepted too
        assert_eq!(ttodata("0sZm9vYg").unwrap(), b"foob");
        // FreeS/WAN e=3 public-key blob prefix
        assert_eq!(ttodata("0sAQO=").unwrap(), vec![0x01, 0x03]);
        assert!(ttodata("0sAQ=")
            .unwrap_err()
            .message()
            .contains("incorrect"));
        assert_eq!(ttodata("0sAQOA").unwrap(), vec![0x01, 0x03, 0x80]);
        assert_eq!(ttodata("0s+/+/").unwrap(), vec![0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn base64_errors() {
        assert!(ttodata("0sZm9v!")
            .unwrap_err()
            .message()
            .contains("non-base64"));
        assert!(ttodata("0sZ").unwrap_err().message().contains("mid-byte"));
        assert!(ttodata("0sZm=v").unwrap_err().message().contains("middle"));
        assert!(ttodata("0sZ===")
            .unwrap_err()
            .message()
            .contains("too much"));
        assert!(ttodata("0s").unwrap_err().message().contains("no base64"));
        assert!(ttodata("0s==").unwrap_err().message().contains("no base64"));
    }

    #[test]
    fn text_and_prefix() {
        assert_eq!(ttodata("0thello world").unwrap(), b"hello world");
        assert_eq!(ttodata("0Tx").unwrap(), b"x");
        assert_eq!(ttodata("0tnaïve").unwrap(), "naïve".as_bytes());
        assert!(ttodata("0t").is_err());
        assert_eq!(
            ttodata("").unwrap_err().message(),
            "input too short to be valid"
        );
        assert_eq!(
            ttodata("0").unwrap_err().message(),
            "input too short to be valid"
        );
        assert!(ttodata("1x00")
            .unwrap_err()
            .message()
            .contains("format prefix"));
        assert!(ttodata("0q00")
            .unwrap_err()
            .message()
            .contains("unknown format prefix"));
        // multi-byte UTF-8 right after the '0' must not panic
        assert!(ttodata("0é00").is_err());
        assert!(ttodata("é").is_err());
    }

    #[test]
    fn key_variant_and_errors_do_not_leak() {
        let k = ttodata_key("0x0011_2233").unwrap();
        assert_eq!(k.as_bytes(), &[0, 0x11, 0x22, 0x33]);
        assert_eq!(format!("{k:?}"), "<secret 4 bytes>");
        let e = ttodata_key("0xdeadbeefZZ").unwrap_err();
        assert!(!e.to_string().contains("deadbeef"));
        let e = ttodata_key("0sc2VjcmV0!!").unwrap_err();
        assert!(!e.to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn encoders_roundtrip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\x00\xff\x10\x80"] {
            let b = encode_base64(data);
            if !data.is_empty() {
                assert_eq!(ttodata(&format!("0s{b}")).unwrap(), data);
                assert_eq!(ttodata(&format!("0x{}", encode_hex(data))).unwrap(), data);
            }
        }
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        assert_eq!(encode_hex(&[0xab, 0x01]), "ab01");
    }
}
