//! Blocking I/O of one store, bounded: at most a fixed number of operations on threads at once.
//!
//! A caller that gives up on a slow operation (a fragment read past its timeout, a cancelled
//! request) only stops waiting: the thread stays in the kernel until the disk answers, with the
//! buffer it reads into or writes from. Unbounded, every request to a hung disk took another
//! thread from tokio's blocking pool, and its bytes with it, for as long as the disk hung. Here a
//! store holds `slots` threads at most; a slot is given back when the operation really returns,
//! not when its caller stops waiting.
//!
//! A request that finds every slot taken waits for one. If it waits [`STALL_AFTER`] with every
//! slot taken and no operation started or finished meanwhile, the store has stalled: that request
//! fails with a retryable error and marks the store, and from then on requests that find no slot
//! fail at once, so that reads go to parity and writes to a spare store without each one first
//! waiting out its own timeout, until an operation finishes again. A healthy store under load
//! keeps finishing operations, and is never taken as stalled; nor is one that was idle a while
//! and then gets a burst of requests (only a request that has itself waited can mark it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::StoreError;

/// How long a store may go with every slot taken and no operation starting or finishing before
/// requests to it fail at once: twice the default fragment read timeout, so that one slow
/// operation is not mistaken for a dead disk.
pub const STALL_AFTER: Duration = Duration::from_secs(10);

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
    /// Set by a request that waited out [`STALL_AFTER`] without progress; cleared by progress.
    stalled: AtomicBool,
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
                stalled: AtomicBool::new(false),
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
            Err(_) if s.stalled.load(Ordering::SeqCst) => return Err(s.stalled_error()),
            Err(_) => {
                // Judged only after waiting a full STALL_AFTER ourselves: the progress another
                // request records just after taking its slot may not be visible yet.
                let waiting_since = Instant::now();
                let acquire = s.slots.clone().acquire_owned();
                tokio::pin!(acquire);
                loop {
                    let judge_at = s.stalls_at().max(waiting_since + STALL_AFTER);
                    tokio::select! {
                        slot = &mut acquire => break slot.expect("slots are never closed"),
                        () = tokio::time::sleep_until(judge_at) => {
                            if s.no_progress() {
                                s.stalled.store(true, Ordering::SeqCst);
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
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// When the store counts as stalled if nothing happens before.
    fn stalls_at(&self) -> Instant {
        let progress = Duration::from_millis(self.progress_ms.load(Ordering::SeqCst));
        self.epoch + progress + STALL_AFTER
    }

    /// Every slot taken, and nothing started or finished for [`STALL_AFTER`].
    fn no_progress(&self) -> bool {
        self.slots.available_permits() == 0 && Instant::now() >= self.stalls_at()
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

    /// A store idle for longer than STALL_AFTER that then gets more requests than slots is busy,
    /// not hung: the requests beyond the slots wait and go through (the benchmark's four
    /// concurrent uploads failed with 503 when a request saw the slots taken before their
    /// takers had recorded starting).
    #[tokio::test(start_paused = true)]
    async fn a_burst_after_idling_is_not_a_stall() {
        let io = BlockingIo::new("s", 2);
        tokio::time::advance(STALL_AFTER * 3).await;
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let mut busy = Vec::new();
        for _ in 0..2 {
            let (io, wait, entered_tx) = (io.clone(), wait.clone(), entered_tx.clone());
            busy.push(tokio::spawn(async move {
                io.run(move || {
                    entered_tx.send(()).unwrap();
                    let _ = wait.lock().unwrap().recv();
                    Ok(())
                })
                .await
            }));
            entered.recv().await.unwrap();
        }
        // Rewind what the takers recorded, as if another thread looked before they did.
        io.shared.progress_ms.store(0, Ordering::SeqCst);
        let queued = tokio::spawn({
            let io = io.clone();
            async move { io.run(|| Ok(())).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !queued.is_finished(),
            "it waits rather than failing at once"
        );
        release.send(()).unwrap();
        release.send(()).unwrap();
        for b in busy {
            b.await.unwrap().unwrap();
        }
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
