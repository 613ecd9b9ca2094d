//! Offline: build and SCALE-encode `FileBank.upload_declaration` against the metadata of the live
//! CESS testnet runtime (spec 137), with no node, to prove the call shape.

use std::path::PathBuf;

use deoss_chain_client::conformance::sample_request;
use deoss_chain_client::{DeclarationRequest, GatewayKey, encode_upload_declaration};
use subxt::Metadata;
use subxt::config::substrate::{SpecVersionForRange, SubstrateConfig};
use subxt::config::{DefaultExtrinsicParamsBuilder, Hasher as _};
use subxt::ext::codec::{Compact, Encode};
use subxt::utils::H256;

fn metadata_bytes() -> Vec<u8> {
    // The directory cargo names at run time: this binary may have been built from another clone.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = crate_dir.join("../../shared/chain/cess-metadata-spec137.scale");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request() -> DeclarationRequest {
    sample_request(&GatewayKey::dev("Bob").account(), "home", 2, "offline")
}

/// The bytes the call must have, written out field by field from the runtime's types:
/// `[pallet, call] ++ file_hash ++ deal_info ++ user_brief ++ file_size`.
fn expected_call(pallet: u8, call: u8, r: &DeclarationRequest) -> Vec<u8> {
    let mut out = vec![pallet, call];
    out.extend_from_slice(r.fid.as_ascii());
    Compact(r.segments.len() as u32).encode_to(&mut out);
    for s in &r.segments {
        out.extend_from_slice(s.hash.as_ascii());
        Compact(s.fragments.len() as u32).encode_to(&mut out);
        for f in &s.fragments {
            out.extend_from_slice(f.as_ascii());
        }
    }
    out.extend_from_slice(r.owner.as_bytes());
    r.file_name.as_bytes().encode_to(&mut out);
    r.territory.as_bytes().encode_to(&mut out);
    u128::from(r.file_size).encode_to(&mut out);
    out
}

#[test]
fn upload_declaration_encodes_for_spec_137() {
    let bytes = metadata_bytes();
    let metadata = Metadata::decode_from(&bytes).expect("metadata decodes");
    let pallet = metadata.pallet_by_name("FileBank").expect("FileBank");
    assert_eq!(pallet.call_index(), 104, "FileBank is pallet 104");
    let call_index = pallet
        .call_variant_by_name("upload_declaration")
        .expect("upload_declaration")
        .index;

    let r = request();
    let (shape, call) = encode_upload_declaration(&bytes, &r).expect("encodes");
    assert!(!shape.has_buckets, "spec 137 has no bucket_name");
    assert_eq!(
        shape.user_brief_fields,
        ["user", "file_name", "territory_name"]
    );
    assert_eq!(call, expected_call(104, call_index, &r));
}

#[test]
fn malformed_declarations_are_refused_before_encoding() {
    let bytes = metadata_bytes();
    let mut r = request();
    r.segments[1].fragments.truncate(11);
    let err = encode_upload_declaration(&bytes, &r).unwrap_err();
    assert!(err.to_string().contains("12"), "{err}");
    let mut r = request();
    r.territory = "t".repeat(64);
    assert!(encode_upload_declaration(&bytes, &r).is_err());
    assert!(encode_upload_declaration(b"not metadata", &request()).is_err());
}

/// The whole signed transaction builds offline for spec 137: every transaction extension the
/// runtime declares is one subxt knows how to fill.
#[test]
fn signed_upload_declaration_builds_offline() {
    let bytes = metadata_bytes();
    let metadata = Metadata::decode_from(&bytes).expect("metadata decodes");
    let (_, call) = encode_upload_declaration(&bytes, &request()).expect("encodes");
    let config = SubstrateConfig::builder()
        .set_genesis_hash(H256::repeat_byte(7))
        .set_metadata_for_spec_versions([(137, metadata.arc())])
        .set_spec_version_for_block_ranges([SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: 137,
            transaction_version: 1,
        }])
        .build();
    let client = subxt::OfflineClient::new_with_config(config);
    let at = client.at_block(1u64).expect("client at block");
    let payload = at
        .transactions()
        .from_call_data_bytes(&call)
        .expect("call data decodes back");
    assert_eq!(payload.pallet_name(), "FileBank");
    assert_eq!(payload.call_name(), "upload_declaration");
    let params = DefaultExtrinsicParamsBuilder::<SubstrateConfig>::new()
        .nonce(0)
        .build();
    let signer = subxt_signer::sr25519::dev::alice();
    let tx = at
        .transactions()
        .create_signable_offline(&payload, params)
        .expect("signable")
        .sign(&signer)
        .expect("signed");
    let encoded = tx.encoded();
    // The call bytes sit inside the signed extrinsic.
    assert!(encoded.windows(call.len()).any(|w| w == call.as_slice()));
    let _ = at.hasher().hash(encoded);
}
