//! The function binaries, run as child processes in their HTTP mode.
//!
//! Each child gets `PORT` and its settings through the environment, and its stdin is a pipe
//! from this process with `APPRAISE_EXIT_ON_STDIN_EOF=1`: when this process ends, however it
//! ends, the pipe closes and the child shuts down by itself. Dropping a [`FunctionProcess`]
//! asks it to stop the same way and waits for it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A running function binary.
pub struct FunctionProcess {
    pub name: String,
    pub port: u16,
    child: Child,
    /// Where its stderr goes, when that is a file.
    log_path: Option<PathBuf>,
}

impl FunctionProcess {
    /// Starts `binary` listening on a free port and waits until `GET /healthz` answers.
    /// `log` receives the child's stderr (its structured logs).
    pub async fn start(
        name: &str,
        binary: &Path,
        env: &[(String, String)],
        log: Stdio,
    ) -> anyhow::Result<FunctionProcess> {
        FunctionProcess::spawn(name, binary, env, log, None).await
    }

    async fn spawn(
        name: &str,
        binary: &Path,
        env: &[(String, String)],
        log: Stdio,
        log_path: Option<PathBuf>,
    ) -> anyhow::Result<FunctionProcess> {
        let port = crate::free_port()?;
        let mut command = Command::new(binary);
        command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("APPRAISE_EXIT_ON_STDIN_EOF", "1")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({})", binary.display()))?;
        let mut process = FunctionProcess {
            name: name.to_owned(),
            port,
            child,
            log_path,
        };
        process.wait_healthy(Duration::from_secs(60)).await?;
        Ok(process)
    }

    /// Starts the function binary `name` (see [`binary`]) with its stderr in
    /// `<log_dir>/<name>.log`.
    pub async fn start_logged(
        name: &str,
        env: &[(String, String)],
        log_dir: &Path,
    ) -> anyhow::Result<FunctionProcess> {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        FunctionProcess::spawn(name, &binary(name)?, env, log.into(), Some(log_path)).await
    }

    /// The last lines of its log that say what went wrong (warnings, errors, and the error a
    /// binary prints when it stops), at most `count`, for a console that must show why a
    /// function failed; empty when it has no log file.
    pub fn last_error_lines(&self, count: usize) -> Vec<String> {
        let Some(text) = self
            .log_path
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
        else {
            return Vec::new();
        };
        let text = strip_ansi(&String::from_utf8_lossy(&text));
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let telling: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| {
                line.contains("ERROR")
                    || line.contains("WARN")
                    || line.starts_with("Error")
                    || line.contains("\"level\":\"ERROR\"")
                    || line.contains("\"level\":\"WARN\"")
            })
            .collect();
        // No line says it is an error: the last lines are the best guess (a panic, say).
        let chosen = if telling.is_empty() { lines } else { telling };
        chosen[chosen.len().saturating_sub(count)..]
            .iter()
            .map(|line| line.to_string())
            .collect()
    }

    /// Where its log is, when it has one.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// The most resident memory the process has used so far (Linux's VmHWM), in bytes; `None`
    /// where `/proc` cannot tell.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.memory_status("VmHWM")
    }

    /// The memory the process holds resident now (Linux's VmRSS), in bytes; `None` where
    /// `/proc` cannot tell.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.memory_status("VmRSS")
    }

    /// A `kB` line of `/proc/<pid>/status`, in bytes.
    fn memory_status(&self, field: &str) -> Option<u64> {
        appraise_core::proc_stats::status_bytes(&self.child.id()?.to_string(), field)
    }

    /// CPU seconds the process has used so far, user and system, all threads; `None` where
    /// `/proc` cannot tell.
    pub fn cpu_seconds(&self) -> Option<f64> {
        appraise_core::proc_stats::cpu_seconds(&self.child.id()?.to_string())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_healthy(&mut self, patience: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let url = format!("{}/healthz", self.url());
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited at start with {status}{}",
                    self.name,
                    self.log_excerpt()
                );
            }
            if started.elapsed() > patience {
                bail!("{} did not answer /healthz within {patience:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the function at once (SIGKILL), as a crash or the platform's OOM killer would,
    /// and waits until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks the function to stop (closes its stdin) and waits up to 10 s, then kills it.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl FunctionProcess {
    /// `; its log (<path>) ends with:` and the last error lines, indented; empty without a log.
    pub fn log_excerpt(&self) -> String {
        let lines = self.last_error_lines(8);
        match (self.log_path(), lines.is_empty()) {
            (Some(path), false) => format!(
                "; its log ({}) ends with:\n    {}",
                path.display(),
                lines.join("\n    ")
            ),
            _ => String::new(),
        }
    }
}

/// `text` without terminal colour codes (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            // Skip to the end of the escape sequence: a letter.
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Where the function binaries are: `$APPRAISE_BIN_DIR`, else next to the running executable
/// (`target/<profile>/`; test executables live one level deeper, in `deps/`).
pub fn binary_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("APPRAISE_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The path of a function binary, with a helpful error when it was not built.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = binary_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the functions first (`cargo build --release --bins`)",
            path.display()
        );
    }
    Ok(path)
}
