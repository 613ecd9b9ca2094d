//! Read leases: the object versions that reads in progress still stream from.
//!
//! Replacing or deleting an object queues its fragments for collection at once, and the
//! collector wakes straight away; a GET that started before the replacement would then lose its
//! fragments mid-stream and end short. A read holds a lease on its version from the moment it
//! looks at the version's extents until its stream ends, and the collector leaves the queued
//! fragments of leased versions for a later pass. (Leases live in this process: reads through
//! another gateway sharing a PostgreSQL catalogue are covered by `gc.read_grace_secs` instead.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Inner;

/// How many reads use each version.
#[derive(Debug, Default)]
pub(crate) struct ReadLeases(Mutex<HashMap<String, usize>>);

impl ReadLeases {
    /// Whether a read in progress uses `version_id`.
    pub(crate) fn holds(&self, version_id: &str) -> bool {
        self.0.lock().expect("poisoned").contains_key(version_id)
    }
}

/// One read's hold on a version; released when dropped (the read's stream ended).
pub(crate) struct ReadLease {
    svc: Arc<Inner>,
    version_id: String,
}

impl ReadLease {
    pub(crate) fn take(svc: &Arc<Inner>, version_id: &str) -> Arc<Self> {
        *svc.read_leases
            .0
            .lock()
            .expect("poisoned")
            .entry(version_id.to_string())
            .or_default() += 1;
        Arc::new(Self {
            svc: svc.clone(),
            version_id: version_id.to_string(),
        })
    }
}

impl std::fmt::Debug for ReadLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadLease").field(&self.version_id).finish()
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        let mut leases = self.svc.read_leases.0.lock().expect("poisoned");
        let Some(count) = leases.get_mut(&self.version_id) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            leases.remove(&self.version_id);
            drop(leases);
            // Whatever the collector left for this read can go now.
            self.svc.gc_wake.notify_one();
        }
    }
}
