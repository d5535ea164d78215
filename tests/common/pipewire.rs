//! A userspace PipeWire for tests: dbus-daemon, pipewire and wireplumber in
//! a temporary XDG_RUNTIME_DIR, with null sinks made by a pipewire.conf.d
//! drop-in; every process is killed by PID when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{temp_dir, Proc};

/// The programs a PipeWire test needs (Debian: pipewire, pipewire-bin,
/// wireplumber, dbus).
pub const TOOLS: [&str; 5] = ["pipewire", "wireplumber", "dbus-daemon", "pw-cat", "pw-cli"];

/// The first of [`TOOLS`] not installed, if any.
pub fn missing_tool() -> Option<&'static str> {
    TOOLS.into_iter().find(|tool| {
        !std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
    })
}

/// A running private PipeWire.
pub struct PipeWire {
    /// Where its sockets, configuration and the processes' logs live.
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    // Dropped last-started first: wireplumber, pipewire, dbus.
    procs: Vec<Proc>,
}

impl PipeWire {
    /// Starts dbus, pipewire and wireplumber with one null sink per name in
    /// `sinks`, and waits until the sinks are there and the session manager
    /// is up.
    pub fn start(test: &str, sinks: &[&str]) -> PipeWire {
        let dir = temp_dir(test);
        let runtime = dir.join("run");
        let config = dir.join("config");
        let dropins = config.join("pipewire/pipewire.conf.d");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        std::fs::create_dir_all(&dropins).expect("config dir");
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700));
        let objects: String = sinks
            .iter()
            .map(|name| {
                format!(
                    "  {{ factory = adapter args = {{ factory.name = support.null-audio-sink \
                     node.name = \"{name}\" node.description = \"test sink {name}\" \
                     media.class = Audio/Sink audio.rate = 48000 \
                     audio.position = [ FL FR ] }} }}\n"
                )
            })
            .collect();
        std::fs::write(
            dropins.join("test-sinks.conf"),
            format!("context.objects = [\n{objects}]\n"),
        )
        .expect("write drop-in");
        let bus = dir.join("bus");
        let env: Vec<(String, String)> = vec![
            ("XDG_RUNTIME_DIR".into(), path(&runtime)),
            ("XDG_CONFIG_HOME".into(), path(&config)),
            ("XDG_STATE_HOME".into(), path(&dir.join("state"))),
            ("XDG_DATA_HOME".into(), path(&dir.join("data"))),
            ("HOME".into(), path(&dir)),
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                format!("unix:path={}", bus.display()),
            ),
            // No sound card here; keep wireplumber from probing for one.
            ("PIPEWIRE_LOG_SYSTEMD".into(), "false".into()),
        ];
        let mut pw = PipeWire {
            dir: dir.clone(),
            env,
            procs: Vec::new(),
        };
        let dbus = pw.spawn(
            "dbus-daemon",
            "dbus-daemon",
            &[
                "--session",
                "--nofork",
                "--nopidfile",
                &format!("--address=unix:path={}", bus.display()),
            ],
        );
        pw.procs.push(dbus);
        wait_until(Duration::from_secs(10), || bus.exists(), "the dbus socket");
        let daemon = pw.spawn("pipewire", "pipewire", &[]);
        pw.procs.push(daemon);
        wait_until(
            Duration::from_secs(10),
            || runtime.join("pipewire-0").exists(),
            "the pipewire socket",
        );
        let wp = pw.spawn("wireplumber", "wireplumber", &[]);
        pw.procs.push(wp);
        let want: Vec<String> = sinks.iter().map(|s| s.to_string()).collect();
        wait_until(
            Duration::from_secs(20),
            || {
                let ls = pw.output("pw-cli", &["ls", "Node"]);
                let clients = pw.output("pw-cli", &["ls", "Client"]);
                want.iter().all(|s| ls.contains(&format!("\"{s}\"")))
                    && clients.contains("WirePlumber")
            },
            "the sinks and wireplumber",
        );
        pw
    }

    /// The environment a client needs to reach this PipeWire.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// A command set up to talk to this PipeWire.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    /// Runs a client to completion (at most 10 s), returning its stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> String {
        let mut p = self.spawn(&format!("{program}-once"), program, args);
        p.wait(Duration::from_secs(10));
        p.stdout()
    }

    /// Starts a client in the background, killed by PID on drop.
    pub fn spawn(&self, name: &str, program: impl AsRef<Path>, args: &[&str]) -> Proc {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Proc::start_env(name, program.as_ref(), &args, &self.dir, &self.env)
    }

    /// Everything the daemons logged, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {}:\n{}", p.name(), p.stderr()))
            .collect()
    }
}

impl Drop for PipeWire {
    fn drop(&mut self) {
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not come up within {limit:?}");
}
