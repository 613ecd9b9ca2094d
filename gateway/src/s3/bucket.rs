//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::DeossS3;
use super::error::OrS3;
use super::headers::timestamp;

/// Header naming the erasure profile of a new bucket (`cess`, `4+2`, `10+4`, `k+m`).
pub const PROFILE_HEADER: &str = "x-deoss-profile";
/// Header naming the owner's territory that a new bucket's objects take space from on chain
/// (default: the user's territory).
pub const TERRITORY_HEADER: &str = "x-deoss-territory";

impl DeossS3 {
    pub(super) async fn do_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = self.keys.caller(&req).await?;
        let prefix = req.input.prefix.as_deref().unwrap_or("");
        let buckets = self
            .svc
            .list_buckets(&caller)
            .await
            .or_s3()?
            .into_iter()
            .filter(|b| b.name.starts_with(prefix))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                id: caller.user_id().map(str::to_string),
                display_name: None,
            }),
            prefix: req.input.prefix,
            ..Default::default()
        }))
    }

    pub(super) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let caller = self.keys.caller(&req).await?;
        if let Some(constraint) = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            && constraint.as_str() != self.region
            && !constraint.as_str().is_empty()
        {
            return Err(s3s::s3_error!(
                InvalidLocationConstraint,
                "this gateway serves region {}; the location constraint must match",
                self.region
            ));
        }
        let profile = req
            .headers
            .get(PROFILE_HEADER)
            .and_then(|v| v.to_str().ok());
        let territory = match req.headers.get(TERRITORY_HEADER) {
            Some(v) => Some(v.to_str().map_err(|_| {
                s3s::s3_error!(InvalidArgument, "{TERRITORY_HEADER} must be visible ASCII")
            })?),
            None => None,
        };
        self.svc
            .create_bucket_in(&caller, &req.input.bucket, profile, territory)
            .await
            .or_s3()?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    pub(super) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let caller = self.keys.caller(&req).await?;
        self.svc
            .head_bucket(&caller, &req.input.bucket)
            .await
            .or_s3()?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let caller = self.keys.caller(&req).await?;
        self.svc
            .delete_bucket(&caller, &req.input.bucket)
            .await
            .or_s3()?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let caller = self.keys.caller(&req).await?;
        self.svc
            .head_bucket(&caller, &req.input.bucket)
            .await
            .or_s3()?;
        // As S3 does, us-east-1 is reported as an empty constraint.
        let constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }
}
