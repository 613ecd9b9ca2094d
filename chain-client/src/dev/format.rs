//! The ledger file's records: blocks, calls, events; hashing, reading and verifying.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::state::State;
use super::{FORMAT, HASH_DOMAIN};
use crate::error::{Error, Result};
use crate::key::verify_signature;
use crate::types::{AccountId, DeclarationRequest, Fid, GatewayInfo};

/// A call recorded in a block (the ledger's "extrinsic").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum LedgerCall {
    /// Block 0.
    Genesis {
        /// [`FORMAT`].
        format: String,
        /// The only signer of this ledger.
        authority: AccountId,
        /// Reminder for anyone reading the file.
        note: String,
    },
    /// `Oss.register`.
    RegisterGateway {
        /// Gateway account.
        account: AccountId,
        /// Details.
        info: GatewayInfo,
    },
    /// `Oss.update`.
    UpdateGateway {
        /// Gateway account.
        account: AccountId,
        /// Details.
        info: GatewayInfo,
    },
    /// `Oss.authorize`, recorded on the owner's behalf (the dev ledger trusts its operator).
    Authorize {
        /// Data owner.
        owner: AccountId,
        /// Gateway being authorized.
        operator: AccountId,
    },
    /// `Oss.cancel_authorize`.
    CancelAuthorize {
        /// Data owner.
        owner: AccountId,
        /// Gateway losing the grant.
        operator: AccountId,
    },
    /// `StorageHandler.mint_territory`.
    MintTerritory {
        /// Buyer.
        owner: AccountId,
        /// Territory name.
        name: String,
        /// Size in GiB.
        gib: u32,
        /// Lifetime in days.
        days: u32,
    },
    /// `FileBank.upload_declaration`.
    UploadDeclaration {
        /// Signer (the gateway).
        operator: AccountId,
        /// The declaration.
        request: DeclarationRequest,
    },
    /// What the storage miners' `transfer_report`s do on CESS: the deal becomes a file.
    MarkStored {
        /// The order.
        fid: Fid,
    },
    /// `FileBank.delete_file`.
    DeleteFile {
        /// Signer.
        operator: AccountId,
        /// File owner.
        owner: AccountId,
        /// The file.
        fid: Fid,
    },
    /// Skips block numbers (time passes).
    AdvanceBlocks {
        /// Blocks skipped.
        count: u64,
    },
}

/// An event emitted by a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LedgerEvent {
    /// Ledger created.
    Genesis {
        /// Authority.
        authority: AccountId,
    },
    /// Gateway registered.
    OssRegister {
        /// Gateway.
        account: AccountId,
    },
    /// Gateway details changed.
    OssUpdate {
        /// Gateway.
        account: AccountId,
    },
    /// Owner authorized a gateway.
    Authorize {
        /// Owner.
        owner: AccountId,
        /// Gateway.
        operator: AccountId,
    },
    /// Owner withdrew a grant.
    CancelAuthorize {
        /// Owner.
        owner: AccountId,
        /// Gateway.
        operator: AccountId,
    },
    /// Territory bought.
    MintTerritory {
        /// Owner.
        owner: AccountId,
        /// Name.
        name: String,
        /// Bytes.
        total_space: u64,
        /// Expiry block.
        deadline: u64,
    },
    /// Declaration accepted; `locked` bytes of the territory locked.
    UploadDeclaration {
        /// Gateway.
        operator: AccountId,
        /// Owner.
        owner: AccountId,
        /// Order.
        fid: Fid,
        /// Bytes locked.
        locked: u64,
    },
    /// All fragments reported; the deal is a file.
    StorageCompleted {
        /// Order.
        fid: Fid,
    },
    /// File deleted; its space returned to the territory.
    DeleteFile {
        /// Signer.
        operator: AccountId,
        /// Owner.
        owner: AccountId,
        /// Order.
        fid: Fid,
    },
    /// Block numbers skipped.
    BlocksAdvanced {
        /// The new head number.
        to: u64,
    },
}

/// One block of the ledger, as stored (one JSON line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Height.
    pub number: u64,
    /// Hex SHA-256 of the parent block (64 zeros for genesis).
    pub parent: String,
    /// Wall-clock time the block was made, in ms since the Unix epoch (informational).
    pub timestamp_ms: u64,
    /// The block's call.
    pub call: LedgerCall,
    /// What the call did.
    pub events: Vec<LedgerEvent>,
    /// Hex SHA-256 of this block (see the module docs).
    pub hash: String,
    /// Hex sr25519 signature of the authority over the 32 hash bytes.
    pub signature: String,
}

#[derive(Serialize)]
struct BlockBody<'a> {
    number: u64,
    parent: &'a str,
    timestamp_ms: u64,
    call: &'a LedgerCall,
    events: &'a [LedgerEvent],
}

pub(super) fn block_hash(
    number: u64,
    parent: &str,
    ts: u64,
    call: &LedgerCall,
    events: &[LedgerEvent],
) -> [u8; 32] {
    let body = BlockBody {
        number,
        parent,
        timestamp_ms: ts,
        call,
        events,
    };
    // Serializing plain structs, enums and strings cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(HASH_DOMAIN);
    hasher.update(&json);
    hasher.finalize().into()
}

/// Reads blocks; returns them, the length of the well-formed prefix and the file length. A last
/// line without a newline that does not parse is treated as torn.
pub(super) fn read_blocks(path: &Path) -> Result<(Vec<Block>, u64, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0, 0)),
        Err(source) => {
            return Err(Error::LedgerIo {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut reader = BufReader::new(file);
    let mut blocks = Vec::new();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| Error::LedgerIo {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            return Ok((blocks, offset, offset));
        }
        if !line.ends_with(b"\n") {
            // A crash mid-append; the block was never acknowledged, so it is dropped.
            return Ok((blocks, offset, offset + n as u64));
        }
        let block = serde_json::from_slice::<Block>(&line).map_err(|e| Error::LedgerCorrupt {
            path: path.to_path_buf(),
            reason: format!("line after block {} does not parse: {e}", blocks.len()),
        })?;
        blocks.push(block);
        offset += n as u64;
    }
}

pub(super) fn verify_blocks(
    path: &Path,
    blocks: &[Block],
    expected_authority: Option<&AccountId>,
) -> Result<State> {
    let corrupt = |reason: String| Error::LedgerCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut state = State::default();
    let Some(genesis) = blocks.first() else {
        return Ok(state);
    };
    let authority = match &genesis.call {
        LedgerCall::Genesis {
            format, authority, ..
        } if format == FORMAT && genesis.number == 0 => *authority,
        _ => {
            return Err(corrupt(
                "block 0 is not a genesis block of this format".into(),
            ));
        }
    };
    if let Some(expected) = expected_authority
        && *expected != authority
    {
        return Err(corrupt(format!(
            "ledger belongs to gateway key {authority}, opened with {expected}"
        )));
    }
    let mut parent = "0".repeat(64);
    let mut last_number: Option<u64> = None;
    for block in blocks {
        let n = block.number;
        if let Some(last) = last_number
            && n <= last
        {
            return Err(corrupt(format!("block {n} follows block {last}")));
        }
        if matches!(block.call, LedgerCall::Genesis { .. }) && last_number.is_some() {
            return Err(corrupt(format!("block {n} is a second genesis")));
        }
        if block.parent != parent {
            return Err(corrupt(format!("block {n} does not link to its parent")));
        }
        let expected_number = match (last_number, &block.call) {
            (None, _) => 0,
            (Some(l), LedgerCall::AdvanceBlocks { count }) => l + 1 + count,
            (Some(l), _) => l + 1,
        };
        if n != expected_number {
            return Err(corrupt(format!("block {n} should be {expected_number}")));
        }
        let hash = block_hash(
            n,
            &block.parent,
            block.timestamp_ms,
            &block.call,
            &block.events,
        );
        if hex::encode(hash) != block.hash {
            return Err(corrupt(format!("block {n} hash mismatch")));
        }
        let sig: [u8; 64] = hex::decode(&block.signature)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| corrupt(format!("block {n} signature malformed")))?;
        if !verify_signature(&authority, &hash, &sig) {
            return Err(corrupt(format!("block {n} signature invalid")));
        }
        let events = state
            .apply(&block.call, n, was_auto_stored(block))
            .map_err(|e| corrupt(format!("block {n} does not replay: {e}")))?;
        if events != block.events {
            return Err(corrupt(format!("block {n} events differ on replay")));
        }
        parent = block.hash.clone();
        last_number = Some(n);
    }
    Ok(state)
}

/// Replays honour what the block recorded: a declaration followed by `StorageCompleted` in the
/// same block was auto-stored, whatever the current option says.
fn was_auto_stored(block: &Block) -> bool {
    block
        .events
        .iter()
        .any(|e| matches!(e, LedgerEvent::StorageCompleted { .. }))
}
