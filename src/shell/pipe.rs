//! A bounded multi-producer queue for handing packet batches between datapath threads that
//! parks waiting threads at once instead of spinning.
//!
//! crossbeam-channel spins and calls `sched_yield` before it sleeps; with more datapath threads
//! than cores (the norm on a small router, and on the 2-core test machine) that spinning showed
//! up as the largest cost in profiles (docs/performance.md). Here a waiting thread sleeps on a
//! condition variable immediately, and a sender only signals when someone is waiting.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

struct State<T> {
    q: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
    receiver_waiting: bool,
    senders_waiting: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

/// The sending half; clone it for more producers.
pub struct PipeTx<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half (one consumer).
pub struct PipeRx<T> {
    shared: Arc<Shared<T>>,
}

/// A queue of at most `cap` items.
pub fn pipe<T>(cap: usize) -> (PipeTx<T>, PipeRx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            q: VecDeque::with_capacity(cap),
            senders: 1,
            receiver_alive: true,
            receiver_waiting: false,
            senders_waiting: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        cap: cap.max(1),
    });
    (
        PipeTx {
            shared: shared.clone(),
        },
        PipeRx { shared },
    )
}

impl<T> PipeTx<T> {
    /// Queues `item`, waiting while the queue is full. Returns it back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let s = &self.shared;
        let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if !st.receiver_alive {
                return Err(item);
            }
            if st.q.len() < s.cap {
                break;
            }
            st.senders_waiting += 1;
            st = s.not_full.wait(st).unwrap_or_else(|p| p.into_inner());
            st.senders_waiting -= 1;
        }
        st.q.push_back(item);
        let wake = st.receiver_waiting;
        drop(st);
        if wake {
            s.not_empty.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for PipeTx<T> {
    fn clone(&self) -> PipeTx<T> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .senders += 1;
        PipeTx {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for PipeTx<T> {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.senders -= 1;
        let last = st.senders == 0;
        drop(st);
        if last {
            self.shared.not_empty.notify_all();
        }
    }
}

impl<T> PipeRx<T> {
    /// Takes the next item, sleeping until one arrives; None once every sender is gone and the
    /// queue is empty.
    pub fn recv(&self) -> Option<T> {
        let s = &self.shared;
        let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(item) = st.q.pop_front() {
                let wake = st.senders_waiting > 0;
                drop(st);
                if wake {
                    s.not_full.notify_one();
                }
                return Some(item);
            }
            if st.senders == 0 {
                return None;
            }
            st.receiver_waiting = true;
            st = s.not_empty.wait(st).unwrap_or_else(|p| p.into_inner());
            st.receiver_waiting = false;
        }
    }
}

impl<T> Drop for PipeRx<T> {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.receiver_alive = false;
        st.q.clear();
        drop(st);
        self.shared.not_full.notify_all();
    }
}

impl<T> Iterator for PipeRx<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_backpressure_and_close() {
        let (tx, rx) = pipe::<u32>(4);
        let tx2 = tx.clone();
        let t = std::thread::spawn(move || {
            for i in 0..1000 {
                tx2.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        for _ in 0..1000 {
            got.push(rx.recv().unwrap());
        }
        t.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        drop(tx);
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn send_fails_after_receiver_drops() {
        let (tx, rx) = pipe::<u32>(1);
        drop(rx);
        assert_eq!(tx.send(7), Err(7));
    }
}
