//! End-to-end tests: the real `deoss` binary on port 0, driven by aws-sdk-s3 (and the aws CLI).

mod harness;

mod auth;
mod aws_cli;
mod buckets;
mod cess;
mod chunked;
mod durability;
mod errors;
mod forms;
mod listing;
mod metadata;
mod multipart;
mod multipart_responses;
mod objects;
mod postgres;
mod robustness;
mod settlement;
mod signed;
mod sse_c;
mod startup;
mod stores;
