//! # deoss chain client (in progress)
//!
//! Will settle storage orders on a CESS-style Substrate chain. Nothing here yet.
