//! `pstream`: live media without GStreamer.
//!
//! This binary only parses options and wires stages together; protocol and
//! codec logic lives in the library crates.

mod cli;
mod devices;
mod push;
mod recv;
mod send;
mod serve;
mod setup;
mod shutdown;
mod stats;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PSTREAM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(args) => send::run(args),
        Command::Sdp(args) => send::print_sdp(args),
        Command::Recv(args) => recv::run(args),
        Command::Push(args) => push::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Devices => devices::run(),
        Command::Setup(args) => setup::run(args.apply, args.only),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined, no backtrace.
            eprintln!("pstream: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
