//! End-to-end tests: the real `deoss` binary on port 0, driven by aws-sdk-s3 (and the aws CLI).

mod harness;

mod auth;
mod aws_cli;
mod buckets;
mod cess;
mod chunked;
mod durability;
mod listing;
mod multipart;
mod objects;
mod postgres;
mod settlement;
mod startup;
mod stores;
