//! Blocking I/O of one store, bounded: at most a fixed number of operations on threads at once.
//!
//! A caller that gives up on a slow operation (a fragment read past its timeout, a cancelled
//! request) only stops waiting: the thread stays in the kernel until the disk answers, with the
//! buffer it reads into or writes from. Unbounded, every request to a hung disk took another
//! thread from tokio's blocking pool, and its bytes with it, for as long as the disk hung. Here a
//! store holds `slots` threads at most; a slot is given back when the operation really returns,
//! not when its caller stops waiting.
//!
//! A request that finds every slot taken waits for one, unless the store has stalled: every slot
//! taken by operations running on their threads, and none started or finished for
//! [`STALL_AFTER`]. Then it fails at once with a retryable error, so that reads go to parity and
//! writes to a spare store without each one first waiting out its own timeout. A healthy store
//! under load keeps finishing operations, and is never taken as stalled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::StoreError;

/// How long a store may go with every slot taken and no operation starting or finishing before
/// requests to it fail at once: twice the default fragment read timeout, so that one slow
/// operation is not mistaken for a dead disk.
pub const STALL_AFTER: Duration = Duration::from_secs(10);

/// How often a request waiting for a slot looks again whether the store has stalled.
const RECHECK: Duration = Duration::from_millis(100);

/// The blocking-operation slots of one store; cheap to clone (clones share the slots).
#[derive(Debug, Clone)]
pub struct BlockingIo {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: String,
    slots: Arc<Semaphore>,
    size: usize,
    /// Operations now running on a thread (counted inside the thread).
    running: AtomicUsize,
    /// When an operation last started or finished, in milliseconds since `epoch`.
    progress_ms: AtomicU64,
    epoch: Instant,
}

impl BlockingIo {
    /// Slots for the store named `store`: at most `slots` blocking operations at once.
    pub fn new(store: impl Into<String>, slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            shared: Arc::new(Shared {
                store: store.into(),
                slots: Arc::new(Semaphore::new(slots)),
                size: slots,
                running: AtomicUsize::new(0),
                progress_ms: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// Operations running on threads right now: at most the number of slots.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Runs `f` on a blocking thread once a slot is free (see the module docs).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let s = &self.shared;
        let slot = match s.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) if s.stalled() => return Err(s.stalled_error()),
            Err(_) => {
                let acquire = s.slots.clone().acquire_owned();
                tokio::pin!(acquire);
                loop {
                    tokio::select! {
                        slot = &mut acquire => break slot.expect("slots are never closed"),
                        // Not before a recheck interval: slots taken but not yet running leave
                        // the stall time in the past without the store being stalled.
                        () = tokio::time::sleep_until(s.stalls_at().max(Instant::now() + RECHECK)) => {
                            if s.stalled() {
                                return Err(s.stalled_error());
                            }
                        }
                    }
                }
            }
        };
        s.progressed();
        let shared = self.shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            shared.running.fetch_add(1, Ordering::SeqCst);
            let out = f();
            shared.running.fetch_sub(1, Ordering::SeqCst);
            shared.progressed();
            drop(slot);
            out
        });
        task.await.map_err(|e| StoreError::Unavailable {
            store: s.store.clone(),
            reason: e.to_string(),
        })?
    }
}

impl Shared {
    fn progressed(&self) {
        let ms = self.epoch.elapsed().as_millis();
        self.progress_ms
            .fetch_max(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// When the store counts as stalled if nothing happens before.
    fn stalls_at(&self) -> Instant {
        let progress = Duration::from_millis(self.progress_ms.load(Ordering::SeqCst));
        self.epoch + progress + STALL_AFTER
    }

    /// Every slot held by an operation stuck on its thread, and nothing started or finished for
    /// [`STALL_AFTER`]. A slot just taken counts only once its operation runs: its taker records
    /// the start after taking it, and a burst arriving after an idle spell would otherwise read
    /// the old progress and be refused as a hung disk.
    fn stalled(&self) -> bool {
        self.slots.available_permits() == 0
            && self.running.load(Ordering::SeqCst) == self.size
            && Instant::now() >= self.stalls_at()
    }

    fn stalled_error(&self) -> StoreError {
        StoreError::Unavailable {
            store: self.store.clone(),
            reason: format!(
                "all {} I/O slots are taken and none has finished for {:?}: the disk seems hung",
                self.size, STALL_AFTER
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store idle for longer than STALL_AFTER, whose slots have all just been taken by
    /// requests that have not started their operations yet, is busy, not hung: the next request
    /// waits for a slot. (On the multi-threaded runtime the benchmark's four concurrent uploads
    /// met this window.)
    #[tokio::test(start_paused = true)]
    async fn slots_just_taken_after_idling_are_not_a_stall() {
        let io = BlockingIo::new("s", 2);
        tokio::time::advance(STALL_AFTER * 3).await;
        let taken = io.shared.slots.clone().try_acquire_many_owned(2).unwrap();
        let queued = tokio::spawn({
            let io = io.clone();
            async move { io.run(|| Ok(())).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !queued.is_finished(),
            "it waits rather than failing at once"
        );
        drop(taken);
        queued.await.unwrap().expect("the request gets a slot");
    }

    /// A disk that hangs holds every slot and no more threads; requests beyond the slots wait
    /// for one until the store counts as stalled, then fail at once; slots come back only when
    /// the stuck operations return, whatever their callers did meanwhile.
    #[tokio::test(start_paused = true)]
    async fn a_hung_disk_holds_its_slots_and_no_more() {
        let io = BlockingIo::new("s", 2);
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let mut releases = Vec::new();
        let mut stuck = Vec::new();
        for _ in 0..2 {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            releases.push(release);
            let entered_tx = entered_tx.clone();
            let io = io.clone();
            stuck.push(tokio::spawn(async move {
                io.run(move || {
                    entered_tx.send(()).unwrap();
                    let _ = wait.recv();
                    Ok(())
                })
                .await
            }));
            entered.recv().await.unwrap();
        }
        assert_eq!(io.running(), 2);
        // A caller that gives up (a timeout) does not free the slot: the thread is still stuck.
        stuck.pop().unwrap().abort();
        let queued = tokio::spawn({
            let io = io.clone();
            async move { io.run(|| Ok(())).await }
        });
        tokio::task::yield_now().await;
        assert!(!queued.is_finished(), "waits for a slot before the stall");
        // Stuck threads keep the paused clock from moving on its own.
        tokio::time::advance(STALL_AFTER).await;
        let err = queued.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(err.is_retryable());
        // Once stalled, a request fails without waiting at all.
        let fast = io.run(|| Ok(()));
        tokio::pin!(fast);
        assert!(matches!(
            futures::poll!(fast.as_mut()),
            std::task::Poll::Ready(Err(StoreError::Unavailable { .. }))
        ));
        assert_eq!(io.running(), 2, "no more threads than slots");
        // The disk answers: its slots come back and requests go through again.
        drop(releases);
        stuck.pop().unwrap().await.unwrap().unwrap();
        io.run(|| Ok(())).await.unwrap();
    }
}
