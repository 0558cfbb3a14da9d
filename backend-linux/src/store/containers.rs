//! The engine's containers, as rows of the store's database (table `containers`).
//!
//! A row is the engine's truth about a container: its unique name, its image, its settings
//! (the engine's JSON, opaque here) and the last state the engine recorded. Whether the
//! process still lives is the runtime's to say; the engine reconciles the two (a row left
//! `running` by a crash is checked against the runtime before it is shown).
//!
//! Invariant: names are unique (a UNIQUE column, checked in the inserting transaction, so
//! two concurrent `berth run --name x` cannot both succeed).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{ImageId, Store, StoreError, db};

/// A container's state as the engine last recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Recorded, its root file system and bundle being prepared, not started yet.
    Created,
    /// Its process was started.
    Running,
    /// Frozen by `berth pause`.
    Paused,
    /// Its process exited (the exit code is recorded).
    Exited,
    /// Being removed.
    Removing,
}

impl ContainerState {
    /// The word stored in the database and shown by `berth ps`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Exited => "exited",
            ContainerState::Removing => "removing",
        }
    }

    fn parse(text: &str) -> Option<ContainerState> {
        Some(match text {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "exited" => ContainerState::Exited,
            "removing" => ContainerState::Removing,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Its id: 64 hex digits.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// The image it was made from.
    pub image: ImageId,
    /// The image as the user named it (`busybox`, `busybox:1`).
    pub image_ref: String,
    /// When it was created (seconds since the epoch).
    pub created: u64,
    /// Its last recorded state.
    pub state: ContainerState,
    /// Its init's host pid while running.
    pub pid: Option<i32>,
    /// Its exit code once exited.
    pub exit_code: Option<i32>,
    /// When it last started (seconds since the epoch).
    pub started: Option<u64>,
    /// When it last exited (seconds since the epoch).
    pub finished: Option<u64>,
    /// The engine's settings for it (JSON, opaque to the store).
    pub settings: String,
}

impl ContainerRecord {
    /// The first 12 hex digits, as `docker ps` shows them.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// A change of a container's recorded state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The new state.
    pub state: ContainerState,
    /// The init's pid (`None` clears it).
    pub pid: Option<i32>,
    /// The exit code (`None` keeps the recorded one).
    pub exit_code: Option<i32>,
    /// A start time to record (`None` keeps the recorded one).
    pub started: Option<u64>,
    /// An exit time to record (`None` keeps the recorded one).
    pub finished: Option<u64>,
}

/// Whether `name` can name a container: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as docker allows,
/// at most 128 characters.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 128
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

const COLUMNS: &str =
    "id, name, image_id, image_ref, created, state, pid, exit_code, started, finished, settings";

type Row = (
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn record(row: Row) -> Result<ContainerRecord, StoreError> {
    let (id, name, image, image_ref, created, state, pid, exit_code, started, finished, settings) =
        row;
    let state = ContainerState::parse(&state).ok_or_else(|| StoreError::CorruptRow {
        what: "containers.state",
        value: state.clone(),
    })?;
    Ok(ContainerRecord {
        id,
        name,
        image: ImageId(db::digest(&image, "containers.image_id")?),
        image_ref,
        created: db::size_of(created),
        state,
        pid: pid.and_then(|p| i32::try_from(p).ok()),
        exit_code: exit_code.and_then(|c| i32::try_from(c).ok()),
        started: started.map(db::size_of),
        finished: finished.map(db::size_of),
        settings,
    })
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// Records a new container in state `created`. Fails with [`StoreError::NameInUse`]
    /// when another container has the name, and [`StoreError::BadName`] for a name docker
    /// would refuse.
    pub fn add_container(&mut self, c: &ContainerRecord) -> Result<(), StoreError> {
        if !valid_name(&c.name) {
            return Err(StoreError::BadName {
                name: c.name.clone(),
            });
        }
        let write = db::err("recording a container");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                params![c.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(&write)?;
        if let Some(id) = holder {
            return Err(StoreError::NameInUse {
                name: c.name.clone(),
                id,
            });
        }
        tx.execute(
            &format!(
                "INSERT INTO containers ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            params![
                c.id,
                c.name,
                c.image.to_string(),
                c.image_ref,
                db::size_to_db(c.created),
                c.state.as_str(),
                c.pid,
                c.exit_code,
                c.started.map(db::size_to_db),
                c.finished.map(db::size_to_db),
                c.settings,
            ],
        )
        .map_err(&write)?;
        tx.commit().map_err(&write)
    }

    /// The container named `key`: a full id, a name, or a unique id prefix (in that
    /// order, as docker resolves them).
    pub fn container(&self, key: &str) -> Result<ContainerRecord, StoreError> {
        let find = db::err("looking up a container");
        let by = |column: &str, value: &str| -> Result<Option<ContainerRecord>, StoreError> {
            self.conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM containers WHERE {column} = ?1"),
                    params![value],
                    read_row,
                )
                .optional()
                .map_err(&find)?
                .map(record)
                .transpose()
        };
        if let Some(c) = by("id", key)? {
            return Ok(c);
        }
        if let Some(c) = by("name", key)? {
            return Ok(c);
        }
        if is_hex(key) {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM containers WHERE id LIKE ?1 ORDER BY id"
                ))
                .map_err(&find)?;
            let mut rows = stmt
                .query_map(params![format!("{key}%")], read_row)
                .map_err(&find)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(&find)?;
            match rows.len() {
                0 => {}
                1 => return record(rows.remove(0)),
                _ => {
                    return Err(StoreError::AmbiguousContainer {
                        prefix: key.to_owned(),
                        candidates: rows.into_iter().map(|r| r.0).collect(),
                    });
                }
            }
        }
        Err(StoreError::UnknownContainer {
            name: key.to_owned(),
        })
    }

    /// Every container, newest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let list = db::err("listing containers");
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created DESC, id"
            ))
            .map_err(&list)?;
        let rows = stmt
            .query_map([], read_row)
            .map_err(&list)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&list)?;
        rows.into_iter().map(record).collect()
    }

    /// Records a state change of container `id`.
    pub fn set_container_state(
        &mut self,
        id: &str,
        change: &StateChange,
    ) -> Result<(), StoreError> {
        let write = db::err("recording a container's state");
        let n = self
            .conn
            .execute(
                "UPDATE containers SET state = ?2, pid = ?3,
                    exit_code = COALESCE(?4, exit_code),
                    started = COALESCE(?5, started),
                    finished = COALESCE(?6, finished)
                 WHERE id = ?1",
                params![
                    id,
                    change.state.as_str(),
                    change.pid,
                    change.exit_code,
                    change.started.map(db::size_to_db),
                    change.finished.map(db::size_to_db),
                ],
            )
            .map_err(write)?;
        if n == 0 {
            return Err(StoreError::UnknownContainer {
                name: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Renames container `id` to `name` (unique, valid).
    pub fn rename_container(&mut self, id: &str, name: &str) -> Result<(), StoreError> {
        if !valid_name(name) {
            return Err(StoreError::BadName {
                name: name.to_owned(),
            });
        }
        let write = db::err("renaming a container");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(&write)?;
        if let Some(holder) = holder {
            return Err(StoreError::NameInUse {
                name: name.to_owned(),
                id: holder,
            });
        }
        let n = tx
            .execute(
                "UPDATE containers SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map_err(&write)?;
        if n == 0 {
            return Err(StoreError::UnknownContainer {
                name: id.to_owned(),
            });
        }
        tx.commit().map_err(&write)
    }

    /// Deletes container `id`'s row; whether there was one.
    pub fn remove_container(&mut self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(db::err("removing a container"))?;
        Ok(n > 0)
    }

    /// How many containers use image `id`.
    pub fn container_users(&self, id: &ImageId) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM containers WHERE image_id = ?1",
                params![id.to_string()],
                |r| r.get(0),
            )
            .map_err(db::err("counting an image's containers"))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "a", "web-1", "w.e_b", "0abc"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-web", ".x", "_x", "a b", "a/b", "é", &"a".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
