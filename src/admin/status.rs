//! The gateway's status as data, and its two renderings: `ipsec status --json` (schema
//! `rswan-status/1`, docs/status-json.md, docs/status-schema.json) and the Prometheus text
//! exposition of `ipsec metrics` and the `metrics=ADDR:PORT` endpoint (docs/status-json.md
//! lists the metric names). Every configured conn appears, with its state, so a tunnel that is
//! down is visible. Sans-IO: the shell gathers the facts ([`Facts`]) and calls [`collect`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::klips::drops::{DropReason, Notice};
use crate::klips::Klips;
use crate::sadb::Dir;

use super::json::Json;
use super::view::PlutoView;

/// The schema name and version of `ipsec status --json`.
pub const SCHEMA: &str = "rswan-status/1";

/// A conn of ipsec.conf as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredConn {
    /// Name.
    pub name: String,
    /// `auto=` (`add`, `route`, `start`, `manual`, `ignore`).
    pub auto: String,
}

/// One ipsecN device with the kernel's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    /// ipsecN.
    pub name: String,
    /// Its physical interface.
    pub phys: String,
    /// Its address.
    pub addr: String,
    /// MTU.
    pub mtu: usize,
    /// `/sys/class/net/DEV/statistics/*` values by name (`rx_packets`, `tx_dropped`, …).
    pub stats: Vec<(String, u64)>,
}

/// What the shell gathers for [`collect`].
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Daemon pid.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime: u64,
    /// The conns of ipsec.conf (the daemon's file).
    pub configured: Vec<ConfiguredConn>,
    /// Manual conns that are up.
    pub manual_up: Vec<String>,
    /// Pluto's view (None if the keying daemon did not answer).
    pub pluto: Option<PlutoView>,
    /// ipsecN counters.
    pub interfaces: Vec<IfaceCounters>,
}

/// One conn's state for the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnState {
    /// Name (instances of road-warrior conns as `rw[1]`).
    pub name: String,
    /// `ike`, `manual` or `none` (configured with auto=ignore and not added).
    pub kind: &'static str,
    /// `auto=` from ipsec.conf (empty for instances and conns added from other files).
    pub auto: String,
    /// Loaded into Pluto (or a manual conn that is up).
    pub loaded: bool,
    /// Routing (`unrouted`, `prospective erouted`, `erouted`, …; empty when not loaded).
    pub routing: String,
    /// An IPsec SA is established (or the manual conn is up).
    pub up: bool,
}

/// The whole status.
#[derive(Debug, Clone)]
pub struct Status {
    facts: Facts,
    conns: Vec<ConnState>,
    json: Json,
}

fn dir_text(d: Dir) -> &'static str {
    match d {
        Dir::In => "in",
        Dir::Out => "out",
    }
}

/// Builds the status from the datapath tables (read now) and the gathered facts.
pub fn collect(klips: &Klips, now: u64, facts: Facts) -> Status {
    let mut conns: Vec<ConnState> = Vec::new();
    let pluto_conns = facts
        .pluto
        .as_ref()
        .map(|p| p.conns.clone())
        .unwrap_or_default();
    for c in &facts.configured {
        let manual = facts.manual_up.contains(&c.name);
        let pc = pluto_conns.iter().find(|p| p.name == c.name);
        conns.push(ConnState {
            name: c.name.clone(),
            kind: if c.auto == "manual" || manual {
                "manual"
            } else if pc.is_some() || c.auto != "ignore" {
                "ike"
            } else {
                "none"
            },
            auto: c.auto.clone(),
            loaded: pc.is_some() || manual,
            routing: pc.map(|p| p.routing.clone()).unwrap_or_default(),
            up: pc.is_some_and(|p| p.up) || manual,
        });
    }
    for p in &pluto_conns {
        if !conns.iter().any(|c| c.name == p.name) {
            conns.push(ConnState {
                name: p.name.clone(),
                kind: "ike",
                auto: String::new(),
                loaded: true,
                routing: p.routing.clone(),
                up: p.up,
            });
        }
    }
    for m in &facts.manual_up {
        if !conns.iter().any(|c| &c.name == m) {
            conns.push(ConnState {
                name: m.clone(),
                kind: "manual",
                auto: String::new(),
                loaded: true,
                routing: String::new(),
                up: true,
            });
        }
    }
    let json = to_json(klips, now, &facts, &conns);
    Status { facts, conns, json }
}

/// The conn owning an SAID according to Pluto's view.
fn sa_conn(view: Option<&PlutoView>, said: &crate::said::Said) -> Option<String> {
    view?
        .child_sas
        .iter()
        .find(|c| c.inbound.contains(said) || c.outbound.contains(said))
        .map(|c| c.conn.clone())
}

fn to_json(klips: &Klips, now: u64, facts: &Facts, conns: &[ConnState]) -> Json {
    let view = facts.pluto.as_ref();
    let pconn = |name: &str| view.and_then(|v| v.conns.iter().find(|c| c.name == name));
    let conns_j = Json::Arr(
        conns
            .iter()
            .map(|c| {
                let p = pconn(&c.name);
                Json::obj([
                    ("name", Json::str(&c.name)),
                    ("kind", Json::str(c.kind)),
                    ("auto", Json::str(&c.auto)),
                    ("loaded", Json::Bool(c.loaded)),
                    ("up", Json::Bool(c.up)),
                    ("routing", Json::str(&c.routing)),
                    (
                        "description",
                        p.map_or(Json::Null, |p| Json::str(&p.describe)),
                    ),
                    ("policy", p.map_or(Json::Null, |p| Json::str(&p.policy))),
                    (
                        "our_client",
                        p.map_or(Json::Null, |p| Json::str(p.our_client.to_string())),
                    ),
                    (
                        "peer_client",
                        p.map_or(Json::Null, |p| Json::str(p.peer_client.to_string())),
                    ),
                    (
                        "newest_ike_sa",
                        p.map_or(Json::Null, |p| Json::U(p.newest_isakmp)),
                    ),
                    (
                        "newest_child_sa",
                        p.map_or(Json::Null, |p| Json::U(p.newest_ipsec)),
                    ),
                    (
                        "ike_lifetime_s",
                        p.map_or(Json::Null, |p| Json::U(p.ike_life)),
                    ),
                    (
                        "ipsec_lifetime_s",
                        p.map_or(Json::Null, |p| Json::U(p.ipsec_life)),
                    ),
                ])
            })
            .collect(),
    );
    let event = |e: &Option<(String, u64)>| match e {
        Some((name, secs)) => Json::obj([("name", Json::str(name)), ("in_s", Json::U(*secs))]),
        None => Json::Null,
    };
    let hex8 = |b: &[u8; 8]| Json::str(b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    let ike = Json::Arr(
        view.map(|v| v.ike_sas.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                Json::obj([
                    ("serial", Json::U(s.serial)),
                    ("conn", Json::str(&s.conn)),
                    ("version", Json::U(u64::from(s.version))),
                    ("state", Json::str(&s.state)),
                    ("established", Json::Bool(s.established)),
                    ("initiator", Json::Bool(s.initiator)),
                    ("local", Json::str(s.local.to_string())),
                    ("remote", Json::str(s.remote.to_string())),
                    ("initiator_spi", hex8(&s.icookie)),
                    ("responder_spi", hex8(&s.rcookie)),
                    (
                        "algorithm",
                        s.algorithm.as_deref().map_or(Json::Null, Json::str),
                    ),
                    ("event", event(&s.event)),
                    ("expires_in_s", Json::U(s.expires_in)),
                ])
            })
            .collect(),
    );
    let saids =
        |v: &[crate::said::Said]| Json::Arr(v.iter().map(|s| Json::str(s.to_string())).collect());
    let child = Json::Arr(
        view.map(|v| v.child_sas.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                Json::obj([
                    ("serial", Json::U(s.serial)),
                    ("conn", Json::str(&s.conn)),
                    ("ike_sa", Json::U(s.parent)),
                    ("state", Json::str(&s.state)),
                    ("established", Json::Bool(s.established)),
                    (
                        "algorithm",
                        s.algorithm.as_deref().map_or(Json::Null, Json::str),
                    ),
                    ("our_client", Json::str(s.our_client.to_string())),
                    ("peer_client", Json::str(s.peer_client.to_string())),
                    ("inbound", saids(&s.inbound)),
                    ("outbound", saids(&s.outbound)),
                    ("event", event(&s.event)),
                    ("expires_in_s", Json::U(s.expires_in)),
                    ("used_s_ago", s.used_ago.map_or(Json::Null, Json::U)),
                ])
            })
            .collect(),
    );
    let sadb = klips.sadb();
    let sas = Json::Arr(
        sadb.sorted()
            .iter()
            .map(|sa| {
                let st = sa.state.lock().unwrap_or_else(|p| p.into_inner());
                let cur = sa.life_current(&st, now);
                let e = &sa.errors;
                Json::obj([
                    ("said", Json::str(sa.said.to_string())),
                    (
                        "protocol",
                        Json::str(format!("{:?}", sa.said.proto).to_lowercase()),
                    ),
                    ("spi", Json::U(u64::from(sa.said.spi))),
                    ("destination", Json::str(sa.said.dst.to_string())),
                    ("source", Json::str(sa.src.to_string())),
                    ("direction", Json::str(dir_text(sa.dir))),
                    ("transform", Json::str(sa.xform.name())),
                    (
                        "conn",
                        sa_conn(view, &sa.said).map_or(Json::Null, Json::str),
                    ),
                    ("bytes", Json::U(sa.bytes.load(Ordering::Relaxed))),
                    ("packets", Json::U(sa.packets.load(Ordering::Relaxed))),
                    ("age_s", Json::U(cur.addtime)),
                    (
                        "idle_s",
                        st.last_used
                            .map_or(Json::Null, |t| Json::U(now.saturating_sub(t))),
                    ),
                    ("expired", Json::Bool(st.dead)),
                    (
                        "errors",
                        Json::obj([
                            ("replay", Json::U(e.ooo.load(Ordering::Relaxed))),
                            ("auth", Json::U(e.auth.load(Ordering::Relaxed))),
                            ("encr_size", Json::U(e.encr_size.load(Ordering::Relaxed))),
                            ("encr_pad", Json::U(e.encr_pad.load(Ordering::Relaxed))),
                        ]),
                    ),
                ])
            })
            .collect(),
    );
    drop(sadb);
    let eroutes = Json::Arr(
        klips
            .eroutes()
            .sorted()
            .iter()
            .map(|e| {
                Json::obj([
                    ("source", Json::str(e.src.to_string())),
                    ("destination", Json::str(e.dst.to_string())),
                    ("said", Json::str(e.said.to_string())),
                    ("packets", Json::U(e.packets())),
                ])
            })
            .collect(),
    );
    let (rx, tx) = klips.drops.totals();
    let drops = Json::obj([
        ("rx", Json::U(rx)),
        ("tx", Json::U(tx)),
        (
            "by_reason",
            Json::Obj(
                DropReason::ALL
                    .iter()
                    .map(|r| (r.text().to_string(), Json::U(klips.drops.get(*r))))
                    .collect(),
            ),
        ),
    ]);
    let notices = Json::Obj(
        Notice::ALL
            .iter()
            .map(|n| (n.text().to_string(), Json::U(klips.notices.get(*n))))
            .collect(),
    );
    let limits = Json::Obj(
        view.map(|v| limit_list(&v.limits))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Json::U(v)))
            .collect(),
    );
    let ifaces = Json::Arr(
        facts
            .interfaces
            .iter()
            .map(|i| {
                Json::obj([
                    ("name", Json::str(&i.name)),
                    ("physical", Json::str(&i.phys)),
                    ("address", Json::str(&i.addr)),
                    ("mtu", Json::U(i.mtu as u64)),
                    (
                        "counters",
                        Json::Obj(
                            i.stats
                                .iter()
                                .map(|(k, v)| (k.clone(), Json::U(*v)))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect(),
    );
    Json::obj([
        ("schema", Json::str(SCHEMA)),
        ("version", Json::str(crate::shell::daemon::VERSION)),
        ("pid", Json::U(u64::from(facts.pid))),
        ("uptime_s", Json::U(facts.uptime)),
        ("pluto", Json::Bool(view.is_some())),
        ("conns", conns_j),
        ("ike_sas", ike),
        ("child_sas", child),
        ("sas", sas),
        ("eroutes", eroutes),
        ("drops", drops),
        ("events", notices),
        ("pluto_limits", limits),
        ("interfaces", ifaces),
    ])
}

/// Pluto's bound counters by name.
pub fn limit_list(p: &crate::pluto::LimitCounters) -> Vec<(&'static str, u64)> {
    vec![
        ("half_open_evicted", p.half_open_evicted),
        ("half_open_refused", p.half_open_refused),
        ("half_open_late", p.half_open_late),
        ("states_refused", p.states_refused),
        ("isakmp_sas_deleted", p.isakmp_sas_deleted),
        ("ipsec_sas_refused", p.ipsec_sas_refused),
        ("quick_modes_refused", p.quick_modes_refused),
        ("log_lines_suppressed", p.log_lines_suppressed),
        ("log_lines_dropped", p.log_lines_dropped),
    ]
}

impl Status {
    /// `ipsec status --json`: one JSON document and a newline.
    pub fn json(&self) -> String {
        format!("{}\n", self.json)
    }

    /// The conns and their states.
    pub fn conns(&self) -> &[ConnState] {
        &self.conns
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut m = Metrics::default();
        m.family("rswan_info", "gauge", "rswan version and daemon pid.");
        m.sample(
            "rswan_info",
            &[
                ("version", crate::shell::daemon::VERSION),
                ("pid", &self.facts.pid.to_string()),
            ],
            1,
        );
        m.family(
            "rswan_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        m.sample("rswan_uptime_seconds", &[], self.facts.uptime);
        m.family(
            "rswan_conn_up",
            "gauge",
            "1 when an IPsec SA of the conn is established (a manual conn is up), else 0.",
        );
        for c in &self.conns {
            m.sample(
                "rswan_conn_up",
                &[("conn", &c.name), ("kind", c.kind)],
                u64::from(c.up),
            );
        }
        m.family(
            "rswan_conn_loaded",
            "gauge",
            "1 when the conn is loaded into the keying daemon (or a manual conn is up).",
        );
        for c in &self.conns {
            m.sample(
                "rswan_conn_loaded",
                &[("conn", &c.name), ("auto", &c.auto)],
                u64::from(c.loaded),
            );
        }
        m.family(
            "rswan_conn_routing",
            "gauge",
            "The conn's routing state (the label), always 1.",
        );
        for c in self.conns.iter().filter(|c| !c.routing.is_empty()) {
            m.sample(
                "rswan_conn_routing",
                &[("conn", &c.name), ("routing", &c.routing)],
                1,
            );
        }
        let view = self.facts.pluto.as_ref();
        m.family(
            "rswan_ike_sa_established",
            "gauge",
            "IKE SAs by conn and state; 1 if established.",
        );
        for s in view.map(|v| v.ike_sas.as_slice()).unwrap_or_default() {
            m.sample(
                "rswan_ike_sa_established",
                &[
                    ("conn", &s.conn),
                    ("serial", &s.serial.to_string()),
                    ("state", &s.state),
                ],
                u64::from(s.established),
            );
        }
        m.family(
            "rswan_child_sa_expires_seconds",
            "gauge",
            "Seconds until an established IPsec SA bundle expires.",
        );
        for s in view.map(|v| v.child_sas.as_slice()).unwrap_or_default() {
            if s.established {
                m.sample(
                    "rswan_child_sa_expires_seconds",
                    &[("conn", &s.conn), ("serial", &s.serial.to_string())],
                    s.expires_in,
                );
            }
        }
        // SADB counters from the JSON (read once, consistent with it).
        let sas = self
            .json
            .get("sas")
            .and_then(Json::as_arr)
            .unwrap_or_default();
        for (name, key, help) in [
            ("rswan_sa_bytes_total", "bytes", "Bytes through the SA."),
            (
                "rswan_sa_packets_total",
                "packets",
                "Packets through the SA.",
            ),
        ] {
            m.family(name, "counter", help);
            for sa in sas {
                let s = |k: &str| sa.get(k).and_then(Json::as_str).unwrap_or("").to_string();
                let conn = s("conn");
                m.sample(
                    name,
                    &[
                        ("said", &s("said")),
                        ("direction", &s("direction")),
                        ("conn", &conn),
                    ],
                    sa.get(key).and_then(Json::as_u64).unwrap_or(0),
                );
            }
        }
        m.family(
            "rswan_sa_errors_total",
            "counter",
            "Per-SA errors (replay, auth, encr_size, encr_pad).",
        );
        for sa in sas {
            let said = sa
                .get("said")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(Json::Obj(errs)) = sa.get("errors") {
                for (k, v) in errs {
                    m.sample(
                        "rswan_sa_errors_total",
                        &[("said", &said), ("error", k)],
                        v.as_u64().unwrap_or(0),
                    );
                }
            }
        }
        m.family(
            "rswan_drops_total",
            "counter",
            "Packets discarded by the datapath, by reason.",
        );
        if let Some(Json::Obj(by)) = self.json.get("drops").and_then(|d| d.get("by_reason")) {
            for (k, v) in by {
                m.sample(
                    "rswan_drops_total",
                    &[("reason", k)],
                    v.as_u64().unwrap_or(0),
                );
            }
        }
        m.family(
            "rswan_events_total",
            "counter",
            "Datapath bounds hit and full queues.",
        );
        if let Some(Json::Obj(ev)) = self.json.get("events") {
            for (k, v) in ev {
                m.sample(
                    "rswan_events_total",
                    &[("event", k)],
                    v.as_u64().unwrap_or(0),
                );
            }
        }
        m.family(
            "rswan_pluto_limit_hits_total",
            "counter",
            "Keying daemon bounds hit.",
        );
        if let Some(v) = view {
            for (k, n) in limit_list(&v.limits) {
                m.sample("rswan_pluto_limit_hits_total", &[("limit", k)], n);
            }
        }
        m.family(
            "rswan_eroute_packets_total",
            "counter",
            "Packets that matched an eroute.",
        );
        for e in self
            .json
            .get("eroutes")
            .and_then(Json::as_arr)
            .unwrap_or_default()
        {
            let s = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            m.sample(
                "rswan_eroute_packets_total",
                &[
                    ("source", &s("source")),
                    ("destination", &s("destination")),
                    ("said", &s("said")),
                ],
                e.get("packets").and_then(Json::as_u64).unwrap_or(0),
            );
        }
        m.family(
            "rswan_interface_counter",
            "counter",
            "ipsecN kernel counters (rx_packets, tx_bytes, rx_dropped, …).",
        );
        for i in &self.facts.interfaces {
            for (k, v) in &i.stats {
                m.sample(
                    "rswan_interface_counter",
                    &[("interface", &i.name), ("counter", k)],
                    *v,
                );
            }
        }
        m.0
    }
}

/// A Prometheus text exposition being written.
#[derive(Default)]
struct Metrics(String);

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// A label value as the exposition format wants it: `\`, `"` and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::view::{ChildSaView, ConnView};

    fn facts() -> Facts {
        let conn = |name: &str, up: bool, routing: &str| ConnView {
            name: name.into(),
            base: name.into(),
            routing: routing.into(),
            up,
            describe: "10.0.1.0/24===192.0.2.1...192.0.2.2===10.0.2.0/24".into(),
            policy: "PSK+ENCRYPT+TUNNEL+PFS".into(),
            our_client: "10.0.1.0/24".parse().unwrap(),
            peer_client: "10.0.2.0/24".parse().unwrap(),
            newest_isakmp: 1,
            newest_ipsec: 2,
            ike_life: 3600,
            ipsec_life: 28800,
        };
        Facts {
            pid: 42,
            uptime: 7,
            configured: vec![
                ConfiguredConn {
                    name: "net".into(),
                    auto: "start".into(),
                },
                ConfiguredConn {
                    name: "down".into(),
                    auto: "add".into(),
                },
                ConfiguredConn {
                    name: "off".into(),
                    auto: "ignore".into(),
                },
            ],
            manual_up: vec![],
            pluto: Some(PlutoView {
                conns: vec![
                    conn("net", true, "erouted"),
                    conn("down", false, "unrouted"),
                ],
                child_sas: vec![ChildSaView {
                    serial: 2,
                    conn: "net".into(),
                    parent: 1,
                    state: "STATE_QUICK_I2".into(),
                    established: true,
                    algorithm: Some("AES_128-HMAC_SHA1".into()),
                    our_client: "10.0.1.0/24".parse().unwrap(),
                    peer_client: "10.0.2.0/24".parse().unwrap(),
                    inbound: vec![],
                    outbound: vec![],
                    event: Some(("EVENT_SA_REPLACE".into(), 27000)),
                    expires_in: 28000,
                    used_ago: None,
                }],
                ..PlutoView::default()
            }),
            interfaces: vec![IfaceCounters {
                name: "ipsec0".into(),
                phys: "eth0".into(),
                addr: "192.0.2.1".into(),
                mtu: 1355,
                stats: vec![("rx_packets".into(), 5), ("tx_dropped".into(), 1)],
            }],
        }
    }

    #[test]
    fn every_configured_conn_is_listed_with_its_state() {
        let k = Klips::new();
        let s = collect(&k, 0, facts());
        let c: Vec<(&str, &str, bool, bool)> = s
            .conns()
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.loaded, c.up))
            .collect();
        assert_eq!(
            c,
            vec![
                ("net", "ike", true, true),
                ("down", "ike", true, false),
                ("off", "none", false, false)
            ]
        );
        let j = s.json();
        assert!(
            j.starts_with("{\"schema\":\"rswan-status/1\",\"version\":\""),
            "{j}"
        );
        assert!(j.contains("\"name\":\"down\",\"kind\":\"ike\",\"auto\":\"add\",\"loaded\":true,\"up\":false,\"routing\":\"unrouted\""), "{j}");
        assert!(j.ends_with("}\n"));
    }

    #[test]
    fn prometheus_exposition() {
        let k = Klips::new();
        k.drops.count(DropReason::Replay, true);
        let text = collect(&k, 0, facts()).prometheus();
        for want in [
            "# HELP rswan_conn_up 1 when an IPsec SA of the conn is established (a manual conn is up), else 0.\n# TYPE rswan_conn_up gauge\n",
            "rswan_conn_up{conn=\"net\",kind=\"ike\"} 1\n",
            "rswan_conn_up{conn=\"down\",kind=\"ike\"} 0\n",
            "rswan_conn_up{conn=\"off\",kind=\"none\"} 0\n",
            "rswan_conn_loaded{conn=\"off\",auto=\"ignore\"} 0\n",
            "rswan_conn_routing{conn=\"net\",routing=\"erouted\"} 1\n",
            "rswan_drops_total{reason=\"replay\"} 1\n",
            "rswan_drops_total{reason=\"no SA\"} 0\n",
            "rswan_child_sa_expires_seconds{conn=\"net\",serial=\"2\"} 28000\n",
            "rswan_interface_counter{interface=\"ipsec0\",counter=\"rx_packets\"} 5\n",
            "# TYPE rswan_sa_bytes_total counter\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').unwrap();
            assert!(v.parse::<u64>().is_ok(), "{l}");
        }
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
