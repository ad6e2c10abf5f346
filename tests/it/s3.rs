//! Shuffle, cache and Parquet sources against an S3 server that checks every request's
//! signature (SeaweedFS, started on free loopback ports and stopped with the test), embedded
//! and on a local cluster; and the errors a wrong secret or a missing bucket give.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::ml::{Columns, KMeans, KMeansInit, Precision};
use kiln::Session;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::common::sorted_rows;

/// A SeaweedFS S3 gateway (`weed mini`: master, volume, filer and S3 in one process) on free
/// loopback ports, with one bucket, `kiln`, and one identity whose requests it checks with
/// SigV4; the AWS environment of this test points at it.
pub(crate) struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
    _dir: tempfile::TempDir,
}

/// The identity the server knows.
pub(crate) const ACCESS_KEY: &str = "kiln-access";
/// Its secret.
pub(crate) const SECRET_KEY: &str = "kiln-secret-4c1b2e";

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The `weed` binary the test command installs into the reference environment.
pub(crate) fn weed_bin() -> std::path::PathBuf {
    kiln_tests::reference::python()
        .parent()
        .unwrap()
        .join("weed")
}

/// The identities file SeaweedFS's S3 gateway checks requests against.
pub(crate) fn write_s3_config(path: &Path) {
    std::fs::write(
        path,
        kiln_tests::containers::s3_identities(ACCESS_KEY, SECRET_KEY),
    )
    .unwrap();
}

impl S3Server {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        write_s3_config(&config);
        let p = free_ports(10);
        let bin = weed_bin();
        let mut command = Command::new(&bin);
        command
            .arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket=kiln"])
            // As S3 does: a write to a bucket that does not exist fails.
            .arg("-s3.autoCreateBucket=false")
            .args(["-admin.ui=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.config={}", config.display()));
        for (flag, port) in [
            "-master.port",
            "-master.port.grpc",
            "-volume.port",
            "-volume.port.grpc",
            "-filer.port",
            "-filer.port.grpc",
            "-s3.port",
            "-s3.port.grpc",
            "-admin.port",
            "-admin.port.grpc",
        ]
        .iter()
        .zip(&p)
        {
            command.arg(format!("{flag}={port}"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin:?} (./scripts/test.sh installs it): {e}"));
        let endpoint = format!("http://127.0.0.1:{}", p[6]);
        let server = Self {
            child,
            endpoint: endpoint.clone(),
            _dir: dir,
        };
        serve_this_process(&endpoint);
        server
    }
}

/// Waits until SeaweedFS at `endpoint` takes a signed write to the `kiln` bucket (60 s at
/// most), then points this process's AWS environment at it. nextest runs every test in its
/// own process, so the environment is the test's own; `local_cluster` executors inherit it.
pub(crate) fn serve_this_process(endpoint: &str) {
    let store = store(endpoint, SECRET_KEY, "kiln");
    let deadline = Instant::now() + Duration::from_secs(60);
    // On a thread of its own: the caller may be inside an async runtime.
    let ready = std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                while Instant::now() < deadline {
                    let put = store
                        .put(&"ready".into(), PutPayload::from_static(b"1"))
                        .await;
                    if put.is_ok() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                false
            })
        })
        .join()
        .unwrap()
    });
    assert!(
        ready,
        "SeaweedFS did not serve S3 at {endpoint} within 60 s"
    );
    for (k, v) in [
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ] {
        std::env::set_var(k, v);
    }
}

/// A client of `bucket` at `endpoint` signing with `secret`.
pub(crate) fn store(endpoint: &str, secret: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(secret)
            .build()
            .unwrap(),
    )
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const QUERY: &str = "SELECT k, count(*) AS n, sum(v) AS s FROM points GROUP BY k";

async fn write_points(kiln: &Session, url: &str) {
    kiln.sql(
        "SELECT value % 13 AS k, CAST(value AS DOUBLE) * 0.5 AS v, \
                CAST(value % 7 AS DOUBLE) AS x, CAST(value % 5 AS DOUBLE) AS y \
         FROM generate_series(1, 20000)",
    )
    .await
    .unwrap()
    .write_parquet(url)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_shuffle_through_s3_embedded_and_on_a_local_cluster() {
    let _s3 = S3Server::start();
    let local = crate::common::session(2, 2).await;
    write_points(&local, "s3://kiln/data/points/").await;
    local
        .register_parquet("points", "s3://kiln/data/points/")
        .await
        .unwrap();
    let expected = sorted_rows(&local.sql(QUERY).await.unwrap().collect().await.unwrap());
    assert_eq!(expected.len(), 13);
    for kiln in [
        Session::builder()
            .executors(2)
            .shuffle_root("s3://kiln/shuffle/")
            .build()
            .await
            .unwrap(),
        Session::builder()
            .local_cluster(2)
            .shuffle_root("s3://kiln/shuffle/")
            .build()
            .await
            .unwrap(),
    ] {
        kiln.register_parquet("points", "s3://kiln/data/points/")
            .await
            .unwrap();
        let got = kiln.sql(QUERY).await.unwrap().collect().await.unwrap();
        assert_eq!(sorted_rows(&got), expected);
        assert!(kiln.metrics().bytes_shuffled > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_with_its_cache_in_s3_survives_losing_memory() {
    let _s3 = S3Server::start();
    let kiln = Session::builder()
        .local_cluster(2)
        .shuffle_root("s3://kiln/shuffle/")
        .cache_root("s3://kiln/cache/")
        .build()
        .await
        .unwrap();
    write_points(&kiln, "s3://kiln/data/train/").await;
    let df = kiln.read_parquet("s3://kiln/data/train/").await.unwrap();
    let data = df
        .cache_training(&Columns::new().features(["x", "y"]), false, Precision::F64)
        .await
        .unwrap();
    assert!(data.stored_bytes().await.unwrap() > 0);
    let km = || {
        KMeans::new(3)
            .init(KMeansInit::Centers(vec![
                vec![0.0, 0.0],
                vec![3.0, 2.0],
                vec![6.0, 4.0],
            ]))
            .tol(0.0)
            .max_iter(5)
            .build()
            .unwrap()
    };
    let before = data.fit(km()).await.unwrap();
    data.drop_from_memory().await.unwrap();
    let after = data.fit(km()).await.unwrap();
    assert_eq!(before.centers(), after.centers());
    assert_eq!(
        kiln.metrics().partitions_reloaded,
        data.info().partitions as u64
    );
    data.unpersist().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_a_wrong_signature() {
    let s3 = S3Server::start();
    let wrong = store(&s3.endpoint, "not-the-secret", "kiln");
    let err = wrong
        .put(&"x".into(), PutPayload::from_static(b"1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("SignatureDoesNotMatch") || err.to_string().contains("403"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_clear_error_within_seconds() {
    let _s3 = S3Server::start();
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let kiln = Session::builder()
        .executors(2)
        .store_retries(1, Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    let err = match kiln.read_parquet("s3://kiln/data/points/").await {
        Ok(df) => df.collect().await.unwrap_err(),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        text.contains("s3://kiln/data/points/") && text.contains("AWS_SECRET_ACCESS_KEY"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_within_seconds() {
    let _s3 = S3Server::start();
    let start = Instant::now();
    let err = Session::builder()
        .executors(2)
        .shuffle_root("s3://no-such-bucket/shuffle/")
        .store_retries(1, Duration::from_secs(5))
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        text.contains("shuffle_root")
            && text.contains("the bucket 'no-such-bucket' does not exist"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_log_in_s3_is_served_by_kiln_history() {
    let s3 = S3Server::start();
    let kiln = Session::builder()
        .executors(2)
        .event_log_dir("s3://kiln/events")
        .build()
        .await
        .unwrap();
    let rows = kiln
        .sql("SELECT value % 3 AS k, count(*) FROM generate_series(1, 3000) GROUP BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    let session = kiln.id().to_string();
    drop(kiln);
    // The finished log under its final name, and no in-progress one left.
    let bucket = store(&s3.endpoint, SECRET_KEY, "kiln");
    let names: Vec<String> =
        futures::TryStreamExt::try_collect::<Vec<_>>(bucket.list(Some(&"events".into())))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
    assert_eq!(names, vec![format!("events/{session}.jsonl")]);

    let home = tempfile::tempdir().unwrap();
    let (mut server, url) = crate::ui::history_of("s3://kiln/events/", home.path());
    let (status, list) = crate::ui::get(&url);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status, 200);
    assert!(list.contains(&session), "{list}");
}
