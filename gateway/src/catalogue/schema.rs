//! The catalogue's schema, one list of migrations per backend. A migration, once released, is
//! never edited: add a new one. The two lists must describe the same tables.

/// SQLite: the embedded default. Keys compare bytewise (BINARY collation), which is S3's order.
pub const SQLITE: &[&str] = &[
    r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE TABLE access_keys (
    access_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed BLOB NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE buckets (
    name TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version_id TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    meta TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    sse_c_mac BLOB,
    checksum TEXT,
    parts_count BIGINT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE extents (
    version_id TEXT NOT NULL,
    part BIGINT NOT NULL,
    size BIGINT NOT NULL,
    md5 TEXT NOT NULL,
    nonce_prefix BLOB NOT NULL,
    inline_data BLOB,
    k BIGINT NOT NULL,
    m BIGINT NOT NULL,
    fragment_size BIGINT NOT NULL,
    checksum TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (version_id, part)
);
CREATE TABLE fragments (
    version_id TEXT NOT NULL,
    part BIGINT NOT NULL,
    segment BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    store TEXT NOT NULL,
    PRIMARY KEY (version_id, part, segment, idx)
);
CREATE INDEX fragments_by_hash ON fragments (hash);
CREATE TABLE uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version_id TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL,
    initiated_ms BIGINT NOT NULL,
    meta TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    profile TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    sse_c_mac BLOB
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, initiated_ms);
CREATE TABLE gc_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL,
    store TEXT NOT NULL,
    enqueued_ms BIGINT NOT NULL
);
"#,
    // 2: settlement (issue 3). Users and buckets name a chain account and territory; extents
    // keep their CESS segment hashes (SHA-256 of each sealed segment, comma-separated hex; NULL
    // for extents written before this migration, "" for inline ones); `settlement` is the
    // durable outbox of storage orders. `kind` is `declare` or `delete`; `state` is `pending`,
    // `declared`, `deleted`, `failed` or `none` (never declarable); `gateway` is the account of
    // the gateway that settles the row; `request` is the declaration as JSON.
    r#"
ALTER TABLE users ADD COLUMN chain_account TEXT;
ALTER TABLE users ADD COLUMN territory TEXT;
ALTER TABLE buckets ADD COLUMN territory TEXT;
ALTER TABLE extents ADD COLUMN segment_hashes TEXT;
CREATE TABLE settlement (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    gateway TEXT NOT NULL,
    version_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    fid TEXT,
    owner TEXT,
    request TEXT,
    state TEXT NOT NULL,
    block BIGINT,
    reason TEXT,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX settlement_due ON settlement (state, gateway, id);
CREATE INDEX settlement_by_version ON settlement (version_id);
CREATE INDEX settlement_by_fid ON settlement (fid);
"#,
    // 3: bucket incarnations and read leases (issue 10). A bucket row's `id` is new each time a
    // bucket of that name is created, and a write commits only into the incarnation it was
    // admitted to (a bucket deleted and re-created by someone else meanwhile is another bucket).
    // Uploads remember the incarnation they were created in. A queued fragment names the version
    // it belonged to, so the collector can spare the versions that running reads still use.
    r#"
ALTER TABLE buckets ADD COLUMN id TEXT;
UPDATE buckets SET id = name || '@' || created_ms;
CREATE UNIQUE INDEX buckets_by_id ON buckets (id);
ALTER TABLE uploads ADD COLUMN bucket_id TEXT;
UPDATE uploads SET bucket_id = (SELECT id FROM buckets WHERE buckets.name = uploads.bucket);
ALTER TABLE gc_queue ADD COLUMN version_id TEXT;
"#,
    // 4: the store registry (issue 10). Every fragment store under its persistent id (the one
    // in its id file, which `fragments.store` and `gc_queue.store` name): its kind (`local`), its
    // endpoint (a directory path for a local store), where it is (all optional) and its state
    // (`up`, `draining` or `down`).
    r#"
CREATE TABLE stores (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    country TEXT,
    region TEXT,
    zone TEXT,
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
"#,
    // 5: key wraps (issue 10). A version's data key has one or more wraps, one row each: `master`
    // (under the gateway's master key) or `customer` (an SSE-C key, with its salted commitment),
    // and later an owner's Umbral capsule. Uploads and the objects they complete share their
    // version's rows. The wraps kept in `objects` and `uploads` until now are copied here; those
    // columns are left empty from now on.
    r#"
CREATE TABLE key_wraps (
    version_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    commitment BLOB,
    PRIMARY KEY (version_id, kind)
);
INSERT INTO key_wraps (version_id, kind, wrapped, commitment)
    SELECT version_id, CASE WHEN sse_c_mac IS NULL THEN 'master' ELSE 'customer' END, wrapped_key, sse_c_mac
    FROM objects;
INSERT INTO key_wraps (version_id, kind, wrapped, commitment)
    SELECT version_id, CASE WHEN sse_c_mac IS NULL THEN 'master' ELSE 'customer' END, wrapped_key, sse_c_mac
    FROM uploads;
"#,
];

/// PostgreSQL: for gateways sharing one catalogue. Keys use the "C" collation so that they sort
/// bytewise, as S3 lists them.
pub const POSTGRES: &[&str] = &[
    r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE TABLE access_keys (
    access_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE buckets (
    name TEXT COLLATE "C" PRIMARY KEY,
    owner_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE objects (
    bucket TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    version_id TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    meta TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    sse_c_mac BYTEA,
    checksum TEXT,
    parts_count BIGINT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE extents (
    version_id TEXT NOT NULL,
    part BIGINT NOT NULL,
    size BIGINT NOT NULL,
    md5 TEXT NOT NULL,
    nonce_prefix BYTEA NOT NULL,
    inline_data BYTEA,
    k BIGINT NOT NULL,
    m BIGINT NOT NULL,
    fragment_size BIGINT NOT NULL,
    checksum TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (version_id, part)
);
CREATE TABLE fragments (
    version_id TEXT NOT NULL,
    part BIGINT NOT NULL,
    segment BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    store TEXT NOT NULL,
    PRIMARY KEY (version_id, part, segment, idx)
);
CREATE INDEX fragments_by_hash ON fragments (hash);
CREATE TABLE uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    version_id TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL,
    initiated_ms BIGINT NOT NULL,
    meta TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    profile TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    sse_c_mac BYTEA
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, initiated_ms);
CREATE TABLE gc_queue (
    id BIGSERIAL PRIMARY KEY,
    hash TEXT NOT NULL,
    store TEXT NOT NULL,
    enqueued_ms BIGINT NOT NULL
);
"#,
    // 2: settlement (issue 3). Users and buckets name a chain account and territory; extents
    // keep their CESS segment hashes (SHA-256 of each sealed segment, comma-separated hex; NULL
    // for extents written before this migration, "" for inline ones); `settlement` is the
    // durable outbox of storage orders. `kind` is `declare` or `delete`; `state` is `pending`,
    // `declared`, `deleted`, `failed` or `none` (never declarable); `gateway` is the account of
    // the gateway that settles the row; `request` is the declaration as JSON.
    r#"
ALTER TABLE users ADD COLUMN chain_account TEXT;
ALTER TABLE users ADD COLUMN territory TEXT;
ALTER TABLE buckets ADD COLUMN territory TEXT;
ALTER TABLE extents ADD COLUMN segment_hashes TEXT;
CREATE TABLE settlement (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    gateway TEXT NOT NULL,
    version_id TEXT NOT NULL,
    bucket TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    fid TEXT,
    owner TEXT,
    request TEXT,
    state TEXT NOT NULL,
    block BIGINT,
    reason TEXT,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX settlement_due ON settlement (state, gateway, id);
CREATE INDEX settlement_by_version ON settlement (version_id);
CREATE INDEX settlement_by_fid ON settlement (fid);
"#,
    // 3: bucket incarnations and read leases (issue 10). A bucket row's `id` is new each time a
    // bucket of that name is created, and a write commits only into the incarnation it was
    // admitted to (a bucket deleted and re-created by someone else meanwhile is another bucket).
    // Uploads remember the incarnation they were created in. A queued fragment names the version
    // it belonged to, so the collector can spare the versions that running reads still use.
    r#"
ALTER TABLE buckets ADD COLUMN id TEXT;
UPDATE buckets SET id = name || '@' || created_ms;
CREATE UNIQUE INDEX buckets_by_id ON buckets (id);
ALTER TABLE uploads ADD COLUMN bucket_id TEXT;
UPDATE uploads SET bucket_id = (SELECT id FROM buckets WHERE buckets.name = uploads.bucket);
ALTER TABLE gc_queue ADD COLUMN version_id TEXT;
"#,
    // 4: the store registry (issue 10). Every fragment store under its persistent id (the one
    // in its id file, which `fragments.store` and `gc_queue.store` name): its kind (`local`), its
    // endpoint (a directory path for a local store), where it is (all optional) and its state
    // (`up`, `draining` or `down`).
    r#"
CREATE TABLE stores (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    country TEXT,
    region TEXT,
    zone TEXT,
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
"#,
    // 5: key wraps (issue 10). A version's data key has one or more wraps, one row each: `master`
    // (under the gateway's master key) or `customer` (an SSE-C key, with its salted commitment),
    // and later an owner's Umbral capsule. Uploads and the objects they complete share their
    // version's rows. The wraps kept in `objects` and `uploads` until now are copied here; those
    // columns are left empty from now on.
    r#"
CREATE TABLE key_wraps (
    version_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    commitment BYTEA,
    PRIMARY KEY (version_id, kind)
);
INSERT INTO key_wraps (version_id, kind, wrapped, commitment)
    SELECT version_id, CASE WHEN sse_c_mac IS NULL THEN 'master' ELSE 'customer' END, wrapped_key, sse_c_mac
    FROM objects;
INSERT INTO key_wraps (version_id, kind, wrapped, commitment)
    SELECT version_id, CASE WHEN sse_c_mac IS NULL THEN 'master' ELSE 'customer' END, wrapped_key, sse_c_mac
    FROM uploads;
"#,
];
