//! IKEv1 proposals: the ISAKMP and IPsec DOI SA payloads built from the shared algorithm
//! vocabulary ([`crate::pluto::proposal`]) and chosen from a peer's offer (RFC 2409 5,
//! RFC 2407 4.5), the mapping of that vocabulary to IKEv1 wire IDs (Oakley attributes, ESP and
//! AH transform IDs, AUTH_ALGORITHM values), the Quick Mode policy of a connection, and the
//! algorithm lines of `--status`.
//!
//! The selection functions never panic and report, per rejected transform, why (for the log).

use crate::crypto::{AuthAlg, EncAlg};
use crate::pluto::connection::Connection;
use crate::pluto::crypto::{DhGroup, Prf};
use crate::pluto::isakmp::{
    AhTransformId, Attribute, AuthAlgorithm, Doi, EncapsulationMode, EspTransformId, IkeAttrType,
    IpcompTransformId, IpsecAttrType, NotifyType, OakleyAuthMethod, OakleyEncAlg, OakleyGroup,
    OakleyHash, OakleyLifeType, Proposal, ProtocolId, SaLifeType, SaPayload, Transform,
    SIT_IDENTITY_ONLY,
};
use crate::pluto::proposal::{AuthKind, EspAlg, IkeAlg};
use crate::pluto::sa::Spis;

/// The Oakley attribute value of an authentication method.
pub fn auth_oakley(a: AuthKind) -> u16 {
    match a {
        AuthKind::Psk => OakleyAuthMethod::PreSharedKey.value(),
        AuthKind::Rsa => OakleyAuthMethod::RsaSig.value(),
    }
}

/// The Oakley encryption algorithm and key length attribute (bits) of a cipher; `None` for
/// the ones IKEv1 does not negotiate here (AEADs, DES, NULL).
pub fn oakley_enc(c: EncAlg) -> Option<(u16, Option<u16>)> {
    Some(match c {
        EncAlg::TripleDesCbc => (OakleyEncAlg::TripleDesCbc.value(), None),
        EncAlg::AesCbc128 => (OakleyEncAlg::AesCbc.value(), Some(128)),
        EncAlg::AesCbc192 => (OakleyEncAlg::AesCbc.value(), Some(192)),
        EncAlg::AesCbc256 => (OakleyEncAlg::AesCbc.value(), Some(256)),
        _ => return None,
    })
}

/// The cipher for an Oakley encryption algorithm attribute value and optional key length
/// attribute (bits): 3DES (5) takes none or 192; AES (7) takes 128/192/256, and 128 when
/// absent (as strongSwan does).
pub fn enc_from_oakley(enc_alg: u16, key_bits: Option<u16>) -> Option<EncAlg> {
    match (enc_alg, key_bits) {
        (5, None | Some(192)) => Some(EncAlg::TripleDesCbc),
        (7, None | Some(128)) => Some(EncAlg::AesCbc128),
        (7, Some(192)) => Some(EncAlg::AesCbc192),
        (7, Some(256)) => Some(EncAlg::AesCbc256),
        _ => None,
    }
}

/// The Oakley hash attribute value of a PRF (IKEv1 uses the HMAC of the hash).
pub fn oakley_hash(p: Prf) -> u16 {
    match p {
        Prf::HmacMd5 => OakleyHash::Md5.value(),
        Prf::HmacSha1 => OakleyHash::Sha1.value(),
        Prf::HmacSha256 => OakleyHash::Sha2_256.value(),
        Prf::HmacSha384 => OakleyHash::Sha2_384.value(),
        Prf::HmacSha512 => OakleyHash::Sha2_512.value(),
    }
}

/// The phase-1 SA payload offering `algs` × `auths` with lifetime `life` seconds.
pub fn ike_sa_payload(algs: &[IkeAlg], auths: &[AuthKind], life: u64) -> SaPayload {
    let mut transforms = Vec::new();
    for a in algs {
        for &auth in auths {
            let Some((enc, keylen)) = oakley_enc(a.enc) else {
                continue;
            };
            let mut attrs = vec![Attribute::basic(
                IkeAttrType::EncryptionAlgorithm.value(),
                enc,
            )];
            attrs.push(Attribute::basic(
                IkeAttrType::HashAlgorithm.value(),
                oakley_hash(a.prf),
            ));
            attrs.push(Attribute::basic(
                IkeAttrType::AuthenticationMethod.value(),
                auth_oakley(auth),
            ));
            attrs.push(Attribute::basic(
                IkeAttrType::GroupDescription.value(),
                a.group.id(),
            ));
            attrs.push(Attribute::basic(
                IkeAttrType::LifeType.value(),
                OakleyLifeType::Seconds.value(),
            ));
            attrs.push(Attribute::number(
                IkeAttrType::LifeDuration.value(),
                u32::try_from(life).unwrap_or(u32::MAX),
            ));
            if let Some(k) = keylen {
                attrs.push(Attribute::basic(IkeAttrType::KeyLength.value(), k));
            }
            if transforms.len() < 255 {
                transforms.push(Transform {
                    number: transforms.len() as u8,
                    transform_id: 1,
                    attributes: attrs,
                });
            }
        }
    }
    SaPayload::ipsec(vec![Proposal {
        number: 1,
        protocol: ProtocolId::Isakmp,
        spi: Vec::new(),
        transforms,
    }])
}

/// A phase-1 transform as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeChoice {
    /// Algorithms.
    pub alg: IkeAlg,
    /// Authentication method.
    pub auth: AuthKind,
    /// Proposed lifetime in seconds (None: not given, i.e. the 8 h default of RFC 2407).
    pub life: Option<u64>,
    /// The proposal number and transform as received (echoed by the responder).
    pub proposal_number: u8,
    /// The transform as received.
    pub transform: Transform,
}

fn parse_ike_transform(t: &Transform) -> Result<(IkeAlg, AuthKind, Option<u64>), String> {
    if t.transform_id != 1 {
        return Err(format!("transform ID {} is not KEY_IKE", t.transform_id));
    }
    let (mut enc, mut keylen, mut hash, mut auth, mut group) = (None, None, None, None, None);
    let mut life = None;
    let mut life_type: Option<u16> = None;
    for a in &t.attributes {
        let v = a.as_u64();
        let basic = match a.value {
            crate::pluto::isakmp::AttrValue::Basic(b) => Some(b),
            _ => None,
        };
        match IkeAttrType::from(a.attr_type) {
            IkeAttrType::EncryptionAlgorithm => enc = basic,
            IkeAttrType::KeyLength => keylen = basic,
            IkeAttrType::HashAlgorithm => hash = basic,
            IkeAttrType::AuthenticationMethod => auth = basic,
            IkeAttrType::GroupDescription => group = basic,
            IkeAttrType::LifeType => life_type = basic,
            IkeAttrType::LifeDuration => {
                let d = v.ok_or("bad OAKLEY_LIFE_DURATION")?;
                if life_type == Some(OakleyLifeType::Seconds.value()) {
                    // 0 s is "no limit" (strongSwan sends it with reauth_time=0): treat it as
                    // not given, or the SA would expire the moment it is established.
                    life = (d > 0).then_some(d);
                } else if life_type != Some(OakleyLifeType::Kilobytes.value()) {
                    return Err("OAKLEY_LIFE_DURATION without OAKLEY_LIFE_TYPE".into());
                }
            }
            other => return Err(format!("unsupported attribute {other}")),
        }
    }
    let enc = enc.ok_or("missing OAKLEY_ENCRYPTION_ALGORITHM")?;
    let cipher = enc_from_oakley(enc, keylen).ok_or_else(|| {
        format!(
            "{}{} not acceptable",
            OakleyEncAlg::from(enc),
            keylen.map(|k| format!(" ({k} bits)")).unwrap_or_default()
        )
    })?;
    let hash = hash.ok_or("missing OAKLEY_HASH_ALGORITHM")?;
    let prf = match hash {
        1 | 2 | 4 => Prf::from_oakley_hash(hash),
        _ => None,
    }
    .ok_or_else(|| format!("{} not acceptable", OakleyHash::from(hash)))?;
    let group = group.ok_or("missing OAKLEY_GROUP_DESCRIPTION")?;
    let group = DhGroup::from_id(group)
        .filter(|g| g.is_ikev1())
        .ok_or_else(|| format!("{} not acceptable", OakleyGroup::from(group)))?;
    let auth = match auth.ok_or("missing OAKLEY_AUTHENTICATION_METHOD")? {
        1 => AuthKind::Psk,
        3 => AuthKind::Rsa,
        other => return Err(format!("{} not acceptable", OakleyAuthMethod::from(other))),
    };
    Ok((IkeAlg::new(cipher, prf, group), auth, life))
}

/// Chooses the first acceptable phase-1 transform in the peer's order. `accept` is our list,
/// `auths` the methods our policy allows. Each rejection reason goes to `why`.
pub fn select_ike(
    sa: &SaPayload,
    accept: &[IkeAlg],
    auths: &[AuthKind],
    why: &mut Vec<String>,
) -> Result<IkeChoice, NotifyType> {
    if sa.doi != Doi::Ipsec {
        why.push(format!("Unknown/unsupported DOI {}", sa.doi));
        return Err(NotifyType::DoiNotSupported);
    }
    if sa.situation != SIT_IDENTITY_ONLY {
        why.push(format!(
            "unsupported IPsec DOI situation 0x{:x}",
            sa.situation
        ));
        return Err(NotifyType::SituationNotSupported);
    }
    if sa.proposals.len() != 1 {
        why.push(format!(
            "Proposal Payload count {} (only 1 is allowed in Main Mode)",
            sa.proposals.len()
        ));
        return Err(NotifyType::BadProposalSyntax);
    }
    let p = &sa.proposals[0];
    if p.protocol != ProtocolId::Isakmp {
        why.push(format!(
            "unexpected Protocol ID ({}) in proposal",
            p.protocol
        ));
        return Err(NotifyType::InvalidProtocolId);
    }
    for t in &p.transforms {
        match parse_ike_transform(t) {
            Ok((alg, auth, life)) => {
                if !auths.contains(&auth) {
                    why.push(format!(
                        "transform #{}: {} not allowed by our policy",
                        t.number,
                        OakleyAuthMethod::from(auth_oakley(auth))
                    ));
                } else if !accept.contains(&alg) {
                    why.push(format!(
                        "transform #{}: {} not in our ike= list",
                        t.number,
                        alg.name()
                    ));
                } else {
                    return Ok(IkeChoice {
                        alg,
                        auth,
                        life,
                        proposal_number: p.number,
                        transform: t.clone(),
                    });
                }
            }
            Err(e) => why.push(format!("transform #{}: {e}", t.number)),
        }
    }
    why.push("no acceptable Oakley Transform".into());
    Err(NotifyType::NoProposalChosen)
}

/// The responder's phase-1 SA: the chosen transform, echoed.
pub fn ike_response(c: &IkeChoice) -> SaPayload {
    SaPayload::ipsec(vec![Proposal {
        number: c.proposal_number,
        protocol: ProtocolId::Isakmp,
        spi: Vec::new(),
        transforms: vec![c.transform.clone()],
    }])
}

/// Checks that the responder's phase-1 answer picks exactly one transform we offered.
pub fn check_ike_response(
    sa: &SaPayload,
    offered: &[IkeAlg],
    auths: &[AuthKind],
) -> Result<IkeChoice, String> {
    let p = match sa.proposals.as_slice() {
        [p] if p.protocol == ProtocolId::Isakmp => p,
        _ => return Err("responder's SA must hold one ISAKMP proposal".into()),
    };
    let t = match p.transforms.as_slice() {
        [t] => t,
        _ => return Err("responder's proposal must hold exactly one transform".into()),
    };
    let (alg, auth, life) = parse_ike_transform(t)?;
    if !offered.contains(&alg) || !auths.contains(&auth) {
        return Err(format!(
            "responder chose {} which we did not offer",
            alg.name()
        ));
    }
    Ok(IkeChoice {
        alg,
        auth,
        life,
        proposal_number: p.number,
        transform: t.clone(),
    })
}

// ---------------------------------------------------------------------------------------
// Phase 2.

/// What we offer or accept in Quick Mode for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QmPolicy {
    /// ESP suites (with `auth: None` when AH authenticates).
    pub esp: Vec<EspAlg>,
    /// AH algorithms (`auth=ah`), empty for ESP only.
    pub ah: Vec<AuthAlg>,
    /// Offer IPComp.
    pub compress: bool,
    /// Tunnel (true) or transport mode.
    pub tunnel: bool,
    /// PFS group (None = no PFS).
    pub pfs: Option<DhGroup>,
    /// Lifetime in seconds.
    pub life: u64,
}

/// Encapsulation flavour of NAT-T, if any, chosen in phase 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEncapMode {
    /// Plain ESP.
    None,
    /// RFC 3947 values 3/4.
    Rfc,
    /// Draft values 61443/61444.
    Draft,
}

fn mode_value(tunnel: bool, encap: UdpEncapMode) -> u16 {
    let m = match (tunnel, encap) {
        (true, UdpEncapMode::None) => EncapsulationMode::Tunnel,
        (false, UdpEncapMode::None) => EncapsulationMode::Transport,
        (true, UdpEncapMode::Rfc) => EncapsulationMode::UdpTunnel,
        (false, UdpEncapMode::Rfc) => EncapsulationMode::UdpTransport,
        (true, UdpEncapMode::Draft) => EncapsulationMode::UdpTunnelDraft,
        (false, UdpEncapMode::Draft) => EncapsulationMode::UdpTransportDraft,
    };
    m.value()
}

fn esp_ids(enc: EncAlg) -> Option<(u8, Option<u16>)> {
    Some(match enc {
        EncAlg::TripleDesCbc => (EspTransformId::TripleDes.value(), None),
        EncAlg::AesCbc128 => (EspTransformId::Aes.value(), Some(128)),
        EncAlg::AesCbc192 => (EspTransformId::Aes.value(), Some(192)),
        EncAlg::AesCbc256 => (EspTransformId::Aes.value(), Some(256)),
        EncAlg::AesGcm16_128 => (EspTransformId::AesGcm16.value(), Some(128)),
        EncAlg::AesGcm16_256 => (EspTransformId::AesGcm16.value(), Some(256)),
        // ChaCha20-Poly1305 has an IKEv2 transform ID only (RFC 7634); parse_esp refuses it.
        EncAlg::ChaCha20Poly1305 | EncAlg::NullEnc | EncAlg::Des => return None,
    })
}

/// The IPsec DOI AUTH_ALGORITHM value.
pub fn auth_attr(a: AuthAlg) -> u16 {
    match a {
        AuthAlg::HmacMd5_96 => AuthAlgorithm::HmacMd5.value(),
        AuthAlg::HmacSha1_96 => AuthAlgorithm::HmacSha1.value(),
        AuthAlg::HmacSha2_256_128 => AuthAlgorithm::HmacSha2_256.value(),
        AuthAlg::HmacSha2_384_192 => AuthAlgorithm::HmacSha2_384.value(),
        AuthAlg::HmacSha2_512_256 => AuthAlgorithm::HmacSha2_512.value(),
    }
}

fn auth_from_attr(v: u16) -> Option<AuthAlg> {
    Some(match v {
        1 => AuthAlg::HmacMd5_96,
        2 => AuthAlg::HmacSha1_96,
        5 => AuthAlg::HmacSha2_256_128,
        6 => AuthAlg::HmacSha2_384_192,
        7 => AuthAlg::HmacSha2_512_256,
        _ => return None,
    })
}

fn ah_id(a: AuthAlg) -> u8 {
    match a {
        AuthAlg::HmacMd5_96 => AhTransformId::Md5.value(),
        AuthAlg::HmacSha1_96 => AhTransformId::Sha.value(),
        AuthAlg::HmacSha2_256_128 => AhTransformId::Sha2_256.value(),
        AuthAlg::HmacSha2_384_192 => AhTransformId::Sha2_384.value(),
        AuthAlg::HmacSha2_512_256 => AhTransformId::Sha2_512.value(),
    }
}

fn common_attrs(pol: &QmPolicy, encap: UdpEncapMode) -> Vec<Attribute> {
    let mut v = vec![
        Attribute::basic(
            IpsecAttrType::SaLifeType.value(),
            SaLifeType::Seconds.value(),
        ),
        Attribute::number(
            IpsecAttrType::SaLifeDuration.value(),
            u32::try_from(pol.life).unwrap_or(u32::MAX),
        ),
    ];
    if let Some(g) = pol.pfs {
        v.push(Attribute::basic(
            IpsecAttrType::GroupDescription.value(),
            g.id(),
        ));
    }
    v.push(Attribute::basic(
        IpsecAttrType::EncapsulationMode.value(),
        mode_value(pol.tunnel, encap),
    ));
    v
}

/// The Quick Mode SA payload for `pol` with our SPIs (one proposal number; AH, ESP, IPComp
/// proposals in that order, as Pluto builds them).
pub fn qm_sa_payload(pol: &QmPolicy, spis: &Spis, encap: UdpEncapMode) -> SaPayload {
    let mut proposals = Vec::new();
    let common = common_attrs(pol, encap);
    if let (false, Some(spi)) = (pol.ah.is_empty(), spis.ah) {
        let transforms = pol
            .ah
            .iter()
            .take(255)
            .enumerate()
            .map(|(i, &a)| {
                let mut attrs = common.clone();
                attrs.push(Attribute::basic(
                    IpsecAttrType::AuthAlgorithm.value(),
                    auth_attr(a),
                ));
                Transform {
                    number: i as u8,
                    transform_id: ah_id(a),
                    attributes: attrs,
                }
            })
            .collect();
        proposals.push(Proposal {
            number: 1,
            protocol: ProtocolId::Ah,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        });
    }
    if let Some(spi) = spis.esp {
        let mut transforms = Vec::new();
        for e in &pol.esp {
            let Some((id, keylen)) = esp_ids(e.enc) else {
                continue;
            };
            let mut attrs = common.clone();
            if let Some(a) = e.auth {
                attrs.push(Attribute::basic(
                    IpsecAttrType::AuthAlgorithm.value(),
                    auth_attr(a),
                ));
            }
            if let Some(k) = keylen {
                attrs.push(Attribute::basic(IpsecAttrType::KeyLength.value(), k));
            }
            if transforms.len() < 255 {
                transforms.push(Transform {
                    number: transforms.len() as u8,
                    transform_id: id,
                    attributes: attrs,
                });
            }
        }
        proposals.push(Proposal {
            number: 1,
            protocol: ProtocolId::Esp,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        });
    }
    if let (true, Some(cpi)) = (pol.compress, spis.cpi) {
        proposals.push(Proposal {
            number: 1,
            protocol: ProtocolId::Ipcomp,
            spi: cpi.to_be_bytes().to_vec(),
            transforms: vec![Transform {
                number: 0,
                transform_id: IpcompTransformId::Deflate.value(),
                attributes: common,
            }],
        });
    }
    SaPayload::ipsec(proposals)
}

/// What one Quick Mode negotiation settled on. SPIs are the *peer's*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmChoice {
    /// ESP suite and the peer's SPI.
    pub esp: Option<(EspAlg, u32)>,
    /// AH algorithm and the peer's SPI.
    pub ah: Option<(AuthAlg, u32)>,
    /// The peer's CPI when IPComp was agreed.
    pub cpi: Option<u16>,
    /// Tunnel mode.
    pub tunnel: bool,
    /// UDP-encapsulated mode requested.
    pub udp_encap: bool,
    /// PFS group.
    pub pfs: Option<DhGroup>,
    /// Proposed lifetime (seconds), if any.
    pub life: Option<u64>,
    /// The chosen proposals with the chosen transform each, as received (for the answer).
    pub chosen: Vec<Proposal>,
}

#[derive(Debug, Default)]
struct P2Attrs {
    life: Option<u64>,
    group: Option<u16>,
    mode: Option<u16>,
    auth: Option<u16>,
    keylen: Option<u16>,
}

fn parse_p2_attrs(t: &Transform) -> Result<P2Attrs, String> {
    let mut out = P2Attrs::default();
    let mut life_type = None;
    for a in &t.attributes {
        let basic = match a.value {
            crate::pluto::isakmp::AttrValue::Basic(b) => Some(b),
            _ => None,
        };
        match IpsecAttrType::from(a.attr_type) {
            IpsecAttrType::SaLifeType => life_type = basic,
            IpsecAttrType::SaLifeDuration => {
                let d = a.as_u64().ok_or("bad SA_LIFE_DURATION")?;
                match life_type {
                    // 0 s means "no limit": as if not given (see parse_ike_transform).
                    Some(1) if d == 0 => {}
                    Some(1) => out.life = Some(out.life.map_or(d, |l: u64| l.min(d))),
                    Some(2) => {}
                    _ => return Err("SA_LIFE_DURATION without SA_LIFE_TYPE".into()),
                }
            }
            IpsecAttrType::GroupDescription => out.group = basic,
            IpsecAttrType::EncapsulationMode => out.mode = basic,
            IpsecAttrType::AuthAlgorithm => out.auth = basic,
            IpsecAttrType::KeyLength => out.keylen = basic,
            other => return Err(format!("unsupported attribute {other}")),
        }
    }
    Ok(out)
}

/// Common checks of one phase-2 transform's mode and group against our policy.
fn check_common(
    a: &P2Attrs,
    pol: &QmPolicy,
    natt: bool,
) -> Result<(bool, Option<DhGroup>), String> {
    let mode = EncapsulationMode::from(a.mode.unwrap_or(EncapsulationMode::Tunnel.value()));
    let known = matches!(
        mode,
        EncapsulationMode::Tunnel
            | EncapsulationMode::Transport
            | EncapsulationMode::UdpTunnel
            | EncapsulationMode::UdpTransport
            | EncapsulationMode::UdpTunnelDraft
            | EncapsulationMode::UdpTransportDraft
    );
    if !known {
        return Err(format!("{mode} not acceptable"));
    }
    if mode.is_tunnel() != pol.tunnel {
        return Err(format!(
            "{mode} does not match our {} mode",
            if pol.tunnel { "tunnel" } else { "transport" }
        ));
    }
    if mode.is_udp_encapsulated() && !natt {
        return Err(format!("{mode} but NAT-T was not negotiated"));
    }
    let group = match a.group {
        None => None,
        Some(g) => Some(
            DhGroup::from_id(g)
                .filter(|g| g.is_ikev1())
                .ok_or_else(|| format!("{} not acceptable", OakleyGroup::from(g)))?,
        ),
    };
    match (group, pol.pfs) {
        (None, Some(_)) => return Err("missing PFS group required by our policy".into()),
        (Some(g), Some(ours)) if g != ours => {
            return Err(format!("PFS group {} is not our {}", g.name(), ours.name()))
        }
        _ => {}
    }
    Ok((mode.is_udp_encapsulated(), group))
}

fn parse_esp_transform(t: &Transform, a: &P2Attrs) -> Result<EspAlg, String> {
    let id = EspTransformId::from(t.transform_id);
    let enc = match (id, a.keylen) {
        (EspTransformId::TripleDes, None | Some(192)) => EncAlg::TripleDesCbc,
        (EspTransformId::Aes, None | Some(128)) => EncAlg::AesCbc128,
        (EspTransformId::Aes, Some(192)) => EncAlg::AesCbc192,
        (EspTransformId::Aes, Some(256)) => EncAlg::AesCbc256,
        (EspTransformId::AesGcm16, None | Some(128)) => EncAlg::AesGcm16_128,
        (EspTransformId::AesGcm16, Some(256)) => EncAlg::AesGcm16_256,
        (id, k) => {
            return Err(format!(
                "{id}{} not acceptable",
                k.map(|k| format!(" ({k} bits)")).unwrap_or_default()
            ))
        }
    };
    let auth = match a.auth {
        None => None,
        Some(v) => Some(
            auth_from_attr(v)
                .ok_or_else(|| format!("{} not acceptable", AuthAlgorithm::from(v)))?,
        ),
    };
    if enc.is_aead() && auth.is_some() {
        return Err("AES-GCM with an AUTH_ALGORITHM".into());
    }
    Ok(EspAlg { enc, auth })
}

fn parse_ah_transform(t: &Transform, a: &P2Attrs) -> Result<AuthAlg, String> {
    let alg = match AhTransformId::from(t.transform_id) {
        AhTransformId::Md5 => AuthAlg::HmacMd5_96,
        AhTransformId::Sha => AuthAlg::HmacSha1_96,
        AhTransformId::Sha2_256 => AuthAlg::HmacSha2_256_128,
        AhTransformId::Sha2_384 => AuthAlg::HmacSha2_384_192,
        AhTransformId::Sha2_512 => AuthAlg::HmacSha2_512_256,
        other => return Err(format!("{other} not acceptable")),
    };
    if let Some(v) = a.auth {
        if auth_from_attr(v) != Some(alg) {
            return Err(format!(
                "AUTH_ALGORITHM {} does not match {}",
                AuthAlgorithm::from(v),
                AhTransformId::from(t.transform_id)
            ));
        }
    }
    Ok(alg)
}

fn spi_u32(p: &Proposal) -> Result<u32, String> {
    match <[u8; 4]>::try_from(p.spi.as_slice()) {
        Ok(b) => {
            let v = u32::from_be_bytes(b);
            if v < 0x100 {
                Err(format!("{} SPI 0x{v:x} is reserved", p.protocol))
            } else {
                Ok(v)
            }
        }
        Err(_) => Err(format!("{} SPI of {} bytes", p.protocol, p.spi.len())),
    }
}

fn cpi(p: &Proposal) -> Result<u16, String> {
    let v = match p.spi.as_slice() {
        [a, b] => u16::from_be_bytes([*a, *b]),
        [0, 0, a, b] => u16::from_be_bytes([*a, *b]),
        _ => return Err(format!("IPComp CPI of {} bytes", p.spi.len())),
    };
    if v < 256 {
        return Err(format!("IPComp CPI {v} is reserved"));
    }
    Ok(v)
}

/// Chooses from a Quick Mode offer: the first proposal (group of same-numbered proposals)
/// in the peer's order whose protocols match our policy and have an acceptable transform.
/// IPComp is accepted whenever offered.
pub fn select_qm(
    sa: &SaPayload,
    pol: &QmPolicy,
    natt: bool,
    why: &mut Vec<String>,
) -> Result<QmChoice, NotifyType> {
    if sa.doi != Doi::Ipsec || sa.situation != SIT_IDENTITY_ONLY {
        why.push("unsupported DOI or situation".into());
        return Err(NotifyType::DoiNotSupported);
    }
    let mut i = 0;
    while i < sa.proposals.len() {
        let number = sa.proposals[i].number;
        let mut j = i;
        while j < sa.proposals.len() && sa.proposals[j].number == number {
            j += 1;
        }
        let group = &sa.proposals[i..j];
        i = j;
        match select_group(group, pol, natt, why) {
            Ok(c) => return Ok(c),
            Err(e) => why.push(format!("proposal #{number}: {e}")),
        }
    }
    why.push("no acceptable transform".into());
    Err(NotifyType::NoProposalChosen)
}

fn select_group(
    group: &[Proposal],
    pol: &QmPolicy,
    natt: bool,
    why: &mut Vec<String>,
) -> Result<QmChoice, String> {
    let mut choice = QmChoice {
        esp: None,
        ah: None,
        cpi: None,
        tunnel: pol.tunnel,
        udp_encap: false,
        pfs: None,
        life: None,
        chosen: Vec::new(),
    };
    let mut seen_group: Option<Option<DhGroup>> = None;
    for p in group {
        let mut picked = None;
        for t in &p.transforms {
            let r = parse_p2_attrs(t).and_then(|a| {
                let (udp, g) = check_common(&a, pol, natt)?;
                if let Some(sg) = seen_group {
                    if sg != g {
                        return Err("PFS groups differ between protocols".into());
                    }
                }
                match p.protocol {
                    ProtocolId::Esp => {
                        let e = parse_esp_transform(t, &a)?;
                        let wanted = pol.esp.iter().any(|o| {
                            o.enc == e.enc
                                && (o.auth == e.auth || (e.enc.is_aead() && e.auth.is_none()))
                        });
                        if !wanted {
                            return Err(format!(
                                "ESP {}{} not in our esp= list",
                                e.enc.conf_name(),
                                e.auth
                                    .map(|a| format!("-{}", a.conf_name()))
                                    .unwrap_or_default()
                            ));
                        }
                        Ok((udp, g, a.life, Picked::Esp(e)))
                    }
                    ProtocolId::Ah => {
                        let alg = parse_ah_transform(t, &a)?;
                        if !pol.ah.contains(&alg) {
                            return Err(format!("AH {} not acceptable", alg.conf_name()));
                        }
                        Ok((udp, g, a.life, Picked::Ah(alg)))
                    }
                    ProtocolId::Ipcomp => {
                        if IpcompTransformId::from(t.transform_id) != IpcompTransformId::Deflate {
                            return Err(format!(
                                "{} not acceptable",
                                IpcompTransformId::from(t.transform_id)
                            ));
                        }
                        Ok((udp, g, a.life, Picked::Comp))
                    }
                    other => Err(format!("protocol {other} not acceptable")),
                }
            });
            match r {
                Ok(x) => {
                    picked = Some((t.clone(), x));
                    break;
                }
                Err(e) => why.push(format!("{} transform #{}: {e}", p.protocol, t.number)),
            }
        }
        let Some((t, (udp, g, life, what))) = picked else {
            return Err(format!("no acceptable {} transform", p.protocol));
        };
        seen_group = Some(g);
        choice.pfs = g;
        choice.udp_encap |= udp;
        if let Some(l) = life {
            choice.life = Some(choice.life.map_or(l, |c: u64| c.min(l)));
        }
        match what {
            Picked::Esp(e) => {
                if choice.esp.is_some() {
                    return Err("two ESP proposals".into());
                }
                choice.esp = Some((e, spi_u32(p)?));
            }
            Picked::Ah(a) => {
                if choice.ah.is_some() {
                    return Err("two AH proposals".into());
                }
                choice.ah = Some((a, spi_u32(p)?));
            }
            Picked::Comp => {
                if choice.cpi.is_some() {
                    return Err("two IPComp proposals".into());
                }
                choice.cpi = Some(cpi(p)?);
            }
        }
        choice.chosen.push(Proposal {
            number: p.number,
            protocol: p.protocol,
            spi: p.spi.clone(),
            transforms: vec![t],
        });
    }
    if choice.esp.is_none() {
        return Err("no ESP proposal".into());
    }
    if pol.ah.is_empty() != choice.ah.is_none() {
        return Err(if pol.ah.is_empty() {
            "AH not wanted by our policy".into()
        } else {
            "AH required by our policy".into()
        });
    }
    if let Some((e, _)) = choice.esp {
        if pol.ah.is_empty() && e.auth.is_none() && !e.enc.is_aead() {
            return Err("ESP without authentication".into());
        }
    }
    Ok(choice)
}

enum Picked {
    Esp(EspAlg),
    Ah(AuthAlg),
    Comp,
}

/// The responder's SA payload: the chosen proposals with our SPIs.
pub fn qm_response(c: &QmChoice, ours: &Spis) -> SaPayload {
    let proposals = c
        .chosen
        .iter()
        .map(|p| {
            let spi = match p.protocol {
                ProtocolId::Esp => ours.esp.unwrap_or(0).to_be_bytes().to_vec(),
                ProtocolId::Ah => ours.ah.unwrap_or(0).to_be_bytes().to_vec(),
                _ => ours.cpi.unwrap_or(0).to_be_bytes().to_vec(),
            };
            Proposal {
                number: p.number,
                protocol: p.protocol,
                spi,
                transforms: p.transforms.clone(),
            }
        })
        .collect();
    SaPayload::ipsec(proposals)
}

/// The initiator's check of the responder's answer against what we offered: one proposal
/// group, one transform each, all among ours.
pub fn check_qm_response(sa: &SaPayload, pol: &QmPolicy, natt: bool) -> Result<QmChoice, String> {
    let mut why = Vec::new();
    if sa.proposals.iter().any(|p| p.transforms.len() != 1) {
        return Err("responder's proposals must hold one transform each".into());
    }
    let first = sa.proposals.first().map(|p| p.number);
    if sa.proposals.iter().any(|p| Some(p.number) != first) {
        return Err("responder answered with several proposals".into());
    }
    let mut pol = pol.clone();
    // The responder may leave out IPComp we offered; accept either.
    pol.compress = true;
    select_group(&sa.proposals, &pol, natt, &mut why).map_err(|e| {
        if why.is_empty() {
            e
        } else {
            format!("{e}: {}", why.join("; "))
        }
    })
}

/// The Quick Mode policy for connection `c`; `p1_group` is its ISAKMP SA's group (PFS
/// without `pfsgroup=` uses it).
pub fn qm_policy(c: &Connection, p1_group: DhGroup) -> QmPolicy {
    let pfs = c
        .pfs
        .then(|| c.pfsgroup.filter(|g| g.is_ikev1()).unwrap_or(p1_group));
    // ChaCha20-Poly1305 has no IKEv1 transform ID (RFC 7634 is IKEv2 only).
    let v1_esp: Vec<EspAlg> = c
        .esp
        .iter()
        .filter(|e| e.enc != crate::crypto::EncAlg::ChaCha20Poly1305)
        .copied()
        .collect();
    let (esp, ah) = if c.ah {
        let mut encs: Vec<EspAlg> = Vec::new();
        let mut auths = Vec::new();
        for e in &v1_esp {
            if e.enc.is_aead() {
                continue;
            }
            let x = EspAlg {
                enc: e.enc,
                auth: None,
            };
            if !encs.contains(&x) {
                encs.push(x);
            }
            if let Some(a) = e.auth {
                if !auths.contains(&a) {
                    auths.push(a);
                }
            }
        }
        (encs, auths)
    } else {
        (v1_esp, Vec::new())
    };
    QmPolicy {
        esp,
        ah,
        compress: c.compress,
        tunnel: c.tunnel(),
        pfs,
        life: c.keylife,
    }
}

/// ESP ciphers rswan negotiates: (ESP transform ID, IV bits, key bits min, max).
const ESP_ENCRYPT: [(EspTransformId, u32, u32, u32); 3] = [
    (EspTransformId::TripleDes, 64, 168, 168),
    (EspTransformId::Aes, 128, 128, 256),
    (EspTransformId::AesGcm16, 64, 128, 256),
];

/// ESP/AH integrity algorithms: (AUTH_ALGORITHM value, key bits).
const ESP_AUTH: [(AuthAlgorithm, u32); 5] = [
    (AuthAlgorithm::HmacMd5, 128),
    (AuthAlgorithm::HmacSha1, 160),
    (AuthAlgorithm::HmacSha2_256, 256),
    (AuthAlgorithm::HmacSha2_384, 384),
    (AuthAlgorithm::HmacSha2_512, 512),
];

/// IKE ciphers: (Oakley ID, block size, default key length).
const IKE_ENCRYPT: [(OakleyEncAlg, u32, u32); 2] = [
    (OakleyEncAlg::TripleDesCbc, 8, 192),
    (OakleyEncAlg::AesCbc, 16, 128),
];

/// IKE hashes rswan accepts: (Oakley ID, digest bytes).
const IKE_HASH: [(OakleyHash, u32); 3] = [
    (OakleyHash::Md5, 16),
    (OakleyHash::Sha1, 20),
    (OakleyHash::Sha2_256, 32),
];

/// Openswan's `algorithm …` lines (\[OS\], spec 5.8): what rswan can negotiate.
pub fn algorithm_lines(v: &mut Vec<String>) {
    for (id, ivlen, min, max) in ESP_ENCRYPT {
        v.push(format!(
            "algorithm ESP encrypt: id={}, name={id}, ivlen={ivlen}, keysizemin={min}, keysizemax={max}",
            id.value()
        ));
    }
    for (id, bits) in ESP_AUTH {
        v.push(format!(
            "algorithm ESP auth attr: id={}, name={id}, keysizemin={bits}, keysizemax={bits}",
            id.value()
        ));
    }
    v.push(" ".into());
    for (id, block, keylen) in IKE_ENCRYPT {
        v.push(format!(
            "algorithm IKE encrypt: id={}, name={id}, blocksize={block}, keydeflen={keylen}",
            id.value()
        ));
    }
    for (id, size) in IKE_HASH {
        v.push(format!(
            "algorithm IKE hash: id={}, name={id}, hashsize={size}",
            id.value()
        ));
    }
    for g in DhGroup::IKEV1 {
        v.push(format!(
            "algorithm IKE dh group: id={}, name={}, bits={}",
            g.id(),
            OakleyGroup::from(g.id()),
            g.prime_len() * 8
        ));
    }
    v.push(" ".into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pluto::proposal::{default_ike, parse_ike};

    #[test]
    fn ike_roundtrip_selection() {
        let offer = ike_sa_payload(&default_ike(), &[AuthKind::Psk], 3600);
        let mut why = Vec::new();
        let ours = parse_ike("3des-sha1-modp1024").unwrap();
        let c = select_ike(&offer, &ours, &[AuthKind::Psk], &mut why).unwrap();
        assert_eq!(c.alg, ours[0]);
        assert_eq!(c.life, Some(3600));
        assert!(why.len() >= 5, "{why:?}");
        let resp = ike_response(&c);
        let back = check_ike_response(&resp, &default_ike(), &[AuthKind::Psk]).unwrap();
        assert_eq!(back.alg, ours[0]);
        let mut why = Vec::new();
        assert_eq!(
            select_ike(&offer, &ours, &[AuthKind::Rsa], &mut why),
            Err(NotifyType::NoProposalChosen)
        );
        assert_eq!(why.last().unwrap(), "no acceptable Oakley Transform");
    }

    #[test]
    fn qm_selection_with_ah_and_comp() {
        let pol = QmPolicy {
            esp: vec![EspAlg {
                enc: EncAlg::AesCbc128,
                auth: None,
            }],
            ah: vec![AuthAlg::HmacSha1_96],
            compress: true,
            tunnel: true,
            pfs: Some(DhGroup::Modp2048),
            life: 28800,
        };
        let spis = Spis {
            esp: Some(0x1234),
            ah: Some(0x1235),
            cpi: Some(0x300),
        };
        let sa = qm_sa_payload(&pol, &spis, UdpEncapMode::None);
        let mut why = Vec::new();
        let c = select_qm(&sa, &pol, false, &mut why).unwrap();
        assert_eq!(c.esp.unwrap().1, 0x1234);
        assert_eq!(c.ah.unwrap().1, 0x1235);
        assert_eq!(c.cpi, Some(0x300));
        let resp = qm_response(
            &c,
            &Spis {
                esp: Some(0x9999),
                ah: Some(0x999a),
                cpi: Some(0x400),
            },
        );
        let back = check_qm_response(&resp, &pol, false).unwrap();
        assert_eq!(back.esp.unwrap().1, 0x9999);
        assert_eq!(back.cpi, Some(0x400));
        // ESP-only policy refuses AH+ESP.
        let mut esp_only = pol.clone();
        esp_only.ah.clear();
        esp_only.esp[0].auth = Some(AuthAlg::HmacSha1_96);
        let mut why = Vec::new();
        assert!(select_qm(&sa, &esp_only, false, &mut why).is_err());
        assert_eq!(why.last().unwrap(), "no acceptable transform");
    }
}
