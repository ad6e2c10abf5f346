//! What a killed driver leaves under the shuffle and cache roots: its lease expires, and a
//! later session or `kiln gc` removes its prefixes — never a live session's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::prelude::*;

use crate::sql::kiln_bin;

/// The session prefixes (`kiln-…`) directly under `root`.
fn session_prefixes(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("kiln-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn leases(root: &Path) -> Vec<String> {
    session_prefixes(&root.join("_kiln-sessions"))
}

/// Files under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Starts a `kiln sql` driver on `root` (TTL `ttl` seconds) that keeps one query's shuffle
/// files, then runs a query that does not end; returns once its files and lease are there.
fn a_driver_that_will_be_killed(root: &Path, cache: &Path, ttl: u64) -> std::process::Child {
    let mut child = Command::new(kiln_bin())
        .args([
            "sql",
            "--quiet",
            "--set",
            &format!("kiln.shuffle.root={}", root.display()),
            "--set",
            &format!("kiln.cache.root={}", cache.display()),
            "--set",
            &format!("kiln.orphan_ttl_secs={ttl}"),
            "--set",
            "kiln.shuffle.keep_files=true",
            "-e",
            "SELECT value % 7 AS k, count(*) FROM generate_series(1, 10000) GROUP BY 1",
            "-e",
            "SELECT sum(a.value * b.value) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        ])
        .env_remove("KILN_CONFIG")
        .env("HOME", root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let kept = session_prefixes(root).iter().any(|p| {
            files(&root.join(p))
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "arrow"))
        });
        if kept && leases(root).len() == 1 && leases(cache).len() == 1 {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "the driver wrote no shuffle files and leases: {:?}",
            files(root)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the driver ended early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_drivers_files_are_removed_after_its_ttl_and_a_live_sessions_never() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shuffle");
    let cache = dir.path().join("cache");
    let mut driver = a_driver_that_will_be_killed(&root, &cache, 8);
    let killed_prefix = session_prefixes(&root);
    driver.kill().unwrap();
    driver.wait().unwrap();
    let killed = Instant::now();

    // A live session on the same roots, with files of its own (kept shuffle files, cached
    // partitions).
    let live = Session::builder()
        .executors(2)
        .shuffle_root(root.to_str().unwrap())
        .cache_root(cache.to_str().unwrap())
        .keep_shuffle_files(true)
        .orphan_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    live.sql("SELECT value % 5 AS k, count(*) FROM generate_series(1, 1000) GROUP BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let cached = live
        .sql("SELECT CAST(value AS DOUBLE) AS x FROM generate_series(1, 100)")
        .await
        .unwrap()
        .cache()
        .await
        .unwrap();

    // Within its TTL (8 s, which its lease carries: longer than the live session's 1 s), the
    // killed driver's files stay: the live session's start-up pass found nothing to remove.
    let report = live.remove_orphans().await.unwrap();
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "too slow to test the TTL"
    );
    assert!(report.prefixes.is_empty(), "{report:?}");
    assert!(session_prefixes(&root).contains(&killed_prefix[0]));

    // After it, the next pass (here `kiln gc`) removes the killed driver's prefix and both its
    // leases, and nothing of the live session, which renews its lease every 250 ms.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(killed.elapsed())).await;
    let out = Command::new(kiln_bin())
        .args([
            "gc",
            "--shuffle-root",
            root.to_str().unwrap(),
            "--cache-root",
            cache.to_str().unwrap(),
            "--ttl",
            "1",
        ])
        .env_remove("KILN_CONFIG")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&killed_prefix[0]), "{stdout}");
    assert!(
        stderr.contains("removed 1 orphaned session prefix"),
        "{stderr}"
    );
    assert_eq!(session_prefixes(&root), vec![live.id().to_string()]);
    assert_eq!(leases(&root), vec![live.id().to_string()]);
    assert_eq!(leases(&cache), vec![live.id().to_string()]);

    // The live session's files are all there: its cache still answers.
    assert_eq!(cached.count().await.unwrap(), 100);
    let kept = files(&root.join(live.id()));
    assert!(
        kept.iter()
            .any(|f| f.extension().is_some_and(|e| e == "arrow")),
        "{kept:?}"
    );
    cached.unpersist().await.unwrap();
    drop((cached, live));
    assert_eq!(leases(&root), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_removes_a_killed_drivers_files_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shuffle");
    let cache = dir.path().join("cache");
    let mut driver = a_driver_that_will_be_killed(&root, &cache, 1);
    let killed_prefix = session_prefixes(&root);
    driver.kill().unwrap();
    driver.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let next = Session::builder()
        .executors(1)
        .shuffle_root(root.to_str().unwrap())
        .cache_root(cache.to_str().unwrap())
        .orphan_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    // `remove_orphans` first waits for the pass the session started with, which did it.
    let report = next.remove_orphans().await.unwrap();
    assert_eq!(
        report.prefixes,
        vec![format!(
            "{}{}/",
            url::Url::from_directory_path(&root).unwrap(),
            killed_prefix[0]
        )]
    );
    assert!(report.objects > 2, "{report:?}");
    assert!(session_prefixes(&root).is_empty(), "{:?}", files(&root));
    assert_eq!(leases(&root), vec![next.id().to_string()]);
    assert_eq!(leases(&cache), vec![next.id().to_string()]);
    assert_eq!(next.config().get("kiln.orphan_ttl_secs"), Some("1"));
}

#[test]
fn an_orphan_ttl_of_zero_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(kiln_bin())
        .args(["gc", "--set", "kiln.orphan_ttl_secs=0"])
        .env_remove("KILN_CONFIG")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kiln.orphan_ttl_secs"), "{stderr}");
    let out = Command::new(kiln_bin())
        .args(["gc", "--ttl", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A session that has just started may hold an empty prefix before a pass sees its lease:
/// that prefix stays (removing it lost a running job's shuffle files); only directories idle
/// for the TTL go, and never one with a new file in it.
#[test]
fn an_empty_prefix_is_removed_only_when_idle_for_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shuffle");
    let fresh = root.join("kiln-0123456789ab");
    let stage = fresh.join("job-0-0123456789ab").join("1");
    std::fs::create_dir_all(&stage).unwrap();
    let gc = || {
        let out = Command::new(kiln_bin())
            .args(["gc", "--shuffle-root", root.to_str().unwrap(), "--ttl", "1"])
            .env_remove("KILN_CONFIG")
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let backdate = |path: &Path| {
        let status = Command::new("touch")
            .args(["-d", "1 hour ago"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };

    gc();
    assert!(stage.is_dir(), "a fresh empty prefix was removed");

    // An old directory that a new file arrived in stays, file and all.
    std::fs::write(stage.join("0-0.arrow"), b"x").unwrap();
    backdate(&fresh);
    gc();
    assert!(stage.join("0-0.arrow").is_file());
    std::fs::remove_file(stage.join("0-0.arrow")).unwrap();

    // An idle prefix with only directories is removed; a fresh one beside it stays.
    let idle = root.join("kiln-ba9876543210");
    std::fs::create_dir_all(idle.join("job-1-ba9876543210").join("2")).unwrap();
    std::fs::remove_dir_all(&fresh).unwrap();
    std::fs::create_dir_all(&stage).unwrap();
    backdate(&idle);
    gc();
    assert!(!idle.exists());
    assert!(stage.is_dir());

    // A killed writer's half-written staging file (which an object listing does not show)
    // goes with its idle prefix; a fresh one stays.
    let killed = root.join("kiln-a1b2c3d4e5f6");
    let staging = killed
        .join("job-2-a1b2c3d4e5f6")
        .join("1")
        .join("0-0.arrow#1");
    std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
    std::fs::write(&staging, b"half").unwrap();
    gc();
    assert!(staging.is_file(), "a fresh staging file was removed");
    backdate(&staging);
    backdate(&killed);
    gc();
    assert!(!killed.exists(), "{:?}", files(&root));
}
