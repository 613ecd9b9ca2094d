//! # deoss gateway
//!
//! An S3-compatible object gateway for decentralized storage. Objects arrive over S3 (through
//! `s3s`), are encrypted (AES-256-GCM in 64 KiB chunks, a fresh data key per object version),
//! cut into segments, Reed-Solomon coded into k data + m parity fragments, and spread over
//! fragment stores; a SQL catalogue (SQLite by default, PostgreSQL for shared deployments)
//! records what lives where.
//!
//! Layers, each depending only on the ones below it:
//! - front ends: [`s3`] (s3s handlers), the HTTP router in [`server`];
//! - [`object`]: the object service, in domain terms (no HTTP types);
//! - [`catalogue`] (metadata), [`store`] (fragment stores), [`crypto`], [`erasure`];
//! - [`settlement`]: storage orders on chain (`deoss-chain-client`) through a durable outbox in
//!   the catalogue, with upload checks the object service asks before accepting data.
//!
//! Security notes: the master key (a 0600 file) wraps every data key and the secret of every
//! access key; SSE-C keys are never stored (only a salted HMAC to recognise them); fragment
//! stores only ever see ciphertext; errors that reach clients never carry paths, keys or causes.

pub mod admin;
pub mod catalogue;
pub mod config;
pub mod crypto;
pub mod erasure;
pub mod object;
pub mod s3;
pub mod server;
pub mod settlement;
pub mod store;

pub use config::Config;
pub use server::{Gateway, StartError, run, serve};
