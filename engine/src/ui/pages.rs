//! The UI's pages as server-rendered HTML: jobs, a job (its stage DAG and stages), a stage
//! (its tasks and their timeline), executors, training runs, a fit (its loss curve and
//! per-iteration split) and models. Each takes the session's [`State`] and the prefix its
//! links start with (`""` live, `/s/<session>` in `kiln history`).

use std::fmt::Write;

pub(crate) use super::html::escape;
use super::svg;
use super::ModelRow;
use crate::status::{FitView, JobView, State};

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn secs(s: f64) -> String {
    if s < 0.01 {
        format!("{:.2} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// A whole page: the navigation, a heading and `body`.
pub(crate) fn layout(state: &State, base: &str, title: &str, body: &str) -> String {
    let live = if state.ended.is_some() {
        "finished"
    } else {
        "running"
    };
    // A running session's pages reload themselves every 2 s (no script).
    let refresh = if state.ended.is_none() {
        r#"<meta http-equiv="refresh" content="2">"#
    } else {
        ""
    };
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>{title} · Kiln</title>
<style>
body {{ font-family: sans-serif; margin: 0; color: #222; }}
nav {{ background: #2c3e50; padding: 8px 16px; }}
nav a {{ color: #ecf0f1; margin-right: 18px; text-decoration: none; font-weight: bold; }}
nav span {{ color: #bdc3c7; float: right; }}
main {{ padding: 12px 16px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; vertical-align: top; }}
th {{ background: #f4f6f7; }}
td.num {{ text-align: right; }}
pre {{ background: #f8f9f9; padding: 8px; font-size: 12px; overflow-x: auto; }}
.failure, .failed {{ color: #c0392b; }}
.succeeded {{ color: #1e8449; }}
.running {{ color: #b9770e; }}
</style></head>
<body><nav><a href="{home}">Jobs</a><a href="{base}/executors">Executors</a><a href="{base}/training">Training</a><a href="{base}/models">Models</a><a href="{base}/metrics">Metrics</a><span>Kiln {kiln} · session {session} ({mode}, {live})</span></nav>
<main><h1>{title}</h1>
{body}
</main></body></html>"##,
        title = escape(title),
        home = if base.is_empty() { "/" } else { base },
        kiln = escape(&state.kiln),
        session = escape(&state.session),
        mode = escape(&state.mode),
    )
}

/// The jobs, newest first.
pub(crate) fn jobs(state: &State, base: &str) -> String {
    let mut body = String::from(
        r#"<table id="jobs"><tr><th>Job</th><th>Description</th><th>Status</th><th>Stages</th><th>Tasks</th><th>Duration</th></tr>"#,
    );
    for j in state.jobs.iter().rev() {
        let done = j.stages.iter().filter(|s| s.finished.is_some()).count();
        let tasks: usize = j.stages.iter().map(|s| s.tasks_done()).sum();
        let planned: usize = j.stages.iter().map(|s| s.tasks).sum();
        let _ = write!(
            body,
            r#"<tr class="job" data-job="{id}"><td><a href="{base}/jobs/{id}">{id}</a></td><td>{desc}</td><td class="{status}">{status}</td><td class="num stages">{done}/{stages}</td><td class="num">{tasks}/{planned}</td><td class="num">{duration}</td></tr>"#,
            id = escape(&j.id),
            desc = escape(&truncate(&j.description, 160)),
            status = j.status(),
            stages = j.stages_planned,
            duration = secs(j.seconds.unwrap_or(state.last - j.started)),
        );
    }
    body.push_str("</table>");
    if state.jobs.is_empty() {
        body.push_str("<p>No jobs yet.</p>");
    }
    layout(state, base, "Jobs", &body)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max).collect();
    t.push('…');
    t
}

/// One job: its failure, its stage DAG and its stages with their plans.
pub(crate) fn job(state: &State, base: &str, j: &JobView) -> String {
    let mut body = format!(
        r#"<p>Status: <span id="status" class="{status}">{status}</span> · {n} stages · {duration}</p><pre id="description">{desc}</pre>"#,
        status = j.status(),
        n = j.stages_planned,
        duration = secs(j.seconds.unwrap_or(state.last - j.started)),
        desc = escape(&j.description),
    );
    if let Some(e) = &j.error {
        let _ = write!(
            body,
            r#"<h2>Failure</h2><pre id="failure" class="failure">{}</pre>"#,
            escape(e)
        );
    }
    body.push_str("<h2>Stages</h2>");
    body.push_str(&svg::dag(&j.stages, |s| {
        format!("{base}/jobs/{}/stages/{s}", j.id)
    }));
    body.push_str(
        r#"<table id="stages"><tr><th>Stage</th><th>Reads</th><th>Tasks</th><th>Attempts</th><th>Failed</th><th>Rows in</th><th>Shuffle read</th><th>Rows out</th><th>Bytes out</th><th>Spilled</th><th>Time</th></tr>"#,
    );
    for s in &j.stages {
        let (rows, out) = s.output();
        let failed = s.attempts.iter().filter(|a| a.failure.is_some()).count();
        let parents: Vec<String> = s.parents.iter().map(u32::to_string).collect();
        let (rows_in, shuffle_read) = s
            .parents
            .iter()
            .filter_map(|p| j.stage(*p))
            .map(|p| p.output())
            .fold((0, 0), |(r, b), (pr, pb)| (r + pr, b + pb));
        let rows_in = if s.parents.is_empty() {
            s.leaf_rows()
        } else {
            rows_in
        };
        let spilled = s.metric("spilled_bytes");
        let _ = write!(
            body,
            r#"<tr class="stage" data-stage="{id}"><td><a href="{base}/jobs/{job}/stages/{id}">{id}</a></td><td>{parents}</td><td class="num">{done}/{tasks}</td><td class="num">{attempts}</td><td class="num">{failed}</td><td class="num">{rows_in}</td><td class="num">{read}</td><td class="num">{rows}</td><td class="num">{out}</td><td class="num">{spill}</td><td class="num">{time}</td></tr>"#,
            read = bytes(shuffle_read),
            spill = bytes(spilled),
            id = s.id,
            job = escape(&j.id),
            parents = parents.join(", "),
            done = s.tasks_done(),
            tasks = s.tasks,
            attempts = s.attempts.len(),
            out = bytes(out),
            time = secs(s.seconds(state.last)),
        );
    }
    body.push_str("</table><h2>Plans with metrics</h2>");
    for s in &j.stages {
        let _ = write!(
            body,
            r#"<h3>Stage {}</h3><pre class="plan">{}</pre>"#,
            s.id,
            escape(&s.plan_text())
        );
    }
    layout(state, base, &format!("Job {}", j.id), &body)
}

/// One stage: its plan, its task attempts and their timeline.
pub(crate) fn stage(state: &State, base: &str, j: &JobView, stage: u32) -> Option<String> {
    let s = j.stage(stage)?;
    let (rows, out) = s.output();
    let mut body = format!(
        r#"<p>Job <a href="{base}/jobs/{job}">{job}</a> · {done}/{tasks} tasks · {rows} rows · {out} · {time}</p><pre class="plan">{plan}</pre><h2>Timeline</h2>{timeline}"#,
        job = escape(&j.id),
        done = s.tasks_done(),
        tasks = s.tasks,
        out = bytes(out),
        time = secs(s.seconds(state.last)),
        plan = escape(&s.plan_text()),
        timeline = svg::timeline(&s.attempts),
    );
    body.push_str(
        r#"<h2>Tasks</h2><table id="tasks"><tr><th>Task</th><th>Attempt</th><th>Executor</th><th>Duration</th><th>Rows</th><th>Bytes</th><th>Failure</th></tr>"#,
    );
    for a in &s.attempts {
        let _ = write!(
            body,
            r#"<tr class="task"><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="failure">{}</td></tr>"#,
            a.partition,
            a.attempt,
            escape(&a.executor),
            secs(a.seconds),
            a.rows,
            bytes(a.bytes),
            escape(a.failure.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</table>");
    Some(layout(
        state,
        base,
        &format!("Job {} stage {stage}", j.id),
        &body,
    ))
}

/// The executors.
pub(crate) fn executors(state: &State, base: &str) -> String {
    let mut body = String::from(
        r#"<table id="executors"><tr><th>Executor</th><th>Address</th><th>Slots</th><th>Memory limit</th><th>Last heartbeat</th><th>State</th><th>Rejoined</th><th>Tasks done</th><th>Tasks failed</th><th>Task time</th><th>Kernel time</th><th>Kernel rows</th><th>Cached partitions</th><th>Cached bytes</th></tr>"#,
    );
    for e in &state.executors {
        let _ = write!(
            body,
            r#"<tr class="executor" data-executor="{id}"><td>{id}</td><td>{addr}</td><td class="num">{slots}</td><td class="num">{memory}</td><td class="num">{heard}</td><td class="{class}">{st}</td><td class="num">{rejoined}</td><td class="num">{done}</td><td class="num">{failed}</td><td class="num">{tt}</td><td class="num">{kt}</td><td class="num">{kr}</td><td class="num">{cp}</td><td class="num">{cb}</td></tr>"#,
            id = escape(&e.id),
            addr = escape(&e.address),
            slots = e.slots,
            memory = e.memory_limit.map(bytes).unwrap_or_else(|| "none".into()),
            heard = e
                .heard
                .map(|s| format!("{} ago", secs(s)))
                .unwrap_or_else(|| "-".into()),
            class = if e.lost.is_some() {
                "failed"
            } else {
                "succeeded"
            },
            st = if e.lost.is_some() { "lost" } else { "active" },
            rejoined = e.rejoined,
            done = e.tasks_done,
            failed = e.tasks_failed,
            tt = secs(e.task_seconds),
            kt = secs(e.kernel_seconds),
            kr = e.kernel_rows,
            cp = e.cached.iter().map(|c| c.1).sum::<u64>(),
            cb = bytes(e.cached.iter().map(|c| c.2).sum()),
        );
    }
    body.push_str("</table>");
    layout(state, base, "Executors", &body)
}

/// The fits.
pub(crate) fn training(state: &State, base: &str) -> String {
    let mut body = String::from(
        r#"<table id="fits"><tr><th>Fit</th><th>Algorithm</th><th>Rows</th><th>Partitions</th><th>Iterations</th><th>Final loss</th><th>Status</th><th>Duration</th></tr>"#,
    );
    for f in state.fits.iter().rev() {
        let status = f.status();
        let _ = write!(
            body,
            r#"<tr class="fit" data-fit="{id}"><td><a href="{base}/training/{id}">{id}</a></td><td>{alg}</td><td class="num">{rows}</td><td class="num">{parts}</td><td class="num">{its}/{max}</td><td class="num">{loss}</td><td class="{status}">{status}</td><td class="num">{dur}</td></tr>"#,
            id = escape(&f.id),
            alg = escape(&f.algorithm),
            rows = f.rows,
            parts = f.partitions,
            its = f.iterations.last().map_or(0, |i| i.iteration),
            max = f.max_iter,
            loss = f
                .iterations
                .iter()
                .rev()
                .find_map(|i| i.loss)
                .map(|l| format!("{l:.6}"))
                .unwrap_or_default(),
            dur = secs(f.seconds.unwrap_or(state.last - f.started)),
        );
    }
    body.push_str("</table>");
    if state.fits.is_empty() {
        body.push_str("<p>No fits yet.</p>");
    }
    layout(state, base, "Training", &body)
}

/// Rows of a training report as a table.
pub(crate) fn report_table(rows: &[(String, String)]) -> String {
    let mut t = String::from(r#"<table class="report"><tr><th>Figure</th><th>Value</th></tr>"#);
    for (k, v) in rows {
        let _ = write!(t, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    t.push_str("</table>");
    t
}

/// One fit: its loss curve, the split of each iteration's time, its report.
pub(crate) fn fit(state: &State, base: &str, f: &FitView) -> String {
    let points: Vec<(f64, f64)> = f
        .iterations
        .iter()
        .filter_map(|i| i.loss.map(|l| (i.round as f64, l)))
        .collect();
    let mut body = format!(
        r#"<p>{alg} on {rows} rows in {parts} partitions (dataset {ds})</p>"#,
        alg = escape(&f.algorithm),
        rows = f.rows,
        parts = f.partitions,
        ds = escape(&f.dataset),
    );
    if let Some(e) = &f.error {
        let _ = write!(
            body,
            r#"<pre id="failure" class="failure">{}</pre>"#,
            escape(e)
        );
    }
    body.push_str("<h2>Loss</h2>");
    body.push_str(&svg::line_chart("loss", &points, "kernel round", "loss"));
    body.push_str(
        r#"<h2>Iterations</h2><table id="iterations"><tr><th>Round</th><th>Iteration</th><th>Loss</th><th>Round time</th><th>Kernel compute</th><th>Serialization + network</th><th>Driver merge</th><th>Update</th><th>Bytes</th></tr>"#,
    );
    for i in &f.iterations {
        let _ = write!(
            body,
            r#"<tr class="iteration"><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            i.round,
            i.iteration,
            i.loss.map(|l| format!("{l:.6}")).unwrap_or_default(),
            secs(i.seconds),
            secs(i.compute),
            secs(i.network()),
            secs(i.merge),
            secs(i.update),
            bytes(i.bytes),
        );
    }
    body.push_str("</table>");
    if let Some(r) = &f.report {
        body.push_str("<h2>Report</h2>");
        body.push_str(&report_table(&r.rows()));
    }
    layout(state, base, &format!("Fit {}", f.id), &body)
}

/// The model catalog, each model with its report.
pub(crate) fn models(state: &State, base: &str, models: &[ModelRow]) -> String {
    let mut body = String::from(
        r#"<table id="models"><tr><th>Model</th><th>Algorithm</th><th>Features</th><th>Label</th><th>Parameters</th></tr>"#,
    );
    for m in models {
        let _ = write!(
            body,
            r##"<tr class="model" data-model="{name}"><td><a href="#{name}">{name}</a></td><td>{alg}</td><td>{features}</td><td>{label}</td><td><code>{params}</code></td></tr>"##,
            name = escape(&m.name),
            alg = escape(&m.algorithm),
            features = escape(&m.features.join(", ")),
            label = escape(&m.label),
            params = escape(&m.params),
        );
    }
    body.push_str("</table>");
    if models.is_empty() {
        body.push_str("<p>No models.</p>");
    }
    for m in models {
        let _ = write!(body, r#"<h2 id="{0}">{0}</h2>"#, escape(&m.name));
        match &m.report {
            Some(rows) => body.push_str(&report_table(rows)),
            None => body.push_str(
                "<p>No training report (a model built from its parts, or saved without one).</p>",
            ),
        }
    }
    layout(state, base, "Models", &body)
}

/// The sessions of `kiln history`.
pub(crate) fn sessions(list: &[State]) -> String {
    let mut body = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Kiln history</title><style>body{font-family:sans-serif;margin:16px} td,th{border:1px solid #ccc;padding:3px 8px} table{border-collapse:collapse}</style></head><body><h1>Kiln history</h1><table id="sessions"><tr><th>Session</th><th>Mode</th><th>Jobs</th><th>Fits</th><th>State</th></tr>"#,
    );
    for s in list {
        let _ = write!(
            body,
            r#"<tr class="session"><td><a href="/s/{id}">{id}</a></td><td>{mode}</td><td class="num">{jobs}</td><td class="num">{fits}</td><td>{st}</td></tr>"#,
            id = escape(&s.session),
            mode = escape(&s.mode),
            jobs = s.jobs.len(),
            fits = s.fits.len(),
            st = if s.ended.is_some() {
                "finished"
            } else {
                "incomplete"
            },
        );
    }
    body.push_str("</table></body></html>");
    body
}
