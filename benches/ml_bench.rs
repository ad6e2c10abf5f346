//! k-means and logistic regression through Kiln (embedded, 2 executors) beside scikit-learn,
//! in the same run on the same data.
//!
//! ```text
//! cargo run --release -p kiln-benches --bin ml-bench -- [--rows 2000000] [--dims 16] [--k 8] [--iters 20] [--km-runs 5]
//! ```
//!
//! The data (seeded Gaussian blobs, plus a label for logistic regression) is written once to
//! `data/ml/` as Parquet for Kiln and as raw little-endian f64 for scikit-learn. Kiln's time per
//! iteration excludes the one-off cache stage (reported on its own line); scikit-learn's
//! excludes loading. The memory-bandwidth floor is the bytes an iteration reads over the read
//! bandwidth measured beside the fit: a parallel sum over as many bytes as the cached features
//! (median of five), run in a child process just before and just after each fit, so that the
//! floor sees the machine as the fit saw it and the child's buffer stays out of the reported
//! peak memory; the floor uses the mean of the two. The k-means fit runs `--km-runs` times in
//! a row (the first allocates the distance bounds, the later ones reuse them), each against
//! its own floor; every fit is printed, and the table gives the median one. `--bandwidth-gbs` (default 29, what
//! `../shared/bench/membw.py` measured on the development machine) gives a second, fixed floor
//! for comparison. The k-means
//! floor is that of a pass that reads the features and 2.5 bytes a row of distance bounds (the
//! steady-state steps of a fit read the bounds and only the rows they cannot settle, so they
//! take less; each round's time is printed); a logistic-regression round reads the features
//! and the label.
//!
//! The last table row runs k-means on the shared bench data (`../shared/bench`, `blobs_medium`:
//! 2M x 16 in 8 overlapping clusters, written with its own generator to
//! `data/ml/blobs_medium.parquet`) with the peers' settings (random initialisation, seed 42,
//! `tol = 0`, 20 iterations) beside scikit-learn's `KMeans` with the same settings.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use kiln::ml::{Columns, KMeans, KMeansInit, LogisticRegression, Precision};
use kiln::Session;
use kiln_benches::{child_stdout, first_rows, Blobs, BoxError};

struct Args {
    rows: usize,
    dims: usize,
    k: usize,
    iters: usize,
    /// k-means fits to time (the first allocates the bounds storage the others reuse).
    km_runs: usize,
    bandwidth_gbs: f64,
    python: PathBuf,
    /// Only measure the read bandwidth over this many f64s and print it (the child process of
    /// [`bandwidth_now`]).
    measure_only: Option<usize>,
    /// Also time k-means fits in a session that serves its web UI and writes its event log,
    /// alternating with fits in the plain one.
    watch: bool,
    /// The peers' bench scripts (`gen_data.py` makes `blobs_medium`); the shared-data k-means
    /// row is skipped when they are not there.
    shared_bench: PathBuf,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        rows: 2_000_000,
        dims: 16,
        k: 8,
        iters: 20,
        km_runs: 5,
        bandwidth_gbs: 29.0,
        python: PathBuf::from(".venv/bin/python"),
        measure_only: None,
        watch: false,
        shared_bench: PathBuf::from("../shared/bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rows" => args.rows = value()?.parse()?,
            "--dims" => args.dims = value()?.parse()?,
            "--k" => args.k = value()?.parse()?,
            "--iters" => args.iters = value()?.parse()?,
            "--km-runs" => args.km_runs = value()?.parse::<usize>()?.max(1),
            "--bandwidth-gbs" => args.bandwidth_gbs = value()?.parse()?,
            "--python" => args.python = PathBuf::from(value()?),
            "--measure-bandwidth" => args.measure_only = Some(value()?.parse()?),
            "--watch" => args.watch = true,
            "--shared-bench" => args.shared_bench = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

/// Read bandwidth in GB/s: the median of five parallel sums over `values` f64s (one thread
/// per core, eight independent sums each so that the adds keep up with memory).
fn read_bandwidth_gbs(values: usize) -> f64 {
    let data: Vec<f64> = (0..values).map(|i| (i % 1024) as f64).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let part = values.div_ceil(threads).max(1);
    let mut seconds: Vec<f64> = (0..6)
        .map(|_| {
            let t = Instant::now();
            let total: f64 = std::thread::scope(|s| {
                let handles: Vec<_> = data
                    .chunks(part)
                    .map(|chunk| {
                        s.spawn(move || {
                            let mut acc = [0.0f64; 8];
                            for x in chunk.chunks_exact(8) {
                                acc.iter_mut().zip(x).for_each(|(a, v)| *a += v);
                            }
                            acc.iter().sum::<f64>()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
            });
            std::hint::black_box(total);
            t.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    seconds.sort_by(f64::total_cmp);
    (values * 8) as f64 / seconds[seconds.len() / 2] / 1e9
}

/// The read bandwidth in GB/s over `values` f64s, measured now in a child process (this
/// program with `--measure-bandwidth`).
fn bandwidth_now(values: usize) -> Result<f64, BoxError> {
    let out = child_stdout(
        Command::new(std::env::current_exe()?).args(["--measure-bandwidth", &values.to_string()]),
        "the bandwidth measurement",
    )?;
    Ok(out.trim().parse()?)
}

/// One timed k-means fit.
struct KmRun {
    ms_per_round: f64,
    kernel_rounds: u64,
    /// Each round's time, formatted.
    round_ms: Vec<String>,
    /// The read bandwidth beside it: the mean of the measurements just before and after.
    gbs: f64,
}

const SKLEARN: &str = r#"
import json, resource, sys, time
import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
path, n, d, k, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = np.fromfile(path, dtype="<f8").reshape(n, d + 1)
x, y = np.ascontiguousarray(data[:, :d]), data[:, d]
init = x[:k].copy()
t = time.perf_counter()
km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(x)
km_s = time.perf_counter() - t
t = time.perf_counter()
lr = LogisticRegression(C=1.0 / (n * 0.01), max_iter=100).fit(x, y)
lr_s = time.perf_counter() - t
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"kmeans_s": km_s, "kmeans_iters": int(km.n_iter_), "peak_mib": peak_mib,
                  "logistic_s": lr_s, "logistic_iters": int(lr.n_iter_[0])}))
"#;

/// Seconds per kernel round of k-means on 1000 rows: the overhead of one iteration.
async fn tiny_round_trip(kiln: &Session) -> Result<f64, BoxError> {
    let tiny = kiln
        .sql("SELECT CAST(value % 17 AS DOUBLE) AS a, CAST(value % 5 AS DOUBLE) AS b FROM generate_series(1, 1000)")
        .await?
        .cache_training(&Columns::new(), false, Precision::F64)
        .await?;
    let rounds = kiln.metrics().kernel_rounds;
    let t = Instant::now();
    tiny.fit(
        KMeans::new(2)
            .init(KMeansInit::Centers(vec![vec![0.0, 0.0], vec![1.0, 1.0]]))
            .tol(0.0)
            .max_iter(200)
            .build()?,
    )
    .await?;
    let per_round = t.elapsed().as_secs_f64() / (kiln.metrics().kernel_rounds - rounds) as f64;
    tiny.unpersist().await?;
    Ok(per_round)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if let Some(values) = args.measure_only {
        println!("{}", read_bandwidth_gbs(values));
        return Ok(());
    }
    let values = args.rows * args.dims;
    let blobs = Blobs {
        rows: args.rows,
        dims: args.dims,
        k: args.k,
    };
    let dir = blobs.write()?;
    let features = blobs.features();

    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .build()
        .await?;
    let df = kiln.read_parquet(&format!("{}/", dir.display())).await?;

    let t = Instant::now();
    let data = df
        .cache_training(
            &Columns::new().features(features.clone()).label("label"),
            true,
            Precision::F64,
        )
        .await?;
    let cache_s = t.elapsed().as_secs_f64();
    let stored = data.stored_bytes().await? as f64;

    // Initial centres: the first k rows, as scikit-learn gets them.
    let init = first_rows(&df, args.k, args.dims).await?;

    // The fits, one after another, each between two bandwidth measurements: the machine's
    // speed drifts, so each fit is set against the bandwidth measured on either side of it.
    let mut gbs = vec![bandwidth_now(values)?];
    let mut km_runs = Vec::with_capacity(args.km_runs);
    let mut km = None;
    for _ in 0..args.km_runs {
        let rounds = kiln.metrics().kernel_rounds;
        let t = Instant::now();
        // Each round's end, for the per-round times.
        let mut round_ends = Vec::new();
        let model = data
            .fit_with_progress(
                KMeans::new(args.k)
                    .init(KMeansInit::Centers(init.clone()))
                    .tol(0.0)
                    .max_iter(args.iters)
                    .build()?,
                |_| round_ends.push(t.elapsed().as_secs_f64()),
            )
            .await?;
        let seconds = t.elapsed().as_secs_f64();
        let round_ms: Vec<String> = round_ends
            .iter()
            .scan(0.0, |last, &end| {
                let ms = (end - *last) * 1e3;
                *last = end;
                Some(format!("{ms:.1}"))
            })
            .collect();
        let kernel_rounds = kiln.metrics().kernel_rounds - rounds;
        gbs.push(bandwidth_now(values)?);
        km_runs.push(KmRun {
            ms_per_round: seconds * 1e3 / kernel_rounds.max(1) as f64,
            kernel_rounds,
            round_ms,
            gbs: (gbs[gbs.len() - 2] + gbs[gbs.len() - 1]) / 2.0,
        });
        km = Some(model);
    }
    let km = km.ok_or("no k-means fit ran")?;
    let gbs_after_km = gbs[gbs.len() - 1];

    let rounds = kiln.metrics().kernel_rounds;
    let t = Instant::now();
    let lr = data
        .fit(
            LogisticRegression::new()
                .reg_param(0.01)
                .standardization(false),
        )
        .await?;
    let lr_s = t.elapsed().as_secs_f64();
    let lr_rounds = kiln.metrics().kernel_rounds - rounds;
    let kiln_peak = kiln_tests::peak_rss_mib();
    let gbs_after_lr = bandwidth_now(values)?;
    let watched = if args.watch {
        Some(watch_overhead(&args, &kiln, &data, &dir, &features, &init).await?)
    } else {
        None
    };
    data.unpersist().await?;

    let shared = shared_blobs(&args, &kiln).await?;

    // Round trip on tiny data: what one iteration costs beyond the kernel, embedded and with
    // the executors in 2 other processes (gRPC on loopback).
    let tiny_per_round = tiny_round_trip(&kiln).await?;
    let cluster = Session::builder().local_cluster(2).build().await?;
    let cluster_per_round = tiny_round_trip(&cluster).await?;
    drop(cluster);

    let out = child_stdout(
        Command::new(&args.python)
            .arg("-c")
            .arg(SKLEARN)
            .arg(dir.join("points.f64"))
            .args([
                args.rows.to_string(),
                args.dims.to_string(),
                args.k.to_string(),
                args.iters.to_string(),
            ]),
        "scikit-learn",
    )?;
    let sk: serde_json::Value = serde_json::from_str(&out)?;
    let f = |k: &str| sk[k].as_f64().unwrap_or(f64::NAN);

    let lr_gbs = (gbs_after_km + gbs_after_lr) / 2.0;
    let features = (args.rows * args.dims * 8) as f64;
    let floor = |bytes: f64, gbs: f64| bytes / (gbs * 1e9) * 1e3;
    // The bounds: a `u16` centre a row and two `f32` a chunk of 16 rows.
    let km_bytes = features + (args.rows * 2 + args.rows.div_ceil(16) * 8) as f64;
    let lr_bytes = features + (args.rows * 8) as f64;
    let lr_floor = floor(lr_bytes, lr_gbs);
    // Per kernel round: the Lloyd iterations plus the final cost pass (scikit-learn's inertia).
    // The fit reported is the median of the runs by its time against its own floor.
    let ratio = |r: &KmRun| r.ms_per_round / floor(km_bytes, r.gbs);
    let mut order: Vec<&KmRun> = km_runs.iter().collect();
    order.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let median = order[order.len() / 2];
    let (km_ms, km_rounds, km_floor) = (
        median.ms_per_round,
        median.kernel_rounds,
        floor(km_bytes, median.gbs),
    );
    let sk_km_ms = f("kmeans_s") * 1e3 / f("kmeans_iters").max(1.0);
    let listed: Vec<String> = gbs.iter().map(|g| format!("{g:.1}")).collect();
    println!(
        "data: {} x {} f64 ({:.0} MB cached), k = {}; read bandwidth (GB/s) before and after each \
         k-means fit: {}; {gbs_after_lr:.1} after the logistic fit",
        args.rows,
        args.dims,
        features / 1e6,
        args.k,
        listed.join(", "),
    );
    println!(
        "floors per iteration: k-means {km_floor:.1} ms beside the median fit ({:.1} ms at a fixed {} GB/s), logistic {lr_floor:.1} ms ({:.1} ms)",
        floor(km_bytes, args.bandwidth_gbs),
        args.bandwidth_gbs,
        floor(lr_bytes, args.bandwidth_gbs)
    );
    println!("Kiln cache stage (Parquet -> dense partitions on 2 executors): {cache_s:.2} s");
    println!(
        "Kiln k-means fits, in order (the first allocates the distance bounds the later ones \
         reuse); rounds in ms each (plain passes until the centres settle, then one pass that \
         reads every row and keeps bounds, then steady-state steps):"
    );
    for (i, r) in km_runs.iter().enumerate() {
        println!(
            "  fit {}: {:.1} ms per round, {:.2}x its floor ({:.1} GB/s); rounds {}",
            i + 1,
            r.ms_per_round,
            ratio(r),
            r.gbs,
            r.round_ms.join(" ")
        );
    }
    let raw = (args.rows * (args.dims + 1) * 8) as f64;
    println!(
        "cached training data: {:.1} MB for {:.1} MB of raw dense features + label ({:.3}x)",
        stored / 1e6,
        raw / 1e6,
        stored / raw
    );
    println!("| workload | Kiln | scikit-learn | Kiln / floor (measured; fixed) |");
    println!("|---|---|---|---|");
    println!(
        "| k-means ms/iteration ({} it, {km_rounds} kernel rounds; Kiln per round, median of {} fits) | {km_ms:.1} | {sk_km_ms:.1} | {:.2}x; {:.2}x |",
        km.iterations(),
        km_runs.len(),
        km_ms / km_floor,
        km_ms / floor(km_bytes, args.bandwidth_gbs)
    );
    let lr_round_ms = lr_s * 1e3 / lr_rounds.max(1) as f64;
    println!(
        "| logistic regression fit s (Kiln {} it / {lr_rounds} rounds, sklearn {} it) | {lr_s:.2} | {:.2} | {:.2}x; {:.2}x per round |",
        lr.total_iterations(),
        f("logistic_iters"),
        f("logistic_s"),
        lr_round_ms / lr_floor,
        lr_round_ms / floor(lr_bytes, args.bandwidth_gbs)
    );
    println!(
        "| round trip on tiny data, ms/round (embedded) | {:.3} | - | - |",
        tiny_per_round * 1e3
    );
    println!(
        "| round trip on tiny data, ms/round (local_cluster(2), gRPC) | {:.3} | - | - |",
        cluster_per_round * 1e3
    );
    if let Some((off, on)) = watched {
        println!(
            "| k-means ms/round with the web UI served and the event log written (median of {} fits alternating with fits without: {off:.1} ms) | {on:.1} | {sk_km_ms:.1} | {:.3}x of without |",
            args.km_runs,
            on / off
        );
    }
    match shared {
        Some(s) => println!(
            "| k-means ms/iteration on the shared bench data (blobs_medium: 2M x 16, 8 overlapping clusters; init random, seed 42, tol 0; Kiln {} it, scikit-learn {} it) | {:.1} | {:.1} | - |",
            s.kiln_iters, s.sk_iters, s.kiln_ms, s.sk_ms
        ),
        None => println!(
            "| k-means on the shared bench data | skipped: no {} | - | - |",
            args.shared_bench.join("gen_data.py").display()
        ),
    }
    println!(
        "| peak memory of the process, MiB (Kiln: cache + both fits; scikit-learn: data + both fits) | {kiln_peak:.0} | {:.0} | - |",
        f("peak_mib")
    );
    Ok(())
}

/// scikit-learn's k-means on the shared bench data, as `../shared/bench/bench_sklearn.py` runs
/// it; prints seconds and iterations as JSON.
const SKLEARN_SHARED: &str = r#"
import json, sys, time
import numpy as np
import pyarrow.parquet as pq
from sklearn.cluster import KMeans
t = pq.read_table(sys.argv[1])
x = np.column_stack([t[f"f{j}"].to_numpy() for j in range(16)])
start = time.perf_counter()
km = KMeans(n_clusters=8, init="random", n_init=1, max_iter=20, tol=0, algorithm="lloyd",
            random_state=42).fit(x)
print(json.dumps({"s": time.perf_counter() - start, "iters": int(km.n_iter_)}))
"#;

/// Writes `blobs_medium` with the shared bench's own generator (same seed, same rows).
const WRITE_SHARED: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import gen_data
gen_data.write(sys.argv[2], *gen_data.blobs(gen_data.SIZES["medium"]))
"#;

/// k-means per iteration on the shared bench data, Kiln and scikit-learn.
struct Shared {
    kiln_ms: f64,
    kiln_iters: usize,
    sk_ms: f64,
    sk_iters: u64,
}

/// k-means on `blobs_medium` of the shared bench (overlapping clusters, so every one of the 20
/// iterations moves the centres), with the peers' settings: k = 8, random initialisation,
/// `tol = 0`, 20 iterations. `None` without the shared bench's generator.
async fn shared_blobs(args: &Args, kiln: &Session) -> Result<Option<Shared>, BoxError> {
    let generator = args.shared_bench.join("gen_data.py");
    if !generator.exists() {
        return Ok(None);
    }
    let path = PathBuf::from("data/ml/blobs_medium.parquet");
    if !path.exists() {
        std::fs::create_dir_all("data/ml")?;
        child_stdout(
            Command::new(&args.python)
                .arg("-c")
                .arg(WRITE_SHARED)
                .arg(&args.shared_bench)
                .arg(&path),
            "writing blobs_medium",
        )?;
    }
    let features: Vec<String> = (0..16).map(|j| format!("f{j}")).collect();
    let data = kiln
        .read_parquet(&path.display().to_string())
        .await?
        .cache_training(&Columns::new().features(features), false, Precision::F64)
        .await?;
    let t = Instant::now();
    let model = data
        .fit(
            KMeans::new(8)
                .init(KMeansInit::Random)
                .seed(42)
                .tol(0.0)
                .max_iter(20)
                .build()?,
        )
        .await?;
    let seconds = t.elapsed().as_secs_f64();
    data.unpersist().await?;
    let out = child_stdout(
        Command::new(&args.python)
            .arg("-c")
            .arg(SKLEARN_SHARED)
            .arg(&path),
        "scikit-learn on blobs_medium",
    )?;
    let sk: serde_json::Value = serde_json::from_str(&out)?;
    let sk_iters = sk["iters"].as_u64().unwrap_or(0);
    Ok(Some(Shared {
        // Per Lloyd iteration: the fit's time over its iterations (the seeding and final cost
        // passes included, as scikit-learn's time includes its own).
        kiln_ms: seconds * 1e3 / model.iterations().max(1) as f64,
        kiln_iters: model.iterations(),
        sk_ms: sk["s"].as_f64().unwrap_or(f64::NAN) * 1e3 / sk_iters.max(1) as f64,
        sk_iters,
    }))
}

/// Milliseconds per kernel round of k-means fits without and with the web UI and the event
/// log: `km_runs` fits in each session, alternating, after one warm-up fit in the watched one
/// (the plain one warmed up in the main runs); the medians.
async fn watch_overhead(
    args: &Args,
    plain_session: &Session,
    plain: &kiln::ml::TrainingData,
    dir: &std::path::Path,
    features: &[String],
    init: &[Vec<f64>],
) -> Result<(f64, f64), BoxError> {
    let logs = tempfile::tempdir()?;
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .ui_port(0)
        .event_log_dir(logs.path().display().to_string())
        .build()
        .await?;
    let df = kiln.read_parquet(&format!("{}/", dir.display())).await?;
    let watched = df
        .cache_training(
            &Columns::new().features(features.to_vec()).label("label"),
            true,
            Precision::F64,
        )
        .await?;
    km_ms_per_round(args, &watched, &kiln, init).await?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..args.km_runs {
        off.push(km_ms_per_round(args, plain, plain_session, init).await?);
        on.push(km_ms_per_round(args, &watched, &kiln, init).await?);
    }
    watched.unpersist().await?;
    Ok((kiln_benches::median(off), kiln_benches::median(on)))
}

/// One k-means fit on `data` (of `session`): milliseconds per kernel round.
async fn km_ms_per_round(
    args: &Args,
    data: &kiln::ml::TrainingData,
    session: &Session,
    init: &[Vec<f64>],
) -> Result<f64, BoxError> {
    let trainer = KMeans::new(args.k)
        .init(KMeansInit::Centers(init.to_vec()))
        .tol(0.0)
        .max_iter(args.iters)
        .build()?;
    let rounds = session.metrics().kernel_rounds;
    let t = Instant::now();
    data.fit(trainer).await?;
    Ok(t.elapsed().as_secs_f64() * 1e3 / (session.metrics().kernel_rounds - rounds).max(1) as f64)
}
