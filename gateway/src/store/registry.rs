//! The store registry: every fragment store the catalogue knows, under its persistent id, with
//! its kind, where it is reached (its endpoint), where it is in the world and its state.
//!
//! Local directories are the only kind so far. Remote storage nodes register here too, under
//! the same ids, and placement by location (LBSS) reads `location`; the registry is their common
//! ground. A store the catalogue knows but this gateway did not open (a disk taken out of the
//! configuration) stays registered: its fragments still name it, reads rebuild them from parity,
//! and the orphan sweep, which only ever lists the stores that are open, never touches it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How a store is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StoreKind {
    /// A directory on this gateway's host; the endpoint is its path.
    Local,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            _ => None,
        }
    }
}

/// What a store is doing. Recorded now; placement does not read it yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreState {
    /// Takes new fragments and serves reads.
    Up,
    /// Serves reads while its fragments move elsewhere; takes no new ones.
    Draining,
    /// Out of service.
    Down,
}

impl StoreState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Draining => "draining",
            Self::Down => "down",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(Self::Up),
            "draining" => Some(Self::Draining),
            "down" => Some(Self::Down),
            _ => None,
        }
    }
}

/// Where a store is, as far as anyone said; every part is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
}

/// One registered store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInfo {
    pub id: String,
    pub kind: StoreKind,
    /// Where the store is reached: a directory path for a local store.
    pub endpoint: String,
    pub location: Location,
    pub state: StoreState,
    pub created_ms: i64,
}

impl StoreInfo {
    /// A local directory store, up, with no location.
    pub fn local(id: impl Into<String>, dir: &Path, created_ms: i64) -> Self {
        Self {
            id: id.into(),
            kind: StoreKind::Local,
            endpoint: dir.display().to_string(),
            location: Location::default(),
            state: StoreState::Up,
            created_ms,
        }
    }
}

/// The registered stores as this gateway saw them at start, and which of them it opened.
#[derive(Debug, Clone, Default)]
pub struct StoreRegistry {
    known: Arc<Vec<StoreInfo>>,
    opened: Arc<BTreeSet<String>>,
}

impl StoreRegistry {
    pub fn new(known: Vec<StoreInfo>, opened: impl IntoIterator<Item = String>) -> Self {
        Self {
            known: Arc::new(known),
            opened: Arc::new(opened.into_iter().collect()),
        }
    }

    pub fn get(&self, id: &str) -> Option<&StoreInfo> {
        self.known.iter().find(|s| s.id == id)
    }

    /// Every registered store.
    pub fn all(&self) -> impl Iterator<Item = &StoreInfo> {
        self.known.iter()
    }

    /// Whether this gateway opened the store (it is configured here).
    pub fn is_open(&self, id: &str) -> bool {
        self.opened.contains(id)
    }

    /// Registered stores this gateway did not open.
    pub fn not_open(&self) -> impl Iterator<Item = &StoreInfo> {
        self.known.iter().filter(|s| !self.is_open(&s.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for state in [StoreState::Up, StoreState::Draining, StoreState::Down] {
            assert_eq!(StoreState::parse(state.as_str()), Some(state));
        }
        assert_eq!(
            StoreKind::parse(StoreKind::Local.as_str()),
            Some(StoreKind::Local)
        );
        assert_eq!(StoreState::parse("UP"), None);
        assert_eq!(StoreKind::parse("remote"), None);
    }

    #[test]
    fn registry_tells_open_from_missing() {
        let a = StoreInfo::local("st-a", Path::new("/d/a"), 1);
        let b = StoreInfo::local("st-b", Path::new("/d/b"), 2);
        let reg = StoreRegistry::new(vec![a.clone(), b.clone()], ["st-a".to_string()]);
        assert_eq!(reg.get("st-b"), Some(&b));
        assert!(reg.get("st-c").is_none());
        assert!(reg.is_open("st-a") && !reg.is_open("st-b"));
        assert_eq!(reg.not_open().collect::<Vec<_>>(), [&b]);
        assert_eq!(reg.all().count(), 2);
    }
}
