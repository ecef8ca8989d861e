//! FreeS/WAN "ttodata" binary-in-text forms used by keys and secrets (spec 3):
//! `0x` hex (`_` separators allowed), `0s` base64 (`=` padding), `0t` literal text.

use core::fmt;

use base64ct::{Base64, Base64Unpadded, Encoding};

/// Why a text form could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// No `0x` / `0s` / `0t` prefix.
    UnknownPrefix,
    /// A character that is not a hex digit (or `_`), or an odd number of digits.
    BadHex,
    /// Not valid base64.
    BadBase64,
    /// Nothing after the prefix.
    Empty,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextError::UnknownPrefix => "unknown format prefix (expected 0x, 0s or 0t)",
            TextError::BadHex => "bad hex digits",
            TextError::BadBase64 => "bad base64",
            TextError::Empty => "no data after the prefix",
        })
    }
}

impl std::error::Error for TextError {}

/// Decodes `0x…`, `0s…` or `0t…` text into bytes (prefixes are case-insensitive).
pub fn decode(text: &str) -> Result<Vec<u8>, TextError> {
    let text = text.trim();
    let (prefix, rest) = match (text.get(..2), text.get(2..)) {
        (Some(p), Some(r)) => (p.to_ascii_lowercase(), r),
        _ => return Err(TextError::UnknownPrefix),
    };
    if !matches!(prefix.as_str(), "0x" | "0s" | "0t") {
        return Err(TextError::UnknownPrefix);
    }
    if rest.is_empty() {
        return Err(TextError::Empty);
    }
    match prefix.as_str() {
        "0x" => decode_hex(rest),
        "0s" => Base64::decode_vec(rest)
            .or_else(|_| Base64Unpadded::decode_vec(rest))
            .map_err(|_| TextError::BadBase64),
        "0t" => Ok(rest.as_bytes().to_vec()),
        _ => Err(TextError::UnknownPrefix),
    }
}

fn decode_hex(digits: &str) -> Result<Vec<u8>, TextError> {
    let mut nibbles = Vec::with_capacity(digits.len());
    for c in digits.bytes() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b'_' => continue,
            _ => return Err(TextError::BadHex),
        };
        nibbles.push(v);
    }
    if nibbles.is_empty() || nibbles.len() % 2 != 0 {
        return Err(TextError::BadHex);
    }
    Ok(nibbles.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// `0s` + base64 (padded), as in `leftrsasigkey=0sAQO…`.
pub fn encode_base64(data: &[u8]) -> String {
    format!("0s{}", Base64::encode_string(data))
}

/// Plain base64 (padded), without prefix.
pub fn base64(data: &[u8]) -> String {
    Base64::encode_string(data)
}

/// `0x` + lowercase hex, no separators, as in ipsec.secrets RSA fields.
pub fn encode_hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * data.len());
    s.push_str("0x");
    for b in data {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(decode("0x01_02ff").unwrap(), vec![1, 2, 0xff]);
        assert_eq!(decode("0XAB").unwrap(), vec![0xab]);
        assert_eq!(decode("0sAQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode("0sAQI=").unwrap(), vec![1, 2]);
        assert_eq!(decode("0sAQI").unwrap(), vec![1, 2]);
        assert_eq!(decode("0tabc").unwrap(), b"abc".to_vec());
        assert_eq!(decode("0x123"), Err(TextError::BadHex));
        assert_eq!(decode("0xzz"), Err(TextError::BadHex));
        assert_eq!(decode("0s!!"), Err(TextError::BadBase64));
        assert_eq!(decode("abc"), Err(TextError::UnknownPrefix));
        assert_eq!(decode("0x"), Err(TextError::Empty));
        assert_eq!(decode("é"), Err(TextError::UnknownPrefix));
        assert_eq!(encode_base64(&[1, 2, 3]), "0sAQID");
        assert_eq!(encode_hex(&[0, 0xab]), "0x00ab");
        for data in [vec![0u8], vec![1, 2], (0..=255).collect::<Vec<u8>>()] {
            assert_eq!(decode(&encode_base64(&data)).unwrap(), data);
            assert_eq!(decode(&encode_hex(&data)).unwrap(), data);
        }
    }
}
