//! Listing objects: prefix, delimiter and common prefixes, pagination.

use super::{Action, ObjectService, Principal, Result};
use crate::catalogue::objects::ObjectSummary;

/// Rows fetched from the catalogue per round trip while grouping common prefixes.
const LIST_BATCH: usize = 1000;

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: Vec<ObjectSummary>,
    /// Common prefixes, each ending with the delimiter.
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub next_after: Option<String>,
}

impl ObjectService {
    /// Lists keys after `after` (exclusive). A common prefix that sorts at or before `after` was
    /// already returned by an earlier page and is skipped whole.
    pub async fn list_objects(
        &self,
        caller: &Principal,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &str,
        max_keys: usize,
    ) -> Result<Listing> {
        self.authorize(caller, Action::ListBucket, bucket).await?;
        let mut page = Listing::default();
        if max_keys == 0 {
            return Ok(page);
        }
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut cursor = after.to_string();
        loop {
            let batch = self
                .inner
                .catalogue
                .list_objects(bucket, prefix, &cursor, LIST_BATCH)
                .await?;
            let exhausted = batch.len() < LIST_BATCH;
            let mut skipped_to = None;
            for obj in batch {
                let common = delimiter.and_then(|d| {
                    obj.key[prefix.len()..]
                        .find(d)
                        .map(|pos| obj.key[..prefix.len() + pos + d.len()].to_string())
                });
                match common {
                    Some(cp) => {
                        // Everything under this prefix rolls up into it: seek past it.
                        let seek = format!("{cp}\u{10FFFF}");
                        if cp.as_str() > after {
                            if page.objects.len() + page.common_prefixes.len() == max_keys {
                                page.truncated = true;
                                return Ok(page);
                            }
                            page.next_after = Some(cp.clone());
                            page.common_prefixes.push(cp);
                        }
                        skipped_to = Some(seek);
                        break;
                    }
                    None => {
                        if page.objects.len() + page.common_prefixes.len() == max_keys {
                            page.truncated = true;
                            return Ok(page);
                        }
                        cursor.clone_from(&obj.key);
                        page.next_after = Some(obj.key.clone());
                        page.objects.push(obj);
                    }
                }
            }
            match skipped_to {
                Some(seek) => cursor = seek,
                None if exhausted => return Ok(page),
                None => {}
            }
        }
    }
}
