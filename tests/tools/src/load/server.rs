//! The `circle` process under test: started as its own process on 127.0.0.1:0 (by the shared
//! launcher, `circle_tests::process`) so that its CPU and memory can be read from /proc, with a
//! fresh token secret per run, and stopped when the run ends.

use std::path::Path;
use std::time::Duration;

use circle_protocol::Role;
use circle_tests::process::ServerProcess;
use circle_tests::token::{fresh_secret, Minter};

pub struct Circle {
    process: ServerProcess,
    pub addr: String,
    tokens: Minter,
}

impl Circle {
    /// Starts `bin serve` with `extra` flags; its log (warnings only) goes to `log`.
    pub fn start(bin: &Path, extra: &[&str], log: &Path) -> std::io::Result<Circle> {
        // A fresh secret per run: nothing outside this process can mint tokens for it.
        Circle::start_with_secret(bin, &fresh_secret(), extra, log)
    }

    /// [`Circle::start`] with the token secret given: the nodes of one cluster share theirs.
    pub fn start_with_secret(
        bin: &Path,
        secret: &str,
        extra: &[&str],
        log: &Path,
    ) -> std::io::Result<Circle> {
        let mut args = vec!["--waiting-room", "off"];
        // Every fake participant connects from 127.0.0.1.
        args.extend(["--max-connections-per-ip", "0"]);
        args.extend(extra);
        let process = ServerProcess::start(
            bin,
            "127.0.0.1:0",
            secret,
            &args,
            &[("CIRCLE_LOG", "warn")],
            log,
        )?;
        super::register_child(process.pid());
        Ok(Circle {
            addr: process.addr.to_string(),
            process,
            tokens: Minter::new(secret).lasting(Duration::from_secs(3600)),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn token(&self, room: &str, sub: &str, role: Role) -> String {
        self.tokens.token(room, sub, role)
    }

    pub fn cpu(&self) -> f64 {
        super::cpu_seconds(self.pid())
    }

    pub fn rss(&self) -> u64 {
        super::rss_bytes(self.pid())
    }

    pub fn stop(mut self) {
        self.process.terminate(Duration::from_secs(5));
    }

    /// SIGKILL: gone at once, telling nobody.
    pub fn kill(mut self) {
        self.process.kill_now();
    }

    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.process.addr
    }
}
