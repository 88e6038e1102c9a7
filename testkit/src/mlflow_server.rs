//! A real MLflow tracking server (`mlflow server` from the tools virtualenv) on loopback: a
//! SQLite backend and a local artifact root in one directory, artifacts served through the
//! server's proxy (`mlflow-artifacts:/`, MLflow's default), on a free port.
//!
//! The server runs in its own session (`setsid`) under a small shell watchdog whose stdin is a
//! pipe from this process: when the pipe closes (this value dropped, [`MlflowServer::stop`], or
//! this process ending however it ends) the watchdog stops the server's whole process group,
//! so no uvicorn worker outlives the test; the watchdog itself exits once the server's group is
//! gone, so a server that dies at start is noticed.
//!
//! The free port is found by binding and releasing it, so another program may take it before
//! the server binds it: the server is healthy only once `GET /health` answers *and* its own log
//! (since this start) says it is running on that port, so another server's answer is never
//! taken for ours; a server that exits because the port is in use is started again on a new
//! free port (when the caller let us choose). MLflow's background job runner (GenAI jobs, a
//! handful of extra processes) is turned off: nothing here uses it.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::postgres::shell_quote;

const READ_BACK: &str = include_str!("mlflow_read_back.py");

/// A running (or stopped, and restartable) MLflow server.
pub struct MlflowServer {
    port: u16,
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
    watchdog: Option<Child>,
}

/// The `mlflow` command of the tools virtualenv, if `scripts/setup-tools.sh` installed it.
pub fn mlflow_command() -> Option<PathBuf> {
    let command = crate::fixtures::tools_venv().join("bin/mlflow");
    command.exists().then_some(command)
}

impl MlflowServer {
    /// Starts a server whose database and artifacts live in a fresh temporary directory.
    pub async fn start_in_temp_dir() -> anyhow::Result<MlflowServer> {
        let temp = tempfile::Builder::new()
            .prefix("appraise-mlflow-")
            .tempdir()?;
        let mut server = MlflowServer::start(temp.path().to_owned(), 0).await?;
        server._temp = Some(temp);
        Ok(server)
    }

    /// Starts a server keeping its database (`mlflow.db`) and artifacts (`artifacts/`) in
    /// `root`, on `port` (0: a free one), and waits until `GET /health` answers.
    pub async fn start(root: PathBuf, port: u16) -> anyhow::Result<MlflowServer> {
        std::fs::create_dir_all(root.join("artifacts"))
            .with_context(|| format!("creating {}", root.display()))?;
        let choose_port = port == 0;
        let mut server = MlflowServer {
            port,
            root,
            _temp: None,
            watchdog: None,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            if choose_port {
                server.port = crate::free_port()?;
            }
            match server.launch().await? {
                Launch::Healthy => return Ok(server),
                Launch::PortTaken(failure) if choose_port && attempts < START_ATTEMPTS => {
                    tracing::debug!(%failure, "mlflow lost its port to another program; retrying");
                }
                Launch::PortTaken(failure) => return Err(failure),
            }
        }
    }

    /// `http://127.0.0.1:PORT`: the tracking URI.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// What MLflow's own Python client reads back from this server about `experiment` and the
    /// registered model `model` (`mlflow_read_back.py`): the training runs with their tags, the
    /// model runs with metrics, parameters and artifacts (downloaded; each `model.json` parsed,
    /// each `xgboost.json` loaded into xgboost and made to predict), the registered versions,
    /// the model's aliases and the version `champion` names.
    pub fn read_back(&self, experiment: &str, model: &str) -> anyhow::Result<serde_json::Value> {
        let python = crate::fixtures::tools_venv().join("bin/python");
        let out = Command::new(&python)
            .args(["-c", READ_BACK, experiment, model])
            .env("MLFLOW_TRACKING_URI", self.url())
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        if !out.status.success() {
            bail!(
                "mlflow_read_back.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Stops the server (its whole process group) and waits for it; the data stays.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }

    /// Starts the server again (after [`stop`](Self::stop)) on the same port and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        match self.launch().await? {
            Launch::Healthy => Ok(()),
            Launch::PortTaken(failure) => Err(failure),
        }
    }

    /// Starts the server on `self.port` and waits until it is healthy.
    async fn launch(&mut self) -> anyhow::Result<Launch> {
        self.stop();
        // Where this start's lines begin in the (appended) log.
        let log_start = std::fs::metadata(self.log_path()).map_or(0, |meta| meta.len());
        let command = mlflow_command()
            .context("mlflow is not in the tools virtualenv: run scripts/setup-tools.sh")?;
        let script = format!(
            r#"setsid {mlflow} server --backend-store-uri {db} --artifacts-destination {artifacts} \
                 --host 127.0.0.1 --port {port} --workers 1 >>{log} 2>&1 &
               server=$!
               exec 3<&0
               {{
                 read -r line <&3
                 kill -TERM -$server 2>/dev/null
                 i=0
                 while kill -0 -$server 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
                 kill -KILL -$server 2>/dev/null
               }} &
               wait $server
               while kill -0 -$server 2>/dev/null; do sleep 0.1; done"#,
            mlflow = shell_quote(&command),
            db = shell_quote(Path::new(&format!(
                "sqlite:///{}",
                self.root.join("mlflow.db").display()
            ))),
            artifacts = shell_quote(&self.root.join("artifacts")),
            port = self.port,
            log = shell_quote(&self.log_path()),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mlflow server")?;
        self.watchdog = Some(watchdog);
        self.wait_healthy(log_start, Duration::from_secs(180)).await
    }

    /// Waits until `GET /health` answers and the server's log since `log_start` says it runs
    /// on our port (so the answer is ours, not another program's that took the port).
    async fn wait_healthy(&mut self, log_start: u64, patience: Duration) -> anyhow::Result<Launch> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let health = format!("{}/health", self.url());
        let started = Instant::now();
        let running_on = format!("Uvicorn running on {}", self.url());
        loop {
            let exited = match self.watchdog.as_mut() {
                Some(watchdog) => watchdog.try_wait()?.is_some(),
                None => true,
            };
            let log = self.log_since(log_start);
            if !exited
                && log.contains(&running_on)
                && let Ok(response) = client.get(&health).send().await
                && response.status().is_success()
            {
                return Ok(Launch::Healthy);
            }
            if exited || started.elapsed() > patience {
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                self.stop();
                let failure = anyhow::anyhow!(
                    "mlflow server on port {} did not become healthy{}; its log ends:\n{}",
                    self.port,
                    if exited { " (it exited)" } else { "" },
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                if exited && log.to_lowercase().contains("address already in use") {
                    return Ok(Launch::PortTaken(failure));
                }
                return Err(failure);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// How many ports [`MlflowServer::start`] tries when other programs take the free ones first.
const START_ATTEMPTS: u32 = 3;

/// How one start of the server ended, short of an error.
enum Launch {
    Healthy,
    /// It exited because another program holds its port (the failure, with its log).
    PortTaken(anyhow::Error),
}

impl MlflowServer {
    /// The server's log from byte `start` on (this start's lines).
    fn log_since(&self, start: u64) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.as_mut()
            && let Some(stdin) = watchdog.stdin.as_mut()
        {
            let _ = stdin.write_all(b"stop\n");
        }
        self.stop();
    }
}
