//! Kiln's settings (`kiln.*`): what they are, where they come from, and how they make a
//! session.
//!
//! A [`Config`] starts from the defaults and takes, in rising order of precedence:
//!
//! 1. a config file: the path given (`kiln sql --config FILE`), else `$KILN_CONFIG`, else
//!    `$XDG_CONFIG_HOME/kiln/kiln.conf` (or `~/.config/kiln/kiln.conf`) when it exists. One
//!    `key = value` per line, `#` comments; values may be quoted. Besides `kiln.*`, a file may
//!    set DataFusion's options (`datafusion.execution.batch_size = 4096`);
//! 2. environment variables: `KILN_` and the key after `kiln.`, upper case, dots as
//!    underscores (`kiln.executors` is `KILN_EXECUTORS`, `kiln.store.max_retries` is
//!    `KILN_STORE_MAX_RETRIES`);
//! 3. command-line flags (`--executors 4`);
//! 4. `SET kiln.key = value` statements.
//!
//! Settings of [`Scope::Startup`] (how many executors, where they run, where the shuffle
//! goes) are fixed once a session runs: `kiln sql` and `kiln shell` restart the session on
//! `SET`, carrying its tables over; a Rust program builds a new session. Settings of
//! [`Scope::Session`] change a running session at once. `SHOW ALL` lists every setting with
//! its value and source; secrets (`kiln.auth_token`, object-store credentials in the
//! environment) show as `********`.
//!
//! ```
//! use kiln::config::{Config, Source};
//! let mut config = Config::new();
//! config.set("kiln.executors", "4", Source::Flag).unwrap();
//! assert_eq!(config.get("kiln.executors"), Some("4"));
//! let err = config.set("kiln.executors", "zero", Source::Flag).unwrap_err();
//! assert!(err.to_string().contains("kiln.executors"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use datafusion::config::ConfigOptions;

use crate::error::{EngineError, Result};

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "KILN_CONFIG";

/// What is shown instead of a secret's value.
pub const REDACTED: &str = "********";

/// When a setting can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read when a session starts; fixed while it runs.
    Startup,
    /// Changes a running session at once.
    Session,
}

/// Environment variable holding the cluster's shared secret.
pub const AUTH_TOKEN_ENV: &str = "KILN_AUTH_TOKEN";

/// Environment variable naming the `kiln` binary that `local_cluster` starts.
pub const EXECUTOR_BIN_ENV: &str = "KILN_EXECUTOR_BIN";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Kiln's default.
    Default,
    /// A line of a config file.
    File {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag,
    /// A `SET` statement.
    Set,
    /// A [`SessionBuilder`](crate::SessionBuilder) method.
    Api,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag => write!(f, "flag"),
            Source::Set => write!(f, "SET"),
            Source::Api => write!(f, "api"),
        }
    }
}

/// The kind of value a setting takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer `>= min`.
    Int { min: u64 },
    /// A byte count with an optional binary suffix (`512m`, `2g`); empty for none.
    Size,
    /// `true` or `false`.
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `host:port`.
    Address,
    /// Any text (empty for none).
    Text,
}

impl Kind {
    /// `value` in its canonical form, or why it is not one of these.
    fn check(self, value: &str) -> std::result::Result<String, String> {
        let v = value.trim();
        match self {
            Kind::Int { min } => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .map(|n| n.to_string())
                .ok_or_else(|| format!("must be a whole number >= {min}, got '{value}'")),
            Kind::Size if v.is_empty() => Ok(String::new()),
            Kind::Size => parse_size(v)
                .map(|n| n.to_string())
                .ok_or_else(|| format!("must be a size such as 512m or 4g, got '{value}'")),
            Kind::Bool => match v.to_ascii_lowercase().as_str() {
                "true" | "on" | "1" => Ok("true".into()),
                "false" | "off" | "0" => Ok("false".into()),
                _ => Err(format!("must be true or false, got '{value}'")),
            },
            Kind::Choice(words) => {
                let lower = v.to_ascii_lowercase().replace('-', "_");
                words
                    .iter()
                    .find(|w| **w == lower)
                    .map(|w| (*w).to_string())
                    .ok_or_else(|| format!("must be one of {}, got '{value}'", words.join(", ")))
            }
            Kind::Address => {
                let bare = v
                    .strip_prefix("kiln://")
                    .or_else(|| v.strip_prefix("http://"))
                    .unwrap_or(v)
                    .trim_end_matches('/');
                bare.parse::<std::net::SocketAddr>()
                    .map(|a| a.to_string())
                    .map_err(|_| format!("must be an address such as 0.0.0.0:7077, got '{value}'"))
            }
            Kind::Text => Ok(v.to_string()),
        }
    }
}

/// One setting Kiln knows.
#[derive(Debug)]
struct Spec {
    key: &'static str,
    /// The default value (`kiln.slots_per_executor`'s, empty here, is half the cores).
    default: &'static str,
    kind: Kind,
    scope: Scope,
    secret: bool,
    doc: &'static str,
}

const MODES: &[&str] = &["embedded", "local_cluster", "cluster"];
const COMPRESSIONS: &[&str] = &["none", "lz4", "zstd"];

/// Every `kiln.*` setting, in the order `SHOW ALL` lists them.
const SPECS: &[Spec] = &[
    Spec {
        key: "kiln.mode",
        default: "embedded",
        kind: Kind::Choice(MODES),
        scope: Scope::Startup,
        secret: false,
        doc: "where executors run: embedded (threads of this process), local_cluster (child processes), cluster (processes that join kiln.cluster.listen)",
    },
    Spec {
        key: "kiln.executors",
        default: "2",
        kind: Kind::Int { min: 1 },
        scope: Scope::Startup,
        secret: false,
        doc: "how many executors the session has (waits for this many in cluster mode)",
    },
    Spec {
        key: "kiln.slots_per_executor",
        default: "",
        kind: Kind::Int { min: 1 },
        scope: Scope::Startup,
        secret: false,
        doc: "tasks an executor runs at once",
    },
    Spec {
        key: "kiln.memory_limit",
        default: "",
        kind: Kind::Size,
        scope: Scope::Startup,
        secret: false,
        doc: "memory of all executors together, split evenly (empty: no limit)",
    },
    Spec {
        key: "kiln.batch_size",
        default: "8192",
        kind: Kind::Int { min: 1 },
        scope: Scope::Startup,
        secret: false,
        doc: "rows per Arrow batch",
    },
    Spec {
        key: "kiln.shuffle.root",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "directory or object-store URL of shuffle files (empty: a temporary directory)",
    },
    Spec {
        key: "kiln.shuffle.compression",
        default: "lz4",
        kind: Kind::Choice(COMPRESSIONS),
        scope: Scope::Startup,
        secret: false,
        doc: "compression of shuffle files",
    },
    Spec {
        key: "kiln.shuffle.keep_files",
        default: "false",
        kind: Kind::Bool,
        scope: Scope::Session,
        secret: false,
        doc: "keep a job's shuffle files after it ends (for debugging)",
    },
    Spec {
        key: "kiln.cache.root",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "directory or object-store URL of cached training data (empty: under the shuffle root)",
    },
    Spec {
        key: "kiln.orphan_ttl_secs",
        default: "600",
        kind: Kind::Int { min: 1 },
        scope: Scope::Startup,
        secret: false,
        doc: "seconds before the shuffle and cache files of a killed session are removed by a later session or kiln gc",
    },
    Spec {
        key: "kiln.ui.port",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "port of the driver's web UI and /metrics (empty: no UI; 0: any free port; a taken port: the next free of 16)",
    },
    Spec {
        key: "kiln.ui.host",
        default: "127.0.0.1",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "address the web UI listens on (off loopback it requires the auth token)",
    },
    Spec {
        key: "kiln.eventlog.dir",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "directory or object-store URL the session's event log is written to (empty: none); kiln history serves it",
    },
    Spec {
        key: "kiln.max_task_attempts",
        default: "4",
        kind: Kind::Int { min: 1 },
        scope: Scope::Session,
        secret: false,
        doc: "attempts of a task before its job fails",
    },
    Spec {
        key: "kiln.broadcast_threshold",
        default: "10485760",
        kind: Kind::Int { min: 0 },
        scope: Scope::Session,
        secret: false,
        doc: "largest estimated build side, in bytes, that a join broadcasts instead of shuffling",
    },
    Spec {
        key: "kiln.models_dir",
        default: "kiln-models",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "the model catalog's directory (empty: models live only as long as the session)",
    },
    Spec {
        key: "kiln.cluster.kubernetes",
        default: "false",
        kind: Kind::Bool,
        scope: Scope::Startup,
        secret: false,
        doc: "the driver creates its executors as Kubernetes pods (kiln.kubernetes.*) and deletes them at the end",
    },
    Spec {
        key: "kiln.kubernetes.namespace",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "namespace of the executor pods (empty: the service account's, else default)",
    },
    Spec {
        key: "kiln.kubernetes.image",
        default: "kiln:latest",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "image of the executor pods",
    },
    Spec {
        key: "kiln.kubernetes.image_pull_policy",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "Always, IfNotPresent or Never (empty: Kubernetes' default)",
    },
    Spec {
        key: "kiln.kubernetes.driver_pod",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "the driver's pod, owner of the executor pods (empty: $HOSTNAME if such a pod exists)",
    },
    Spec {
        key: "kiln.kubernetes.driver_url",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "URL the executor pods dial (empty: http://$KILN_POD_IP:PORT, else the host name)",
    },
    Spec {
        key: "kiln.kubernetes.executor_cpu",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "CPU each executor pod requests and is limited to (e.g. 1, 500m)",
    },
    Spec {
        key: "kiln.kubernetes.executor_memory",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "memory each executor pod requests and is limited to (e.g. 1Gi)",
    },
    Spec {
        key: "kiln.kubernetes.token_secret",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "Secret whose key KILN_AUTH_TOKEN the executor pods take the token from (empty: the token is written into the pod spec)",
    },
    Spec {
        key: "kiln.kubernetes.env_config_maps",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "comma-separated ConfigMaps whose keys become the executor pods' environment",
    },
    Spec {
        key: "kiln.kubernetes.env_secrets",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "comma-separated Secrets whose keys become the executor pods' environment",
    },
    Spec {
        key: "kiln.kubernetes.service_account",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "service account of the executor pods",
    },
    Spec {
        key: "kiln.cluster.listen",
        default: "127.0.0.1:7077",
        kind: Kind::Address,
        scope: Scope::Startup,
        secret: false,
        doc: "address the driver listens on for executors in cluster mode (port 0: any free port)",
    },
    Spec {
        key: "kiln.auth_token",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: true,
        doc: "shared secret of the driver and its executors in cluster mode",
    },
    Spec {
        key: "kiln.cluster.heartbeat_timeout_secs",
        default: "10",
        kind: Kind::Int { min: 1 },
        scope: Scope::Startup,
        secret: false,
        doc: "seconds an executor may stay silent before it is declared lost",
    },
    Spec {
        key: "kiln.cluster.tls_cert",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "PEM certificate the driver serves executors with over TLS (with tls_key and tls_ca; empty: plaintext)",
    },
    Spec {
        key: "kiln.cluster.tls_key",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "PEM private key of kiln.cluster.tls_cert",
    },
    Spec {
        key: "kiln.cluster.tls_ca",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "PEM authority that signed kiln.cluster.tls_cert (local-cluster executors trust it)",
    },
    Spec {
        key: "kiln.cluster.tls_client_ca",
        default: "",
        kind: Kind::Text,
        scope: Scope::Startup,
        secret: false,
        doc: "mutual TLS: executors must present a certificate signed by this PEM authority",
    },
    Spec {
        key: "kiln.store.max_retries",
        default: "3",
        kind: Kind::Int { min: 0 },
        scope: Scope::Startup,
        secret: false,
        doc: "retries of a failed object-store request",
    },
    Spec {
        key: "kiln.store.retry_timeout_secs",
        default: "30",
        kind: Kind::Int { min: 0 },
        scope: Scope::Startup,
        secret: false,
        doc: "seconds after a request's first attempt when its retries stop",
    },
];

fn spec(key: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.key.eq_ignore_ascii_case(key))
}

/// The environment variable of a `kiln.*` key: `kiln.store.max_retries` is
/// `KILN_STORE_MAX_RETRIES`.
pub fn env_var(key: &str) -> String {
    key.replace('.', "_").to_ascii_uppercase()
}

/// A setting as `SHOW ALL` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key (`kiln.executors`).
    pub name: String,
    /// The value, or [`REDACTED`] for a secret that is set.
    pub value: String,
    /// Where the value came from.
    pub source: String,
    /// What the setting does.
    pub description: String,
}

/// Kiln's settings with where each came from (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, (String, Source)>,
    /// DataFusion options from a config file, in file order.
    datafusion: Vec<(String, String, Source)>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// Kiln's defaults.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let default = |s: &Spec| match s.key {
            "kiln.slots_per_executor" => (cores / 2).max(1).to_string(),
            _ => s.default.to_string(),
        };
        Self {
            values: SPECS
                .iter()
                .map(|s| (s.key, (default(s), Source::Default)))
                .collect(),
            datafusion: Vec::new(),
        }
    }

    /// The defaults, then the config file (`file`, else `$KILN_CONFIG`, else the user's
    /// `kiln/kiln.conf` when it exists), then the environment.
    ///
    /// # Errors
    /// [`EngineError::Config`] naming the file and line, or the variable, of a bad setting;
    /// a config file that was named but cannot be read.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut config = Self::new();
        let named = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
        match named {
            Some(path) => config.read_file(&path)?,
            None => {
                if let Some(path) = user_config_file().filter(|p| p.is_file()) {
                    config.read_file(&path)?;
                }
            }
        }
        config.read_env(|var| std::env::var(var).ok())?;
        Ok(config)
    }

    /// Takes the settings of the config file at `path`.
    ///
    /// # Errors
    /// [`EngineError::Config`] naming the file and line of a bad line or value; a file that
    /// cannot be read.
    pub fn read_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Config {
            key: CONFIG_ENV.to_string(),
            reason: format!("cannot read the config file {}: {e}", path.display()),
        })?;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let source = Source::File {
                path: path.to_path_buf(),
                line: i + 1,
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(EngineError::Config {
                    key: line.to_string(),
                    reason: format!("{source}: expected `key = value`"),
                });
            };
            self.set(key.trim(), unquote(value.trim()), source)?;
        }
        Ok(())
    }

    /// Takes the `KILN_*` variables of the settings from `lookup` (the process environment in
    /// [`load`](Self::load)).
    ///
    /// # Errors
    /// [`EngineError::Config`] naming the variable of a bad value.
    pub fn read_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        for s in SPECS {
            let var = env_var(s.key);
            if let Some(value) = lookup(&var) {
                self.set(s.key, &value, Source::Env(var))?;
            }
        }
        Ok(())
    }

    /// Sets `key` (a `kiln.*` setting, or a `datafusion.*` option) to `value`.
    ///
    /// # Errors
    /// [`EngineError::Config`] for an unknown key (listing the known ones) or a value the
    /// setting does not take, naming `source`.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<()> {
        let where_ = |reason: String| match &source {
            Source::Default | Source::Flag | Source::Set | Source::Api => reason,
            other => format!("{reason} (from {other})"),
        };
        if key.to_ascii_lowercase().starts_with("datafusion.") {
            let mut probe = ConfigOptions::new();
            probe.set(key, value).map_err(|e| EngineError::Config {
                key: key.to_string(),
                reason: where_(e.strip_backtrace()),
            })?;
            self.datafusion.retain(|(k, _, _)| k != key);
            self.datafusion
                .push((key.to_string(), value.to_string(), source));
            return Ok(());
        }
        let Some(spec) = spec(key) else {
            return Err(match unknown_setting(key) {
                EngineError::Config { key, reason } => EngineError::Config {
                    key,
                    reason: where_(reason),
                },
                other => other,
            });
        };
        let value = spec
            .kind
            .check(value)
            .map_err(|reason| EngineError::Config {
                key: spec.key.to_string(),
                reason: where_(reason),
            })?;
        self.values.insert(spec.key, (value, source));
        Ok(())
    }

    /// The value of a `kiln.*` setting (secrets too).
    pub fn get(&self, key: &str) -> Option<&str> {
        let spec = spec(key)?;
        self.values.get(spec.key).map(|(v, _)| v.as_str())
    }

    /// Where the value of a `kiln.*` setting came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        let spec = spec(key)?;
        self.values.get(spec.key).map(|(_, s)| s)
    }

    /// Whether `key` is a `kiln.*` setting fixed once a session starts.
    pub fn is_startup(key: &str) -> bool {
        spec(key).is_some_and(|s| s.scope == Scope::Startup)
    }

    /// The `kiln.*` settings, secrets redacted, and the DataFusion options of the config file.
    pub fn settings(&self) -> Vec<Setting> {
        let mut out: Vec<Setting> = SPECS
            .iter()
            .filter_map(|s| {
                let (value, source) = self.values.get(s.key)?;
                Some(Setting {
                    name: s.key.to_string(),
                    value: if s.secret && !value.is_empty() {
                        REDACTED.to_string()
                    } else {
                        value.clone()
                    },
                    source: source.to_string(),
                    description: s.doc.to_string(),
                })
            })
            .collect();
        out.extend(self.datafusion.iter().map(|(k, v, s)| Setting {
            name: k.clone(),
            value: v.clone(),
            source: s.to_string(),
            description: String::new(),
        }));
        out
    }

    /// The DataFusion options the config file sets, in file order.
    pub(crate) fn datafusion_options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.datafusion
            .iter()
            .map(|(k, v, _)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn int(&self, key: &str) -> Result<u64> {
        let value = self.get(key).unwrap_or_default();
        value.parse().map_err(|_| EngineError::Config {
            key: key.to_string(),
            reason: format!("not a whole number: '{value}'"),
        })
    }

    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        usize::try_from(self.int(key)?).map_err(|_| EngineError::Config {
            key: key.to_string(),
            reason: "out of range".into(),
        })
    }

    pub(crate) fn text(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

/// The canonical name of the setting `key` (a `kiln.*` setting, any case).
///
/// # Errors
/// [`EngineError::Config`] listing the settings when `key` is not one.
pub fn known_key(key: &str) -> Result<&'static str> {
    spec(key).map(|s| s.key).ok_or_else(|| unknown_setting(key))
}

/// The error for a `kiln.*` key that is not a setting, listing the settings.
pub(crate) fn unknown_setting(key: &str) -> EngineError {
    EngineError::Config {
        key: key.to_string(),
        reason: format!(
            "unknown setting; settings: {}",
            SPECS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The user's config file: `$XDG_CONFIG_HOME/kiln/kiln.conf`, else `~/.config/kiln/kiln.conf`.
fn user_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("kiln").join("kiln.conf"))
}

fn unquote(v: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// A byte count with an optional binary suffix: `512m`, `2g`, `1048576`; `None` if it is not
/// one or is zero.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: usize = digits.trim().parse().ok()?;
    n.checked_mul(1usize << shift).filter(|n| *n > 0)
}

/// Whether an environment variable holds a secret (its value is never shown).
fn is_secret(var: &str) -> bool {
    let v = var.to_ascii_uppercase();
    !v.ends_with("_KEY_ID")
        && ["SECRET", "TOKEN", "PASSWORD", "KEY", "CREDENTIAL", "SAS"]
            .iter()
            .any(|w| v.contains(w))
}

/// The object-store settings found in the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as
/// `SHOW ALL` lists them: named `env.VARIABLE`, secrets redacted.
pub fn store_environment() -> Vec<Setting> {
    let mut out: Vec<Setting> = std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| Setting {
            name: format!("env.{k}"),
            value: if is_secret(&k) { REDACTED.into() } else { v },
            source: format!("env {k}"),
            description: "object-store setting read from the environment".into(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn later_sources_win_and_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kiln.conf");
        std::fs::write(
            &file,
            "# a comment\nkiln.executors = 3\nkiln.models_dir = '/srv/models'\n\ndatafusion.execution.batch_size = 1024\n",
        )
        .unwrap();
        let mut c = Config::new();
        c.read_file(&file).unwrap();
        assert_eq!(c.get("kiln.executors"), Some("3"));
        assert_eq!(c.get("kiln.models_dir"), Some("/srv/models"));
        assert_eq!(
            c.source("kiln.executors").unwrap().to_string(),
            format!("{}:2", file.display())
        );
        c.read_env(|v| (v == "KILN_EXECUTORS").then(|| "5".to_string()))
            .unwrap();
        assert_eq!(c.get("kiln.executors"), Some("5"));
        assert_eq!(
            c.source("kiln.executors"),
            Some(&Source::Env("KILN_EXECUTORS".into()))
        );
        c.set("kiln.executors", "6", Source::Set).unwrap();
        assert_eq!(c.get("kiln.executors"), Some("6"));
        let df: Vec<_> = c.datafusion_options().collect();
        assert_eq!(df, vec![("datafusion.execution.batch_size", "1024")]);
    }

    #[test]
    fn bad_values_name_the_setting_and_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kiln.conf");
        std::fs::write(&file, "kiln.executors = 2\nkiln.mode = galaxy\n").unwrap();
        let err = Config::new().read_file(&file).unwrap_err().to_string();
        assert!(err.contains("kiln.mode"), "{err}");
        assert!(err.contains("embedded, local_cluster, cluster"), "{err}");
        assert!(err.contains(&format!("{}:2", file.display())), "{err}");

        std::fs::write(&file, "executors 2\n").unwrap();
        let err = Config::new().read_file(&file).unwrap_err().to_string();
        assert!(err.contains("expected `key = value`"), "{err}");

        let err = Config::new()
            .read_env(|v| (v == "KILN_MAX_TASK_ATTEMPTS").then(|| "0".to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kiln.max_task_attempts"), "{err}");
        assert!(err.contains("KILN_MAX_TASK_ATTEMPTS"), "{err}");

        let err = Config::new()
            .set("kiln.executor", "2", Source::Set)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown setting") && err.contains("kiln.executors"),
            "{err}"
        );
        let err = Config::new()
            .set("datafusion.execution.no_such", "1", Source::Set)
            .unwrap_err()
            .to_string();
        assert!(err.contains("datafusion.execution.no_such"), "{err}");
        let err = Config::new()
            .read_file(Path::new("/no/such/kiln.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/kiln.conf"), "{err}");
    }

    #[test]
    fn values_take_their_canonical_form() {
        let mut c = Config::new();
        c.set("kiln.memory_limit", "2g", Source::Flag).unwrap();
        assert_eq!(
            c.get("kiln.memory_limit"),
            Some(&*(2usize << 30).to_string())
        );
        c.set("kiln.mode", "Local-Cluster", Source::Flag).unwrap();
        assert_eq!(c.get("kiln.mode"), Some("local_cluster"));
        c.set("kiln.cluster.listen", "kiln://127.0.0.1:0", Source::Flag)
            .unwrap();
        assert_eq!(c.get("kiln.cluster.listen"), Some("127.0.0.1:0"));
        c.set("kiln.shuffle.keep_files", "ON", Source::Flag)
            .unwrap();
        assert_eq!(c.get("kiln.shuffle.keep_files"), Some("true"));
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::new();
        c.set("kiln.auth_token", "hunter2", Source::Flag).unwrap();
        let shown = c.settings();
        let token = shown.iter().find(|s| s.name == "kiln.auth_token").unwrap();
        assert_eq!(token.value, REDACTED);
        assert!(!format!("{shown:?}").contains("hunter2"));
        assert!(is_secret("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret("AWS_SESSION_TOKEN"));
        assert!(is_secret("AZURE_STORAGE_ACCOUNT_KEY"));
        assert!(!is_secret("AWS_ACCESS_KEY_ID"));
        assert!(!is_secret("AWS_ENDPOINT"));
    }

    #[test]
    fn every_setting_has_a_default_and_an_env_var() {
        let c = Config::new();
        for s in SPECS {
            assert!(c.get(s.key).is_some(), "{}", s.key);
            assert!(env_var(s.key).starts_with("KILN_"));
            s.kind.check(c.get(s.key).unwrap()).unwrap();
        }
        assert_eq!(env_var("kiln.models_dir"), "KILN_MODELS_DIR");
        assert_eq!(env_var("kiln.auth_token"), crate::AUTH_TOKEN_ENV);
        assert_eq!(
            env_var("kiln.store.max_retries"),
            kiln_executor::store::MAX_RETRIES_ENV
        );
        assert_eq!(
            env_var("kiln.store.retry_timeout_secs"),
            kiln_executor::store::RETRY_TIMEOUT_ENV
        );
    }
}
