//! IKEv2 numbers (RFC 7296 section 3 and the IANA "IKEv2 Parameters" registry) as typed enums.
//!
//! Every enum keeps values it does not know in an `Unknown(raw)` variant so that nothing is lost
//! when a peer sends something unexpected; `From<raw>` and `From<enum> for raw` convert both
//! ways. `Display` prints the RFC name (e.g. `ENCR_AES_CBC`, `NO_PROPOSAL_CHOSEN`) and
//! `"<n>??"` for unknown values.

/// Defines a `Copy` enum over a raw integer type with an `Unknown(raw)` catch-all, both
/// conversions and a `Display` that prints the given names.
macro_rules! v2_enum {
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

            /// The RFC name of a known value, `None` for an unknown one.
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

v2_enum! {
    /// IKEv2 exchange type (RFC 7296 3.1).
    pub enum ExchangeType(u8) {
        /// The first exchange: SA, KE, Nonce (and NAT-D, COOKIE, ...) in the clear.
        IkeSaInit = 34 => "IKE_SA_INIT",
        /// Authentication and the first Child SA, encrypted.
        IkeAuth = 35 => "IKE_AUTH",
        /// Additional Child SAs, rekeying of Child and IKE SAs.
        CreateChildSa = 36 => "CREATE_CHILD_SA",
        /// Delete, notifications, liveness checks.
        Informational = 37 => "INFORMATIONAL",
        /// Session resumption (RFC 5723).
        IkeSessionResume = 38 => "IKE_SESSION_RESUME",
        /// Intermediate exchange (RFC 9242).
        IkeIntermediate = 43 => "IKE_INTERMEDIATE",
    }
}

v2_enum! {
    /// IKEv2 payload type, as found in "next payload" fields (RFC 7296 3.2, RFC 7383).
    pub enum PayloadType(u8) {
        /// End of the payload chain.
        None = 0 => "NONE",
        /// Security Association.
        Sa = 33 => "SA",
        /// Key Exchange.
        Ke = 34 => "KE",
        /// Identification - Initiator.
        IdI = 35 => "IDi",
        /// Identification - Responder.
        IdR = 36 => "IDr",
        /// Certificate.
        Cert = 37 => "CERT",
        /// Certificate Request.
        CertReq = 38 => "CERTREQ",
        /// Authentication.
        Auth = 39 => "AUTH",
        /// Nonce.
        Nonce = 40 => "Ni/Nr",
        /// Notify.
        Notify = 41 => "N",
        /// Delete.
        Delete = 42 => "D",
        /// Vendor ID.
        VendorId = 43 => "V",
        /// Traffic Selector - Initiator.
        TsI = 44 => "TSi",
        /// Traffic Selector - Responder.
        TsR = 45 => "TSr",
        /// Encrypted and Authenticated.
        Encrypted = 46 => "SK",
        /// Configuration.
        Config = 47 => "CP",
        /// Extensible Authentication.
        Eap = 48 => "EAP",
        /// Encrypted and Authenticated Fragment (RFC 7383).
        EncryptedFragment = 53 => "SKF",
    }
}

v2_enum! {
    /// Security Protocol Identifier of a proposal, notify or delete (RFC 7296 3.3.1).
    pub enum ProtocolId(u8) {
        /// None: notifications about no particular SA.
        None = 0 => "NONE",
        /// The IKE SA.
        Ike = 1 => "IKE",
        /// AH.
        Ah = 2 => "AH",
        /// ESP.
        Esp = 3 => "ESP",
    }
}

v2_enum! {
    /// Transform type (RFC 7296 3.3.2).
    pub enum TransformType(u8) {
        /// Encryption algorithm (IKE, ESP).
        Encr = 1 => "ENCR",
        /// Pseudorandom function (IKE).
        Prf = 2 => "PRF",
        /// Integrity algorithm (IKE, AH, optional in ESP).
        Integ = 3 => "INTEG",
        /// Diffie-Hellman group / key exchange method (IKE, optional in AH and ESP).
        Dh = 4 => "D-H",
        /// Extended sequence numbers (AH, ESP).
        Esn = 5 => "ESN",
    }
}

v2_enum! {
    /// Transform IDs of transform type 1, encryption (RFC 7296 3.3.2 and later RFCs).
    pub enum EncrId(u16) {
        /// DES with 64-bit IV.
        DesIv64 = 1 => "ENCR_DES_IV64",
        /// DES.
        Des = 2 => "ENCR_DES",
        /// Triple DES.
        TripleDes = 3 => "ENCR_3DES",
        /// RC5.
        Rc5 = 4 => "ENCR_RC5",
        /// IDEA.
        Idea = 5 => "ENCR_IDEA",
        /// CAST.
        Cast = 6 => "ENCR_CAST",
        /// Blowfish.
        Blowfish = 7 => "ENCR_BLOWFISH",
        /// 3IDEA.
        TripleIdea = 8 => "ENCR_3IDEA",
        /// DES with 32-bit IV.
        DesIv32 = 9 => "ENCR_DES_IV32",
        /// NULL (ESP only).
        Null = 11 => "ENCR_NULL",
        /// AES-CBC (Key Length attribute required).
        AesCbc = 12 => "ENCR_AES_CBC",
        /// AES-CTR (RFC 5930).
        AesCtr = 13 => "ENCR_AES_CTR",
        /// AES-CCM with an 8-octet ICV (RFC 5282).
        AesCcm8 = 14 => "ENCR_AES_CCM_8",
        /// AES-CCM with a 12-octet ICV.
        AesCcm12 = 15 => "ENCR_AES_CCM_12",
        /// AES-CCM with a 16-octet ICV.
        AesCcm16 = 16 => "ENCR_AES_CCM_16",
        /// AES-GCM with an 8-octet ICV (RFC 5282).
        AesGcm8 = 18 => "ENCR_AES_GCM_8",
        /// AES-GCM with a 12-octet ICV.
        AesGcm12 = 19 => "ENCR_AES_GCM_12",
        /// AES-GCM with a 16-octet ICV.
        AesGcm16 = 20 => "ENCR_AES_GCM_16",
        /// AES-GMAC, authentication only (ESP, RFC 4543).
        NullAuthAesGmac = 21 => "ENCR_NULL_AUTH_AES_GMAC",
        /// Camellia-CBC (RFC 5529).
        CamelliaCbc = 23 => "ENCR_CAMELLIA_CBC",
        /// ChaCha20-Poly1305 (RFC 7634).
        Chacha20Poly1305 = 28 => "ENCR_CHACHA20_POLY1305",
    }
}

v2_enum! {
    /// Transform IDs of transform type 2, pseudorandom function.
    pub enum PrfId(u16) {
        /// HMAC-MD5.
        HmacMd5 = 1 => "PRF_HMAC_MD5",
        /// HMAC-SHA1.
        HmacSha1 = 2 => "PRF_HMAC_SHA1",
        /// HMAC-TIGER.
        HmacTiger = 3 => "PRF_HMAC_TIGER",
        /// AES128-XCBC (RFC 4434).
        Aes128Xcbc = 4 => "PRF_AES128_XCBC",
        /// HMAC-SHA2-256 (RFC 4868).
        HmacSha2_256 = 5 => "PRF_HMAC_SHA2_256",
        /// HMAC-SHA2-384.
        HmacSha2_384 = 6 => "PRF_HMAC_SHA2_384",
        /// HMAC-SHA2-512.
        HmacSha2_512 = 7 => "PRF_HMAC_SHA2_512",
        /// AES128-CMAC (RFC 4615).
        Aes128Cmac = 8 => "PRF_AES128_CMAC",
    }
}

v2_enum! {
    /// Transform IDs of transform type 3, integrity.
    pub enum IntegId(u16) {
        /// None (with AEAD ciphers).
        None = 0 => "NONE",
        /// HMAC-MD5-96.
        HmacMd5_96 = 1 => "AUTH_HMAC_MD5_96",
        /// HMAC-SHA1-96.
        HmacSha1_96 = 2 => "AUTH_HMAC_SHA1_96",
        /// DES-MAC.
        DesMac = 3 => "AUTH_DES_MAC",
        /// KPDK-MD5.
        KpdkMd5 = 4 => "AUTH_KPDK_MD5",
        /// AES-XCBC-96.
        AesXcbc96 = 5 => "AUTH_AES_XCBC_96",
        /// HMAC-MD5-128.
        HmacMd5_128 = 6 => "AUTH_HMAC_MD5_128",
        /// HMAC-SHA1-160.
        HmacSha1_160 = 7 => "AUTH_HMAC_SHA1_160",
        /// AES-CMAC-96.
        AesCmac96 = 8 => "AUTH_AES_CMAC_96",
        /// AES-128-GMAC.
        Aes128Gmac = 9 => "AUTH_AES_128_GMAC",
        /// AES-192-GMAC.
        Aes192Gmac = 10 => "AUTH_AES_192_GMAC",
        /// AES-256-GMAC.
        Aes256Gmac = 11 => "AUTH_AES_256_GMAC",
        /// HMAC-SHA2-256-128 (RFC 4868).
        HmacSha2_256_128 = 12 => "AUTH_HMAC_SHA2_256_128",
        /// HMAC-SHA2-384-192.
        HmacSha2_384_192 = 13 => "AUTH_HMAC_SHA2_384_192",
        /// HMAC-SHA2-512-256.
        HmacSha2_512_256 = 14 => "AUTH_HMAC_SHA2_512_256",
    }
}

v2_enum! {
    /// Transform IDs of transform type 4, Diffie-Hellman group (also the group of a KE payload
    /// and of INVALID_KE_PAYLOAD notification data).
    pub enum DhGroup(u16) {
        /// None (no PFS).
        None = 0 => "NONE",
        /// 768-bit MODP.
        Modp768 = 1 => "MODP_768",
        /// 1024-bit MODP.
        Modp1024 = 2 => "MODP_1024",
        /// 1536-bit MODP (RFC 3526).
        Modp1536 = 5 => "MODP_1536",
        /// 2048-bit MODP.
        Modp2048 = 14 => "MODP_2048",
        /// 3072-bit MODP.
        Modp3072 = 15 => "MODP_3072",
        /// 4096-bit MODP.
        Modp4096 = 16 => "MODP_4096",
        /// 6144-bit MODP.
        Modp6144 = 17 => "MODP_6144",
        /// 8192-bit MODP.
        Modp8192 = 18 => "MODP_8192",
        /// 256-bit random ECP (RFC 5903).
        Ecp256 = 19 => "ECP_256",
        /// 384-bit random ECP.
        Ecp384 = 20 => "ECP_384",
        /// 521-bit random ECP.
        Ecp521 = 21 => "ECP_521",
        /// 1024-bit MODP with 160-bit prime order subgroup (RFC 5114).
        Modp1024s160 = 22 => "MODP_1024_160",
        /// 2048-bit MODP with 224-bit prime order subgroup.
        Modp2048s224 = 23 => "MODP_2048_224",
        /// 2048-bit MODP with 256-bit prime order subgroup.
        Modp2048s256 = 24 => "MODP_2048_256",
        /// 192-bit random ECP.
        Ecp192 = 25 => "ECP_192",
        /// 224-bit random ECP.
        Ecp224 = 26 => "ECP_224",
        /// brainpoolP224r1 (RFC 6954).
        Brainpool224 = 27 => "ECP_224_BP",
        /// brainpoolP256r1.
        Brainpool256 = 28 => "ECP_256_BP",
        /// brainpoolP384r1.
        Brainpool384 = 29 => "ECP_384_BP",
        /// brainpoolP512r1.
        Brainpool512 = 30 => "ECP_512_BP",
        /// Curve25519 (RFC 8031).
        Curve25519 = 31 => "CURVE_25519",
        /// Curve448 (RFC 8031).
        Curve448 = 32 => "CURVE_448",
    }
}

v2_enum! {
    /// Transform IDs of transform type 5, extended sequence numbers.
    pub enum EsnId(u16) {
        /// 32-bit sequence numbers.
        NoEsn = 0 => "NO_ESN",
        /// 64-bit extended sequence numbers.
        Esn = 1 => "ESN",
    }
}

v2_enum! {
    /// Transform attribute type (RFC 7296 3.3.5).
    pub enum TransformAttrType(u16) {
        /// Key length in bits, always in TV form.
        KeyLength = 14 => "KEY_LENGTH",
    }
}

v2_enum! {
    /// Identification type (RFC 7296 3.5, RFC 7619).
    pub enum IdType(u8) {
        /// A single IPv4 address.
        Ipv4Addr = 1 => "ID_IPV4_ADDR",
        /// A fully-qualified domain name, no terminator.
        Fqdn = 2 => "ID_FQDN",
        /// An RFC 822 e-mail address (`user@domain`).
        Rfc822Addr = 3 => "ID_RFC822_ADDR",
        /// A single IPv6 address.
        Ipv6Addr = 5 => "ID_IPV6_ADDR",
        /// DER encoding of an ASN.1 X.500 Distinguished Name.
        DerAsn1Dn = 9 => "ID_DER_ASN1_DN",
        /// DER encoding of an ASN.1 X.509 GeneralName.
        DerAsn1Gn = 10 => "ID_DER_ASN1_GN",
        /// An opaque octet stream.
        KeyId = 11 => "ID_KEY_ID",
        /// Fibre Channel name (RFC 4595).
        FcName = 12 => "ID_FC_NAME",
        /// The NULL identity (RFC 7619).
        Null = 13 => "ID_NULL",
    }
}

v2_enum! {
    /// Certificate encoding of CERT and CERTREQ payloads (RFC 7296 3.6, RFC 7670).
    pub enum CertEncoding(u8) {
        /// PKCS #7 wrapped X.509 certificate.
        Pkcs7 = 1 => "PKCS7_WRAPPED_X509",
        /// PGP certificate.
        Pgp = 2 => "PGP",
        /// DNS signed key.
        DnsSignedKey = 3 => "DNS_SIGNED_KEY",
        /// X.509 certificate - signature.
        X509Signature = 4 => "X509_CERT_SIG",
        /// Kerberos token.
        Kerberos = 6 => "KERBEROS_TOKEN",
        /// Certificate revocation list.
        Crl = 7 => "CRL",
        /// Authority revocation list.
        Arl = 8 => "ARL",
        /// SPKI certificate.
        Spki = 9 => "SPKI",
        /// X.509 certificate - attribute.
        X509Attribute = 10 => "X509_CERT_ATTR",
        /// Raw RSA key (deprecated).
        RawRsaKey = 11 => "RAW_RSA_KEY",
        /// Hash and URL of an X.509 certificate.
        HashUrlX509Cert = 12 => "HASH_URL_X509_CERT",
        /// Hash and URL of an X.509 bundle.
        HashUrlX509Bundle = 13 => "HASH_URL_X509_BUNDLE",
        /// OCSP content (RFC 4806).
        OcspContent = 14 => "OCSP_CONTENT",
        /// Raw public key (RFC 7670).
        RawPublicKey = 15 => "RAW_PUBLIC_KEY",
    }
}

v2_enum! {
    /// Authentication method of an AUTH payload (RFC 7296 3.8, RFC 7427, RFC 7619).
    pub enum AuthMethod(u8) {
        /// RSA digital signature with SHA-1 (PKCS#1 v1.5).
        RsaSig = 1 => "RSA_DIGITAL_SIGNATURE",
        /// Shared key message integrity code (PSK).
        SharedKeyMic = 2 => "SHARED_KEY_MIC",
        /// DSS digital signature.
        DssSig = 3 => "DSS_DIGITAL_SIGNATURE",
        /// ECDSA with SHA-256 on P-256 (RFC 4754).
        EcdsaSha256P256 = 9 => "ECDSA_SHA256_P256",
        /// ECDSA with SHA-384 on P-384.
        EcdsaSha384P384 = 10 => "ECDSA_SHA384_P384",
        /// ECDSA with SHA-512 on P-521.
        EcdsaSha512P521 = 11 => "ECDSA_SHA512_P521",
        /// Generic Secure Password Authentication Method (RFC 6467).
        Gspam = 12 => "GSPAM",
        /// NULL authentication (RFC 7619).
        Null = 13 => "NULL_AUTH",
        /// Digital Signature with an AlgorithmIdentifier (RFC 7427).
        DigitalSignature = 14 => "DIGITAL_SIGNATURE",
    }
}

v2_enum! {
    /// Traffic selector type (RFC 7296 3.13.1, RFC 4595, RFC 9478).
    pub enum TsType(u8) {
        /// IPv4 address range with protocol and ports.
        Ipv4AddrRange = 7 => "TS_IPV4_ADDR_RANGE",
        /// IPv6 address range with protocol and ports.
        Ipv6AddrRange = 8 => "TS_IPV6_ADDR_RANGE",
        /// Fibre Channel address range.
        FcAddrRange = 9 => "TS_FC_ADDR_RANGE",
        /// Security label.
        SecLabel = 10 => "TS_SECLABEL",
    }
}

v2_enum! {
    /// Configuration payload type (RFC 7296 3.15).
    pub enum CfgType(u8) {
        /// Request.
        Request = 1 => "CFG_REQUEST",
        /// Reply.
        Reply = 2 => "CFG_REPLY",
        /// Set.
        Set = 3 => "CFG_SET",
        /// Acknowledge.
        Ack = 4 => "CFG_ACK",
    }
}

v2_enum! {
    /// Configuration attribute type (RFC 7296 3.15.1).
    pub enum ConfigAttrType(u16) {
        /// Internal IPv4 address.
        InternalIp4Address = 1 => "INTERNAL_IP4_ADDRESS",
        /// Internal IPv4 netmask.
        InternalIp4Netmask = 2 => "INTERNAL_IP4_NETMASK",
        /// Internal IPv4 DNS server.
        InternalIp4Dns = 3 => "INTERNAL_IP4_DNS",
        /// Internal IPv4 NetBIOS name server.
        InternalIp4Nbns = 4 => "INTERNAL_IP4_NBNS",
        /// Internal IPv4 DHCP server.
        InternalIp4Dhcp = 6 => "INTERNAL_IP4_DHCP",
        /// Application version.
        ApplicationVersion = 7 => "APPLICATION_VERSION",
        /// Internal IPv6 address.
        InternalIp6Address = 8 => "INTERNAL_IP6_ADDRESS",
        /// Internal IPv6 DNS server.
        InternalIp6Dns = 10 => "INTERNAL_IP6_DNS",
        /// Internal IPv6 DHCP server.
        InternalIp6Dhcp = 12 => "INTERNAL_IP6_DHCP",
        /// Internal IPv4 subnet.
        InternalIp4Subnet = 13 => "INTERNAL_IP4_SUBNET",
        /// Supported attributes.
        SupportedAttributes = 14 => "SUPPORTED_ATTRIBUTES",
        /// Internal IPv6 subnet.
        InternalIp6Subnet = 15 => "INTERNAL_IP6_SUBNET",
    }
}

v2_enum! {
    /// Hash algorithm of the SIGNATURE_HASH_ALGORITHMS notification (RFC 7427 4, RFC 8420).
    pub enum HashAlgorithm(u16) {
        /// SHA-1.
        Sha1 = 1 => "SHA1",
        /// SHA2-256.
        Sha2_256 = 2 => "SHA2_256",
        /// SHA2-384.
        Sha2_384 = 3 => "SHA2_384",
        /// SHA2-512.
        Sha2_512 = 4 => "SHA2_512",
        /// Identity (for EdDSA, RFC 8420).
        Identity = 5 => "IDENTITY",
    }
}

v2_enum! {
    /// Notify message type (RFC 7296 3.10.1 and the IANA registry). Types below 16384 are
    /// errors, the others status notifications ([`NotifyType::is_error`]).
    pub enum NotifyType(u16) {
        /// An unrecognised payload with the critical bit set; data: its one-octet type.
        UnsupportedCriticalPayload = 1 => "UNSUPPORTED_CRITICAL_PAYLOAD",
        /// A message for an IKE SA we do not know.
        InvalidIkeSpi = 4 => "INVALID_IKE_SPI",
        /// The major version is above ours; sent with our highest version.
        InvalidMajorVersion = 5 => "INVALID_MAJOR_VERSION",
        /// Malformed or unexpected message.
        InvalidSyntax = 7 => "INVALID_SYNTAX",
        /// Message ID outside the window.
        InvalidMessageId = 9 => "INVALID_MESSAGE_ID",
        /// ESP/AH packet for an SPI we do not know.
        InvalidSpi = 11 => "INVALID_SPI",
        /// None of the proposals is acceptable.
        NoProposalChosen = 14 => "NO_PROPOSAL_CHOSEN",
        /// Wrong DH group in KE; data: the 2-octet group wanted.
        InvalidKePayload = 17 => "INVALID_KE_PAYLOAD",
        /// AUTH did not verify (or the peer is not allowed).
        AuthenticationFailed = 24 => "AUTHENTICATION_FAILED",
        /// Only one pair of traffic selectors acceptable.
        SinglePairRequired = 34 => "SINGLE_PAIR_REQUIRED",
        /// No more Child SAs accepted on this IKE SA.
        NoAdditionalSas = 35 => "NO_ADDITIONAL_SAS",
        /// No internal address can be assigned.
        InternalAddressFailure = 36 => "INTERNAL_ADDRESS_FAILURE",
        /// A CP payload was required and not received.
        FailedCpRequired = 37 => "FAILED_CP_REQUIRED",
        /// Traffic selectors not acceptable.
        TsUnacceptable = 38 => "TS_UNACCEPTABLE",
        /// An ESP/AH packet did not match the SA's selectors.
        InvalidSelectors = 39 => "INVALID_SELECTORS",
        /// MOBIKE: new addresses not acceptable (RFC 4555).
        UnacceptableAddresses = 40 => "UNACCEPTABLE_ADDRESSES",
        /// MOBIKE: NAT detected where not expected.
        UnexpectedNatDetected = 41 => "UNEXPECTED_NAT_DETECTED",
        /// Mobile IPv6 home address (RFC 5026).
        UseAssignedHoa = 42 => "USE_ASSIGNED_HoA",
        /// Try again later (e.g. rekey collision, RFC 7296 2.25).
        TemporaryFailure = 43 => "TEMPORARY_FAILURE",
        /// The Child SA to rekey does not exist.
        ChildSaNotFound = 44 => "CHILD_SA_NOT_FOUND",
        /// First status type: the peer restarted, drop old IKE SAs with it.
        InitialContact = 16384 => "INITIAL_CONTACT",
        /// Number of requests the sender can have in flight.
        SetWindowSize = 16385 => "SET_WINDOW_SIZE",
        /// Only a subset of the traffic selectors was accepted.
        AdditionalTsPossible = 16386 => "ADDITIONAL_TS_POSSIBLE",
        /// IPComp supported; data: CPI and transform ID.
        IpcompSupported = 16387 => "IPCOMP_SUPPORTED",
        /// NAT detection: hash of SPIs, source address and port.
        NatDetectionSourceIp = 16388 => "NAT_DETECTION_SOURCE_IP",
        /// NAT detection: hash of SPIs, destination address and port.
        NatDetectionDestinationIp = 16389 => "NAT_DETECTION_DESTINATION_IP",
        /// Stateless cookie (RFC 7296 2.6); data: 1 to 64 octets.
        Cookie = 16390 => "COOKIE",
        /// Transport mode requested / accepted.
        UseTransportMode = 16391 => "USE_TRANSPORT_MODE",
        /// Hash and URL certificate lookup supported.
        HttpCertLookupSupported = 16392 => "HTTP_CERT_LOOKUP_SUPPORTED",
        /// The Child SA (protocol + SPI) that this CREATE_CHILD_SA rekeys.
        RekeySa = 16393 => "REKEY_SA",
        /// The sender does not accept TFC padding.
        EspTfcPaddingNotSupported = 16394 => "ESP_TFC_PADDING_NOT_SUPPORTED",
        /// Non-first IP fragments also go through the SA.
        NonFirstFragmentsAlso = 16395 => "NON_FIRST_FRAGMENTS_ALSO",
        /// MOBIKE supported (RFC 4555).
        MobikeSupported = 16396 => "MOBIKE_SUPPORTED",
        /// MOBIKE: additional IPv4 address.
        AdditionalIp4Address = 16397 => "ADDITIONAL_IP4_ADDRESS",
        /// MOBIKE: additional IPv6 address.
        AdditionalIp6Address = 16398 => "ADDITIONAL_IP6_ADDRESS",
        /// MOBIKE: no additional addresses.
        NoAdditionalAddresses = 16399 => "NO_ADDITIONAL_ADDRESSES",
        /// MOBIKE: update the SA addresses.
        UpdateSaAddresses = 16400 => "UPDATE_SA_ADDRESSES",
        /// MOBIKE: return routability cookie.
        Cookie2 = 16401 => "COOKIE2",
        /// MOBIKE: NATs not allowed.
        NoNatsAllowed = 16402 => "NO_NATS_ALLOWED",
        /// Re-authenticate within this many seconds (RFC 4478); data: 4 octets.
        AuthLifetime = 16403 => "AUTH_LIFETIME",
        /// Multiple authentication rounds supported (RFC 4739).
        MultipleAuthSupported = 16404 => "MULTIPLE_AUTH_SUPPORTED",
        /// Another authentication round follows (RFC 4739).
        AnotherAuthFollows = 16405 => "ANOTHER_AUTH_FOLLOWS",
        /// Redirect supported (RFC 5685).
        RedirectSupported = 16406 => "REDIRECT_SUPPORTED",
        /// Redirect to another gateway.
        Redirect = 16407 => "REDIRECT",
        /// Redirected from another gateway.
        RedirectedFrom = 16408 => "REDIRECTED_FROM",
        /// Session resumption ticket lifetime (RFC 5723).
        TicketLtOpaque = 16409 => "TICKET_LT_OPAQUE",
        /// Session resumption ticket request.
        TicketRequest = 16410 => "TICKET_REQUEST",
        /// Session resumption ticket acknowledged.
        TicketAck = 16411 => "TICKET_ACK",
        /// Session resumption ticket refused.
        TicketNack = 16412 => "TICKET_NACK",
        /// Session resumption ticket.
        TicketOpaque = 16413 => "TICKET_OPAQUE",
        /// Link ID (RFC 5739).
        LinkId = 16414 => "LINK_ID",
        /// Use wrapped ESP (RFC 5840).
        UseWespMode = 16415 => "USE_WESP_MODE",
        /// ROHC supported (RFC 5857).
        RohcSupported = 16416 => "ROHC_SUPPORTED",
        /// EAP-only authentication (RFC 5998).
        EapOnlyAuthentication = 16417 => "EAP_ONLY_AUTHENTICATION",
        /// Childless IKE SA initiation supported (RFC 6023).
        ChildlessIkev2Supported = 16418 => "CHILDLESS_IKEV2_SUPPORTED",
        /// Quick crash detection (RFC 6290).
        QuickCrashDetection = 16419 => "QUICK_CRASH_DETECTION",
        /// Message ID synchronisation supported (RFC 6311).
        Ikev2MessageIdSyncSupported = 16420 => "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
        /// Replay counter synchronisation supported (RFC 6311).
        IpsecReplayCounterSyncSupported = 16421 => "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED",
        /// Message ID synchronisation (RFC 6311).
        Ikev2MessageIdSync = 16422 => "IKEV2_MESSAGE_ID_SYNC",
        /// Replay counter synchronisation (RFC 6311).
        IpsecReplayCounterSync = 16423 => "IPSEC_REPLAY_COUNTER_SYNC",
        /// Secure password methods (RFC 6467).
        SecurePasswordMethods = 16424 => "SECURE_PASSWORD_METHODS",
        /// PSK persistence (RFC 6631).
        PskPersist = 16425 => "PSK_PERSIST",
        /// PSK confirmation (RFC 6631).
        PskConfirm = 16426 => "PSK_CONFIRM",
        /// EAP re-authentication supported (RFC 6867).
        ErxSupported = 16427 => "ERX_SUPPORTED",
        /// IFOM capability (3GPP).
        IfomCapability = 16428 => "IFOM_CAPABILITY",
        /// Sender request ID (G-IKEv2 draft).
        SenderRequestId = 16429 => "SENDER_REQUEST_ID",
        /// IKE fragmentation supported (RFC 7383).
        Ikev2FragmentationSupported = 16430 => "IKEV2_FRAGMENTATION_SUPPORTED",
        /// Hash algorithms supported for Digital Signature authentication (RFC 7427).
        SignatureHashAlgorithms = 16431 => "SIGNATURE_HASH_ALGORITHMS",
        /// IKE SA cloning supported (RFC 7791).
        CloneIkeSaSupported = 16432 => "CLONE_IKE_SA_SUPPORTED",
        /// Clone this IKE SA (RFC 7791).
        CloneIkeSa = 16433 => "CLONE_IKE_SA",
        /// Client puzzle (RFC 8019).
        Puzzle = 16434 => "PUZZLE",
        /// Use a post-quantum preshared key (RFC 8784).
        UsePpk = 16435 => "USE_PPK",
        /// PPK identity (RFC 8784).
        PpkIdentity = 16436 => "PPK_IDENTITY",
        /// AUTH without PPK follows (RFC 8784).
        NoPpkAuth = 16437 => "NO_PPK_AUTH",
        /// IKE_INTERMEDIATE supported (RFC 9242).
        IntermediateExchangeSupported = 16438 => "INTERMEDIATE_EXCHANGE_SUPPORTED",
        /// IPv4 allowed (RFC 8983).
        Ip4Allowed = 16439 => "IP4_ALLOWED",
        /// IPv6 allowed (RFC 8983).
        Ip6Allowed = 16440 => "IP6_ALLOWED",
        /// Additional key exchange (RFC 9370).
        AdditionalKeyExchange = 16441 => "ADDITIONAL_KEY_EXCHANGE",
        /// Use IP-TFS aggregation and fragmentation (RFC 9347).
        UseAggfrag = 16442 => "USE_AGGFRAG",
    }
}

impl NotifyType {
    /// True for error types (below 16384, RFC 7296 3.10.1).
    pub fn is_error(self) -> bool {
        self.value() < 16384
    }
}

impl ExchangeType {
    /// True for the exchanges whose messages travel in the clear (IKE_SA_INIT and
    /// IKE_SESSION_RESUME); every other exchange is protected by the SK payload.
    pub fn is_cleartext(self) -> bool {
        matches!(
            self,
            ExchangeType::IkeSaInit | ExchangeType::IkeSessionResume
        )
    }
}
