//! Bucket operations.

use super::{Action, Error, ObjectService, Principal, Result};
use crate::catalogue::buckets::{CreateBucket, DeleteBucket};
use crate::catalogue::{Bucket, now_ms};
use crate::erasure::Profile;

/// Bucket names as AWS accepts them for new buckets: 3-63 characters of lowercase letters,
/// digits, dots and hyphens, starting and ending with a letter or digit, no "..", not an IP
/// address, none of the reserved prefixes and suffixes.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid bucket name {name:?}: {why}"
        )))
    };
    if !(3..=63).contains(&name.len()) {
        return invalid("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return invalid("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge_ok(name.as_bytes()[0]) || !edge_ok(name.as_bytes()[name.len() - 1]) {
        return invalid("must start and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return invalid("must not contain adjacent dots or a dot next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return invalid("must not be formatted as an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        return invalid("uses a reserved prefix or suffix");
    }
    Ok(())
}

impl ObjectService {
    /// The bucket (HeadBucket, GetBucketLocation), if the caller may see it.
    pub async fn head_bucket(&self, caller: &Principal, name: &str) -> Result<Bucket> {
        self.authorize(caller, Action::ReadBucket, name).await
    }

    /// Creates a bucket with an erasure profile (`None`: the gateway's default).
    pub async fn create_bucket(
        &self,
        caller: &Principal,
        name: &str,
        profile: Option<&str>,
    ) -> Result<()> {
        self.create_bucket_in(caller, name, profile, None).await
    }

    /// Creates a bucket whose objects take space from `territory` on chain (`None`: the
    /// owner's default territory).
    pub async fn create_bucket_in(
        &self,
        caller: &Principal,
        name: &str,
        profile: Option<&str>,
        territory: Option<&str>,
    ) -> Result<()> {
        let owner = caller.require_user()?;
        validate_bucket_name(name)?;
        if let Some(t) = territory
            && !(1..=deoss_chain_client::MAX_NAME_LEN).contains(&t.len())
        {
            return Err(Error::InvalidArgument(format!(
                "a territory name is 1 to {} bytes",
                deoss_chain_client::MAX_NAME_LEN
            )));
        }
        let profile = Profile::parse(profile.unwrap_or(&self.inner.cfg.default_profile))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if profile.total() > self.inner.stores.len() {
            return Err(Error::InvalidArgument(format!(
                "erasure profile {} needs {} fragment stores; this gateway has {}",
                profile.name,
                profile.total(),
                self.inner.stores.len()
            )));
        }
        let bucket = Bucket {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            owner_id: owner.to_string(),
            profile: profile.name,
            created_ms: now_ms(),
            territory: territory.map(str::to_string),
        };
        match self.inner.catalogue.create_bucket(&bucket).await? {
            CreateBucket::Created => Ok(()),
            CreateBucket::Exists { owner_id } if owner_id == owner => {
                Err(Error::BucketAlreadyOwnedByYou {
                    bucket: name.to_string(),
                })
            }
            CreateBucket::Exists { .. } => Err(Error::BucketAlreadyExists {
                bucket: name.to_string(),
            }),
        }
    }

    pub async fn list_buckets(&self, caller: &Principal) -> Result<Vec<Bucket>> {
        match caller.user_id() {
            Some(user) => Ok(self.inner.catalogue.list_buckets(user).await?),
            None => Ok(Vec::new()),
        }
    }

    pub async fn delete_bucket(&self, caller: &Principal, name: &str) -> Result<()> {
        let b = self.authorize(caller, Action::DeleteBucket, name).await?;
        match self.inner.catalogue.delete_bucket(name, &b.id).await? {
            DeleteBucket::Deleted { aborted_uploads } => {
                if aborted_uploads > 0 {
                    self.gc_notify();
                }
                Ok(())
            }
            DeleteBucket::Missing => Err(Error::NoSuchBucket {
                bucket: name.to_string(),
            }),
            DeleteBucket::NotEmpty => Err(Error::BucketNotEmpty {
                bucket: name.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.2024", "a".repeat(63).as_str(), "1bucket"] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            &"a".repeat(64),
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
