//! The crate's one public error type.

use std::path::PathBuf;

/// A boxed error kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to a settlement backend.
///
/// Each variant says where the failure came from; [`Error::is_retryable`] says whether sending the
/// same request again later can succeed (the chain was unreachable, a transaction was dropped) or
/// whether the request itself is refused (no authorization, no space, bad input) and must not be
/// retried unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node could not be reached or the connection broke.
    #[error("chain node {endpoint} is unavailable")]
    Unavailable {
        /// The node's URL (never contains credentials: the CESS backend takes no URL secrets).
        endpoint: String,
        /// The transport error.
        #[source]
        source: BoxError,
    },

    /// A transaction was not included: dropped from the pool, invalid for the pool (stale nonce,
    /// cannot pay fees), or no block reported it in time.
    #[error("transaction {call} was not included: {reason}")]
    NotIncluded {
        /// `Pallet.call` of the transaction.
        call: String,
        /// What the node said.
        reason: String,
        /// Whether submitting again can help (dropped, timed out) or not (e.g. cannot pay).
        retryable: bool,
    },

    /// The owner has not authorized this gateway (`Oss.AuthorityList`) or the signer may not act
    /// for the owner.
    #[error("account {owner} has not authorized gateway {gateway}")]
    NotAuthorized {
        /// The data owner (SS58).
        owner: String,
        /// The gateway's account (SS58).
        gateway: String,
    },

    /// The owner has no territory of that name.
    #[error("account {owner} has no territory named {territory:?}")]
    TerritoryNotFound {
        /// The data owner (SS58).
        owner: String,
        /// Territory name.
        territory: String,
    },

    /// The territory exists but cannot take new data (expired or not active).
    #[error("territory {territory:?} cannot take data: {reason}")]
    TerritoryUnusable {
        /// Territory name.
        territory: String,
        /// e.g. `expired at block 1000 (now 1200)` or `state Frozen`.
        reason: String,
    },

    /// The territory has not enough remaining space for the declaration.
    #[error("territory {territory:?} has {remaining} bytes left, {needed} needed")]
    InsufficientSpace {
        /// Territory name.
        territory: String,
        /// Bytes the declaration would lock.
        needed: u64,
        /// Bytes left in the territory.
        remaining: u64,
    },

    /// The thing asked for does not exist (a file, a deal, a gateway).
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `file 3a9f...`.
        what: String,
    },

    /// The order already exists (same fid declared before). Settlement workers treat this as
    /// success: the order is on chain.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists, e.g. `deal 3a9f...`.
        what: String,
    },

    /// The request is malformed (wrong fragment count, name too long, fid mismatch, bad SS58...).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },

    /// The runtime refused the call with a dispatch error this crate does not map to a more
    /// specific variant.
    #[error("runtime refused {call}: {error}")]
    Dispatch {
        /// `Pallet.call`.
        call: String,
        /// `Pallet::ErrorName` (or the dispatch error's text).
        error: String,
    },

    /// The runtime's metadata does not have the shape this crate expects (pallet, call, storage
    /// or field missing): a runtime upgrade this crate does not know.
    #[error("runtime metadata mismatch: {reason}")]
    Metadata {
        /// What was missing or unexpected.
        reason: String,
    },

    /// The signing key could not be loaded. The message never contains key material.
    #[error("gateway key: {reason}")]
    Key {
        /// What went wrong (file unreadable, not a seed/mnemonic/URI).
        reason: String,
    },

    /// Reading or writing the dev ledger's file failed.
    #[error("dev ledger I/O on {path}")]
    LedgerIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The dev ledger's file does not verify (broken hash link, bad signature, foreign key).
    #[error("dev ledger {path} is corrupt: {reason}")]
    LedgerCorrupt {
        /// The file.
        path: PathBuf,
        /// Which check failed, with the block number.
        reason: String,
    },

    /// Any other failure from subxt (encoding, decoding, RPC) with what was being done.
    #[error("{context}")]
    Client {
        /// What was being done, e.g. `fetch Oss.AuthorityList`.
        context: String,
        /// Whether the failure came from the transport (retry allowed) or from the data.
        retryable: bool,
        /// The subxt error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether the same request may succeed if sent again later.
    ///
    /// True for transport failures (node down, connection reset, transaction dropped or timed
    /// out) and dev-ledger I/O errors (disk full is often transient); false for anything the chain
    /// decided (no authorization, no space, already exists, dispatch errors) and for bad input.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::LedgerIo { .. } => true,
            Error::NotIncluded { retryable, .. } | Error::Client { retryable, .. } => *retryable,
            Error::NotAuthorized { .. }
            | Error::TerritoryNotFound { .. }
            | Error::TerritoryUnusable { .. }
            | Error::InsufficientSpace { .. }
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::InvalidRequest { .. }
            | Error::Dispatch { .. }
            | Error::Metadata { .. }
            | Error::Key { .. }
            | Error::LedgerCorrupt { .. } => false,
        }
    }

    /// A short, stable label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "unavailable",
            Error::NotIncluded { .. } => "not_included",
            Error::NotAuthorized { .. } => "not_authorized",
            Error::TerritoryNotFound { .. } => "territory_not_found",
            Error::TerritoryUnusable { .. } => "territory_unusable",
            Error::InsufficientSpace { .. } => "insufficient_space",
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Dispatch { .. } => "dispatch",
            Error::Metadata { .. } => "metadata",
            Error::Key { .. } => "key",
            Error::LedgerIo { .. } => "ledger_io",
            Error::LedgerCorrupt { .. } => "ledger_corrupt",
            Error::Client { .. } => "client",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }

    pub(crate) fn metadata(reason: impl Into<String>) -> Self {
        Error::Metadata {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        let down = Error::Unavailable {
            endpoint: "ws://127.0.0.1:1".into(),
            source: "refused".into(),
        };
        assert!(down.is_retryable());
        let refused = Error::NotAuthorized {
            owner: "a".into(),
            gateway: "b".into(),
        };
        assert!(!refused.is_retryable());
        let dropped = Error::NotIncluded {
            call: "FileBank.upload_declaration".into(),
            reason: "dropped".into(),
            retryable: true,
        };
        assert!(dropped.is_retryable());
        assert_eq!(refused.as_str(), "not_authorized");
        // The source chain is kept for logs.
        assert!(std::error::Error::source(&down).is_some());
    }
}
