//! The SADB: security associations keyed by SAID (SPI, destination, protocol), SA groups
//! (spigrp, applied inner→outer: IPIP, IPComp, ESP, AH), anti-replay windows, lifetimes and
//! counters.
//!
//! The datapath reads the SADB through a [`SadbView`]: for every SAID the SA with its group
//! (a lone SA is a group of one, made once when it is added), in sharded copy-on-write maps
//! that the SADB keeps up to date with each change. A view is one `Arc` (a two-level tree of
//! 16 × 16 shards): the datapath takes one per batch and looks SAs up without any lock, while a
//! change copies the two small arrays on its path and the shard it touches (1/256 of the SAs),
//! not the SADB.

pub mod lifetime;
pub mod replay;
pub mod sa;

use std::collections::HashMap;
use std::sync::Arc;

use crate::fasthash::FastMap;
use crate::said::Said;

pub use sa::{Dir, KeyBytes, Sa, SaError, SaSpec, UdpEncap, XformSpec};

/// SAs of one group, innermost first.
pub type SaGroup = Arc<[Arc<Sa>]>;

/// One SA as the datapath sees it: its group and its place in it.
#[derive(Debug, Clone)]
pub struct SaRef {
    /// The group (innermost first); a lone SA is a group of one.
    pub group: SaGroup,
    /// Index of this SA in `group`.
    pub pos: usize,
}

impl SaRef {
    /// The SA itself.
    pub fn sa(&self) -> &Arc<Sa> {
        &self.group[self.pos]
    }
}

/// Fan-out of each of the view's two levels: 16 × 16 = 256 shards. A change copies one
/// top array and one middle array (16 `Arc`s each) and one shard (1/256 of the SAs), so it
/// stays small from a handful of SAs to 100,000.
const FANOUT: usize = 16;

type Shard = Arc<FastMap<Said, SaRef>>;
type Level = [Shard; FANOUT];

/// The datapath's read-only view of the SADB (see the module documentation).
#[derive(Debug, Clone)]
pub struct SadbView {
    top: Arc<[Arc<Level>; FANOUT]>,
}

impl Default for SadbView {
    fn default() -> SadbView {
        SadbView {
            top: Arc::new(std::array::from_fn(|_| {
                Arc::new(std::array::from_fn(|_| Arc::default()))
            })),
        }
    }
}

impl SadbView {
    /// The (top, middle) slot of a SAID's shard.
    fn slot(said: &Said) -> (usize, usize) {
        // The SPI's low bits are random for negotiated SAs and sequential for manual ones:
        // either way they spread.
        let h = said.spi as usize ^ (said.spi >> 8) as usize;
        (h % FANOUT, (h / FANOUT) % FANOUT)
    }

    /// The SA with this SAID, with its group.
    #[inline]
    pub fn get(&self, said: &Said) -> Option<&SaRef> {
        let (i, j) = Self::slot(said);
        self.top[i][j].get(said)
    }

    /// Changes one SAID: copies (if a published view shares them) the top array, the middle
    /// array and the one shard on the SAID's path; nothing else.
    fn set(&mut self, said: Said, r: Option<SaRef>) {
        let (i, j) = Self::slot(&said);
        let mid = Arc::make_mut(&mut Arc::make_mut(&mut self.top)[i]);
        let m = Arc::make_mut(&mut mid[j]);
        match r {
            Some(r) => {
                m.insert(said, r);
            }
            None => {
                m.remove(&said);
            }
        }
    }
}

/// The SA database.
#[derive(Debug, Default)]
pub struct Sadb {
    sas: HashMap<Said, Arc<Sa>>,
    /// Group head (innermost SA) → the group.
    groups: HashMap<Said, SaGroup>,
    /// Any member → its group head.
    member_of: HashMap<Said, Said>,
    /// The read side, kept in step with every change.
    view: SadbView,
}

impl Sadb {
    /// An empty SADB.
    pub fn new() -> Sadb {
        Sadb::default()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// Whether there are no SAs.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// Adds a keyed SA; fails if the SAID exists.
    pub fn add(&mut self, sa: Sa) -> Result<Arc<Sa>, SaError> {
        if self.sas.contains_key(&sa.said) {
            return Err(SaError(format!("SA {} already exists", sa.said)));
        }
        let sa = Arc::new(sa);
        self.sas.insert(sa.said, sa.clone());
        self.view.set(sa.said, Some(lone(&sa)));
        Ok(sa)
    }

    /// The datapath's view as of now (cheap: one `Arc` clone).
    pub fn view(&self) -> SadbView {
        self.view.clone()
    }

    /// The SA with this SAID.
    pub fn get(&self, said: &Said) -> Option<&Arc<Sa>> {
        self.sas.get(said)
    }

    /// Groups existing, ungrouped SAs inner→outer (`ipsec spigrp`). One SAID ungroups its group.
    pub fn group(&mut self, saids: &[Said]) -> Result<(), SaError> {
        match saids.len() {
            0 => return Err(SaError("spigrp needs at least one SA".into())),
            1 => {
                let head = self
                    .member_of
                    .get(&saids[0])
                    .copied()
                    .ok_or_else(|| SaError(format!("SA {} is not in a group", saids[0])))?;
                self.ungroup(&head);
                return Ok(());
            }
            n if n > 4 => return Err(SaError("at most 4 SAs can be grouped".into())),
            _ => {}
        }
        let mut v = Vec::new();
        for s in saids {
            let sa = self
                .sas
                .get(s)
                .ok_or_else(|| SaError(format!("SA {s} does not exist")))?;
            if self.member_of.contains_key(s) {
                return Err(SaError(format!("SA {s} is already grouped")));
            }
            if v.iter().any(|o: &Arc<Sa>| o.said == *s) {
                return Err(SaError(format!("SA {s} listed twice")));
            }
            v.push(sa.clone());
        }
        let head = saids[0];
        for s in saids {
            self.member_of.insert(*s, head);
        }
        let group: SaGroup = v.into();
        for (pos, s) in saids.iter().enumerate() {
            self.view.set(
                *s,
                Some(SaRef {
                    group: group.clone(),
                    pos,
                }),
            );
        }
        self.groups.insert(head, group);
        Ok(())
    }

    fn ungroup(&mut self, head: &Said) {
        if let Some(g) = self.groups.remove(head) {
            for sa in g.iter() {
                self.member_of.remove(&sa.said);
                self.view.set(sa.said, Some(lone(sa)));
            }
        }
    }

    /// The group `said` heads or belongs to; a lone SA is a group of one.
    pub fn group_of(&self, said: &Said) -> Option<SaGroup> {
        self.view.get(said).map(|r| r.group.clone())
    }

    /// Deletes `said` and every SA grouped with it (`ipsec spi … --del`). Returns the deleted SAs.
    pub fn delete(&mut self, said: &Said) -> Result<Vec<Arc<Sa>>, SaError> {
        if !self.sas.contains_key(said) {
            return Err(SaError(format!("SA {said} does not exist")));
        }
        let members: Vec<Said> = match self.member_of.get(said).copied() {
            Some(head) => {
                let g = self.groups.get(&head).cloned();
                self.ungroup(&head);
                g.map(|g| g.iter().map(|s| s.said).collect())
                    .unwrap_or_default()
            }
            None => vec![*said],
        };
        for s in &members {
            self.view.set(*s, None);
        }
        Ok(members.iter().filter_map(|s| self.sas.remove(s)).collect())
    }

    /// Removes every SA.
    pub fn clear(&mut self) {
        self.sas.clear();
        self.groups.clear();
        self.member_of.clear();
        self.view = SadbView::default();
    }

    /// Every SA, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Sa>> {
        self.sas.values()
    }

    /// Every SA, sorted by SAID text as `sort /proc/net/ipsec_spi` would.
    pub fn sorted(&self) -> Vec<Arc<Sa>> {
        let mut v: Vec<_> = self.sas.values().cloned().collect();
        v.sort_by_key(|s| s.said.to_string());
        v
    }

    /// `/proc/net/ipsec_spigrp` lines: SAIDs inner→outer separated by spaces, trailing space.
    pub fn spigrp_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .groups
            .values()
            .map(|g| g.iter().map(|s| format!("{} ", s.said)).collect())
            .collect();
        v.sort();
        v
    }

    /// Removes SAs that hit a hard lifetime at `now`, with every SA grouped with them; returns
    /// the removed SAs.
    pub fn expire(&mut self, now: u64) -> Vec<Arc<Sa>> {
        let dead: Vec<Said> = self
            .sas
            .values()
            .filter(|sa| {
                let mut st = sa.state.lock().unwrap_or_else(|p| p.into_inner());
                matches!(sa.expiry(&mut st, now), lifetime::Expiry::Hard(_)) || st.dead
            })
            .map(|sa| sa.said)
            .collect();
        // A group loses all its SAs with one: a tunnel group whose ESP SA died must not go on
        // sending bare IPIP (cleartext).
        let mut out = Vec::new();
        for s in dead {
            if self.sas.contains_key(&s) {
                out.extend(self.delete(&s).unwrap_or_default());
            }
        }
        out
    }
}

/// A lone SA as a group of one.
fn lone(sa: &Arc<Sa>) -> SaRef {
    SaRef {
        group: Arc::from([sa.clone()]),
        pos: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::said::Proto;
    use std::net::Ipv4Addr;

    fn spec(proto: Proto, xform: XformSpec, hard_packets: u64) -> SaSpec {
        let mut life = lifetime::Lifetimes::default();
        life.packets.hard = hard_packets;
        SaSpec {
            said: Said::new(proto, 0x200, Ipv4Addr::new(192, 0, 2, 2)),
            src: Ipv4Addr::new(192, 0, 2, 1).into(),
            dir: Some(Dir::Out),
            xform,
            replay_window: 64,
            life,
            encap: None,
            policy: None,
        }
    }

    /// A SAID's group (innermost first) and its place in it; None when there is no such SA.
    type Answer = Option<(Vec<Said>, usize)>;

    /// What the view must answer for `said`, from the SADB's own tables.
    fn expected(db: &Sadb, said: &Said) -> Answer {
        db.get(said)?;
        let saids: Vec<Said> = match db.member_of.get(said) {
            Some(head) => db.groups[head].iter().map(|s| s.said).collect(),
            None => vec![*said],
        };
        let pos = saids.iter().position(|s| s == said)?;
        Some((saids, pos))
    }

    fn answered(v: &SadbView, said: &Said) -> Answer {
        v.get(said)
            .map(|r| (r.group.iter().map(|s| s.said).collect(), r.pos))
    }

    #[test]
    fn view_agrees_with_the_sadb_through_changes() {
        let mut db = Sadb::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let said_of =
            |i: u64| Said::new(Proto::Tun, 0x1000 + i as u32, Ipv4Addr::new(192, 0, 2, 2));
        let mut snapshots: Vec<(SadbView, Vec<(Said, Answer)>)> = Vec::new();
        for step in 0..4000u64 {
            let said = said_of(next(300));
            match next(10) {
                0..=4 => {
                    let mut sp = spec(Proto::Tun, XformSpec::Ipip, 0);
                    sp.said = said;
                    let _ = db.add(Sa::new(&sp, Dir::Out, 0).unwrap());
                }
                5..=6 => {
                    let _ = db.delete(&said);
                }
                7 => {
                    let other = said_of(next(300));
                    let _ = db.group(&[said, other]);
                }
                8 => {
                    let _ = db.group(&[said]);
                }
                _ => {}
            }
            let v = db.view();
            for i in 0..300 {
                let s = said_of(i);
                assert_eq!(answered(&v, &s), expected(&db, &s), "step {step}, {s}");
            }
            if step % 500 == 0 {
                let answers = (0..300)
                    .map(|i| (said_of(i), answered(&v, &said_of(i))))
                    .collect();
                snapshots.push((v, answers));
            }
        }
        // A view taken earlier still answers as it did: changes copy, never write through.
        for (v, answers) in &snapshots {
            for (s, a) in answers {
                assert_eq!(&answered(v, s), a);
            }
        }
    }

    #[test]
    fn expiry_removes_the_whole_group() {
        let mut db = Sadb::new();
        let tun = spec(Proto::Tun, XformSpec::Ipip, 0);
        let esp = spec(
            Proto::Esp,
            XformSpec::Esp {
                enc: crate::crypto::EncAlg::AesCbc128,
                enckey: KeyBytes(vec![7; 16]),
                auth: Some(crate::crypto::AuthAlg::HmacSha1_96),
                authkey: KeyBytes(vec![9; 20]),
            },
            1,
        );
        db.add(Sa::new(&tun, Dir::Out, 0).unwrap()).unwrap();
        let e = db.add(Sa::new(&esp, Dir::Out, 0).unwrap()).unwrap();
        db.group(&[tun.said, esp.said]).unwrap();
        {
            let mut st = e.state.lock().unwrap();
            e.account(&mut st, 100, 1);
        }
        let gone = db.expire(2);
        assert_eq!(gone.len(), 2, "the IPIP SA must go with its ESP SA");
        assert!(db.group_of(&tun.said).is_none());
        assert!(db.is_empty());
    }
}
