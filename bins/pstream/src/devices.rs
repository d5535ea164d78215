//! `pstream devices`: what can be captured from and played to, as tables a
//! person can read, one section per backend.

use std::fmt::Write as _;

/// One section of the listing: a title, then either a table or a line
/// saying why the backend could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// "PipeWire audio nodes", "ALSA audio devices", ...
    pub title: String,
    /// Column headers.
    pub header: Vec<&'static str>,
    /// Rows, one cell per header.
    pub rows: Vec<Vec<String>>,
    /// Indented lines under each row (a camera's formats), by row index; may be shorter than `rows`.
    pub details: Vec<Vec<String>>,
    /// Shown instead of the table when the backend is unavailable.
    pub unavailable: Option<String>,
}

impl Section {
    fn unavailable(title: &str, why: String) -> Self {
        Self {
            title: title.to_string(),
            header: Vec::new(),
            rows: Vec::new(),
            details: Vec::new(),
            unavailable: Some(why),
        }
    }

    /// Renders the section: the title, then aligned columns.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.title);
        if let Some(why) = &self.unavailable {
            let _ = writeln!(out, "  {why}");
            return out;
        }
        if self.rows.is_empty() {
            out.push_str("  (none)\n");
            return out;
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from(" ");
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                s.push(' ');
                if i + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    let _ = write!(s, "{cell:<w$}");
                }
            }
            s.trim_end().to_string()
        };
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(out, "{}", line(&header));
        for (i, row) in self.rows.iter().enumerate() {
            let _ = writeln!(out, "{}", line(row));
            for detail in self.details.get(i).into_iter().flatten() {
                let _ = writeln!(out, "      {detail}");
            }
        }
        out
    }
}

/// `pstream devices`: prints every section.
pub fn run() -> anyhow::Result<()> {
    let sections = [v4l2_section(), pipewire_section(), alsa_section()];
    let text: Vec<String> = sections.iter().map(Section::render).collect();
    print!("{}", text.join("\n"));
    Ok(())
}

/// Every /dev/video* node: cameras, loopback devices and outputs, with the
/// formats, sizes and rates each offers.
fn v4l2_section() -> Section {
    let devices = pstream_capture::v4l2::list_devices();
    Section {
        title: "V4L2 video devices (--video v4l2:DEVICE, --video-out v4l2:DEVICE)".into(),
        header: vec!["DEVICE", "KIND", "DRIVER", "CARD"],
        rows: devices
            .iter()
            .map(|d| {
                vec![
                    d.path.display().to_string(),
                    d.kind().to_string(),
                    d.driver.clone(),
                    d.card.clone(),
                ]
            })
            .collect(),
        details: devices.iter().map(|d| d.format_lines()).collect(),
        unavailable: None,
    }
}

/// PipeWire's audio sinks and sources (device nodes and virtual ones;
/// applications' streams are left out).
#[cfg(feature = "pipewire")]
fn pipewire_section() -> Section {
    const TITLE: &str = "PipeWire audio nodes (--audio pipewire:NAME, --audio-out pipewire:NAME)";
    match pstream_capture::pipewire::list_nodes() {
        Ok(nodes) => Section {
            title: TITLE.to_string(),
            header: vec!["ID", "NAME", "CLASS", "DESCRIPTION"],
            rows: nodes
                .into_iter()
                .filter(|n| n.is_audio_endpoint())
                .map(|n| vec![n.id.to_string(), n.name, n.media_class, n.description])
                .collect(),
            details: Vec::new(),
            unavailable: None,
        },
        Err(e) => Section::unavailable(TITLE, e.to_string()),
    }
}

#[cfg(not(feature = "pipewire"))]
fn pipewire_section() -> Section {
    Section::unavailable(
        "PipeWire audio nodes",
        "this pstream was built without the pipewire feature".into(),
    )
}

/// ALSA's PCM devices as cpal lists them.
#[cfg(feature = "alsa")]
fn alsa_section() -> Section {
    const TITLE: &str = "ALSA audio devices (--audio alsa:NAME, --audio-out alsa:NAME)";
    let yes_no = |b: bool| if b { "yes" } else { "-" }.to_string();
    match pstream_capture::alsa::list_devices() {
        Ok(devices) => Section {
            title: TITLE.to_string(),
            header: vec!["NAME", "CAPTURE", "PLAYBACK"],
            rows: devices
                .into_iter()
                .map(|d| vec![d.name, yes_no(d.input), yes_no(d.output)])
                .collect(),
            details: Vec::new(),
            unavailable: None,
        },
        Err(e) => Section::unavailable(TITLE, e.to_string()),
    }
}

#[cfg(not(feature = "alsa"))]
fn alsa_section() -> Section {
    Section::unavailable(
        "ALSA audio devices",
        "this pstream was built without the alsa feature".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned() {
        let s = Section {
            title: "T".into(),
            header: vec!["ID", "NAME", "DESCRIPTION"],
            rows: vec![
                vec!["1".into(), "a-long-name".into(), "first".into()],
                vec!["22".into(), "b".into(), "second one".into()],
            ],
            details: vec![vec![], vec!["YUYV 640x480".into()]],
            unavailable: None,
        };
        assert_eq!(
            s.render(),
            "T\n  ID NAME        DESCRIPTION\n  1  a-long-name first\n  22 b           second one\n      YUYV 640x480\n"
        );
        let u = Section::unavailable("U", "not running".into());
        assert_eq!(u.render(), "U\n  not running\n");
    }
}
