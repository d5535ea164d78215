//! The devices costream's setup step made, without a Go toolchain: two
//! v4l2loopback cameras (one OBS writes for the peer, one the peer's picture
//! appears on) and two PipeWire null sinks (OBS monitors into the first,
//! which `pstream send` captures; `pstream recv` plays into the second,
//! whose monitor OBS captures).
//!
//! [`probe`] reads what the machine already has, [`plan`] turns that into
//! the commands still needed; the binary shows or runs them.

use std::path::Path;

/// The loopback video devices' numbers (`/dev/video10`, `/dev/video11`), as costream used.
pub const VIDEO_NR: [u32; 2] = [10, 11];
/// Their labels, as OBS and browsers show them.
pub const VIDEO_LABELS: [&str; 2] = ["pstream-topeer", "pstream-frompeer"];
/// The PipeWire null sinks' node names.
pub const SINKS: [(&str, &str); 2] = [
    ("pstream-topeer", "pstream: to peer"),
    ("pstream-frompeer", "pstream: from peer"),
];

/// What the machine has now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemState {
    /// `/sys/module/v4l2loopback` exists.
    pub v4l2loopback_loaded: bool,
    /// Names of the loopback video devices present (from sysfs).
    pub video_names: Vec<String>,
    /// PipeWire node names, or `None` when PipeWire could not be reached.
    pub pipewire_nodes: Option<Vec<String>>,
}

/// What a step sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// The v4l2loopback cameras (a kernel module).
    Cameras,
    /// A PipeWire null sink.
    Sink,
}

/// One step of the setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step sets up.
    pub kind: StepKind,
    /// What the step makes, for people.
    pub what: String,
    /// The command, program first.
    pub command: Vec<String>,
    /// Whether it needs root (kernel modules).
    pub needs_root: bool,
    /// Set when nothing needs doing, with the reason.
    pub already: Option<String>,
}

/// Reads the machine's state: sysfs for v4l2loopback, and `pipewire_nodes`
/// (the caller's PipeWire listing, `None` if unreachable).
pub fn probe(sys: &Path, pipewire_nodes: Option<Vec<String>>) -> SystemState {
    let v4l2loopback_loaded = sys.join("module/v4l2loopback").exists();
    let mut video_names = Vec::new();
    if let Ok(dir) = std::fs::read_dir(sys.join("devices/virtual/video4linux")) {
        for entry in dir.flatten() {
            if let Ok(name) = std::fs::read_to_string(entry.path().join("name")) {
                video_names.push(name.trim().to_string());
            }
        }
    }
    video_names.sort();
    SystemState {
        v4l2loopback_loaded,
        video_names,
        pipewire_nodes,
    }
}

/// The modprobe line for both loopback cameras.
pub fn modprobe_command() -> Vec<String> {
    let nrs: Vec<String> = VIDEO_NR.iter().map(|n| n.to_string()).collect();
    vec![
        "modprobe".into(),
        "v4l2loopback".into(),
        "devices=2".into(),
        format!("video_nr={}", nrs.join(",")),
        format!("card_label={}", VIDEO_LABELS.join(",")),
        "exclusive_caps=1,1".into(),
        // v4l2loopback 0.12 keeps 2 buffers: a reader that falls a frame
        // behind (a browser tab in the background) reads a half-overwritten
        // picture. 8 buffers give it a quarter second at 30 fps.
        "max_buffers=8".into(),
    ]
}

/// The pw-cli line that makes a null sink that outlives pw-cli.
pub fn null_sink_command(name: &str, description: &str) -> Vec<String> {
    vec![
        "pw-cli".into(),
        "create-node".into(),
        "adapter".into(),
        format!(
            "{{ factory.name=support.null-audio-sink node.name={name} \
             node.description=\"{description}\" media.class=Audio/Sink \
             object.linger=true audio.position=[FL FR] }}"
        ),
    ]
}

/// The steps for `state`: each either still to run or already done.
pub fn plan(state: &SystemState) -> Vec<Step> {
    let mut steps = Vec::new();
    let have_labels = VIDEO_LABELS
        .iter()
        .all(|l| state.video_names.iter().any(|n| n == l));
    steps.push(Step {
        kind: StepKind::Cameras,
        what: format!(
            "V4L2 loopback cameras /dev/video{} ({}) and /dev/video{} ({})",
            VIDEO_NR[0], VIDEO_LABELS[0], VIDEO_NR[1], VIDEO_LABELS[1]
        ),
        command: modprobe_command(),
        needs_root: true,
        already: if have_labels {
            Some("both loopback devices exist".into())
        } else if state.v4l2loopback_loaded {
            Some(format!(
                "v4l2loopback is already loaded with other devices ({}); \
                 unload it (rmmod v4l2loopback) to set it up as shown",
                if state.video_names.is_empty() {
                    "none".to_string()
                } else {
                    state.video_names.join(", ")
                }
            ))
        } else {
            None
        },
    });
    for (name, description) in SINKS {
        let exists = state
            .pipewire_nodes
            .as_ref()
            .map(|nodes| nodes.iter().any(|n| n == name));
        steps.push(Step {
            kind: StepKind::Sink,
            what: format!("PipeWire null sink {name} ({description})"),
            command: null_sink_command(name, description),
            needs_root: false,
            already: match exists {
                Some(true) => Some("the node exists".into()),
                _ => None,
            },
        });
    }
    steps
}

/// Quotes a command for a shell, for showing it.
pub fn shell_line(command: &[String]) -> String {
    command
        .iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_machine_needs_every_step() {
        let steps = plan(&SystemState::default());
        assert_eq!(steps.len(), 3);
        assert!(steps.iter().all(|s| s.already.is_none()));
        assert_eq!(
            shell_line(&steps[0].command),
            "modprobe v4l2loopback devices=2 video_nr=10,11 \
             card_label=pstream-topeer,pstream-frompeer exclusive_caps=1,1 max_buffers=8"
        );
        assert!(steps[0].needs_root && !steps[1].needs_root);
        assert!(shell_line(&steps[1].command).starts_with(
            "pw-cli create-node adapter '{ factory.name=support.null-audio-sink \
             node.name=pstream-topeer"
        ));
    }

    #[test]
    fn what_exists_is_not_made_again() {
        let state = SystemState {
            v4l2loopback_loaded: true,
            video_names: vec!["pstream-frompeer".into(), "pstream-topeer".into()],
            pipewire_nodes: Some(vec!["pstream-topeer".into(), "other".into()]),
        };
        let steps = plan(&state);
        assert!(steps[0].already.is_some());
        assert!(steps[1].already.is_some());
        assert!(steps[2].already.is_none());
    }

    #[test]
    fn a_foreign_v4l2loopback_is_reported() {
        let state = SystemState {
            v4l2loopback_loaded: true,
            video_names: vec!["Dummy video device (0x0000)".into()],
            pipewire_nodes: None,
        };
        let why = plan(&state)[0].already.clone().expect("reported");
        assert!(why.contains("rmmod v4l2loopback"), "{why}");
        assert!(why.contains("Dummy video device"), "{why}");
    }

    #[test]
    fn probe_reads_sysfs() {
        let dir = std::env::temp_dir().join(format!("pstream-setup-{}", std::process::id()));
        let dev = dir.join("devices/virtual/video4linux/video10");
        std::fs::create_dir_all(&dev).expect("mkdir");
        std::fs::create_dir_all(dir.join("module/v4l2loopback")).expect("mkdir");
        std::fs::write(dev.join("name"), "pstream-topeer\n").expect("write");
        let s = probe(&dir, None);
        assert!(s.v4l2loopback_loaded);
        assert_eq!(s.video_names, vec!["pstream-topeer".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
