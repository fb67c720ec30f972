//! The SVG timeline, written by hand: one row per iteration, one coloured
//! span per record, on a shared time axis.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::{Kind, Ms, Record};

/// How [`render_svg_with`] draws.
#[derive(Clone, Debug)]
pub struct SvgOptions {
    /// Picture width in pixels (default 1200).
    pub width: u32,
    /// A callback, timeout or handler at least this long is drawn red and
    /// labelled with its duration and call site (default 10 ms).
    pub blocking: Duration,
    /// At most this many iterations are drawn, the latest ones (default 400).
    pub max_rows: usize,
    /// A title above the picture.
    pub title: String,
}

impl Default for SvgOptions {
    fn default() -> SvgOptions {
        SvgOptions {
            width: 1200,
            blocking: Duration::from_millis(10),
            max_rows: 400,
            title: "squall IOLoop timeline".to_owned(),
        }
    }
}

const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const ROW: f64 = 16.0;
const BAR: f64 = 11.0;
const STEP_BAR: f64 = 4.0;
const MIN_WIDTH: f64 = 1.5;
const BLOCKING_COLOR: &str = "#d62728";

fn color(kind: &Kind) -> &'static str {
    match kind {
        Kind::Callback => "#1f77b4",
        Kind::Timeout => "#ff7f0e",
        Kind::Handler { .. } => "#2ca02c",
        Kind::Remote => "#9467bd",
        Kind::Poll { .. } => "#d0d0d0",
        Kind::Step => "#17becf",
    }
}

/// `records` as an SVG timeline with the default [`SvgOptions`].
pub fn render_svg(records: &[Record]) -> String {
    render_svg_with(records, &SvgOptions::default())
}

/// `records` as an SVG timeline: one row per iteration (latest at the
/// bottom), time running left to right on one axis for all rows, a span per
/// record coloured by [`Kind`], runner steps as thin bars under the span that
/// ran them, blocking spans red and labelled, a legend at the foot. Each
/// span's tooltip is its text line.
pub fn render_svg_with(records: &[Record], options: &SvgOptions) -> String {
    let width = f64::from(options.width.max(300));
    // Iterations, in order, keeping the latest `max_rows`.
    let mut rows: BTreeMap<u64, usize> = BTreeMap::new();
    for r in records {
        rows.entry(r.iteration).or_insert(0);
    }
    let hidden = rows.len().saturating_sub(options.max_rows);
    let shown: Vec<u64> = rows.keys().copied().skip(hidden).collect();
    for (i, it) in shown.iter().enumerate() {
        rows.insert(*it, i);
    }
    let first_shown = shown.first().copied().unwrap_or(0);
    let visible: Vec<&Record> = records
        .iter()
        .filter(|r| r.iteration >= first_shown)
        .collect();

    let t0 = visible.iter().map(|r| r.start).min().unwrap_or_default();
    let t1 = visible.iter().map(|r| r.end()).max().unwrap_or_default();
    let span_ns = (t1 - t0).as_nanos().max(1) as f64;
    let plot = width - LEFT - RIGHT;
    let x_of = |t: Duration| LEFT + (t.saturating_sub(t0)).as_nanos() as f64 / span_ns * plot;

    let nrows = shown.len().max(1) as f64;
    let plot_bottom = TOP + nrows * ROW;
    let height = plot_bottom + 70.0;

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"monospace\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        w = width,
        h = height
    );
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(&options.title)
    );
    let mut subtitle = format!(
        "{} records, {} iterations, {} span",
        visible.len(),
        shown.len(),
        Ms(t1 - t0)
    );
    if hidden > 0 {
        let _ = write!(subtitle, " ({hidden} earlier iterations not shown)");
    }
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"32\" fill=\"#555\">{}</text>",
        escape(&subtitle)
    );

    // Time axis: ticks at a round step, grid lines through every row.
    let step = tick_step(t1 - t0);
    let mut t = Duration::ZERO;
    while t <= t1 - t0 {
        let x = x_of(t0 + t);
        let anchor = if t.is_zero() { "start" } else { "middle" };
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{plot_bottom}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>",
            tick_label(t, step),
            y0 = TOP - 6.0,
            ty = TOP - 9.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"end\" fill=\"#555\">iteration</text>",
        x = LEFT - 6.0,
        y = TOP - 9.0
    );

    // Row labels and zebra stripes.
    for (i, it) in shown.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        if i % 2 == 1 {
            let _ = writeln!(
                s,
                "<rect x=\"0\" y=\"{y}\" width=\"{width}\" height=\"{ROW}\" fill=\"#f7f7f7\"/>"
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\" fill=\"#555\">#{it}</text>",
            x = LEFT - 6.0,
            ty = y + BAR
        );
    }

    // Spans: polls first (underneath), then user code, then steps, then labels.
    let mut labels = String::new();
    let order = |r: &&Record| match r.kind {
        Kind::Poll { .. } => 0,
        Kind::Step => 2,
        _ => 1,
    };
    let mut sorted = visible.clone();
    sorted.sort_by_key(order);
    for r in sorted {
        let row = rows[&r.iteration];
        let y = TOP + row as f64 * ROW + 1.0;
        let x = x_of(r.start);
        let w = (x_of(r.end()) - x).max(MIN_WIDTH);
        let blocking =
            r.kind.is_user_code() && r.kind != Kind::Step && r.duration >= options.blocking;
        let fill = if blocking {
            BLOCKING_COLOR
        } else {
            color(&r.kind)
        };
        let (y, h) = if r.kind == Kind::Step {
            (y + BAR - STEP_BAR, STEP_BAR)
        } else {
            (y, BAR)
        };
        let _ = writeln!(
            s,
            "<rect x=\"{x:.2}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{h}\" fill=\"{fill}\">\
             <title>{}</title></rect>",
            escape(&r.to_string())
        );
        if blocking {
            let text = format!(
                "{} {} blocked the loop: {}",
                r.kind.label(),
                Ms(r.duration),
                r.origin()
            );
            // About 6.6 px per character at 11 px monospace.
            let text_w = text.len() as f64 * 6.6;
            let ty = y + BAR - 2.0;
            if w >= text_w + 8.0 {
                let _ = writeln!(
                    labels,
                    "<text x=\"{:.1}\" y=\"{ty:.1}\" fill=\"white\" font-weight=\"bold\">{}</text>",
                    x + 4.0,
                    escape(&text)
                );
            } else if x + w + 6.0 + text_w <= width {
                let _ = writeln!(
                    labels,
                    "<text x=\"{:.1}\" y=\"{ty:.1}\" fill=\"{BLOCKING_COLOR}\" font-weight=\"bold\">{}</text>",
                    x + w + 4.0,
                    escape(&text)
                );
            } else {
                let _ = writeln!(
                    labels,
                    "<text x=\"{:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"{BLOCKING_COLOR}\" \
                     font-weight=\"bold\">{}</text>",
                    (x - 4.0).max(LEFT + text_w),
                    escape(&text)
                );
            }
        }
    }
    s.push_str(&labels);

    // Legend.
    let legend: [(&str, &str); 7] = [
        (color(&Kind::Callback), "callback"),
        (color(&Kind::Timeout), "timeout"),
        (
            color(&Kind::Handler {
                fd: 0,
                events: crate::Events::NONE,
            }),
            "fd handler",
        ),
        (color(&Kind::Remote), "remote callback"),
        (color(&Kind::Step), "runner step"),
        (
            color(&Kind::Poll {
                timeout: None,
                events: 0,
            }),
            "poll (waiting)",
        ),
        (BLOCKING_COLOR, "blocking"),
    ];
    let ly = plot_bottom + 26.0;
    let mut lx = LEFT;
    for (fill, name) in legend {
        let name = if fill == BLOCKING_COLOR {
            format!("{name} (\u{2265} {:?})", options.blocking)
        } else {
            name.to_owned()
        };
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"{y}\" width=\"12\" height=\"{BAR}\" fill=\"{fill}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{}</text>",
            escape(&name),
            y = ly - BAR + 2.0,
            tx = lx + 16.0,
            ty = ly
        );
        lx += 16.0 + name.chars().count() as f64 * 6.6 + 18.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"{y}\" fill=\"#555\">time since tracing began, on the loop's clock; \
         hover a span for its details</text>",
        y = ly + 22.0
    );
    s.push_str("</svg>\n");
    s
}

/// A round tick step (1, 2 or 5 times a power of ten) giving 5 to 10 ticks.
fn tick_step(total: Duration) -> Duration {
    let total = total.as_nanos().max(1);
    let mut step: u128 = 1;
    loop {
        for m in [1, 2, 5] {
            if total / (step * m) <= 10 {
                return Duration::from_nanos(u64::try_from(step * m).unwrap_or(u64::MAX));
            }
        }
        step *= 10;
    }
}

fn tick_label(t: Duration, step: Duration) -> String {
    if step >= Duration::from_millis(1) {
        format!("{} ms", t.as_millis())
    } else if step >= Duration::from_micros(1) {
        format!("{} \u{b5}s", t.as_micros())
    } else {
        format!("{} ns", t.as_nanos())
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            tick_step(Duration::from_millis(95)),
            Duration::from_millis(10)
        );
        assert_eq!(
            tick_step(Duration::from_millis(150)),
            Duration::from_millis(20)
        );
        assert_eq!(
            tick_step(Duration::from_micros(7)),
            Duration::from_micros(1)
        );
        assert_eq!(
            tick_label(Duration::from_millis(40), Duration::from_millis(10)),
            "40 ms"
        );
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }

    #[test]
    fn blocking_span_is_red_and_labelled() {
        let rec = |it, start_ms, dur_ms, kind| Record {
            iteration: it,
            start: Duration::from_millis(start_ms),
            duration: Duration::from_millis(dur_ms),
            kind,
            name: "demo::<T>::{{closure}}",
            site: None,
        };
        let svg = render_svg(&[
            rec(1, 0, 1, Kind::Callback),
            rec(1, 1, 50, Kind::Timeout),
            rec(
                2,
                51,
                5,
                Kind::Poll {
                    timeout: None,
                    events: 1,
                },
            ),
        ]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(
            svg.contains("timeout 50.000ms blocked the loop: demo::&lt;T&gt;"),
            "{svg}"
        );
        assert_eq!(
            svg.matches(&format!("fill=\"{BLOCKING_COLOR}\"><title>"))
                .count(),
            1
        );
        assert!(svg.contains(">#1<") && svg.contains(">#2<"));
        assert!(!svg.contains("{{closure}}"));
    }

    #[test]
    fn only_the_latest_rows_are_drawn() {
        let records: Vec<Record> = (1..=10)
            .map(|it| Record {
                iteration: it,
                start: Duration::from_millis(it),
                duration: Duration::from_micros(10),
                kind: Kind::Callback,
                name: "",
                site: None,
            })
            .collect();
        let options = SvgOptions {
            max_rows: 3,
            ..SvgOptions::default()
        };
        let svg = render_svg_with(&records, &options);
        assert!(svg.contains(">#8<") && svg.contains(">#10<") && !svg.contains(">#7<"));
        assert!(svg.contains("7 earlier iterations not shown"));
    }
}
