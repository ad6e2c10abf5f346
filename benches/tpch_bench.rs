//! TPC-H queries (Q1, Q3, Q6 and Q18 by default; `--queries` picks others) through Kiln (embedded, 2 executors, local-directory shuffle), through
//! Kiln on `local_cluster(2)` (2 executor processes over gRPC), and through single-node
//! DataFusion, in the same run on the same Parquet files. The cluster run needs the release
//! `kiln` binary next to this one (`cargo build --release -p kiln --bin kiln`).
//!
//! ```text
//! cargo run --release -p kiln-benches --bin tpch-bench -- [--sf 1] [--dir data/tpch-sf1] [--reps 3] [--queries 1,3,6,18]
//! ```
//!
//! Each (engine, query) runs in its own child process so that peak memory (VmHWM) belongs to
//! that run alone. A child runs the query once to warm up, then `reps` times, and reports the
//! median wall time. The parent prints a table with the ratio Kiln / DataFusion.
//!
//! `--watch` measures what watching a session costs instead: Kiln with its web UI served and
//! its event log written (`kiln-watched`) against Kiln without, in alternating child
//! processes (`--pairs` of each, default 3; the median of their medians), with DataFusion's
//! figure beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use kiln::{Session, ShuffleCompression};
use kiln_benches::{child_stdout, BoxError};
use kiln_tests::tpch;

const QUERIES: [usize; 4] = [1, 3, 6, 18];

struct Args {
    sf: f64,
    dir: PathBuf,
    reps: usize,
    compression: Option<String>,
    child: Option<(String, usize)>,
    queries: Vec<usize>,
    watch: bool,
    pairs: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        sf: 1.0,
        dir: PathBuf::new(),
        reps: 3,
        compression: None,
        child: None,
        queries: QUERIES.to_vec(),
        watch: false,
        pairs: 3,
    };
    let mut dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sf" => args.sf = value()?.parse()?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--reps" => args.reps = value()?.parse()?,
            "--shuffle-compression" => args.compression = Some(value()?),
            "--watch" => args.watch = true,
            "--pairs" => args.pairs = value()?.parse()?,
            "--queries" => {
                args.queries = value()?
                    .split(',')
                    .map(|q| q.trim().trim_start_matches(['q', 'Q']).parse())
                    .collect::<Result<_, _>>()?;
            }
            "--child" => {
                let v = value()?;
                let (engine, q) = v.split_once(':').ok_or("--child takes ENGINE:QUERY")?;
                args.child = Some((engine.to_string(), q.parse()?));
            }
            "--help" | "-h" => {
                println!(
                    "tpch-bench [--sf 1] [--dir data/tpch-sf1] [--reps 3] [--queries 1,3,6,18] [--shuffle-compression none|lz4|zstd] [--watch [--pairs 3]]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    args.dir = dir.unwrap_or_else(|| PathBuf::from(format!("data/tpch-sf{}", args.sf)));
    Ok(args)
}

async fn run_child(
    engine: &str,
    q: usize,
    dir: &Path,
    reps: usize,
    compression: Option<&str>,
) -> Result<(), BoxError> {
    let sql = tpch::query(q).ok_or("no such query")?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut times = Vec::new();
    let mut first = String::new();
    match engine {
        "kiln" | "kiln-cluster" | "kiln-watched" => {
            let mut builder = Session::builder()
                .executors(2)
                .slots_per_executor((cores / 2).max(1));
            if engine == "kiln-cluster" {
                builder = builder.local_cluster(2);
            }
            let logs = tempfile::tempdir()?;
            if engine == "kiln-watched" {
                builder = builder
                    .ui_port(0)
                    .event_log_dir(logs.path().display().to_string());
            }
            if let Some(c) = compression {
                builder = builder.shuffle_compression(match c {
                    "none" => ShuffleCompression::None,
                    "lz4" => ShuffleCompression::Lz4,
                    "zstd" => ShuffleCompression::Zstd,
                    other => return Err(format!("unknown compression {other}").into()),
                });
            }
            let kiln = builder.build().await?;
            for t in tpch::TABLES {
                kiln.register_parquet(t, &format!("{}/", tpch::table_dir(dir, t).display()))
                    .await?;
            }
            for i in 0..=reps {
                let start = Instant::now();
                let batches = kiln.sql(sql).await?.collect().await?;
                if i > 0 {
                    times.push(start.elapsed().as_secs_f64());
                }
                first = kiln_benches::answer_cell(&batches);
            }
        }
        "datafusion" => {
            let ctx =
                SessionContext::new_with_config(SessionConfig::new().with_target_partitions(cores));
            for t in tpch::TABLES {
                ctx.register_parquet(
                    t,
                    &format!("{}/", tpch::table_dir(dir, t).display()),
                    ParquetReadOptions::default(),
                )
                .await?;
            }
            for i in 0..=reps {
                let start = Instant::now();
                let batches = ctx.sql(sql).await?.collect().await?;
                if i > 0 {
                    times.push(start.elapsed().as_secs_f64());
                }
                first = kiln_benches::answer_cell(&batches);
            }
        }
        other => return Err(format!("unknown engine {other}").into()),
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{{\"system\":\"{engine}\",\"workload\":\"tpch-q{q}\",\"seconds\":{median:.4},\"peak_rss_mib\":{:.1},\"first_row\":\"{first}\"}}",
        kiln_tests::peak_rss_mib()
    );
    Ok(())
}

fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}'])?;
    Some(rest[..end].to_string())
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some((engine, q)) = &args.child {
        return runtime.block_on(run_child(
            engine,
            *q,
            &args.dir,
            args.reps,
            args.compression.as_deref(),
        ));
    }

    let start = Instant::now();
    tpch::generate_parquet(&args.dir, args.sf, 4)?;
    eprintln!(
        "data: TPC-H SF{} in {} (ready in {:.1}s)",
        args.sf,
        args.dir.display(),
        start.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe()?;
    let run = |engine: &str, q: usize| -> Result<String, BoxError> {
        let out = child_stdout(
            Command::new(&exe)
                .args(["--child", &format!("{engine}:{q}")])
                .args(["--dir", &args.dir.display().to_string()])
                .args(["--reps", &args.reps.to_string()])
                .args(
                    args.compression
                        .iter()
                        .flat_map(|c| ["--shuffle-compression".to_string(), c.clone()]),
                ),
            &format!("{engine} q{q}"),
        )?;
        let line = out.trim().to_string();
        eprintln!("{line}");
        Ok(line)
    };
    let num = |l: &str, k: &str| {
        field(l, k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    if args.watch {
        println!("| query | DataFusion s | Kiln s | Kiln with UI + event log s | watched / not | answers agree |");
        println!("|---|---|---|---|---|---|");
        for q in args.queries.clone() {
            let df = run("datafusion", q)?;
            let (mut off, mut on) = (Vec::new(), Vec::new());
            let mut agree = true;
            for _ in 0..args.pairs {
                let plain = run("kiln", q)?;
                let watched = run("kiln-watched", q)?;
                agree &= field(&plain, "first_row") == field(&df, "first_row")
                    && field(&watched, "first_row") == field(&df, "first_row");
                off.push(num(&plain, "seconds"));
                on.push(num(&watched, "seconds"));
            }
            let (off, on) = (kiln_benches::median(off), kiln_benches::median(on));
            println!(
                "| Q{q} | {:.3} | {off:.3} | {on:.3} | {:.3}x | {} |",
                num(&df, "seconds"),
                on / off,
                if agree { "yes" } else { "NO" }
            );
        }
        return Ok(());
    }
    println!(
        "| query | DataFusion s | Kiln s | time ratio | DataFusion MiB | Kiln MiB | memory ratio | Kiln local_cluster(2) s | cluster / embedded | answers agree |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for q in args.queries.clone() {
        let mut results = Vec::new();
        for engine in ["datafusion", "kiln", "kiln-cluster"] {
            results.push(run(engine, q)?);
        }
        let (df, kiln, cluster) = (&results[0], &results[1], &results[2]);
        let (df_s, kiln_s) = (num(df, "seconds"), num(kiln, "seconds"));
        let cluster_s = num(cluster, "seconds");
        let (df_m, kiln_m) = (num(df, "peak_rss_mib"), num(kiln, "peak_rss_mib"));
        let agree = field(df, "first_row") == field(kiln, "first_row")
            && field(df, "first_row") == field(cluster, "first_row");
        println!(
            "| Q{q} | {df_s:.3} | {kiln_s:.3} | {:.2}x | {df_m:.0} | {kiln_m:.0} | {:.2}x | {cluster_s:.3} | {:.2}x | {} |",
            kiln_s / df_s,
            kiln_m / df_m,
            cluster_s / kiln_s,
            if agree { "yes" } else { "NO" }
        );
    }
    Ok(())
}
