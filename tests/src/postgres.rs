//! The services a test starts for itself: a throwaway PostgreSQL cluster (Debian's binaries from
//! /usr/lib/postgresql/VERSION/bin, a temporary directory, a free port on 127.0.0.1 only, stopped
//! and removed when dropped) and the schemathesis pinned in tests/services/requirements.txt.
//! Both are installed by tests/services/setup.sh, which tests/run.sh calls before `cargo test`.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// What every "not installed" panic tells: a missing service fails the test, never skips it.
const SETUP: &str = "run `bash tests/services/setup.sh` (tests/run.sh does) to install it";

/// Where Debian installs each PostgreSQL major version's programs.
const DEBIAN_VERSIONS: &str = "/usr/lib/postgresql";

/// The database [`Postgres::start`] creates; [`Postgres::fresh_database`] numbers its own after it.
const FIRST_DATABASE: &str = "circle";

/// Tries at a free port: another process may take the one found before the server binds it.
const PORT_TRIES: u32 = 5;

/// A PostgreSQL cluster of this process's own, trusting every connection: it listens on
/// 127.0.0.1 alone and lives in a directory nobody else uses. Dropping it stops it and removes the
/// directory, so a failing test leaves no instance behind.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The `postgres` system user (uid, gid) when this process is root: PostgreSQL refuses to run
    /// as root. `None`: the server runs as whoever runs the tests.
    owner: Option<(u32, u32)>,
    databases: AtomicU32,
    /// A shell that stops the cluster and removes `dir` once its stdin reaches end of file, which
    /// happens when this value drops or when the process ends in any way at all (an abort, a kill,
    /// a [`Postgres::shared`] cluster that statics never drop). `pg_ctl` detaches the server from
    /// this process, so without it an instance would outlive a test binary that died.
    watchdog: Child,
}

impl Postgres {
    /// Initialises and starts a cluster with one empty database, [`Postgres::url`]. Blocks for
    /// about a second; panics, saying why, when it cannot.
    pub fn start() -> Postgres {
        let bin = server_bin_dir();
        let owner = server_owner();
        let dir = make_dir(owner);
        let data = dir.join("data");
        let watchdog = spawn_watchdog(&bin, &dir, owner);

        // Trust is safe only because nothing but loopback can reach the server: listen_addresses
        // below, and initdb's pg_hba.conf names only the socket, 127.0.0.1 and ::1.
        let out = as_owner(Command::new(bin.join("initdb")), &dir, owner)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust"])
            .args(["--encoding=UTF8", "--locale=C"])
            // Durability is no use in a cluster thrown away after the run; skipping it saves time.
            .arg("--no-sync")
            .output();
        check("initdb", out);
        let settings = format!(
            "\n# circle-tests: loopback only, its socket in its own directory, no durability.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n",
            dir.display().to_string().replace('\'', "''")
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut conf| conf.write_all(settings.as_bytes()))
            .unwrap_or_else(|e| panic!("writing the settings into {}: {e}", data.display()));

        let port = start_on_free_port(&bin, &dir, owner);
        let pg = Postgres {
            bin,
            dir,
            port,
            owner,
            databases: AtomicU32::new(0),
            watchdog,
        };
        pg.create_database(FIRST_DATABASE);
        pg
    }

    /// One cluster for the whole test binary, started by the first test that asks: each test
    /// takes a [`Postgres::fresh_database`] of its own on it. A static is never dropped, so this
    /// cluster is stopped and removed by its watchdog when the test binary exits.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Postgres::start)
    }

    /// The database [`Postgres::start`] created, as `postgres://postgres@127.0.0.1:PORT/circle`.
    pub fn url(&self) -> String {
        self.url_of(FIRST_DATABASE)
    }

    /// Creates another empty database on this cluster and returns its URL: much cheaper than a
    /// cluster per test, and as separate.
    pub fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("{FIRST_DATABASE}_{n}");
        self.create_database(&name);
        self.url_of(&name)
    }

    /// Runs `sql` with `psql` against `url` and returns what it printed (unaligned, tuples only,
    /// trimmed); panics with psql's error when a statement fails.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = client(self.bin.join("psql"))
            // No ~/.psqlrc, no notices, bare values; the first failing statement fails it all.
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", url, "-c", sql])
            .output();
        let out = check("psql", out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster, its socket and its log; gone once this is dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn create_database(&self, name: &str) {
        let out = client(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .output();
        check("createdb", out);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Stopped here rather than left to the watchdog alone, so that the port is closed and the
        // directory gone when the drop returns.
        let _ = as_owner(Command::new(self.bin.join("pg_ctl")), &self.dir, self.owner)
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The schemathesis command of tests/services/.venv; panics, telling how to install it, when it
/// is not there.
pub fn schemathesis_bin() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/.venv/bin");
    ["schemathesis", "st"]
        .iter()
        .map(|name| venv.join(name))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| panic!("schemathesis is not in {}: {SETUP}", venv.display()))
}

/// The newest /usr/lib/postgresql/VERSION/bin that has the programs the harness runs.
fn server_bin_dir() -> PathBuf {
    let newest = std::fs::read_dir(DEBIAN_VERSIONS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            // "15", or "9.6" before PostgreSQL 10: compared as numbers, not as text.
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            let complete = ["initdb", "pg_ctl", "psql", "createdb"]
                .iter()
                .all(|program| bin.join(program).is_file());
            complete.then_some((version, bin))
        })
        .max();
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's initdb, pg_ctl, psql and createdb are not in \
             {DEBIAN_VERSIONS}/VERSION/bin: {SETUP}"
        ),
    }
}

fn server_owner() -> Option<(u32, u32)> {
    if id(&["-u"]) != Some(0) {
        return None;
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => panic!(
            "running as root, the tests run PostgreSQL as the `postgres` system user, which \
             Debian's postgresql package creates, and there is none: {SETUP}"
        ),
    }
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A new directory under the system's temporary directory, owned by whoever runs the server.
fn make_dir(owner: Option<(u32, u32)>) -> PathBuf {
    static DIRS: AtomicU32 = AtomicU32::new(0);
    let dir = loop {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("circle-pg-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            // Left by an earlier process that had the same id: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("creating {}: {e}", dir.display()),
        }
    };
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("giving {} to postgres: {e}", dir.display()));
    }
    dir
}

fn spawn_watchdog(bin: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Child {
    // It ignores the signals a terminal sends the whole process group, such as Ctrl-C: those are
    // exactly the ends it must outlive to clean up after.
    let script = r#"trap '' INT TERM HUP
cat >/dev/null
"$0" stop -D "$1/data" -m immediate -s >/dev/null 2>&1
rm -rf "$1""#;
    as_owner(Command::new("sh"), dir, owner)
        .arg("-c")
        .arg(script)
        .arg(bin.join("pg_ctl"))
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the watchdog of {}: {e}", dir.display()))
}

fn start_on_free_port(bin: &Path, dir: &Path, owner: Option<(u32, u32)>) -> u16 {
    let log = dir.join("server.log");
    for _ in 0..PORT_TRIES {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let started = as_owner(Command::new(bin.join("pg_ctl")), dir, owner)
            .arg("start")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-s", "-o", &format!("-p {port}")])
            .output();
        if started.is_ok_and(|out| out.status.success()) {
            return port;
        }
    }
    panic!(
        "PostgreSQL did not start on 127.0.0.1 in {PORT_TRIES} tries; its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A program run as the server's owner, in `dir` (root's working directory may be closed to it).
fn as_owner(command: Command, dir: &Path, owner: Option<(u32, u32)>) -> Command {
    let mut command = without_pg_env(command);
    command.current_dir(dir).stdin(Stdio::null());
    if let Some((uid, gid)) = owner {
        command.gid(gid).uid(uid);
    }
    command
}

/// A client program, run as whoever runs the tests: trust lets it in as `postgres`.
fn client(program: PathBuf) -> Command {
    let mut command = without_pg_env(Command::new(program));
    command.stdin(Stdio::null());
    command
}

/// The command without the caller's PG* variables (PGHOST, PGPORT, PGSSLMODE, ...), which would
/// point it elsewhere or demand what this cluster does not offer.
fn without_pg_env(mut command: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PG")) {
            command.env_remove(&name);
        }
    }
    command
}

/// The output of a program that must succeed; panics with its stderr when it did not.
fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("running {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}
