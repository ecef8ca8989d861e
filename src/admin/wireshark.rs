//! Wireshark's key tables, in the exact formats its UAT files hold (the `esp_sa` table of the
//! ESP dissector, packet-ipsec.c; `ikev1_decryption_table` and `ikev2_decryption_table` of the
//! ISAKMP dissector, packet-isakmp.c): one record per line, fields separated by commas, text
//! and value-string fields in double quotes, byte fields (`UAT_FLD_BUFFER`) as bare hex.
//!
//! * `esp_sa`: `"IPv4","SRC","DST","0xSPI","ENCRYPTION","0xKEY","AUTHENTICATION","0xKEY"` — the
//!   algorithm columns hold Wireshark's value-string names (`"AES-CBC [RFC3602]"`), an AES-GCM
//!   key includes its 4-byte salt, an AEAD has authentication `"NULL"` and an empty key.
//! * `ikev1_decryption_table`: `ICOOKIE,KEY` — the initiator's cookie and the ISAKMP
//!   encryption key (Wireshark takes the cipher from the captured SA payload and the first IV
//!   from the captured KE payloads).
//! * `ikev2_decryption_table`:
//!   `SPIi,SPIr,SK_ei,SK_er,"ENCRYPTION",SK_ai,SK_ar,"INTEGRITY"`.
//!
//! These files hold live keys: whoever reads them decrypts the traffic. The daemon writes them
//! 0600, only when asked (`ipsec keys --wireshark DIR`, or `wiresharkkeys=DIR` in
//! `config setup`).

use std::fmt::Write as _;
use std::net::IpAddr;

use zeroize::Zeroizing;

use crate::crypto::{AuthAlg, EncAlg};

/// One ESP SA with its keys (either direction).
#[derive(Clone, PartialEq, Eq)]
pub struct EspKeys {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address (the family of `src`).
    pub dst: IpAddr,
    /// SPI.
    pub spi: u32,
    /// Cipher.
    pub enc: EncAlg,
    /// Cipher key (an AES-GCM key with its salt).
    pub enc_key: Zeroizing<Vec<u8>>,
    /// Integrity algorithm (None for an AEAD).
    pub auth: Option<AuthAlg>,
    /// Integrity key.
    pub auth_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for EspKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EspKeys({} -> {} 0x{:08x})",
            self.src, self.dst, self.spi
        )
    }
}

/// An IKEv1 SA's decryption entry.
#[derive(Clone, PartialEq, Eq)]
pub struct Ikev1Keys {
    /// The initiator's cookie.
    pub icookie: [u8; 8],
    /// The ISAKMP encryption key.
    pub enc_key: Zeroizing<Vec<u8>>,
}

/// IKEv2 encryption transforms Wireshark can decrypt (RFC 7296 transform IDs, key size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ikev2Encr {
    /// ENCR_3DES.
    TripleDes,
    /// ENCR_AES_CBC with a 128-bit key.
    AesCbc128,
    /// ENCR_AES_CBC with a 192-bit key.
    AesCbc192,
    /// ENCR_AES_CBC with a 256-bit key.
    AesCbc256,
    /// ENCR_AES_GCM_16 with a 128-bit key (SK_e carries the 4-byte salt).
    AesGcm16_128,
    /// ENCR_AES_GCM_16 with a 256-bit key.
    AesGcm16_256,
}

impl Ikev2Encr {
    /// Wireshark's name (`vs_ikev2_encr_algs`).
    pub fn wireshark_name(self) -> &'static str {
        match self {
            Ikev2Encr::TripleDes => "3DES [RFC2451]",
            Ikev2Encr::AesCbc128 => "AES-CBC-128 [RFC3602]",
            Ikev2Encr::AesCbc192 => "AES-CBC-192 [RFC3602]",
            Ikev2Encr::AesCbc256 => "AES-CBC-256 [RFC3602]",
            Ikev2Encr::AesGcm16_128 => "AES-GCM-128 with 16 octet ICV [RFC5282]",
            Ikev2Encr::AesGcm16_256 => "AES-GCM-256 with 16 octet ICV [RFC5282]",
        }
    }
}

/// IKEv2 integrity transforms (None for an AEAD: Wireshark's `NONE [RFC4306]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ikev2Integ {
    /// AUTH_HMAC_MD5_96.
    HmacMd5_96,
    /// AUTH_HMAC_SHA1_96.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128.
    HmacSha2_256_128,
    /// AUTH_HMAC_SHA2_384_192.
    HmacSha2_384_192,
    /// AUTH_HMAC_SHA2_512_256.
    HmacSha2_512_256,
}

impl Ikev2Integ {
    /// Wireshark's name (`vs_ikev2_auth_algs`).
    pub fn wireshark_name(self) -> &'static str {
        match self {
            Ikev2Integ::HmacMd5_96 => "HMAC_MD5_96 [RFC2403]",
            Ikev2Integ::HmacSha1_96 => "HMAC_SHA1_96 [RFC2404]",
            Ikev2Integ::HmacSha2_256_128 => "HMAC_SHA2_256_128 [RFC4868]",
            Ikev2Integ::HmacSha2_384_192 => "HMAC_SHA2_384_192 [RFC4868]",
            Ikev2Integ::HmacSha2_512_256 => "HMAC_SHA2_512_256 [RFC4868]",
        }
    }
}

/// An IKEv2 SA's decryption entry (RFC 7296 2.14 keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Ikev2Keys {
    /// The initiator's SPI.
    pub spi_i: [u8; 8],
    /// The responder's SPI.
    pub spi_r: [u8; 8],
    /// Encryption transform.
    pub encr: Ikev2Encr,
    /// SK_ei.
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// SK_er.
    pub sk_er: Zeroizing<Vec<u8>>,
    /// Integrity transform (None with an AEAD).
    pub integ: Option<Ikev2Integ>,
    /// SK_ai (empty with an AEAD).
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// SK_ar (empty with an AEAD).
    pub sk_ar: Zeroizing<Vec<u8>>,
}

/// Wireshark's ESP encryption name, or None when Wireshark cannot decrypt the cipher.
pub fn esp_encryption_name(e: EncAlg) -> Option<&'static str> {
    match e {
        EncAlg::TripleDesCbc => Some("TripleDES-CBC [RFC2451]"),
        EncAlg::AesCbc128 | EncAlg::AesCbc192 | EncAlg::AesCbc256 => Some("AES-CBC [RFC3602]"),
        EncAlg::AesGcm16_128 | EncAlg::AesGcm16_256 => Some("AES-GCM with 16 octet ICV [RFC4106]"),
        EncAlg::NullEnc => Some("NULL"),
        EncAlg::ChaCha20Poly1305 | EncAlg::Des => None,
    }
}

/// Wireshark's ESP authentication name.
pub fn esp_authentication_name(a: Option<AuthAlg>) -> &'static str {
    match a {
        None => "NULL",
        Some(AuthAlg::HmacMd5_96) => "HMAC-MD5-96 [RFC2403]",
        Some(AuthAlg::HmacSha1_96) => "HMAC-SHA-1-96 [RFC2404]",
        Some(AuthAlg::HmacSha2_256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(AuthAlg::HmacSha2_384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(AuthAlg::HmacSha2_512_256) => "HMAC-SHA-512-256 [RFC4868]",
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The header line Wireshark writes at the top of a UAT file.
const HEADER: &str = "# This file is automatically generated, DO NOT MODIFY.\n";

/// The `esp_sa` file. SAs whose cipher Wireshark cannot decrypt are listed as comments.
pub fn esp_sa(sas: &[EspKeys]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::from(HEADER));
    for sa in sas {
        let Some(enc) = esp_encryption_name(sa.enc) else {
            let _ = writeln!(
                s,
                "# {} -> {} SPI 0x{:08x}: Wireshark cannot decrypt {:?}",
                sa.src, sa.dst, sa.spi, sa.enc
            );
            continue;
        };
        let key = |k: &[u8]| {
            if k.is_empty() {
                String::new()
            } else {
                format!("0x{}", hex(k))
            }
        };
        let _ = writeln!(
            s,
            "\"{}\",\"{}\",\"{}\",\"0x{:08x}\",\"{enc}\",\"{}\",\"{}\",\"{}\"",
            if sa.src.is_ipv6() { "IPv6" } else { "IPv4" },
            sa.src,
            sa.dst,
            sa.spi,
            key(&sa.enc_key),
            esp_authentication_name(sa.auth),
            key(&sa.auth_key),
        );
    }
    s
}

/// The `ikev1_decryption_table` file.
pub fn ikev1_table(sas: &[Ikev1Keys]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::from(HEADER));
    for sa in sas {
        let _ = writeln!(s, "{},{}", hex(&sa.icookie), hex(&sa.enc_key));
    }
    s
}

/// The `ikev2_decryption_table` file.
pub fn ikev2_table(sas: &[Ikev2Keys]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::from(HEADER));
    for sa in sas {
        let _ = writeln!(
            s,
            "{},{},{},{},\"{}\",{},{},\"{}\"",
            hex(&sa.spi_i),
            hex(&sa.spi_r),
            hex(&sa.sk_ei),
            hex(&sa.sk_er),
            sa.encr.wireshark_name(),
            hex(&sa.sk_ai),
            hex(&sa.sk_ar),
            sa.integ.map_or("NONE [RFC4306]", |i| i.wireshark_name()),
        );
    }
    s
}

/// The three files: (file name, contents).
pub fn tables(
    esp: &[EspKeys],
    v1: &[Ikev1Keys],
    v2: &[Ikev2Keys],
) -> [(&'static str, Zeroizing<String>); 3] {
    [
        ("esp_sa", esp_sa(esp)),
        ("ikev1_decryption_table", ikev1_table(v1)),
        ("ikev2_decryption_table", ikev2_table(v2)),
    ]
}

/// Writes the tables into `dir` (created 0700 if missing), each file 0600, replaced atomically
/// (written to a temporary name first). Returns the paths written.
pub fn write_tables(
    dir: &std::path::Path,
    esp: &[EspKeys],
    v1: &[Ikev1Keys],
    v2: &[Ikev2Keys],
) -> std::io::Result<Vec<std::path::PathBuf>> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut out = Vec::new();
    for (name, text) in tables(esp, v1, v2) {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.rswan-tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(b: &[u8]) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(b.to_vec())
    }

    #[test]
    fn esp_sa_lines() {
        let cbc = EspKeys {
            src: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            dst: std::net::Ipv4Addr::new(192, 0, 2, 2).into(),
            spi: 0x1a2b,
            enc: EncAlg::AesCbc128,
            enc_key: z(&[0x11; 16]),
            auth: Some(AuthAlg::HmacSha1_96),
            auth_key: z(&[0x22; 20]),
        };
        let gcm = EspKeys {
            src: std::net::Ipv4Addr::new(192, 0, 2, 2).into(),
            dst: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            spi: 0xdeadbeef,
            enc: EncAlg::AesGcm16_256,
            enc_key: z(&[0xab; 36]),
            auth: None,
            auth_key: z(&[]),
        };
        let chacha = EspKeys {
            enc: EncAlg::ChaCha20Poly1305,
            ..gcm.clone()
        };
        let text = esp_sa(&[cbc, gcm, chacha]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "# This file is automatically generated, DO NOT MODIFY."
        );
        assert_eq!(
            lines[1],
            format!(
                "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00001a2b\",\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-1-96 [RFC2404]\",\"0x{}\"",
                "11".repeat(16),
                "22".repeat(20)
            )
        );
        // GCM: key with its 4-byte salt (36 bytes for AES-256), no separate integrity.
        assert_eq!(
            lines[2],
            format!(
                "\"IPv4\",\"192.0.2.2\",\"192.0.2.1\",\"0xdeadbeef\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"",
                "ab".repeat(36)
            )
        );
        assert!(lines[3].starts_with("# 192.0.2.2 -> 192.0.2.1 SPI 0xdeadbeef: Wireshark cannot"));
        assert_eq!(lines.len(), 4);
        assert_eq!(
            esp_authentication_name(Some(AuthAlg::HmacSha2_256_128)),
            "HMAC-SHA-256-128 [RFC4868]"
        );
        assert_eq!(
            esp_encryption_name(EncAlg::TripleDesCbc),
            Some("TripleDES-CBC [RFC2451]")
        );
    }

    #[test]
    fn ike_tables() {
        let v1 = ikev1_table(&[Ikev1Keys {
            icookie: [1, 2, 3, 4, 5, 6, 7, 8],
            enc_key: z(&[0xc0; 16]),
        }]);
        assert_eq!(
            v1.lines().nth(1).unwrap(),
            format!("0102030405060708,{}", "c0".repeat(16))
        );
        let v2 = ikev2_table(&[
            Ikev2Keys {
                spi_i: [0xaa; 8],
                spi_r: [0xbb; 8],
                encr: Ikev2Encr::AesCbc256,
                sk_ei: z(&[1; 32]),
                sk_er: z(&[2; 32]),
                integ: Some(Ikev2Integ::HmacSha2_256_128),
                sk_ai: z(&[3; 32]),
                sk_ar: z(&[4; 32]),
            },
            Ikev2Keys {
                spi_i: [0x01; 8],
                spi_r: [0x02; 8],
                encr: Ikev2Encr::AesGcm16_128,
                sk_ei: z(&[5; 20]),
                sk_er: z(&[6; 20]),
                integ: None,
                sk_ai: z(&[]),
                sk_ar: z(&[]),
            },
        ]);
        let l: Vec<&str> = v2.lines().collect();
        assert_eq!(
            l[1],
            format!(
                "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb,{},{},\"AES-CBC-256 [RFC3602]\",{},{},\"HMAC_SHA2_256_128 [RFC4868]\"",
                "01".repeat(32),
                "02".repeat(32),
                "03".repeat(32),
                "04".repeat(32)
            )
        );
        assert_eq!(
            l[2],
            format!(
                "0101010101010101,0202020202020202,{},{},\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"",
                "05".repeat(20),
                "06".repeat(20)
            )
        );
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rswan-ws-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = write_tables(&dir, &[], &[], &[]).unwrap();
        assert_eq!(paths.len(), 3);
        for p in &paths {
            let m = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{}", p.display());
        }
        let m = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
