#!/usr/bin/env bash
# berth's test command: what CI runs (.ci/run calls it) and what a developer runs before
# handing in work. Format, lints, every test (root end-to-end tests included), then docs.
#
# The end-to-end tests need root and a real kernel. Under CI (CI=true) they always run and
# fail if they cannot; a developer who is not root gets the unprivileged suite and a note.
set -euo pipefail
cd "$(dirname "$0")/.."

features=(--features berth-tests/e2e,berth-backend-linux/e2e)
if [[ "$(id -u)" != 0 && "${CI:-}" != true ]]; then
    echo "test.sh: not root: leaving out the end-to-end tests (berth-tests/e2e, berth-backend-linux/e2e)" >&2
    features=()
fi

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets --locked ${features[*]} -- -D warnings"
cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings

step "INSTA_UPDATE=no cargo test --workspace --locked ${features[*]}"
INSTA_UPDATE=no cargo test --workspace --locked "${features[@]}"

step 'RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked'
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
