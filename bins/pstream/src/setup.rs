//! `pstream setup [--apply]`: costream's setup step (loopback cameras and
//! virtual audio devices) shown, or run.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use pstream_capture::setup::{plan, probe, shell_line, Step, StepKind};

use crate::cli::SetupPart;

/// PipeWire's node names, or `None` when it cannot be reached.
#[cfg(feature = "pipewire")]
fn pipewire_nodes() -> Option<Vec<String>> {
    pstream_capture::pipewire::list_nodes()
        .ok()
        .map(|nodes| nodes.into_iter().map(|n| n.name).collect())
}

#[cfg(not(feature = "pipewire"))]
fn pipewire_nodes() -> Option<Vec<String>> {
    None
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `pstream setup`: prints each step (done or to do); with `apply`, runs
/// the ones to do, and fails naming those that failed.
pub fn run(apply: bool, only: Option<SetupPart>) -> anyhow::Result<()> {
    // The cameras alone need no PipeWire (a headless Pi may have none).
    let nodes = if only == Some(SetupPart::Video) {
        None
    } else {
        pipewire_nodes()
    };
    let reachable = nodes.is_some();
    let state = probe(Path::new("/sys"), nodes);
    let mut steps = plan(&state);
    match only {
        Some(SetupPart::Video) => steps.retain(|s| s.kind == StepKind::Cameras),
        Some(SetupPart::Audio) => steps.retain(|s| s.kind == StepKind::Sink),
        None => {}
    }
    if !reachable && only != Some(SetupPart::Video) {
        println!("# PipeWire is not reachable here; its steps are shown without checking");
    }
    let mut todo: Vec<&Step> = Vec::new();
    for step in &steps {
        println!("# {}", step.what);
        match &step.already {
            Some(why) => println!("#   already done: {why}"),
            None => {
                println!("{}", shell_line(&step.command));
                todo.push(step);
            }
        }
    }
    if !apply {
        if !todo.is_empty() {
            println!("# run `pstream setup --apply` to run the commands above");
        }
        return Ok(());
    }
    // Every step runs even when one fails: the PipeWire sinks are useful
    // on a machine whose kernel has no v4l2loopback, and the reverse.
    let mut failed = Vec::new();
    for step in todo {
        if let Err(e) = apply_step(step) {
            eprintln!("pstream setup: {e:#}");
            failed.push(step.what.clone());
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of the setup's steps failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Runs one step's command (through sudo for root's when not root).
fn apply_step(step: &Step) -> anyhow::Result<()> {
    let mut command = step.command.clone();
    if step.needs_root && !is_root() {
        command.insert(0, "sudo".into());
    }
    let line = shell_line(&command);
    eprintln!("pstream setup: running {line}");
    let status = Command::new(&command[0])
        .args(&command[1..])
        .status()
        .with_context(|| format!("cannot run {} (is it installed?)", command[0]))?;
    if !status.success() {
        let hint = if step.needs_root {
            " (loading a kernel module needs root, and the module must be installed: \
             apt-get install v4l2loopback-dkms)"
        } else {
            " (is PipeWire running for this user?)"
        };
        anyhow::bail!("`{line}` failed with {status}{hint}");
    }
    Ok(())
}
