//! # deoss-chain-client: settlement of storage orders
//!
//! deoss records every stored object as a storage order on a chain, the way CESS's DeOSS does.
//! This crate is the gateway's only door to that chain. It sits under the gateway's settlement
//! outbox worker: the object service never waits for a block; the worker drains the outbox
//! through a [`Chain`] and retries what [`Error::is_retryable`] allows.
//!
//! - [`Chain`]: an object-safe async trait with what a gateway needs: register itself
//!   (`Oss.register` / `Oss.update`), check that an owner authorized it (`Oss.AuthorityList`),
//!   read an owner's territory (`StorageHandler.Territory`), declare an upload
//!   (`FileBank.upload_declaration`), delete a file (`FileBank.delete_file`) and read an order's
//!   state (`FileBank.File` / `FileBank.DealMap`). Its types ([`AccountId`], [`Fid`],
//!   [`DeclarationRequest`], [`Territory`], [`OrderState`], ...) are plain Rust; no subxt type
//!   leaks out.
//! - [`DevLedger`]: the default backend, an embedded, persistent, append-only, hash-linked and
//!   signed ledger with the same semantics. It is a development ledger, **not consensus**.
//! - [`CessChain`]: the CESS runtime over WebSocket with `subxt`'s dynamic API. Calls and storage
//!   queries are built from the runtime's metadata at run time, so one binary speaks to runtime
//!   spec 100 (whose `UserBrief` carries a `bucket_name`, and whose buckets must be created
//!   first) and spec 137 (without buckets).
//! - [`open`] with a [`Backend`] gives the gateway an `Arc<dyn Chain>` for `--chain dev` or
//!   `--chain cess`; [`Chain::dev_ledger`] reaches the dev ledger's inspection helpers
//!   ([`DevLedger::blocks`], [`DevLedger::order`]) behind it.
//! - [`hash`]: fragment/segment hashes and the fid exactly as CESS computes them.
//! - [`conformance`]: the test suite every backend runs, as plain `async fn`s over `&dyn Chain`.
//!
//! ## Security notes
//!
//! - The gateway key ([`GatewayKey`]) is an sr25519 secret read from a file (hex seed, mnemonic
//!   or secret URI). It is never logged or put in an error: `Debug` shows only the account, and
//!   load errors do not quote the file.
//! - Whoever holds the gateway key can spend its balance and act for every owner who authorized
//!   it. Keep the key file readable by the gateway's user only.
//! - The dev ledger proves nothing to third parties: its single signer can rewrite it. Hash links
//!   and signatures only catch accidental corruption and edits by someone without the key.
//! - The CESS backend trusts the node it connects to for reads (no light client). Use a node you
//!   operate, over `wss://` when it is not local.
//! - Declarations are validated before submission (12 fragments per segment, name lengths, fid
//!   equal to the segment tree) so a malformed request never costs a fee.

#![warn(missing_docs)]

mod cess;
mod chain;
pub mod conformance;
mod dev;
mod error;
pub mod hash;
mod key;
#[cfg(feature = "testkit")]
pub mod testkit;
mod types;

pub use cess::{CessChain, CessOptions, RuntimeShape, encode_upload_declaration};
pub use chain::{Backend, Chain, open};
pub use dev::{
    Block, DevLedger, DevLedgerOptions, FORMAT as DEV_LEDGER_FORMAT, LedgerCall, LedgerEvent,
    LedgerSnapshot, OrderRecord,
};
pub use error::{BoxError, Error, Result};
pub use hash::{Hash64, fid_of_segments};
pub use key::{GatewayKey, verify_signature};
pub use types::*;
