//! Garbage collection of fragments no object needs any more.
//!
//! Two sources of garbage: fragments of replaced, deleted or aborted data, which the catalogue
//! queues in the same transaction that retires them (drained here), and orphans of writes that
//! never committed because the gateway died mid-upload, found by sweeping the stores for
//! fragments the catalogue does not reference. A fragment is deleted only after the catalogue
//! confirms nothing references it, so identical fragments shared by two objects are safe.

use std::time::{Duration, SystemTime};

use futures::StreamExt;

use super::{ObjectService, Result};
use crate::catalogue::GcEntry;

/// Queue entries handled per catalogue round trip.
const DRAIN_BATCH: usize = 256;

/// Fragments of a store listed (and looked up in the catalogue) at once by the orphan sweep.
const SWEEP_PAGE: usize = 1000;

/// Queued fragments deleted from the stores at once.
const DELETES_AT_ONCE: usize = 4;

/// What became of one queued fragment.
enum Outcome {
    Deleted,
    /// Still referenced (or about to be): only the queue entry goes.
    Kept,
    /// The store refused for good; the entry goes, the orphan sweep may retry.
    Failed,
    /// The store failed for now; the entry stays queued.
    Retry,
    /// The store is no longer configured: nothing to delete, the entry goes.
    StoreGone,
    /// A read in progress still streams the fragment's version: left queued for later.
    Leased,
}

/// What a GC pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deleted: usize,
    pub kept_referenced: usize,
    pub failed: usize,
    /// Left queued because reads in progress still use them.
    pub leased: usize,
}

impl ObjectService {
    /// Wakes the collector after something was queued.
    pub(crate) fn gc_notify(&self) {
        self.inner.gc_wake.notify_one();
    }

    /// Deletes every queued fragment that nothing references any more.
    ///
    /// A batch is deleted from the stores several at a time and taken off the queue in one
    /// transaction: one catalogue commit per fragment (one log sync each) had the collector
    /// fall behind sustained overwrites, and the disk filled with replaced data.
    pub async fn drain_gc_queue(&self) -> Result<GcReport> {
        let cat = &self.inner.catalogue;
        let mut report = GcReport::default();
        let due_before = crate::catalogue::now_ms()
            .saturating_sub(self.inner.cfg.gc_read_grace.as_millis() as i64)
            .saturating_add(1);
        // Entries left queued (leased, or their store failing) are stepped over, not fetched
        // again: the pass goes on to everything queued after them.
        let mut after = 0;
        loop {
            let batch = cat.gc_due(after, due_before, DRAIN_BATCH).await?;
            let Some(last) = batch.last() else {
                return Ok(report);
            };
            after = last.id;
            let outcomes: Vec<(i64, Result<Outcome>)> = futures::stream::iter(batch)
                .map(|entry| async move { (entry.id, self.collect(&entry).await) })
                .buffer_unordered(DELETES_AT_ONCE)
                .collect()
                .await;
            let mut done = Vec::with_capacity(outcomes.len());
            let mut store_failing = false;
            for (id, outcome) in outcomes {
                match outcome? {
                    Outcome::Deleted => report.deleted += 1,
                    Outcome::Kept => report.kept_referenced += 1,
                    Outcome::Failed => report.failed += 1,
                    Outcome::StoreGone => {}
                    Outcome::Leased => {
                        report.leased += 1;
                        continue;
                    }
                    Outcome::Retry => {
                        // Left queued for the next pass.
                        report.failed += 1;
                        store_failing = true;
                        continue;
                    }
                }
                done.push(id);
            }
            cat.gc_done_many(&done).await?;
            if store_failing {
                return Ok(report);
            }
        }
    }

    /// Deletes one queued fragment unless something references it.
    async fn collect(&self, entry: &GcEntry) -> Result<Outcome> {
        if entry
            .version_id
            .as_deref()
            .is_some_and(|v| self.inner.read_leases.holds(v))
        {
            return Ok(Outcome::Leased);
        }
        // An upload in progress may be about to reference an identical fragment: leave it. If
        // that upload fails instead, the orphan sweep collects the fragment.
        if self.inner.inflight.contains(&entry.store, entry.hash)
            || self
                .inner
                .catalogue
                .fragment_referenced(entry.hash, &entry.store)
                .await?
        {
            return Ok(Outcome::Kept);
        }
        let Some(store) = self.inner.stores.by_id(&entry.store) else {
            return Ok(Outcome::StoreGone);
        };
        Ok(match store.delete(entry.hash).await {
            Ok(()) => Outcome::Deleted,
            Err(e) if e.is_retryable() => {
                tracing::warn!(store = %entry.store, error = %e, "gc delete failed");
                Outcome::Retry
            }
            Err(e) => {
                tracing::warn!(store = %entry.store, error = %e, "gc delete failed for good");
                Outcome::Failed
            }
        })
    }

    /// Aborts multipart uploads initiated longer ago than the configured limit; their parts are
    /// queued for collection.
    pub async fn abort_abandoned_uploads(&self) -> Result<usize> {
        let cutoff =
            crate::catalogue::now_ms() - self.inner.cfg.abandoned_upload_after.as_millis() as i64;
        let mut aborted = 0;
        loop {
            let ids = self
                .inner
                .catalogue
                .uploads_initiated_before(cutoff, DRAIN_BATCH)
                .await?;
            if ids.is_empty() {
                return Ok(aborted);
            }
            for id in ids {
                if self.inner.catalogue.abort_upload(&id).await? {
                    aborted += 1;
                }
            }
        }
    }

    /// Deletes fragments that no catalogue row references and that were last written before
    /// `cutoff`, skipping those that writes in progress in this process hold.
    pub async fn sweep_orphans(&self, cutoff: SystemTime) -> Result<GcReport> {
        let mut report = GcReport::default();
        for store in self.inner.stores.all() {
            // A page at a time, so that neither the listing nor the set of referenced hashes
            // of a store with millions of fragments is ever held whole.
            let mut after = None;
            loop {
                let page = match store.list_page(after, SWEEP_PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(store = store.id(), error = %e, "gc sweep could not list the store");
                        report.failed += 1;
                        break;
                    }
                };
                let Some(last) = page.last() else { break };
                after = Some(last.hash);
                self.sweep_page(store.as_ref(), page, cutoff, &mut report)
                    .await?;
            }
        }
        Ok(report)
    }

    /// Deletes the orphans among one page of a store's fragments.
    async fn sweep_page(
        &self,
        store: &dyn crate::store::FragmentStore,
        page: Vec<crate::store::StoredFragment>,
        cutoff: SystemTime,
        report: &mut GcReport,
    ) -> Result<()> {
        let old: Vec<_> = page
            .into_iter()
            .filter(|f| f.modified < cutoff && !self.inner.inflight.contains(store.id(), f.hash))
            .collect();
        let hashes: Vec<_> = old.iter().map(|f| f.hash).collect();
        let referenced = self
            .inner
            .catalogue
            .referenced_among(store.id(), &hashes)
            .await?;
        for f in old {
            if referenced.contains(&f.hash) {
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
        Ok(())
    }

    /// Runs until `shutdown` fires: drains the queue when woken (and every `interval`); every
    /// `sweep_every` aborts abandoned uploads and sweeps for orphans older than the grace period.
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
                match self.abort_abandoned_uploads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(aborted = n, "aborted abandoned multipart uploads"),
                    Err(e) => tracing::warn!(error = %e, "aborting abandoned uploads failed"),
                }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::catalogue::ObjectMeta;
    use crate::object::ServiceConfig;
    use crate::object::testing::{body, service, stored_fragments};

    #[tokio::test]
    async fn abandoned_uploads_are_aborted_and_their_parts_collected() {
        let cfg = ServiceConfig {
            abandoned_upload_after: Duration::ZERO,
            ..ServiceConfig::default()
        };
        let (_dir, svc, caller) = service(12, cfg).await;
        let id = svc
            .create_multipart_upload(&caller, "test", "k", ObjectMeta::default(), None, None)
            .await
            .unwrap();
        let part = vec![7u8; 300_000];
        svc.upload_part(
            &caller,
            "test",
            "k",
            &id,
            1,
            None,
            None,
            None,
            body(part),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            stored_fragments(&svc).await,
            12,
            "one segment of 4+8 fragments"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(svc.abort_abandoned_uploads().await.unwrap(), 1);
        assert!(
            svc.list_multipart_uploads(&caller, "test", "", "", "", 10)
                .await
                .unwrap()
                .0
                .is_empty()
        );
        let report = svc.drain_gc_queue().await.unwrap();
        assert_eq!(report.deleted, 12);
        // Nothing is left for the orphan sweep either.
        assert_eq!(
            svc.sweep_orphans(SystemTime::now()).await.unwrap().deleted,
            0
        );
    }

    #[tokio::test]
    async fn orphan_sweep_spares_young_and_referenced_fragments() {
        let (_dir, svc, caller) = service(12, ServiceConfig::default()).await;
        let put = crate::object::PutObject {
            bucket: "test".into(),
            key: "kept".into(),
            meta: ObjectMeta::default(),
            storage_class: None,
            customer_key: None,
            content_md5: None,
            checksum: None,
            body: body(vec![3u8; 500_000]),
            size_hint: None,
        };
        svc.put_object(&caller, put).await.unwrap();
        let orphan = bytes::Bytes::from_static(b"orphan fragment");
        let store = svc.stores().all().next().unwrap().clone();
        store
            .put(crate::store::FragmentHash::of(&orphan), orphan)
            .await
            .unwrap();
        let past = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(
            svc.sweep_orphans(past).await.unwrap().deleted,
            0,
            "young orphans are spared"
        );
        let future = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(
            svc.sweep_orphans(future).await.unwrap().deleted,
            1,
            "only the orphan goes"
        );
        assert_eq!(stored_fragments(&svc).await, 12);
    }
}
