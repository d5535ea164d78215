//! The live stats line: one refreshed line on a terminal, log lines otherwise.

use std::io::{IsTerminal, Write};

/// How stats are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsMode {
    /// Rewrite one line on stderr in place.
    Terminal,
    /// A plain log line each time (stderr is a file or pipe).
    Log,
    /// Nothing (`--quiet`).
    Quiet,
}

impl StatsMode {
    /// Picks the mode for this process's stderr.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            StatsMode::Quiet
        } else if std::io::stderr().is_terminal() {
            StatsMode::Terminal
        } else {
            StatsMode::Log
        }
    }
}

/// Prints stats lines in the chosen mode.
#[derive(Debug)]
pub struct StatsPrinter {
    mode: StatsMode,
    label: &'static str,
    printed: bool,
}

impl StatsPrinter {
    /// A printer whose lines start with `label` (e.g. "send").
    pub fn new(mode: StatsMode, label: &'static str) -> Self {
        Self {
            mode,
            label,
            printed: false,
        }
    }

    /// Shows one stats line.
    pub fn show(&mut self, line: &str) {
        match self.mode {
            StatsMode::Quiet => {}
            StatsMode::Terminal => {
                let mut err = std::io::stderr().lock();
                // \r + erase-line keeps it one line however long the last was.
                let _ = write!(err, "\r\x1b[2K{}: {line}", self.label);
                let _ = err.flush();
                self.printed = true;
            }
            StatsMode::Log => tracing::info!(target: "pstream::stats", "{}: {line}", self.label),
        }
    }

    /// Ends the live line so later output starts on a fresh line.
    pub fn finish(&mut self) {
        if self.mode == StatsMode::Terminal && self.printed {
            eprintln!();
            self.printed = false;
        }
    }
}

/// Formats a bit count over an interval as kbit/s.
pub fn kbps(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / 1000.0 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbps_is_kilobits_per_second() {
        assert_eq!(kbps(125_000, 1.0), 1000.0);
        assert_eq!(kbps(1, 0.0), 0.0);
    }
}
