//! What a systemd unit name looks like, for names read from files the
//! guard does not trust (cgroup paths, the marker's served_units).
#![forbid(unsafe_code)]

/// Unit types systemd can put processes into (and the others, so that a
/// name is recognised as a unit name).
const UNIT_TYPES: &[&str] = &[
    "service",
    "scope",
    "socket",
    "mount",
    "swap",
    "slice",
    "target",
    "device",
    "automount",
    "timer",
    "path",
];

/// systemd's unit_name_is_valid, for names found in cgroup paths: at most
/// 255 bytes of [A-Za-z0-9:_.\\@-], a non-empty prefix and a known type.
pub fn is_unit_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
    {
        return false;
    }
    match name.rsplit_once('.') {
        Some((prefix, ty)) => !prefix.is_empty() && UNIT_TYPES.contains(&ty),
        None => false,
    }
}
