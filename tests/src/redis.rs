//! A Redis of the test's own: Debian's redis-server (installed by tests/services/setup.sh) on a
//! free port of 127.0.0.1, keeping nothing on disk, stopped when dropped, and stopped as well
//! when the test process ends in any way at all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/bin/redis-server";

/// Tries at a free port: another process may take the one found before Redis binds it.
const PORT_TRIES: u32 = 5;

pub struct Redis {
    /// A shell that runs redis-server and stops it once its stdin reaches end of file: when
    /// this value drops, or when the test process dies and the pipe closes with it.
    watchdog: Child,
    port: u16,
}

impl Redis {
    /// Starts a Redis and waits until it answers PING; panics, saying why, when it cannot.
    pub fn start() -> Redis {
        assert!(
            Path::new(SERVER).exists(),
            "{SERVER} is missing: run `bash tests/services/setup.sh` (tests/run.sh does) to install it"
        );
        for _ in 0..PORT_TRIES {
            let mut redis = Redis::on_port(free_port());
            if redis.wait_ready(Duration::from_secs(10)) {
                return redis;
            }
        }
        panic!("redis-server did not start on a free port in {PORT_TRIES} tries");
    }

    /// Stops this Redis, as a crash or a restart would: everything it held is gone.
    pub fn stop(&mut self) {
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }

    /// Starts an empty Redis again on the same port, after [`Redis::stop`].
    pub fn restart(&mut self) {
        self.stop();
        let mut fresh = Redis::on_port(self.port);
        // The new one takes this one's place; dropping the old, stopped one waits for nothing.
        std::mem::swap(self, &mut fresh);
        drop(fresh);
        assert!(
            self.wait_ready(Duration::from_secs(10)),
            "redis-server did not start again on port {}",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn on_port(port: u16) -> Redis {
        let script = format!(
            "{SERVER} --bind 127.0.0.1 --port {port} --save '' --appendonly no \
             --protected-mode yes --loglevel warning & pid=$!; cat >/dev/null; kill $pid; wait $pid"
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sh for redis-server");
        Redis { watchdog, port }
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.watchdog.try_wait(), Ok(Some(_))) {
                return false;
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // End of file on the shell's stdin: it kills redis-server and waits for it.
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// True when a Redis answers PING on `port`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
