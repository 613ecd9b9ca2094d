//! Plain domain types shared by every backend. No subxt types appear here.

use std::fmt;
use std::str::FromStr;

use blake2::{Blake2b512, Digest as _};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::Hash64;

/// SS58 address prefix of the CESS networks (addresses start with `cX`).
pub const CESS_SS58_PREFIX: u16 = 11330;
/// Segment size CESS uses: 32 MiB.
pub const SEGMENT_SIZE: u64 = 32 * 1024 * 1024;
/// Fragment size CESS uses: 8 MiB.
pub const FRAGMENT_SIZE: u64 = 8 * 1024 * 1024;
/// Data fragments per segment.
pub const DATA_FRAGMENTS: usize = 4;
/// Parity fragments per segment.
pub const PARITY_FRAGMENTS: usize = 8;
/// Fragments per segment that `upload_declaration` accepts: exactly 12.
pub const FRAGMENTS_PER_SEGMENT: usize = DATA_FRAGMENTS + PARITY_FRAGMENTS;
/// Territory space a declaration locks per segment: 12 fragments x 8 MiB = 96 MiB.
pub const SPACE_PER_SEGMENT: u64 = FRAGMENTS_PER_SEGMENT as u64 * FRAGMENT_SIZE;
/// Territory space an upload of `size` bytes will lock: one segment's worth per started segment
/// (at least one), as its declaration will.
pub fn upload_space(size: u64) -> u64 {
    size.div_ceil(SEGMENT_SIZE).max(1) * SPACE_PER_SEGMENT
}

/// Most segments one declaration may list.
pub const MAX_SEGMENTS: usize = 1000;
/// Longest file, bucket or territory name in bytes.
pub const MAX_NAME_LEN: usize = 63;
/// Shortest file name in bytes.
pub const MIN_FILE_NAME_LEN: usize = 3;
/// Longest gateway domain (`Oss.register`'s `domain`).
pub const MAX_DOMAIN_LEN: usize = 50;
/// Blocks per day at CESS's 6 s block time (territory deadlines are block numbers).
pub const BLOCKS_PER_DAY: u64 = 14_400;

/// A 32-byte account id (sr25519 public key). Displays as SS58 with the CESS prefix; parses from
/// SS58 with any prefix or from `0x` + 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SS58 text with the given network prefix (`CESS_SS58_PREFIX`, or 42 for generic Substrate).
    pub fn to_ss58(&self, prefix: u16) -> String {
        let mut data = Vec::with_capacity(2 + 32 + 2);
        let prefix = prefix & 0b0011_1111_1111_1111;
        if prefix < 64 {
            data.push(prefix as u8);
        } else {
            // Two-byte prefix form of the SS58 spec: 14 bits spread over two bytes, marked by 01 in
            // the top bits of the first.
            data.push((((prefix & 0b0000_0000_1111_1100) >> 2) as u8) | 0b0100_0000);
            data.push(((prefix >> 8) as u8) | (((prefix & 0b0000_0000_0000_0011) as u8) << 6));
        }
        data.extend_from_slice(&self.0);
        let checksum = ss58_checksum(&data);
        data.extend_from_slice(&checksum[..2]);
        bs58::encode(data).into_string()
    }

    /// Parses SS58 text (checksum verified, any prefix) and returns the id and the prefix.
    pub fn from_ss58(text: &str) -> Result<(Self, u16)> {
        let bad = |why: &str| Error::invalid(format!("not an SS58 address ({why}): {text:?}"));
        let data = bs58::decode(text)
            .into_vec()
            .map_err(|_| bad("not base58"))?;
        let (prefix, prefix_len) = match data.first() {
            Some(&b) if b < 64 => (u16::from(b), 1),
            Some(&b) if b < 128 => {
                let second = *data.get(1).ok_or_else(|| bad("truncated"))?;
                let lower = (u16::from(b) << 2) | (u16::from(second) >> 6);
                let upper = u16::from(second & 0b0011_1111);
                ((lower & 0b0000_0000_1111_1111) | (upper << 8), 2)
            }
            _ => return Err(bad("unknown prefix form")),
        };
        if data.len() != prefix_len + 32 + 2 {
            return Err(bad("wrong length"));
        }
        let checksum = ss58_checksum(&data[..prefix_len + 32]);
        if data[prefix_len + 32..] != checksum[..2] {
            return Err(bad("checksum"));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&data[prefix_len..prefix_len + 32]);
        Ok((AccountId(id), prefix))
    }
}

fn ss58_checksum(data: &[u8]) -> [u8; 64] {
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(data);
    hasher.finalize().into()
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58(CESS_SS58_PREFIX))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

impl FromStr for AccountId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(hex_part) = s.strip_prefix("0x") {
            let bytes = hex::decode(hex_part)
                .map_err(|_| Error::invalid(format!("account id is not hex: {s:?}")))?;
            let id: [u8; 32] = bytes
                .try_into()
                .map_err(|_| Error::invalid(format!("account id is not 32 bytes: {s:?}")))?;
            return Ok(AccountId(id));
        }
        Ok(AccountId::from_ss58(s)?.0)
    }
}

impl From<[u8; 32]> for AccountId {
    fn from(bytes: [u8; 32]) -> Self {
        AccountId(bytes)
    }
}

impl Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A file id: the CESS "file hash" (see [`crate::hash::fid_of_segments`]).
pub type Fid = Hash64;
/// A fragment or segment hash as CESS stores it.
pub type FragmentHash = Hash64;

/// One segment of a declaration: its hash and its 12 fragment hashes (4 data then 8 parity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDeclaration {
    /// SHA-256 of the segment.
    pub hash: FragmentHash,
    /// SHA-256 of each fragment, in fragment order.
    pub fragments: Vec<FragmentHash>,
}

/// Everything `FileBank.upload_declaration` needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclarationRequest {
    /// The file id; must equal [`crate::hash::fid_of_segments`] over the segment hashes.
    pub fid: Fid,
    /// Segments in file order, 1 to [`MAX_SEGMENTS`].
    pub segments: Vec<SegmentDeclaration>,
    /// The data owner, who must have authorized the gateway.
    pub owner: AccountId,
    /// File name as the owner sees it (3 to 63 bytes).
    pub file_name: String,
    /// Bucket name (1 to 63 bytes). Only runtimes whose `UserBrief` has `bucket_name` (spec 100)
    /// use it; the CESS backend creates the bucket on those runtimes when missing.
    pub bucket_name: String,
    /// The owner's territory to take space from.
    pub territory: String,
    /// Plain file size in bytes.
    pub file_size: u64,
}

impl DeclarationRequest {
    /// Territory bytes this declaration locks: [`SPACE_PER_SEGMENT`] per segment.
    pub fn locked_space(&self) -> u64 {
        self.segments.len() as u64 * SPACE_PER_SEGMENT
    }

    /// Checks what the runtime checks, plus that the fid matches the segments, so a bad request
    /// fails here with a clear message instead of as an opaque dispatch error.
    pub fn validate(&self) -> Result<()> {
        if self.segments.is_empty() || self.segments.len() > MAX_SEGMENTS {
            return Err(Error::invalid(format!(
                "a declaration lists 1 to {MAX_SEGMENTS} segments, not {}",
                self.segments.len()
            )));
        }
        for (i, segment) in self.segments.iter().enumerate() {
            if segment.fragments.len() != FRAGMENTS_PER_SEGMENT {
                return Err(Error::invalid(format!(
                    "segment {i} has {} fragments; CESS takes exactly {FRAGMENTS_PER_SEGMENT}",
                    segment.fragments.len()
                )));
            }
        }
        check_name("file name", &self.file_name, MIN_FILE_NAME_LEN)?;
        check_name("bucket name", &self.bucket_name, 1)?;
        check_name("territory name", &self.territory, 1)?;
        let hashes: Vec<Hash64> = self.segments.iter().map(|s| s.hash).collect();
        let expected = crate::hash::fid_of_segments(&hashes)?;
        if expected != self.fid {
            return Err(Error::invalid(format!(
                "fid {} does not match the segment hashes (expected {expected})",
                self.fid
            )));
        }
        Ok(())
    }
}

fn check_name(what: &str, name: &str, min: usize) -> Result<()> {
    if name.len() < min || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "{what} must be {min} to {MAX_NAME_LEN} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}

/// State of a territory (CESS `TerritoryState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerritoryState {
    /// Usable.
    Active,
    /// Frozen by the runtime (e.g. during consignment).
    Frozen,
    /// Past its deadline.
    Expired,
    /// Offered for sale.
    OnConsignment,
    /// A state this crate does not know (newer runtime).
    Other(String),
}

impl TerritoryState {
    /// Label for logs and metrics.
    pub fn as_str(&self) -> &str {
        match self {
            TerritoryState::Active => "Active",
            TerritoryState::Frozen => "Frozen",
            TerritoryState::Expired => "Expired",
            TerritoryState::OnConsignment => "OnConsignment",
            TerritoryState::Other(s) => s,
        }
    }

    pub(crate) fn from_name(name: &str) -> Self {
        match name {
            "Active" => TerritoryState::Active,
            "Frozen" => TerritoryState::Frozen,
            "Expired" => TerritoryState::Expired,
            "OnConsignment" => TerritoryState::OnConsignment,
            other => TerritoryState::Other(other.to_string()),
        }
    }
}

/// An owner's territory (`StorageHandler.Territory(owner, name)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Territory {
    /// Territory name.
    pub name: String,
    /// Total bytes bought.
    pub total_space: u64,
    /// Bytes taken by stored files.
    pub used_space: u64,
    /// Bytes locked by pending declarations.
    pub locked_space: u64,
    /// Bytes still free.
    pub remaining_space: u64,
    /// Block number after which the territory expires.
    pub deadline: u64,
    /// Runtime state.
    pub state: TerritoryState,
}

impl Territory {
    /// Whether a declaration needing `needed` bytes can go in at block `now`; the error names the
    /// cause (expired, not active, no space).
    pub fn check_room(&self, needed: u64, now: u64) -> Result<()> {
        if self.state != TerritoryState::Active {
            return Err(Error::TerritoryUnusable {
                territory: self.name.clone(),
                reason: format!("state {}", self.state.as_str()),
            });
        }
        if now > self.deadline {
            return Err(Error::TerritoryUnusable {
                territory: self.name.clone(),
                reason: format!("expired at block {} (now {now})", self.deadline),
            });
        }
        if self.remaining_space < needed {
            return Err(Error::InsufficientSpace {
                territory: self.name.clone(),
                needed,
                remaining: self.remaining_space,
            });
        }
        Ok(())
    }
}

/// Where a storage order stands on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderState {
    /// Neither a deal nor a file: never declared, or deleted.
    Absent,
    /// `FileBank.DealMap(fid)` exists: declared, waiting for storage miners' reports.
    Declared,
    /// `FileBank.File(fid)` exists: every fragment was reported stored.
    Stored,
}

impl OrderState {
    /// Label for headers, logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderState::Absent => "absent",
            OrderState::Declared => "declared",
            OrderState::Stored => "stored",
        }
    }
}

/// Where and when a transaction landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    /// Number of the block that includes it.
    pub block_number: u64,
    /// Hash of that block, `0x` + hex.
    pub block_hash: String,
    /// Whether the block was reported finalized (false: included in a best block only).
    pub finalized: bool,
}

/// The gateway's public registration (`Oss.register(endpoint, domain)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// The 38-byte `endpoint` CESS stores (DeOSS puts its libp2p peer id there).
    #[serde(with = "hex_38")]
    pub endpoint: [u8; 38],
    /// Public domain or URL of the gateway, at most [`MAX_DOMAIN_LEN`] bytes.
    pub domain: String,
}

impl GatewayInfo {
    /// Registration for `account`: deoss has no libp2p identity, so the endpoint is laid out like
    /// an identity-multihash peer id (`00 24 08 01 12 20` + 32 key bytes) over the account's
    /// public key, which is stable per gateway key and unique.
    pub fn for_account(account: &AccountId, domain: impl Into<String>) -> Result<Self> {
        let domain = domain.into();
        if domain.len() > MAX_DOMAIN_LEN {
            return Err(Error::invalid(format!(
                "gateway domain is {} bytes, at most {MAX_DOMAIN_LEN}",
                domain.len()
            )));
        }
        let mut endpoint = [0u8; 38];
        endpoint[..6].copy_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
        endpoint[6..].copy_from_slice(account.as_bytes());
        Ok(GatewayInfo { endpoint, domain })
    }
}

mod hex_38 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 38], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 38], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("endpoint must be 38 bytes"))
    }
}

/// What [`crate::Chain::register_gateway`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// First registration (`Oss.register`).
    Registered(TxReceipt),
    /// Already registered with other details (`Oss.update`).
    Updated(TxReceipt),
    /// Already registered with the same details; nothing sent.
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    // //Alice's public key, a fixed vector of the Substrate dev accounts.
    const ALICE: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

    fn alice() -> AccountId {
        AccountId(hex::decode(ALICE).unwrap().try_into().unwrap())
    }

    #[test]
    fn ss58_generic_prefix_matches_the_well_known_alice_address() {
        assert_eq!(
            alice().to_ss58(42),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let (id, prefix) =
            AccountId::from_ss58("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").unwrap();
        assert_eq!((id, prefix), (alice(), 42));
    }

    #[test]
    fn ss58_cess_prefix_round_trips_and_starts_with_cx() {
        let text = alice().to_string();
        assert!(text.starts_with("cX"), "{text}");
        let (id, prefix) = AccountId::from_ss58(&text).unwrap();
        assert_eq!(id, alice());
        assert_eq!(prefix, CESS_SS58_PREFIX);
        assert_eq!(text.parse::<AccountId>().unwrap(), alice());
        assert_eq!(format!("0x{ALICE}").parse::<AccountId>().unwrap(), alice());
    }

    #[test]
    fn ss58_rejects_a_bad_checksum() {
        let mut text = alice().to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'a' { 'b' } else { 'a' });
        assert!(matches!(
            text.parse::<AccountId>(),
            Err(Error::InvalidRequest { .. })
        ));
    }

    #[test]
    fn territory_room_checks_name_the_cause() {
        let t = Territory {
            name: "t1".into(),
            total_space: SPACE_PER_SEGMENT * 2,
            used_space: 0,
            locked_space: 0,
            remaining_space: SPACE_PER_SEGMENT * 2,
            deadline: 100,
            state: TerritoryState::Active,
        };
        t.check_room(SPACE_PER_SEGMENT * 2, 100).unwrap();
        assert!(matches!(
            t.check_room(SPACE_PER_SEGMENT * 3, 1),
            Err(Error::InsufficientSpace { .. })
        ));
        assert!(matches!(
            t.check_room(1, 101),
            Err(Error::TerritoryUnusable { .. })
        ));
    }

    #[test]
    fn gateway_endpoint_is_38_bytes_with_the_key_inside() {
        let g = GatewayInfo::for_account(&alice(), "https://gw.example").unwrap();
        assert_eq!(&g.endpoint[6..], alice().as_bytes());
        assert!(GatewayInfo::for_account(&alice(), "x".repeat(51)).is_err());
    }
}
