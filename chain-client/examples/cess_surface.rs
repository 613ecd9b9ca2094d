//! Prints what deoss uses of a CESS runtime (calls with argument types, storage entries, errors
//! of `Oss`, `FileBank` and `StorageHandler`) from a SCALE metadata file, and the transaction
//! extensions it declares. Handy when a runtime upgrade changes a shape.
//!
//! `cargo run -p deoss-chain-client --example cess_surface -- ../../shared/chain/cess-metadata-spec137.scale`

use subxt::Metadata;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: cess_surface METADATA.scale")?;
    let bytes = std::fs::read(&path)?;
    let metadata = Metadata::decode_from(&bytes)?;
    let types = metadata.types();
    let name_of = |id: u32| {
        types
            .resolve(id)
            .map(|t| {
                let path = t.path.segments.join("::");
                if path.is_empty() {
                    format!("{:?}", t.type_def)
                        .chars()
                        .take(120)
                        .collect::<String>()
                } else {
                    path
                }
            })
            .unwrap_or_else(|| format!("#{id}"))
    };
    for pallet_name in ["Oss", "FileBank", "StorageHandler"] {
        let Some(pallet) = metadata.pallet_by_name(pallet_name) else {
            println!("{pallet_name}: missing");
            continue;
        };
        println!("== {pallet_name} (index {})", pallet.call_index());
        for call in pallet.call_variants().unwrap_or_default() {
            let args: Vec<String> = call
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.name.clone().unwrap_or_default(),
                        name_of(f.ty.id)
                    )
                })
                .collect();
            println!("  call {}({})", call.name, args.join(", "));
        }
        if let Some(storage) = pallet.storage() {
            for entry in storage.entries() {
                println!(
                    "  storage {} -> {}",
                    entry.name(),
                    name_of(entry.value_ty())
                );
            }
        }
        if let Some(errors) = pallet.error_variants() {
            let names: Vec<&str> = errors.iter().map(|v| v.name.as_str()).collect();
            println!("  errors {}", names.join(" "));
        }
    }
    let ext: Vec<String> = metadata
        .extrinsic()
        .transaction_extensions_by_version(0)
        .map(|it| it.map(|e| e.identifier().to_string()).collect())
        .unwrap_or_default();
    println!("transaction extensions: {}", ext.join(", "));
    Ok(())
}
