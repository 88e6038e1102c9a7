//! A throw-away PostgreSQL cluster built from the system's `initdb` and `postgres`.
//!
//! Used by the harness (unless `DATABASE_URL` points elsewhere) and by every test that needs a
//! database. The cluster lives in a fresh directory under the system temp dir, listens on
//! 127.0.0.1 on a free port, trusts local connections, and trades durability for speed (no
//! fsync): it is for one run only.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the cluster runs as the
//! `postgres` system user (created by `apt-get install postgresql`), which owns its directory.
//! The server is started under a tiny shell watchdog that holds a pipe from this process: when
//! this process ends, however it ends, the pipe closes and the watchdog stops the server and
//! removes its directory. Nothing outlives a run.

use std::{
    io::Write,
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A running throw-away cluster. Stopping it (drop) stops the server and deletes its files.
pub struct Postgres {
    port: u16,
    watchdog: Option<Child>,
}

/// The superuser every throw-away cluster is created with.
const SUPERUSER: &str = "appraise";

impl Postgres {
    /// Creates and starts a cluster; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Postgres> {
        let bin = find_bindir()?;
        let owner = cluster_owner()?;
        let dir = std::env::temp_dir().join(format!(
            "appraise-pg-{}-{}",
            std::process::id(),
            crate::unique_suffix()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to the postgres user", dir.display()))?;
        }
        let data = dir.join("data");

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-locale",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_owner(&mut initdb, owner);
        let output = initdb.output().context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }

        let port = crate::free_port()?;
        // The watchdog: start the server, wait for this process's pipe to close, then stop the
        // server quickly and remove the directory.
        let script = format!(
            r#"{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=200 -c shared_buffers=128MB \
                 >{dir}/server.log 2>&1 &
               server=$!
               read _ || true
               kill -INT $server 2>/dev/null
               wait $server
               rm -rf {dir}"#,
            postgres = shell_quote(&bin.join("postgres")),
            data = shell_quote(&data),
            dir = shell_quote(&dir),
        );
        let mut watchdog = Command::new("sh");
        watchdog
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_owner(&mut watchdog, owner);
        let child = watchdog.spawn().context("starting postgres")?;
        let mut postgres = Postgres {
            port,
            watchdog: Some(child),
        };
        postgres.wait_ready(&dir, Duration::from_secs(60))?;
        Ok(postgres)
    }

    fn wait_ready(&mut self, dir: &Path, patience: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Accepting TCP is not yet accepting queries; pg_isready-like check via psql-free
                // probe: the server writes this line once it is ready.
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                if log.contains("ready to accept connections") {
                    return Ok(());
                }
            }
            if let Some(child) = self.watchdog.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "postgres exited at start ({status}); see its log in {}",
                    dir.display()
                );
            }
            if started.elapsed() > patience {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                bail!("postgres did not become ready in {patience:?}: {log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database in this cluster (`postgres` is the one initdb creates).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        drop(client);
        let _ = driver.await;
        Ok(self.url(name))
    }

    /// Stops the server and waits until its files are gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `initdb` and `postgres` are: `$PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), else `$PATH`.
fn find_bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").exists() && dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, postgres) not found: install them with \
         `apt-get install postgresql`, set PG_BINDIR, or set DATABASE_URL to use a running server"
    )
}

/// `Some((uid, gid))` of the `postgres` user when running as root; `None` otherwise.
fn cluster_owner() -> anyhow::Result<Option<(u32, u32)>> {
    let euid = std::fs::metadata("/proc/self")
        .map(|meta| meta.uid())
        .unwrap_or(u32::MAX);
    if euid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == "postgres" {
            return Ok(Some((fields[2].parse()?, fields[3].parse()?)));
        }
    }
    bail!(
        "running as root, and PostgreSQL refuses to: a `postgres` system user is needed to own \
         the throw-away cluster (`apt-get install postgresql` creates it)"
    )
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
        command.env("HOME", "/tmp");
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
