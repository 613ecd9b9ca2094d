//! Opening the configured fragment store directories under their persistent ids.
//!
//! A directory is a store by its id file (`store::identity`), not by its place in
//! `stores.dirs`, and the catalogue must know the id. Each rule that refuses a directory runs
//! before anything is written, and a refused start stops before the orphan sweep: a directory
//! that cannot be told apart from another store is never swept.
//!
//! - no id file, no fragments: a new store; a fresh id is registered, then written.
//! - an id file the catalogue knows: that store, wherever it is listed.
//! - an id file the catalogue does not know: refused (another catalogue's store).
//! - fragments but no id file: refused, except once, when upgrading a catalogue that registered
//!   no stores but whose fragments name the positional ids of earlier releases (`local-NN`): then
//!   the directory at position NN is adopted as `local-NN`.
//! - the same directory or the same id twice: refused.
//! - a registered store that is not configured: logged; reads rebuild its fragments from parity.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::StartError;
use crate::catalogue::{Catalogue, CatalogueError, now_ms};
use crate::store::identity::{self, ID_FILE, IdFileError, StoreIdentity};
use crate::store::{
    FragmentStore, LocalStore, StoreError, StoreInfo, StoreKind, StoreRegistry, StoreSet,
};

/// Fragments of a directory looked up in the catalogue, at the upgrade, to check that the
/// directory is where it was.
const LEGACY_SAMPLE: usize = 16;

/// Why a configured store directory stops the start. Every message names the directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreDirError {
    #[error("fragment store directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open fragment store directory {dir}: {source}")]
    Open {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    IdFile(#[from] IdFileError),
    #[error(
        "fragment store directory {dir} is configured twice (entries {first} and {second} of the \
         store directories)"
    )]
    ListedTwice {
        dir: PathBuf,
        first: usize,
        second: usize,
    },
    #[error(
        "fragment store directories {first} and {second} are the same store {id} (one is a copy \
         of the other?); configure each store once"
    )]
    SameId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "fragment store directory {dir} is store {id}, which this catalogue does not know: it \
         belongs to another catalogue. Refusing to start; configure this catalogue's store \
         directories, or take {dir} out of the configuration"
    )]
    UnknownId { dir: PathBuf, id: String },
    #[error(
        "fragment store directory {dir} holds fragments but no {ID_FILE}, so which store it is \
         cannot be told. Refusing to start rather than risk deleting them; configure the \
         directory's own catalogue, or take {dir} out of the configuration"
    )]
    NoIdFile { dir: PathBuf },
    #[error(
        "fragment store directory {dir} is store {found}, but upgrading to store id files \
         expects store {expected} (its position, {position}, in the configured list)"
    )]
    LegacyMismatch {
        dir: PathBuf,
        position: usize,
        expected: String,
        found: String,
    },
    #[error(
        "fragment store directory {dir} holds fragments the catalogue places on store {holder}, \
         but it is at position {position} ({expected}): the store directories were reordered \
         before upgrading to store id files. Restore the order they had and start again"
    )]
    LegacyReordered {
        dir: PathBuf,
        position: usize,
        expected: String,
        holder: String,
    },
}

/// A configured directory, as found before anything is written.
#[derive(Debug)]
struct Surveyed {
    /// As configured (what error messages name).
    dir: PathBuf,
    /// Absolute and, when it exists, canonical (what duplicates are judged by and the catalogue
    /// records as the endpoint).
    path: PathBuf,
    identity: Option<StoreIdentity>,
    holds_fragments: bool,
}

/// What to do with a surveyed directory.
#[derive(Debug)]
enum Step {
    Known(StoreInfo),
    Fresh,
}

/// Opens the store directories `dirs` under their persistent ids, registering new ones.
pub(super) async fn open_stores(cat: &Catalogue, dirs: &[PathBuf]) -> Result<StoreSet, StartError> {
    let mut found = survey(dirs)?;
    if cat.list_stores().await?.is_empty() {
        adopt_legacy(cat, &mut found).await?;
    }
    let steps = plan(&found, &cat.list_stores().await?)?;
    let mut opened: Vec<Arc<dyn FragmentStore>> = Vec::with_capacity(found.len());
    for (s, step) in found.iter().zip(steps) {
        let id = match step {
            Step::Known(info) => {
                let endpoint = s.path.display().to_string();
                if info.endpoint != endpoint {
                    tracing::info!(store = %info.id, from = %info.endpoint, to = %endpoint,
                        "fragment store has moved");
                    cat.set_store_endpoint(&info.id, &endpoint).await?;
                }
                info.id
            }
            Step::Fresh => register_fresh(cat, s).await?,
        };
        let store = LocalStore::open(id, &s.path).map_err(|source| StoreDirError::Open {
            dir: s.dir.clone(),
            source,
        })?;
        opened.push(Arc::new(store));
    }
    let registry = StoreRegistry::new(
        cat.list_stores().await?,
        opened.iter().map(|s| s.id().to_string()),
    );
    for s in registry.not_open() {
        tracing::warn!(store = %s.id, endpoint = %s.endpoint,
            "registered fragment store is not configured: reads rebuild its fragments from parity, \
             and it is never swept");
    }
    Ok(StoreSet::new(opened).with_registry(registry))
}

/// Reads each directory's id file and checks for fragments, refusing duplicates. Writes nothing.
fn survey(dirs: &[PathBuf]) -> Result<Vec<Surveyed>, StoreDirError> {
    let mut found: Vec<Surveyed> = Vec::with_capacity(dirs.len());
    for (position, dir) in dirs.iter().enumerate() {
        let io = |source| StoreDirError::Io {
            dir: dir.clone(),
            source,
        };
        let path = if dir.exists() {
            dir.canonicalize().map_err(io)?
        } else {
            std::path::absolute(dir).map_err(io)?
        };
        if let Some(first) = found.iter().position(|s| s.path == path) {
            return Err(StoreDirError::ListedTwice {
                dir: dir.clone(),
                first: first + 1,
                second: position + 1,
            });
        }
        let identity = identity::read(&path)?;
        let holds_fragments =
            identity.is_none() && !LocalStore::sample(&path, 1).map_err(io)?.is_empty();
        found.push(Surveyed {
            dir: dir.clone(),
            path,
            identity,
            holds_fragments,
        });
    }
    let mut by_id: BTreeMap<&str, &Surveyed> = BTreeMap::new();
    for s in &found {
        let Some(ident) = &s.identity else { continue };
        if let Some(first) = by_id.insert(&ident.id, s) {
            return Err(StoreDirError::SameId {
                id: ident.id.clone(),
                first: first.dir.clone(),
                second: s.dir.clone(),
            });
        }
    }
    Ok(found)
}

/// Applies the rules to every directory against the registered stores.
fn plan(found: &[Surveyed], registered: &[StoreInfo]) -> Result<Vec<Step>, StoreDirError> {
    found
        .iter()
        .map(|s| match &s.identity {
            Some(ident) => registered
                .iter()
                .find(|r| r.id == ident.id)
                .map(|r| Step::Known(r.clone()))
                .ok_or_else(|| StoreDirError::UnknownId {
                    dir: s.dir.clone(),
                    id: ident.id.clone(),
                }),
            None if s.holds_fragments => Err(StoreDirError::NoIdFile { dir: s.dir.clone() }),
            None => Ok(Step::Fresh),
        })
        .collect()
}

/// Registers a new store for an empty directory and writes its id file; returns its id.
async fn register_fresh(cat: &Catalogue, s: &Surveyed) -> Result<String, StartError> {
    let ident = StoreIdentity::fresh(StoreKind::Local, now_ms());
    let info = StoreInfo::local(&ident.id, &s.path, ident.created_ms);
    // Registered before the file is written: a crash in between leaves a registration that
    // nothing uses (listed as not configured), never a directory whose id the catalogue lacks.
    if !cat.register_store(&info).await? {
        // 64 random bits: never in practice.
        return Err(CatalogueError::Corrupt(format!("store id {} is taken", ident.id)).into());
    }
    let written = identity::write_new(&s.path, &ident).map_err(StoreDirError::from)?;
    if written.id != ident.id {
        // Another gateway sharing this directory named it first, and registered it first.
        cat.forget_store(&ident.id).await?;
        if cat.store(&written.id).await?.is_none() {
            return Err(StoreDirError::UnknownId {
                dir: s.dir.clone(),
                id: written.id,
            }
            .into());
        }
        return Ok(written.id);
    }
    tracing::info!(store = %ident.id, dir = %s.path.display(), "registered a new fragment store");
    Ok(ident.id)
}

/// The position NN of a positional store id `local-NN` of releases before the id file.
fn legacy_position(id: &str) -> Option<usize> {
    let n: usize = id.strip_prefix("local-")?.parse().ok()?;
    (legacy_id(n) == id).then_some(n)
}

fn legacy_id(position: usize) -> String {
    format!("local-{position:02}")
}

/// The one-time upgrade of a catalogue with no registered stores whose fragments name
/// positional ids: each configured directory is adopted under the id of its position, which is
/// the name its fragments were recorded under. Does nothing for any other catalogue.
async fn adopt_legacy(cat: &Catalogue, found: &mut [Surveyed]) -> Result<(), StartError> {
    let legacy: BTreeSet<usize> = cat
        .store_ids_in_use()
        .await?
        .iter()
        .filter_map(|id| legacy_position(id))
        .collect();
    if legacy.is_empty() {
        return Ok(());
    }
    for (position, s) in found.iter().enumerate() {
        let expected = legacy_id(position);
        if let Some(ident) = &s.identity
            && ident.id != expected
        {
            return Err(StoreDirError::LegacyMismatch {
                dir: s.dir.clone(),
                position,
                expected,
                found: ident.id.clone(),
            }
            .into());
        }
        check_in_place(cat, s, position).await?;
    }
    for position in legacy.iter().filter(|&&p| p >= found.len()) {
        tracing::warn!(store = %legacy_id(*position),
            "the catalogue names a store at a position past the configured directories");
    }
    let created_ms = now_ms();
    let mut infos = Vec::with_capacity(found.len());
    for (position, s) in found.iter_mut().enumerate() {
        let ident = StoreIdentity::new(legacy_id(position), StoreKind::Local, created_ms);
        // Keeps the file of an adoption that stopped before registering.
        let written = identity::write_new(&s.path, &ident).map_err(StoreDirError::from)?;
        if written.id != ident.id {
            return Err(StoreDirError::LegacyMismatch {
                dir: s.dir.clone(),
                position,
                expected: ident.id,
                found: written.id,
            }
            .into());
        }
        infos.push(StoreInfo::local(&written.id, &s.path, written.created_ms));
        s.identity = Some(written);
    }
    // If another gateway sharing the catalogue registered stores meanwhile, these directories
    // are judged against its registrations by the ordinary rules.
    if cat.register_first_stores(&infos).await? {
        tracing::info!(
            stores = infos.len(),
            "adopted the store directories of an earlier release under their positional ids"
        );
    }
    Ok(())
}

/// Refuses to adopt a directory as `local-NN` when the fragments it holds are recorded on
/// another store: the directories were reordered before the upgrade, and adopting it would have
/// the orphan sweep delete them.
async fn check_in_place(cat: &Catalogue, s: &Surveyed, position: usize) -> Result<(), StartError> {
    let expected = legacy_id(position);
    let sample =
        LocalStore::sample(&s.path, LEGACY_SAMPLE).map_err(|source| StoreDirError::Io {
            dir: s.dir.clone(),
            source,
        })?;
    let mut elsewhere = None;
    for hash in sample {
        let holders = cat.stores_holding(hash).await?;
        if holders.contains(&expected) {
            return Ok(());
        }
        elsewhere = elsewhere.or_else(|| holders.into_iter().next());
    }
    match elsewhere {
        // Unreferenced fragments only: orphans under either name.
        None => Ok(()),
        Some(holder) => Err(StoreDirError::LegacyReordered {
            dir: s.dir.clone(),
            position,
            expected,
            holder,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests;
