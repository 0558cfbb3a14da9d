//! fstab-style mount options and `/proc/self/mountinfo` parsing.
