//! A throw-away PostgreSQL cluster built from the system's `initdb` and `postgres`.
//!
//! Used by the harness (unless `DATABASE_URL` points elsewhere) and by every test that needs a
//! database. The cluster lives in a fresh directory under the system temp dir, listens on
//! 127.0.0.1 on a free port, trusts local connections, and is for one run only.
//!
//! # Durability
//!
//! A commit that has returned survives a crash of the server: stages write the S3 object that
//! announces rows only after their commit returned, so a lost commit would leave an event
//! pointing at missing data. The server runs with PostgreSQL's defaults for
//! `synchronous_commit`, `fsync` and `full_page_writes` (all on); [`Postgres::crash`] and
//! [`Postgres::restart`] let a test check it (`tests/testkit/postgres_durability.rs`). Each
//! setting was measured against the old one (the figures, with their date and machine, are in
//! bench/README.md):
//!
//! - `synchronous_commit=off` let a commit return before its WAL was written: a server stopped
//!   with `pg_ctl stop -m immediate` right after a run of small commits lost the last few.
//!   Removed.
//! - `fsync=off` only matters when the OS crashes or loses power (a crashed server's writes are
//!   still in the page cache). On makes many one-row commits markedly slower and a large COPY
//!   slightly slower, but the ingest, process, promote and predict test suites take the same
//!   time either way (within their run-to-run noise). It does not matter for test speed, so it
//!   is on.
//! - `full_page_writes=off` is safe only if an 8 kB page is never half-written, which a server
//!   killed in the middle of a write (SIGKILL, the OOM killer) cannot promise. On cost nothing
//!   measurable. On.
//! - `initdb --no-sync` is kept: syncing the new cluster makes creating it several times
//!   slower, once per cluster (each test binary starts one), and protects only against an OS
//!   crash before the kernel writes the new files back, after which nothing would reopen this
//!   directory anyway (a run makes a fresh cluster; an old one is never started again).
//!
//! # TLS
//!
//! [`Postgres::start_with`] can turn TLS on ([`ServerTls`]): the server presents a certificate
//! the test made ([`crate::tls`]), and may accept TLS connections only (`hostssl` in
//! `pg_hba.conf`), which is how the connection modes of `appraise_core::db` are tested.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the cluster runs as the
//! `postgres` system user (created by `apt-get install postgresql`), which owns its directory.
//! The server is started under a tiny shell watchdog that holds a pipe from this process: when
//! this process ends, however it ends, the pipe closes and the watchdog stops the server and
//! removes its directory. Nothing outlives a run. A `start` line on that pipe makes the
//! watchdog start the server again ([`Postgres::restart`]).

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
    /// The server's binaries (`pg_ctl` for [`Postgres::crash`]).
    bin: PathBuf,
    /// The cluster's directory: `data/`, the socket and `server.log`.
    dir: PathBuf,
    /// The `postgres` user the server runs as when this process is root.
    owner: Option<(u32, u32)>,
}

/// The superuser every throw-away cluster is created with.
const SUPERUSER: &str = "appraise";

/// The role that, in a TLS-only cluster, must log in with its password (SCRAM-SHA-256) rather
/// than be trusted; a test that wants a password login creates it.
pub const PASSWORD_ROLE: &str = "password_login";

/// A cluster's TLS: the certificate it presents, and whether it refuses unencrypted sessions.
#[derive(Clone)]
pub struct ServerTls {
    pub certificate: crate::tls::ServerCertificate,
    /// Only `hostssl` lines in `pg_hba.conf`: a TCP connection without TLS is refused, and
    /// [`PASSWORD_ROLE`] logs in with its password.
    pub tls_only: bool,
}

impl Postgres {
    /// Creates and starts a cluster without TLS; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Postgres> {
        Postgres::start_with(None)
    }

    /// Creates and starts a cluster, with TLS when `tls` says; returns once it accepts
    /// connections.
    pub fn start_with(tls: Option<ServerTls>) -> anyhow::Result<Postgres> {
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

        let tls_options = match &tls {
            None => String::new(),
            Some(tls) => configure_tls(&dir, &data, tls, owner)?,
        };
        let port = crate::free_port()?;
        // The watchdog: start the server; start it again on each `start` line; when this
        // process's pipe closes (or any other line comes), stop the server quickly and remove
        // the directory.
        let script = format!(
            r#"start() {{
                 {postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
                   -c max_connections=200 -c shared_buffers=128MB {tls_options} \
                   >>{dir}/server.log 2>&1 &
                 server=$!
               }}
               start
               while read -r line && [ "$line" = start ]; do start; done
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
            bin,
            dir,
            owner,
        };
        postgres.wait_ready(0, Duration::from_secs(60))?;
        Ok(postgres)
    }

    /// Stops the server the way a crash would: `pg_ctl stop -m immediate` makes every server
    /// process quit at once, without a checkpoint or flushing anything; the next start replays
    /// the WAL. The data directory and the port stay; [`Postgres::restart`] starts it again.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        let mut pg_ctl = Command::new(self.bin.join("pg_ctl"));
        pg_ctl
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_owner(&mut pg_ctl, self.owner);
        let output = pg_ctl.output().context("running pg_ctl stop")?;
        if !output.status.success() {
            bail!(
                "pg_ctl stop -m immediate failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Starts the server again on the same data directory and port (after [`Postgres::crash`]),
    /// and returns once it has recovered and accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let log_so_far = std::fs::metadata(self.dir.join("server.log")).map_or(0, |m| m.len());
        let stdin = self
            .watchdog
            .as_mut()
            .and_then(|child| child.stdin.as_mut())
            .context("the cluster was stopped")?;
        stdin
            .write_all(b"start\n")
            .and_then(|()| stdin.flush())
            .context("asking the watchdog to start postgres")?;
        self.wait_ready(log_so_far, Duration::from_secs(60))
    }

    /// Waits until the server's log, from byte `log_from` on, says it is ready.
    fn wait_ready(&mut self, log_from: u64, patience: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let log_path = self.dir.join("server.log");
        let log_since = || {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let from = usize::try_from(log_from)
                .unwrap_or(usize::MAX)
                .min(log.len());
            String::from_utf8_lossy(&log[from..]).into_owned()
        };
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Accepting TCP is not yet accepting queries; pg_isready-like check via psql-free
                // probe: the server writes this line once it is ready.
                if log_since().contains("ready to accept connections") {
                    return Ok(());
                }
            }
            if let Some(child) = self.watchdog.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "postgres exited at start ({status}); see its log in {}",
                    self.dir.display()
                );
            }
            if started.elapsed() > patience {
                bail!(
                    "postgres did not become ready in {patience:?}: {}",
                    log_since()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data, socket, log), removed when the cluster stops.
    pub fn directory(&self) -> &std::path::Path {
        &self.dir
    }

    /// What the server has logged so far (every start, crash and recovery of this cluster).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The URL of a database in this cluster (`postgres` is the one initdb creates).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL. Connects as the functions do
    /// (`sslmode=prefer`: TLS when the cluster has it, without checking its certificate).
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let settings = appraise_core::db::ConnectionSettings::parse(
            &self.url("postgres"),
            &appraise_core::db::TlsDefaults::default(),
        )?;
        let (client, connection) = settings.postgres.connect(settings.tls_connector()?).await?;
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

/// Writes the server's certificate and key into the cluster's directory (the key readable by
/// its owner only, as PostgreSQL demands), restricts `pg_hba.conf` to TLS if asked, and returns
/// the server options that turn TLS on.
fn configure_tls(
    dir: &Path,
    data: &Path,
    tls: &ServerTls,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let certificate = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&certificate, &tls.certificate.certificate_pem)
        .with_context(|| format!("writing {}", certificate.display()))?;
    std::fs::write(&key, &tls.certificate.key_pem)
        .with_context(|| format!("writing {}", key.display()))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = owner {
        for file in [&certificate, &key] {
            std::os::unix::fs::chown(file, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to the postgres user", file.display()))?;
        }
    }
    if tls.tls_only {
        // Unix-socket connections stay open (the watchdog and initdb's tools use none, but a
        // person debugging might); every TCP connection must be TLS.
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "local all all trust\n\
                 hostssl all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostssl all all ::1/128 trust\n"
            ),
        )
        .with_context(|| format!("writing {}", hba.display()))?;
    }
    Ok(format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        shell_quote(&certificate),
        shell_quote(&key)
    ))
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

/// `path` as one single-quoted shell word.
pub(crate) fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
