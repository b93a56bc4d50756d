//! Ports for the servers tests start.

use std::net::{TcpListener, UdpSocket};

/// A port this process has not handed out yet (every helper that starts a server takes its
/// port here: a port freed by a server that a test restarts is never given to another test of the
/// same binary), above the kernel's ephemeral range (32768–60999
/// on Linux) and the RTP ranges: a port taken from the ephemeral range (`bind` to port 0) can be
/// given by the kernel to any outgoing connection (an Event Socket client, Redis, SIPp) before
/// FreeSWITCH binds it, which then cannot listen (seen on CI: "Socket Error! Could not listen").
pub fn unused(udp: bool) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = fastrand::u16(61_000..65_500);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        let tcp_free = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp_free && (!udp || UdpSocket::bind(("127.0.0.1", port)).is_ok()) {
            given.push(port);
            return port;
        }
    }
}

/// A free TCP port.
pub fn tcp() -> u16 {
    unused(false)
}
