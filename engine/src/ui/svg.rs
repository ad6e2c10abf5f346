//! The UI's pictures, drawn as SVG text: a line chart (a fit's loss curve), the stage DAG and
//! a task timeline. No script runs in the browser; every shape carries a `<title>` tooltip.

use std::fmt::Write;

use super::html::escape;
use crate::status::{AttemptView, StageView};

const FONT: &str = r#"font-family="sans-serif" font-size="11""#;

/// A line chart of `points` (x, y), one `<circle class="point">` per point.
pub(crate) fn line_chart(id: &str, points: &[(f64, f64)], x_label: &str, y_label: &str) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 300.0, 70.0, 40.0, 15.0, 20.0);
    let mut svg = format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
    );
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (x0, x1) = bounds(finite.iter().map(|p| p.0));
    let (y0, y1) = bounds(finite.iter().map(|p| p.1));
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let sy = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - bottom - top);
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        w - left - right,
        h - bottom - top
    );
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" {FONT}>{}</text>"##,
            left - 4.0,
            sy(y) + 4.0,
            short(y)
        );
        let x = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" {FONT}>{}</text>"##,
            sx(x),
            h - bottom + 14.0,
            short(x)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" {FONT}>{}</text><text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle" {FONT}>{}</text>"##,
        left + (w - left - right) / 2.0,
        h - 6.0,
        escape(x_label),
        top + (h - bottom - top) / 2.0,
        top + (h - bottom - top) / 2.0,
        escape(y_label)
    );
    if !finite.is_empty() {
        let path: Vec<String> = finite
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline class="line" fill="none" stroke="#c0392b" stroke-width="2" points="{}"/>"##,
            path.join(" ")
        );
    }
    for (x, y) in &finite {
        let _ = write!(
            svg,
            r##"<circle class="point" cx="{:.1}" cy="{:.1}" r="3" fill="#c0392b"><title>{} {}: {} {}</title></circle>"##,
            sx(*x),
            sy(*y),
            escape(x_label),
            short(*x),
            escape(y_label),
            y
        );
    }
    svg.push_str("</svg>");
    svg
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < f64::EPSILON * lo.abs().max(1.0) {
        return (lo - 0.5, hi + 0.5);
    }
    (lo, hi)
}

fn short(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 100_000.0) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// The stage DAG: a box per stage (links to its page), columns by depth, arrows from parents.
pub(crate) fn dag(stages: &[StageView], link: impl Fn(u32) -> String) -> String {
    let depth_of = |id: u32| -> usize {
        fn depth(stages: &[StageView], id: u32, seen: usize) -> usize {
            let Some(s) = stages.iter().find(|s| s.id == id) else {
                return 0;
            };
            if seen > stages.len() {
                return 0;
            }
            s.parents
                .iter()
                .map(|p| depth(stages, *p, seen + 1) + 1)
                .max()
                .unwrap_or(0)
        }
        depth(stages, id, 0)
    };
    let mut columns: Vec<Vec<u32>> = Vec::new();
    for s in stages {
        let d = depth_of(s.id);
        if columns.len() <= d {
            columns.resize(d + 1, Vec::new());
        }
        columns[d].push(s.id);
    }
    let (bw, bh, gx, gy) = (130.0, 44.0, 60.0, 16.0);
    let rows = columns.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let w = columns.len().max(1) as f64 * (bw + gx) + 20.0;
    let h = rows as f64 * (bh + gy) + 20.0;
    let place = |id: u32| -> (f64, f64) {
        for (c, col) in columns.iter().enumerate() {
            if let Some(r) = col.iter().position(|s| *s == id) {
                return (10.0 + c as f64 * (bw + gx), 10.0 + r as f64 * (bh + gy));
            }
        }
        (0.0, 0.0)
    };
    let mut svg = format!(
        r##"<svg id="dag" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##
    );
    for s in stages {
        let (x, y) = place(s.id);
        for p in &s.parents {
            let (px, py) = place(*p);
            let _ = write!(
                svg,
                r##"<line class="edge" x1="{}" y1="{}" x2="{x}" y2="{}" stroke="#555" marker-end="url(#arrow)"/>"##,
                px + bw,
                py + bh / 2.0,
                y + bh / 2.0
            );
        }
    }
    for s in stages {
        let (x, y) = place(s.id);
        let fill = match (s.finished, s.attempts.iter().any(|a| a.failure.is_some())) {
            (Some(_), _) => "#d5f5e3",
            (None, true) => "#fadbd8",
            (None, false) => "#fcf3cf",
        };
        let _ = write!(
            svg,
            r##"<a href="{}"><g class="stage" data-stage="{}"><rect x="{x}" y="{y}" width="{bw}" height="{bh}" rx="5" fill="{fill}" stroke="#555"/><text x="{}" y="{}" text-anchor="middle" {FONT}>stage {}</text><text x="{}" y="{}" text-anchor="middle" {FONT}>{}/{} tasks</text><title>{}</title></g></a>"##,
            escape(&link(s.id)),
            s.id,
            x + bw / 2.0,
            y + 18.0,
            s.id,
            x + bw / 2.0,
            y + 34.0,
            s.tasks_done(),
            s.tasks,
            escape(s.plan.lines().next().unwrap_or_default())
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A task timeline: a row per executor, a bar per attempt (red when it failed).
pub(crate) fn timeline(attempts: &[AttemptView]) -> String {
    let mut executors: Vec<&str> = attempts.iter().map(|a| a.executor.as_str()).collect();
    executors.sort_unstable();
    executors.dedup();
    let t0 = attempts
        .iter()
        .map(|a| a.started)
        .fold(f64::INFINITY, f64::min);
    let t1 = attempts
        .iter()
        .map(|a| a.started + a.seconds)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if t0.is_finite() && t1 > t0 {
        t1 - t0
    } else {
        1.0
    };
    let (w, left, row) = (720.0, 90.0, 26.0);
    let h = executors.len().max(1) as f64 * row + 30.0;
    let sx = |t: f64| left + (t - t0) / span * (w - left - 10.0);
    let mut svg = format!(
        r##"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"##
    );
    for (i, e) in executors.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<text x="4" y="{}" {FONT}>{}</text>"##,
            i as f64 * row + 17.0,
            escape(e)
        );
    }
    for a in attempts {
        let r = executors.iter().position(|e| *e == a.executor).unwrap_or(0);
        let x = sx(a.started);
        let width = (sx(a.started + a.seconds) - x).max(1.0);
        let fill = if a.failure.is_some() {
            "#e74c3c"
        } else {
            "#5dade2"
        };
        let _ = write!(
            svg,
            r##"<rect class="attempt" x="{x:.1}" y="{}" width="{width:.1}" height="{}" fill="{fill}" stroke="#fff"><title>task {} attempt {}: {:.3} s{}</title></rect>"##,
            r as f64 * row + 4.0,
            row - 8.0,
            a.partition,
            a.attempt,
            a.seconds,
            a.failure
                .as_deref()
                .map(|f| format!(" — {}", escape(f)))
                .unwrap_or_default()
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{left}" y="{}" {FONT}>0 s</text><text x="{}" y="{}" text-anchor="end" {FONT}>{:.3} s</text></svg>"##,
        h - 6.0,
        w - 10.0,
        h - 6.0,
        span
    );
    svg
}
