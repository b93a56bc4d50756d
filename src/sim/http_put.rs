//! `http_put <url> <file>` (mod_http_cache on a real node): the node `PUT`s one of its files to
//! a URL (a signed object-store URL: recordings in object storage, `rooms/uploads.rs`). As the
//! real node answers (held to it by the differential tests): `+OK <status>` for a 2xx, and for
//! anything else (another status, no such file, no answer) the Event Socket's text for a failed
//! API command, `-ERR http_put Command not found!`, the status lost. Plain `http://` only: the
//! simulator speaks to local test servers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const FAILED: &str = "-ERR http_put Command not found!\n";

/// Runs `http_put <url> <file>` (blocking: a local upload of a small file).
pub(crate) fn http_put(args: &str) -> String {
    let mut words = args.split_whitespace();
    let (Some(url), Some(path), None) = (words.next(), words.next(), words.next()) else {
        return "USAGE: {profile=s3}http_put <url> <file>\n".into();
    };
    let Ok(body) = std::fs::read(path) else {
        return FAILED.into();
    };
    match put(url, &body) {
        Some(status) if (200..300).contains(&status) => format!("+OK {status}\n"),
        _ => FAILED.into(),
    }
}

/// One HTTP/1.1 `PUT` of `body` to `url`; the answer's status.
fn put(url: &str, body: &[u8]) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (host, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: freeswitch-http-cache/1.0\r\n\
         Content-Type: audio/x-wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // The status line is all that is read.
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace().nth(1)?.parse().ok()
}
