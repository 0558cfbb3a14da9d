//! `/etc/passwd` and `/etc/group` parsing (names inside a rootfs to ids).
//!
//! The files come from the container's root filesystem, so they are untrusted: the parsers
//! never panic and name the line of any malformed entry. Blank lines, `#` comments and NIS
//! compat lines (`+...`, `-...`) are skipped. The caller reads the files; this module only
//! parses text and resolves a `USER[:GROUP]` spec the way docker and runc do.

use serde::{Deserialize, Serialize};

/// One entry of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Comment (full name), empty when absent.
    pub gecos: String,
    /// Home directory, empty when absent.
    pub home: String,
    /// Login shell, empty when absent.
    pub shell: String,
}

/// One entry of `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// User names listed as members.
    pub members: Vec<String>,
}

/// A `USER[:GROUP]` spec resolved to ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory from `/etc/passwd`, when the user has an entry with one.
    pub home: Option<String>,
    /// Groups of `/etc/group` that list the user by name, other than `gid`, in file order.
    pub additional_gids: Vec<u32>,
}

/// Which file a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserFile {
    /// `/etc/passwd`.
    Passwd,
    /// `/etc/group`.
    Group,
}

impl std::fmt::Display for UserFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserFile::Passwd => "/etc/passwd",
            UserFile::Group => "/etc/group",
        })
    }
}

/// Why a passwd or group file, or a user spec, cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A line has too few or too many `:`-separated fields.
    #[error("{file} line {line}: expected {expected} colon-separated fields, found {found}")]
    Fields {
        /// Which file.
        file: UserFile,
        /// 1-based line number.
        line: usize,
        /// The number of fields the format has.
        expected: usize,
        /// How many the line has.
        found: usize,
    },
    /// A line has an empty name.
    #[error("{file} line {line}: empty name")]
    EmptyName {
        /// Which file.
        file: UserFile,
        /// 1-based line number.
        line: usize,
    },
    /// A uid or gid field is not a number.
    #[error("{file} line {line}: bad {field} {value:?}")]
    BadId {
        /// Which file.
        file: UserFile,
        /// 1-based line number.
        line: usize,
        /// `uid` or `gid`.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// The spec is empty, has an empty part, or more than one `:`.
    #[error("invalid user spec {0:?} (expected USER[:GROUP])")]
    BadSpec(String),
    /// A user name that `/etc/passwd` does not have.
    #[error("unknown user {0:?} (not in /etc/passwd)")]
    UnknownUser(String),
    /// A group name that `/etc/group` does not have.
    #[error("unknown group {0:?} (not in /etc/group)")]
    UnknownGroup(String),
}

/// The lines of a file worth parsing, with their 1-based numbers and split fields.
fn entries(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(n, raw)| {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.starts_with(['#', '+', '-']) {
            return None;
        }
        Some((n + 1, line.split(':').collect()))
    })
}

/// Parses an id field.
fn id(file: UserFile, line: usize, field: &'static str, value: &str) -> Result<u32, UserError> {
    value.trim().parse::<u32>().map_err(|_| UserError::BadId {
        file,
        line,
        field,
        value: value.to_owned(),
    })
}

/// Parses `/etc/passwd` text: `name:password:uid:gid:gecos:home:shell`. Lines with 4 to 6
/// fields are accepted too (the missing ones are empty), as libc is lenient about them.
pub fn parse_passwd(text: &str) -> Result<Vec<PasswdEntry>, UserError> {
    let file = UserFile::Passwd;
    entries(text)
        .map(|(line, f)| {
            if !(4..=7).contains(&f.len()) {
                return Err(UserError::Fields {
                    file,
                    line,
                    expected: 7,
                    found: f.len(),
                });
            }
            if f[0].is_empty() {
                return Err(UserError::EmptyName { file, line });
            }
            let field = |i: usize| f.get(i).map_or_else(String::new, |s| (*s).to_owned());
            Ok(PasswdEntry {
                name: f[0].to_owned(),
                uid: id(file, line, "uid", f[2])?,
                gid: id(file, line, "gid", f[3])?,
                gecos: field(4),
                home: field(5),
                shell: field(6),
            })
        })
        .collect()
}

/// Parses `/etc/group` text: `name:password:gid:member,member`. A line without the
/// members field (3 fields) has no members.
pub fn parse_group(text: &str) -> Result<Vec<GroupEntry>, UserError> {
    let file = UserFile::Group;
    entries(text)
        .map(|(line, f)| {
            if !(3..=4).contains(&f.len()) {
                return Err(UserError::Fields {
                    file,
                    line,
                    expected: 4,
                    found: f.len(),
                });
            }
            if f[0].is_empty() {
                return Err(UserError::EmptyName { file, line });
            }
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Ok(GroupEntry {
                name: f[0].to_owned(),
                gid: id(file, line, "gid", f[2])?,
                members,
            })
        })
        .collect()
}

/// A spec part that is all ASCII digits is a number; anything else is a name.
fn numeric(part: &str) -> Option<Option<u32>> {
    if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
        Some(part.parse::<u32>().ok())
    } else {
        None
    }
}

/// Resolves `USER[:GROUP]` as docker does: each part is a name or a number; a number need
/// not be in the files. The uid's passwd entry (by name, or the first with that uid) gives
/// the default gid and the home; without one, gid is 0 and home is `None`. Additional gids
/// are the groups that list the user's name as a member (none when the user has no entry).
pub fn resolve_user(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<ResolvedUser, UserError> {
    let bad = || UserError::BadSpec(spec.to_owned());
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(bad());
    }
    let (uid, entry) = match numeric(user_part) {
        Some(Some(uid)) => (uid, passwd.iter().find(|e| e.uid == uid)),
        Some(None) => return Err(bad()),
        None => {
            let e = passwd
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| UserError::UnknownUser(user_part.to_owned()))?;
            (e.uid, Some(e))
        }
    };
    let gid = match group_part {
        None => entry.map_or(0, |e| e.gid),
        Some(g) => match numeric(g) {
            Some(Some(gid)) => gid,
            Some(None) => return Err(bad()),
            None => {
                group
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| UserError::UnknownGroup(g.to_owned()))?
                    .gid
            }
        },
    };
    let mut additional_gids = Vec::new();
    if let Some(e) = entry {
        for g in group {
            if g.gid != gid && g.members.contains(&e.name) && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment
root:x:0:0:root:/root:/bin/sh

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
+nisuser
-excluded:x:9:9::/:/bin/false
alice:x:1000:1000:Alice A,,,:/home/alice:/bin/bash\r
short:x:1001:1001
";

    const GROUP: &str = "\
root:x:0:
wheel:x:10:alice,bob
users:x:100: alice , carol
alice:x:1000:
nomembers:x:2000
+nis
";

    fn files() -> (Vec<PasswdEntry>, Vec<GroupEntry>) {
        (parse_passwd(PASSWD).unwrap(), parse_group(GROUP).unwrap())
    }

    #[test]
    fn passwd_entries() {
        let p = parse_passwd(PASSWD).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[0],
            PasswdEntry {
                name: "root".into(),
                uid: 0,
                gid: 0,
                gecos: "root".into(),
                home: "/root".into(),
                shell: "/bin/sh".into(),
            }
        );
        assert_eq!(p[2].gecos, "Alice A,,,");
        assert_eq!(p[2].shell, "/bin/bash");
        assert_eq!(p[3].home, "");
        assert_eq!(p[3].shell, "");
    }

    #[test]
    fn group_entries() {
        let g = parse_group(GROUP).unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!(g[0].members, Vec::<String>::new());
        assert_eq!(g[1].members, ["alice", "bob"]);
        assert_eq!(g[2].members, ["alice", "carol"]);
        assert_eq!(g[4].gid, 2000);
    }

    #[test]
    fn passwd_errors_name_the_line() {
        let e = parse_passwd("root:x:0:0:root:/root:/bin/sh\nbad:x:0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/passwd line 2: expected 7 colon-separated fields, found 3"
        );
        let e = parse_passwd("a:x:0:0:b:c:d:e\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/passwd line 1: expected 7 colon-separated fields, found 8"
        );
        let e = parse_passwd("\n\nbob:x:abc:0:::\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/passwd line 3: bad uid \"abc\"");
        let e = parse_passwd("bob:x:1:-1:::\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/passwd line 1: bad gid \"-1\"");
        let e = parse_passwd(":x:1:1:::\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/passwd line 1: empty name");
        let e = parse_passwd("big:x:4294967296:0:::\n").unwrap_err();
        assert!(matches!(e, UserError::BadId { field: "uid", .. }));
    }

    #[test]
    fn group_errors_name_the_line() {
        let e = parse_group("a:x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/group line 1: expected 4 colon-separated fields, found 2"
        );
        let e = parse_group("# c\na:x:g:\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/group line 2: bad gid \"g\"");
        let e = parse_group(":x:1:\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/group line 1: empty name");
    }

    #[test]
    fn resolve_by_name() {
        let (p, g) = files();
        assert_eq!(
            resolve_user("alice", &p, &g).unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                home: Some("/home/alice".into()),
                additional_gids: vec![10, 100],
            }
        );
    }

    #[test]
    fn resolve_by_number_with_entry() {
        let (p, g) = files();
        let r = resolve_user("1000", &p, &g).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        assert_eq!(r.additional_gids, vec![10, 100]);
    }

    #[test]
    fn resolve_number_not_in_files() {
        let (p, g) = files();
        assert_eq!(
            resolve_user("4242", &p, &g).unwrap(),
            ResolvedUser {
                uid: 4242,
                gid: 0,
                home: None,
                additional_gids: vec![],
            }
        );
        assert_eq!(resolve_user("4242:77", &p, &g).unwrap().gid, 77);
    }

    #[test]
    fn resolve_with_group() {
        let (p, g) = files();
        let r = resolve_user("alice:wheel", &p, &g).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 10));
        // wheel is the primary group now, so it is not repeated.
        assert_eq!(r.additional_gids, vec![100]);
        let r = resolve_user("root:5", &p, &g).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_deref()), (0, 5, Some("/root")));
        assert!(r.additional_gids.is_empty());
    }

    #[test]
    fn entry_without_home_has_none() {
        let (p, g) = files();
        assert_eq!(resolve_user("short", &p, &g).unwrap().home, None);
    }

    #[test]
    fn resolve_errors() {
        let (p, g) = files();
        assert_eq!(
            resolve_user("nobody", &p, &g).unwrap_err().to_string(),
            "unknown user \"nobody\" (not in /etc/passwd)"
        );
        assert_eq!(
            resolve_user("alice:staff", &p, &g).unwrap_err().to_string(),
            "unknown group \"staff\" (not in /etc/group)"
        );
        for spec in ["", ":1", "1:", "a:b:c", "99999999999", "1:99999999999"] {
            assert_eq!(
                resolve_user(spec, &p, &g),
                Err(UserError::BadSpec(spec.into())),
                "{spec}"
            );
        }
        assert_eq!(
            resolve_user("", &p, &g).unwrap_err().to_string(),
            "invalid user spec \"\" (expected USER[:GROUP])"
        );
    }

    #[test]
    fn nis_and_excluded_names_do_not_resolve() {
        let (p, g) = files();
        assert!(matches!(
            resolve_user("excluded", &p, &g),
            Err(UserError::UnknownUser(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "[a-z0-9:,#+\\- \n]{0,200}") {
            let _ = parse_passwd(&text);
            let _ = parse_group(&text);
        }

        #[test]
        fn resolve_never_panics(spec in "[a-z0-9:]{0,12}") {
            let (p, g) = files();
            let _ = resolve_user(&spec, &p, &g);
        }
    }
}
