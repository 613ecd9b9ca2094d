//! Who is asking, and whether they may: every operation of the object service names a
//! [`Principal`] and passes through [`ObjectService::authorize`] before it touches a bucket.
//!
//! Today the rule is S3's default with no policies: a bucket's owner may do everything with it,
//! nobody else anything, and anonymous requests nothing. Sharing grants (a grantee reading an
//! object through a re-encryption grant), bucket policies (public buckets) and edge nodes
//! (reading cacheable objects for their readers) become rules here, not checks in front ends.

use super::{Error, ObjectService, Result};
use crate::catalogue::Bucket;

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user of this gateway, authenticated by one of its access keys.
    User { user_id: String },
    /// A request that carries no credentials.
    Anonymous,
}

impl Principal {
    pub fn user(user_id: impl Into<String>) -> Self {
        Self::User {
            user_id: user_id.into(),
        }
    }

    /// The user, if the principal is one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User { user_id } => Some(user_id),
            Self::Anonymous => None,
        }
    }

    /// The user, or AccessDenied: for what only users may do (create buckets, own objects).
    pub fn require_user(&self) -> Result<&str> {
        self.user_id().ok_or_else(|| Error::AccessDenied {
            reason: "anonymous access is not allowed".into(),
        })
    }
}

/// What an operation does with a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// HeadBucket, GetBucketLocation.
    ReadBucket,
    /// Listing objects or multipart uploads.
    ListBucket,
    DeleteBucket,
    /// GetObject, HeadObject, and the source of a copy.
    ReadObject,
    /// PutObject, the destination of a copy, and every step of a multipart upload.
    WriteObject,
    DeleteObject,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::ReadBucket => "read",
            Self::ListBucket => "list",
            Self::DeleteBucket => "delete",
            Self::ReadObject => "read objects of",
            Self::WriteObject => "write objects to",
            Self::DeleteObject => "delete objects of",
        }
    }
}

/// Whether `principal` may do `action` with `bucket`.
fn permits(principal: &Principal, _action: Action, bucket: &Bucket) -> bool {
    principal.user_id() == Some(bucket.owner_id.as_str())
}

impl ObjectService {
    /// The bucket, if `principal` may do `action` with it: NoSuchBucket if there is none,
    /// AccessDenied if the rules say no.
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        name: &str,
    ) -> Result<Bucket> {
        let bucket =
            self.inner
                .catalogue
                .bucket(name)
                .await?
                .ok_or_else(|| Error::NoSuchBucket {
                    bucket: name.to_string(),
                })?;
        if !permits(principal, action, &bucket) {
            return Err(Error::AccessDenied {
                reason: match principal {
                    Principal::Anonymous => "anonymous access is not allowed".into(),
                    Principal::User { .. } => {
                        format!("you may not {} bucket {name}", action.verb())
                    }
                },
            });
        }
        Ok(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, Principal};
    use crate::object::Error;
    use crate::object::testing::service;

    #[tokio::test]
    async fn only_the_owner_may_act_on_a_bucket() {
        let (_dir, svc, owner) = service(12, Default::default()).await;
        for action in [
            Action::ReadBucket,
            Action::ListBucket,
            Action::DeleteBucket,
            Action::ReadObject,
            Action::WriteObject,
            Action::DeleteObject,
        ] {
            assert_eq!(
                svc.authorize(&owner, action, "test").await.unwrap().name,
                "test"
            );
            for other in [Principal::user("someone-else"), Principal::Anonymous] {
                let denied = svc.authorize(&other, action, "test").await;
                assert!(
                    matches!(denied, Err(Error::AccessDenied { .. })),
                    "{other:?} {action:?}"
                );
            }
        }
        let missing = svc.authorize(&owner, Action::ReadBucket, "nope").await;
        assert!(matches!(missing, Err(Error::NoSuchBucket { .. })));
        let anonymous = svc
            .create_bucket(&Principal::Anonymous, "anon-bucket", None)
            .await;
        assert!(matches!(anonymous, Err(Error::AccessDenied { .. })));
    }
}
