//! # deoss edge cache (not built yet)
//!
//! Will hold `deoss-edge`: a byte-bounded cache of object slices near readers, and the LBSS
//! routing that sends readers to the nearest healthy edge (see DESIGN.md, "Edge cache").
//! Nothing here yet: the gateway serves every read itself.
