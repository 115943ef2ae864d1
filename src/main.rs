//! ssh-upgrade-guard: the binary is one line over the library.
#![forbid(unsafe_code)]

// The one place the process exits.
#[allow(clippy::disallowed_methods)]
fn main() {
    std::process::exit(ssh_upgrade_guard::main());
}
