//! UDP framing of IKE and ESP shared by every IKE version (RFC 3947 / RFC 3948 for IKEv1,
//! RFC 7296 2.23 for IKEv2): the IKE and NAT-T ports, the non-ESP marker that prefixes IKE
//! messages on port 4500 (an ESP packet starts with its non-zero SPI there), and the 1-byte
//! NAT keepalive.

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port (IKE with non-ESP marker, and ESP in UDP).
pub const NAT_T_PORT: u16 = 4500;
/// Non-ESP marker that prefixes IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// A NAT keepalive datagram (RFC 3948 2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What a datagram received on port 4500 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port4500Datagram<'a> {
    /// A NAT keepalive: ignore.
    Keepalive,
    /// An IKE message (marker removed).
    Ike(&'a [u8]),
    /// A UDP-encapsulated ESP packet (starting with its SPI).
    Esp(&'a [u8]),
    /// Too short to be anything: drop.
    Invalid,
}

/// Classifies a datagram received on port 4500 (RFC 3948 2.2, 2.3).
pub fn classify_port4500(datagram: &[u8]) -> Port4500Datagram<'_> {
    if is_nat_keepalive(datagram) {
        return Port4500Datagram::Keepalive;
    }
    match strip_non_esp_marker(datagram) {
        Some(ike) => Port4500Datagram::Ike(ike),
        // SPI (4) + sequence number (4) at least.
        None if datagram.len() >= 8 => Port4500Datagram::Esp(datagram),
        None => Port4500Datagram::Invalid,
    }
}

/// True if the datagram is a NAT keepalive (exactly one 0xFF byte).
pub fn is_nat_keepalive(datagram: &[u8]) -> bool {
    datagram == NAT_KEEPALIVE
}

/// The IKE message behind a non-ESP marker, or `None` if the datagram does not start with one
/// (it is then ESP in UDP, or garbage).
pub fn strip_non_esp_marker(datagram: &[u8]) -> Option<&[u8]> {
    datagram.strip_prefix(&NON_ESP_MARKER[..])
}

/// Prefixes an IKE message with the non-ESP marker, for sending on port 4500.
pub fn add_non_esp_marker(ike: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ike.len() + NON_ESP_MARKER.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(ike);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(classify_port4500(&[0xff]), Port4500Datagram::Keepalive);
        let ike = [1u8, 2, 3];
        let framed = add_non_esp_marker(&ike);
        assert_eq!(framed, [0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(classify_port4500(&framed), Port4500Datagram::Ike(&ike));
        let esp = [0u8, 0, 0x10, 0x01, 0, 0, 0, 1, 9, 9];
        assert_eq!(classify_port4500(&esp), Port4500Datagram::Esp(&esp));
        assert_eq!(classify_port4500(&[0, 0, 1]), Port4500Datagram::Invalid);
        assert_eq!(classify_port4500(&[]), Port4500Datagram::Invalid);
        assert!(!is_nat_keepalive(&[0xff, 0xff]));
        assert_eq!(strip_non_esp_marker(&[0, 0, 0]), None);
    }
}
