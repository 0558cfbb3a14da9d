//! `/etc/passwd` and `/etc/group` parsing (names inside a rootfs to ids).
