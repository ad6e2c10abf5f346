//! The Python front door's overhead: the same k-means fit through `kiln.ml.KMeans` in Python
//! and through `kiln::ml::KMeans` in Rust, on ml-bench's data.
//!
//! ```text
//! python3 -m venv target/py-bench && target/py-bench/bin/pip install ./python
//! cargo run --release -p kiln-benches --bin py-overhead -- [--rows 2000000] [--dims 16] [--k 8] [--iters 20] [--reps 3] [--fits 5] [--python target/py-bench/bin/python]
//! ```
//!
//! Each front door runs in `--reps` fresh processes (this program again with `--once`, or
//! `benches/py_overhead.py` under `--python`, an interpreter where Kiln's package is installed).
//! A process starts an embedded session (2 executors × 1 slot), reads the Parquet data, takes
//! the first `k` rows as the initial centres, fits once unmeasured, then times `--fits` fits —
//! each caching the features, running the Lloyd iterations and the final cost pass, and
//! dropping the cache — with `tol = 0`. The two kinds of process alternate, and which goes
//! first alternates from round to round, so that drift on a shared machine lands on both.
//! Both must report the same cost (bit for bit: the same engine on the same data).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use kiln::ml::{Columns, Fit, KMeans, KMeansInit};
use kiln::Session;
use kiln_benches::{child_stdout, first_rows, Blobs, BoxError};

struct Args {
    blobs: Blobs,
    iters: usize,
    reps: usize,
    fits: usize,
    python: PathBuf,
    once: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        blobs: Blobs {
            rows: 2_000_000,
            dims: 16,
            k: 8,
        },
        iters: 20,
        reps: 3,
        fits: 5,
        python: PathBuf::from("target/py-bench/bin/python"),
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rows" => args.blobs.rows = value()?.parse()?,
            "--dims" => args.blobs.dims = value()?.parse()?,
            "--k" => args.blobs.k = value()?.parse()?,
            "--iters" => args.iters = value()?.parse()?,
            "--reps" => args.reps = value()?.parse()?,
            "--fits" => args.fits = value()?.parse()?,
            "--python" => args.python = PathBuf::from(value()?),
            "--once" => args.once = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.reps == 0 || args.fits == 0 {
        return Err("--reps and --fits must be at least 1".into());
    }
    Ok(args)
}

/// The small dataset of the fixed-cost measurement (the same query in `py_overhead.py`).
const TINY: &str = "SELECT CAST(value % 17 AS DOUBLE) AS a, CAST(value % 5 AS DOUBLE) AS b FROM generate_series(1, 1000)";
/// Timed fits on [`TINY`] (after five unmeasured).
const TINY_FITS: usize = 50;

/// One fit through the Rust API, as the Python script does it: prints one JSON line.
async fn once(args: &Args) -> Result<(), BoxError> {
    let started = Instant::now();
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .build()
        .await?;
    let start_s = started.elapsed().as_secs_f64();
    let df = kiln
        .read_parquet(&format!("{}/", args.blobs.dir().display()))
        .await?;
    let init = first_rows(&df, args.blobs.k, args.blobs.dims).await?;
    // One fit unmeasured (it faults in the memory the cache then reuses), then `fits` timed.
    let mut fit_s = Vec::with_capacity(args.fits);
    let mut model = None;
    for i in 0..=args.fits {
        let t = Instant::now();
        let fitted = KMeans::new(args.blobs.k)
            .init(KMeansInit::Centers(init.clone()))
            .tol(0.0)
            .max_iter(args.iters)
            .fit_columns(&df, Columns::new().features(args.blobs.features()))
            .await?;
        if i > 0 {
            fit_s.push(t.elapsed().as_secs_f64());
        }
        model = Some(fitted);
    }
    let model = model.ok_or("no fit ran")?;
    // The fixed cost of a call: fits on 1000 rows, where the front door's share is largest.
    let tiny = kiln.sql(TINY).await?;
    let mut tiny_s = Vec::with_capacity(TINY_FITS);
    for i in 0..TINY_FITS + 5 {
        let t = Instant::now();
        KMeans::new(2)
            .init(KMeansInit::Centers(vec![vec![0.0, 0.0], vec![1.0, 1.0]]))
            .tol(0.0)
            .max_iter(20)
            .fit_columns(&tiny, Columns::new().features(["a", "b"]))
            .await?;
        if i >= 5 {
            tiny_s.push(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "start_s": start_s,
            "tiny_s": median(tiny_s),
            "fit_s": fit_s,
            "iterations": model.iterations(),
            "cost": model.cost(),
        })
    );
    Ok(())
}

/// What one measuring process reported.
struct Run {
    start_s: f64,
    tiny_s: f64,
    fit_s: Vec<f64>,
    iterations: u64,
    cost: f64,
}

fn measure(command: &mut Command, what: &str) -> Result<Run, BoxError> {
    let out = child_stdout(command, &format!("the {what} run"))?;
    let line = out
        .lines()
        .last()
        .ok_or_else(|| format!("the {what} run printed nothing"))?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let num = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("the {what} run's report lacks {k}: {line}"))
    };
    let fit_s = v["fit_s"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(serde_json::Value::as_f64)
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| format!("the {what} run's report lacks fit_s: {line}"))?;
    Ok(Run {
        start_s: num("start_s")?,
        tiny_s: num("tiny_s")?,
        fit_s,
        iterations: num("iterations")? as u64,
        cost: num("cost")?,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if !args.once && !args.python.is_file() {
        return Err(format!(
            "no Python at {} (--python): make one with Kiln installed, `python3 -m venv \
             target/py-bench && target/py-bench/bin/pip install ./python`",
            args.python.display()
        )
        .into());
    }
    args.blobs.write()?;
    if args.once {
        return once(&args).await;
    }
    let exe = std::env::current_exe()?;
    let common = [
        "--rows".to_string(),
        args.blobs.rows.to_string(),
        "--dims".to_string(),
        args.blobs.dims.to_string(),
        "--k".to_string(),
        args.blobs.k.to_string(),
        "--iters".to_string(),
        args.iters.to_string(),
        "--fits".to_string(),
        args.fits.to_string(),
    ];
    let rust = || {
        let mut c = Command::new(&exe);
        c.args(&common).arg("--once");
        c
    };
    let python = || {
        let mut c = Command::new(&args.python);
        c.arg("benches/py_overhead.py").args(&common);
        c
    };
    let (mut rs, mut py) = (Vec::new(), Vec::new());
    for rep in 0..args.reps {
        if rep % 2 == 0 {
            rs.push(measure(&mut rust(), "Rust")?);
            py.push(measure(&mut python(), "Python")?);
        } else {
            py.push(measure(&mut python(), "Python")?);
            rs.push(measure(&mut rust(), "Rust")?);
        }
    }
    for (r, p) in rs.iter().zip(&py) {
        if r.cost.to_bits() != p.cost.to_bits() || r.iterations != p.iterations {
            return Err(format!(
                "the fronts disagree: Rust cost {} in {} iterations, Python cost {} in {}",
                r.cost, r.iterations, p.cost, p.iterations
            )
            .into());
        }
    }
    let all = |runs: &[Run]| -> Vec<f64> { runs.iter().flat_map(|r| r.fit_s.clone()).collect() };
    let fastest = |runs: &[Run]| all(runs).into_iter().fold(f64::INFINITY, f64::min);
    let start = |runs: &[Run]| median(runs.iter().map(|r| r.start_s).collect());
    let tiny = |runs: &[Run]| median(runs.iter().map(|r| r.tiny_s).collect());
    let (rust_fit, py_fit) = (median(all(&rs)), median(all(&py)));
    // Each round's ratio of the two processes' medians: their spread says how steady the
    // machine was.
    let mut ratios: Vec<f64> = rs
        .iter()
        .zip(&py)
        .map(|(r, p)| median(p.fit_s.clone()) / median(r.fit_s.clone()))
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "data: {} x {} f64, k = {}, {} Lloyd iterations (cost {:.6e}, the same from both); {} processes per front door, {} timed fits each",
        args.blobs.rows,
        args.blobs.dims,
        args.blobs.k,
        rs[0].iterations,
        rs[0].cost,
        args.reps,
        args.fits
    );
    println!("| front door | k-means fit s, median (fastest) | fit on 1000 rows, ms | session start ms | overhead over Rust, median (fastest) |");
    println!("|---|---|---|---|---|");
    println!(
        "| Rust (`KMeans::fit_columns`) | {rust_fit:.3} ({:.3}) | {:.2} | {:.1} | - |",
        fastest(&rs),
        tiny(&rs) * 1e3,
        start(&rs) * 1e3
    );
    println!(
        "| Python (`kiln.ml.KMeans.fit`) | {py_fit:.3} ({:.3}) | {:.2} | {:.1} (with `import kiln`) | {:+.1}% ({:+.1}%) |",
        fastest(&py),
        tiny(&py) * 1e3,
        start(&py) * 1e3,
        (py_fit / rust_fit - 1.0) * 100.0,
        (fastest(&py) / fastest(&rs) - 1.0) * 100.0
    );
    println!(
        "fixed cost of the Python front door per fit: {:+.2} ms, {:+.2}% of the median 2M-row fit",
        (tiny(&py) - tiny(&rs)) * 1e3,
        (tiny(&py) - tiny(&rs)) / rust_fit * 100.0
    );
    println!(
        "per-round Python / Rust ratios of the processes' medians: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
