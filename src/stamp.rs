//! A process's identity, pid and start time: plain data that the snapshot,
//! the inhibit marker and every decision about a process share, below all
//! of them.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use serde::Serialize;

/// The identity of a process: its pid and its start time (field 22 of
/// /proc/PID/stat, clock ticks since boot). A pid alone can be reused; the
/// pair cannot, so every decision about a process carries this, and it is
/// re-checked right before the process is signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ProcessStamp {
    /// The process id.
    pub pid: u32,
    /// Field 22 of /proc/PID/stat.
    pub start_time: u64,
}
