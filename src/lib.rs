//! ssh-upgrade-guard keeps unattended openssh-server upgrades from ending
//! half-configured and repairs ssh without ever locking anyone out.
//!
//! Layout: `model`, `plan`, and the parsers (`dpkg`, `sshd`, `marker`,
//! `config`) are pure; everything that touches the OS is under `system`;
//! `commands` ties them together behind the entry points below.
pub mod cli;
pub mod config;
pub mod dpkg;
pub mod marker;
pub mod model;
pub mod plan;
pub mod sshd;

pub fn main() -> i32 {
    use clap::Parser;
    let _cli = cli::Cli::parse();
    0
}
