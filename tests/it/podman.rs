//! The Kubernetes manifests run: `podman kube play` of the rendered `local` overlay — the
//! driver's pod (its Job's template) and the executor Deployment's three pods, with the
//! overlay's ConfigMaps and Secret — on a podman network with SeaweedFS as the S3 server. A
//! query and a k-means `TRAIN MODEL` through the pods print what the embedded run prints.
//!
//! Skipped with one line where podman is not installed or no Docker daemon answers (the
//! images are built with Docker and loaded into podman; there is no registry).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::hosts::{docker_reachable, kiln_image, seaweedfs_image};
use crate::s3::{write_s3_config, ACCESS_KEY, SECRET_KEY};
use crate::sql::kiln_bin;

/// The pods and Secret the overlay names (podman's names are global: one such test at a time).
const PODS: [&str; 4] = [
    "kiln-driver",
    "kiln-executor-pod-0",
    "kiln-executor-pod-1",
    "kiln-executor-pod-2",
];
const SECRET: &str = "kiln-credentials";
const TOKEN: &str = "podman-play-token";

const SCRIPT: &str = "\
SELECT k, count(*) AS n, sum(v) AS s FROM (SELECT value % 10 AS k, value AS v FROM generate_series(1, 1000000)) GROUP BY k ORDER BY k;
CREATE TABLE pts AS SELECT CAST(value % 97 AS DOUBLE) AS x, CAST((value * 7) % 89 AS DOUBLE) AS y FROM generate_series(1, 30000);
TRAIN MODEL km USING kmeans (k = 3, seed = 7) AS SELECT x, y FROM pts;
SELECT predict(km, x, y) AS c, count(*) AS n, min(x) AS lo, max(x) AS hi FROM pts GROUP BY 1 ORDER BY 1;
";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// podman with the suite's configuration, and what it made, removed on drop.
struct Podman {
    dir: tempfile::TempDir,
    conf: PathBuf,
    network: String,
    played: Option<PathBuf>,
    s3: Option<String>,
}

impl Podman {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("containers.conf");
        let wrapper = root().join("tests/podman/runc-clamped");
        std::fs::write(
            &conf,
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 runtime = \"clamped\"\n[engine.runtimes]\nclamped = [\"{}\"]\n",
                wrapper.display()
            ),
        )
        .unwrap();
        let network = format!("kiln-kube-{:x}", std::process::id() ^ rand::random::<u32>());
        let podman = Self {
            dir,
            conf,
            network,
            played: None,
            s3: None,
        };
        // What a run killed half-way may have left.
        let mut rm = vec!["pod", "rm", "-f"];
        rm.extend(PODS);
        let _ = podman.run(&rm);
        let _ = podman.run(&["secret", "rm", SECRET]);
        podman.ok(&["network", "create", &podman.network]);
        podman
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podman {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Loads a Docker image into podman's store (as `localhost/NAME`), unless it is there.
    fn load(&self, docker_tag: &str) -> String {
        let name = format!("localhost/{docker_tag}");
        if !self.run(&["image", "exists", &name]).status.success() {
            let mut save = Command::new("docker")
                .args(["save", docker_tag])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = self
                .command()
                .args(["load", "-q"])
                .stdin(save.stdout.take().unwrap())
                .output()
                .unwrap();
            assert!(save.wait().unwrap().success());
            assert!(out.status.success(), "podman load:\n{}", text(&out));
        }
        name
    }

    /// Waits for a container to exit; its exit code and logs.
    fn wait(&self, container: &str, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.ok(&["inspect", "--format", "{{.State.Status}}", container]);
            if state == "exited" || state == "stopped" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{container} still {state} after {limit:?}:\n{}",
                text(&self.run(&["logs", container]))
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let code = self.ok(&["inspect", "--format", "{{.State.ExitCode}}", container]);
        (
            code.parse().unwrap_or(-1),
            text(&self.run(&["logs", container])),
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(played) = &self.played {
            let _ = self.run(&["kube", "down", played.to_str().unwrap()]);
        }
        if let Some(s3) = &self.s3 {
            let _ = self.run(&["rm", "-f", "-t", "0", s3]);
        }
        let _ = self.run(&["secret", "rm", SECRET]);
        let _ = self.run(&["network", "rm", "-f", &self.network]);
    }
}

fn podman_installed(test: &str) -> bool {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "{test}: skipped, podman is not installed (the test command installs it with apt)"
        );
    }
    ok && docker_reachable(test)
}

/// The results `kiln sql --format csv` prints, without the lines Kiln says about itself.
fn results(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| !l.starts_with("kiln: ") && !l.starts_with("kiln executor"))
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn podman_kube_play_runs_the_manifests_and_a_query_and_a_train_through_them() {
    let test = "podman::podman_kube_play_runs_the_manifests";
    if !podman_installed(test) {
        return;
    }
    let mut podman = Podman::new();
    let kiln = podman.load(&kiln_image());
    let seaweedfs = podman.load(&seaweedfs_image());

    // The S3 server, as `s3` on the network (the overlay's AWS_ENDPOINT).
    let config = podman.dir.path().join("seaweedfs");
    std::fs::create_dir(&config).unwrap();
    write_s3_config(&config.join("s3.json"));
    let s3_name = format!("s3-{}", podman.network);
    let volume = format!("{}:/etc/seaweedfs:ro", config.display());
    let mut run = vec![
        "run",
        "-d",
        "--name",
        &s3_name,
        "--network",
        &podman.network,
        "--network-alias",
        "s3",
        "-v",
        &volume,
        &seaweedfs,
    ];
    let weed_args = kiln_tests::containers::seaweedfs_args("kiln");
    run.extend(weed_args.iter().map(String::as_str));
    podman.ok(&run);
    podman.s3 = Some(s3_name);

    // The rendered overlay, made playable (tests/podman/play.py says how).
    let rendered = podman.dir.path().join("rendered.yaml");
    let out = Command::new(root().join(".venv/bin/kubectl"))
        .args(["kustomize", "deploy/kubernetes/overlays/local"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&rendered, &out.stdout).unwrap();
    let script = podman.dir.path().join("job.sql");
    std::fs::write(&script, SCRIPT).unwrap();
    let played = podman.dir.path().join("play.yaml");
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/podman/play.py"))
        .args([rendered.to_str().unwrap(), played.to_str().unwrap()])
        .args(["--image", &kiln, "--script", script.to_str().unwrap()])
        .args([
            "--set",
            &format!("{SECRET}.AWS_ACCESS_KEY_ID={ACCESS_KEY}"),
            "--set",
            &format!("{SECRET}.AWS_SECRET_ACCESS_KEY={SECRET_KEY}"),
            "--set",
            &format!("{SECRET}.KILN_AUTH_TOKEN={TOKEN}"),
            "--driver-arg=--format",
            "--driver-arg=csv",
            "--driver-arg=--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), SECRET);
    let secret = format!("{}.{SECRET}.secret.json", played.display());
    podman.ok(&["secret", "create", SECRET, &secret]);

    podman.played = Some(played.clone());
    let started = Instant::now();
    podman.ok(&[
        "kube",
        "play",
        "--network",
        &podman.network,
        played.to_str().unwrap(),
    ]);
    let (code, logs) = podman.wait("kiln-driver-driver", Duration::from_secs(180));
    assert_eq!(code, 0, "the driver failed:\n{logs}");
    let elapsed = started.elapsed();
    for i in 0..3 {
        let executor = format!("kiln-executor-pod-{i}-executor");
        let logs = text(&podman.run(&["logs", &executor]));
        assert!(
            logs.contains("joined the driver at http://kiln-driver:7077"),
            "{executor}:\n{logs}"
        );
    }

    // The same script embedded, in the pods' shape (3 executors × 2 slots).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), SCRIPT).unwrap();
    let out = Command::new(kiln_bin())
        .args([
            "sql",
            "--executors",
            "3",
            "--set",
            "kiln.slots_per_executor=2",
            "--format",
            "csv",
            "--quiet",
            "-f",
            "job.sql",
        ])
        .env_remove("KILN_CONFIG")
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let embedded = results(&String::from_utf8_lossy(&out.stdout));
    let on_pods = results(&logs);
    assert!(embedded.len() > 15, "{embedded:?}");
    assert_eq!(on_pods, embedded, "pods:\n{logs}");
    eprintln!("{test}: the driver pod ran the script with 3 executor pods in {elapsed:?}");
}
