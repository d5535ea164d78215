//! `pstream`: live media without GStreamer.
//!
//! This binary only parses options and wires stages together; protocol and
//! codec logic lives in the library crates.

mod bench;
mod bench_plot;
mod bridge;
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
    // A panic is a bug: say it on one line, naming the thread (the stage);
    // the runner turns it into the run's error and exit status 70.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            "thread {} panicked{location}: {}",
            thread.name().unwrap_or("unnamed"),
            pstream_embed::run::panic_message(info.payload())
        );
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(args) => send::run(args),
        Command::Sdp(args) => send::print_sdp(args),
        Command::Recv(args) => recv::run(args),
        Command::Push(args) => push::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bridge(args) => bridge::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Devices => devices::run(),
        Command::Keygen(args) => keygen(args.srtp_profile.into()),
        Command::Setup(args) => setup::run(args.apply, args.only),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined, no backtrace.
            eprintln!("pstream: error: {e:#}");
            ExitCode::from(exit_status(&e))
        }
    }
}

/// `pstream keygen`: a fresh master key in base64 on stdout (one line, for
/// scripts), its hex form on stderr (for GStreamer's caps).
fn keygen(profile: pstream_embed::SrtpProfile) -> anyhow::Result<()> {
    let key = pstream_embed::MasterKey::generate(profile)?;
    println!("{}", key.to_base64());
    eprintln!(
        "{profile} key in hex (GStreamer srtp-key caps): {}",
        key.to_hex()
    );
    Ok(())
}

/// 70 (EX_SOFTWARE, sysexits.h) when a stage panicked, a bug; 2 for bad
/// input, bad settings and failures outside pstream.
fn exit_status(err: &anyhow::Error) -> u8 {
    let panicked = err.chain().any(|cause| {
        cause
            .downcast_ref::<pstream_embed::Error>()
            .is_some_and(pstream_embed::Error::is_panic)
    });
    if panicked {
        70
    } else {
        2
    }
}
