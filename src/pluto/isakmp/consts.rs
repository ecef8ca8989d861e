//! ISAKMP / IKEv1 / IPsec DOI numbers (RFC 2407, 2408, 2409, 3947, 3706) as typed enums.
//!
//! Every enum keeps values it does not know in an `Unknown(raw)` variant so that nothing is lost
//! when a peer sends something unexpected; `From<raw>` and `From<enum> for raw` convert both
//! ways. `Display` prints the name Pluto uses in its logs (e.g. `OAKLEY_3DES_CBC`), and
//! `"<n>??"` for unknown values.
//!
//! Attribute *values* are `u16` (basic attributes); numbers such as transform IDs are `u8`.
//! Whether a number is an IKE (phase 1) or an IPsec DOI (phase 2) attribute depends on the
//! protocol of the enclosing proposal, so transforms keep raw numbers and the caller converts
//! with the enum of the right namespace.

/// Defines a `Copy` enum over a raw integer type with an `Unknown(raw)` catch-all, both
/// conversions and a `Display` that prints the given names.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $(
                $(#[$variant_attr:meta])*
                $variant:ident = $value:literal => $disp:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Hash)]
        pub enum $name {
            $(
                $(#[$variant_attr])*
                $variant,
            )+
            /// A value this implementation has no name for (kept as received).
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The raw on-the-wire number.
            pub fn value(self) -> $ty {
                <$ty>::from(self)
            }

            /// Pluto's name for a known value, `None` for an unknown one.
            pub fn name(self) -> Option<&'static str> {
                match <$name>::from(<$ty>::from(self)) {
                    $( $name::$variant => Some($disp), )+
                    $name::Unknown(_) => None,
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}??", <$ty>::from(*self)),
                }
            }
        }
    };
}

enum_with_unknown! {
    /// ISAKMP exchange type (RFC 2408 3.1, RFC 2409 5).
    pub enum ExchangeType(u8) {
        /// No exchange.
        None = 0 => "ISAKMP_XCHG_NONE",
        /// Base exchange.
        Base = 1 => "ISAKMP_XCHG_BASE",
        /// Identity Protection = IKE Main Mode (phase 1).
        MainMode = 2 => "ISAKMP_XCHG_IDPROT",
        /// Authentication only.
        AuthOnly = 3 => "ISAKMP_XCHG_AO",
        /// Aggressive Mode (phase 1).
        Aggressive = 4 => "ISAKMP_XCHG_AGGR",
        /// Informational exchange (notifications, deletes, DPD).
        Informational = 5 => "ISAKMP_XCHG_INFO",
        /// Transaction exchange (XAUTH / mode config).
        Transaction = 6 => "ISAKMP_XCHG_MODE_CFG",
        /// Quick Mode (phase 2).
        QuickMode = 32 => "ISAKMP_XCHG_QUICK",
        /// New Group Mode.
        NewGroupMode = 33 => "ISAKMP_XCHG_NGRP",
    }
}

enum_with_unknown! {
    /// ISAKMP payload type, as found in "next payload" fields (RFC 2408 3.1, RFC 3947).
    pub enum PayloadType(u8) {
        /// End of the payload chain.
        None = 0 => "ISAKMP_NEXT_NONE",
        /// Security Association.
        Sa = 1 => "ISAKMP_NEXT_SA",
        /// Proposal (only inside an SA payload).
        Proposal = 2 => "ISAKMP_NEXT_P",
        /// Transform (only inside a Proposal payload).
        Transform = 3 => "ISAKMP_NEXT_T",
        /// Key Exchange.
        KeyExchange = 4 => "ISAKMP_NEXT_KE",
        /// Identification.
        Id = 5 => "ISAKMP_NEXT_ID",
        /// Certificate.
        Cert = 6 => "ISAKMP_NEXT_CERT",
        /// Certificate Request.
        CertReq = 7 => "ISAKMP_NEXT_CR",
        /// Hash.
        Hash = 8 => "ISAKMP_NEXT_HASH",
        /// Signature.
        Signature = 9 => "ISAKMP_NEXT_SIG",
        /// Nonce.
        Nonce = 10 => "ISAKMP_NEXT_NONCE",
        /// Notification.
        Notification = 11 => "ISAKMP_NEXT_N",
        /// Delete.
        Delete = 12 => "ISAKMP_NEXT_D",
        /// Vendor ID.
        VendorId = 13 => "ISAKMP_NEXT_VID",
        /// Mode config attributes (draft, used by XAUTH).
        ModeCfgAttr = 14 => "ISAKMP_NEXT_ATTR",
        /// NAT Discovery (RFC 3947).
        NatD = 20 => "ISAKMP_NEXT_NATD_RFC",
        /// NAT Original Address (RFC 3947).
        NatOa = 21 => "ISAKMP_NEXT_NATOA_RFC",
        /// NAT Discovery, pre-RFC drafts.
        NatDDraft = 130 => "ISAKMP_NEXT_NATD_DRAFTS",
        /// NAT Original Address, pre-RFC drafts.
        NatOaDraft = 131 => "ISAKMP_NEXT_NATOA_DRAFTS",
    }
}

enum_with_unknown! {
    /// Domain of Interpretation (RFC 2408 3.4).
    pub enum Doi(u32) {
        /// Generic ISAKMP.
        Isakmp = 0 => "ISAKMP_DOI_ISAKMP",
        /// The IPsec DOI (RFC 2407).
        Ipsec = 1 => "ISAKMP_DOI_IPSEC",
    }
}

/// IPsec DOI situation bit: identity only (the only one anybody uses; RFC 2407 4.2).
pub const SIT_IDENTITY_ONLY: u32 = 0x01;
/// IPsec DOI situation bit: secrecy labels follow (unsupported by Pluto and strongSwan).
pub const SIT_SECRECY: u32 = 0x02;
/// IPsec DOI situation bit: integrity labels follow (unsupported by Pluto and strongSwan).
pub const SIT_INTEGRITY: u32 = 0x04;

enum_with_unknown! {
    /// Protocol ID of a proposal, notification or delete (RFC 2407 4.4.1).
    pub enum ProtocolId(u8) {
        /// Reserved / none (used in some notifications).
        Reserved = 0 => "PROTO_RESERVED",
        /// ISAKMP itself (phase 1 SA).
        Isakmp = 1 => "PROTO_ISAKMP",
        /// IPsec AH.
        Ah = 2 => "PROTO_IPSEC_AH",
        /// IPsec ESP.
        Esp = 3 => "PROTO_IPSEC_ESP",
        /// IP compression (SPI field carries a 2-byte CPI).
        Ipcomp = 4 => "PROTO_IPCOMP",
    }
}

enum_with_unknown! {
    /// Transform ID of an ISAKMP (phase 1) transform (RFC 2407 4.4.2).
    pub enum IkeTransformId(u8) {
        /// The only one: IKE.
        KeyIke = 1 => "KEY_IKE",
    }
}

enum_with_unknown! {
    /// Transform ID of an AH transform (RFC 2407 4.4.3, RFC 4868).
    pub enum AhTransformId(u8) {
        /// HMAC-MD5-96.
        Md5 = 2 => "AH_MD5",
        /// HMAC-SHA1-96.
        Sha = 3 => "AH_SHA",
        /// DES-MAC.
        Des = 4 => "AH_DES",
        /// HMAC-SHA2-256-128.
        Sha2_256 = 5 => "AH_SHA2_256",
        /// HMAC-SHA2-384-192.
        Sha2_384 = 6 => "AH_SHA2_384",
        /// HMAC-SHA2-512-256.
        Sha2_512 = 7 => "AH_SHA2_512",
    }
}

enum_with_unknown! {
    /// Transform ID of an ESP transform (RFC 2407 4.4.4, RFC 3602, 4106).
    pub enum EspTransformId(u8) {
        /// DES with 64-bit IV.
        DesIv64 = 1 => "ESP_DES_IV64",
        /// DES-CBC.
        Des = 2 => "ESP_DES",
        /// 3DES-CBC.
        TripleDes = 3 => "ESP_3DES",
        /// RC5.
        Rc5 = 4 => "ESP_RC5",
        /// IDEA.
        Idea = 5 => "ESP_IDEA",
        /// CAST-128.
        Cast = 6 => "ESP_CAST",
        /// Blowfish.
        Blowfish = 7 => "ESP_BLOWFISH",
        /// 3IDEA.
        TripleIdea = 8 => "ESP_3IDEA",
        /// DES with 32-bit IV.
        DesIv32 = 9 => "ESP_DES_IV32",
        /// RC4.
        Rc4 = 10 => "ESP_RC4",
        /// NULL encryption.
        Null = 11 => "ESP_NULL",
        /// AES-CBC (key length attribute mandatory, RFC 3602).
        Aes = 12 => "ESP_AES",
        /// AES-CTR.
        AesCtr = 13 => "ESP_AES_CTR",
        /// AES-CCM with 8-byte ICV.
        AesCcm8 = 14 => "ESP_AES_CCM_8",
        /// AES-CCM with 12-byte ICV.
        AesCcm12 = 15 => "ESP_AES_CCM_12",
        /// AES-CCM with 16-byte ICV.
        AesCcm16 = 16 => "ESP_AES_CCM_16",
        /// AES-GCM with 8-byte ICV.
        AesGcm8 = 18 => "ESP_AES_GCM_8",
        /// AES-GCM with 12-byte ICV.
        AesGcm12 = 19 => "ESP_AES_GCM_12",
        /// AES-GCM with 16-byte ICV.
        AesGcm16 = 20 => "ESP_AES_GCM_16",
    }
}

enum_with_unknown! {
    /// Transform ID of an IPComp transform (RFC 2407 4.4.5).
    pub enum IpcompTransformId(u8) {
        /// Vendor-specific (OUI).
        Oui = 1 => "IPCOMP_OUI",
        /// DEFLATE (RFC 2394).
        Deflate = 2 => "IPCOMP_DEFLATE",
        /// LZS.
        Lzs = 3 => "IPCOMP_LZS",
    }
}

enum_with_unknown! {
    /// Phase-1 (Oakley) SA attribute type (RFC 2409 appendix A).
    pub enum IkeAttrType(u16) {
        /// Encryption algorithm (basic), values [`OakleyEncAlg`].
        EncryptionAlgorithm = 1 => "OAKLEY_ENCRYPTION_ALGORITHM",
        /// Hash algorithm (basic), values [`OakleyHash`].
        HashAlgorithm = 2 => "OAKLEY_HASH_ALGORITHM",
        /// Authentication method (basic), values [`OakleyAuthMethod`].
        AuthenticationMethod = 3 => "OAKLEY_AUTHENTICATION_METHOD",
        /// Group description (basic), values [`OakleyGroup`].
        GroupDescription = 4 => "OAKLEY_GROUP_DESCRIPTION",
        /// Group type (basic).
        GroupType = 5 => "OAKLEY_GROUP_TYPE",
        /// Group prime (variable).
        GroupPrime = 6 => "OAKLEY_GROUP_PRIME",
        /// Group generator one (variable).
        GroupGeneratorOne = 7 => "OAKLEY_GROUP_GENERATOR_ONE",
        /// Group generator two (variable).
        GroupGeneratorTwo = 8 => "OAKLEY_GROUP_GENERATOR_TWO",
        /// Group curve A (variable).
        GroupCurveA = 9 => "OAKLEY_GROUP_CURVE_A",
        /// Group curve B (variable).
        GroupCurveB = 10 => "OAKLEY_GROUP_CURVE_B",
        /// Life type (basic), values [`OakleyLifeType`].
        LifeType = 11 => "OAKLEY_LIFE_TYPE",
        /// Life duration (variable; may also come as a basic attribute or as a 4-byte TLV).
        LifeDuration = 12 => "OAKLEY_LIFE_DURATION",
        /// PRF (basic).
        Prf = 13 => "OAKLEY_PRF",
        /// Key length in bits (basic), for variable-key-length ciphers such as AES.
        KeyLength = 14 => "OAKLEY_KEY_LENGTH",
        /// Field size (basic).
        FieldSize = 15 => "OAKLEY_FIELD_SIZE",
        /// Group order (variable).
        GroupOrder = 16 => "OAKLEY_GROUP_ORDER",
    }
}

enum_with_unknown! {
    /// Phase-1 encryption algorithm (RFC 2409 appendix A, RFC 3602).
    pub enum OakleyEncAlg(u16) {
        /// DES-CBC.
        DesCbc = 1 => "OAKLEY_DES_CBC",
        /// IDEA-CBC.
        IdeaCbc = 2 => "OAKLEY_IDEA_CBC",
        /// Blowfish-CBC.
        BlowfishCbc = 3 => "OAKLEY_BLOWFISH_CBC",
        /// RC5-R16-B64-CBC.
        Rc5Cbc = 4 => "OAKLEY_RC5_R16_B64_CBC",
        /// 3DES-CBC.
        TripleDesCbc = 5 => "OAKLEY_3DES_CBC",
        /// CAST-CBC.
        CastCbc = 6 => "OAKLEY_CAST_CBC",
        /// AES-CBC (key length attribute).
        AesCbc = 7 => "OAKLEY_AES_CBC",
        /// Camellia-CBC.
        CamelliaCbc = 8 => "OAKLEY_CAMELLIA_CBC",
    }
}

enum_with_unknown! {
    /// Phase-1 hash algorithm (RFC 2409 appendix A, RFC 4868).
    pub enum OakleyHash(u16) {
        /// MD5.
        Md5 = 1 => "OAKLEY_MD5",
        /// SHA-1.
        Sha1 = 2 => "OAKLEY_SHA1",
        /// Tiger.
        Tiger = 3 => "OAKLEY_TIGER",
        /// SHA2-256.
        Sha2_256 = 4 => "OAKLEY_SHA2_256",
        /// SHA2-384.
        Sha2_384 = 5 => "OAKLEY_SHA2_384",
        /// SHA2-512.
        Sha2_512 = 6 => "OAKLEY_SHA2_512",
    }
}

enum_with_unknown! {
    /// Phase-1 authentication method (RFC 2409 appendix A; XAUTH values from the draft).
    pub enum OakleyAuthMethod(u16) {
        /// Pre-shared key.
        PreSharedKey = 1 => "OAKLEY_PRESHARED_KEY",
        /// DSS signatures.
        DssSig = 2 => "OAKLEY_DSS_SIG",
        /// RSA signatures.
        RsaSig = 3 => "OAKLEY_RSA_SIG",
        /// RSA encryption.
        RsaEnc = 4 => "OAKLEY_RSA_ENC",
        /// Revised RSA encryption.
        RsaEncRev = 5 => "OAKLEY_RSA_ENC_REV",
        /// XAUTH with PSK, initiator is the XAUTH client.
        XauthInitPreShared = 65001 => "XAUTHInitPreShared",
        /// XAUTH with PSK, responder is the XAUTH client.
        XauthRespPreShared = 65002 => "XAUTHRespPreShared",
        /// XAUTH with RSA signatures, initiator is the XAUTH client.
        XauthInitRsa = 65005 => "XAUTHInitRSA",
        /// XAUTH with RSA signatures, responder is the XAUTH client.
        XauthRespRsa = 65006 => "XAUTHRespRSA",
    }
}

enum_with_unknown! {
    /// Diffie-Hellman group description (RFC 2409 6, RFC 3526), shared by phase 1 and 2.
    pub enum OakleyGroup(u16) {
        /// 768-bit MODP (group 1), refused by Pluto.
        Modp768 = 1 => "OAKLEY_GROUP_MODP768",
        /// 1024-bit MODP (group 2).
        Modp1024 = 2 => "OAKLEY_GROUP_MODP1024",
        /// EC2N 155 (group 3).
        Ec2n155 = 3 => "OAKLEY_GROUP_EC2N_2_1",
        /// EC2N 185 (group 4).
        Ec2n185 = 4 => "OAKLEY_GROUP_EC2N_2_2",
        /// 1536-bit MODP (group 5).
        Modp1536 = 5 => "OAKLEY_GROUP_MODP1536",
        /// 2048-bit MODP (group 14).
        Modp2048 = 14 => "OAKLEY_GROUP_MODP2048",
        /// 3072-bit MODP (group 15).
        Modp3072 = 15 => "OAKLEY_GROUP_MODP3072",
        /// 4096-bit MODP (group 16).
        Modp4096 = 16 => "OAKLEY_GROUP_MODP4096",
        /// 6144-bit MODP (group 17).
        Modp6144 = 17 => "OAKLEY_GROUP_MODP6144",
        /// 8192-bit MODP (group 18).
        Modp8192 = 18 => "OAKLEY_GROUP_MODP8192",
        /// NIST P-256 (group 19).
        Ecp256 = 19 => "OAKLEY_GROUP_ECP_256",
        /// NIST P-384 (group 20).
        Ecp384 = 20 => "OAKLEY_GROUP_ECP_384",
        /// NIST P-521 (group 21).
        Ecp521 = 21 => "OAKLEY_GROUP_ECP_521",
    }
}

enum_with_unknown! {
    /// Phase-1 life type (RFC 2409 appendix A).
    pub enum OakleyLifeType(u16) {
        /// Duration in seconds.
        Seconds = 1 => "OAKLEY_LIFE_SECONDS",
        /// Duration in kilobytes.
        Kilobytes = 2 => "OAKLEY_LIFE_KILOBYTES",
    }
}

enum_with_unknown! {
    /// Phase-2 (IPsec DOI) SA attribute type (RFC 2407 4.5).
    pub enum IpsecAttrType(u16) {
        /// SA life type (basic), values [`SaLifeType`].
        SaLifeType = 1 => "SA_LIFE_TYPE",
        /// SA life duration (variable; basic or 4-byte TLV in practice).
        SaLifeDuration = 2 => "SA_LIFE_DURATION",
        /// PFS group description (basic), values [`OakleyGroup`].
        GroupDescription = 3 => "GROUP_DESCRIPTION",
        /// Encapsulation mode (basic), values [`EncapsulationMode`].
        EncapsulationMode = 4 => "ENCAPSULATION_MODE",
        /// Authentication algorithm (basic), values [`AuthAlgorithm`].
        AuthAlgorithm = 5 => "AUTH_ALGORITHM",
        /// Key length in bits (basic).
        KeyLength = 6 => "KEY_LENGTH",
        /// Key rounds (basic).
        KeyRounds = 7 => "KEY_ROUNDS",
        /// Compression dictionary size (basic).
        CompressDictSize = 8 => "COMPRESS_DICT_SIZE",
        /// Private compression algorithm (variable).
        CompressPrivateAlg = 9 => "COMPRESS_PRIVATE_ALG",
    }
}

enum_with_unknown! {
    /// Phase-2 SA life type (RFC 2407 4.5).
    pub enum SaLifeType(u16) {
        /// Duration in seconds.
        Seconds = 1 => "SA_LIFE_TYPE_SECONDS",
        /// Duration in kilobytes.
        Kilobytes = 2 => "SA_LIFE_TYPE_KBYTES",
    }
}

enum_with_unknown! {
    /// Phase-2 encapsulation mode (RFC 2407 4.5, RFC 3947 5; draft values for old NAT-T peers).
    pub enum EncapsulationMode(u16) {
        /// Tunnel mode.
        Tunnel = 1 => "ENCAPSULATION_MODE_TUNNEL",
        /// Transport mode.
        Transport = 2 => "ENCAPSULATION_MODE_TRANSPORT",
        /// UDP-encapsulated tunnel mode (RFC 3947).
        UdpTunnel = 3 => "ENCAPSULATION_MODE_UDP_TUNNEL_RFC",
        /// UDP-encapsulated transport mode (RFC 3947).
        UdpTransport = 4 => "ENCAPSULATION_MODE_UDP_TRANSPORT_RFC",
        /// UDP-encapsulated tunnel mode, NAT-T drafts.
        UdpTunnelDraft = 61443 => "ENCAPSULATION_MODE_UDP_TUNNEL_DRAFTS",
        /// UDP-encapsulated transport mode, NAT-T drafts.
        UdpTransportDraft = 61444 => "ENCAPSULATION_MODE_UDP_TRANSPORT_DRAFTS",
    }
}

impl EncapsulationMode {
    /// True for tunnel mode in any of its forms (plain, RFC 3947 UDP, draft UDP).
    pub fn is_tunnel(self) -> bool {
        matches!(self, Self::Tunnel | Self::UdpTunnel | Self::UdpTunnelDraft)
    }

    /// True for the UDP-encapsulated (NAT-T) forms, RFC or draft.
    pub fn is_udp_encapsulated(self) -> bool {
        matches!(
            self,
            Self::UdpTunnel | Self::UdpTransport | Self::UdpTunnelDraft | Self::UdpTransportDraft
        )
    }
}

enum_with_unknown! {
    /// Phase-2 authentication algorithm attribute (RFC 2407 4.5, RFC 4868).
    pub enum AuthAlgorithm(u16) {
        /// HMAC-MD5.
        HmacMd5 = 1 => "AUTH_ALGORITHM_HMAC_MD5",
        /// HMAC-SHA1.
        HmacSha1 = 2 => "AUTH_ALGORITHM_HMAC_SHA1",
        /// DES-MAC.
        DesMac = 3 => "AUTH_ALGORITHM_DES_MAC",
        /// KPDK.
        Kpdk = 4 => "AUTH_ALGORITHM_KPDK",
        /// HMAC-SHA2-256.
        HmacSha2_256 = 5 => "AUTH_ALGORITHM_HMAC_SHA2_256",
        /// HMAC-SHA2-384.
        HmacSha2_384 = 6 => "AUTH_ALGORITHM_HMAC_SHA2_384",
        /// HMAC-SHA2-512.
        HmacSha2_512 = 7 => "AUTH_ALGORITHM_HMAC_SHA2_512",
    }
}

enum_with_unknown! {
    /// Identification type of the IPsec DOI (RFC 2407 4.6.2.1).
    pub enum IdType(u8) {
        /// A single IPv4 address (4 bytes).
        Ipv4Addr = 1 => "ID_IPV4_ADDR",
        /// A fully-qualified domain name.
        Fqdn = 2 => "ID_FQDN",
        /// user@fqdn.
        UserFqdn = 3 => "ID_USER_FQDN",
        /// IPv4 address + netmask (8 bytes).
        Ipv4AddrSubnet = 4 => "ID_IPV4_ADDR_SUBNET",
        /// A single IPv6 address (16 bytes).
        Ipv6Addr = 5 => "ID_IPV6_ADDR",
        /// IPv6 address + mask (32 bytes).
        Ipv6AddrSubnet = 6 => "ID_IPV6_ADDR_SUBNET",
        /// IPv4 start and end address (8 bytes).
        Ipv4AddrRange = 7 => "ID_IPV4_ADDR_RANGE",
        /// IPv6 start and end address (32 bytes).
        Ipv6AddrRange = 8 => "ID_IPV6_ADDR_RANGE",
        /// DER ASN.1 distinguished name.
        DerAsn1Dn = 9 => "ID_DER_ASN1_DN",
        /// DER ASN.1 general name.
        DerAsn1Gn = 10 => "ID_DER_ASN1_GN",
        /// Opaque key identifier.
        KeyId = 11 => "ID_KEY_ID",
    }
}

enum_with_unknown! {
    /// Certificate encoding of Cert / Certificate Request payloads (RFC 2408 3.9).
    pub enum CertEncoding(u8) {
        /// None.
        None = 0 => "CERT_NONE",
        /// PKCS #7 wrapped X.509.
        Pkcs7WrappedX509 = 1 => "CERT_PKCS7_WRAPPED_X509",
        /// PGP.
        Pgp = 2 => "CERT_PGP",
        /// DNS signed key.
        DnsSignedKey = 3 => "CERT_DNS_SIGNED_KEY",
        /// X.509 certificate, signature.
        X509Signature = 4 => "CERT_X509_SIGNATURE",
        /// X.509 certificate, key exchange.
        X509KeyExchange = 5 => "CERT_X509_KEY_EXCHANGE",
        /// Kerberos tokens.
        KerberosTokens = 6 => "CERT_KERBEROS_TOKENS",
        /// Certificate revocation list.
        Crl = 7 => "CERT_CRL",
        /// Authority revocation list.
        Arl = 8 => "CERT_ARL",
        /// SPKI certificate.
        Spki = 9 => "CERT_SPKI",
        /// X.509 attribute certificate.
        X509Attribute = 10 => "CERT_X509_ATTRIBUTE",
    }
}

enum_with_unknown! {
    /// Notify message type (RFC 2408 3.14.1, RFC 2407 4.6.3, RFC 3706).
    ///
    /// 1–16383 are errors, 16384 and up status messages.
    pub enum NotifyType(u16) {
        /// Unknown or unexpected payload type.
        InvalidPayloadType = 1 => "INVALID_PAYLOAD_TYPE",
        /// DOI not supported.
        DoiNotSupported = 2 => "DOI_NOT_SUPPORTED",
        /// Situation not supported.
        SituationNotSupported = 3 => "SITUATION_NOT_SUPPORTED",
        /// Invalid cookie.
        InvalidCookie = 4 => "INVALID_COOKIE",
        /// Invalid major version.
        InvalidMajorVersion = 5 => "INVALID_MAJOR_VERSION",
        /// Invalid minor version.
        InvalidMinorVersion = 6 => "INVALID_MINOR_VERSION",
        /// Invalid exchange type.
        InvalidExchangeType = 7 => "INVALID_EXCHANGE_TYPE",
        /// Invalid flags.
        InvalidFlags = 8 => "INVALID_FLAGS",
        /// Invalid message ID.
        InvalidMessageId = 9 => "INVALID_MESSAGE_ID",
        /// Invalid protocol ID.
        InvalidProtocolId = 10 => "INVALID_PROTOCOL_ID",
        /// Invalid SPI.
        InvalidSpi = 11 => "INVALID_SPI",
        /// Invalid transform ID.
        InvalidTransformId = 12 => "INVALID_TRANSFORM_ID",
        /// Attributes not supported.
        AttributesNotSupported = 13 => "ATTRIBUTES_NOT_SUPPORTED",
        /// No acceptable proposal.
        NoProposalChosen = 14 => "NO_PROPOSAL_CHOSEN",
        /// Bad proposal syntax.
        BadProposalSyntax = 15 => "BAD_PROPOSAL_SYNTAX",
        /// Malformed payload.
        PayloadMalformed = 16 => "PAYLOAD_MALFORMED",
        /// Invalid key information.
        InvalidKeyInformation = 17 => "INVALID_KEY_INFORMATION",
        /// Invalid identification information.
        InvalidIdInformation = 18 => "INVALID_ID_INFORMATION",
        /// Invalid certificate encoding.
        InvalidCertEncoding = 19 => "INVALID_CERT_ENCODING",
        /// Invalid certificate.
        InvalidCertificate = 20 => "INVALID_CERTIFICATE",
        /// Certificate type unsupported.
        CertTypeUnsupported = 21 => "CERT_TYPE_UNSUPPORTED",
        /// Invalid certificate authority.
        InvalidCertAuthority = 22 => "INVALID_CERT_AUTHORITY",
        /// Invalid hash information.
        InvalidHashInformation = 23 => "INVALID_HASH_INFORMATION",
        /// Authentication failed.
        AuthenticationFailed = 24 => "AUTHENTICATION_FAILED",
        /// Invalid signature.
        InvalidSignature = 25 => "INVALID_SIGNATURE",
        /// Address notification.
        AddressNotification = 26 => "ADDRESS_NOTIFICATION",
        /// SA lifetime notification.
        NotifySaLifetime = 27 => "NOTIFY_SA_LIFETIME",
        /// Certificate unavailable.
        CertificateUnavailable = 28 => "CERTIFICATE_UNAVAILABLE",
        /// Unsupported exchange type.
        UnsupportedExchangeType = 29 => "UNSUPPORTED_EXCHANGE_TYPE",
        /// Unequal payload lengths.
        UnequalPayloadLengths = 30 => "UNEQUAL_PAYLOAD_LENGTHS",
        /// Status: connected.
        Connected = 16384 => "CONNECTED",
        /// IPsec DOI status: responder lifetime.
        ResponderLifetime = 24576 => "IPSEC_RESPONDER_LIFETIME",
        /// IPsec DOI status: replay status.
        ReplayStatus = 24577 => "IPSEC_REPLAY_STATUS",
        /// IPsec DOI status: initial contact.
        InitialContact = 24578 => "IPSEC_INITIAL_CONTACT",
        /// DPD request (RFC 3706).
        RUThere = 36136 => "R_U_THERE",
        /// DPD reply (RFC 3706).
        RUThereAck = 36137 => "R_U_THERE_ACK",
    }
}

impl NotifyType {
    /// True for error notifications (types 1–16383, RFC 2408 3.14.1).
    pub fn is_error(self) -> bool {
        (1..16384).contains(&self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_conversions() {
        assert_eq!(OakleyEncAlg::from(5).to_string(), "OAKLEY_3DES_CBC");
        assert_eq!(OakleyHash::from(2).to_string(), "OAKLEY_SHA1");
        assert_eq!(OakleyGroup::Modp1024.to_string(), "OAKLEY_GROUP_MODP1024");
        assert_eq!(EspTransformId::TripleDes.to_string(), "ESP_3DES");
        assert_eq!(
            AuthAlgorithm::HmacSha1.to_string(),
            "AUTH_ALGORITHM_HMAC_SHA1"
        );
        assert_eq!(NotifyType::from(1).to_string(), "INVALID_PAYLOAD_TYPE");
        assert_eq!(NotifyType::NoProposalChosen.value(), 14);
        assert_eq!(NotifyType::from(36136), NotifyType::RUThere);
        assert_eq!(NotifyType::RUThereAck.to_string(), "R_U_THERE_ACK");
        assert_eq!(NotifyType::InitialContact.value(), 24578);
        assert_eq!(PayloadType::from(130), PayloadType::NatDDraft);
        assert_eq!(PayloadType::from(99), PayloadType::Unknown(99));
        assert_eq!(PayloadType::Unknown(99).to_string(), "99??");
        assert_eq!(u8::from(ExchangeType::QuickMode), 32);
        assert_eq!(
            EncapsulationMode::from(61443),
            EncapsulationMode::UdpTunnelDraft
        );
        assert!(EncapsulationMode::UdpTunnel.is_tunnel());
        assert!(!EncapsulationMode::Transport.is_udp_encapsulated());
        assert!(NotifyType::NoProposalChosen.is_error());
        assert!(!NotifyType::RUThere.is_error());
        // An Unknown built by hand for a known number still names the known value.
        assert_eq!(PayloadType::Unknown(1).name(), Some("ISAKMP_NEXT_SA"));
    }
}
