//! SA lifetimes (spec 5.4 `life(c,s,h)`): soft and hard limits on allocations, bytes, add time,
//! use time and packets, and the check that tells when a limit is crossed.

use std::fmt::Write as _;

/// One kind of lifetime: soft and hard limits, 0 meaning none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Crossing it asks the keying daemon to rekey.
    pub soft: u64,
    /// Crossing it kills the SA.
    pub hard: u64,
}

/// The five KLIPS lifetime kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifeKind {
    /// Times the SA was allocated (grouped/referenced).
    Allocations,
    /// Bytes processed.
    Bytes,
    /// Seconds since the SA was added.
    AddTime,
    /// Seconds since the SA was first used.
    UseTime,
    /// Packets processed.
    Packets,
}

impl LifeKind {
    /// The name used in `life(c,s,h)` output and in `--life` arguments.
    pub fn name(self) -> &'static str {
        match self {
            LifeKind::Allocations => "allocations",
            LifeKind::Bytes => "bytes",
            LifeKind::AddTime => "addtime",
            LifeKind::UseTime => "usetime",
            LifeKind::Packets => "packets",
        }
    }
}

/// All limits of an SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    /// Allocation limits.
    pub allocations: Limit,
    /// Byte limits.
    pub bytes: Limit,
    /// Seconds since added.
    pub addtime: Limit,
    /// Seconds since first use.
    pub usetime: Limit,
    /// Packet limits.
    pub packets: Limit,
}

/// Current values the limits are compared with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifeCurrent {
    /// Allocations so far.
    pub allocations: u64,
    /// Bytes so far.
    pub bytes: u64,
    /// Seconds since added.
    pub addtime: u64,
    /// Seconds since first use (0 if never used).
    pub usetime: u64,
    /// Packets so far.
    pub packets: u64,
}

/// What crossing the limits means for the SA now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Within all limits.
    Live,
    /// A soft limit is crossed: rekey soon.
    Soft(LifeKind),
    /// A hard limit is crossed: the SA is dead.
    Hard(LifeKind),
}

impl Lifetimes {
    fn each(&self) -> [(LifeKind, Limit); 5] {
        [
            (LifeKind::Allocations, self.allocations),
            (LifeKind::Bytes, self.bytes),
            (LifeKind::AddTime, self.addtime),
            (LifeKind::UseTime, self.usetime),
            (LifeKind::Packets, self.packets),
        ]
    }

    /// The limit of one kind, mutably (for argument parsing).
    pub fn get_mut(&mut self, kind: LifeKind) -> &mut Limit {
        match kind {
            LifeKind::Allocations => &mut self.allocations,
            LifeKind::Bytes => &mut self.bytes,
            LifeKind::AddTime => &mut self.addtime,
            LifeKind::UseTime => &mut self.usetime,
            LifeKind::Packets => &mut self.packets,
        }
    }

    /// Compares `cur` with the limits; hard limits take precedence.
    pub fn check(&self, cur: &LifeCurrent) -> Expiry {
        let mut soft = None;
        for (kind, lim) in self.each() {
            let c = cur.get(kind);
            if lim.hard != 0 && c >= lim.hard {
                return Expiry::Hard(kind);
            }
            if soft.is_none() && lim.soft != 0 && c >= lim.soft {
                soft = Some(kind);
            }
        }
        soft.map_or(Expiry::Live, Expiry::Soft)
    }

    /// The `life(c,s,h)=` items: `name(cur,soft,hard)` for each kind whose current value is above 1
    /// or which has a limit (spec 5.4).
    pub fn proc_items(&self, cur: &LifeCurrent) -> String {
        let mut s = String::new();
        for (kind, lim) in self.each() {
            let c = cur.get(kind);
            if c > 1 || lim.soft != 0 || lim.hard != 0 {
                let _ = write!(s, "{}({},{},{})", kind.name(), c, lim.soft, lim.hard);
            }
        }
        s
    }

    /// Parses a `--life` argument: comma-separated `soft-KIND=V` / `hard-KIND=V`.
    pub fn parse_arg(&mut self, arg: &str) -> Result<(), String> {
        for item in arg.split(',').filter(|s| !s.is_empty()) {
            let (name, v) = item
                .split_once('=')
                .ok_or_else(|| format!("lifetime \"{item}\" is not NAME=VALUE"))?;
            let (which, kind) = name
                .split_once('-')
                .ok_or_else(|| format!("lifetime name \"{name}\" is not soft-KIND or hard-KIND"))?;
            let kind = match kind {
                "allocations" => LifeKind::Allocations,
                "bytes" => LifeKind::Bytes,
                "addtime" => LifeKind::AddTime,
                "usetime" => LifeKind::UseTime,
                "packets" => LifeKind::Packets,
                _ => return Err(format!("unknown lifetime kind \"{kind}\"")),
            };
            let v: u64 = v
                .parse()
                .map_err(|_| format!("lifetime value \"{v}\" is not a number"))?;
            let lim = self.get_mut(kind);
            match which {
                "soft" => lim.soft = v,
                "hard" => lim.hard = v,
                _ => {
                    return Err(format!(
                        "lifetime name \"{name}\" is not soft-KIND or hard-KIND"
                    ))
                }
            }
        }
        Ok(())
    }
}

impl LifeCurrent {
    /// The current value of one kind.
    pub fn get(&self, kind: LifeKind) -> u64 {
        match kind {
            LifeKind::Allocations => self.allocations,
            LifeKind::Bytes => self.bytes,
            LifeKind::AddTime => self.addtime,
            LifeKind::UseTime => self.usetime,
            LifeKind::Packets => self.packets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_then_hard() {
        let mut l = Lifetimes::default();
        l.parse_arg("soft-packets=10,hard-packets=20").unwrap();
        let mut c = LifeCurrent::default();
        assert_eq!(l.check(&c), Expiry::Live);
        c.packets = 10;
        assert_eq!(l.check(&c), Expiry::Soft(LifeKind::Packets));
        c.packets = 20;
        assert_eq!(l.check(&c), Expiry::Hard(LifeKind::Packets));
        assert!(l.parse_arg("medium-packets=1").is_err());
        assert!(l.parse_arg("soft-bogus=1").is_err());
    }

    #[test]
    fn proc_items_format() {
        let l = Lifetimes::default();
        let c = LifeCurrent {
            bytes: 14073,
            addtime: 269,
            usetime: 149,
            packets: 14,
            ..Default::default()
        };
        assert_eq!(
            l.proc_items(&c),
            "bytes(14073,0,0)addtime(269,0,0)usetime(149,0,0)packets(14,0,0)"
        );
    }
}
