//! `berth tag`, `berth image inspect` and `berth image prune` over the store.
//!
//! Prune keeps the store's order of removal: rows first, in a transaction, then the files
//! they named, so a crash leaves at worst unreferenced files, never a row without its file.

use std::fs;
use std::io;

use berth_core::image::{Digest, Reference};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde_json::{Value, json};

use super::{ImageId, Store, StoreError, TMP_PREFIX, db, io_err, remove_tree, tmp_name};

/// `secs` after the Unix epoch as RFC 3339 in UTC (`2024-05-01T12:00:00Z`), as docker
/// prints times.
fn rfc3339(secs: u64) -> String {
    berth_core::jsonlog::Timestamp::from_epoch(std::time::Duration::from_secs(secs)).format_secs()
}

impl Store {
    /// Points the tag `target` at the image `source` names (a tag, an id or an id prefix),
    /// like `docker tag`; a tag `target` already was moves. Returns the image.
    pub fn tag(&mut self, source: &str, target: &Reference) -> Result<ImageId, StoreError> {
        if target.digest().is_some() || target.tag().is_none() {
            return Err(StoreError::NotATag {
                reference: target.to_string(),
            });
        }
        let id = self.resolve(source)?;
        // The foreign key refuses the row should the image have gone meanwhile.
        self.conn
            .execute(
                "INSERT INTO tags (reference, image_id) VALUES (?1, ?2)
                 ON CONFLICT (reference) DO UPDATE SET image_id = excluded.image_id",
                params![target.to_string(), id.to_string()],
            )
            .map_err(db::err("tagging an image"))?;
        Ok(id)
    }

    /// The image as `docker image inspect` shows it: `Id`, `RepoTags`, `Created`, `Size`,
    /// `Architecture`, `Os`, `Config` (the image config's), `RootFS` and more.
    pub fn inspect(&self, id: &ImageId) -> Result<Value, StoreError> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT config, created FROM images WHERE id = ?1",
                params![id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db::err("looking up an image"))?;
        let Some((config, stored)) = row else {
            return Err(StoreError::UnknownImage {
                name: id.to_string(),
            });
        };
        // Every config was parsed before it was stored; one that no longer parses shows
        // as empty rather than hiding the rest.
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default();
        let tags = db::tags_of(&self.conn, &id.0)?
            .iter()
            .map(|t| Reference::parse(t).map(|r| r.familiar()))
            .collect::<Result<Vec<_>, _>>()?;
        let layers = db::image_layers(&self.conn, &id.0)?;
        let size: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(layers.size), 0) FROM image_layers
                 JOIN layers ON layers.diff_id = image_layers.diff_id
                 WHERE image_layers.image_id = ?1",
                params![id.to_string()],
                |r| r.get(0),
            )
            .map_err(db::err("summing an image's layers"))?;
        let created = match text("created") {
            "" => rfc3339(db::size_of(stored)),
            created => created.to_owned(),
        };
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|d| self.layer_root(d).join("diff").display().to_string())
            .collect();
        let mut out = json!({
            "Id": id.to_string(),
            "RepoTags": tags,
            "RepoDigests": [],
            "Parent": "",
            "Comment": text("comment"),
            "Created": created,
            "DockerVersion": text("docker_version"),
            "Author": text("author"),
            "Config": config.get("config").cloned().unwrap_or(Value::Null),
            "Architecture": text("architecture"),
            "Os": text("os"),
            "Size": db::size_of(size),
            "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lower.join(":")}},
            "RootFS": {
                "Type": "layers",
                "Layers": layers.iter().map(Digest::to_string).collect::<Vec<_>>(),
            },
        });
        if let Some(variant) = config.get("variant").and_then(Value::as_str) {
            out["Variant"] = Value::from(variant);
        }
        Ok(out)
    }

    /// Removes dangling (untagged) images, or with `all` every image, that `in_use` says
    /// no container uses, like `docker image prune [-a]`; then every layer no image uses
    /// (rows first, then directories and blobs), and layer directories no row names (left
    /// by a crash). Returns the images removed.
    pub fn prune(
        &mut self,
        in_use: &dyn Fn(&ImageId) -> bool,
        all: bool,
    ) -> Result<Vec<ImageId>, StoreError> {
        let mut removed = Vec::new();
        for image in self.images()? {
            if (!all && !image.tags.is_empty()) || in_use(&image.id) {
                continue;
            }
            match self.remove_image(&image.id, true, 0) {
                Ok(_) => removed.push(image.id),
                // Removed meanwhile by another berth: gone, as wanted.
                Err(StoreError::UnknownImage { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.collect_layers()?;
        Ok(removed)
    }

    /// Deletes layers no image uses: rows, then directories and blobs; then directories
    /// under `layers/` that no row names. Returns the diff ids of the rows deleted.
    fn collect_layers(&mut self) -> Result<Vec<Digest>, StoreError> {
        let _lock = self.lock()?;
        let write = db::err("removing unused layers");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let rows = {
            let mut stmt = tx
                .prepare(
                    "DELETE FROM layers WHERE diff_id IN
                     (SELECT diff_id FROM layer_users WHERE users = 0)
                     RETURNING diff_id, blob",
                )
                .map_err(&write)?;
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(&write)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(&write)?
        };
        tx.commit().map_err(&write)?;

        let mut deleted = Vec::new();
        for (diff_id, blob) in rows {
            let diff_id = db::digest(&diff_id, "layers.diff_id")?;
            self.remove_layer_dir(&diff_id)?;
            let blob = self.blob_path(&db::digest(&blob, "layers.blob")?);
            remove_tree(&blob).map_err(io_err("remove", &blob))?;
            deleted.push(diff_id);
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).map_err(io_err("read", &layers))? {
            let entry = entry.map_err(io_err("read", &layers))?;
            let name = entry.file_name();
            let Some(diff_id) = name
                .to_str()
                .filter(|n| !n.starts_with(TMP_PREFIX))
                .and_then(Digest::from_hex)
            else {
                continue;
            };
            let named = self
                .conn
                .query_row(
                    "SELECT 1 FROM layers WHERE diff_id = ?1",
                    params![diff_id.to_string()],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db::err("looking up a layer"))?
                .is_some();
            if !named {
                self.remove_layer_dir(&diff_id)?;
            }
        }
        Ok(deleted)
    }

    /// Removes a layer's directory, renamed first so its name never holds half a layer.
    fn remove_layer_dir(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let dir = self.layer_root(diff_id);
        let doomed = self.root.join("layers").join(tmp_name());
        match fs::rename(&dir, &doomed) {
            Ok(()) => remove_tree(&doomed).map_err(io_err("remove", &doomed)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("rename", &dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
