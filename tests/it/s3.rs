//! Shuffle, cache and Parquet sources against an S3-protocol server (moto, started on a free
//! loopback port and stopped with the test), embedded and on a local cluster.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::ml::{Columns, KMeans, KMeansInit, Precision};
use kiln::Session;

use crate::common::sorted_rows;

/// A moto S3 server with one bucket, `kiln`; the AWS environment points at it.
pub(crate) struct S3Server {
    child: Child,
}

impl S3Server {
    pub(crate) fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let python = kiln_tests::reference::python();
        let bin = python.parent().unwrap().join("moto_server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin:?} (./scripts/test.sh installs it): {e}"));
        let server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                // Create the bucket (moto does not check signatures).
                write!(
                    s,
                    "PUT /kiln HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // nextest runs every test in its own process, so the environment is this test's own;
        // local_cluster executors inherit it.
        for (k, v) in [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "kiln".into()),
            ("AWS_SECRET_ACCESS_KEY", "kiln".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        ] {
            std::env::set_var(k, v);
        }
        server
    }
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
