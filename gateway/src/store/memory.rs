//! In-memory fragment store, for tests.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{FragmentHash, FragmentStore, StoreError, StoredFragment};

#[derive(Debug)]
pub struct MemoryStore {
    id: String,
    fragments: Mutex<HashMap<FragmentHash, (Bytes, SystemTime)>>,
}

impl MemoryStore {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            fragments: Mutex::default(),
        }
    }
}

#[async_trait]
impl FragmentStore for MemoryStore {
    fn id(&self) -> &str {
        &self.id
    }

    async fn put(&self, hash: FragmentHash, data: Bytes) -> Result<(), StoreError> {
        self.fragments
            .lock()
            .expect("poisoned")
            .insert(hash, (data, SystemTime::now()));
        Ok(())
    }

    async fn get(
        &self,
        hash: FragmentHash,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        let map = self.fragments.lock().expect("poisoned");
        let (data, _) = map.get(&hash).ok_or_else(|| StoreError::NotFound {
            store: self.id.clone(),
            hash,
        })?;
        let Some(r) = range else {
            return Ok(data.clone());
        };
        let len = data.len() as u64;
        if r.start > r.end || r.end > len {
            return Err(StoreError::BadRange {
                store: self.id.clone(),
                hash,
                start: r.start,
                end: r.end,
                len,
            });
        }
        Ok(data.slice(r.start as usize..r.end as usize))
    }

    async fn delete(&self, hash: FragmentHash) -> Result<(), StoreError> {
        self.fragments.lock().expect("poisoned").remove(&hash);
        Ok(())
    }

    async fn list_page(
        &self,
        after: Option<FragmentHash>,
        limit: usize,
    ) -> Result<Vec<StoredFragment>, StoreError> {
        let map = self.fragments.lock().expect("poisoned");
        let mut page: Vec<StoredFragment> = map
            .iter()
            .filter(|(hash, _)| after.is_none_or(|a| **hash > a))
            .map(|(hash, (_, modified))| StoredFragment {
                hash: *hash,
                modified: *modified,
            })
            .collect();
        page.sort_by_key(|f| f.hash);
        page.truncate(limit);
        Ok(page)
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        let store = super::MemoryStore::new("mem-0");
        crate::store::conformance::run_all(&store).await;
    }
}
