//! `--report FILE`: one self-contained HTML page per run, with the run's parameters, its
//! figures and SVG charts drawn by plotters (latency histogram and percentile curve,
//! deliveries/s, sessions, server CPU and RSS over time). Nothing is loaded from elsewhere:
//! no script, no stylesheet, no font. The charts' text stays SVG `<text>` that the browser sets
//! in its own sans-serif, so no font is embedded or needed at build time.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::sampler::{Mark, Sample, rates};

/// Size of every chart, in SVG pixels (scaled to the page width by CSS).
const W: u32 = 640;
const H: u32 = 300;
/// The trailing window over which rates (deliveries/s, CPU) are computed.
const RATE_WINDOW_S: f64 = 1.0;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(230, 120, 20);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const PURPLE: RGBColor = RGBColor(120, 80, 170);
const MARK: RGBColor = RGBColor(150, 150, 150);
const MARK_TEXT: RGBColor = RGBColor(90, 90, 90);

/// Everything a report shows.
#[derive(Debug, Default)]
pub struct Report {
    /// `bench fanout`, `bench idle`.
    pub title: String,
    /// One line under the title (what ran).
    pub subtitle: String,
    /// The figures shown large at the top.
    pub headline: Vec<(String, String)>,
    /// The run's options.
    pub params: Vec<(String, String)>,
    /// Every figure of the run.
    pub summary: Vec<(String, String)>,
    /// Delivery latency in µs (fanout).
    pub latency_us: Option<Histogram<u64>>,
    /// The run's time series.
    pub samples: Vec<Sample>,
    /// Labelled moments of the run.
    pub marks: Vec<Mark>,
    /// Draw deliveries/s (fanout; idle has none).
    pub deliveries: bool,
    /// Remarks printed under the figures.
    pub notes: Vec<String>,
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for an axis label: no needless decimals.
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `f` on a fresh SVG canvas and returns the SVG text.
/// A chart with the report's caption, margins and label areas, x in `0..x_max`, y in
/// `0..y_max`.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    x_max: f64,
    y_max: f64,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .margin_right(34)
        .x_label_area_size(40)
        .y_label_area_size(62)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(plot_err)
}

fn svg(f: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        f(&root)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// Counts of deliveries per latency bin, up to p99.9 (the tail lands in the last bin).
fn latency_bins(h: &Histogram<u64>, bins: usize) -> (f64, Vec<(f64, f64, u64)>, u64) {
    let top_us = h.value_at_quantile(0.999).max(h.min() + 1).max(10) as f64;
    let width = top_us / bins as f64;
    let mut counts = vec![0u64; bins];
    let mut tail = 0;
    for v in h.iter_recorded() {
        let x = v.value_iterated_to() as f64;
        let i = (x / width) as usize;
        if i >= bins {
            tail += v.count_at_value();
        }
        counts[i.min(bins - 1)] += v.count_at_value();
    }
    let out = counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            (
                i as f64 * width / 1000.0,
                (i + 1) as f64 * width / 1000.0,
                c,
            )
        })
        .collect();
    (top_us / 1000.0, out, tail)
}

fn latency_histogram(h: &Histogram<u64>) -> Result<String> {
    let (top_ms, bins, _) = latency_bins(h, 60);
    let ymax = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64 * 1.08;
    svg(|root| {
        let mut chart = frame(root, "Delivery latency distribution", top_ms, ymax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("latency, ms (up to p99.9)")
            .y_desc("deliveries")
            .x_label_formatter(&|v| num(*v))
            .y_label_formatter(&|v| num(*v))
            .light_line_style(BLACK.mix(0.04))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(bins.iter().filter(|b| b.2 > 0).map(|&(x0, x1, c)| {
                Rectangle::new([(x0, 0.0), (x1, c as f64)], BLUE.mix(0.75).filled())
            }))
            .map_err(plot_err)?;
        Ok(())
    })
}

/// Percentile position on a "nines" axis: 0 → 0 %, 1 → 90 %, 2 → 99 %, 3 → 99.9 %.
fn nines_label(v: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-v));
    let digits = (v.ceil() as i32 - 2).clamp(0, 4) as usize;
    format!("{q:.digits$}%")
}

fn latency_percentiles(h: &Histogram<u64>) -> Result<String> {
    let xmax = (h.len().max(10) as f64).log10().clamp(1.0, 5.0).floor();
    let steps = 240;
    let points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = xmax * f64::from(i) / f64::from(steps);
            let q = (1.0 - 10f64.powf(-x)).min(1.0);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect();
    let ymax = (h.max() as f64 / 1000.0 * 1.08).max(0.01);
    svg(|root| {
        let mut chart = frame(root, "Delivery latency by percentile", xmax, ymax)?;
        chart
            .configure_mesh()
            .x_labels(xmax as usize + 1)
            .x_desc("percentile")
            .y_desc("latency, ms")
            .x_label_formatter(&|v| nines_label(*v))
            .y_label_formatter(&|v| num(*v))
            .light_line_style(BLACK.mix(0.04))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(plot_err)?;
        for (q, label) in [(0.5f64, "p50"), (0.99, "p99")] {
            let x = -(1.0 - q).log10();
            if x <= xmax {
                let y = h.value_at_quantile(q) as f64 / 1000.0;
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((x, y))
                            + Circle::new((0, 0), 4, ORANGE.filled())
                            + Text::new(
                                format!("{label} {} ms", num(y)),
                                (6, -20),
                                ("sans-serif", 14).into_font().color(&BLACK),
                            ),
                    ))
                    .map_err(plot_err)?;
            }
        }
        Ok(())
    })
}

/// The marks' numbers (1-based), those closer than 2 % of the axis to each other sharing
/// one line and one label (`3,4`).
fn mark_labels(marks: &[Mark], t_max: f64) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, String)> = Vec::new();
    for (i, m) in marks.iter().enumerate() {
        match out.last_mut() {
            Some((t, label)) if m.t - *t < t_max * 0.02 => {
                let _ = write!(label, ",{}", i + 1);
            }
            _ => out.push((m.t, (i + 1).to_string())),
        }
    }
    out
}

/// One series over the run's time axis, with the marks as numbered grey lines.
fn time_chart(
    title: &str,
    y_desc: &str,
    (color, points): (RGBColor, Vec<(f64, f64)>),
    marks: &[Mark],
    t_max: f64,
    area: bool,
) -> Result<String> {
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    let t_max = t_max.max(1.0);
    svg(|root| {
        let mut chart = frame(root, title, t_max, ymax)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the start of the run")
            .y_desc(y_desc)
            .x_label_formatter(&|v| num(*v))
            .y_label_formatter(&|v| num(*v))
            .light_line_style(BLACK.mix(0.04))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        for (t, label) in mark_labels(marks, t_max) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, 0.0), (t, ymax)],
                    MARK.stroke_width(1),
                )))
                .map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (t, ymax),
                    ("sans-serif", 14).into_font().color(&MARK_TEXT),
                )))
                .map_err(plot_err)?;
        }
        if area {
            chart
                .draw_series(
                    AreaSeries::new(points, 0.0, color.mix(0.2))
                        .border_style(color.stroke_width(2)),
                )
                .map_err(plot_err)?;
        } else {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_err)?;
        }
        Ok(())
    })
}

/// The charts of `r`, each an SVG with a caption.
fn charts(r: &Report) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(h) = r.latency_us.as_ref().filter(|h| !h.is_empty()) {
        let (top, _, tail) = latency_bins(h, 60);
        out.push((
            latency_histogram(h)?,
            format!(
                "{} deliveries. Bins up to p99.9 ({} ms); the {} slower ones are counted in the last bin (max {} ms).",
                h.len(),
                num(top),
                tail,
                num(h.max() as f64 / 1000.0)
            ),
        ));
        out.push((
            latency_percentiles(h)?,
            "Publication to receipt, same clock. The x axis is in nines: each step is ten times rarer."
                .to_owned(),
        ));
    }
    let t_max = r
        .samples
        .last()
        .map(|s| s.t)
        .into_iter()
        .chain(r.marks.iter().map(|m| m.t))
        .fold(0.0, f64::max);
    if r.samples.len() < 2 {
        return Ok(out);
    }
    if r.deliveries {
        let d = rates(&r.samples, RATE_WINDOW_S, |s| Some(s.delivered as f64));
        out.push((
            time_chart(
                "Deliveries per second",
                "deliveries/s",
                (BLUE, d),
                &r.marks,
                t_max,
                true,
            )?,
            "Publications received by all sessions, over a trailing 1 s window.".to_owned(),
        ));
    }
    let sessions: Vec<(f64, f64)> = r.samples.iter().map(|s| (s.t, s.sessions as f64)).collect();
    out.push((
        time_chart(
            "Sessions ready",
            "sessions",
            (GREEN, sessions),
            &r.marks,
            t_max,
            false,
        )?,
        "Sessions set up (connected and subscribed) as the workers report them.".to_owned(),
    ));
    if r.samples.iter().any(|s| s.cpu_s.is_some()) {
        let cpu: Vec<(f64, f64)> = rates(&r.samples, RATE_WINDOW_S, |s| s.cpu_s)
            .into_iter()
            .map(|(t, v)| (t, v * 100.0))
            .collect();
        out.push((
            time_chart(
                "Server CPU",
                "% of one core",
                (ORANGE, cpu),
                &r.marks,
                t_max,
                true,
            )?,
            "utime + stime of the server process from /proc, over a trailing 1 s window (200 % = both cores of this machine)."
                .to_owned(),
        ));
    }
    if r.samples.iter().any(|s| s.rss_kib.is_some()) {
        let rss: Vec<(f64, f64)> = r
            .samples
            .iter()
            .filter_map(|s| s.rss_kib.map(|k| (s.t, k as f64 / 1024.0)))
            .collect();
        out.push((
            time_chart(
                "Server resident memory",
                "RSS, MiB",
                (PURPLE, rss),
                &r.marks,
                t_max,
                false,
            )?,
            "VmRSS of the server process from /proc.".to_owned(),
        ));
    }
    Ok(out)
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #1f2d3d; color: #fff; padding: 18px 28px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 6px 0 0; color: #c9d3de; font-size: 14px; }
main { padding: 20px 28px 28px; max-width: 1400px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 18px; }
.card { background: #fff; border-radius: 6px; padding: 10px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 130px; }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { font-size: 12px; color: #666; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
figure { background: #fff; margin: 0; padding: 8px; border-radius: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #555; padding: 4px 6px 2px; }
.tables { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; margin-top: 18px; }
table { border-collapse: collapse; background: #fff; width: 100%; font-size: 13px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
caption { text-align: left; font-weight: 600; padding: 6px 0; }
td { padding: 4px 10px; border-top: 1px solid #eee; vertical-align: top; }
td:first-child { color: #555; white-space: nowrap; }
ul.notes { font-size: 13px; color: #444; }
footer { font-size: 12px; color: #888; padding: 0 28px 20px; }
";

fn table(out: &mut String, caption: &str, rows: &[(String, String)]) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(out, "<table><caption>{}</caption>", esc(caption));
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</table>\n");
}

/// The report as one HTML page.
///
/// # Errors
/// A chart could not be drawn.
pub fn render(r: &Report) -> Result<String> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>switchboard {} report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header><h1>switchboard {}</h1><p>{}</p></header>\n<main>\n",
        esc(&r.title),
        esc(&r.title),
        esc(&r.subtitle)
    );
    if !r.headline.is_empty() {
        out.push_str("<section class=\"cards\">");
        for (k, v) in &r.headline {
            let _ = write!(
                out,
                "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
                esc(v),
                esc(k)
            );
        }
        out.push_str("</section>\n");
    }
    let charts = charts(r)?;
    if charts.is_empty() {
        out.push_str(
            "<p>No time series was recorded (the run ended before its first sample).</p>\n",
        );
    } else {
        out.push_str("<section class=\"charts\">\n");
        for (svg, caption) in &charts {
            let _ = write!(
                out,
                "<figure>\n{svg}\n<figcaption>{}</figcaption></figure>\n",
                esc(caption)
            );
        }
        out.push_str("</section>\n");
    }
    out.push_str("<section class=\"tables\">\n");
    table(&mut out, "Results", &r.summary);
    table(&mut out, "Parameters", &r.params);
    let marks: Vec<(String, String)> = r
        .marks
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("{} at {:.1} s", i + 1, m.t), m.label.clone()))
        .collect();
    table(&mut out, "Moments (grey lines in the charts)", &marks);
    out.push_str("</section>\n");
    if !r.notes.is_empty() {
        out.push_str("<ul class=\"notes\">");
        for n in &r.notes {
            let _ = write!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(
        out,
        "</main>\n<footer>switchboard {} · bench report · {} samples</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        r.samples.len()
    );
    Ok(out)
}

/// Renders `r` into `path`.
///
/// # Errors
/// A chart could not be drawn, or the file written.
pub fn write(path: &Path, r: &Report) -> Result<()> {
    let html = render(r)?;
    std::fs::write(path, html).with_context(|| format!("cannot write the report {path:?}"))
}

/// `YYYY-MM-DD HH:MM:SS UTC` of the current time (no time-zone database needed).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contents of every SVG `<text>` element.
    fn texts(html: &str) -> Vec<String> {
        html.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_owned())
            })
            .collect()
    }

    fn synthetic() -> Report {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for i in 0..20_000u64 {
            // Mostly 1-3 ms, a tail to 40 ms.
            let v = 1000 + (i * 7919) % 2000 + if i % 500 == 0 { 40_000 } else { 0 };
            h.record(v).unwrap();
        }
        let samples: Vec<Sample> = (0..=80u32)
            .map(|i| {
                let t = f64::from(i) * 0.25;
                Sample {
                    t,
                    sessions: (u64::from(i) * 100).min(2000),
                    delivered: if t > 5.0 {
                        ((t - 5.0) * 4000.0) as u64
                    } else {
                        0
                    },
                    cpu_s: Some(t * 0.3),
                    rss_kib: Some(20_000 + u64::from(i) * 50),
                }
            })
            .collect();
        Report {
            title: "bench fanout".into(),
            subtitle: "2000 ws subscribers <&> 200 publications at 50/s".into(),
            headline: vec![("deliveries/s".into(), "4000".into())],
            params: vec![("--connections".into(), "2000".into())],
            summary: vec![("latency p99".into(), "2.9 ms".into())],
            latency_us: Some(h),
            samples,
            marks: vec![
                Mark {
                    t: 5.0,
                    label: "publishing".into(),
                },
                Mark {
                    t: 19.0,
                    label: "drained".into(),
                },
            ],
            deliveries: true,
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn renders_a_self_contained_page_with_every_chart() {
        let html = render(&synthetic()).unwrap();
        if let Some(dir) = std::env::var_os("BENCH_REPORT_SAMPLE_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("synthetic.html"), &html).unwrap();
        }
        let texts = texts(&html);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        // Latency histogram, percentile curve, deliveries/s, sessions, CPU, RSS.
        assert_eq!(html.matches("<svg").count(), 6, "{html}");
        assert_eq!(html.matches("</svg>").count(), 6);
        for title in [
            "Delivery latency distribution",
            "Delivery latency by percentile",
            "Deliveries per second",
            "Sessions ready",
            "Server CPU",
            "Server resident memory",
        ] {
            assert!(texts.iter().any(|t| t == title), "{title}: {texts:?}");
        }
        // Axis text is drawn as SVG text (no font needed to render it).
        for text in [
            "latency, ms",
            "99%",
            "deliveries/s",
            "% of one core",
            "RSS, MiB",
            "1000",
        ] {
            assert!(texts.iter().any(|t| t == text), "{text}: {texts:?}");
        }
        assert!(html.contains("<rect"), "histogram bars");
        assert!(
            html.contains("<polyline") || html.contains("<path"),
            "lines"
        );
        // Tables, escaped text, nothing fetched from elsewhere.
        assert!(html.contains("<td>--connections</td><td>2000</td>"));
        assert!(html.contains("2000 ws subscribers &lt;&amp;&gt; 200"));
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("@import"));
        assert!(
            !html.contains("NaN") && !html.contains(">inf"),
            "no broken numbers"
        );
    }

    #[test]
    fn a_run_without_server_figures_or_latency_still_renders() {
        let mut r = synthetic();
        r.latency_us = None;
        r.deliveries = false;
        for s in &mut r.samples {
            s.cpu_s = None;
            s.rss_kib = None;
        }
        let html = render(&r).unwrap();
        assert_eq!(html.matches("<svg").count(), 1, "sessions only");
        r.samples.clear();
        let html = render(&r).unwrap();
        assert!(!html.contains("<svg"));
        assert!(html.contains("No time series"));
    }

    #[test]
    fn close_marks_share_a_label() {
        let m = |t: f64| Mark {
            t,
            label: String::new(),
        };
        let l = mark_labels(&[m(0.0), m(4.2), m(4.25), m(8.3), m(8.4)], 10.0);
        let labels: Vec<&str> = l.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(labels, ["1", "2,3", "4,5"]);
    }

    #[test]
    fn nines_and_dates() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        let d = now_utc();
        assert!(
            d.len() == 23 && d.ends_with(" UTC") && d.starts_with("20"),
            "{d}"
        );
    }
}
