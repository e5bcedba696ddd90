//! The writer lock: first come, first served, handed directly from one writer to the next,
//! so no writer waits for more than the writers queued before it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

/// A FIFO lock guarding no data. std's `Mutex` lets a thread that just released it take
/// it again ahead of sleeping waiters; with 64 writers on two cores that starved a few of
/// them for several rounds and set the p99 latency (docs/storage.md#figures).
#[derive(Debug, Default)]
pub(crate) struct FairLock {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    locked: bool,
    queue: VecDeque<Arc<Waiter>>,
}

#[derive(Debug)]
struct Waiter {
    granted: AtomicBool,
    thread: Thread,
}

/// Held while a writer checks and applies its step; dropping it hands the lock on.
#[derive(Debug)]
pub(crate) struct FairGuard<'a> {
    lock: &'a FairLock,
}

impl FairLock {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is changed by whole assignments and queue operations that cannot
        // panic halfway, so a poisoned lock still holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lock(&self) -> FairGuard<'_> {
        let waiter = {
            let mut state = self.state();
            if !state.locked {
                state.locked = true;
                return FairGuard { lock: self };
            }
            let waiter = Arc::new(Waiter {
                granted: AtomicBool::new(false),
                thread: std::thread::current(),
            });
            state.queue.push_back(waiter.clone());
            waiter
        };
        // `park` may return spuriously; only the grant counts.
        while !waiter.granted.load(Ordering::Acquire) {
            std::thread::park();
        }
        FairGuard { lock: self }
    }
}

impl Drop for FairGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.lock.state();
        match state.queue.pop_front() {
            // The lock stays locked: it now belongs to the first waiter.
            Some(next) => {
                next.granted.store(true, Ordering::Release);
                next.thread.unpark();
            }
            None => state.locked = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_excludes_and_serves_waiters_in_arrival_order() {
        let lock = Arc::new(FairLock::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = lock.lock();
        let mut workers = Vec::new();
        for i in 0..8 {
            let (shared, order) = (lock.clone(), order.clone());
            workers.push(std::thread::spawn(move || {
                let _guard = shared.lock();
                order.lock().unwrap().push(i);
            }));
            // Wait until this worker is queued before starting the next one.
            while lock.state().queue.len() < i + 1 {
                std::thread::yield_now();
            }
        }
        assert!(order.lock().unwrap().is_empty());
        drop(held);
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
        assert!(!lock.state().locked);
    }
}
