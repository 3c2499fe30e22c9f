//! The `--report` file of a run: its figures and three charts, second by
//! second (completed orders and accepted `POST`s, latency percentiles,
//! retries and errors), drawn as SVG. An HTML page holds the figures as
//! text and each chart inline; nothing in it is fetched, run or styled from
//! anywhere else. An SVG file holds the charts under a two-line summary.

use std::path::Path;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Args, Percentiles, Report, Second};

/// What a report file is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Html,
    Svg,
}

impl Kind {
    pub fn of(path: &Path) -> anyhow::Result<Kind> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("html" | "htm") => Ok(Kind::Html),
            Some("svg") => Ok(Kind::Svg),
            _ => anyhow::bail!(
                "--report {}: the file must end in .html, .htm or .svg",
                path.display()
            ),
        }
    }
}

pub fn write(path: &Path, kind: Kind, report: &Report, args: &Args) -> anyhow::Result<()> {
    let text = match kind {
        Kind::Html => page(report, args)?,
        Kind::Svg => image(report, args)?,
    };
    std::fs::write(path, text)?;
    Ok(())
}

const WIDTH: u32 = 960;
const CHART_HEIGHT: u32 = 330;
/// Room on a chart's right for its legend, outside the plot.
const LEGEND_WIDTH: u32 = 200;
const FONT: &str = "sans-serif";
const CAPTION_SIZE: u32 = 19;
const LABEL_SIZE: u32 = 14;
const DESC_SIZE: u32 = 15;
const LEGEND_SIZE: u32 = 15;

const COMPLETED: RGBColor = RGBColor(31, 119, 180);
const ACCEPTED: RGBColor = RGBColor(44, 160, 44);
const RETRIES: RGBColor = RGBColor(255, 127, 14);
const ERRORS: RGBColor = RGBColor(214, 39, 40);
const OUTAGE: RGBColor = RGBColor(255, 232, 217);
const P50: RGBColor = RGBColor(31, 119, 180);
const P90: RGBColor = RGBColor(44, 160, 44);
const P99: RGBColor = RGBColor(255, 127, 14);
const MAX: RGBColor = RGBColor(148, 103, 189);
const GRID: RGBColor = RGBColor(225, 225, 225);
const FAINT_GRID: RGBColor = RGBColor(243, 243, 243);
const TEXT: RGBColor = RGBColor(40, 40, 40);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A chart, drawn into an area of an SVG.
type Draw = fn(&Area, &[Second]) -> anyhow::Result<()>;

const CHARTS: [(&str, Draw); 3] = [
    ("Throughput", throughput),
    ("Latency", latency),
    ("Retries and errors", retries_and_errors),
];

/// Plotters' errors carry the backend's error, which need not be `Sync`.
fn drawing<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

/// One chart as an SVG document of its own.
fn chart_svg(draw: Draw, seconds: &[Second]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, CHART_HEIGHT)).into_drawing_area();
        area.fill(&WHITE).map_err(drawing)?;
        draw(&area, seconds)?;
        area.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The HTML page: the figures, then each chart inline.
fn page(report: &Report, args: &Args) -> anyhow::Result<String> {
    let mut charts = Vec::new();
    for (title, draw) in CHARTS {
        // Inline in HTML, an <svg> needs no namespace; without it the page
        // names no other address at all.
        let svg = chart_svg(draw, &report.seconds)?
            .replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
            .replacen(
                "<svg ",
                &format!(r#"<svg role="img" aria-label="{title}" "#),
                1,
            );
        charts.push((title, svg));
    }
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "agora loadgen: " (report.orders) " orders, " (report.completed) " completed" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "agora loadgen" }
                p.lead { (headline(report)) }
                dl.figures {
                    @for (name, value) in figures(report) {
                        dt { (name) } dd { (value) }
                    }
                }
                @for (title, svg) in &charts {
                    figure {
                        (PreEscaped(svg))
                        figcaption { (caption(title)) }
                    }
                }
                h2 { "Arguments" }
                dl.arguments {
                    @for (name, value) in arguments(args, report) {
                        dt { code { (name) } } dd { (value) }
                    }
                }
                details {
                    summary { "Second by second" }
                    table.seconds {
                        thead {
                            tr {
                                th { "seconds" } th { "accepted" } th { "completed" }
                                th { "cancelled or rejected" } th { "errors" } th { "retries" }
                                th { "p50 ms" } th { "p90 ms" } th { "p99 ms" } th { "max ms" }
                            }
                        }
                        tbody {
                            @for s in &report.seconds {
                                tr {
                                    td { (format!("{:.1}–{:.1}", s.start_secs, s.start_secs + s.secs)) }
                                    td { (s.accepted) } td { (s.completed) }
                                    td { (s.cancelled_or_rejected) } td { (s.errors) } td { (s.retries) }
                                    @match s.latency {
                                        Some(l) => {
                                            td { (format!("{:.1}", l.p50)) } td { (format!("{:.1}", l.p90)) }
                                            td { (format!("{:.1}", l.p99)) } td { (format!("{:.1}", l.max)) }
                                        }
                                        None => { td {} td {} td {} td {} }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(markup.into_string())
}

const STYLE: &str = "\
body{font-family:sans-serif;color:#282828;max-width:980px;margin:1em auto;padding:0 1em;line-height:1.35}\
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.2em 0 .4em}\
p.lead{margin:0 0 .8em}\
dl{display:grid;margin:0 0 1em;gap:.1em .7em}dd{margin:0}dt{color:#555}\
dl.figures{grid-template-columns:repeat(3,max-content 1fr)}\
dl.arguments{grid-template-columns:max-content 1fr}\
table{border-collapse:collapse}\
table.seconds td,table.seconds th{text-align:right;padding:.1em .5em;border-bottom:1px solid #eee}\
figure{margin:0 0 .6em}figure svg{max-width:100%;height:auto;display:block}\
figcaption{color:#555;font-size:.9em}\
details{margin-top:1em}summary{cursor:pointer}";

fn caption(title: &str) -> &'static str {
    match title {
        "Throughput" => {
            "Orders that completed, and POSTs accepted (201), in each second of the run. \
             Shaded seconds had retries: the instance was down, restarting or overloaded."
        }
        "Latency" => {
            "POST to terminal state of the orders that ended in each second (logarithmic \
             scale), from the order's first attempt, so waiting out an outage counts. \
             Gaps are seconds in which no order ended."
        }
        _ => {
            "Requests sent again (connection errors, time-outs, 429 and 5xx answers, a new \
             token after a 401) and orders that failed for good, in each second."
        }
    }
}

fn headline(report: &Report) -> String {
    format!(
        "{} orders: {} completed in {:.2} s = {:.0} completed orders/s; POST→terminal p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} errors, {} retries.",
        report.orders,
        report.completed,
        report.elapsed_secs,
        report.completed_per_sec,
        report.p50_ms,
        report.p90_ms,
        report.p99_ms,
        report.max_ms,
        report.errors,
        report.retries,
    )
}

/// The run's figures, as the JSON on standard output has them.
fn figures(report: &Report) -> Vec<(&'static str, String)> {
    vec![
        ("orders", report.orders.to_string()),
        ("accepted (201)", report.accepted.to_string()),
        ("completed", report.completed.to_string()),
        (
            "cancelled or rejected",
            report.cancelled_or_rejected.to_string(),
        ),
        ("not terminal", report.not_terminal.to_string()),
        ("errors", report.errors.to_string()),
        ("retries", report.retries.to_string()),
        ("signed in again", report.signed_in_again.to_string()),
        ("elapsed", format!("{:.2} s", report.elapsed_secs)),
        (
            "completed orders/s",
            format!("{:.1}", report.completed_per_sec),
        ),
        ("POST→terminal p50", format!("{:.1} ms", report.p50_ms)),
        ("POST→terminal p90", format!("{:.1} ms", report.p90_ms)),
        ("POST→terminal p99", format!("{:.1} ms", report.p99_ms)),
        ("POST→terminal max", format!("{:.1} ms", report.max_ms)),
        (
            "server peak RSS",
            report
                .server_peak_rss_mb
                .map_or_else(|| "not measured".to_owned(), |mb| format!("{mb:.1} MB")),
        ),
    ]
}

fn arguments(args: &Args, report: &Report) -> Vec<(&'static str, String)> {
    let products: Vec<String> = report.products.iter().map(|p| p.to_string()).collect();
    let credentials = match (&args.credentials.token, &args.credentials.email) {
        (Some(_), _) => "a token".to_owned(),
        (None, Some(email)) => format!("signed in as {email}"),
        (None, None) => "the demo admin".to_owned(),
    };
    vec![
        ("--url", args.url.clone()),
        ("--orders", args.orders.to_string()),
        ("--concurrency", args.concurrency.to_string()),
        ("--quantity", args.quantity.to_string()),
        ("--products", args.products.to_string()),
        (
            "--rate",
            args.rate
                .map_or_else(|| "as fast as it goes".to_owned(), |r| r.to_string()),
        ),
        ("--timeout-secs", args.timeout_secs.to_string()),
        ("--customers", args.customers.to_string()),
        (
            "--server-pid",
            args.server_pid
                .map_or_else(|| "none".to_owned(), |p| p.to_string()),
        ),
        ("products made as", credentials),
        ("products ordered", products.join(", ")),
    ]
}

/// The SVG image: a two-line summary above the three charts.
fn image(report: &Report, args: &Args) -> anyhow::Result<String> {
    const HEAD: u32 = 70;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, HEAD + 3 * CHART_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (head, body) = root.split_vertically(HEAD);
        head.draw(&Text::new(
            "agora loadgen",
            (10, 8),
            (FONT, 22).into_font().style(FontStyle::Bold).color(&TEXT),
        ))
        .map_err(drawing)?;
        head.draw(&Text::new(
            headline(report),
            (10, 36),
            (FONT, 14).into_font().color(&TEXT),
        ))
        .map_err(drawing)?;
        head.draw(&Text::new(
            format!(
                "--url {} --orders {} --concurrency {} --products {} --customers {}{}",
                args.url,
                args.orders,
                args.concurrency,
                args.products,
                args.customers,
                args.rate
                    .map(|r| format!(" --rate {r}"))
                    .unwrap_or_default(),
            ),
            (10, 54),
            (FONT, 13).into_font().color(&RGBColor(90, 90, 90)),
        ))
        .map_err(drawing)?;
        for (area, (_, draw)) in body.split_evenly((3, 1)).iter().zip(CHARTS) {
            draw(area, &report.seconds)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The plot and, to its right, the legend's area.
fn split<'a>(area: &Area<'a>) -> (Area<'a>, Area<'a>) {
    let (width, _) = area.dim_in_pixel();
    area.split_horizontally(width.saturating_sub(LEGEND_WIDTH))
}

/// A legend: one line per entry, a swatch (line or box) then its name.
fn legend(area: &Area, entries: &[(&str, RGBColor, Swatch)]) -> anyhow::Result<()> {
    for (i, (name, color, swatch)) in entries.iter().enumerate() {
        let y = 52 + 22 * i as i32;
        match swatch {
            Swatch::Line => area.draw(&PathElement::new(
                vec![(8, y), (32, y)],
                color.stroke_width(3),
            )),
            Swatch::Box => area.draw(&Rectangle::new([(10, y - 6), (30, y + 6)], color.filled())),
        }
        .map_err(drawing)?;
        area.draw(&Text::new(
            *name,
            (40, y - 8),
            (FONT, LEGEND_SIZE).into_font().color(&TEXT),
        ))
        .map_err(drawing)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Swatch {
    Line,
    Box,
}

/// The x axis: the run's length (at least one second).
fn span(seconds: &[Second]) -> f64 {
    seconds
        .last()
        .map_or(1.0, |s| s.start_secs + s.secs)
        .max(1.0)
}

/// The x axis: the run's length.
fn time_axis(seconds: &[Second]) -> std::ops::Range<f64> {
    0f64..span(seconds)
}

/// About as many labelled seconds as the run lasts, up to 12: plotters
/// picks round steps (1, 2, 5, 10 s ...).
fn time_labels(seconds: &[Second]) -> usize {
    (span(seconds).ceil() as usize).clamp(2, 12)
}

/// Each second's `count` per second of its length, at its middle.
fn rates(seconds: &[Second], count: fn(&Second) -> u64) -> impl Iterator<Item = (f64, f64)> + '_ {
    seconds
        .iter()
        .filter(|s| s.secs > 0.0)
        .map(move |s| (s.start_secs + s.secs / 2.0, count(s) as f64 / s.secs))
}

/// The highest rate of `counts` in any second.
fn highest(seconds: &[Second], counts: &[fn(&Second) -> u64]) -> f64 {
    counts
        .iter()
        .flat_map(|count| rates(seconds, *count).map(|(_, rate)| rate))
        .fold(0.0, f64::max)
}

/// Room above the highest value (at least 1).
fn headroom(highest: f64) -> f64 {
    (highest.max(1.0) * 1.1).ceil()
}

fn count_label(v: &f64) -> String {
    trim(*v)
}

/// At most one label per unit up to `top`, at most 11: counts are whole.
fn count_labels(top: f64) -> usize {
    (top as usize + 1).min(11)
}

fn seconds_label(v: &f64) -> String {
    trim(*v)
}

/// A chart of counts per second over the run, from 0 to `top`, its axes
/// drawn: what the throughput and the retries charts share.
fn per_second_chart<'a, 'b>(
    plot: &'a Area<'b>,
    caption: &str,
    seconds: &[Second],
    top: f64,
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(plot)
        .caption(caption, (FONT, CAPTION_SIZE).into_font().color(&TEXT))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(time_axis(seconds), 0f64..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(FAINT_GRID)
        .x_desc("seconds since the start of the run")
        .y_desc("per second")
        .x_labels(time_labels(seconds))
        .x_label_formatter(&seconds_label)
        .y_labels(count_labels(top))
        .y_label_formatter(&count_label)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT))
        .draw()
        .map_err(drawing)?;
    Ok(chart)
}

/// Completed orders and accepted POSTs per second, seconds with retries
/// shaded.
fn throughput(area: &Area, seconds: &[Second]) -> anyhow::Result<()> {
    let (plot, key) = split(area);
    let top = headroom(highest(seconds, &[|s| s.completed, |s| s.accepted]));
    let mut chart = per_second_chart(
        &plot,
        "Completed orders and accepted POSTs per second",
        seconds,
        top,
    )?;
    chart
        .draw_series(seconds.iter().filter(|s| s.retries > 0).map(|s| {
            Rectangle::new(
                [(s.start_secs, 0.0), (s.start_secs + s.secs, top)],
                OUTAGE.filled(),
            )
        }))
        .map_err(drawing)?;
    chart
        .draw_series(LineSeries::new(
            rates(seconds, |s| s.accepted),
            ACCEPTED.stroke_width(2),
        ))
        .map_err(drawing)?;
    chart
        .draw_series(LineSeries::new(
            rates(seconds, |s| s.completed),
            COMPLETED.stroke_width(2),
        ))
        .map_err(drawing)?;
    legend(
        &key,
        &[
            ("completed orders/s", COMPLETED, Swatch::Line),
            ("POSTs accepted/s", ACCEPTED, Swatch::Line),
            ("seconds with retries", OUTAGE, Swatch::Box),
        ],
    )
}

fn ms_label(v: &f64) -> String {
    match *v {
        v if v >= 1000.0 => format!("{} s", trim(v / 1000.0)),
        v => format!("{} ms", trim(v)),
    }
}

/// A number without trailing zeros: 2, 0.5, 1.25.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One of a second's percentiles.
type Percentile = fn(&Percentiles) -> f64;

/// Ticks of a logarithmic axis from `low` to `high`: labelled ones at 1, 2
/// and 5 times a power of ten (only 1 over more than three decades), grid
/// lines at each multiple.
fn log_ticks(low: f64, high: f64) -> (Vec<f64>, Vec<f64>) {
    let labelled: &[f64] = if high / low > 1000.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high {
        for m in 1..10 {
            let v = decade * f64::from(m);
            if (low..=high).contains(&v) {
                light.push(v);
                if labelled.contains(&f64::from(m)) {
                    bold.push(v);
                }
            }
        }
        decade *= 10.0;
    }
    (bold, light)
}

/// p50, p90, p99 and max of POST→terminal per second, on a log scale.
fn latency(area: &Area, seconds: &[Second]) -> anyhow::Result<()> {
    let (plot, key) = split(area);
    let known: Vec<Percentiles> = seconds.iter().filter_map(|s| s.latency).collect();
    let lowest = known.iter().map(|l| l.p50).fold(f64::INFINITY, f64::min);
    let highest = known.iter().map(|l| l.max).fold(0.0, f64::max);
    let (low, high) = if known.is_empty() {
        (1.0, 1000.0)
    } else {
        ((lowest / 1.5).max(0.1), (highest * 1.5).max(lowest * 10.0))
    };
    let (bold, light) = log_ticks(low, high);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "POST → terminal: p50, p90, p99 and max, per second",
            (FONT, CAPTION_SIZE).into_font().color(&TEXT),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            time_axis(seconds),
            (low..high)
                .log_scale()
                .with_key_points(bold)
                .with_light_points(light),
        )
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(FAINT_GRID)
        .x_desc("seconds since the start of the run")
        .y_desc("latency")
        .x_labels(time_labels(seconds))
        .x_label_formatter(&seconds_label)
        .y_label_formatter(&ms_label)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT))
        .draw()
        .map_err(drawing)?;
    let lines: [(&str, RGBColor, Percentile); 4] = [
        ("max", MAX, |l| l.max),
        ("p99", P99, |l| l.p99),
        ("p90", P90, |l| l.p90),
        ("p50", P50, |l| l.p50),
    ];
    for (_, color, value) in lines {
        // One path per run of seconds in which orders ended: a second
        // without any leaves a gap, and a lone second is a dot.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for s in seconds {
            match &s.latency {
                Some(l) => runs
                    .last_mut()
                    .expect("one run at least")
                    .push((s.start_secs + s.secs / 2.0, value(l))),
                None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                None => {}
            }
        }
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            if let [point] = run[..] {
                chart
                    .draw_series(std::iter::once(Circle::new(point, 3, color.filled())))
                    .map_err(drawing)?;
            } else {
                chart
                    .draw_series(LineSeries::new(run, color.stroke_width(2)))
                    .map_err(drawing)?;
            }
        }
    }
    let entries: Vec<(&str, RGBColor, Swatch)> = lines
        .iter()
        .map(|(name, color, _)| (*name, *color, Swatch::Line))
        .collect();
    legend(&key, &entries)
}

/// Retries and failed orders per second, side by side.
fn retries_and_errors(area: &Area, seconds: &[Second]) -> anyhow::Result<()> {
    let (plot, key) = split(area);
    let top = headroom(highest(seconds, &[|s| s.retries, |s| s.errors]));
    let mut chart = per_second_chart(&plot, "Retries and failed orders per second", seconds, top)?;
    let bars = |offset: f64, f: fn(&Second) -> u64, color: RGBColor| {
        seconds
            .iter()
            .filter(move |s| f(s) > 0 && s.secs > 0.0)
            .map(move |s| {
                let x = s.start_secs + offset * s.secs;
                Rectangle::new(
                    [(x, 0.0), (x + 0.4 * s.secs, f(s) as f64 / s.secs)],
                    color.filled(),
                )
            })
    };
    if seconds.iter().all(|s| s.retries == 0 && s.errors == 0) {
        let (width, height) = plot.dim_in_pixel();
        plot.draw(&Text::new(
            "no retries, no errors",
            (width as i32 / 2, height as i32 / 2),
            (FONT, LEGEND_SIZE)
                .into_font()
                .color(&RGBColor(120, 120, 120))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(drawing)?;
    }
    chart
        .draw_series(bars(0.1, |s| s.retries, RETRIES))
        .map_err(drawing)?;
    chart
        .draw_series(bars(0.5, |s| s.errors, ERRORS))
        .map_err(drawing)?;
    legend(
        &key,
        &[
            ("retries/s", RETRIES, Swatch::Box),
            ("failed orders/s", ERRORS, Swatch::Box),
        ],
    )
}
