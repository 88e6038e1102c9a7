//! Local AWS Secrets Manager and SSM Parameter Store: moto's server mode (`moto_server`, from
//! the tools virtualenv), started on 127.0.0.1 on a free port and stopped when dropped.
//!
//! Secrets and parameters are created with boto3 (which `moto[server]` brings), an AWS client
//! written independently of appraise's own, so a test checks our client against AWS's
//! protocol as another implementation speaks it.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// The region and the (fake) credentials every call to the server uses.
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

/// A running `moto_server`. Dropping it stops the server.
pub struct MotoServer {
    child: Child,
    port: u16,
    python: PathBuf,
}

impl MotoServer {
    /// The tools virtualenv's `moto_server`, or `None` when it is not installed (run
    /// `scripts/setup-tools.sh`): callers skip with [`crate::fixtures::skip_without_tool`].
    pub fn installed() -> Option<PathBuf> {
        let server = crate::fixtures::tools_venv().join("bin/moto_server");
        server.exists().then_some(server)
    }

    /// Starts the server and returns once it answers.
    pub fn start() -> anyhow::Result<MotoServer> {
        let server = MotoServer::installed()
            .context("moto_server is not installed: run scripts/setup-tools.sh")?;
        let port = crate::free_port()?;
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let mut moto = MotoServer {
            child,
            port,
            python: crate::fixtures::tools_venv().join("bin/python"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                bail!("moto_server exited at start ({status})");
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("moto_server did not listen on port {port} within a minute");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(moto)
    }

    /// The endpoint for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables that point an AWS client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Creates a Secrets Manager secret holding `value` (its `SecretString`); returns its ARN.
    pub fn create_secret(&self, name: &str, value: &str) -> anyhow::Result<String> {
        self.boto3(
            "print(boto3.client('secretsmanager', **aws).create_secret(\
               Name=sys.argv[1], SecretString=sys.argv[2])['ARN'])",
            &[name, value],
        )
    }

    /// Creates an SSM `SecureString` parameter holding `value`.
    pub fn put_secure_parameter(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.boto3(
            "boto3.client('ssm', **aws).put_parameter(\
               Name=sys.argv[1], Value=sys.argv[2], Type='SecureString')",
            &[name, value],
        )
        .map(drop)
    }

    /// Runs `statement` in the venv's Python with `boto3`, `sys` and `aws` (the client
    /// arguments for this server) defined; returns what it printed.
    fn boto3(&self, statement: &str, args: &[&str]) -> anyhow::Result<String> {
        let script = format!(
            "import sys, boto3\n\
             aws = dict(endpoint_url={endpoint:?}, region_name={REGION:?}, \
               aws_access_key_id={ACCESS_KEY_ID:?}, aws_secret_access_key={SECRET_ACCESS_KEY:?})\n\
             {statement}\n",
            endpoint = self.endpoint(),
        );
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !output.status.success() {
            bail!(
                "boto3 failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
