//! IKEv2 SA payloads from the shared algorithm vocabulary ([`crate::pluto::proposal`]) and
//! the choice among a peer's proposals (RFC 7296 3.3): one proposal per suite, transforms
//! mapped through [`crate::pluto::crypto::ikev2::ids`].

use crate::pluto::crypto::ikev2::ids;
use crate::pluto::crypto::DhGroup;
use crate::pluto::ikev2::wire::{
    self, EncrId, EsnId, IntegId, PrfId, Proposal, ProtocolId, SaPayload, Spi, Transform,
    TransformId, TransformType,
};
use crate::pluto::proposal::{Esn, EspAlg, IkeAlg};

fn encr(enc: crate::crypto::EncAlg) -> Option<Transform> {
    let (id, bits) = ids::enc_id(enc)?;
    Some(Transform::encr(EncrId::from(id), bits))
}

fn ike_transforms(a: &IkeAlg) -> Option<Vec<Transform>> {
    let mut t = vec![encr(a.enc)?];
    t.push(Transform::new(TransformId::Prf(PrfId::from(ids::prf_id(
        a.prf,
    )))));
    if let Some(i) = a.integ {
        t.push(Transform::new(TransformId::Integ(IntegId::from(
            ids::integ_id(i),
        ))));
    }
    t.push(Transform::new(TransformId::Dh(wire::DhGroup::from(
        a.group.id(),
    ))));
    Some(t)
}

fn esp_transforms(e: &EspAlg, pfs: Option<DhGroup>) -> Option<Vec<Transform>> {
    let mut t = vec![encr(e.enc)?];
    if let Some(i) = e.auth {
        t.push(Transform::new(TransformId::Integ(IntegId::from(
            ids::integ_id(i),
        ))));
    }
    if let Some(g) = pfs {
        t.push(Transform::new(TransformId::Dh(wire::DhGroup::from(g.id()))));
    }
    t.push(Transform::new(TransformId::Esn(EsnId::from(ids::esn_id(
        Esn::No,
    )))));
    Some(t)
}

/// The IKE SA payload of IKE_SA_INIT (no SPI) or of an IKE SA rekey (`spi`): one proposal
/// per suite, numbered from 1.
pub fn ike_sa_payload(suites: &[IkeAlg], spi: Option<[u8; 8]>) -> SaPayload {
    let proposals = suites
        .iter()
        .filter_map(ike_transforms)
        .take(wire::MAX_PROPOSALS)
        .enumerate()
        .map(|(i, transforms)| Proposal {
            number: (i + 1) as u8,
            protocol: ProtocolId::Ike,
            spi: spi.map_or(Spi::None, |s| Spi::Ike(wire::IkeSpi(s))),
            transforms,
        })
        .collect();
    SaPayload { proposals }
}

/// The answer to an IKE SA offer: the chosen suite as the peer's proposal `number`.
pub fn ike_sa_answer(a: &IkeAlg, number: u8, spi: Option<[u8; 8]>) -> SaPayload {
    SaPayload {
        proposals: vec![Proposal {
            number,
            protocol: ProtocolId::Ike,
            spi: spi.map_or(Spi::None, |s| Spi::Ike(wire::IkeSpi(s))),
            transforms: ike_transforms(a).unwrap_or_default(),
        }],
    }
}

/// The ESP SA payload of a child SA: one proposal per suite, our inbound `spi`, with the
/// PFS group in each proposal when given.
pub fn esp_sa_payload(suites: &[EspAlg], spi: u32, pfs: Option<DhGroup>) -> SaPayload {
    let proposals = suites
        .iter()
        .filter_map(|e| esp_transforms(e, pfs))
        .take(wire::MAX_PROPOSALS)
        .enumerate()
        .map(|(i, transforms)| Proposal {
            number: (i + 1) as u8,
            protocol: ProtocolId::Esp,
            spi: Spi::Child(spi),
            transforms,
        })
        .collect();
    SaPayload { proposals }
}

/// The answer to an ESP offer.
pub fn esp_sa_answer(e: &EspAlg, number: u8, spi: u32, pfs: Option<DhGroup>) -> SaPayload {
    SaPayload {
        proposals: vec![Proposal {
            number,
            protocol: ProtocolId::Esp,
            spi: Spi::Child(spi),
            transforms: esp_transforms(e, pfs).unwrap_or_default(),
        }],
    }
}

fn has(p: &Proposal, t: TransformType, id: u16, key_length: Option<u16>) -> bool {
    p.transforms_of(t)
        .any(|x| x.id.id() == id && x.key_length == key_length && x.attributes.is_empty())
}

fn no_integ(p: &Proposal) -> bool {
    p.transforms_of(TransformType::Integ)
        .all(|x| x.id.id() == 0)
}

/// Whether proposal `p` contains every transform of suite `a`.
fn ike_fits(p: &Proposal, a: &IkeAlg) -> bool {
    let Some((eid, bits)) = ids::enc_id(a.enc) else {
        return false;
    };
    p.protocol == ProtocolId::Ike
        && has(p, TransformType::Encr, eid, bits)
        && has(p, TransformType::Prf, ids::prf_id(a.prf), None)
        && match a.integ {
            Some(i) => has(p, TransformType::Integ, ids::integ_id(i), None),
            None => no_integ(p),
        }
        && has(p, TransformType::Dh, a.group.id(), None)
}

/// What the responder makes of an IKE SA offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeChoice {
    /// A suite of ours in proposal `number`, with the group of the KE payload.
    Chosen(IkeAlg, u8),
    /// A suite fits, but with another group than the KE payload's: INVALID_KE_PAYLOAD.
    WrongGroup(DhGroup),
    /// Nothing fits: NO_PROPOSAL_CHOSEN.
    None,
}

/// Chooses among the peer's IKE proposals (the peer's order first, then ours), preferring
/// a suite whose group is the KE payload's `ke_group`.
pub fn choose_ike(offer: &SaPayload, ours: &[IkeAlg], ke_group: u16) -> IkeChoice {
    let mut other = None;
    for p in &offer.proposals {
        for a in ours {
            if ike_fits(p, a) {
                if a.group.id() == ke_group {
                    return IkeChoice::Chosen(*a, p.number);
                }
                other.get_or_insert(a.group);
            }
        }
    }
    other.map_or(IkeChoice::None, IkeChoice::WrongGroup)
}

/// The suite the responder answered with, if it is one we offered.
pub fn ike_answer_of(answer: &SaPayload, offered: &[IkeAlg]) -> Option<IkeAlg> {
    let [p] = answer.proposals.as_slice() else {
        return None;
    };
    if p.transforms.len() != 3 + usize::from(!no_integ(p)) {
        return None;
    }
    offered.iter().find(|a| ike_fits(p, a)).copied()
}

fn esp_fits(p: &Proposal, e: &EspAlg, pfs: Option<DhGroup>) -> bool {
    let Some((eid, bits)) = ids::enc_id(e.enc) else {
        return false;
    };
    let dh_ok = match pfs {
        Some(g) => has(p, TransformType::Dh, g.id(), None),
        None => p.transforms_of(TransformType::Dh).all(|x| x.id.id() == 0),
    };
    p.protocol == ProtocolId::Esp
        && has(p, TransformType::Encr, eid, bits)
        && match e.auth {
            Some(i) => has(p, TransformType::Integ, ids::integ_id(i), None),
            None => no_integ(p),
        }
        && dh_ok
        && (p.transforms_of(TransformType::Esn).next().is_none()
            || has(p, TransformType::Esn, ids::esn_id(Esn::No), None))
}

/// Chooses among the peer's ESP proposals: (suite, proposal number, the peer's SPI).
pub fn choose_esp(
    offer: &SaPayload,
    ours: &[EspAlg],
    pfs: Option<DhGroup>,
) -> Option<(EspAlg, u8, u32)> {
    for p in &offer.proposals {
        let Spi::Child(spi) = p.spi else {
            continue;
        };
        if let Some(e) = ours.iter().find(|e| esp_fits(p, e, pfs)) {
            return Some((*e, p.number, spi));
        }
    }
    None
}

/// The peer's DH group in an ESP offer (the first proposal's), for PFS.
pub fn esp_offer_group(offer: &SaPayload) -> Option<DhGroup> {
    offer
        .proposals
        .first()?
        .transforms_of(TransformType::Dh)
        .find(|t| t.id.id() != 0)
        .and_then(|t| DhGroup::from_id(t.id.id()))
}

/// A transform-by-transform description of a proposal list (`ENCR_AES_CBC_128/PRF_…`), for
/// the log line of a rejected offer.
pub fn describe(offer: &SaPayload) -> String {
    offer
        .proposals
        .iter()
        .map(|p| {
            let t: Vec<String> = p
                .transforms
                .iter()
                .map(|t| {
                    let name = match t.id {
                        TransformId::Encr(x) => x.to_string(),
                        TransformId::Prf(x) => x.to_string(),
                        TransformId::Integ(x) => x.to_string(),
                        TransformId::Dh(x) => x.to_string(),
                        TransformId::Esn(x) => x.to_string(),
                        TransformId::Other { transform_type, id } => {
                            format!("{transform_type}:{id}")
                        }
                    };
                    match t.key_length {
                        Some(k) => format!("{name}_{k}"),
                        None => name,
                    }
                })
                .collect();
            format!("{}:{}", p.protocol, t.join("/"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The peer's ESP suite of an answer, if one we offered, with the peer's SPI.
pub fn esp_answer_of(
    answer: &SaPayload,
    offered: &[EspAlg],
    pfs: Option<DhGroup>,
) -> Option<(EspAlg, u32)> {
    let [p] = answer.proposals.as_slice() else {
        return None;
    };
    let Spi::Child(spi) = p.spi else {
        return None;
    };
    offered
        .iter()
        .find(|e| esp_fits(p, e, pfs))
        .map(|e| (*e, spi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AuthAlg, EncAlg};
    use crate::pluto::crypto::Prf;

    #[test]
    fn offer_and_choice_round_trip() {
        let ours = vec![
            IkeAlg::new(EncAlg::AesGcm16_256, Prf::HmacSha384, DhGroup::Ecp384),
            IkeAlg::new(EncAlg::AesCbc128, Prf::HmacSha256, DhGroup::Modp2048),
        ];
        let sa = ike_sa_payload(&ours, None);
        assert_eq!(sa.proposals.len(), 2);
        assert_eq!(
            choose_ike(&sa, &ours[1..], 14),
            IkeChoice::Chosen(ours[1], 2)
        );
        assert_eq!(
            choose_ike(&sa, &ours[1..], 19),
            IkeChoice::WrongGroup(DhGroup::Modp2048)
        );
        let other = [IkeAlg::new(
            EncAlg::AesCbc256,
            Prf::HmacSha1,
            DhGroup::Modp1024,
        )];
        assert_eq!(choose_ike(&sa, &other, 2), IkeChoice::None);
        let answer = ike_sa_answer(&ours[0], 1, None);
        assert_eq!(ike_answer_of(&answer, &ours), Some(ours[0]));
        assert_eq!(ike_answer_of(&answer, &ours[1..]), None);
        let esp = [
            EspAlg {
                enc: EncAlg::ChaCha20Poly1305,
                auth: None,
            },
            EspAlg {
                enc: EncAlg::AesCbc128,
                auth: Some(AuthAlg::HmacSha2_256_128),
            },
        ];
        let offer = esp_sa_payload(&esp, 0x1234, None);
        assert_eq!(
            choose_esp(&offer, &esp[1..], None),
            Some((esp[1], 2, 0x1234))
        );
        assert_eq!(choose_esp(&offer, &esp, Some(DhGroup::Modp2048)), None);
        let answer = esp_sa_answer(&esp[0], 1, 0x99, None);
        assert_eq!(esp_answer_of(&answer, &esp, None), Some((esp[0], 0x99)));
        assert!(
            describe(&offer).contains("ENCR_CHACHA20_POLY1305"),
            "{}",
            describe(&offer)
        );
    }
}
