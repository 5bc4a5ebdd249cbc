//! `circle` as a child process, for the tools: `serve` on the address asked for (127.0.0.1:0
//! for any port), its address read from the "circle listening on http://ADDR" line it prints
//! first, and stopped with SIGTERM, then killed if it overstays.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `circle` may take to print its address.
const START: Duration = Duration::from_secs(10);

/// The `circle` binary: `CIRCLE_BIN` when set, else the one of the same target directory as the
/// running executable.
pub fn circle_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CIRCLE_BIN") {
        return bin.into();
    }
    let me = std::env::current_exe().expect("own path");
    let beside = me.with_file_name("circle");
    if beside.is_file() {
        return beside;
    }
    // A test binary lives in target/<profile>/deps; `cargo test --workspace` builds `circle`
    // one level up (the server package's own tests need it).
    me.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("circle"))
        .filter(|bin| bin.is_file())
        .unwrap_or(beside)
}

/// A running `circle serve`; killed when dropped, so that a run failing half-way leaves no server
/// behind.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `bin serve --listen LISTEN` with `secret` as its token secret, then `args`, with
    /// `env` added to its environment; its log (stderr) is appended to `log`.
    pub fn start(
        bin: &Path,
        listen: &str,
        secret: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> std::io::Result<ServerProcess> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", listen])
            .args(args)
            .env("CIRCLE_TOKEN_SECRET", secret)
            // Records on, as a deployment runs, in a file beside the log unless told otherwise.
            .env(
                "CIRCLE_DATABASE",
                format!("sqlite://{}.records.db", log.display()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| std::io::Error::other(format!("starting {}: {e}", bin.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        // A thread reads the first line and then keeps reading, so that the child never blocks on
        // a full pipe.
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_tx.send(lines.next());
            for _ in lines.map_while(Result::ok) {}
        });
        let first = match first_rx.recv_timeout(START) {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => return Err(Self::abandon(child, e.to_string())),
            Ok(None) | Err(_) => {
                return Err(Self::abandon(child, "circle printed no address".into()))
            }
        };
        let addr = first
            .trim()
            .strip_prefix("circle listening on http://")
            .or_else(|| first.trim().strip_prefix("circle listening on https://"))
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            return Err(Self::abandon(
                child,
                format!("circle did not announce its address: {first:?}"),
            ));
        };
        Ok(ServerProcess {
            child,
            addr,
            log: log.to_owned(),
        })
    }

    fn abandon(mut child: Child, why: String) -> std::io::Error {
        let _ = child.kill();
        let _ = child.wait();
        std::io::Error::other(why)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The WebSocket endpoint.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Where its log goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGKILL: the process dies at once, as a machine that loses power, telling nobody.
    pub fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `within` for the exit, then kills; true when it exited cleanly
    /// in time. Blocks the calling thread while it waits.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
