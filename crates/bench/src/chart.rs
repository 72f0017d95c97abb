//! Charts of a comparison: `wardgate-bench chart` reads a `results.json` and draws PNG bar
//! charts of throughput, latency and memory per connection, one bar per broker.
//!
//! Text is drawn with DejaVu Sans from `assets/` (its licence beside it), so a chart looks the
//! same on every machine, with or without fontconfig.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The font every chart is drawn with.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// One color a broker, in the order brokers first appear in the results.
const COLORS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
/// Width of every chart, pixels.
pub const WIDTH: u32 = 1000;
const LEFT: i32 = 260;
const RIGHT: i32 = 90;
const TOP: i32 = 80;
const BOTTOM: i32 = 40;
const BAR: i32 = 14;
const GAP: i32 = 12;

/// The part of `results.json` the charts read.
#[derive(Debug, Deserialize)]
struct Results {
    runs: Vec<Run>,
}

#[derive(Debug, Deserialize)]
struct Run {
    broker: String,
    id: String,
    rate_target: Option<f64>,
    delivered_per_s: Option<f64>,
    latency: Option<Latency>,
    bytes_per_connection: Option<f64>,
    error: Option<String>,
    skipped: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
}

/// One bar chart: rows of bars, one bar a broker.
#[derive(Debug)]
pub struct Chart {
    /// The file name, `throughput.png`.
    pub file: &'static str,
    title: &'static str,
    brokers: Vec<String>,
    /// Per row: its label and a value per broker (`None`: the broker has none).
    rows: Vec<(String, Vec<Option<f64>>)>,
    format: fn(f64) -> String,
}

impl Chart {
    /// The height of the picture, pixels.
    pub fn height(&self) -> u32 {
        let per_row = BAR * self.brokers.len() as i32 + GAP;
        (TOP + per_row * self.rows.len() as i32 + BOTTOM) as u32
    }
}

/// The charts `results` (the text of a `results.json`) has data for: throughput of the
/// full-speed message cases, latency (p50, p99) of the fixed-rate cases, memory per connection.
pub fn charts(results: &str) -> Result<Vec<Chart>> {
    let results: Results =
        serde_json::from_str(results).map_err(|e| Error::Chart(format!("results.json: {e}")))?;
    let runs: Vec<&Run> = results
        .runs
        .iter()
        .filter(|r| r.error.is_none() && r.skipped.is_none())
        .collect();
    let mut brokers: Vec<String> = Vec::new();
    for run in &runs {
        if !brokers.contains(&run.broker) {
            brokers.push(run.broker.clone());
        }
    }
    let rows = |value: &dyn Fn(&Run) -> Option<f64>| {
        let mut ids: Vec<&str> = Vec::new();
        for run in runs.iter().filter(|r| value(r).is_some()) {
            if !ids.contains(&run.id.as_str()) {
                ids.push(&run.id);
            }
        }
        ids.iter()
            .map(|id| {
                let values = brokers
                    .iter()
                    .map(|b| {
                        let run = runs.iter().find(|r| &r.broker == b && r.id == *id);
                        run.and_then(|r| value(r))
                    })
                    .collect();
                (id.to_string(), values)
            })
            .collect::<Vec<_>>()
    };
    let throughput = rows(&|r: &Run| r.delivered_per_s.filter(|_| r.rate_target.is_none()));
    let latency_of = |pick: fn(&Latency) -> f64| {
        move |r: &Run| {
            r.latency
                .as_ref()
                .filter(|_| r.rate_target.is_some())
                .map(pick)
        }
    };
    let mut latency = Vec::new();
    for ((id, p50), (_, p99)) in rows(&latency_of(|l| l.p50_us))
        .into_iter()
        .zip(rows(&latency_of(|l| l.p99_us)))
    {
        latency.push((format!("{id} p50"), p50));
        latency.push((format!("{id} p99"), p99));
    }
    let memory = rows(&|r: &Run| r.bytes_per_connection);
    let charts = [
        (
            "throughput.png",
            "Messages delivered per second (more is better)",
            throughput,
            rate as fn(f64) -> String,
        ),
        (
            "latency.png",
            "End-to-end latency at a fixed rate, p50 and p99 (less is better)",
            latency,
            micros,
        ),
        (
            "connections.png",
            "Broker memory per idle connection (less is better)",
            memory,
            bytes,
        ),
    ];
    Ok(charts
        .into_iter()
        .filter(|(_, _, rows, _)| !rows.is_empty())
        .map(|(file, title, rows, format)| Chart {
            file,
            title,
            brokers: brokers.clone(),
            rows,
            format,
        })
        .collect())
}

/// Draws every chart of `results` into `dir` and returns the files written.
pub fn write(results: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| Error::Chart("the font does not load".into()))?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for chart in charts(results)? {
        let path = dir.join(chart.file);
        draw(&chart, &path).map_err(|e| Error::Chart(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// Draws one chart as a PNG at `path`.
fn draw(chart: &Chart, path: &Path) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let height = chart.height();
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let font = |size: f64| ("sans-serif", size).into_font().color(&BLACK);
    root.draw(&Text::new(chart.title, (20, 16), font(22.0)))?;
    for (i, broker) in chart.brokers.iter().enumerate() {
        let x = LEFT + 170 * i as i32;
        let color = COLORS[i % COLORS.len()];
        root.draw(&Rectangle::new([(x, 50), (x + 14, 64)], color.filled()))?;
        root.draw(&Text::new(broker.as_str(), (x + 20, 49), font(15.0)))?;
    }
    let max = chart
        .rows
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |m, &v| m.max(v));
    let width = (WIDTH as i32 - LEFT - RIGHT) as f64;
    let x_of = |v: f64| LEFT + (v / max.max(f64::MIN_POSITIVE) * width) as i32;
    let per_row = BAR * chart.brokers.len() as i32 + GAP;
    let bottom = height as i32 - BOTTOM;
    for tick in ticks(max) {
        let x = x_of(tick);
        root.draw(&PathElement::new(
            [(x, TOP - 4), (x, bottom)],
            RGBColor(0xdd, 0xdd, 0xdd),
        ))?;
        root.draw(&Text::new(
            (chart.format)(tick),
            (x - 12, bottom + 8),
            font(13.0),
        ))?;
    }
    for (row, (label, values)) in chart.rows.iter().enumerate() {
        let y = TOP + per_row * row as i32;
        let label_y = y + (per_row - GAP) / 2 - 8;
        root.draw(&Text::new(label.as_str(), (10, label_y), font(14.0)))?;
        for (i, value) in values.iter().enumerate() {
            let top = y + BAR * i as i32;
            let Some(value) = value else {
                continue;
            };
            let color = COLORS[i % COLORS.len()];
            let end = x_of(*value);
            root.draw(&Rectangle::new(
                [(LEFT, top), (end.max(LEFT + 1), top + BAR - 2)],
                color.filled(),
            ))?;
            root.draw(&Text::new(
                (chart.format)(*value),
                (end + 4, top),
                font(12.0),
            ))?;
        }
    }
    root.draw(&PathElement::new([(LEFT, TOP - 4), (LEFT, bottom)], BLACK))?;
    root.present()?;
    Ok(())
}

/// Up to five round tick values from 0 to `max`.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 {
        return vec![0.0];
    }
    let rough = max / 4.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= max * 1.0001)
        .collect()
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn micros(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn bytes(v: f64) -> String {
    if v >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"{"runs": [
        {"broker": "wardgate", "id": "p2p-100/q0/16B/v3/asap", "rate_target": null,
         "delivered_per_s": 1866078.5, "latency": {"p50_us": 4620.3, "p99_us": 11468.8},
         "bytes_per_connection": null, "error": null, "skipped": null},
        {"broker": "mosquitto", "id": "p2p-100/q0/16B/v3/asap", "rate_target": null,
         "delivered_per_s": 412000.0, "latency": null,
         "bytes_per_connection": null, "error": null, "skipped": null},
        {"broker": "mosquitto", "id": "p2p-100/q1/16B/v3/asap", "rate_target": null,
         "delivered_per_s": null, "latency": null,
         "bytes_per_connection": null, "error": "refused", "skipped": null},
        {"broker": "wardgate", "id": "latency-p2p-100/q1/16B/v3/asap", "rate_target": 20000.0,
         "delivered_per_s": 20000.0, "latency": {"p50_us": 150.0, "p99_us": 900.0},
         "bytes_per_connection": null, "error": null, "skipped": null},
        {"broker": "wardgate", "id": "conn-20000/q0/16B/v3/asap", "rate_target": null,
         "delivered_per_s": null, "latency": null,
         "bytes_per_connection": 1850.0, "error": null, "skipped": null}
    ]}"#;

    #[test]
    fn each_chart_takes_its_cases() {
        let charts = charts(FIXTURE).expect("charts");
        let files: Vec<&str> = charts.iter().map(|c| c.file).collect();
        assert_eq!(files, ["throughput.png", "latency.png", "connections.png"]);
        assert_eq!(charts[0].brokers, ["wardgate", "mosquitto"]);
        assert_eq!(
            charts[0].rows,
            [(
                "p2p-100/q0/16B/v3/asap".to_string(),
                vec![Some(1866078.5), Some(412000.0)]
            )]
        );
        let latency: Vec<&str> = charts[1].rows.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            latency,
            [
                "latency-p2p-100/q1/16B/v3/asap p50",
                "latency-p2p-100/q1/16B/v3/asap p99"
            ]
        );
        assert_eq!(charts[1].rows[1].1, [Some(900.0), None]);
        assert_eq!(charts[2].rows[0].1, [Some(1850.0), None]);
    }

    #[test]
    fn a_chart_is_a_png_of_its_size() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let written = write(FIXTURE, dir.path()).expect("charts written");
        assert_eq!(written.len(), 3);
        let expected = charts(FIXTURE).expect("charts");
        for (path, chart) in written.iter().zip(&expected) {
            let image = image::open(path).expect("a PNG that decodes");
            assert_eq!((image.width(), image.height()), (WIDTH, chart.height()));
            let pixels = image.to_rgb8();
            let colored = pixels
                .pixels()
                .filter(|p| p.0 == [0x1f, 0x77, 0xb4])
                .count();
            assert!(colored > 100, "{}: no bars drawn", path.display());
        }
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            ticks(1_866_078.0),
            [0.0, 500_000.0, 1_000_000.0, 1_500_000.0]
        );
        assert_eq!(ticks(900.0), [0.0, 250.0, 500.0, 750.0]);
        assert_eq!(ticks(0.0), [0.0]);
    }
}
