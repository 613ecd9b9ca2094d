//! Which stores hold the fragments of a segment: rendezvous (highest random weight) hashing over
//! the healthy stores, so placement is stable as stores come and go and every fragment of one
//! segment lands on a distinct store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{FragmentStore, StoreRegistry};

#[derive(Debug)]
struct Member {
    store: Arc<dyn FragmentStore>,
    healthy: AtomicBool,
}

/// The fragment stores a gateway writes to and reads from, and the registry they were opened
/// from.
#[derive(Debug, Clone)]
pub struct StoreSet {
    members: Arc<Vec<Member>>,
    registry: StoreRegistry,
}

impl StoreSet {
    pub fn new(stores: Vec<Arc<dyn FragmentStore>>) -> Self {
        let members = stores
            .into_iter()
            .map(|store| Member {
                store,
                healthy: AtomicBool::new(true),
            })
            .collect();
        Self {
            members: Arc::new(members),
            registry: StoreRegistry::default(),
        }
    }

    /// The same stores, described by `registry` (what the catalogue knows about them and about
    /// registered stores that are not open).
    pub fn with_registry(self, registry: StoreRegistry) -> Self {
        Self { registry, ..self }
    }

    pub fn registry(&self) -> &StoreRegistry {
        &self.registry
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn FragmentStore>> {
        self.members.iter().map(|m| &m.store)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<dyn FragmentStore>> {
        self.members.iter().map(|m| &m.store).find(|s| s.id() == id)
    }

    pub fn healthy_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.healthy.load(Ordering::Relaxed))
            .count()
    }

    /// Marks a store down after a failed write, so placement skips it until a probe succeeds.
    pub fn mark(&self, id: &str, healthy: bool) {
        if let Some(m) = self.members.iter().find(|m| m.store.id() == id) {
            m.healthy.store(healthy, Ordering::Relaxed);
        }
    }

    /// Probes every store and updates its health.
    pub async fn probe(&self) {
        for m in self.members.iter() {
            let ok = m.store.health().await.is_ok();
            m.healthy.store(ok, Ordering::Relaxed);
        }
    }

    /// Healthy stores ranked for the segment named by `seed`: the first k+m take its fragments,
    /// the rest are fallbacks for failed writes.
    pub fn rank(&self, seed: &[u8]) -> Vec<Arc<dyn FragmentStore>> {
        let mut scored: Vec<(u64, &Member)> = self
            .members
            .iter()
            .filter(|m| m.healthy.load(Ordering::Relaxed))
            .map(|m| (weight(seed, m.store.id()), m))
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        scored.into_iter().map(|(_, m)| m.store.clone()).collect()
    }
}

fn weight(seed: &[u8], id: &str) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(seed);
    ctx.update(id.as_bytes());
    let d = ctx.finish();
    u64::from_be_bytes(d.as_ref()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn set(n: usize) -> StoreSet {
        StoreSet::new(
            (0..n)
                .map(|i| Arc::new(MemoryStore::new(format!("s{i}"))) as Arc<dyn FragmentStore>)
                .collect(),
        )
    }

    #[test]
    fn distinct_stable_and_spread() {
        let stores = set(12);
        let a: Vec<String> = stores
            .rank(b"seg-1")
            .iter()
            .map(|s| s.id().to_string())
            .collect();
        let b: Vec<String> = stores
            .rank(b"seg-1")
            .iter()
            .map(|s| s.id().to_string())
            .collect();
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        let firsts: std::collections::HashSet<String> = (0..200)
            .map(|i| {
                stores.rank(format!("seg-{i}").as_bytes())[0]
                    .id()
                    .to_string()
            })
            .collect();
        assert!(
            firsts.len() >= 10,
            "first choices should spread over stores: {firsts:?}"
        );
    }

    #[test]
    fn unhealthy_stores_are_skipped() {
        let stores = set(4);
        stores.mark("s2", false);
        assert_eq!(stores.healthy_count(), 3);
        assert!(stores.rank(b"x").iter().all(|s| s.id() != "s2"));
    }
}
