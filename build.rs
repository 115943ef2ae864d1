//! Generates the man page ssh-upgrade-guard(8) and the bash completion from
//! the clap definitions in src/cli.rs, so that they always match --help.
//!
//! Output goes to OUT_DIR, and also to $SSH_UPGRADE_GUARD_GEN_DIR when it is
//! set (the Makefile and debian/rules set it to target/assets).
// A build script writes files and reads cargo's environment: clippy.toml's
// OS boundary is about the guard, not its build.
#![allow(clippy::disallowed_methods)]

use clap::CommandFactory;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
mod cli {
    include!("src/cli.rs");
}

fn write_assets(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = cli::Cli::command();

    // ssh-upgrade-guard(8) for the program, and one page per command
    // (ssh-upgrade-guard-status(8), ...) with its exit status, as git does.
    let mut man = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut man)?;
    std::fs::write(dir.join("ssh-upgrade-guard.8"), man)?;
    for sub in cmd.get_subcommands() {
        let name = format!("ssh-upgrade-guard-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("ssh-upgrade-guard {}", sub.get_name()));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).section("8").render(&mut out)?;
        std::fs::write(dir.join(format!("{name}.8")), out)?;
    }

    let mut bash = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut cli::Cli::command(),
        "ssh-upgrade-guard",
        &mut bash,
    );
    std::fs::write(dir.join("ssh-upgrade-guard.bash"), bash)?;
    Ok(())
}

fn main() {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-env-changed=SSH_UPGRADE_GUARD_GEN_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = write_assets(&out) {
        panic!(
            "generating man page and completion in {}: {e}",
            out.display()
        );
    }
    if let Some(dir) = std::env::var_os("SSH_UPGRADE_GUARD_GEN_DIR") {
        let dir = PathBuf::from(dir);
        if let Err(e) = write_assets(&dir) {
            panic!(
                "generating man page and completion in {}: {e}",
                dir.display()
            );
        }
    }
}
