//! The datapath's control output reaches a real keying engine intact: two Pluto engines over an
//! in-memory network, each installing into its own [`Klips`]; the event path of west is flooded
//! (tens of thousands of SA events and acquires while the keying side does not read), then the
//! tunnel SA's soft expiry is reported by its own packets, and when the keying side finally
//! drains the events — as `shell::keying` does — the SA is rekeyed.

use std::net::{Ipv4Addr, SocketAddr};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::conf::IpsecConf;
use crate::config::secrets::Secrets;
use crate::eroute::Eroute;
use crate::pluto::{ErouteOp, Interface, Output, Pluto, PlutoConfig, WhackClient, WhackCmd};
use crate::sadb::{Dir, Sa};
use crate::said::{Proto, Said};

use super::*;

const WEST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const EAST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const PSK: &str = "192.0.2.1 198.51.100.7: PSK \"a very secret phrase\"\n";

struct Side {
    p: Pluto,
    k: Klips,
    addr: Ipv4Addr,
    installed: usize,
}

fn side(addr: Ipv4Addr, seed: u64) -> Side {
    let cfg = PlutoConfig {
        interfaces: vec![Interface {
            virt: "ipsec0".into(),
            phys: "eth0".into(),
            addr: addr.into(),
        }],
        ..PlutoConfig::default()
    };
    let mut p = Pluto::new(cfg, Box::new(StdRng::seed_from_u64(seed)));
    let conf = format!(
        "version 2\nconn net\n\tleft={WEST}\n\tleftsubnet=10.0.1.0/24\n\tright={EAST}\n\trightsubnet=10.0.2.0/24\n\tauto=add\n\tauthby=secret\n"
    );
    let conf = IpsecConf::parse_str(&conf, "/etc/ipsec.conf").expect("conf");
    assert!(p.load_conns(&conf).is_empty());
    p.load_secrets(Secrets::parse_str(PSK, "/etc/ipsec.secrets").expect("secrets"));
    let k = Klips::new();
    k.set_devs(vec![DevInfo {
        name: "ipsec0".into(),
        phys: "eth0".into(),
        addr,
        addr6: None,
        phys_mtu: 1500,
        mtu: 1400,
    }]);
    Side {
        p,
        k,
        addr,
        installed: 0,
    }
}

/// Carries out one side's outputs into its datapath, returning the datagrams it sends.
fn apply(s: &mut Side) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut sends = Vec::new();
    while let Some(o) = s.p.poll_output() {
        match o {
            Output::Send {
                local,
                remote,
                data,
            } => sends.push((local, remote, data)),
            Output::InstallSas { sas, groups, .. } => {
                for spec in &sas {
                    let dir = spec.dir.unwrap_or(if spec.said.dst == s.addr {
                        Dir::In
                    } else {
                        Dir::Out
                    });
                    s.k.sadb_mut()
                        .add(Sa::new(spec, dir, 0).expect("SA"))
                        .expect("add");
                    if spec.said.proto == Proto::Esp && dir == Dir::Out {
                        s.installed += 1;
                    }
                }
                for g in groups.iter().filter(|g| g.len() > 1) {
                    s.k.sadb_mut().group(g).expect("group");
                }
            }
            Output::Eroute { op, src, dst, said } => match op {
                ErouteOp::Add | ErouteOp::Replace => {
                    s.k.eroutes_mut().replace(Eroute::new(src, dst, said));
                }
                ErouteOp::Delete => {
                    s.k.eroutes_mut().delete(&src, &dst);
                }
            },
            Output::DeleteSas { saids } => {
                let mut db = s.k.sadb_mut();
                for x in saids {
                    if db.get(&x).is_some() {
                        let _ = db.delete(&x);
                    }
                }
            }
            _ => {}
        }
    }
    sends
}

/// Runs both engines until no datagram is in flight.
fn run(a: &mut Side, b: &mut Side, now: u64) {
    for _ in 0..1000 {
        let (fa, fb) = (apply(a), apply(b));
        if fa.is_empty() && fb.is_empty() {
            return;
        }
        for (local, remote, data) in fa {
            b.p.handle_datagram(now, remote, local, &data);
        }
        for (local, remote, data) in fb {
            a.p.handle_datagram(now, remote, local, &data);
        }
    }
    panic!("the network never went quiet");
}

/// What `shell::keying` does when the doorbell rings: take every waiting event into Pluto.
fn drain_into_pluto(s: &mut Side, now: u64) -> usize {
    let mut ev = Vec::new();
    s.k.take_events(&mut ev);
    for e in &ev {
        match *e {
            KlipsEvent::Acquire(a) => s.p.handle_acquire(now, a),
            KlipsEvent::Sa(e) => s.p.handle_sa_event(now, e),
        }
    }
    ev.len()
}

fn west_packet() -> Vec<u8> {
    let mut p = vec![0u8; 28];
    crate::wire::ipv4::Ipv4Repr {
        src: Ipv4Addr::new(10, 0, 1, 10),
        dst: Ipv4Addr::new(10, 0, 2, 10),
        protocol: crate::wire::ipv4::proto::UDP,
        tos: 0,
        ttl: 64,
        ident: 1,
        dont_frag: false,
        payload_len: 8,
    }
    .emit(&mut p);
    p
}

#[test]
fn flooded_event_path_still_rekeys() {
    let mut a = side(WEST, 1);
    let mut b = side(EAST, 2);
    a.p.whack(
        0,
        WhackClient(1),
        WhackCmd::Up {
            name: "net".into(),
            asynchronous: false,
        },
    );
    run(&mut a, &mut b, 0);
    assert_eq!(a.installed, 1, "the tunnel is up");
    // Traffic goes through the tunnel.
    let mut out = Vec::new();
    a.k.outbound(0, &west_packet(), 1, &mut rand::thread_rng(), &mut out);
    assert!(matches!(out[..], [Emit::Net { .. }]), "{out:?}");
    let said =
        *a.k.sadb()
            .iter()
            .map(|s| &s.said)
            .find(|s| s.proto == Proto::Esp && s.dst == EAST)
            .expect("outbound ESP SA");
    // The keying side is stuck: 30,000 other SAs report their soft and hard lifetimes, many
    // of them again and again, and trapped traffic asks for keying, none of it read.
    for round in 0..3u32 {
        for i in 0..15_000u32 {
            let other = Said::new(Proto::Esp, 0x10_0000 + i, EAST);
            assert!(a.k.send_event(SaEvent::SoftExpired(other)));
            if round == 2 {
                assert!(a.k.send_event(SaEvent::HardExpired(other)));
            }
            a.k.send_acquire(Acquire {
                src: Ipv4Addr::new(10, 0, 1, 10).into(),
                dst: Ipv4Addr::from(0x0a09_0000 + i).into(),
                proto: 6,
                sport: 1000,
                dport: 80,
            });
        }
    }
    // Now the tunnel SA crosses its soft lifetime: its own packet reports it.
    {
        let sa = a.k.sadb().get(&said).cloned().expect("SA");
        let mut st = sa.state.lock().unwrap();
        st.soft_reported = false;
        drop(st);
        assert!(a.k.send_event(SaEvent::SoftExpired(said)));
    }
    assert!(a.k.notices.get(Notice::SaEventMerged) > 0);
    assert!(a.k.notices.get(Notice::AcquireOverflow) > 0);
    assert_eq!(a.k.notices.get(Notice::SaEventLost), 0);
    // The keying side wakes up and takes everything.
    assert!(a.k.event_doorbell().try_recv().is_ok());
    let taken = drain_into_pluto(&mut a, 2_000);
    assert_eq!(taken, 15_000 * 2 + 1 + EVENT_QUEUE_LEN);
    run(&mut a, &mut b, 2_000);
    assert_eq!(a.installed, 2, "the tunnel SA was rekeyed after the flood");
    let mut out = Vec::new();
    a.k.outbound(0, &west_packet(), 3, &mut rand::thread_rng(), &mut out);
    assert!(matches!(out[..], [Emit::Net { .. }]), "{out:?}");
}
