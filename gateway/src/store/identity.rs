//! The id file that names a fragment store: `<root>/deoss-store.json`.
//!
//! The catalogue records, next to every fragment, the id of the store that holds it. That id has
//! to travel with the store's bytes, not with the store's place in the configuration: a
//! reordered `stores.dirs`, or a dead disk taken out of the middle of it, must not rename the
//! stores after it (the orphan sweep would then delete every fragment it finds under the wrong
//! name). So each store carries its id in a small file at its root, written once, when the store
//! is first used, and never rewritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::registry::StoreKind;

/// Name of the id file in a store's root. // format constant: never change
pub const ID_FILE: &str = "deoss-store.json";
/// Value of the file's `format` field. // format constant: never change
const FORMAT: &str = "deoss-store";
/// The only version written so far; a newer one is refused rather than guessed at.
const VERSION: u32 = 1;
/// Longest id accepted from a file (ids go into every fragment row).
const MAX_ID_LEN: usize = 64;

/// The contents of a store's id file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// Always `deoss-store`: tells the file from any other JSON.
    pub format: String,
    pub version: u32,
    pub id: String,
    pub kind: StoreKind,
    pub created_ms: i64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdFileError {
    #[error("cannot read or write the store id file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable store id file: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl StoreIdentity {
    pub fn new(id: impl Into<String>, kind: StoreKind, created_ms: i64) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            id: id.into(),
            kind,
            created_ms,
        }
    }

    /// An identity with a new random id.
    pub fn fresh(kind: StoreKind, created_ms: i64) -> Self {
        Self::new(new_store_id(), kind, created_ms)
    }
}

/// A new store id: `st-` and 16 random hex digits. Random rather than counted, so that the
/// stores of gateways sharing one catalogue never take each other's names.
pub fn new_store_id() -> String {
    format!("st-{}", hex::encode(crate::crypto::random_array::<8>()))
}

/// Whether `id` may name a store: 1 to 64 of lowercase letters, digits, '-', '_' and '.'.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Path of the id file of the store at `root`.
pub fn id_file(root: &Path) -> PathBuf {
    root.join(ID_FILE)
}

/// Reads the id file of the store at `root`; `None` if there is none.
pub fn read(root: &Path) -> Result<Option<StoreIdentity>, IdFileError> {
    let path = id_file(root);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdFileError::Io { path, source }),
    };
    let invalid = |reason: String| IdFileError::Invalid {
        path: path.clone(),
        reason,
    };
    let ident: StoreIdentity = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    if ident.format != FORMAT {
        return Err(invalid(format!("format is {:?}", ident.format)));
    }
    if ident.version != VERSION {
        return Err(invalid(format!(
            "version {} (this deoss reads version {VERSION})",
            ident.version
        )));
    }
    if !valid_id(&ident.id) {
        return Err(invalid(format!("bad store id {:?}", ident.id)));
    }
    Ok(Some(ident))
}

/// Writes the id file of the store at `root`, unless it has one already, and returns the
/// identity the store has afterwards: `ident`, or the one found (another gateway sharing the
/// directory wrote first). The file appears whole or not at all: written to a temp file, synced,
/// then linked into place (which, unlike a rename, never replaces an existing file) and the
/// directory synced.
pub fn write_new(root: &Path, ident: &StoreIdentity) -> Result<StoreIdentity, IdFileError> {
    let path = id_file(root);
    let io = |source| IdFileError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(root).map_err(io)?;
    let tmp = root.join(format!(
        ".{ID_FILE}.{}.tmp",
        hex::encode(crate::crypto::random_array::<8>())
    ));
    let mut text = serde_json::to_vec_pretty(ident).expect("identity serializes");
    text.push(b'\n');
    let written = std::fs::File::create_new(&tmp)
        .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
        .and_then(|()| link_new(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read(root)?.ok_or_else(|| IdFileError::Invalid {
                path: path.clone(),
                reason: "it vanished while being written".into(),
            });
        }
        Err(e) => return Err(io(e)),
    }
    std::fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(ident.clone())
}

/// Puts `tmp` in place at `path` unless a file is there already (`AlreadyExists`).
fn link_new(tmp: &Path, path: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, path) {
        // Filesystems without hard links (FAT, some FUSE ones): check, then rename, which only
        // two gateways naming the same new directory at the same instant could race.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            if path.exists() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(tmp, path)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let ident = StoreIdentity::fresh(StoreKind::Local, 1_700_000_000_000);
        assert_eq!(write_new(dir.path(), &ident).unwrap(), ident);
        assert_eq!(read(dir.path()).unwrap(), Some(ident.clone()));
        // The marker and field names are the on-disk format.
        let text = std::fs::read_to_string(dir.path().join(ID_FILE)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["format"], "deoss-store");
        assert_eq!(json["version"], 1);
        assert_eq!(json["kind"], "local");
        assert_eq!(json["id"], ident.id.as_str());
        assert_eq!(json["created_ms"], 1_700_000_000_000i64);
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreIdentity::fresh(StoreKind::Local, 1);
        write_new(dir.path(), &first).unwrap();
        let second = StoreIdentity::fresh(StoreKind::Local, 2);
        assert_eq!(write_new(dir.path(), &second).unwrap(), first);
        assert_eq!(read(dir.path()).unwrap(), Some(first));
    }

    #[test]
    fn fresh_ids_are_random_and_valid() {
        let a = new_store_id();
        assert!(a.starts_with("st-") && a.len() == 19, "{a}");
        assert!(valid_id(&a));
        assert_ne!(a, new_store_id());
        assert!(valid_id("local-07"));
        for bad in ["", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ID_FILE);
        let cases = [
            "not json",
            r#"{"format":"other","version":1,"id":"st-1","kind":"local","created_ms":0}"#,
            r#"{"format":"deoss-store","version":2,"id":"st-1","kind":"local","created_ms":0}"#,
            r#"{"format":"deoss-store","version":1,"id":"../x","kind":"local","created_ms":0}"#,
            r#"{"format":"deoss-store","version":1,"id":"st-1","kind":"tape","created_ms":0}"#,
        ];
        for text in cases {
            std::fs::write(&path, text).unwrap();
            let err = read(dir.path()).unwrap_err();
            assert!(
                matches!(err, IdFileError::Invalid { .. }),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
        }
    }
}
