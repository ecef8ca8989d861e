//! The keying-daemon thread: feeds the sans-IO [`Pluto`] core with IKE datagrams (UDP 500, and
//! UDP 4500 via the datapath), acquires and SA lifetime events from the datapath, whack commands
//! from the control socket, timer ticks, the usage of its SAs (about once a second) and the
//! shunt eroutes (every shunt scan interval), and carries out its [`Output`]s: datagrams, SAs
//! and eroutes into the datapath tables, updown scripts, log lines and whack progress lines.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::eroute::Eroute;
use crate::klips::{Emit, Klips, KlipsEvent, SaEvent};
use crate::pluto::{ErouteOp, Output, Pluto, ShuntEroute, WhackClient, WhackCmd};
use crate::sadb::{Dir, Sa};
use crate::said::{Proto, Said};

use super::datapath::Clock;
use super::net::{UdpReceiver6, UdpSock, MAX_PKT};

/// The IKE sockets of the IPv6 interface addresses: UDP 500 and UDP 4500 (the latter shared
/// with the datapath's ESP-in-UDP reader, which hands IKE over).
#[derive(Clone)]
pub struct Ike6Socks {
    /// `[::]:500`.
    pub sock500: Arc<UdpReceiver6>,
    /// `[::]:4500`.
    pub sock4500: Arc<UdpReceiver6>,
}

/// Every socket IKE sends from.
struct Socks {
    sock500: Arc<UdpSock>,
    sock4500: Arc<UdpSock>,
    v6: Option<Ike6Socks>,
}

/// An IKE datagram for the keying daemon (on 4500 the non-ESP marker is already stripped).
#[derive(Debug, Clone)]
pub struct IkeIn {
    /// Our address and port it arrived on.
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// The IKE message.
    pub data: Vec<u8>,
}

/// A line for a whack client, or the end of its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhackLine {
    /// `NNN text`.
    Line(u16, String),
    /// Done with this exit status.
    Done(i32),
}

/// The lines of one whack command as they arrive: the lines one event produced come together
/// (one wake-up of the client's thread, not one per line).
pub struct WhackReceiver {
    rx: Receiver<Vec<WhackLine>>,
    buf: std::collections::VecDeque<WhackLine>,
}

impl WhackReceiver {
    /// The next line, waiting up to `d` for the next batch.
    pub fn recv_timeout(
        &mut self,
        d: Duration,
    ) -> Result<WhackLine, crossbeam_channel::RecvTimeoutError> {
        loop {
            if let Some(line) = self.buf.pop_front() {
                return Ok(line);
            }
            self.buf.extend(self.rx.recv_timeout(d)?);
        }
    }

    /// The next line of the batch already received, without waiting.
    pub fn buffered(&mut self) -> Option<WhackLine> {
        self.buf.pop_front()
    }
}

/// Whack clients' lines, gathered while the keying thread carries out one event's outputs and
/// sent together after them.
#[derive(Default)]
struct WhackClients {
    /// Each open client's channel and the lines waiting for it.
    open: HashMap<WhackClient, (Sender<Vec<WhackLine>>, Vec<WhackLine>)>,
    /// Clients with lines waiting, in the order they got their first.
    dirty: Vec<WhackClient>,
}

impl WhackClients {
    fn add(&mut self, client: WhackClient, reply: Sender<Vec<WhackLine>>) {
        self.open.insert(client, (reply, Vec::new()));
    }

    /// Queues a line for `client`; nothing comes after its `Done`.
    fn push(&mut self, client: WhackClient, line: WhackLine) {
        if let Some((_, lines)) = self.open.get_mut(&client) {
            if matches!(lines.last(), Some(WhackLine::Done(_))) {
                return;
            }
            if lines.is_empty() {
                self.dirty.push(client);
            }
            lines.push(line);
        }
    }

    /// Sends every waiting batch; a client whose command is done, or who stopped listening,
    /// is forgotten.
    fn flush(&mut self) {
        for client in self.dirty.drain(..) {
            let Some((tx, lines)) = self.open.get_mut(&client) else {
                continue;
            };
            let done = matches!(lines.last(), Some(WhackLine::Done(_)));
            let gone = tx.send(std::mem::take(lines)).is_err();
            if done || gone {
                self.open.remove(&client);
            }
        }
    }
}

enum Msg {
    Whack {
        client: WhackClient,
        cmd: WhackCmd,
        reply: Option<Sender<Vec<WhackLine>>>,
    },
    /// The administrator's tools ask for Pluto's view (with IKE keys for Wireshark's tables).
    View {
        keys: bool,
        reply: Sender<crate::admin::view::PlutoView>,
    },
    Stop,
}

/// What the keying thread needs from the daemon to carry out outputs.
pub trait KeyingHost: Send + Sync + 'static {
    /// The datapath.
    fn klips(&self) -> &Arc<Klips>;
    /// Carries out packets produced outside the datapath threads (released holds).
    fn emit(&self, emits: Vec<Emit>);
    /// Writes a log line.
    fn log(&self, line: &str);
    /// Runs updown step `verb` for an IKE conn (with the fail-closed bookkeeping that goes with
    /// routing); Ok(text to log) or Err(failure to log).
    fn updown(
        &self,
        verb: crate::updown::Verb,
        info: &crate::updown::UpdownInfo,
    ) -> Result<String, String>;
    /// An SA from Pluto is in the SADB (the daemon keeps ESP keys for Wireshark's tables).
    fn sa_installed(&self, _spec: &crate::sadb::SaSpec) {}
    /// The DNS resolver thread for opportunistic encryption, if one runs.
    fn dns(&self) -> Option<&super::resolver::ResolverHandle> {
        None
    }
}

/// Handle on the running keying thread.
pub struct Keying {
    tx: Sender<Msg>,
    /// Pluto's bound counters, refreshed by the keying thread after every event (`ipsec look`).
    limits: Arc<std::sync::Mutex<crate::pluto::LimitCounters>>,
    next_client: AtomicU64,
    thread: Option<JoinHandle<()>>,
    ike_threads: Vec<JoinHandle<()>>,
}

impl Keying {
    /// Starts the keying thread and the UDP 500 reader. IKE datagrams arriving on 4500 come
    /// through `ike_rx` (fed by the datapath); `ike_tx` is its sender, also used by the 500
    /// reader.
    #[allow(clippy::too_many_arguments)]
    pub fn start<H: KeyingHost>(
        pluto: Pluto,
        host: Arc<H>,
        clock: Clock,
        sock500: Arc<UdpSock>,
        sock4500: Arc<UdpSock>,
        ike_tx: Sender<IkeIn>,
        ike_rx: Receiver<IkeIn>,
        v6: Option<Ike6Socks>,
        stop_flag: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<Keying> {
        let (tx, rx) = bounded::<Msg>(64);
        // The reader checks `stop_flag` between reads: without a timeout it would block in
        // recvmmsg forever and `stop` (the daemon's shutdown) would hang on joining it.
        set_rcv_timeout(sock500.fd(), Duration::from_millis(200))?;
        let mut ike_threads = Vec::new();
        if let Some(v6) = &v6 {
            set_rcv_timeout(v6.sock500.fd(), Duration::from_millis(200))?;
            let sock = v6.sock500.clone();
            let stop = stop_flag.clone();
            let tx = ike_tx.clone();
            ike_threads.push(
                std::thread::Builder::new()
                    .name("udp6-r500".into())
                    .spawn(move || udp6_500_reader(sock, tx, stop))?,
            );
        }
        let reader = {
            let sock = sock500.clone();
            let stop = stop_flag.clone();
            std::thread::Builder::new()
                .name("udp-r500".into())
                .spawn(move || udp500_reader(sock, ike_tx, stop))?
        };
        ike_threads.push(reader);
        let socks = Socks {
            sock500,
            sock4500,
            v6,
        };
        let (ready_tx, ready_rx) = bounded::<()>(1);
        let limits = Arc::new(std::sync::Mutex::new(pluto.limit_counters()));
        let shared = limits.clone();
        let thread = std::thread::Builder::new()
            .name("pluto".into())
            .spawn(move || run(pluto, host, clock, socks, ike_rx, rx, ready_tx, shared))?;
        // The start-up outputs (auto=route %trap eroutes and their route updown) are in place
        // before the daemon reports itself started, as `ipsec setup start` did them in order.
        let _ = ready_rx.recv_timeout(Duration::from_secs(60));
        Ok(Keying {
            tx,
            limits,
            next_client: AtomicU64::new(1),
            thread: Some(thread),
            ike_threads,
        })
    }

    /// Pluto's bound counters as of its last event.
    pub fn limit_counters(&self) -> crate::pluto::LimitCounters {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a whack command; returns the receiver on which its lines arrive.
    pub fn whack(&self, cmd: WhackCmd) -> WhackReceiver {
        // Unbounded: `--status` of a gateway with thousands of conns must not lose lines, and
        // the client drains the channel as fast as the control socket allows.
        let (tx, rx) = crossbeam_channel::unbounded();
        let client = WhackClient(self.next_client.fetch_add(1, Ordering::Relaxed));
        let _ = self.tx.send(Msg::Whack {
            client,
            cmd,
            reply: Some(tx),
        });
        WhackReceiver {
            rx,
            buf: std::collections::VecDeque::new(),
        }
    }

    /// Pluto's view for `ipsec status --json`, the metrics and Wireshark's tables (IKE keys
    /// only with `keys`); None if the keying thread does not answer within 5 s.
    pub fn view(&self, keys: bool) -> Option<crate::admin::view::PlutoView> {
        let (tx, rx) = bounded(1);
        self.tx.send(Msg::View { keys, reply: tx }).ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Sends a whack command whose output nobody reads (start-up `auto=start`).
    pub fn whack_detached(&self, cmd: WhackCmd) {
        let _ = self.tx.send(Msg::Whack {
            client: WhackClient(0),
            cmd,
            reply: None,
        });
    }

    /// Deletes everything locally (whack --shutdown), runs the resulting updown scripts and
    /// stops the thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for t in self.ike_threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn set_rcv_timeout(fd: i32, d: Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: SO_RCVTIMEO takes a struct timeval; the pointer and size describe `tv`.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn udp500_reader(sock: Arc<UdpSock>, tx: Sender<IkeIn>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; MAX_PKT]).collect();
    let mut lens = Vec::new();
    let mut metas = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = sock.recv_batch(&mut bufs, &mut lens, &mut metas) else {
            continue;
        };
        for i in 0..n {
            let _ = tx.try_send(IkeIn {
                local: SocketAddr::new(metas[i].dst, 500),
                remote: metas[i].src,
                data: bufs[i][..lens[i]].to_vec(),
            });
        }
    }
}

/// The IPv6 UDP 500 reader: one datagram per call, to the keying thread.
fn udp6_500_reader(
    sock: Arc<UdpReceiver6>,
    tx: Sender<IkeIn>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut buf = vec![0u8; MAX_PKT];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, src, dst)) = sock.recv(&mut buf) else {
            continue;
        };
        let _ = tx.try_send(IkeIn {
            local: SocketAddr::new(dst.into(), 500),
            remote: src.into(),
            data: buf[..n].to_vec(),
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn run<H: KeyingHost>(
    mut pluto: Pluto,
    host: Arc<H>,
    clock: Clock,
    socks: Socks,
    ike_rx: Receiver<IkeIn>,
    rx: Receiver<Msg>,
    ready: Sender<()>,
    limits: Arc<std::sync::Mutex<crate::pluto::LimitCounters>>,
) {
    let klips = host.klips().clone();
    // The datapath core's control output (acquires, SA lifetime events): drained whenever
    // its doorbell rings; what piled up while Pluto was busy was merged, never dropped.
    let doorbell = klips.event_doorbell().clone();
    let mut events: Vec<KlipsEvent> = Vec::new();
    let mut clients = WhackClients::default();
    let mut rng = StdRng::from_entropy();
    let mut stopping = false;
    let mut usage: Vec<(Said, Option<u64>)> = Vec::new();
    let mut next_usage = 0u64;
    let mut turn = 0usize;
    let dns_rx = host
        .dns()
        .map(|d| d.answers.clone())
        .unwrap_or_else(crossbeam_channel::never);
    // Outputs of what happened before the thread started (load_conns: %trap eroutes and
    // route updown of auto=route conns) are carried out now, not after the first event.
    while let Some(o) = pluto.poll_output() {
        apply(&*host, &klips, &clock, &socks, &mut clients, &mut rng, o);
    }
    let _ = ready.send(());
    drop(ready);
    loop {
        let now = clock.now_ms();
        let wait = pluto
            .poll_timeout()
            .map_or(1000, |t| t.saturating_sub(now))
            .min(1000);
        match next_input(&mut turn, &ike_rx, &rx, &dns_rx, &doorbell, wait) {
            Input::Ike(m) => pluto.handle_datagram(clock.now_ms(), m.local, m.remote, &m.data),
            Input::Ctl(Some(Msg::Whack { client, cmd, reply })) => {
                if let Some(r) = reply {
                    clients.add(client, r);
                }
                pluto.whack(clock.now_ms(), client, cmd);
            }
            Input::Ctl(Some(Msg::View { keys, reply })) => {
                let _ = reply.send(pluto.admin_view(keys));
            }
            Input::Ctl(Some(Msg::Stop) | None) => {
                pluto.whack(clock.now_ms(), WhackClient(0), WhackCmd::Shutdown);
                stopping = true;
            }
            Input::Dns(a) => pluto.handle_dns(clock.now_ms(), a.id, &a.name, a.qtype, a.result),
            Input::Events => {
                klips.take_events(&mut events);
                for e in events.drain(..) {
                    match e {
                        KlipsEvent::Acquire(a) => {
                            host.log(&format!(
                                "acquire: {}:{} -> {}:{} proto {}",
                                a.src, a.sport, a.dst, a.dport, a.proto
                            ));
                            pluto.handle_acquire(clock.now_ms(), a);
                        }
                        KlipsEvent::Sa(e) => {
                            match e {
                                SaEvent::SoftExpired(s) => {
                                    host.log(&format!("SA {s}: soft lifetime reached"))
                                }
                                SaEvent::HardExpired(s) => {
                                    host.log(&format!("SA {s}: hard lifetime reached, deleted"))
                                }
                            }
                            pluto.handle_sa_event(clock.now_ms(), e);
                        }
                    }
                }
            }
            Input::Idle => {}
        }
        let now = clock.now_ms();
        if now >= next_usage {
            next_usage = now + USAGE_INTERVAL_MS;
            collect_usage(&pluto, &klips, now, &mut usage);
            pluto.handle_sa_usage(now, &usage);
            if pluto.shunt_scan_due(now) {
                let shunts: Vec<ShuntEroute> = klips
                    .eroutes()
                    .iter()
                    .filter_map(|e| {
                        e.said.shunt().map(|shunt| ShuntEroute {
                            src: e.src,
                            dst: e.dst,
                            shunt,
                            packets: e.packets(),
                        })
                    })
                    .collect();
                pluto.handle_shunt_scan(now, &shunts);
            }
        }
        if pluto.poll_timeout().is_some_and(|t| t <= now) {
            pluto.handle_timeout(now);
        }
        while let Some(o) = pluto.poll_output() {
            apply(&*host, &klips, &clock, &socks, &mut clients, &mut rng, o);
        }
        clients.flush();
        *limits.lock().unwrap_or_else(|p| p.into_inner()) = pluto.limit_counters();
        if stopping {
            return;
        }
    }
}

/// One input for the keying thread.
enum Input {
    Ike(IkeIn),
    /// A control message; None: the daemon's side of the channel is gone (stop).
    Ctl(Option<Msg>),
    Dns(super::resolver::Answer),
    /// The datapath rang its event doorbell.
    Events,
    /// Nothing arrived within the wait (timers are due or the usage round is).
    Idle,
}

/// The next input: whatever is already queued first, without blocking, taking the sources in
/// turn so none starves the others (under load this skips `select`'s registration with every
/// channel and the wake-up bookkeeping that goes with it); otherwise waits up to `wait_ms`
/// for the first to arrive.
fn next_input(
    turn: &mut usize,
    ike_rx: &Receiver<IkeIn>,
    rx: &Receiver<Msg>,
    dns_rx: &Receiver<super::resolver::Answer>,
    doorbell: &Receiver<()>,
    wait_ms: u64,
) -> Input {
    use crossbeam_channel::TryRecvError;
    for i in 0..4 {
        let k = (*turn + i) % 4;
        let got = match k {
            0 => ike_rx.try_recv().ok().map(Input::Ike),
            1 => match rx.try_recv() {
                Ok(m) => Some(Input::Ctl(Some(m))),
                Err(TryRecvError::Disconnected) => Some(Input::Ctl(None)),
                Err(TryRecvError::Empty) => None,
            },
            2 => dns_rx.try_recv().ok().map(Input::Dns),
            _ => doorbell.try_recv().ok().map(|()| Input::Events),
        };
        if let Some(input) = got {
            *turn = k + 1;
            return input;
        }
    }
    let mut sel = crossbeam_channel::Select::new();
    let i_ike = sel.recv(ike_rx);
    let i_ctl = sel.recv(rx);
    let i_dns = sel.recv(dns_rx);
    let i_bell = sel.recv(doorbell);
    let Ok(op) = sel.select_timeout(Duration::from_millis(wait_ms)) else {
        return Input::Idle;
    };
    match op.index() {
        i if i == i_ike => op.recv(ike_rx).map_or(Input::Idle, Input::Ike),
        i if i == i_ctl => Input::Ctl(op.recv(rx).ok()),
        i if i == i_dns => op.recv(dns_rx).map_or(Input::Idle, Input::Dns),
        i if i == i_bell => {
            let _ = op.recv(doorbell);
            Input::Events
        }
        _ => Input::Idle,
    }
}

/// How often Pluto hears how recently its SAs were used (ms).
const USAGE_INTERVAL_MS: u64 = 1000;

/// Fills `out` with (SAID, ms since last use) of the ESP and AH SAs Pluto installed, under the
/// SADB's read lock, reusing `out`'s allocation. An SA whose state a datapath worker holds at
/// this instant is skipped (it is in use; the next round sees it).
fn collect_usage(pluto: &Pluto, klips: &Klips, now_ms: u64, out: &mut Vec<(Said, Option<u64>)>) {
    out.clear();
    let db = klips.sadb();
    for sa in db.iter() {
        if !matches!(sa.said.proto, Proto::Esp | Proto::Ah) || !pluto.installed_sa(&sa.said) {
            continue;
        }
        let last = match sa.state.try_lock() {
            Ok(st) => st.last_used,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().last_used,
            Err(std::sync::TryLockError::WouldBlock) => continue,
        };
        // The datapath's clock is the same one in whole seconds.
        out.push((
            sa.said,
            last.map(|s| now_ms.saturating_sub(s.saturating_mul(1000))),
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn apply<H: KeyingHost>(
    host: &H,
    klips: &Klips,
    clock: &Clock,
    socks: &Socks,
    clients: &mut WhackClients,
    rng: &mut StdRng,
    o: Output,
) {
    match o {
        Output::Send {
            local,
            remote,
            data,
        } => {
            let natt = local.port() == 4500;
            let r = match (local, remote) {
                (SocketAddr::V4(l), SocketAddr::V4(r)) => {
                    let sock = if natt {
                        &socks.sock4500
                    } else {
                        &socks.sock500
                    };
                    sock.send_from(&data, *l.ip(), r)
                }
                (SocketAddr::V6(l), SocketAddr::V6(r)) => match &socks.v6 {
                    Some(v6) => {
                        let sock = if natt { &v6.sock4500 } else { &v6.sock500 };
                        sock.send_from(&data, *l.ip(), r)
                    }
                    None => Err(std::io::Error::other("no IPv6 IKE socket")),
                },
                _ => Err(std::io::Error::other("address families differ")),
            };
            if let Err(e) = r {
                host.log(&format!("sending IKE to {remote} failed: {e}"));
            }
        }
        Output::InstallSas { conn, sas, groups } => {
            let now = clock.now();
            // One write access for all of them: the datapath's view is published once, with
            // the SAs and their groups together (not once per SA). Nothing else is locked or
            // called back while it is held (the host's SA key table is locked before the SADB
            // by the daemon's timer: the other order would deadlock), so the results are
            // reported after.
            let mut results = Vec::with_capacity(sas.len() + groups.len());
            {
                let mut db = klips.sadb_mut();
                for spec in &sas {
                    let dir = spec.dir.unwrap_or(if klips.is_local(spec.said.dst) {
                        Dir::In
                    } else {
                        Dir::Out
                    });
                    let r = Sa::new(spec, dir, now).and_then(|sa| db.add(sa).map(|_| ()));
                    results.push(
                        r.map_err(|e| format!("\"{conn}\": cannot install SA {}: {e}", spec.said)),
                    );
                }
                for g in groups.iter().filter(|g| g.len() > 1) {
                    results.push(
                        db.group(g)
                            .map_err(|e| format!("\"{conn}\": cannot group SAs: {e}")),
                    );
                }
            }
            for (i, r) in results.into_iter().enumerate() {
                match r {
                    Ok(()) => {
                        if let Some(spec) = sas.get(i) {
                            host.sa_installed(spec);
                        }
                    }
                    Err(e) => host.log(&e),
                }
            }
        }
        Output::Eroute { op, src, dst, said } => {
            let old = match op {
                ErouteOp::Add | ErouteOp::Replace => {
                    klips.eroutes_mut().replace(Eroute::new(src, dst, said)).1
                }
                ErouteOp::Delete => {
                    klips.eroutes_mut().delete(&src, &dst);
                    None
                }
            };
            if let Some(old) = old {
                let mut emits = Vec::new();
                let dev = klips.dev_for_addr(src.ip());
                klips.release_held(&old, dev, clock.now(), rng, &mut emits);
                host.emit(emits);
            }
        }
        Output::DeleteSas { saids } => {
            let mut db = klips.sadb_mut();
            for s in saids {
                if db.get(&s).is_some() {
                    let _ = db.delete(&s);
                }
            }
        }
        Output::Updown { verb, info } => match host.updown(verb, &info) {
            Ok(out) => {
                for l in out.lines() {
                    host.log(l);
                }
            }
            Err(e) => {
                for l in e.lines() {
                    host.log(l);
                }
            }
        },
        Output::Log(line) => host.log(&line),
        Output::Whack { client, code, text } => clients.push(client, WhackLine::Line(code, text)),
        Output::WhackDone { client, status } => clients.push(client, WhackLine::Done(status)),
        Output::DnsLookup { id, name, qtype } => {
            // Without a resolver Pluto asks nothing; a full queue ends the lookup as a timeout
            // (its answer reaches Pluto through the same channel as any other).
            if let Some(d) = host.dns() {
                if let Some(a) = d.lookup(id, name, qtype) {
                    host.log(&format!(
                        "dns: lookup queue full: {} {} not asked",
                        a.qtype, a.name
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whack_lines_of_one_event_arrive_as_one_batch_in_order() {
        let mut clients = WhackClients::default();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (tx2, rx2) = crossbeam_channel::unbounded();
        clients.add(WhackClient(1), tx1);
        clients.add(WhackClient(2), tx2);
        clients.push(WhackClient(1), WhackLine::Line(2, "a".into()));
        clients.push(WhackClient(2), WhackLine::Line(2, "x".into()));
        clients.push(WhackClient(1), WhackLine::Line(4, "b".into()));
        clients.push(WhackClient(9), WhackLine::Line(4, "nobody".into()));
        assert!(
            rx1.is_empty(),
            "nothing is sent before the event's outputs are done"
        );
        clients.flush();
        assert_eq!(
            rx1.try_recv().unwrap(),
            vec![
                WhackLine::Line(2, "a".into()),
                WhackLine::Line(4, "b".into())
            ]
        );
        assert_eq!(
            rx2.try_recv().unwrap(),
            vec![WhackLine::Line(2, "x".into())]
        );
        clients.push(WhackClient(1), WhackLine::Done(0));
        clients.flush();
        assert_eq!(rx1.try_recv().unwrap(), vec![WhackLine::Done(0)]);
        // A finished client is forgotten; the other stays.
        clients.push(WhackClient(1), WhackLine::Line(2, "late".into()));
        clients.flush();
        assert!(rx1.try_recv().is_err());
        assert_eq!(clients.open.len(), 1);
        // Nothing follows a Done queued in the same event; a client who stopped listening is
        // forgotten at the next batch.
        let (tx3, rx3) = crossbeam_channel::unbounded();
        let (tx4, rx4) = crossbeam_channel::unbounded::<Vec<WhackLine>>();
        clients.add(WhackClient(3), tx3);
        clients.add(WhackClient(4), tx4);
        clients.push(WhackClient(3), WhackLine::Done(0));
        clients.push(WhackClient(3), WhackLine::Line(2, "after".into()));
        drop(rx4);
        clients.push(WhackClient(4), WhackLine::Line(2, "to nobody".into()));
        clients.flush();
        assert_eq!(rx3.try_recv().unwrap(), vec![WhackLine::Done(0)]);
        assert_eq!(clients.open.len(), 1, "clients 3 and 4 are forgotten");
        // The receiving side hands the batch out line by line.
        let mut r = WhackReceiver {
            rx: rx2,
            buf: Default::default(),
        };
        clients.push(WhackClient(2), WhackLine::Line(2, "y".into()));
        clients.push(WhackClient(2), WhackLine::Done(3));
        clients.flush();
        let d = Duration::from_secs(1);
        assert_eq!(r.recv_timeout(d).unwrap(), WhackLine::Line(2, "y".into()));
        assert_eq!(r.buffered(), Some(WhackLine::Done(3)));
        assert_eq!(r.buffered(), None);
    }
}
