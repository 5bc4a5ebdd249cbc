//! The `circle` process under test: started as its own process on 127.0.0.1:0 so that its CPU
//! and memory can be read from /proc, and killed when the run ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use circle_protocol::Role;
use circle_server::token::{unix_now, Claims, TokenKeys};

pub struct Circle {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub addr: String,
    keys: TokenKeys,
}

impl Circle {
    /// Starts `bin serve` with `extra` flags; its log (warnings only) goes to `log`.
    pub fn start(bin: &Path, extra: &[String], log: &Path) -> std::io::Result<Circle> {
        // A fresh secret per run: nothing outside this process can mint tokens for it.
        let secret = format!("load-secret-{:016x}-{:016x}", rand_u64(), rand_u64());
        let log = std::fs::File::create(log)?;
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--waiting-room", "off"])
            // Every fake participant connects from 127.0.0.1.
            .args(["--max-connections-per-ip", "0"])
            .args(extra)
            .env("CIRCLE_TOKEN_SECRET", &secret)
            .env("CIRCLE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        super::register_child(child.id());
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        let Some(addr) = first
            .trim()
            .strip_prefix("circle listening on http://")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            return Err(std::io::Error::other(format!(
                "circle did not announce its address: {first:?}"
            )));
        };
        Ok(Circle {
            child,
            _stdout: stdout,
            addr,
            keys: TokenKeys::new(secret.as_bytes()),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn token(&self, room: &str, sub: &str, role: Role) -> String {
        self.keys.mint(&Claims {
            sub: sub.into(),
            room: room.into(),
            role,
            name: format!("Load {sub}"),
            exp: unix_now() + 3600,
            nbf: None,
            iat: Some(unix_now()),
        })
    }

    pub fn cpu(&self) -> f64 {
        super::cpu_seconds(self.pid())
    }

    pub fn rss(&self) -> u64 {
        super::rss_bytes(self.pid())
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Circle {
    fn drop(&mut self) {
        // A run that fails half-way must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(super::now_ns());
    h.finish()
}
