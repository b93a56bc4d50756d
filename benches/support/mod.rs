//! What the benches share: a throwaway `redis-server` on a free port (none if it is not
//! installed; the bench then says which figure it skips).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A throwaway redis-server for the bench.
pub struct RedisServer(Child, u16);

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(RedisServer(child, port));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.1)
    }

    /// Empties the database between iterations, so each starts from the same state.
    pub fn flush(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd("FLUSHALL").exec(&mut conn).unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
