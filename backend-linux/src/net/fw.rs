//! berth's nftables table, through Debian's `nft`: scripts on stdin (`nft -f -`) to add,
//! JSON listings (`nft -j`) to find a rule by its comment tag and the handle to delete it.
//!
//! Why `nft` and not nf_tables netlink: no well-kept Rust crate speaks nf_tables (the
//! `rustables`/`nftnl` crates wrap libnftnl, are young or unmaintained, and would have
//! berth compile rule expressions itself); core already gives every rule in nft syntax
//! ([`FwRule::to_nft`]), which `nft` compiles exactly as an administrator's script.
//!
//! Invariant: every command names berth's table ([`FW_TABLE`]); nothing here lists,
//! changes or deletes any other table.

use std::io::Write;
use std::process::{Command, Stdio};

use berth_core::plan::{FW_TABLE, FW_TABLE_NFT, FwChain, FwRule};

use super::error::NetError;

/// Where `nft` is looked for: Debian's path first (root's PATH may lack `/usr/sbin` when
/// berth is started by a service manager), then `PATH`.
fn nft_program() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nft")
}

/// Runs `nft ARGS` (with `script` on stdin when given); returns its stdout.
fn nft(step: &str, args: &[&str], script: Option<&str>) -> Result<String, NetError> {
    let io = |what, source| NetError::Io {
        step: step.to_owned(),
        what,
        source,
    };
    let mut child = Command::new(nft_program())
        .args(args)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io("run nft", e))?;
    if let (Some(script), Some(mut stdin)) = (script, child.stdin.take()) {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| io("write the nft script", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| io("wait for nft", e))?;
    if !out.status.success() {
        return Err(NetError::Nft {
            step: step.to_owned(),
            args: args.join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| {
        io(
            "read nft's output",
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

/// berth's table as (family, name).
fn table() -> (&'static str, &'static str) {
    FW_TABLE.split_once(' ').unwrap_or(("inet", FW_TABLE))
}

/// The objects of an `nft -j` listing (`{"nftables": [{"table": ..}, {"rule": ..}]}`).
fn objects(step: &str, json: &str) -> Result<Vec<serde_json::Value>, NetError> {
    let bad = |detail: String| NetError::Io {
        step: step.to_owned(),
        what: "parse nft -j output",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, detail),
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    match v.get("nftables") {
        Some(serde_json::Value::Array(a)) => Ok(a.clone()),
        _ => Err(bad("no \"nftables\" array".to_owned())),
    }
}

/// Whether berth's table exists.
pub(crate) fn table_exists(step: &str) -> Result<bool, NetError> {
    let (family, name) = table();
    let listed = nft(step, &["-j", "list", "tables"], None)?;
    Ok(objects(step, &listed)?.iter().any(|o| {
        o.get("table").is_some_and(|t| {
            t.get("family").and_then(|v| v.as_str()) == Some(family)
                && t.get("name").and_then(|v| v.as_str()) == Some(name)
        })
    }))
}

/// `fw ensure-table`: makes berth's table and chains if the table is missing; returns
/// whether it made it.
pub(crate) fn ensure_table(step: &str) -> Result<bool, NetError> {
    if table_exists(step)? {
        return Ok(false);
    }
    nft(step, &["-f", "-"], Some(FW_TABLE_NFT))?;
    Ok(true)
}

/// The rules of berth's table (all chains), as JSON objects.
fn table_rules(step: &str) -> Result<Vec<serde_json::Value>, NetError> {
    let (family, name) = table();
    let listed = nft(step, &["-j", "list", "table", family, name], None)?;
    Ok(objects(step, &listed)?
        .into_iter()
        .filter_map(|mut o| o.get_mut("rule").map(serde_json::Value::take))
        .collect())
}

/// `fw delete-table`: deletes berth's table, refusing while a rule is in it.
pub(crate) fn delete_table(step: &str) -> Result<(), NetError> {
    let (family, name) = table();
    if !table_exists(step)? {
        return Ok(());
    }
    let rules = table_rules(step)?;
    if !rules.is_empty() {
        return Err(NetError::FwTableInUse {
            step: step.to_owned(),
            rules: rules.len(),
        });
    }
    nft(step, &["delete", "table", family, name], None).map(drop)
}

/// Deletes berth's table when it has no rule left; leaves it (and says nothing) when a
/// rule is still there or when there is no table.
pub(crate) fn prune_table(step: &str) -> Result<(), NetError> {
    let (family, name) = table();
    if !table_exists(step)? || !table_rules(step)?.is_empty() {
        return Ok(());
    }
    nft(step, &["delete", "table", family, name], None).map(drop)
}

/// The handles of the rules of `chain` whose comment is `tag`.
fn handles(step: &str, chain: FwChain, tag: &str) -> Result<Vec<u64>, NetError> {
    let (family, name) = table();
    let listed = nft(
        step,
        &["-j", "-a", "list", "chain", family, name, chain.nft_name()],
        None,
    )?;
    Ok(objects(step, &listed)?
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r.get("comment").and_then(|c| c.as_str()) == Some(tag))
        .filter_map(|r| r.get("handle").and_then(|h| h.as_u64()))
        .collect())
}

/// A tag goes into the script as `comment "TAG"`: only characters that cannot end the
/// string or the line, and nft's comment limit (128 bytes).
fn check_tag(step: &str, tag: &str) -> Result<(), NetError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@=+,".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NetError::BadFwValue {
            step: step.to_owned(),
            what: "tag",
            value: tag.to_owned(),
        })
    }
}

/// `fw add`: appends `rule` to `chain` with `tag` as its comment; fails if a rule of the
/// chain already carries the tag.
pub(crate) fn add_rule(
    step: &str,
    chain: FwChain,
    rule: &FwRule,
    tag: &str,
) -> Result<(), NetError> {
    check_tag(step, tag)?;
    let text = rule.to_nft();
    if text.contains(['\n', '\r', '#', ';']) {
        return Err(NetError::BadFwValue {
            step: step.to_owned(),
            what: "rule",
            value: text,
        });
    }
    if !handles(step, chain, tag)?.is_empty() {
        return Err(NetError::FwTagTaken {
            step: step.to_owned(),
            tag: tag.to_owned(),
        });
    }
    let script = format!(
        "add rule {FW_TABLE} {} {text} comment \"{tag}\"\n",
        chain.nft_name()
    );
    nft(step, &["-f", "-"], Some(&script)).map(drop)
}

/// `fw del`: deletes the rule of `chain` that carries `tag` (every one, should there be
/// several); fails if none does.
pub(crate) fn del_rule(step: &str, chain: FwChain, tag: &str) -> Result<(), NetError> {
    check_tag(step, tag)?;
    let (family, name) = table();
    let found = handles(step, chain, tag)?;
    if found.is_empty() {
        return Err(NetError::FwNoRule {
            step: step.to_owned(),
            tag: tag.to_owned(),
        });
    }
    for h in found {
        let h = h.to_string();
        nft(
            step,
            &[
                "delete",
                "rule",
                family,
                name,
                chain.nft_name(),
                "handle",
                &h,
            ],
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_that_could_break_the_script_are_refused() {
        for bad in ["", "a\"b", "a\nb", "a b", "a;b", &"x".repeat(129)] {
            assert!(
                matches!(check_tag("s", bad), Err(NetError::BadFwValue { value, .. }) if value == bad),
                "{bad:?}"
            );
        }
        check_tag("s", "berth:ctr/0123abcd:tcp-18080").unwrap();
    }

    #[test]
    fn listing_objects_are_read() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"rule": {"family": "inet", "table": "berth", "chain": "prerouting", "handle": 3, "comment": "t1", "expr": []}}]}"#;
        let o = objects("s", json).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o[1]["rule"]["handle"], 3);
        assert!(objects("s", "{}").is_err());
        assert_eq!(table(), ("inet", "berth"));
    }
}
