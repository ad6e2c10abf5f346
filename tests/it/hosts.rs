//! Kiln on hosts of its own: containers on a private Docker network, each with its own address
//! and resource limits — a driver, three executors, and SeaweedFS as the S3 server (real
//! credentials, SigV4 checked) holding the data, the shuffle and the cache. Every scenario
//! compares what the containers wrote with an embedded run of the same statements on the same
//! S3 data. Where no Docker daemon answers, each test says so in one line and passes.
//!
//! Images are built with no registry (`deploy/image/build.sh` from the debug `kiln` binary the
//! test command already built; SeaweedFS's static `weed` binary from the reference
//! environment, `FROM scratch`) and kept between runs under a tag that names their content.
//! Networks and containers are removed when a test ends, whether or not it failed.

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln::Session;
use kiln_tests::containers;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::common::sorted_rows;
use crate::s3::{write_s3_config, ACCESS_KEY, SECRET_KEY};

const TOKEN: &str = "kiln-hosts-token-5f0e";
const EXECUTORS: usize = 3;
const SLOTS: usize = 2;

/// `docker ARGS`, its output.
fn docker(args: &[&str]) -> Output {
    containers::docker(args).unwrap()
}

/// `docker ARGS`, which must succeed; its standard output.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    containers::docker_ok(args).unwrap()
}

/// Whether a Docker daemon answers; if not, the one line saying the test is skipped.
pub(crate) fn docker_reachable(test: &str) -> bool {
    let ok = containers::docker_reachable();
    if !ok {
        eprintln!("{test}: skipped, no Docker daemon answers (`docker info` failed)");
    }
    ok
}

/// Kiln's image, from the debug binary.
pub(crate) fn kiln_image() -> String {
    containers::kiln_image(&crate::sql::kiln_bin(), "kiln-test").unwrap()
}

/// SeaweedFS's image: its static binary alone.
pub(crate) fn seaweedfs_image() -> String {
    containers::seaweedfs_image(&crate::s3::weed_bin()).unwrap()
}

/// A private network with SeaweedFS on it, and the containers a test starts there; all
/// removed on drop.
struct TestBed {
    id: String,
    network: String,
    containers: Vec<String>,
    kiln_image: String,
    /// `http://IP:8333`, SeaweedFS as this process reaches it.
    s3_from_host: String,
    dir: tempfile::TempDir,
    /// More `--set KEY=VALUE` settings of the driver.
    driver_settings: Vec<String>,
}

impl TestBed {
    fn start() -> Self {
        let id = format!("{:x}", std::process::id() ^ rand::random::<u32>());
        let network = format!("kiln-hosts-{id}");
        let kiln_image = kiln_image();
        let seaweedfs = seaweedfs_image();
        docker_ok(&["network", "create", &network]);
        let dir = tempfile::tempdir().unwrap();
        let mut bed = Self {
            id,
            network,
            containers: Vec::new(),
            kiln_image,
            s3_from_host: String::new(),
            dir,
            driver_settings: Vec::new(),
        };
        let config_dir = bed.dir.path().join("seaweedfs");
        std::fs::create_dir(&config_dir).unwrap();
        write_s3_config(&config_dir.join("s3.json"));
        let s3 = bed.run(
            "s3",
            &["-v", &format!("{}:/etc/seaweedfs:ro", config_dir.display())],
            &seaweedfs,
            &containers::seaweedfs_args("kiln")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let ip = docker_ok(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &s3,
        ]);
        bed.s3_from_host = format!("http://{ip}:8333");
        bed.wait_for_s3();
        bed
    }

    /// Starts a container named `role-ID` on the network (alias `role`).
    fn run(&mut self, role: &str, options: &[&str], image: &str, args: &[&str]) -> String {
        let name = format!("{role}-{}", self.id);
        let mut all = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.network,
            "--network-alias",
            role,
        ];
        all.extend_from_slice(options);
        all.push(image);
        all.extend_from_slice(args);
        docker_ok(&all);
        self.containers.push(name.clone());
        name
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        crate::s3::store(&self.s3_from_host, SECRET_KEY, "kiln")
    }

    /// Waits for SeaweedFS; this process then reads and writes the bucket too (the data, the
    /// embedded run).
    fn wait_for_s3(&self) {
        crate::s3::serve_this_process(&self.s3_from_host);
    }

    /// What a Kiln container needs to reach the bucket and the driver.
    fn kiln_env(secret: &str) -> Vec<String> {
        [
            ("AWS_ENDPOINT", "http://s3:8333"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", "us-east-1"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
            ("KILN_DRIVER", "http://driver:7077"),
            ("RUST_BACKTRACE", "0"),
        ]
        .iter()
        .flat_map(|(k, v)| ["-e".to_string(), format!("{k}={v}")])
        .collect()
    }

    /// Starts `n` executors, each with 1 CPU and 1 GiB, presenting `token`.
    fn start_executors(&mut self, n: usize, token: &str) -> Vec<String> {
        (0..n)
            .map(|i| self.start_executor(&format!("exec{i}"), "1g", token))
            .collect()
    }

    /// Starts one executor named `name`, with 1 CPU and `memory`.
    fn start_executor(&mut self, name: &str, memory: &str, token: &str) -> String {
        let image = self.kiln_image.clone();
        let mut options = Self::kiln_env(SECRET_KEY);
        options.extend(
            [
                "-e",
                &format!("KILN_AUTH_TOKEN={token}"),
                "--memory",
                memory,
                "--cpus",
                "1",
            ]
            .map(String::from),
        );
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let slots = SLOTS.to_string();
        self.run(
            name,
            &options,
            &image,
            &["executor", "--slots", &slots, "--id", name],
        )
    }

    /// Starts the driver: `kiln sql --cluster` over `script`, waiting for `executors`.
    fn start_driver(&mut self, script: &str, executors: usize, secret: &str) -> String {
        let scripts = self.dir.path().join("scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        std::fs::write(scripts.join("run.sql"), script).unwrap();
        let mut options = Self::kiln_env(secret);
        options.extend(
            [
                "-e",
                &format!("KILN_AUTH_TOKEN={TOKEN}"),
                "-v",
                &format!("{}:/scripts:ro", scripts.display()),
            ]
            .map(String::from),
        );
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let image = self.kiln_image.clone();
        let executors = executors.to_string();
        let mut args = vec![
            "sql",
            "--cluster",
            "0.0.0.0:7077",
            "--executors",
            &executors,
            "--set",
            "kiln.shuffle.root=s3://kiln/shuffle/",
            "--set",
            "kiln.cache.root=s3://kiln/cache/",
            "--set",
            "kiln.cluster.heartbeat_timeout_secs=5",
            "--format",
            "csv",
            "-f",
            "/scripts/run.sql",
        ];
        let settings = self.driver_settings.clone();
        for setting in &settings {
            args.extend(["--set", setting.as_str()]);
        }
        self.run("driver", &options, &image, &args)
    }

    /// Waits for a container to exit (at most `limit`); its exit code and its logs.
    fn wait(&self, name: &str, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            let state = docker_ok(&["inspect", "--format", "{{.State.Status}}", name]);
            if state == "exited" || state == "dead" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} still runs after {limit:?}:\n{}",
                self.logs(name)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let code = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", name]);
        (code.parse().unwrap_or(-1), self.logs(name))
    }

    fn logs(&self, name: &str) -> String {
        let out = docker(&["logs", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Uploads the TPC-H tables at scale factor 0.1 to `s3://kiln/tpch/`.
    async fn upload_tpch(&self) {
        let local = self.dir.path().join("tpch");
        kiln_tests::tpch::generate_parquet(&local, 0.1, 3).unwrap();
        let store = self.store();
        for table in kiln_tests::tpch::TABLES {
            let dir = kiln_tests::tpch::table_dir(&local, table);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let bytes = std::fs::read(&path).unwrap();
                store
                    .put(
                        &format!("tpch/{table}/{name}").into(),
                        PutPayload::from(bytes),
                    )
                    .await
                    .unwrap();
            }
        }
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// The statements both runs execute: the TPC-H tables from S3, queries and training, each
/// result written to `s3://kiln/OUT/NAME/`.
fn script(out: &str) -> String {
    let mut s = String::new();
    for t in kiln_tests::tpch::TABLES {
        s.push_str(&format!(
            "CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 's3://kiln/tpch/{t}/';\n"
        ));
    }
    for q in QUERIES {
        let text = kiln_tests::tpch::query(q)
            .unwrap()
            .trim()
            .trim_end_matches(';');
        s.push_str(&format!(
            "COPY ({text}) TO 's3://kiln/{out}/q{q}/' STORED AS PARQUET;\n"
        ));
    }
    s.push_str(TRAINING);
    s.push_str(&format!(
        "COPY (SELECT c_custkey, predict(segments, c_acctbal, c_nationkey) AS segment, \
         predict(big_spender, c_acctbal, c_nationkey) AS big FROM customer) \
         TO 's3://kiln/{out}/models/' STORED AS PARQUET;\n"
    ));
    s
}

const QUERIES: [usize; 5] = [1, 3, 5, 9, 18];

const TRAINING: &str = "\
TRAIN MODEL segments USING kmeans (k = 4, seed = 7, max_iter = 10) \
  FEATURES (c_acctbal, c_nationkey) AS SELECT * FROM customer;\n\
TRAIN MODEL big_spender USING logistic_regression (max_iter = 20) \
  LABEL big FEATURES (c_acctbal, c_nationkey) \
  AS SELECT c_acctbal, c_nationkey, CAST(c_acctbal > 5000 AS DOUBLE) AS big FROM customer;\n";

/// The rows of every result of `out`, by name.
async fn results(kiln: &Session, out: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let names = QUERIES
        .iter()
        .map(|q| format!("q{q}"))
        .chain(["models".to_string()]);
    let mut all = Vec::new();
    for name in names {
        let df = kiln
            .read_parquet(&format!("s3://kiln/{out}/{name}/"))
            .await
            .unwrap_or_else(|e| panic!("{out}/{name}: {e}"));
        all.push((name, sorted_rows(&df.collect().await.unwrap())));
    }
    all
}

/// The same statements in this process, embedded, with the containers' executors and slots.
async fn embedded(out: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let kiln = Session::builder()
        .executors(EXECUTORS)
        .slots_per_executor(SLOTS)
        .build()
        .await
        .unwrap();
    for statement in kiln::sql::split_statements(&script(out)).unwrap() {
        kiln.sql(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    results(&kiln, out).await
}

async fn check_against_embedded(out: &str) {
    let expected = embedded("embedded").await;
    let kiln = Session::builder().executors(1).build().await.unwrap();
    let got = results(&kiln, out).await;
    for ((name, want), (_, have)) in expected.iter().zip(&got) {
        assert!(!want.is_empty(), "{name}: the embedded run wrote no rows");
        assert_eq!(have, want, "{name}: the containers' answer differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_and_training_on_three_executor_containers_equal_the_embedded_run() {
    if !docker_reachable("hosts::tpch_and_training") {
        return;
    }
    let mut bed = TestBed::start();
    bed.upload_tpch().await;
    bed.start_executors(EXECUTORS, TOKEN);
    let driver = bed.start_driver(&script("cluster"), EXECUTORS, SECRET_KEY);
    let (code, logs) = bed.wait(&driver, Duration::from_secs(600));
    assert_eq!(code, 0, "the driver failed:\n{logs}");
    check_against_embedded("cluster").await;
}

/// Runs the script on the containers, doing `fault` to the second executor once the tables
/// are made and the first query has finished; then checks the answers against the embedded
/// run. Returns the test bed and that executor's container.
async fn with_a_fault_mid_job(test: &str, fault: &[&str]) -> Option<(TestBed, String)> {
    if !docker_reachable(test) {
        return None;
    }
    let mut bed = TestBed::start();
    bed.upload_tpch().await;
    let executors = bed.start_executors(EXECUTORS, TOKEN);
    let driver = bed.start_driver(&script("cluster"), EXECUTORS, SECRET_KEY);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // One timing line per statement done.
        let done = bed.logs(&driver).matches(" in ").count();
        if done > kiln_tests::tpch::TABLES.len() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", bed.logs(&driver));
        std::thread::sleep(Duration::from_millis(100));
    }
    let victim = executors[1].clone();
    let mut args: Vec<&str> = fault.to_vec();
    let network = bed.network.clone();
    if args.first() == Some(&"network") {
        args.push(&network);
    }
    args.push(&victim);
    docker_ok(&args);
    let (code, logs) = bed.wait(&driver, Duration::from_secs(600));
    assert_eq!(code, 0, "the driver failed:\n{logs}");
    check_against_embedded("cluster").await;
    Some((bed, victim))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_job_does_not_change_the_answer() {
    with_a_fault_mid_job("hosts::an_executor_killed_mid_job", &["kill"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_cut_off_mid_job_is_lost_and_leaves_cleanly_when_reconnected() {
    let Some((bed, victim)) = with_a_fault_mid_job(
        "hosts::an_executor_cut_off_mid_job",
        &["network", "disconnect"],
    )
    .await
    else {
        return;
    };
    // Reconnected after its driver finished, it finds no driver and exits: nothing of it runs
    // twice, and no process is left behind.
    docker_ok(&["network", "connect", &bed.network, &victim]);
    bed.wait(&victim, Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_or_secret_is_a_clear_error_within_seconds() {
    if !docker_reachable("hosts::a_wrong_token_or_secret") {
        return;
    }
    let mut bed = TestBed::start();
    // An executor with the wrong token is refused, and says so.
    let executor = bed.start_executors(1, "not-the-token").remove(0);
    let driver = bed.start_driver("SELECT 1;", 1, SECRET_KEY);
    let (code, logs) = bed.wait(&executor, Duration::from_secs(30));
    assert_ne!(code, 0, "{logs}");
    assert!(logs.to_lowercase().contains("token"), "{logs}");
    let _ = docker(&["rm", "-f", &driver]);
    bed.containers.retain(|c| c != &driver);
    // A driver with the wrong S3 secret fails at once, naming the shuffle root.
    let start = Instant::now();
    let driver = bed.start_driver("SELECT 1;", 1, "not-the-secret");
    let (code, logs) = bed.wait(&driver, Duration::from_secs(30));
    assert_ne!(code, 0, "{logs}");
    assert!(
        logs.contains("s3://kiln/shuffle/") && logs.contains("AWS_SECRET_ACCESS_KEY"),
        "{logs}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_exit_when_the_driver_container_is_killed() {
    if !docker_reachable("hosts::executors_exit_when_the_driver_container_is_killed") {
        return;
    }
    let mut bed = TestBed::start();
    let executors = bed.start_executors(EXECUTORS, TOKEN);
    // Its session's files outlive it by 3 s at most.
    bed.driver_settings.push("kiln.orphan_ttl_secs=3".into());
    // A job whose shuffle files stay (so that the killed driver leaves some), then one long
    // enough to be running when the driver goes.
    let driver = bed.start_driver(
        "SET kiln.shuffle.keep_files = true;
         SELECT value % 7 AS k, count(*) FROM generate_series(1, 100000) GROUP BY 1;
         SELECT k, count(*) FROM (SELECT value % 1000 AS k FROM generate_series(1, 2000000000)) GROUP BY k;",
        EXECUTORS,
        SECRET_KEY,
    );
    // Running: every executor has joined (the line it logs), and the job has had time to
    // start.
    let deadline = Instant::now() + Duration::from_secs(120);
    for executor in &executors {
        while !bed.logs(executor).contains("joined the driver") {
            assert!(
                Instant::now() < deadline,
                "{executor}:\n{}",
                bed.logs(executor)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.State.Status}}", &driver]),
        "running",
        "{}",
        bed.logs(&driver)
    );
    let killed = Instant::now();
    docker_ok(&["kill", &driver]);
    for executor in &executors {
        let (_, logs) = bed.wait(executor, Duration::from_secs(60));
        assert!(
            logs.contains("lost the driver at http://driver:7077")
                || logs.contains("the driver is gone"),
            "{executor}:\n{logs}"
        );
    }
    // The executors' streams end with the driver's process: they exit at once, not after a
    // keepalive timeout.
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "executors took {:?} to exit",
        killed.elapsed()
    );

    // What the driver left in the bucket: its lease on each root and its shuffle files. Once
    // the lease is older than its TTL, `kiln gc` (here in a container of its own) removes
    // them, and nothing is left.
    let store = bed.store();
    let left = |prefix: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .list(Some(&object_store::path::Path::from(prefix)))
                .map(|m| m.unwrap().location.to_string())
                .collect::<Vec<_>>()
                .await
        }
    };
    let shuffle = left("shuffle").await;
    assert!(
        shuffle
            .iter()
            .any(|o| o.starts_with("shuffle/_kiln-sessions/kiln-"))
            && shuffle.iter().any(|o| o.ends_with(".arrow")),
        "{shuffle:?}"
    );
    assert!(left("cache")
        .await
        .iter()
        .any(|o| o.starts_with("cache/_kiln-sessions/")));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let options = TestBed::kiln_env(SECRET_KEY);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let image = bed.kiln_image.clone();
    let gc = bed.run(
        "gc",
        &options,
        &image,
        &[
            "gc",
            "--shuffle-root",
            "s3://kiln/shuffle/",
            "--cache-root",
            "s3://kiln/cache/",
            "--ttl",
            "3",
        ],
    );
    let (code, logs) = bed.wait(&gc, Duration::from_secs(60));
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("removed 1 orphaned session prefix"), "{logs}");
    assert_eq!(left("shuffle").await, Vec::<String>::new());
    assert_eq!(left("cache").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_for_memory_has_its_task_run_elsewhere() {
    if !docker_reachable("hosts::an_executor_killed_for_memory") {
        return;
    }
    let mut bed = TestBed::start();
    // The driver starts its job as soon as one executor has joined: the small one, whose
    // container the kernel kills when the task's hash set outgrows it. Two executors of 1 GiB
    // join the running session meanwhile and take the task again.
    let small = bed.start_executor("small", "300m", TOKEN);
    let driver = bed.start_driver(
        "SELECT count(DISTINCT value) AS n FROM generate_series(1, 15000000);",
        1,
        SECRET_KEY,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !bed.logs(&small).contains("joined the driver") {
        assert!(Instant::now() < deadline, "{}", bed.logs(&small));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.start_executors(2, TOKEN);
    let (code, logs) = bed.wait(&driver, Duration::from_secs(600));
    assert_eq!(code, 0, "the driver failed:\n{logs}");
    assert!(logs.contains("15000000"), "{logs}");
    // The statement's timing line says what was recovered.
    assert!(logs.contains("executors lost: 1"), "{logs}");
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.State.OOMKilled}}", &small]),
        "true",
        "the small executor was not killed for memory:\n{}",
        bed.logs(&small)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffle_root_local_to_the_driver_is_named_as_the_cause() {
    if !docker_reachable("hosts::a_shuffle_root_local_to_the_driver") {
        return;
    }
    let mut bed = TestBed::start();
    bed.start_executors(1, TOKEN);
    // No shuffle root: the driver's default, a directory of its own container.
    let driver = bed.run(
        "driver",
        &["-e", &format!("KILN_AUTH_TOKEN={TOKEN}")],
        &bed.kiln_image.clone(),
        &[
            "sql",
            "--cluster",
            "0.0.0.0:7077",
            "--executors",
            "1",
            "-e",
            "SELECT value % 3 AS k, count(*) FROM generate_series(1, 1000) GROUP BY k",
        ],
    );
    let (code, logs) = bed.wait(&driver, Duration::from_secs(120));
    assert_ne!(code, 0, "{logs}");
    assert!(
        logs.contains("is a directory of one machine") && logs.contains("kiln.shuffle.root"),
        "{logs}"
    );
}
