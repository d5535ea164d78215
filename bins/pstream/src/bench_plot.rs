//! `pstream bench loopback --plot FILE.svg`: per row of the report, a
//! histogram of capture -> decoded latency (every pipeline, every run) and
//! a bar chart of pstream's stages (median and p99), drawn with plotters'
//! SVG backend so no font files are needed.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use pstream_embed::bench::loopback::LoopbackReport;

/// Width of the picture in pixels.
const WIDTH: u32 = 1000;
/// Height of one row's two panels.
const ROW_HEIGHT: u32 = 760;

/// Colours of the pipelines in the order the report lists them (pstream first).
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
];

/// The SVG document for `report`.
pub fn svg(report: &LoopbackReport) -> Result<String> {
    let mut out = String::new();
    let rows = report.rows.len().max(1) as u32;
    {
        let root =
            SVGBackend::with_string(&mut out, (WIDTH, ROW_HEIGHT * rows)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (row, area) in report
            .rows
            .iter()
            .zip(root.split_evenly((rows as usize, 1)))
        {
            let (top, bottom) = area.split_vertically(ROW_HEIGHT * 11 / 20);
            histogram(row, report, &top)?;
            stages(row, &bottom)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Share of pictures per 1 ms bin (0.5 ms under 20 ms of range) for each
/// pipeline, as step lines over each other; latencies past the range end
/// are counted in its last bin.
fn histogram(
    row: &pstream_embed::bench::loopback::LoopbackRow,
    report: &LoopbackReport,
    area: &Area<'_>,
) -> Result<()> {
    let all: Vec<f64> = row
        .pipelines
        .iter()
        .flat_map(|p| p.runs.iter().flat_map(|r| r.samples_ms.iter().copied()))
        .collect();
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    // The range covers 99% of the pictures of every pipeline; a start-up
    // tail would otherwise squash the bulk into one bin.
    let hi = pstream_embed::bench::stats::percentile(&sorted, 99.0)
        .unwrap_or(10.0)
        .max(5.0)
        .ceil();
    let bin = if hi <= 20.0 { 0.5 } else { (hi / 40.0).ceil() };
    let bins = (hi / bin).ceil() as usize + 1;
    let mut series = Vec::new();
    let mut top: f64 = 0.0;
    for p in &row.pipelines {
        let samples: Vec<f64> = p
            .runs
            .iter()
            .flat_map(|r| r.samples_ms.iter().copied())
            .collect();
        if samples.is_empty() {
            continue;
        }
        let mut counts = vec![0usize; bins];
        for s in &samples {
            counts[((s / bin) as usize).min(bins - 1)] += 1;
        }
        let shares: Vec<f64> = counts
            .iter()
            .map(|c| 100.0 * *c as f64 / samples.len() as f64)
            .collect();
        top = shares.iter().copied().fold(top, f64::max);
        let median = p.median().map_or(0.0, |m| m.median_ms);
        series.push((p.pipeline.label(), shares, median, samples.len()));
    }
    let caption = format!(
        "{}x{} @ {} fps, {} kbit/s: capture -> decoded latency ({} run{} each)",
        row.width,
        row.height,
        row.fps,
        report.bitrate_kbps,
        report.runs,
        if report.runs == 1 { "" } else { "s" }
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..(bins as f64 * bin), 0.0..(top * 1.1).max(1.0))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "latency, ms ({bin} ms bins; the last holds everything beyond)"
        ))
        .y_desc("% of pictures")
        .draw()
        .map_err(err)?;
    for (i, (label, shares, median, n)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let steps: Vec<(f64, f64)> = shares
            .iter()
            .enumerate()
            .flat_map(|(k, s)| [(k as f64 * bin, *s), ((k + 1) as f64 * bin, *s)])
            .collect();
        chart
            .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
            .map_err(err)?
            .label(format!("{label}: median {median:.1} ms, {n} pictures"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// pstream's stages as horizontal bars: the median solid, the p99 pale behind it.
fn stages(row: &pstream_embed::bench::loopback::LoopbackRow, area: &Area<'_>) -> Result<()> {
    let n = row.stages.len();
    let top = row
        .stages
        .iter()
        .map(|s| s.latency.p99_ms)
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "pstream stages over {} pictures: median (solid) and p99 (pale), ms",
                row.staged
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(140)
        .build_cartesian_2d(0.0..top, (0..n).into_segmented())
        .map_err(err)?;
    // Path order from the top: segment k (from the bottom) is stage n-1-k.
    let names: Vec<&str> = row.stages.iter().rev().map(|s| s.name).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i).map_or(String::new(), |s| (*s).to_owned())
            }
            SegmentValue::Last => String::new(),
        })
        .x_desc("ms")
        .draw()
        .map_err(err)?;
    let pale = COLOURS[0].mix(0.3);
    let solid = COLOURS[0];
    chart
        .draw_series(row.stages.iter().rev().enumerate().map(|(i, s)| {
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (s.latency.p99_ms, SegmentValue::Exact(i + 1)),
                ],
                pale.filled(),
            )
        }))
        .map_err(err)?
        .label("p99")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], pale.filled()));
    chart
        .draw_series(row.stages.iter().rev().enumerate().map(|(i, s)| {
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (s.latency.median_ms, SegmentValue::Exact(i + 1)),
                ],
                solid.filled(),
            )
        }))
        .map_err(err)?
        .label("median")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], solid.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    Ok(())
}
