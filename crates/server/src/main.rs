//! `rulebook`: the service and its command line (see `rulebook --help`).

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use rulebook::cli::{Cli, Exit};

#[global_allocator]
static ALLOCATOR: rulebook::Allocator = rulebook::Allocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "rulebook: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Server as u8);
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "rulebook: {error}");
            ExitCode::from(error.exit as u8)
        }
    }
}
