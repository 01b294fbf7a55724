//! Test harness for talking to the local AWS emulator (moto's server behind the
//! project's launcher, `emulator/launcher.py`).
//!
//! Typical use in an integration test:
//!
//! ```no_run
//! use reconciler_testkit::{fresh_account_id, Emulator};
//!
//! # async fn demo() {
//! let emulator = Emulator::shared(); // one server per test binary
//! let config = emulator.sdk_config("eu-west-1", &fresh_account_id());
//! // Every client built from `config` sends `x-moto-account-id`, so each
//! // test works in its own empty account and tests can run in parallel.
//! # let _ = config;
//! # }
//! ```
//!
//! The emulator process is tied to the test binary: it exits when its stdin
//! pipe closes, which the OS does when the test process ends, even on a panic
//! or SIGKILL.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::SdkConfig;

mod artifacts;
pub mod event_pattern;
pub mod log_filter;
pub mod proxy;
pub mod rates;
pub mod resource_policy;
mod venv;

pub use artifacts::{ensure_lambda_artifact, LAMBDA_BINARY};

pub use venv::{
    ensure_tool_venv, ensure_venv, ToolVenv, LAUNCHER, PYTHON_ENV, REQUIREMENTS, VENV_DIR,
};

/// The request header that selects the emulator account (moto's own header).
pub const ACCOUNT_HEADER: &str = "x-moto-account-id";
/// Environment variable with the URL of an already running emulator to reuse.
pub const ENDPOINT_ENV: &str = "EMULATOR_ENDPOINT";
/// The line prefix the launcher prints once it listens.
pub const READY_PREFIX: &str = "EMULATOR_READY ";

/// How long `Emulator::start` waits for the launcher's ready line.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The project root: two levels above this crate's manifest directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit lies two levels below the project root")
        .to_path_buf()
}

/// A running emulator, or the address of one started elsewhere.
pub struct Emulator {
    url: String,
    process: Option<Process>,
}

struct Process {
    child: Child,
    /// Held open for the emulator's lifetime: when it closes (on drop or when
    /// this process dies), the launcher's `--exit-on-stdin-eof` ends it.
    _stdin: ChildStdin,
    log: PathBuf,
}

impl Emulator {
    /// Starts a new emulator process on a free port and waits until it answers.
    ///
    /// Ensures the venv first (see [`ensure_venv`]). The launcher's stderr
    /// goes to a log file in the temp directory ([`Emulator::log_path`]).
    /// Dropping the `Emulator` kills the process.
    pub fn start(project_root: &Path) -> Result<Emulator> {
        let python = ensure_venv(project_root)?;
        let launcher = project_root.join(LAUNCHER);
        remove_old_logs();
        let log = std::env::temp_dir().join(format!(
            "{LOG_PREFIX}{}-{}.log",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(&python)
            .arg(&launcher)
            .args(["--port", "0", "--exit-on-stdin-eof", "--quiet"])
            .current_dir(project_root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), launcher.display()))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");

        // A thread reads stdout: it reports the ready line, then keeps draining
        // so the launcher can never block on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("emulator-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next();
                let _ = tx.send(first);
                for _ in lines {}
            })
            .context("spawning the emulator stdout reader")?;

        let mut process = Process {
            child,
            _stdin: stdin,
            log,
        };
        let failure = |process: &mut Process, what: String| {
            let _ = process.child.kill();
            let _ = process.child.wait();
            anyhow!(
                "{what}\n--- emulator log ({}) ---\n{}",
                process.log.display(),
                tail(&process.log, 4000)
            )
        };
        let url = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => match line.strip_prefix(READY_PREFIX) {
                Some(url) => url.trim().to_owned(),
                None => {
                    return Err(failure(
                        &mut process,
                        format!("unexpected first line from the emulator: {line:?}"),
                    ))
                }
            },
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(failure(
                    &mut process,
                    "the emulator exited before it was ready".into(),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(failure(
                    &mut process,
                    format!("the emulator was not ready within {START_TIMEOUT:?}"),
                ))
            }
        };
        Ok(Emulator {
            url,
            process: Some(process),
        })
    }

    /// The emulator shared by every test in this test binary, started on first use.
    ///
    /// If `EMULATOR_ENDPOINT` is set, that server is used and nothing is started.
    /// Panics with the full error if the emulator cannot be started.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(|| {
            if let Some(url) = std::env::var(ENDPOINT_ENV).ok().filter(|u| !u.is_empty()) {
                return Emulator::external(url);
            }
            Emulator::start(&project_root())
                .unwrap_or_else(|err| panic!("cannot start the AWS emulator: {err:#}"))
        })
    }

    /// Wraps an emulator that something else started and owns.
    pub fn external(url: impl Into<String>) -> Emulator {
        Emulator {
            url: url.into().trim_end_matches('/').to_owned(),
            process: None,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// OS process id of the launcher, if this handle started it.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    /// The file the launcher's stderr goes to, if this handle started it.
    pub fn log_path(&self) -> Option<&Path> {
        self.process.as_ref().map(|p| p.log.as_path())
    }

    /// [`sdk_config`] for this emulator.
    pub fn sdk_config(&self, region: &str, account_id: &str) -> SdkConfig {
        sdk_config(&self.url, region, account_id)
    }
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(process) = self.process.as_mut() {
            let _ = process.child.kill();
            let _ = process.child.wait();
            let _ = std::fs::remove_file(&process.log);
        }
    }
}

const LOG_PREFIX: &str = "reconciler-emulator-";

/// Deletes launcher logs that are older than a day, or empty and written by
/// a process that is gone (checked on Linux only). The shared emulator lives
/// in a static that is never dropped, so its log is left behind by design (it
/// holds a failed run's tracebacks); this keeps the temp dir from filling.
fn remove_old_logs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(LOG_PREFIX) && name.ends_with(".log")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        let writer_gone = cfg!(target_os = "linux")
            && name[LOG_PREFIX.len()..]
                .split('-')
                .next()
                .is_some_and(|pid| !Path::new("/proc").join(pid).exists());
        if old || (meta.len() == 0 && writer_gone) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The last `max` bytes of a file, for error messages.
fn tail(path: &Path, max: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut bytes = Vec::new();
        if len > max {
            use std::io::{Seek, SeekFrom};
            let _ = file.seek(SeekFrom::Start(len - max));
        }
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new 12-digit account id, different on every call in this process and
/// different from those of other processes running at the same time.
///
/// Layout: one digit 1–9, the process id (7 digits; Linux pids stay below
/// 2^22), and a 4-digit sequence. The sequence starts at an offset taken from
/// the clock, so a later process that gets the same pid back most likely
/// starts elsewhere. Unique for 90,000 calls per process.
pub fn fresh_account_id() -> String {
    static SALT: OnceLock<u64> = OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 / 1000)
            .unwrap_or(0)
            % 90_000
    });
    let n = (salt + ACCOUNTS.fetch_add(1, Ordering::Relaxed)) % 90_000;
    let pid = u64::from(std::process::id()) % 10_000_000;
    format!("{}{:07}{:04}", 1 + n / 10_000, pid, n % 10_000)
}

static ACCOUNTS: AtomicU64 = AtomicU64::new(0);

/// Builds an [`SdkConfig`] for the emulator.
///
/// Static test credentials, the given region, the emulator URL as endpoint,
/// a single attempt per call (the emulator's `500 NotImplemented` answers
/// would otherwise be retried with backoff), generous timeouts, and an HTTP
/// client that adds `x-moto-account-id: <account_id>` to every request. Since
/// `SdkConfig` cannot carry interceptors (aws-config 1.13), the header lives in
/// the HTTP client, so every service client built from this config
/// (`aws_sdk_x::Client::new(&config)`) is in the account without further setup.
/// For a client built without this config, use [`AccountIdInterceptor`].
pub fn sdk_config(endpoint: &str, region: &str, account_id: &str) -> SdkConfig {
    let base = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIAEMULATORTESTKEY0",
            "emulator-test-secret",
            None,
            None,
            "reconciler-testkit",
        )))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .http_client(AccountHttpClient {
            account_id: account_id.to_owned(),
            inner: base,
        })
        .build()
}

/// HTTP client wrapper that stamps the account header on every request.
#[derive(Debug, Clone)]
struct AccountHttpClient {
    account_id: String,
    inner: SharedHttpClient,
}

impl HttpClient for AccountHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(AccountConnector {
            account_id: self.account_id.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner
            .validate_base_client_config(runtime_components, cfg)
    }

    fn validate_final_config(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(runtime_components, cfg)
    }
}

#[derive(Debug)]
struct AccountConnector {
    account_id: String,
    inner: SharedHttpConnector,
}

impl HttpConnector for AccountConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        request
            .headers_mut()
            .insert(ACCOUNT_HEADER, self.account_id.clone());
        self.inner.call(request)
    }
}

/// SDK interceptor that adds `x-moto-account-id` to each request.
///
/// Not needed with [`sdk_config`]; use it on a client config built another way:
///
/// ```no_run
/// # async fn demo(shared_config: aws_types::SdkConfig) {
/// use reconciler_testkit::AccountIdInterceptor;
///
/// let conf = aws_sdk_sns::config::Builder::from(&shared_config)
///     .interceptor(AccountIdInterceptor::new("123456789012"))
///     .build();
/// let sns = aws_sdk_sns::Client::from_conf(conf);
/// # let _ = sns;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AccountIdInterceptor {
    account_id: String,
}

impl AccountIdInterceptor {
    /// An interceptor for the given 12-digit account id.
    pub fn new(account_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
        }
    }

    /// The account id this interceptor sends.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }
}

impl Intercept for AccountIdInterceptor {
    fn name(&self) -> &'static str {
        "AccountIdInterceptor"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(ACCOUNT_HEADER, self.account_id.clone());
        Ok(())
    }
}

/// Fails unless `id` looks like an AWS account id (12 ASCII digits).
pub fn check_account_id(id: &str) -> Result<()> {
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("account id must be 12 digits, got {id:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits_and_unique() {
        let ids: Vec<String> = (0..2000).map(|_| fresh_account_id()).collect();
        for id in &ids {
            check_account_id(id).unwrap();
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let pid = format!("{:07}", std::process::id() % 10_000_000);
        assert_eq!(&ids[0][1..8], pid);
    }

    #[test]
    fn project_root_holds_the_launcher() {
        assert!(project_root().join(LAUNCHER).is_file());
    }
}
