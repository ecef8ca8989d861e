//! The engine's conns, keyed by `name` / `name[N]`, with an index by what responders and
//! routing look a conn up by: peer address, peer ID, the pair of IDs (ours, the peer's),
//! client (subnet) pair, and the templates (`right=%any`). Every insert, removal and mutable access of a conn goes through
//! [`Conns`], which keeps the index in step; reads see the `BTreeMap` (via `Deref`), so a
//! scan still visits the conns in key order.
//!
//! Each index entry is a key-ordered set, so a lookup that takes the first match of an
//! index set (or of a key-ordered merge of several) finds the same conn as the full scan in
//! key order it replaces: the FreeS/WAN "first conn in order" and most-specific rules of the
//! callers are unchanged, only the conns that cannot match are skipped.

use std::cell::{Ref, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Deref;

use crate::addr::Subnet;
use crate::config::secrets::Id;
use crate::pluto::Connection;

/// The indexed fields of one conn, as they were when it was last (re)indexed.
#[derive(Clone, Debug, PartialEq)]
struct Indexed {
    peer_host: Option<IpAddr>,
    template: bool,
    peer_id: Id,
    our_id: Id,
    clients: (Subnet, Subnet),
}

impl Indexed {
    fn of(c: &Connection) -> Indexed {
        Indexed {
            peer_host: c.that.host,
            template: c.is_template(),
            peer_id: c.that.id.clone(),
            our_id: c.this.id.clone(),
            clients: (c.this.client, c.that.client),
        }
    }

    /// Whether `c` still has these indexed values (no allocation).
    fn matches(&self, c: &Connection) -> bool {
        self.peer_host == c.that.host
            && self.template == c.is_template()
            && self.peer_id == c.that.id
            && self.our_id == c.this.id
            && self.clients == (c.this.client, c.that.client)
    }
}

/// The index itself: key-ordered sets of conn keys per looked-up value.
#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Indexed>,
    by_peer_host: HashMap<IpAddr, BTreeSet<String>>,
    by_peer_id: HashMap<Id, BTreeSet<String>>,
    by_ids: HashMap<(Id, Id), BTreeSet<String>>,
    by_clients: HashMap<(Subnet, Subnet), BTreeSet<String>>,
    templates: BTreeSet<String>,
    /// Conns handed out by `get_mut` since the last lookup.
    dirty: Vec<String>,
    /// `values_mut` was called: rebuild everything.
    all_dirty: bool,
}

fn unlink<K: std::hash::Hash + Eq>(m: &mut HashMap<K, BTreeSet<String>>, k: &K, key: &str) {
    if let Some(set) = m.get_mut(k) {
        set.remove(key);
        if set.is_empty() {
            m.remove(k);
        }
    }
}

impl Index {
    fn add(&mut self, key: &str, e: Indexed) {
        if let Some(h) = e.peer_host {
            self.by_peer_host
                .entry(h)
                .or_default()
                .insert(key.to_string());
        }
        if e.template {
            self.templates.insert(key.to_string());
        }
        self.by_peer_id
            .entry(e.peer_id.clone())
            .or_default()
            .insert(key.to_string());
        self.by_ids
            .entry((e.our_id.clone(), e.peer_id.clone()))
            .or_default()
            .insert(key.to_string());
        self.by_clients
            .entry(e.clients)
            .or_default()
            .insert(key.to_string());
        self.entries.insert(key.to_string(), e);
    }

    fn drop_key(&mut self, key: &str) {
        let Some(e) = self.entries.remove(key) else {
            return;
        };
        if let Some(h) = e.peer_host {
            unlink(&mut self.by_peer_host, &h, key);
        }
        if e.template {
            self.templates.remove(key);
        }
        unlink(&mut self.by_peer_id, &e.peer_id, key);
        unlink(&mut self.by_ids, &(e.our_id, e.peer_id), key);
        unlink(&mut self.by_clients, &e.clients, key);
    }

    /// Brings `key`'s entries in step with `c` (a no-op when nothing indexed changed).
    fn update(&mut self, key: &str, c: Option<&Connection>) {
        match c {
            None => self.drop_key(key),
            Some(c) if self.entries.get(key).is_some_and(|e| e.matches(c)) => {}
            Some(c) => {
                self.drop_key(key);
                self.add(key, Indexed::of(c));
            }
        }
    }
}

/// The engine's conns with their lookup index (see the module documentation).
///
/// Mutable access ([`Conns::get_mut`], [`Conns::values_mut`]) hands out plain references and
/// marks the conns dirty; the next lookup re-indexes them first (so a lookup always agrees
/// with a full scan).
#[derive(Debug, Default)]
pub struct Conns {
    map: BTreeMap<String, Connection>,
    index: RefCell<Index>,
}

impl Deref for Conns {
    type Target = BTreeMap<String, Connection>;
    fn deref(&self) -> &BTreeMap<String, Connection> {
        &self.map
    }
}

impl<'a> IntoIterator for &'a Conns {
    type Item = (&'a String, &'a Connection);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Connection>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl Conns {
    /// No conns.
    pub fn new() -> Conns {
        Conns::default()
    }

    /// Adds or replaces the conn at `key`; returns the one it replaced.
    pub fn insert(&mut self, key: String, c: Connection) -> Option<Connection> {
        self.index.get_mut().update(&key, Some(&c));
        self.map.insert(key, c)
    }

    /// Removes the conn at `key`.
    pub fn remove(&mut self, key: &str) -> Option<Connection> {
        self.index.get_mut().drop_key(key);
        self.map.remove(key)
    }

    /// Removes every conn.
    pub fn clear(&mut self) {
        self.map.clear();
        *self.index.get_mut() = Index::default();
    }

    /// Mutable access to the conn at `key` (re-indexed before the next lookup).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Connection> {
        let c = self.map.get_mut(key)?;
        let ix = self.index.get_mut();
        if !ix.all_dirty && ix.dirty.last().is_none_or(|d| d != key) {
            ix.dirty.push(key.to_string());
        }
        Some(c)
    }

    /// Mutable access to every conn, in key order (all re-indexed before the next lookup).
    pub fn values_mut(&mut self) -> std::collections::btree_map::ValuesMut<'_, String, Connection> {
        let ix = self.index.get_mut();
        ix.all_dirty = true;
        ix.dirty.clear();
        self.map.values_mut()
    }

    /// The index, with the conns changed since the last lookup re-indexed. The index is only
    /// borrowed mutably while there is something to re-index, which cannot happen while a
    /// lookup is under way (marking needs `&mut self`), so lookups may nest.
    fn fresh(&self) -> Ref<'_, Index> {
        let stale = {
            let ix = self.index.borrow();
            ix.all_dirty || !ix.dirty.is_empty()
        };
        if stale {
            let mut ix = self.index.borrow_mut();
            if ix.all_dirty {
                *ix = Index::default();
                for (k, c) in &self.map {
                    ix.add(k, Indexed::of(c));
                }
            } else {
                let dirty = std::mem::take(&mut ix.dirty);
                for k in &dirty {
                    ix.update(k, self.map.get(k));
                }
                ix.dirty = dirty;
                ix.dirty.clear();
            }
        }
        self.index.borrow()
    }

    /// The conns at `keys` (index sets, merged in key order when more than one).
    fn resolve<'a>(&'a self, sets: &[Option<&BTreeSet<String>>]) -> Vec<(&'a str, &'a Connection)> {
        let n = sets.iter().flatten().count();
        let mut v: Vec<(&'a str, &'a Connection)> = sets
            .iter()
            .flatten()
            .flat_map(|s| s.iter())
            .filter_map(|k| self.map.get_key_value(k))
            .map(|(k, c)| (k.as_str(), c))
            .collect();
        if n > 1 {
            v.sort_unstable_by(|a, b| a.0.cmp(b.0));
            v.dedup_by(|a, b| a.0 == b.0);
        }
        v
    }

    /// Conns whose peer host is `peer` (`that.host == Some(peer)`), in key order.
    pub fn with_peer_host(&self, peer: IpAddr) -> Vec<(&str, &Connection)> {
        let ix = self.fresh();
        self.resolve(&[ix.by_peer_host.get(&peer)])
    }

    /// Templates ([`Connection::is_template`]), in key order.
    pub fn templates(&self) -> Vec<(&str, &Connection)> {
        let ix = self.fresh();
        self.resolve(&[Some(&ix.templates)])
    }

    /// Calls `f` on the conns whose peer host is `peer`, then on the templates, each in key
    /// order, until `f` returns `true` (lazily: conns after that one are not looked up).
    pub fn until_peer_host_then_templates(
        &self,
        peer: IpAddr,
        mut f: impl FnMut(&str, &Connection) -> bool,
    ) {
        let ix = self.fresh();
        let at_peer = ix.by_peer_host.get(&peer).into_iter().flatten();
        for k in at_peer.chain(ix.templates.iter()) {
            if let Some(c) = self.map.get(k) {
                if f(k, c) {
                    return;
                }
            }
        }
    }

    /// Conns whose peer host is `peer` or that are templates, in key order (the conns a
    /// responder may pick for a peer at `peer`).
    pub fn with_peer_host_or_template(&self, peer: IpAddr) -> Vec<(&str, &Connection)> {
        let ix = self.fresh();
        self.resolve(&[ix.by_peer_host.get(&peer), Some(&ix.templates)])
    }

    /// Conns whose peer ID equals `id` (`Id`'s equality) or is `%any`, in key order.
    pub fn with_peer_id_or_any(&self, id: &Id) -> Vec<(&str, &Connection)> {
        let ix = self.fresh();
        let any = (*id != Id::Any)
            .then(|| ix.by_peer_id.get(&Id::Any))
            .flatten();
        self.resolve(&[ix.by_peer_id.get(id), any])
    }

    /// Conns whose own ID equals `ours` and whose peer ID equals `his` (`Id`'s equality), in key
    /// order.
    pub fn with_ids(&self, ours: &Id, his: &Id) -> Vec<(&str, &Connection)> {
        let ix = self.fresh();
        // The index is keyed by owned IDs; a lookup builds the pair once.
        self.resolve(&[ix.by_ids.get(&(ours.clone(), his.clone()))])
    }

    /// Conns with this client pair (`this.client`, `that.client`), in key order.
    pub fn with_clients(&self, ours: Subnet, his: Subnet) -> Vec<(&str, &Connection)> {
        let ix = self.fresh();
        self.resolve(&[ix.by_clients.get(&(ours, his))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conf::IpsecConf;
    use crate::pluto::PlutoConfig;

    /// A mix: conns at two peer addresses, templates, shared and distinct peer IDs (one
    /// spelled differently but equal), `%any` IDs, and shared client pairs.
    fn load() -> Conns {
        let mut text = String::from("version 2\n\n");
        let conns = [
            ("a1", "192.0.2.10", "@peer-1", "10.0.1.0/24"),
            ("a2", "192.0.2.10", "@PEER-1.", "10.0.1.0/24"),
            ("a3", "192.0.2.10", "@peer-2", "10.0.2.0/24"),
            ("b1", "192.0.2.11", "%any", "10.0.1.0/24"),
            ("b2", "192.0.2.11", "@peer-2", "10.0.3.0/24"),
            ("rw1", "%any", "@peer-1", "10.0.4.0/24"),
            ("rw2", "%any", "%any", "10.0.1.0/24"),
            ("z", "192.0.2.12", "@peer-3", "10.0.5.0/24"),
        ];
        for (name, right, id, sub) in conns {
            let rid = if id == "%any" {
                String::new()
            } else {
                format!("\trightid={id}\n")
            };
            text += &format!(
                "conn {name}\n\tleft=192.0.2.1\n\tleftsubnet=172.16.0.0/24\n\tright={right}\n\trightsubnet={sub}\n{rid}\tauthby=secret\n\tauto=add\n\n"
            );
        }
        let conf = IpsecConf::parse_str(&text, "/etc/ipsec.conf").unwrap();
        let cfg = PlutoConfig {
            interfaces: vec![crate::pluto::Interface {
                virt: "ipsec0".into(),
                phys: "eth0".into(),
                addr: "192.0.2.1".parse().unwrap(),
            }],
            ..PlutoConfig::default()
        };
        let mut out = Conns::new();
        for s in &conf.conns {
            let c = Connection::from_section(s, &cfg).unwrap();
            out.insert(c.key(), c);
        }
        assert_eq!(out.len(), conns.len());
        out
    }

    fn keys(v: Vec<(&str, &Connection)>) -> Vec<String> {
        v.into_iter().map(|(k, _)| k.to_string()).collect()
    }

    fn scan(c: &Conns, f: impl Fn(&Connection) -> bool) -> Vec<String> {
        c.iter()
            .filter(|(_, c)| f(c))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every lookup equals the full scan in key order it replaces.
    fn agree(c: &Conns) {
        let hosts: [IpAddr; 5] = [
            "2001:db8::10".parse().unwrap(),
            "192.0.2.10".parse().unwrap(),
            "192.0.2.11".parse().unwrap(),
            "192.0.2.12".parse().unwrap(),
            "192.0.2.99".parse().unwrap(),
        ];
        for h in hosts {
            assert_eq!(
                keys(c.with_peer_host(h)),
                scan(c, |x| x.that.host == Some(h))
            );
            assert_eq!(
                keys(c.with_peer_host_or_template(h)),
                scan(c, |x| x.that.host == Some(h) || x.is_template())
            );
        }
        assert_eq!(keys(c.templates()), scan(c, |x| x.is_template()));
        for h in hosts {
            let mut walked = Vec::new();
            c.until_peer_host_then_templates(h, |k, _| {
                walked.push(k.to_string());
                false
            });
            let mut want = scan(c, |x| x.that.host == Some(h));
            want.extend(scan(c, |x| x.is_template()));
            assert_eq!(walked, want);
        }
        for id in ["@peer-1", "@peer-2", "@peer-3", "@nobody", "%any"] {
            let id: Id = id.parse().unwrap();
            assert_eq!(
                keys(c.with_peer_id_or_any(&id)),
                scan(c, |x| x.that.id == Id::Any || x.that.id == id),
                "{id}"
            );
        }
        let mut pairs: Vec<(Id, Id)> = c
            .values()
            .map(|x| (x.this.id.clone(), x.that.id.clone()))
            .collect();
        pairs.push(("@hub".parse().unwrap(), "@peer-1".parse().unwrap()));
        pairs.push(("192.0.2.1".parse().unwrap(), "@PEER-2.".parse().unwrap()));
        for (ours, his) in &pairs {
            assert_eq!(
                keys(c.with_ids(ours, his)),
                scan(c, |x| x.this.id == *ours && x.that.id == *his),
                "{ours} {his}"
            );
        }
        let ours: Subnet = "172.16.0.0/24".parse().unwrap();
        for his in ["10.0.1.0/24", "10.0.2.0/24", "10.0.9.0/24"] {
            let his: Subnet = his.parse().unwrap();
            assert_eq!(
                keys(c.with_clients(ours, his)),
                scan(c, |x| x.this.client == ours && x.that.client == his)
            );
        }
    }

    #[test]
    fn conn_index_lookups_agree_with_a_full_scan() {
        let mut c = load();
        agree(&c);
        // The index sees the same ID in two spellings as one ID.
        let p1: Id = "@peer-1".parse().unwrap();
        assert_eq!(keys(c.with_peer_id_or_any(&p1)), ["a1", "a2", "rw1", "rw2"]);
        // Removals.
        c.remove("a2");
        c.remove("rw2");
        agree(&c);
        // A template instantiated for a peer, and conns changed through get_mut.
        let inst = c
            .get_mut("rw1")
            .unwrap()
            .instantiate("192.0.2.11".parse().unwrap());
        c.insert(inst.key(), inst);
        agree(&c);
        // A lookup inside a lookup's callback, with a change pending, does not clash.
        c.get_mut("a1").unwrap().policy_routed = true;
        let mut nested = 0;
        c.until_peer_host_then_templates("192.0.2.10".parse().unwrap(), |_, x| {
            nested += c.with_peer_id_or_any(&x.that.id).len();
            false
        });
        assert!(nested > 0);
        c.get_mut("a3").unwrap().that.host = Some("192.0.2.12".parse().unwrap());
        c.get_mut("b1").unwrap().that.id = "@peer-3".parse().unwrap();
        c.get_mut("b2").unwrap().this.id = "@hub".parse().unwrap();
        c.get_mut("z").unwrap().that.client = "10.0.1.0/24".parse().unwrap();
        agree(&c);
        // Replacing a conn under the same key, and a change to every conn.
        let mut a1 = c.get("a1").unwrap().clone();
        a1.that.host = None;
        c.insert("a1".into(), a1);
        agree(&c);
        for x in c.values_mut() {
            x.that.id = Id::Any;
        }
        agree(&c);
        c.remove("a1");
        c.clear();
        agree(&c);
        assert!(c.templates().is_empty());
    }
}
