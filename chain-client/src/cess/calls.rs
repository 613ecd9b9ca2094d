//! Building calls and reading values against the runtime's metadata, with no connection:
//! the runtime shape, `upload_declaration`'s arguments, dynamic value helpers and the mapping of
//! dispatch errors.

use scale_info::{TypeDef, form::PortableForm};
use subxt::Metadata;
use subxt::dynamic::Value;
use subxt::error::DispatchError;
use subxt::ext::scale_value::{Primitive, ValueDef};

use crate::error::{Error, Result};
use crate::hash::Hash64;
use crate::types::{AccountId, DeclarationRequest};

/// What the connected runtime looks like, read from its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeShape {
    /// `spec_version` of the runtime the metadata came from (0 when unknown, e.g. offline).
    pub spec_version: u32,
    /// Field names of `upload_declaration`'s `user_brief`, in order.
    pub user_brief_fields: Vec<String>,
    /// Whether `UserBrief` has `bucket_name` (spec 100) and buckets must exist first.
    pub has_buckets: bool,
}

impl RuntimeShape {
    /// Reads the shape from metadata; fails when `FileBank.upload_declaration` is missing or its
    /// `user_brief` has fields this crate cannot fill.
    pub fn from_metadata(metadata: &Metadata, spec_version: u32) -> Result<Self> {
        let call = metadata
            .pallet_by_name("FileBank")
            .and_then(|p| p.call_variant_by_name("upload_declaration"))
            .ok_or_else(|| Error::metadata("FileBank.upload_declaration not in the runtime"))?;
        let brief = call
            .fields
            .iter()
            .find(|f| f.name.as_deref() == Some("user_brief"))
            .ok_or_else(|| Error::metadata("upload_declaration has no user_brief argument"))?;
        let ty = metadata
            .types()
            .resolve(brief.ty.id)
            .ok_or_else(|| Error::metadata("user_brief type not in the registry"))?;
        let TypeDef::<PortableForm>::Composite(composite) = &ty.type_def else {
            return Err(Error::metadata("user_brief is not a struct"));
        };
        let mut fields = Vec::new();
        for field in &composite.fields {
            let name = field
                .name
                .clone()
                .ok_or_else(|| Error::metadata("user_brief has an unnamed field"))?;
            if !matches!(
                name.as_str(),
                "user" | "file_name" | "bucket_name" | "territory_name"
            ) {
                return Err(Error::metadata(format!(
                    "user_brief has an unknown field {name:?}"
                )));
            }
            fields.push(name);
        }
        let has_buckets = fields.iter().any(|f| f == "bucket_name");
        Ok(RuntimeShape {
            spec_version,
            user_brief_fields: fields,
            has_buckets,
        })
    }
}

/// SCALE-encodes the call `FileBank.upload_declaration` for `request` against SCALE-encoded
/// runtime metadata (e.g. a saved `metadata.scale`), with no node: the exact call bytes the
/// CESS backend would put in a transaction for that runtime. Returns the runtime shape too.
pub fn encode_upload_declaration(
    metadata_scale: &[u8],
    request: &DeclarationRequest,
) -> Result<(RuntimeShape, Vec<u8>)> {
    let metadata = Metadata::decode_from(metadata_scale)
        .map_err(|e| Error::metadata(format!("metadata does not decode: {e}")))?;
    let shape = RuntimeShape::from_metadata(&metadata, 0)?;
    let args = build_upload_declaration(&shape, request)?;
    let call = subxt::ext::frame_decode::extrinsics::encode_call_data(
        "FileBank",
        "upload_declaration",
        &args,
        &metadata,
        metadata.types(),
    )
    .map_err(|e| Error::metadata(format!("upload_declaration does not encode: {e}")))?;
    Ok((shape, call))
}

pub(super) fn bytes(v: &[u8]) -> Value {
    Value::from_bytes(v)
}

pub(super) fn account_value(a: &AccountId) -> Value {
    bytes(a.as_bytes())
}

pub(super) fn hash_value(h: &Hash64) -> Value {
    bytes(h.as_ascii())
}

/// The `FileBank.upload_declaration` arguments for `request` on a runtime of `shape`, as
/// positional dynamic values: `(file_hash, deal_info, user_brief, file_size)`.
pub(super) fn build_upload_declaration(
    shape: &RuntimeShape,
    request: &DeclarationRequest,
) -> Result<Vec<Value>> {
    request.validate()?;
    let deal_info = Value::unnamed_composite(request.segments.iter().map(|s| {
        Value::named_composite([
            ("hash", hash_value(&s.hash)),
            (
                "fragment_list",
                Value::unnamed_composite(s.fragments.iter().map(hash_value)),
            ),
        ])
    }));
    let brief = Value::named_composite(shape.user_brief_fields.iter().map(|name| {
        let v = match name.as_str() {
            "user" => account_value(&request.owner),
            "file_name" => bytes(request.file_name.as_bytes()),
            "bucket_name" => bytes(request.bucket_name.as_bytes()),
            // from_metadata admits only these four names.
            _ => bytes(request.territory.as_bytes()),
        };
        (name.clone(), v)
    }));
    Ok(vec![
        hash_value(&request.fid),
        deal_info,
        brief,
        Value::u128(u128::from(request.file_size)),
    ])
}

/// Collects the bytes of a value that is a (possibly wrapped) sequence of `u8`s.
pub(super) fn value_bytes<T>(v: &subxt::ext::scale_value::Value<T>) -> Option<Vec<u8>> {
    fn walk<T>(v: &subxt::ext::scale_value::Value<T>, out: &mut Vec<u8>) -> Option<()> {
        match &v.value {
            ValueDef::Primitive(Primitive::U128(n)) => {
                out.push(u8::try_from(*n).ok()?);
                Some(())
            }
            ValueDef::Composite(c) => {
                for inner in c.values() {
                    walk(inner, out)?;
                }
                Some(())
            }
            _ => None,
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out)?;
    Some(out)
}

pub(super) fn value_u64<T>(v: Option<&subxt::ext::scale_value::Value<T>>) -> Option<u64> {
    let v = v?;
    match &v.value {
        ValueDef::Primitive(Primitive::U128(n)) => u64::try_from(*n).ok(),
        // Single-field wrappers (e.g. a `BlockNumber` newtype).
        ValueDef::Composite(c) if c.len() == 1 => value_u64(c.values().next()),
        _ => None,
    }
}

pub(super) fn value_variant_name<T>(
    v: Option<&subxt::ext::scale_value::Value<T>>,
) -> Option<String> {
    match &v?.value {
        ValueDef::Variant(var) => Some(var.name.clone()),
        _ => None,
    }
}

/// Every 32-byte array in a value (a `BoundedVec<AccountId32>` decodes to nested composites
/// whose leaves are the 32-byte ids).
pub(super) fn value_accounts<T>(v: &subxt::ext::scale_value::Value<T>) -> Vec<AccountId> {
    fn walk<T>(v: &subxt::ext::scale_value::Value<T>, out: &mut Vec<AccountId>) {
        if let Some(id) = value_bytes(v).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            out.push(AccountId(id));
        } else if let ValueDef::Composite(c) = &v.value {
            for inner in c.values() {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// Maps a dispatch error to the crate's variants by the runtime's error names.
pub(super) fn map_dispatch(call: &str, error: &DispatchError) -> Error {
    let (pallet, name) = match error {
        DispatchError::Module(m) => match m.details() {
            Ok(d) => (d.pallet.name().to_string(), d.variant.name.clone()),
            Err(_) => (String::new(), m.to_string()),
        },
        other => (String::new(), other.to_string()),
    };
    let what = format!("{pallet}::{name}");
    // Error names of the CESS pallets (Oss, FileBank, StorageHandler) in specs 100 and 137.
    match name.as_str() {
        "NoPermission" | "NoAuthorization" => Error::NotAuthorized {
            owner: String::new(),
            gateway: what,
        },
        "InsufficientAvailableSpace" | "InsufficientStorage" => Error::InsufficientSpace {
            territory: String::new(),
            needed: 0,
            remaining: 0,
        },
        "NotHaveTerritory" => Error::TerritoryNotFound {
            owner: String::new(),
            territory: String::new(),
        },
        "NotActive" | "LeaseExpired" | "LeaseFreeze" | "Expired" => Error::TerritoryUnusable {
            territory: String::new(),
            reason: what,
        },
        "NonExistent" | "FileNonExistent" => Error::NotFound {
            what: format!("{what} in {call}"),
        },
        "Existed" | "FileExistent" | "Registered" => Error::AlreadyExists {
            what: format!("{what} in {call}"),
        },
        "LengthExceedsLimit" | "LessMinLength" | "SpecError" | "BoundedVecError" => {
            Error::InvalidRequest {
                reason: format!("{what} in {call}"),
            }
        }
        _ => Error::Dispatch {
            call: call.to_string(),
            error: what,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_found_in_a_bounded_vec_of_ids() {
        let id = |b: u8| Value::unnamed_composite([Value::from_bytes([b; 32])]);
        let one = Value::unnamed_composite([Value::unnamed_composite([id(1)])]);
        assert_eq!(value_accounts(&one), vec![AccountId([1; 32])]);
        let two = Value::unnamed_composite([Value::unnamed_composite([id(1), id(2)])]);
        assert_eq!(
            value_accounts(&two),
            vec![AccountId([1; 32]), AccountId([2; 32])]
        );
        let none = Value::unnamed_composite([Value::unnamed_composite([])]);
        assert!(value_accounts(&none).is_empty());
    }

    #[test]
    fn numbers_and_bytes_read_through_wrappers() {
        let wrapped = Value::unnamed_composite([Value::u128(42)]);
        assert_eq!(value_u64(Some(&wrapped)), Some(42));
        assert_eq!(value_u64(Some(&Value::u128(u128::MAX))), None);
        assert_eq!(
            value_bytes(&Value::from_bytes(b"home")),
            Some(b"home".to_vec())
        );
        assert_eq!(value_bytes(&Value::u128(300)), None);
        let state = Value::unnamed_variant("Active", []);
        assert_eq!(value_variant_name(Some(&state)).as_deref(), Some("Active"));
    }
}
