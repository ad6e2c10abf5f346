//! Cluster mode: executors as separate processes on loopback (`local_cluster`), the same
//! answers and models as the embedded mode, and recovery when executors are killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::ml::{Fit, KMeans, KMeansInit, LogisticRegression};
use kiln::Session;

use crate::common::{rows, sorted_rows};
use crate::ml::{labelled, labelled_frame};

/// A local cluster of `executors` processes × `slots`.
pub async fn cluster(executors: usize, slots: usize) -> Session {
    Session::builder()
        .local_cluster(executors)
        .slots_per_executor(slots)
        .build()
        .await
        .expect("local cluster starts")
}

pub fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}");
}

/// Seeded kill points: (a delay of less than `max_delay_ms`, an executor index below
/// `executors`), the same sequence on every run.
pub(crate) fn kill_points(
    seed: u64,
    max_delay_ms: u64,
    executors: usize,
) -> impl Iterator<Item = (Duration, usize)> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (
            Duration::from_millis((state >> 33) % max_delay_ms),
            ((state >> 20) % executors as u64) as usize,
        )
    })
}

fn running(pid: u32) -> bool {
    // A zombie (killed, not yet reaped) has state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_runs_queries_in_other_processes() {
    let kiln = cluster(2, 2).await;
    assert_eq!(kiln.executor_count(), 2);
    let pids = kiln.executor_pids();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| *p != std::process::id() && running(*p)));
    let df = kiln
        .sql("SELECT x % 7 AS k, count(*) AS n, sum(x) AS s FROM (SELECT value AS x FROM generate_series(1, 100000)) GROUP BY k ORDER BY k")
        .await
        .unwrap();
    let got = rows(&df.collect().await.unwrap());
    assert_eq!(got.len(), 7);
    assert_eq!(got[0], ["0", "14285", "714264285"]);
    // The driver's catalog tables travel with the plan to the executor processes.
    let settings = kiln
        .sql("SELECT count(*) AS n FROM information_schema.df_settings WHERE name LIKE 'datafusion.execution.%'")
        .await
        .unwrap();
    let n: u64 = rows(&settings.collect().await.unwrap())[0][0]
        .parse()
        .unwrap();
    assert!(n > 10, "{n} execution settings");
    drop(settings);
    drop(df);
    drop(kiln);
    // The executors leave with the session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| running(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pids.iter().all(|p| !running(*p)),
        "executors outlived the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_on_a_local_cluster_of_two() {
    crate::tpch::check_all_on(cluster(2, 2).await, 2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_on_a_local_cluster_of_four() {
    crate::tpch::check_all_on(cluster(4, 1).await, 4, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_on_a_local_cluster_equal_the_embedded_ones_bit_for_bit() {
    let (x, y) = labelled(2400, 5);
    let mut fits = Vec::new();
    // Partials reaching the driver a round: the executor processes merge what they hold.
    for (kiln, partials) in [
        (crate::common::session(1, 4).await, 1),
        (cluster(2, 2).await, 2),
        (cluster(4, 1).await, 4),
    ] {
        let mut events = kiln.events();
        let df = labelled_frame(&kiln, &x, &y);
        let logistic = LogisticRegression::new()
            .reg_param(0.05)
            .max_iter(50)
            .fit(&df)
            .await
            .unwrap();
        let km = KMeans::new(3)
            .init(KMeansInit::Random)
            .seed(9)
            .max_iter(10)
            .fit(&df)
            .await
            .unwrap();
        let bits: Vec<u64> = logistic
            .coefficient_matrix()
            .as_slice()
            .iter()
            .chain(logistic.intercepts())
            .chain(km.centers().iter().flatten())
            .map(|v| v.to_bits())
            .collect();
        fits.push(bits);
        let rounds = crate::common::partials_per_round(&mut events, 4);
        assert!(
            !rounds.is_empty(),
            "no 4-partition kernel round in session {}",
            fits.len()
        );
        assert!(rounds.iter().all(|r| *r == partials), "{rounds:?}");
    }
    assert_eq!(fits[0], fits[1], "local_cluster(2) differs from embedded");
    assert_eq!(fits[0], fits[2], "local_cluster(4) differs from embedded");
}

/// TPC-H Q3-like multi-stage query over generated data, for the kill tests.
pub(crate) const KILL_QUERY: &str = "SELECT o.k, count(*) AS n, sum(l.v) AS s \
    FROM (SELECT value % 5000 AS k, value AS id FROM generate_series(1, 200000)) o \
    JOIN (SELECT value % 200000 + 1 AS id, CAST(value % 97 AS DOUBLE) AS v FROM generate_series(1, 400000)) l \
    ON o.id = l.id GROUP BY o.k ORDER BY n DESC, o.k LIMIT 50";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_does_not_change_the_answer() {
    // Ten seeded kill points during a multi-stage query on 4 executors: the result equals the
    // fault-free run every time. Each kill waits for the query's first accepted map output and
    // then a seeded delay, so it lands while the query runs however fast the machine is.
    let expected = {
        let kiln = crate::common::session(2, 2).await;
        sorted_rows(&kiln.sql(KILL_QUERY).await.unwrap().collect().await.unwrap())
    };
    let mut lost_during_query = 0;
    for (round, (delay, victim)) in kill_points(0x5eed, 60, 4).take(10).enumerate() {
        let kiln = Session::builder()
            .local_cluster(4)
            .slots_per_executor(1)
            .broadcast_threshold(0)
            .build()
            .await
            .unwrap();
        let pid = kiln.executor_pids()[victim];
        let query = async { kiln.sql(KILL_QUERY).await?.collect().await };
        let killer = async {
            let deadline = Instant::now() + Duration::from_secs(20);
            while kiln.metrics().bytes_shuffled == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(delay).await;
            kill(pid);
        };
        let (got, ()) = tokio::join!(query, killer);
        let got = got.unwrap_or_else(|e| {
            panic!("round {round} (kill {delay:?} after the first map output): {e}")
        });
        assert_eq!(
            sorted_rows(&got),
            expected,
            "round {round}, kill {delay:?} after the first map output"
        );
        lost_during_query += usize::from(kiln.metrics().executors_lost > 0);
    }
    eprintln!("{lost_during_query} of 10 kills hit a running query");
    // Most kill points must land while the query runs, or the test proves nothing.
    assert!(
        lost_during_query >= 7,
        "only {lost_during_query} of 10 kills hit a running query"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_during_training_leaves_the_model_unchanged() {
    let (x, y) = labelled(3000, 12);
    let fit = |kiln: Arc<Session>, victim: Option<(usize, u64)>| {
        let (x, y) = (x.clone(), y.clone());
        async move {
            let df = labelled_frame(&kiln, &x, &y);
            let data = df
                .cache_training(&kiln::ml::Columns::new(), true, kiln::ml::Precision::F64)
                .await
                .unwrap();
            if let Some((i, rounds)) = victim {
                // The kill waits for a few kernel rounds of the fit, so it lands mid-training
                // however fast the machine is.
                let pid = kiln.executor_pids()[i];
                let start = kiln.metrics().kernel_rounds;
                let kiln = Arc::clone(&kiln);
                tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while kiln.metrics().kernel_rounds < start + rounds && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    kill(pid);
                });
            }
            let km = data
                .fit(
                    KMeans::new(4)
                        .init(KMeansInit::Centers(x[..4].to_vec()))
                        .tol(0.0)
                        .max_iter(60)
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
            let lr = data
                .fit(
                    LogisticRegression::new()
                        .reg_param(0.01)
                        .tol(0.0)
                        .max_iter(60),
                )
                .await
                .unwrap();
            let bits: Vec<u64> = km
                .centers()
                .iter()
                .flatten()
                .chain(lr.coefficient_matrix().as_slice())
                .map(|v| v.to_bits())
                .collect();
            bits
        }
    };
    let clean = fit(Arc::new(cluster(2, 2).await), None).await;
    let kiln = Arc::new(cluster(2, 2).await);
    let faulty = fit(Arc::clone(&kiln), Some((1, 5))).await;
    assert_eq!(clean, faulty);
    assert!(
        kiln.metrics().executors_lost >= 1,
        "the executor was not lost"
    );
    assert!(kiln.metrics().partitions_reloaded >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_executors_killed_is_an_error_within_30_seconds() {
    let kiln = cluster(2, 1).await;
    for pid in kiln.executor_pids() {
        kill(pid);
    }
    let start = Instant::now();
    let err = kiln
        .sql("SELECT count(*) FROM generate_series(1, 1000)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("executors are lost"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_without_the_right_token_is_unauthenticated() {
    // The methods come from the service definition itself, so a new RPC cannot slip through.
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../executor/proto");
    let files = protox::compile([format!("{proto_dir}/kiln.proto")], [proto_dir]).unwrap();
    let kiln = cluster(1, 1).await;
    let addr = kiln.driver_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut methods = Vec::new();
    for file in &files.file {
        for service in &file.service {
            for method in &service.method {
                methods.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.client_streaming(),
                ));
            }
        }
    }
    assert!(!methods.is_empty());
    for (path, client_streaming) in &methods {
        for token in [None, Some("Bearer wrong"), Some("Basic nothing")] {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.unwrap();
            let uri = tonic::codegen::http::uri::PathAndQuery::try_from(path.as_str()).unwrap();
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            let status = if *client_streaming {
                let mut request = tonic::Request::new(tokio_stream::iter(Vec::<()>::new()));
                if let Some(t) = token {
                    request
                        .metadata_mut()
                        .insert("authorization", t.parse().unwrap());
                }
                grpc.streaming(request, uri, codec).await.err()
            } else {
                let mut request = tonic::Request::new(());
                if let Some(t) = token {
                    request
                        .metadata_mut()
                        .insert("authorization", t.parse().unwrap());
                }
                grpc.unary(request, uri, codec).await.err()
            };
            let status = status.unwrap_or_else(|| panic!("{path:?} with {token:?} was accepted"));
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{path:?} with {token:?}: {status}"
            );
        }
    }
    // The cluster still works for its own executors.
    assert_eq!(
        kiln.sql("SELECT 1").await.unwrap().count().await.unwrap(),
        1
    );
}

/// Not a test on its own: the driver process of `executors_exit_when_the_driver_is_killed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by executors_exit_when_the_driver_is_killed as its driver process"]
async fn driver_process_for_the_kill_test() {
    if std::env::var("KILN_TEST_DRIVER_ROLE").is_err() {
        return;
    }
    let kiln = cluster(2, 1).await;
    let pids: Vec<String> = kiln.executor_pids().iter().map(u32::to_string).collect();
    println!("PIDS {}", pids.join(" "));
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_exit_when_the_driver_is_killed() {
    use std::io::BufRead;
    let mut driver = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "cluster::driver_process_for_the_kill_test",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("KILN_TEST_DRIVER_ROLE", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = driver.stdout.take().unwrap();
    let pids: Vec<u32> = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("PIDS ")
                .map(|p| p.split(' ').map(|x| x.parse().unwrap()).collect())
        })
        .expect("the driver reports its executors");
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| running(*p)));
    kill(driver.id());
    let _ = driver.wait();
    let start = Instant::now();
    while pids.iter().any(|p| running(*p)) && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pids.iter().all(|p| !running(*p)),
        "executors still running 10 s after the driver died"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_are_retried_across_processes() {
    let query = "SELECT value % 11 AS k, count(*) AS n FROM generate_series(1, 50000) GROUP BY k";
    let expected = {
        let kiln = crate::common::session(2, 2).await;
        sorted_rows(&kiln.sql(query).await.unwrap().collect().await.unwrap())
    };
    let kiln = Session::builder()
        .local_cluster(2)
        .slots_per_executor(2)
        .inject_task_failures(1)
        .build()
        .await
        .unwrap();
    let got = kiln.sql(query).await.unwrap().collect().await.unwrap();
    assert_eq!(sorted_rows(&got), expected);
    assert!(kiln.metrics().task_retries >= 2);
    assert_eq!(kiln.metrics().executors_lost, 0);
}

/// A certificate authority and a `localhost` server certificate it issued, as PEM files in
/// `dir` (made with the reference venv's `cryptography`); the authority also issues an
/// executor's client certificate, `client.pem` / `client-key.pem`, for mutual TLS.
pub(crate) fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let script = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def pem(path, data):
    open(f"{out}/{path}", "wb").write(data)
ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiln test CA")])
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256()))
client_key = ec.generate_private_key(ec.SECP256R1())
client = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiln executor")]))
        .issuer_name(ca_name).public_key(client_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
pem("client.pem", client.public_bytes(serialization.Encoding.PEM))
pem("client-key.pem", client_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))
pem("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
pem("cert.pem", cert.public_bytes(serialization.Encoding.PEM))
pem("key.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))
"#;
    let status = std::process::Command::new(kiln_tests::reference::python())
        .args(["-c", script, dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "certificate generation failed");
    (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = tls_files(dir.path());
    let kiln = Session::builder()
        .local_cluster(2)
        .tls(&cert, &key, &ca)
        .build()
        .await
        .unwrap();
    let n = kiln
        .sql("SELECT value % 3 AS k, count(*) FROM generate_series(1, 3000) GROUP BY k")
        .await
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(n, 3);
    // A plaintext client cannot even start a call.
    let addr = kiln.driver_addr().unwrap();
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut grpc = tonic::client::Grpc::new(channel);
        let ready = tokio::time::timeout(Duration::from_secs(5), async {
            grpc.ready().await?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static("/kiln.v1.Driver/Join");
            grpc.streaming(
                tonic::Request::new(tokio_stream::iter(Vec::<()>::new())),
                path,
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await
            .map(|_| ())
            .map_err(|s| Box::new(s) as Box<dyn std::error::Error + Send + Sync>)
        })
        .await;
        assert!(!matches!(ready, Ok(Ok(()))), "a plaintext call got through");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_with_the_wrong_token_is_refused_and_says_so() {
    let kiln = cluster(1, 1).await;
    let addr = kiln.driver_addr().unwrap();
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("kiln");
    let secret = "not-the-cluster-token-4242";
    let out = tokio::process::Command::new(&bin)
        .args([
            "executor",
            "--driver",
            &format!("http://{addr}"),
            "--slots",
            "1",
        ])
        .env(kiln::AUTH_TOKEN_ENV, secret)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("token"), "{stderr}");
    assert!(
        !stderr.contains(secret),
        "the token reached the log: {stderr}"
    );
    // Bad arguments are named.
    let out = tokio::process::Command::new(&bin)
        .args([
            "executor",
            "--driver",
            &format!("http://{addr}"),
            "--memory",
            "lots",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--memory"));
    // The cluster is unaffected.
    assert_eq!(kiln.executor_count(), 1);
    assert_eq!(
        kiln.sql("SELECT 1").await.unwrap().count().await.unwrap(),
        1
    );
}

/// `kiln executor` processes joining a listening driver, killed with the test.
struct Joiners {
    url: String,
    children: Vec<std::process::Child>,
}

impl Joiners {
    const TOKEN: &'static str = "joiners-token-0e41";

    fn start(&mut self, id: &str) -> usize {
        let child = std::process::Command::new(crate::sql::kiln_bin())
            .args([
                "executor", "--driver", &self.url, "--id", id, "--slots", "2",
            ])
            .env(kiln::AUTH_TOKEN_ENV, Self::TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    fn kill(&mut self, index: usize) {
        let _ = self.children[index].kill();
        let _ = self.children[index].wait();
    }
}

impl Drop for Joiners {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until the session's executors, as (name, alive), are `want`.
async fn executors_become(kiln: &Session, want: &[(&str, bool)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have: Vec<(String, bool)> = kiln
            .executors()
            .into_iter()
            .map(|e| (e.id, e.alive))
            .collect();
        let wanted: Vec<(String, bool)> = want.iter().map(|(i, a)| (i.to_string(), *a)).collect();
        if have == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "executors {have:?}, want {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_join_a_running_session_and_a_restarted_one_rejoins() {
    let joiners = Arc::new(std::sync::Mutex::new(Joiners {
        url: String::new(),
        children: Vec::new(),
    }));
    let first = Arc::clone(&joiners);
    let kiln = Session::builder()
        .listen("127.0.0.1:0".parse().unwrap(), 1)
        .auth_token(Joiners::TOKEN)
        .unwrap()
        .heartbeat_timeout(Duration::from_secs(3))
        .on_listen(move |addr| {
            let mut j = first.lock().unwrap();
            j.url = format!("http://{addr}");
            j.start("a");
        })
        .build()
        .await
        .unwrap();
    let query = "SELECT value % 7 AS k, count(*) AS n, sum(value) AS s \
                 FROM generate_series(1, 50000) GROUP BY k";
    let answer = || async { sorted_rows(&kiln.sql(query).await.unwrap().collect().await.unwrap()) };
    let expected = answer().await;
    assert_eq!(expected.len(), 7);
    executors_become(&kiln, &[("a", true)]).await;

    // A second executor joins the running session.
    let b = joiners.lock().unwrap().start("b");
    executors_become(&kiln, &[("a", true), ("b", true)]).await;
    // With the first gone, the query runs on the one that joined.
    joiners.lock().unwrap().kill(0);
    executors_become(&kiln, &[("a", false), ("b", true)]).await;
    assert_eq!(answer().await, expected);

    // The first, restarted under its name, rejoins; with the second gone, it runs the query.
    joiners.lock().unwrap().start("a");
    executors_become(&kiln, &[("a", false), ("b", true), ("a", true)]).await;
    joiners.lock().unwrap().kill(b);
    executors_become(&kiln, &[("a", false), ("b", false), ("a", true)]).await;
    assert_eq!(answer().await, expected);
}
