//! ssh-upgrade-guard: the binary is one line over the library.
fn main() {
    std::process::exit(ssh_upgrade_guard::main());
}
