//! Docker with no registry, for the multi-host suite and the container benchmark: images built
//! from what the project builds (Kiln's from a `kiln` binary with `deploy/image/build.sh`,
//! SeaweedFS's from its static binary), kept under a tag naming the binary's size and time.

use std::path::Path;
use std::process::{Command, Output};

use crate::BoxError;

/// `docker ARGS`, its output.
///
/// # Errors
/// `docker` cannot be run.
pub fn docker(args: &[&str]) -> Result<Output, BoxError> {
    Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("run docker {args:?}: {e}").into())
}

/// `docker ARGS`, which must succeed; its standard output, trimmed.
///
/// # Errors
/// `docker` fails; the error holds its standard error.
pub fn docker_ok(args: &[&str]) -> Result<String, BoxError> {
    let out = docker(args)?;
    if !out.status.success() {
        return Err(format!(
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether a Docker daemon answers.
pub fn docker_reachable() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tag `name:SIZE-MTIME` naming a file's content.
fn content_tag(name: &str, file: &Path) -> Result<String, BoxError> {
    let meta = std::fs::metadata(file)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    Ok(format!("{name}:{:x}-{:x}", meta.len(), modified))
}

fn image_exists(tag: &str) -> Result<bool, BoxError> {
    Ok(docker(&["image", "inspect", tag])?.status.success())
}

/// Kiln's image from the `kiln` binary `bin`, tagged `repository:…`; images of earlier
/// binaries in that repository are removed (one still in use stays, refused by Docker).
///
/// # Errors
/// `deploy/image/build.sh` fails.
pub fn kiln_image(bin: &Path, repository: &str) -> Result<String, BoxError> {
    let tag = content_tag(repository, bin)?;
    if !image_exists(&tag)? {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace root")?;
        let out = Command::new(root.join("deploy/image/build.sh"))
            .arg(bin)
            .arg(&tag)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "deploy/image/build.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", repository])?;
        for old in String::from_utf8_lossy(&listed.stdout).lines() {
            if old != tag {
                let _ = docker(&["rmi", old]);
            }
        }
    }
    Ok(tag)
}

/// SeaweedFS's image: its static binary `weed` alone, `FROM scratch`.
///
/// # Errors
/// The build fails.
pub fn seaweedfs_image(weed: &Path) -> Result<String, BoxError> {
    let tag = content_tag("kiln-test-seaweedfs", weed)?;
    if !image_exists(&tag)? {
        let ctx = tempfile::tempdir()?;
        std::fs::copy(weed, ctx.path().join("weed"))?;
        std::fs::create_dir(ctx.path().join("tmp"))?;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY weed /weed\nCOPY tmp /tmp\nENTRYPOINT [\"/weed\"]\n",
        )?;
        docker_ok(&[
            "build",
            "--quiet",
            "--tag",
            &tag,
            &ctx.path().display().to_string(),
        ])?;
    }
    Ok(tag)
}

/// The identities file SeaweedFS's S3 gateway checks requests against: one identity.
pub fn s3_identities(access_key: &str, secret_key: &str) -> String {
    serde_json::json!({
        "identities": [{
            "name": "kiln",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]
    })
    .to_string()
}

/// The arguments of `weed` that start SeaweedFS's S3 gateway as the suites use it (bucket
/// `bucket` made at start, no other bucket made on demand, identities from
/// `/etc/seaweedfs/s3.json`), in a container listening on every interface.
pub fn seaweedfs_args(bucket: &str) -> Vec<String> {
    [
        "mini",
        "-dir=/tmp/data",
        "-ip.bind=0.0.0.0",
        &format!("-bucket={bucket}"),
        "-s3.autoCreateBucket=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.config=/etc/seaweedfs/s3.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
