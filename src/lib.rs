//! ssh-upgrade-guard keeps unattended openssh-server upgrades from ending
//! half-configured and repairs ssh without ever locking anyone out.
pub mod cli;

pub fn main() -> i32 {
    use clap::Parser;
    let _cli = cli::Cli::parse();
    0
}
