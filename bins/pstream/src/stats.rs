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

/// The process's footprint: peak resident memory (the kernel's VmHWM) and
/// the most threads seen by [`ProcessPeak::sample`], from
/// `/proc/self/status` (Linux). Shown in the summaries so that footprint and
/// the bounded queues are visible without an outside tool.
#[derive(Debug, Default)]
pub struct ProcessPeak {
    threads: u64,
}

impl ProcessPeak {
    /// Notes the current thread count; call while the stages run.
    pub fn sample(&mut self) {
        if let Some((_, threads)) = read_status() {
            self.threads = self.threads.max(threads);
        }
    }

    /// `rss-peak 21.5 MiB threads 9`, or nothing without `/proc`.
    pub fn line(&mut self) -> String {
        self.sample();
        read_status()
            .map(|(kib, _)| format_peak(kib, self.threads))
            .unwrap_or_default()
    }
}

fn read_status() -> Option<(u64, u64)> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// (VmHWM in KiB, Threads) from a `/proc/<pid>/status` text.
fn parse_status(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("Threads:")?))
}

fn format_peak(kib: u64, threads: u64) -> String {
    format!("rss-peak {:.1} MiB threads {threads}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_peak_reads_rss_and_keeps_the_most_threads() {
        let status = "Name:\tpstream\nVmHWM:\t   22016 kB\nVmRSS:\t 1 kB\nThreads:\t9\n";
        assert_eq!(parse_status(status), Some((22016, 9)));
        assert_eq!(parse_status("Name:\tx\n"), None);
        assert_eq!(format_peak(22016, 9), "rss-peak 21.5 MiB threads 9");
        let mut peak = ProcessPeak::default();
        let worker =
            std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(300)));
        peak.sample();
        let _ = worker.join();
        let line = peak.line();
        assert!(line.starts_with("rss-peak "), "{line}");
        assert!(peak.threads >= 2, "{line}");
    }
}
