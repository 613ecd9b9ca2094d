//! The behaviour every fragment store must have; each backend's tests call [`run_all`].

use bytes::Bytes;

use super::{FragmentHash, FragmentStore, StoreError};

pub async fn run_all(store: &dyn FragmentStore) {
    put_get_round_trip(store).await;
    ranges(store).await;
    idempotent_put_and_delete(store).await;
    missing_fragment(store).await;
    listing(store).await;
    pages(store).await;
    store.health().await.expect("healthy store");
}

fn fragment(seed: u8, len: usize) -> (FragmentHash, Bytes) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect();
    (FragmentHash::of(&data), Bytes::from(data))
}

async fn put_get_round_trip(store: &dyn FragmentStore) {
    let (hash, data) = fragment(3, 100_000);
    store.put(hash, data.clone()).await.unwrap();
    assert_eq!(store.get(hash, None).await.unwrap(), data);
    let (empty_hash, empty) = fragment(4, 0);
    store.put(empty_hash, empty).await.unwrap();
    assert!(store.get(empty_hash, None).await.unwrap().is_empty());
}

async fn ranges(store: &dyn FragmentStore) {
    let (hash, data) = fragment(5, 10_000);
    store.put(hash, data.clone()).await.unwrap();
    assert_eq!(
        store.get(hash, Some(0..10)).await.unwrap(),
        data.slice(0..10)
    );
    assert_eq!(
        store.get(hash, Some(9_990..10_000)).await.unwrap(),
        data.slice(9_990..)
    );
    assert!(store.get(hash, Some(5..5)).await.unwrap().is_empty());
    let err = store.get(hash, Some(9_000..10_001)).await.unwrap_err();
    assert!(matches!(err, StoreError::BadRange { .. }), "{err:?}");
}

async fn idempotent_put_and_delete(store: &dyn FragmentStore) {
    let (hash, data) = fragment(7, 1_000);
    store.put(hash, data.clone()).await.unwrap();
    store.put(hash, data.clone()).await.unwrap();
    assert_eq!(store.get(hash, None).await.unwrap(), data);
    store.delete(hash).await.unwrap();
    store.delete(hash).await.unwrap();
    assert!(matches!(
        store.get(hash, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn missing_fragment(store: &dyn FragmentStore) {
    let (hash, _) = fragment(11, 10);
    let err = store.get(hash, Some(0..1)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    assert!(!err.is_retryable());
}

async fn listing(store: &dyn FragmentStore) {
    let (hash, data) = fragment(13, 64);
    store.put(hash, data).await.unwrap();
    let listed = store.list().await.unwrap();
    assert!(listed.iter().any(|f| f.hash == hash));
    store.delete(hash).await.unwrap();
    assert!(!store.list().await.unwrap().iter().any(|f| f.hash == hash));
}

/// Listing in pages: every fragment once, in hash order, whatever the page size.
async fn pages(store: &dyn FragmentStore) {
    let mut hashes = Vec::new();
    for seed in 20..60u8 {
        let (hash, data) = fragment(seed, 50 + seed as usize);
        store.put(hash, data).await.unwrap();
        hashes.push(hash);
    }
    let all = store.list().await.unwrap();
    let mut listed: Vec<FragmentHash> = all.iter().map(|f| f.hash).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(listed, sorted, "in hash order, each once");
    for page_size in [1, 7, 1000] {
        let mut paged = Vec::new();
        loop {
            let page = store
                .list_page(paged.last().copied(), page_size)
                .await
                .unwrap();
            assert!(page.len() <= page_size);
            if page.is_empty() {
                break;
            }
            paged.extend(page.iter().map(|f| f.hash));
        }
        assert_eq!(paged, listed, "pages of {page_size}");
    }
    listed.retain(|h| hashes.contains(h));
    assert_eq!(listed.len(), hashes.len());
    for h in hashes {
        store.delete(h).await.unwrap();
    }
}
