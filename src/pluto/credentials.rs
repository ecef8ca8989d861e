//! Secrets lookup for a connection, whatever the IKE version: our IDs, the pre-shared key
//! for a peer, our RSA private key.

use zeroize::Zeroizing;

use crate::config::secrets::Id;
use crate::pluto::connection::Connection;
use crate::pluto::crypto::{PrivateKey, PrivateKeyParts};
use crate::pluto::engine::Pluto;

impl Pluto {
    /// Our IDs for secret lookup.
    pub(crate) fn our_ids(&self, c: &Connection) -> Vec<Id> {
        let mut v = vec![c.this.id.clone()];
        if let Some(h) = c.this.host {
            if !v.contains(&Id::from_ip(h)) {
                v.push(Id::from_ip(h));
            }
        }
        v
    }

    /// The pre-shared key for a connection (peer ID `peer`, default the conn's). A template or
    /// an instance also finds its peer by address and by `%any`; a `rightid=%any` conn asked
    /// for a given peer ID also by `%any` (as when its ISAKMP SA was made).
    pub(crate) fn psk_for(&mut self, key: &str, peer: Option<&Id>) -> Option<Zeroizing<Vec<u8>>> {
        let c = self.conns.get(key)?;
        let ours = self.our_ids(c);
        let mut theirs = vec![peer.cloned().unwrap_or_else(|| c.that.id.clone())];
        if c.that.id == Id::Any && peer.is_some() && !c.is_template() && c.instance == 0 {
            theirs.push(Id::Any);
        }
        if c.is_template() || c.instance != 0 {
            if let Some(h) = c.that.host {
                theirs.push(Id::from_ip(h));
            }
            theirs.push(Id::Any);
        }
        match self.secrets.find_psk(&ours, &theirs) {
            Ok(Some(s)) => Some(Zeroizing::new(s.as_bytes().to_vec())),
            Ok(None) => None,
            Err(e) => {
                self.log(format!("{e}"));
                None
            }
        }
    }

    /// Our RSA private key for a connection.
    pub(crate) fn rsa_key_for(&mut self, key: &str) -> Option<PrivateKey> {
        let c = self.conns.get(key)?;
        let ours = self.our_ids(c);
        let want = c.this.rsakey.clone();
        let found = match self.secrets.find_rsa(&ours) {
            Ok(Some(k)) => Some(k.clone()),
            Ok(None) => None,
            Err(e) => {
                self.log(format!("{e}"));
                None
            }
        };
        let candidates: Vec<_> = found
            .into_iter()
            .chain(self.secrets.entries().iter().filter_map(|e| match &e.key {
                crate::config::secrets::SecretKey::Rsa(k) => Some(k.clone()),
                _ => None,
            }))
            .collect();
        for k in candidates {
            let parts = PrivateKeyParts {
                modulus: k.modulus.clone(),
                public_exponent: k.public_exponent.clone(),
                private_exponent: k.private_exponent.as_bytes().to_vec(),
                prime1: k.prime1.as_bytes().to_vec(),
                prime2: k.prime2.as_bytes().to_vec(),
                exponent1: k.exponent1.as_bytes().to_vec(),
                exponent2: k.exponent2.as_bytes().to_vec(),
                coefficient: k.coefficient.as_bytes().to_vec(),
            };
            if let Ok(pk) = PrivateKey::from_parts(&parts) {
                match &want {
                    Some(w) if pk.public_key() != *w => continue,
                    _ => return Some(pk),
                }
            }
        }
        None
    }
}
