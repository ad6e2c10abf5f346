//! The Python front door's overhead: the same k-means fit through `kiln.ml.KMeans` in Python
//! and through `kiln::ml::KMeans` in Rust, on ml-bench's data.
//!
//! ```text
//! python3 -m venv target/py-bench && target/py-bench/bin/pip install ./python
//! cargo run --release -p kiln-benches --bin py-overhead -- [--rows 2000000] [--dims 16] [--k 8] [--iters 20] [--reps 5] [--python target/py-bench/bin/python]
//! ```
//!
//! Every measurement is a fresh process (this program again with `--once`, or
//! `benches/py_overhead.py` under `--python`, an interpreter where Kiln's package is installed):
//! it starts an embedded session (2 executors × 1 slot), reads the Parquet data, takes the
//! first `k` rows as the initial centres, and times one fit — caching the features, the Lloyd
//! iterations, the final cost pass, dropping the cache — with `tol = 0`. The two kinds of
//! process alternate, and which goes first alternates from round to round, so that drift on a
//! shared machine lands on both. Both must report the same cost (bit for bit: the same engine
//! on the same data).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use kiln::ml::{Columns, Fit, KMeans, KMeansInit};
use kiln::Session;
use kiln_benches::{first_rows, Blobs, BoxError};

struct Args {
    blobs: Blobs,
    iters: usize,
    reps: usize,
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
        reps: 5,
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
            "--python" => args.python = PathBuf::from(value()?),
            "--once" => args.once = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(args)
}

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
    let t = Instant::now();
    let model = KMeans::new(args.blobs.k)
        .init(KMeansInit::Centers(init))
        .tol(0.0)
        .max_iter(args.iters)
        .fit_columns(&df, Columns::new().features(args.blobs.features()))
        .await?;
    let fit_s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "start_s": start_s,
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
    fit_s: f64,
    iterations: u64,
    cost: f64,
}

fn measure(command: &mut Command, what: &str) -> Result<Run, BoxError> {
    let out = command.output()?;
    if !out.status.success() {
        return Err(format!(
            "the {what} run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line
        .lines()
        .last()
        .ok_or_else(|| format!("the {what} run printed nothing"))?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let num = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("the {what} run's report lacks {k}: {line}"))
    };
    Ok(Run {
        start_s: num("start_s")?,
        fit_s: num("fit_s")?,
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
    // One unmeasured run of each warms the page cache and the interpreter's bytecode cache.
    measure(&mut rust(), "Rust")?;
    measure(&mut python(), "Python")?;
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
    let fit = |runs: &[Run]| median(runs.iter().map(|r| r.fit_s).collect());
    let start = |runs: &[Run]| median(runs.iter().map(|r| r.start_s).collect());
    let (rust_fit, py_fit) = (fit(&rs), fit(&py));
    // The per-round ratios: the middle one says how steady the machine was.
    let mut ratios: Vec<f64> = rs.iter().zip(&py).map(|(r, p)| p.fit_s / r.fit_s).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "data: {} x {} f64, k = {}, {} Lloyd iterations (cost {:.6e}, the same from both); medians of {} fresh processes each",
        args.blobs.rows,
        args.blobs.dims,
        args.blobs.k,
        rs[0].iterations,
        rs[0].cost,
        args.reps
    );
    println!("| front door | k-means fit s | session start ms | overhead over Rust |");
    println!("|---|---|---|---|");
    println!(
        "| Rust (`KMeans::fit_columns`) | {rust_fit:.3} | {:.1} | - |",
        start(&rs) * 1e3
    );
    println!(
        "| Python (`kiln.ml.KMeans.fit`) | {py_fit:.3} | {:.1} (with `import kiln`) | {:+.1}% |",
        start(&py) * 1e3,
        (py_fit / rust_fit - 1.0) * 100.0
    );
    println!(
        "per-round Python / Rust fit ratios: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
