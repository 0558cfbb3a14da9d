//! Lexical helpers for canonical paths: `/` or `/a/b`, no `.`, `..`, empty components or
//! trailing `/`. Only the resolver in [`crate::fs`] turns other text into one.

/// The components of a path, outermost first (`.` and `..` are kept for the resolver).
pub(crate) fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// The number of components (`/` has 0).
pub(crate) fn depth(path: &str) -> usize {
    components(path).count()
}

/// `base` joined with the components of `rel` (its leading `/` ignored), lexically.
pub(crate) fn join(base: &str, rel: &str) -> String {
    let mut out = if base == "/" {
        String::new()
    } else {
        base.trim_end_matches('/').to_owned()
    };
    for c in components(rel) {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// True when `path` is `prefix` or lies below it.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// True when `path` lies strictly below `prefix`.
pub(crate) fn strictly_under(path: &str, prefix: &str) -> bool {
    path != prefix && under(path, prefix)
}

/// The part of `path` below `prefix`, as an absolute path (`/` when they are equal).
/// `path` must be [`under`] `prefix`.
pub(crate) fn strip(path: &str, prefix: &str) -> String {
    if prefix == "/" {
        return path.to_owned();
    }
    let rest = path.get(prefix.len()..).unwrap_or("");
    if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    }
}

/// The parent directory (`/` is its own parent).
pub(crate) fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

/// The last component (`` for `/`).
pub(crate) fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `path` with `old` prefix replaced by `new`. `path` must be [`under`] `old`.
pub(crate) fn rebase(path: &str, old: &str, new: &str) -> String {
    join(new, &strip(path, old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_helpers() {
        assert_eq!(join("/", "a/b"), "/a/b");
        assert_eq!(join("/a", "/b"), "/a/b");
        assert_eq!(join("/a", ""), "/a");
        assert_eq!(join("/", "/"), "/");
        assert!(under("/a/b", "/a"));
        assert!(under("/a", "/a"));
        assert!(!under("/ab", "/a"));
        assert!(under("/x", "/"));
        assert!(!strictly_under("/a", "/a"));
        assert_eq!(strip("/a/b", "/a"), "/b");
        assert_eq!(strip("/a", "/a"), "/");
        assert_eq!(strip("/a", "/"), "/a");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(rebase("/b/rootfs/proc", "/b/rootfs", "/"), "/proc");
        assert_eq!(rebase("/b/rootfs", "/b/rootfs", "/"), "/");
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }
}
