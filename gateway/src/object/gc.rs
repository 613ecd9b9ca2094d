//! Garbage collection of fragments no object needs any more.
//!
//! Two sources of garbage: fragments of replaced, deleted or aborted data, which the catalogue
//! queues in the same transaction that retires them (drained here), and orphans of writes that
//! never committed because the gateway died mid-upload, found by sweeping the stores for
//! fragments the catalogue does not reference. A fragment is deleted only after the catalogue
//! confirms nothing references it, so identical fragments shared by two objects are safe.

use std::time::{Duration, SystemTime};

use super::{ObjectService, Result};

/// Queue entries handled per catalogue round trip.
const DRAIN_BATCH: usize = 256;

/// What a GC pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deleted: usize,
    pub kept_referenced: usize,
    pub failed: usize,
}

impl ObjectService {
    /// Wakes the collector after something was queued.
    pub(crate) fn gc_notify(&self) {
        self.inner.gc_wake.notify_one();
    }

    /// Deletes every queued fragment that nothing references any more.
    pub async fn drain_gc_queue(&self) -> Result<GcReport> {
        let cat = &self.inner.catalogue;
        let mut report = GcReport::default();
        loop {
            let batch = cat.gc_batch(DRAIN_BATCH).await?;
            if batch.is_empty() {
                return Ok(report);
            }
            for entry in batch {
                if cat.fragment_referenced(entry.hash, &entry.store).await? {
                    report.kept_referenced += 1;
                } else if let Some(store) = self.inner.stores.by_id(&entry.store) {
                    match store.delete(entry.hash).await {
                        Ok(()) => report.deleted += 1,
                        Err(e) if e.is_retryable() => {
                            // Leave it queued for the next pass.
                            tracing::warn!(store = %entry.store, error = %e, "gc delete failed");
                            report.failed += 1;
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(store = %entry.store, error = %e, "gc delete failed for good");
                            report.failed += 1;
                        }
                    }
                }
                cat.gc_done(entry.id).await?;
            }
            if report.failed > 0 {
                return Ok(report);
            }
        }
    }

    /// Deletes fragments that no catalogue row references and that were last written before
    /// `cutoff`, skipping those that writes in progress in this process hold.
    pub async fn sweep_orphans(&self, cutoff: SystemTime) -> Result<GcReport> {
        let mut report = GcReport::default();
        for store in self.inner.stores.all() {
            let listed = match store.list().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(store = store.id(), error = %e, "gc sweep could not list the store");
                    report.failed += 1;
                    continue;
                }
            };
            let referenced = self.inner.catalogue.referenced_on(store.id()).await?;
            for f in listed {
                if f.modified >= cutoff
                    || referenced.contains(&f.hash)
                    || self.inner.inflight.contains(store.id(), f.hash)
                {
                    continue;
                }
                // Check again one by one: a commit may have landed since the set was read.
                if self
                    .inner
                    .catalogue
                    .fragment_referenced(f.hash, store.id())
                    .await?
                {
                    report.kept_referenced += 1;
                    continue;
                }
                match store.delete(f.hash).await {
                    Ok(()) => report.deleted += 1,
                    Err(_) => report.failed += 1,
                }
            }
        }
        Ok(report)
    }

    /// Runs until `shutdown` fires: drains the queue when woken (and every `interval`), and
    /// sweeps for orphans older than the grace period every `sweep_every`.
    pub async fn run_gc(
        &self,
        interval: Duration,
        sweep_every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.drain_gc_queue().await {
                tracing::warn!(error = %e, "gc drain failed");
            }
            if last_sweep.elapsed() >= sweep_every {
                last_sweep = tokio::time::Instant::now();
                let cutoff = SystemTime::now() - self.inner.cfg.gc_grace;
                match self.sweep_orphans(cutoff).await {
                    Ok(r) => tracing::info!(deleted = r.deleted, "gc sweep done"),
                    Err(e) => tracing::warn!(error = %e, "gc sweep failed"),
                }
            }
            tokio::select! {
                () = self.inner.gc_wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
