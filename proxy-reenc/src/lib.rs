//! # deoss proxy re-encryption (not built yet)
//!
//! Will hold Umbral keys, capsules, key fragments and grants, so that an object's owner can let
//! a reader decrypt it without the gateway ever holding the owner's secret key (see DESIGN.md,
//! "Sharing"). Nothing here yet: the gateway does not offer sharing.
