//! The ledger's state and the rules that change it (the ledger's "runtime").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::format::{LedgerCall, LedgerEvent};
use crate::error::{Error, Result};
use crate::types::{
    AccountId, BLOCKS_PER_DAY, Fid, GatewayInfo, MAX_NAME_LEN, OrderState, Territory,
    TerritoryState,
};

const GIB: u64 = 1024 * 1024 * 1024;

/// An order as the dev ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The file id.
    pub fid: Fid,
    /// Owner.
    pub owner: AccountId,
    /// Territory charged.
    pub territory: String,
    /// File name.
    pub file_name: String,
    /// Bucket name.
    pub bucket_name: String,
    /// Plain size.
    pub file_size: u64,
    /// Segment count.
    pub segments: usize,
    /// Territory bytes the order takes (locked, then used).
    pub space: u64,
    /// Current state (`Absent` once deleted).
    pub state: OrderState,
    /// Block of the declaration.
    pub declared_block: u64,
    /// Block where it was reported stored.
    pub stored_block: Option<u64>,
    /// Block of the deletion.
    pub deleted_block: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct State {
    pub(super) gateways: BTreeMap<AccountId, GatewayInfo>,
    pub(super) authority: BTreeMap<AccountId, BTreeSet<AccountId>>,
    pub(super) territories: BTreeMap<(AccountId, String), Territory>,
    pub(super) orders: BTreeMap<Fid, OrderRecord>,
}

impl State {
    pub(super) fn may_act_for(&self, operator: &AccountId, owner: &AccountId) -> bool {
        operator == owner
            || self
                .authority
                .get(owner)
                .is_some_and(|set| set.contains(operator))
    }

    /// Applies `call` as block `number`; returns its events or why it is refused. Pure in the
    /// sense that replay gives the same answer. Every call checks everything before it changes
    /// anything: a refused call leaves the state untouched (the ledger applies calls in place).
    pub(super) fn apply(
        &mut self,
        call: &LedgerCall,
        number: u64,
        auto_store: bool,
    ) -> Result<Vec<LedgerEvent>> {
        match call {
            LedgerCall::Genesis { authority, .. } => Ok(vec![LedgerEvent::Genesis {
                authority: *authority,
            }]),
            LedgerCall::RegisterGateway { account, info } => {
                if self.gateways.contains_key(account) {
                    return Err(Error::AlreadyExists {
                        what: format!("gateway {account}"),
                    });
                }
                self.gateways.insert(*account, info.clone());
                Ok(vec![LedgerEvent::OssRegister { account: *account }])
            }
            LedgerCall::UpdateGateway { account, info } => {
                let slot = self
                    .gateways
                    .get_mut(account)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("gateway {account}"),
                    })?;
                *slot = info.clone();
                Ok(vec![LedgerEvent::OssUpdate { account: *account }])
            }
            LedgerCall::Authorize { owner, operator } => {
                if !self.gateways.contains_key(operator) {
                    return Err(Error::NotFound {
                        what: format!("gateway {operator}"),
                    });
                }
                self.authority.entry(*owner).or_default().insert(*operator);
                Ok(vec![LedgerEvent::Authorize {
                    owner: *owner,
                    operator: *operator,
                }])
            }
            LedgerCall::CancelAuthorize { owner, operator } => {
                let removed = self
                    .authority
                    .get_mut(owner)
                    .is_some_and(|set| set.remove(operator));
                if !removed {
                    return Err(Error::NotFound {
                        what: format!("authorization of {operator} by {owner}"),
                    });
                }
                Ok(vec![LedgerEvent::CancelAuthorize {
                    owner: *owner,
                    operator: *operator,
                }])
            }
            LedgerCall::MintTerritory {
                owner,
                name,
                gib,
                days,
            } => {
                if name.is_empty() || name.len() > MAX_NAME_LEN {
                    return Err(Error::invalid(format!(
                        "territory name must be 1 to {MAX_NAME_LEN} bytes"
                    )));
                }
                if *gib == 0 || *days == 0 {
                    return Err(Error::invalid("a territory needs at least 1 GiB and 1 day"));
                }
                let key = (*owner, name.clone());
                if self.territories.contains_key(&key) {
                    return Err(Error::AlreadyExists {
                        what: format!("territory {name:?} of {owner}"),
                    });
                }
                let total_space = u64::from(*gib) * GIB;
                let deadline = number + u64::from(*days) * BLOCKS_PER_DAY;
                self.territories.insert(
                    key,
                    Territory {
                        name: name.clone(),
                        total_space,
                        used_space: 0,
                        locked_space: 0,
                        remaining_space: total_space,
                        deadline,
                        state: TerritoryState::Active,
                    },
                );
                Ok(vec![LedgerEvent::MintTerritory {
                    owner: *owner,
                    name: name.clone(),
                    total_space,
                    deadline,
                }])
            }
            LedgerCall::UploadDeclaration { operator, request } => {
                request.validate()?;
                let owner = request.owner;
                if !self.may_act_for(operator, &owner) {
                    return Err(Error::NotAuthorized {
                        owner: owner.to_string(),
                        gateway: operator.to_string(),
                    });
                }
                if let Some(existing) = self.orders.get(&request.fid)
                    && existing.state != OrderState::Absent
                {
                    return Err(Error::AlreadyExists {
                        what: format!("order {}", request.fid),
                    });
                }
                let territory = self
                    .territories
                    .get_mut(&(owner, request.territory.clone()))
                    .ok_or_else(|| Error::TerritoryNotFound {
                        owner: owner.to_string(),
                        territory: request.territory.clone(),
                    })?;
                let need = request.locked_space();
                territory.check_room(need, number)?;
                territory.locked_space += need;
                territory.remaining_space -= need;
                let mut events = vec![LedgerEvent::UploadDeclaration {
                    operator: *operator,
                    owner,
                    fid: request.fid,
                    locked: need,
                }];
                let mut record = OrderRecord {
                    fid: request.fid,
                    owner,
                    territory: request.territory.clone(),
                    file_name: request.file_name.clone(),
                    bucket_name: request.bucket_name.clone(),
                    file_size: request.file_size,
                    segments: request.segments.len(),
                    space: need,
                    state: OrderState::Declared,
                    declared_block: number,
                    stored_block: None,
                    deleted_block: None,
                };
                if auto_store {
                    territory.locked_space -= need;
                    territory.used_space += need;
                    record.state = OrderState::Stored;
                    record.stored_block = Some(number);
                    events.push(LedgerEvent::StorageCompleted { fid: request.fid });
                }
                self.orders.insert(request.fid, record);
                Ok(events)
            }
            LedgerCall::MarkStored { fid } => {
                let record = self
                    .orders
                    .get_mut(fid)
                    .filter(|r| r.state == OrderState::Declared)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("deal {fid}"),
                    })?;
                if let Some(t) = self
                    .territories
                    .get_mut(&(record.owner, record.territory.clone()))
                {
                    t.locked_space -= record.space;
                    t.used_space += record.space;
                }
                record.state = OrderState::Stored;
                record.stored_block = Some(number);
                Ok(vec![LedgerEvent::StorageCompleted { fid: *fid }])
            }
            LedgerCall::DeleteFile {
                operator,
                owner,
                fid,
            } => {
                let may = self.may_act_for(operator, owner);
                let record = self
                    .orders
                    .get_mut(fid)
                    .filter(|r| r.state == OrderState::Stored && r.owner == *owner)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("file {fid} of {owner}"),
                    })?;
                if !may {
                    return Err(Error::NotAuthorized {
                        owner: owner.to_string(),
                        gateway: operator.to_string(),
                    });
                }
                if let Some(t) = self
                    .territories
                    .get_mut(&(record.owner, record.territory.clone()))
                {
                    t.used_space -= record.space;
                    t.remaining_space += record.space;
                }
                record.state = OrderState::Absent;
                record.deleted_block = Some(number);
                Ok(vec![LedgerEvent::DeleteFile {
                    operator: *operator,
                    owner: *owner,
                    fid: *fid,
                }])
            }
            LedgerCall::AdvanceBlocks { .. } => {
                Ok(vec![LedgerEvent::BlocksAdvanced { to: number }])
            }
        }
    }
}
