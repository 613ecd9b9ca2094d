//! # deoss-bench (in progress)
//!
//! Will measure S3 endpoints. Nothing here yet.
