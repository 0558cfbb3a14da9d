//! The store's SQLite database: schema, and the few queries the store makes.
//!
//! Invariant: ids and digests are stored as text, `sha256:<hex>`; a row that does not parse
//! back is reported as [`StoreError::CorruptRow`], never unwrapped.

use std::path::Path;
use std::time::Duration;

use berth_core::image::Digest;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// The schema version this code writes and reads (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 3;

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE images (
    id      TEXT PRIMARY KEY,
    config  TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE layers (
    diff_id TEXT PRIMARY KEY,
    blob    TEXT NOT NULL,
    size    INTEGER NOT NULL
);
CREATE INDEX layers_by_blob ON layers(blob);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id  TEXT NOT NULL REFERENCES layers(diff_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_by_layer ON image_layers(diff_id);
CREATE TABLE tags (
    reference TEXT PRIMARY KEY,
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE VIEW layer_users AS
    SELECT layers.diff_id AS diff_id, COUNT(image_layers.image_id) AS users
    FROM layers LEFT JOIN image_layers ON image_layers.diff_id = layers.diff_id
    GROUP BY layers.diff_id;
";

/// Version 2 adds the engine's containers (a store at version 1 is migrated in place).
const SCHEMA_V2: &str = "
CREATE TABLE containers (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    image_id  TEXT NOT NULL,
    image_ref TEXT NOT NULL,
    created   INTEGER NOT NULL,
    state     TEXT NOT NULL,
    pid       INTEGER,
    exit_code INTEGER,
    started   INTEGER,
    finished  INTEGER,
    settings  TEXT NOT NULL
);
CREATE INDEX containers_by_image ON containers(image_id);
";

/// Version 3 adds the engine's networks and their endpoints (an endpoint's address is its
/// IPAM allocation: unique per network).
const SCHEMA_V3: &str = "
CREATE TABLE networks (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    spec    TEXT NOT NULL
);
CREATE TABLE endpoints (
    network_id   TEXT NOT NULL REFERENCES networks(id),
    container_id TEXT NOT NULL,
    ip           TEXT NOT NULL,
    spec         TEXT NOT NULL,
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE INDEX endpoints_by_container ON endpoints(container_id);
";

/// Maps a rusqlite error to the store's, naming what was being done.
pub(super) fn err(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Db { what, source }
}

/// Opens (creating if needed) the database at `path`: WAL, foreign keys, busy timeout,
/// schema at [`SCHEMA_VERSION`].
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(err("opening the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("setting the busy timeout"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(err("enabling foreign keys"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err("enabling WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db {
            what: "enabling WAL mode",
            source: rusqlite::Error::InvalidQuery,
        });
    }
    let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(err("creating the schema"))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err("reading the schema version"))?;
    match version {
        0..=2 => {
            if version == 0 {
                tx.execute_batch(SCHEMA)
                    .map_err(err("creating the schema"))?;
            }
            if version <= 1 {
                tx.execute_batch(SCHEMA_V2)
                    .map_err(err("creating the schema"))?;
            }
            tx.execute_batch(SCHEMA_V3)
                .map_err(err("creating the schema"))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err("creating the schema"))?;
        }
        SCHEMA_VERSION => {}
        other => {
            return Err(StoreError::Schema {
                path: path.to_owned(),
                version: other,
                expected: SCHEMA_VERSION,
            });
        }
    }
    tx.commit().map_err(err("creating the schema"))?;
    Ok(conn)
}

/// Parses a digest read from the database.
pub(super) fn digest(text: &str, what: &'static str) -> Result<Digest, StoreError> {
    Digest::parse(text).map_err(|_| StoreError::CorruptRow {
        what,
        value: text.to_owned(),
    })
}

/// The layer whose blob is `blob`, if any: (diff id, size).
pub(super) fn layer_by_blob(
    conn: &Connection,
    blob: &Digest,
) -> Result<Option<(Digest, u64)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT diff_id, size FROM layers WHERE blob = ?1",
            params![blob.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(err("looking up a layer"))?;
    row.map(|(diff_id, size)| Ok((digest(&diff_id, "layers.diff_id")?, size_of(size))))
        .transpose()
}

/// Whether an image with this id exists.
pub(super) fn image_exists(conn: &Connection, id: &Digest) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT 1 FROM images WHERE id = ?1",
        params![id.to_string()],
        |_| Ok(()),
    )
    .optional()
    .map(|row| row.is_some())
    .map_err(err("looking up an image"))
}

/// The diff ids of an image's layers, bottom first.
pub(super) fn image_layers(conn: &Connection, id: &Digest) -> Result<Vec<Digest>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT diff_id FROM image_layers WHERE image_id = ?1 ORDER BY position")
        .map_err(err("listing an image's layers"))?;
    let rows = stmt
        .query_map(params![id.to_string()], |r| r.get::<_, String>(0))
        .map_err(err("listing an image's layers"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(digest(
            &row.map_err(err("listing an image's layers"))?,
            "image_layers.diff_id",
        )?);
    }
    Ok(out)
}

/// The tags that point at an image, as stored (normalised reference text), sorted.
pub(super) fn tags_of(conn: &Connection, id: &Digest) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference")
        .map_err(err("listing tags"))?;
    let rows = stmt
        .query_map(params![id.to_string()], |r| r.get::<_, String>(0))
        .map_err(err("listing tags"))?;
    rows.collect::<Result<_, _>>().map_err(err("listing tags"))
}

/// A size read back from an INTEGER column (never negative when berth wrote it).
pub(super) fn size_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A size to store in an INTEGER column (saturating; sizes never reach 2^63).
pub(super) fn size_to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
