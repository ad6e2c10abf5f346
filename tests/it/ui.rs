//! The web UI, `/metrics` and the event log: pages fetched over HTTP from a live session,
//! metrics equal to `Session::metrics()`, a log replayed by `kiln history` to the same jobs,
//! stages and task attempts, and the training report's figures consistent with each other.
//! (The same pages in a real browser: `python/tests/test_ui.py`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::prelude::*;

use crate::sql::kiln_bin;

/// `GET url` (`http://host:port/path`): the status and the body.
pub(crate) fn get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host).expect("connect to the UI");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// The element `<tag id="id" ...>...</tag>` in `html` (tables and SVGs do not nest here).
fn element<'a>(html: &'a str, tag: &str, id: &str) -> &'a str {
    let open = format!("<{tag} id=\"{id}\"");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {html}"));
    let close = format!("</{tag}>");
    let end = html[start..].find(&close).expect("closed") + start + close.len();
    &html[start..end]
}

const JOIN_QUERY: &str = "SELECT o.k, count(*) AS n, sum(l.v) AS s \
    FROM (SELECT value % 500 AS k, value AS id FROM generate_series(1, 20000)) o \
    JOIN (SELECT value % 20000 + 1 AS id, CAST(value % 97 AS DOUBLE) AS v FROM generate_series(1, 40000)) l \
    ON o.id = l.id GROUP BY o.k ORDER BY n DESC, o.k LIMIT 10";

const POINTS: &str = "CREATE TABLE pts AS SELECT CAST(value % 17 AS DOUBLE) AS x, \
    CAST((value * 7) % 23 AS DOUBLE) AS y FROM generate_series(1, 3000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_jobs_stages_tasks_executors_fits_and_models() {
    let logs = tempfile::tempdir().unwrap();
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .memory_limit(1 << 30)
        .broadcast_threshold(0)
        .ui_port(0)
        .event_log_dir(logs.path().to_str().unwrap())
        .build()
        .await
        .unwrap();
    let url = kiln.ui_url().expect("a UI");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    kiln.sql(JOIN_QUERY).await.unwrap().collect().await.unwrap();
    let failed = kiln
        .sql("SELECT CAST(x AS INT) FROM (VALUES ('1'), ('two')) t(x)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    kiln.sql(POINTS).await.unwrap().collect().await.unwrap();
    kiln.sql("TRAIN MODEL km USING kmeans (k = 3, seed = 7, max_iter = 6, tol = 0) AS SELECT x, y FROM pts")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();

    // Jobs: the join (described by its SQL), the failed one, the training's.
    let (status, jobs) = get(&url);
    assert_eq!(status, 200);
    assert!(jobs.contains("JOIN (SELECT value % 20000"), "{jobs}");
    assert!(jobs.contains(r#"<td class="failed">failed</td>"#), "{jobs}");
    assert!(jobs.contains("TRAIN MODEL km"), "{jobs}");
    let first = jobs
        .split("data-job=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .last()
        .unwrap()
        .to_string();

    // The join's job: its stages in the DAG and the table, each with its plan.
    let (status, job) = get(&format!("{url}jobs/{first}"));
    assert_eq!(status, 200);
    let stages = element(&job, "table", "stages")
        .matches("<tr class=\"stage\"")
        .count();
    assert!(stages >= 3, "{job}");
    assert_eq!(
        element(&job, "svg", "dag")
            .matches("class=\"stage\"")
            .count(),
        stages
    );
    assert!(element(&job, "svg", "dag").contains("class=\"edge\""));
    // Every stage's plan carries the metrics its tasks reported.
    assert!(job.contains("HashJoinExec"), "{job}");
    assert_eq!(job.matches("<pre class=\"plan\">").count(), stages);
    assert!(
        job.matches("metrics=[output_rows=").count() >= stages,
        "{job}"
    );
    // A stage: every task's attempt, on the executors, with its rows; the timeline.
    let stage_id = job
        .split("<tr class=\"stage\" data-stage=\"")
        .nth(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .unwrap();
    let (status, stage) = get(&format!("{url}jobs/{first}/stages/{stage_id}"));
    assert_eq!(status, 200);
    let tasks = element(&stage, "table", "tasks");
    assert!(
        tasks.contains("exec-0") || tasks.contains("exec-1"),
        "{tasks}"
    );
    assert_eq!(
        element(&stage, "svg", "timeline")
            .matches("class=\"attempt\"")
            .count(),
        tasks.matches("<tr class=\"task\"").count()
    );

    // The failed job shows why.
    let failed_id = jobs
        .split("<tr class=\"job\" data-job=\"")
        .skip(1)
        .find(|row| row.contains("class=\"failed\""))
        .map(|row| row[..row.find('"').unwrap()].to_string())
        .unwrap();
    let (_, failed_page) = get(&format!("{url}jobs/{failed_id}"));
    assert!(
        element(&failed_page, "pre", "failure").contains("two"),
        "{failed_page}"
    );
    assert!(failed.to_string().contains("two"));

    // Executors: both, with the tasks they ran and the partitions they cache.
    let cached = kiln
        .sql("SELECT x, y FROM pts")
        .await
        .unwrap()
        .cache()
        .await
        .unwrap();
    let (_, executors) = get(&format!("{url}executors"));
    let rows = element(&executors, "table", "executors");
    assert_eq!(rows.matches("<tr class=\"executor\"").count(), 2, "{rows}");
    assert!(rows.contains("in-process"));
    assert_eq!(
        rows.matches("<td class=\"num\">512.0 MiB</td>").count(),
        2,
        "{rows}"
    );
    let cell = |row: &str, from_end: usize| -> String {
        let cells: Vec<&str> = row.split("<td").skip(1).collect();
        let c = cells[cells.len() - from_end];
        c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()].to_string()
    };
    let partitions: u64 = rows
        .split("<tr class=\"executor\"")
        .skip(1)
        .map(|r| cell(r, 2).parse::<u64>().unwrap())
        .sum();
    assert!(partitions >= 1, "{rows}");
    cached.unpersist().await.unwrap();
    let (_, executors) = get(&format!("{url}executors"));
    let rows = element(&executors, "table", "executors");
    assert!(
        rows.split("<tr class=\"executor\"")
            .skip(1)
            .all(|r| cell(r, 2) == "0"),
        "{rows}"
    );

    // Training: the fit, its loss curve with one point per iteration, the split of each
    // iteration and the report.
    let (_, training) = get(&format!("{url}training"));
    assert!(training.contains("kmeans"), "{training}");
    let (_, fit) = get(&format!("{url}training/fit-0"));
    let rounds = element(&fit, "table", "iterations")
        .matches("<tr class=\"iteration\"")
        .count();
    let model = kiln.model("km").unwrap();
    let report = model
        .report()
        .expect("a trained model has a report")
        .clone();
    assert_eq!(rounds, report.rounds);
    assert_eq!(report.iterations, 6);
    assert_eq!(
        element(&fit, "svg", "loss")
            .matches("class=\"point\"")
            .count(),
        report.loss_curve.len()
    );
    assert!(!report.loss_curve.is_empty());
    assert!(fit.contains("communication overhead"), "{fit}");

    // Models: the catalog with the report.
    let (_, models) = get(&format!("{url}models"));
    assert!(element(&models, "table", "models").contains("data-model=\"km\""));
    assert!(models.contains("utilization"), "{models}");

    // Unknown pages are 404s naming what is missing.
    let (status, missing) = get(&format!("{url}jobs/job-99-nope"));
    assert_eq!(status, 404);
    assert!(missing.contains("job-99-nope"));
}

/// The numbers of a Prometheus text exposition: `name{labels} value` lines.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn sample(all: &[(String, f64)], name: &str) -> f64 {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {name} in {all:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_sessions_counters() {
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .broadcast_threshold(0)
        .inject_task_failures(1)
        .ui_port(0)
        .build()
        .await
        .unwrap();
    kiln.sql(JOIN_QUERY).await.unwrap().collect().await.unwrap();
    kiln.sql(POINTS).await.unwrap().collect().await.unwrap();
    kiln.sql("TRAIN MODEL km USING kmeans (k = 3, seed = 7, max_iter = 4) AS SELECT x, y FROM pts")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (status, text) = get(&format!("{}metrics", kiln.ui_url().unwrap()));
    assert_eq!(status, 200);
    let all = samples(&text);
    let m = kiln.metrics();
    assert_eq!(
        sample(&all, "kiln_kernel_rounds_total"),
        m.kernel_rounds as f64
    );
    assert_eq!(
        sample(&all, "kiln_task_retries_total"),
        m.task_retries as f64
    );
    assert_eq!(
        sample(&all, "kiln_shuffle_written_bytes_total"),
        m.bytes_shuffled as f64
    );
    assert_eq!(sample(&all, "kiln_executors_lost_total"), 0.0);
    assert_eq!(sample(&all, "kiln_executors_registered"), 2.0);
    assert!(m.task_retries > 0 && m.kernel_rounds > 0 && m.bytes_shuffled > 0);
    // Every task failed once (injected) and then succeeded: as many failed attempts as good.
    let failed = sample(&all, "kiln_tasks_total{outcome=\"failed\"}");
    let succeeded = sample(&all, "kiln_tasks_total{outcome=\"succeeded\"}");
    assert_eq!(failed, succeeded);
    assert_eq!(
        sample(&all, "kiln_task_duration_seconds_count"),
        failed + succeeded
    );
    assert_eq!(
        sample(&all, "kiln_kernel_round_duration_seconds_count"),
        m.kernel_rounds as f64
    );
    assert!(sample(&all, "kiln_jobs_total{outcome=\"succeeded\"}") >= 3.0);
}

/// Starts `kiln history DIR --port 0` and returns it with its URL.
fn history(dir: &std::path::Path) -> (std::process::Child, String) {
    history_of(dir.to_str().unwrap(), dir)
}

/// Starts `kiln history TARGET --port 0` (a directory or an object-store URL) with `$HOME` at
/// `home`, and returns it with its URL.
pub(crate) fn history_of(target: &str, home: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(kiln_bin())
        .args(["history", target, "--port", "0"])
        .env_remove("KILN_CONFIG")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !line.contains("http://") {
        line.clear();
        assert!(Instant::now() < deadline, "kiln history printed no URL");
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("kiln history ended: {line}");
        }
    }
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_session_with_a_killed_executor_replays_to_the_same_pages() {
    let logs = tempfile::tempdir().unwrap();
    let kiln = Session::builder()
        .local_cluster(3)
        .slots_per_executor(1)
        .broadcast_threshold(0)
        .ui_port(0)
        .event_log_dir(logs.path().to_str().unwrap())
        .build()
        .await
        .unwrap();
    let url = kiln.ui_url().unwrap();
    let pid = kiln.executor_pids()[1];
    let query = async { kiln.sql(crate::cluster::KILL_QUERY).await?.collect().await };
    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while kiln.metrics().bytes_shuffled == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        crate::cluster::kill(pid);
    };
    let (got, ()) = tokio::join!(query, killer);
    got.unwrap();
    kiln.sql("SELECT value % 3, count(*) FROM generate_series(1, 1000) GROUP BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (_, live_jobs) = get(&url);
    let job_ids: Vec<String> = live_jobs
        .split("<tr class=\"job\" data-job=\"")
        .skip(1)
        .map(|row| row[..row.find('"').unwrap()].to_string())
        .collect();
    assert_eq!(job_ids.len(), 2, "{live_jobs}");
    let mut live = Vec::new();
    for job in &job_ids {
        let (_, page) = get(&format!("{url}jobs/{job}"));
        let stages = element(&page, "table", "stages").to_string();
        let mut tasks = Vec::new();
        for stage in page.split("<tr class=\"stage\" data-stage=\"").skip(1) {
            let id = &stage[..stage.find('"').unwrap()];
            let (_, stage_page) = get(&format!("{url}jobs/{job}/stages/{id}"));
            tasks.push(element(&stage_page, "table", "tasks").to_string());
        }
        live.push((job.clone(), stages, tasks));
    }
    let (_, live_executors) = get(&format!("{url}executors"));
    let live_executors = element(&live_executors, "table", "executors").to_string();
    // Heartbeats are heard live only: the same table otherwise.
    assert!(live_executors.contains(" ago</td>"), "{live_executors}");
    let live_executors = without_heartbeats(&live_executors);
    assert!(live_executors.contains(">lost<"), "{live_executors}");
    let session = kiln.id().to_string();
    drop(kiln);
    let files: Vec<String> = std::fs::read_dir(logs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec![format!("{session}.jsonl")]);

    let (mut server, history_url) = history(logs.path());
    let result = std::panic::catch_unwind(|| {
        let (_, list) = get(&history_url);
        assert!(list.contains(&session), "{list}");
        let base = format!("{history_url}s/{session}");
        for (job, stages, tasks) in &live {
            let (status, page) = get(&format!("{base}/jobs/{job}"));
            assert_eq!(status, 200, "{page}");
            assert_eq!(
                element(&page, "table", "stages"),
                stages.replace("href=\"/jobs", &format!("href=\"/s/{session}/jobs"))
            );
            for (stage_tasks, stage) in tasks
                .iter()
                .zip(page.split("<tr class=\"stage\" data-stage=\"").skip(1))
            {
                let id = &stage[..stage.find('"').unwrap()];
                let (_, stage_page) = get(&format!("{base}/jobs/{job}/stages/{id}"));
                assert_eq!(element(&stage_page, "table", "tasks"), stage_tasks);
            }
        }
        let (_, executors) = get(&format!("{base}/executors"));
        assert_eq!(element(&executors, "table", "executors"), live_executors);
    });
    let _ = server.kill();
    let _ = server.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn history_names_a_bad_log_line() {
    let dir = tempfile::tempdir().unwrap();
    // `kiln history` over a directory holding one log of `text`: its exit code and stderr.
    let history_of_log = |text: &str| {
        std::fs::write(dir.path().join("kiln-0123456789ab.jsonl"), text).unwrap();
        let out = Command::new(kiln_bin())
            .args(["history", dir.path().to_str().unwrap(), "--port", "0"])
            .env_remove("KILN_CONFIG")
            .env("HOME", dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let started = |version: u32| {
        format!("{{\"time\":1.0,\"event\":\"session_started\",\"session\":\"kiln-0123456789ab\",\"version\":{version}}}\n")
    };
    let (code, stderr) = history_of_log(&format!("{}not json\n", started(1)));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("kiln-0123456789ab.jsonl:2"), "{stderr}");
    let (code, stderr) = history_of_log(&started(99));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("version 99"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_off_loopback_needs_a_token() {
    let e = Session::builder()
        .executors(1)
        .ui_port(0)
        .ui_host("0.0.0.0")
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("kiln.ui.host"), "{e}");
    let e = Session::builder()
        .executors(1)
        .ui_port(0)
        .ui_host("localhost:80")
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an IP address"), "{e}");
}

/// The training report of a k-means fit of `partitions` partitions on `kiln`.
async fn report(kiln: &Session, partitions: usize) -> kiln_ml::TrainingReport {
    let batches = kiln
        .sql("SELECT CAST(value % 101 AS DOUBLE) AS x, CAST((value * 7) % 103 AS DOUBLE) AS y, CAST((value * 13) % 107 AS DOUBLE) AS z FROM generate_series(1, 400000)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let each = all.num_rows().div_ceil(partitions);
    let parts: Vec<_> = (0..partitions)
        .map(|p| all.slice(p * each, each.min(all.num_rows() - p * each)))
        .collect();
    // One batch per partition (as many as the session has slots).
    let points = kiln.from_batches(all.schema(), parts).unwrap();
    let (_, report) = kiln::ml::KMeans::new(8)
        .seed(3)
        .max_iter(15)
        .tol(0.0)
        .fit_reported(&points, kiln::ml::Columns::new())
        .await
        .unwrap();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_training_report_adds_up() {
    // One executor with two slots: one partition keeps one slot busy, two keep both.
    let kiln = Session::builder()
        .executors(1)
        .slots_per_executor(2)
        .build()
        .await
        .unwrap();
    let one = report(&kiln, 1).await;
    let two = report(&kiln, 2).await;
    for r in [&one, &two] {
        assert_eq!(r.iterations, 15, "{r:?}");
        // Seeding rounds come first; every Lloyd iteration after them reports its cost.
        assert!(r.rounds > r.iterations, "{r:?}");
        assert!(r.loss_curve.len() >= r.iterations, "{r:?}");
        assert_eq!(r.rows, 400_000);
        let sum = r.compute_seconds + r.overhead_seconds;
        assert!(
            (sum - r.training_seconds).abs() <= 0.10 * r.training_seconds,
            "compute {} + overhead {} vs wall {}",
            r.compute_seconds,
            r.overhead_seconds,
            r.training_seconds
        );
        assert!(
            r.utilization_pct > 0.0 && r.utilization_pct <= 100.0,
            "{r:?}"
        );
        assert!(r.bytes_per_iteration > 0.0);
        assert_eq!(r.slots, 2);
        assert!(
            r.rows_per_second.iter().all(|(_, rate)| *rate > 0.0),
            "{r:?}"
        );
    }
    assert!(
        two.utilization_pct > one.utilization_pct,
        "two busy slots {:.1} % vs one {:.1} %",
        two.utilization_pct,
        one.utilization_pct
    );

    // Across processes, the partials cross the network: more overhead than embedded.
    let embedded = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .build()
        .await
        .unwrap();
    let local = Session::builder()
        .local_cluster(2)
        .slots_per_executor(1)
        .build()
        .await
        .unwrap();
    let e = report(&embedded, 2).await;
    let l = report(&local, 2).await;
    assert_eq!(l.rows_per_second.len(), 2, "{l:?}");
    assert!(
        l.communication_overhead_pct > e.communication_overhead_pct,
        "local cluster {:.2} % vs embedded {:.2} %",
        l.communication_overhead_pct,
        e.communication_overhead_pct
    );
}

/// Whether headless Chromium and its driver are installed (`./scripts/test.sh` installs
/// them from Debian's packages).
fn browser_installed() -> bool {
    ["chromium", "chromedriver"].iter().all(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_opens_every_page_after_a_tpch_query_and_a_kmeans_train() {
    if !browser_installed() {
        eprintln!("skipped: no chromium and chromedriver (./scripts/test.sh installs them)");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    kiln_tests::tpch::generate_parquet(data.path(), 0.01, 2).unwrap();
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .broadcast_threshold(0)
        .ui_port(0)
        .build()
        .await
        .unwrap();
    crate::tpch::register_kiln(&kiln, data.path()).await;
    kiln.sql(kiln_tests::tpch::query(3).unwrap())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    kiln.sql("SELECT CAST(x AS INT) FROM (VALUES ('1'), ('two')) t(x)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    kiln.sql("TRAIN MODEL segments USING kmeans (k = 4, seed = 7, max_iter = 8) AS SELECT c_acctbal AS balance, CAST(c_nationkey AS DOUBLE) AS nation FROM customer")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let url = kiln.ui_url().unwrap();
    let (_, jobs) = get(&url);
    let ids: Vec<String> = jobs
        .split("<tr class=\"job\" data-job=\"")
        .skip(1)
        .map(|row| row[..row.find('"').unwrap()].to_string())
        .collect();
    // Newest first: the query's job is the oldest, the failed one next.
    let (query_job, failed_job) = (&ids[ids.len() - 1], &ids[ids.len() - 2]);
    let (_, page) = get(&format!("{url}jobs/{query_job}"));
    let stages = element(&page, "table", "stages")
        .matches("<tr class=\"stage\"")
        .count();
    assert!(stages >= 4, "Q3 runs in several stages: {page}");
    let report = kiln.model("segments").unwrap().report().unwrap().clone();
    let shots = tempfile::tempdir().unwrap();
    let out = kiln_tests::reference::reference(
        "browse_ui.py",
        &serde_json::json!({
            "url": url,
            "screenshots": shots.path(),
            "job": query_job,
            "stages": stages,
            "failed_job": failed_job,
            "executors": 2,
            "fit": "fit-0",
            "points": report.loss_curve.len(),
            "model": "segments",
        }),
    );
    let saved = out["screenshots"].as_array().unwrap();
    assert_eq!(saved.len(), 8, "{out}");
    for shot in saved {
        let bytes = std::fs::read(shot.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{shot}");
    }
    eprintln!("screenshots: {}", shots.path().display());
    if let Ok(keep) = std::env::var("KILN_UI_SCREENSHOTS") {
        for shot in saved {
            let from = std::path::PathBuf::from(shot.as_str().unwrap());
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(
                &from,
                std::path::Path::new(&keep).join(from.file_name().unwrap()),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_every_stage_of_a_distributed_query() {
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .broadcast_threshold(0)
        .build()
        .await
        .unwrap();
    let batches = kiln
        .sql(&format!("EXPLAIN ANALYZE {JOIN_QUERY}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let stages = text.matches("Stage ").count();
    assert!(stages >= 4, "{text}");
    // The scans, the join and the aggregation ran on executors; their rows are counted.
    assert!(text.contains("LazyMemoryExec"), "{text}");
    assert!(text.contains("HashJoinExec"), "{text}");
    assert!(text.contains("mode=Partial"), "{text}");
    assert!(text.contains("output_rows=20000"), "{text}");
    assert!(text.contains("output_rows=40000"), "{text}");
    assert!(text.contains("10 rows in"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_serves_its_own_metrics() {
    const TOKEN: &str = "executor-metrics-token-7c1";
    let child: std::sync::Arc<std::sync::Mutex<Option<std::process::Child>>> = Default::default();
    let started = std::sync::Arc::clone(&child);
    let kiln = Session::builder()
        .listen("127.0.0.1:0".parse().unwrap(), 1)
        .auth_token(TOKEN)
        .unwrap()
        .ui_port(0)
        .on_listen(move |addr| {
            let c = Command::new(kiln_bin())
                .args([
                    "executor",
                    "--driver",
                    &format!("http://{addr}"),
                    "--id",
                    "m",
                ])
                .args(["--slots", "2", "--metrics-port", "0"])
                .env(kiln::AUTH_TOKEN_ENV, TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            *started.lock().unwrap() = Some(c);
        })
        .build()
        .await
        .unwrap();
    let mut c = child.lock().unwrap().take().unwrap();
    let result = async {
        let mut stderr = BufReader::new(c.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("metrics at http://") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "no metrics line");
        }
        let url = line[line.find("http://").unwrap()..].trim().to_string();
        kiln.sql(POINTS).await.unwrap().collect().await.unwrap();
        kiln.sql(
            "TRAIN MODEL km USING kmeans (k = 2, seed = 1, max_iter = 3) AS SELECT x, y FROM pts",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let (status, text) = get(&url);
        assert_eq!(status, 200);
        let all = samples(&text);
        assert_eq!(
            sample(&all, "kiln_executor_kernel_rounds_total"),
            kiln.metrics().kernel_rounds as f64
        );
        assert!(
            sample(&all, "kiln_executor_tasks_succeeded_total") >= 2.0,
            "{text}"
        );
        assert!(
            sample(&all, "kiln_executor_kernel_seconds_total") > 0.0,
            "{text}"
        );
        // The driver's executors page shows where it connected from.
        let (_, page) = get(&format!("{}executors", kiln.ui_url().unwrap()));
        assert!(page.contains("127.0.0.1:"), "{page}");
    }
    .await;
    let _ = c.kill();
    let _ = c.wait();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_set_puts_the_models_quality_in_its_report() {
    let kiln = Session::builder().executors(2).build().await.unwrap();
    for (name, cut) in [
        ("train_rows", "value % 5 <> 0"),
        ("holdout", "value % 5 = 0"),
    ] {
        kiln.sql(&format!(
            "CREATE TABLE {name} AS SELECT CAST(value % 10 AS DOUBLE) AS x, \
             CAST((value * 7) % 13 AS DOUBLE) AS z, CAST(value % 10 > 4 AS DOUBLE) AS label \
             FROM generate_series(1, 2000) WHERE {cut}"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    }
    let rows = kiln
        .sql("EXPLAIN ANALYZE TRAIN MODEL churn USING logistic_regression (max_iter = 30, validation = 'holdout') AS SELECT x, z, label FROM train_rows")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string();
    assert!(text.contains("validation accuracy"), "{text}");
    assert!(text.contains("validation roc_auc"), "{text}");
    let report = kiln.model("churn").unwrap().report().unwrap().clone();
    let accuracy = report
        .validation
        .iter()
        .find(|(m, _)| m == "accuracy")
        .map(|(_, v)| *v)
        .unwrap();
    // The same figure EVALUATE gives on the held-out rows.
    let evaluated = kiln
        .sql("SELECT accuracy FROM EVALUATE(MODEL churn, (SELECT * FROM holdout))")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let expected = evaluated[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(accuracy, expected);
    assert!(accuracy > 0.9, "{report:?}");
    // A query works as well as a table; anything else is refused by name.
    kiln.sql("TRAIN MODEL r USING linear_regression (validation = 'SELECT * FROM holdout') AS SELECT x, z, label FROM train_rows")
        .await
        .unwrap();
    let r = kiln.model("r").unwrap().report().unwrap().clone();
    assert!(r.validation.iter().any(|(m, _)| m == "rmse"), "{r:?}");
    // The report travels with the model's files (metadata.json's training_report).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn").display().to_string();
    kiln.save_model(&kiln.model("churn").unwrap(), &path)
        .await
        .unwrap();
    let loaded = kiln.load_model(&path).await.unwrap();
    assert_eq!(loaded.report(), Some(&report));
    let e = kiln
        .sql("TRAIN MODEL bad USING kmeans (k = 2, validation = 3) AS SELECT x, z FROM train_rows")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("validation"), "{e}");
}

/// `table` with each "… ago" cell (a live executor's last heartbeat) shown as "-".
fn without_heartbeats(table: &str) -> String {
    let mut out = String::new();
    let mut rest = table;
    while let Some(end) = rest.find(" ago</td>") {
        let start = rest[..end].rfind('>').unwrap() + 1;
        out.push_str(&rest[..start]);
        out.push('-');
        rest = &rest[end + " ago".len()..];
    }
    out.push_str(rest);
    out
}
