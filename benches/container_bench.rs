//! Kiln on a cluster of containers beside embedded Kiln and single-node DataFusion: TPC-H
//! Q1, Q3 and Q6 and a k-means `TRAIN MODEL`, in one run, on the same data.
//!
//! ```text
//! cargo build --release -p kiln --bin kiln      # the binary the image is built from
//! cargo run --release -p kiln-benches --bin container-bench -- [--sf 1] [--reps 3] [--bin target/release/kiln]
//! ```
//!
//! - Containers: the `kiln` image (`deploy/image/build.sh` from `--bin`), three executor
//!   containers (2 slots, 2 GiB each) on a private Docker network with SeaweedFS (S3, SigV4
//!   checked) holding the data, the shuffle and the cache; the driver is this process, which
//!   the executors dial at the network's gateway address (a driver outside the cluster, as in
//!   Spark's client mode), so its metrics are at hand.
//! - Embedded Kiln: 3 in-process executors × 2 slots (the containers' shape), shuffle through a
//!   local temporary directory, the same files read from local disk.
//! - DataFusion: `SessionContext` with `target_partitions` = cores, the same local files.
//!
//! Reported: median wall time of `--reps` runs after a warm-up, the bytes the cluster run
//! shuffled (Kiln's metric), the bytes the executor containers sent and received (Docker's
//! counters), the image's size and the time from `docker run` to a registered executor.
//! Kiln does not yet time its network waits by themselves; "containers − embedded" is the
//! whole price of distribution here (the object store in another container, gRPC, three
//! processes on two cores).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use kiln::Session;
use kiln_benches::{median, time_runs, Blobs, BoxError};
use kiln_tests::containers::{self, docker, docker_ok};
use kiln_tests::tpch;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const QUERIES: [usize; 3] = [1, 3, 6];
const EXECUTORS: usize = 3;
const SLOTS: usize = 2;
const TOKEN: &str = "kiln-bench-token";
const ACCESS_KEY: &str = "kiln-bench";
const SECRET_KEY: &str = "kiln-bench-secret-71c2";
const KMEANS: &str = "CREATE OR REPLACE MODEL km OPTIONS (type = 'kmeans', k = 8, max_iter = 20, \
                      seed = 1) AS SELECT x0, x1, x2, x3, x4, x5, x6, x7 FROM points";

struct Args {
    sf: f64,
    reps: usize,
    dir: PathBuf,
    bin: PathBuf,
    kmeans_rows: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        sf: 1.0,
        reps: 3,
        dir: PathBuf::new(),
        bin: PathBuf::from("target/release/kiln"),
        kmeans_rows: 1_000_000,
    };
    let mut dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sf" => args.sf = value()?.parse()?,
            "--reps" => args.reps = value()?.parse()?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--bin" => args.bin = PathBuf::from(value()?),
            "--kmeans-rows" => args.kmeans_rows = value()?.parse()?,
            "--help" | "-h" => {
                println!(
                    "container-bench [--sf 1] [--reps 3] [--dir data/tpch-sf1] [--bin target/release/kiln] [--kmeans-rows 1000000]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    args.dir = dir.unwrap_or_else(|| PathBuf::from(format!("data/tpch-sf{}", args.sf)));
    Ok(args)
}

/// The network, SeaweedFS and the executors, removed on drop.
struct Bed {
    network: String,
    containers: Vec<String>,
    _config: tempfile::TempDir,
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

impl Bed {
    fn start(seaweedfs: &str) -> Result<(Self, String), BoxError> {
        let network = format!("kiln-bench-{:x}", std::process::id());
        docker_ok(&["network", "create", &network])?;
        let config = tempfile::tempdir()?;
        std::fs::write(
            config.path().join("s3.json"),
            containers::s3_identities(ACCESS_KEY, SECRET_KEY),
        )?;
        let mut bed = Self {
            network,
            containers: Vec::new(),
            _config: config,
        };
        let name = format!("s3-{}", bed.network);
        let volume = format!("{}:/etc/seaweedfs:ro", bed._config.path().display());
        let mut run = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &bed.network,
            "--network-alias",
            "s3",
            "-v",
            &volume,
            seaweedfs,
        ];
        let weed = containers::seaweedfs_args("kiln");
        run.extend(weed.iter().map(String::as_str));
        docker_ok(&run)?;
        bed.containers.push(name.clone());
        let ip = docker_ok(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &name,
        ])?;
        Ok((bed, format!("http://{ip}:8333")))
    }

    fn gateway(&self) -> Result<String, BoxError> {
        docker_ok(&[
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
            &self.network,
        ])
    }

    /// `docker run` of executor `i`, dialing `driver`.
    fn executor(&mut self, image: &str, i: usize, driver: &str) -> Result<(), BoxError> {
        let name = format!("exec{i}-{}", self.network);
        let slots = SLOTS.to_string();
        let id = format!("exec{i}");
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            self.network.clone(),
            "--memory".into(),
            "2g".into(),
        ];
        for (k, v) in [
            ("KILN_AUTH_TOKEN", TOKEN),
            ("AWS_ENDPOINT", "http://s3:8333"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ] {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(
            [
                image, "executor", "--driver", driver, "--slots", &slots, "--id", &id,
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args)?;
        self.containers.push(name);
        Ok(())
    }

    /// Bytes the executor containers received and sent so far.
    fn executor_network_bytes(&self) -> Result<u64, BoxError> {
        let mut total = 0;
        let benched: Vec<String> = (0..EXECUTORS)
            .map(|i| format!("exec{i}-{}", self.network))
            .collect();
        for c in self.containers.iter().filter(|c| benched.contains(c)) {
            let io = docker_ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", c])?;
            for part in io.split('/') {
                total += parse_bytes(part.trim()).ok_or_else(|| format!("NetIO '{io}'"))?;
            }
        }
        Ok(total)
    }
}

/// `12.3MB`, `4.5kB`, `1.2GB`, `512B` (Docker's decimal units).
fn parse_bytes(text: &str) -> Option<u64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.trim().parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((n * scale) as u64)
}

fn store(endpoint: &str) -> Result<Arc<dyn ObjectStore>, BoxError> {
    Ok(Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name("kiln")
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_virtual_hosted_style_request(false)
            .build()?,
    ))
}

/// Uploads every file under `dir` to `prefix/…` in the bucket.
async fn upload(store: &dyn ObjectStore, dir: &Path, prefix: &str) -> Result<u64, BoxError> {
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let rel = path.strip_prefix(dir)?.display().to_string();
                let data = std::fs::read(&path)?;
                bytes += data.len() as u64;
                store
                    .put(
                        &StorePath::from(format!("{prefix}/{rel}")),
                        PutPayload::from(data),
                    )
                    .await?;
            }
        }
    }
    Ok(bytes)
}

/// This process as the driver of `executors` executors dialing `port`.
async fn driver_session(
    port: u16,
    executors: usize,
    s3: &Arc<dyn ObjectStore>,
) -> Result<Session, BoxError> {
    Ok(Session::builder()
        .listen(std::net::SocketAddr::from(([0, 0, 0, 0], port)), executors)
        .slots_per_executor(SLOTS)
        .auth_token(TOKEN)?
        .shuffle_root("s3://kiln/shuffle/")
        .object_store(url::Url::parse("s3://kiln")?, Arc::clone(s3))
        .build()
        .await?)
}

/// Runs `sql` on Kiln: the median seconds and the answer.
async fn time_kiln(kiln: &Session, sql: &str, reps: usize) -> Result<(f64, String), BoxError> {
    time_runs(reps, || async { Ok(kiln.sql(sql).await?.collect().await?) }).await
}

/// Runs `sql` on the container cluster: the median seconds, the answer, and per run (warm-up
/// included) the MB shuffled and the MB the executors sent and received.
async fn on_cluster(
    cluster: &Session,
    bed: &Bed,
    sql: &str,
    reps: usize,
) -> Result<(f64, String, f64, f64), BoxError> {
    let shuffled = cluster.metrics().bytes_shuffled;
    let network = bed.executor_network_bytes()?;
    let (seconds, answer) = time_kiln(cluster, sql, reps).await?;
    let runs = (reps + 1) as f64;
    let shuffled = (cluster.metrics().bytes_shuffled - shuffled) as f64 / runs / 1e6;
    let network = bed.executor_network_bytes()?.saturating_sub(network) as f64 / runs / 1e6;
    Ok((seconds, answer, shuffled, network))
}

/// Runs `sql` on DataFusion: the median seconds and the answer.
async fn time_datafusion(
    ctx: &SessionContext,
    sql: &str,
    reps: usize,
) -> Result<(f64, String), BoxError> {
    time_runs(reps, || async { Ok(ctx.sql(sql).await?.collect().await?) }).await
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if !containers::docker_reachable() {
        return Err("container-bench needs a Docker daemon (`docker info` failed)".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    tpch::generate_parquet(&args.dir, args.sf, 4)?;
    let blobs = Blobs {
        rows: args.kmeans_rows,
        dims: 8,
        k: 8,
    };
    let points = blobs.write()?;

    let image = containers::kiln_image(&args.bin, "kiln-bench")?;
    let image_mb =
        docker_ok(&["image", "inspect", "--format", "{{.Size}}", &image])?.parse::<f64>()? / 1e6;
    let weed = kiln_tests::reference::python()
        .parent()
        .ok_or("no venv")?
        .join("weed");
    let seaweedfs = containers::seaweedfs_image(&weed)?;
    let (mut bed, endpoint) = Bed::start(&seaweedfs)?;
    let s3 = store(&endpoint)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while s3.list_with_delimiter(None).await.is_err() {
        if Instant::now() > deadline {
            return Err("SeaweedFS did not answer within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let uploaded = upload(s3.as_ref(), &args.dir, "tpch").await?
        + upload(s3.as_ref(), &points, "points").await?;
    eprintln!("uploaded {:.0} MB to SeaweedFS", uploaded as f64 / 1e6);

    // The driver: this process, on every interface, at a port chosen now.
    let port = std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port();
    let driver = format!("http://{}:{port}", bed.gateway()?);
    // docker run → registered, three times: a one-executor driver, a fresh container each.
    let mut joined = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        bed.executor(&image, 10 + i, &driver)?;
        let probe = driver_session(port, 1, &s3).await?;
        joined.push(started.elapsed().as_secs_f64());
        drop(probe);
        // The endpoint closes in the background; let the port go before the next driver.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The cluster: three executors, 3 × 2 task slots.
    for i in 0..EXECUTORS {
        bed.executor(&image, i, &driver)?;
    }
    let cluster = driver_session(port, EXECUTORS, &s3).await?;
    let embedded = Session::builder()
        .executors(EXECUTORS)
        .slots_per_executor(SLOTS)
        .build()
        .await?;
    let datafusion =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(cores));
    for t in tpch::TABLES {
        let local = format!("{}/", tpch::table_dir(&args.dir, t).display());
        embedded.register_parquet(t, &local).await?;
        datafusion
            .register_parquet(t, &local, ParquetReadOptions::default())
            .await?;
        cluster
            .register_parquet(t, &format!("s3://kiln/tpch/{t}/"))
            .await?;
    }
    embedded
        .register_parquet("points", &format!("{}/", points.display()))
        .await?;
    cluster
        .register_parquet("points", "s3://kiln/points/")
        .await?;

    println!(
        "| workload | DataFusion s | Kiln embedded s | Kiln 3 containers s | containers / embedded | shuffled MB per run | executors' network MB per run | answers agree |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for q in QUERIES {
        let sql = tpch::query(q).ok_or("no such query")?;
        let (df_s, df_answer) = time_datafusion(&datafusion, sql, args.reps).await?;
        let (em_s, em_answer) = time_kiln(&embedded, sql, args.reps).await?;
        let (cl_s, cl_answer, shuffled, network) =
            on_cluster(&cluster, &bed, sql, args.reps).await?;
        println!(
            "| TPC-H Q{q} SF{} | {df_s:.3} | {em_s:.3} | {cl_s:.3} | {:.2}x | {shuffled:.2} | {network:.1} | {} |",
            args.sf,
            cl_s / em_s,
            if df_answer == em_answer && em_answer == cl_answer { "yes" } else { "NO" }
        );
    }
    let reps = args.reps.min(2);
    let (em_s, em_answer) = time_kiln(&embedded, KMEANS, reps).await?;
    let (cl_s, cl_answer, shuffled, network) = on_cluster(&cluster, &bed, KMEANS, reps).await?;
    println!(
        "| k-means fit {}×8, k=8, 20 iterations | – | {em_s:.3} | {cl_s:.3} | {:.2}x | {shuffled:.2} | {network:.1} | {} |",
        args.kmeans_rows,
        cl_s / em_s,
        if em_answer == cl_answer {
            "yes (same cost)".to_string()
        } else {
            format!("NO: cost {em_answer} vs {cl_answer}")
        }
    );
    println!();
    println!("image {image}: {image_mb:.0} MB");
    println!(
        "docker run → registered executor: median {:.2} s ({})",
        median(joined.clone()),
        joined
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
