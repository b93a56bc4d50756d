//! The API's edge against outsiders and hostile tenants (issue 56), over real sockets: idle and
//! half-sent connections are cut at the header limit, one address cannot take every
//! connection, slow bodies time out and hold only their app's share, event streams are
//! bounded per app, wrong keys are throttled per address. Each asserts what another app (or
//! the operator's probes) would notice: being answered, and fast.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::common::api::{A, B, TestLab, options};
use switchyard::api::ApiOptions;
use switchyard::api::admission::AdmissionLimits;
use switchyard::server::http::ConnectionLimits;
use switchyard::store::memory::MemoryStore;

/// The outsider's address: another loopback address than the other apps' 127.0.0.1.
const HOSTILE: [u8; 4] = [127, 0, 0, 2];

/// A lab served on a real port under these limits; stopped when dropped.
struct Served {
    addr: SocketAddr,
    stop: CancellationToken,
    _lab: TestLab<MemoryStore>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(admission: AdmissionLimits, connections: ConnectionLimits) -> Served {
    let lab = TestLab::start(
        MemoryStore::new(),
        switchyard::server::lab::LabOptions {
            api: ApiOptions {
                global_rate: 0.0,
                admission,
                ..ApiOptions::default()
            },
            ..options()
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(switchyard::server::http::serve(
        lab.lab.router(),
        listener,
        connections,
        stop.clone(),
    ));
    Served {
        addr,
        stop,
        _lab: lab,
    }
}

/// A connection to `to` from the address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    socket.connect(to).await
}

/// How long from `start` until the server closes `conn` (reads until EOF or an error), at
/// most `within`.
async fn closed_after(conn: &mut TcpStream, start: Instant, within: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + within).into(), conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn client_from(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `n` GETs of B's room list from 127.0.0.1, one after another: each status must be 200; the
/// latencies, sorted.
async fn b_latencies(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let http = client_from([127, 0, 0, 1]);
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = http
            .get(format!("http://{addr}/api/v1/conferences"))
            .header("x-app-id", B.0)
            .header("x-api-key", B.1)
            .send()
            .await
            .expect("B is answered");
        assert_eq!(r.status(), 200, "B's request");
        took.push(start.elapsed());
    }
    took.sort();
    took
}

/// A connection from the outsider's address on which A posts to `path` a body that declares
/// 4,000 bytes and sends one.
async fn slow_body(addr: SocketAddr, path: &str) -> TcpStream {
    let mut conn = connect_from(HOSTILE, addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-App-ID: {}\r\nX-API-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{",
        A.0, A.1
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn
}

/// What the server writes on `conn` until it closes it (5 s at most).
async fn answer_of(conn: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A's `POST /api/v1/conferences` of a room named `name`.
async fn create_as_a(
    http: &reqwest::Client,
    addr: SocketAddr,
    name: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("http://{addr}/api/v1/conferences"))
        .header("x-app-id", A.0)
        .header("x-api-key", A.1)
        .header("content-type", "application/json")
        .body(json!({ "name": name }).to_string())
        .send()
        .await
}

/// The first `Some` of `check`, asked every 20 ms for up to 10 s.
async fn until<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed when dropped (a failing test leaves none behind).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99).div_ceil(100).saturating_sub(1)]
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_at_the_header_limit() {
    let limit = Duration::from_millis(400);
    let s = serve(
        AdmissionLimits::default(),
        ConnectionLimits {
            header_timeout: limit,
            ..ConnectionLimits::default()
        },
    )
    .await;
    let start = Instant::now();
    let mut idle = connect_from(HOSTILE, s.addr).await.unwrap();
    let mut half = connect_from(HOSTILE, s.addr).await.unwrap();
    half.write_all(b"GET /api/v1/conferences HTTP/1.1\r\nHost: x\r\nX-App-ID: ")
        .await
        .unwrap();
    // A keep-alive connection that got its answer and then says nothing.
    let mut kept = connect_from(HOSTILE, s.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for (what, conn) in [
        ("idle", &mut idle),
        ("half-sent", &mut half),
        ("kept alive", &mut kept),
    ] {
        let closed = closed_after(conn, start, Duration::from_secs(5)).await;
        let closed =
            closed.unwrap_or_else(|| panic!("the {what} connection is still open after 5 s"));
        assert!(
            closed >= limit / 2,
            "the {what} connection closed too soon: {closed:?}"
        );
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_another_app_is_not_held_up() {
    let s = serve(
        AdmissionLimits {
            requests_per_app: 2,
            body_timeout: Duration::from_millis(500),
            ..AdmissionLimits::default()
        },
        ConnectionLimits::default(),
    )
    .await;
    let slow = |addr| async move {
        let mut conn = slow_body(addr, "/api/v1/conferences").await;
        let start = Instant::now();
        let answer = answer_of(&mut conn).await;
        (start.elapsed(), answer)
    };
    let held = tokio::spawn(futures_util::future::join(slow(s.addr), slow(s.addr)));
    // While A's two places are held: A's third request is refused, B's is answered.
    let http = client_from([127, 0, 0, 1]);
    let a_refused = until(|| async {
        let r = create_as_a(&http, s.addr, "third").await.ok()?;
        (r.status() == 429).then_some(r)
    })
    .await;
    let body: serde_json::Value =
        serde_json::from_slice(&a_refused.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["detail"]["limit"], "requests_in_flight_per_app",
        "{body}"
    );
    assert_eq!(b_latencies(s.addr, 5).await.len(), 5);
    let ((t1, r1), (t2, r2)) = held.await.unwrap();
    for (took, answer) in [(t1, r1), (t2, r2)] {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("Request body not received in time"),
            "{answer}"
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    // And A's places are its own again.
    let r = create_as_a(&http, s.addr, "after").await.unwrap();
    assert_eq!(r.status(), 201);
}

/// The test: one app saturating with slow bodies and event streams never moves another
/// app's p99 past 100 ms.
#[tokio::test]
async fn one_app_saturating_with_slow_bodies_and_streams_leaves_another_under_100ms_p99() {
    // The connections are not what is bounded here: the app's share is.
    let s = serve(
        AdmissionLimits::default(),
        ConnectionLimits {
            connections_per_client: 0,
            ..ConnectionLimits::default()
        },
    )
    .await;
    let shares = AdmissionLimits::default();
    // A holds more slow bodies than its share, and more streams than its share.
    let mut held = Vec::new();
    for _ in 0..shares.requests_per_app + 20 {
        held.push(slow_body(s.addr, "/api/v1/conferences").await);
    }
    let mut streams = 0;
    let mut refused_streams = 0;
    for _ in 0..shares.streams_per_app + 5 {
        let mut conn = connect_from(HOSTILE, s.addr).await.unwrap();
        let head = format!(
            "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nX-App-ID: {}\r\nX-API-Key: {}\r\n\r\n",
            A.0, A.1
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut first = [0u8; 12];
        conn.read_exact(&mut first).await.unwrap();
        match &first {
            b"HTTP/1.1 200" => streams += 1,
            b"HTTP/1.1 429" => refused_streams += 1,
            other => panic!("{}", String::from_utf8_lossy(other)),
        }
        held.push(conn);
    }
    assert_eq!(streams, shares.streams_per_app, "A's streams are bounded");
    assert_eq!(refused_streams, 5);
    let took = b_latencies(s.addr, 200).await;
    eprintln!(
        "edge: B's p99 {:?}, max {:?} beside A's saturation",
        p99(&took),
        took.last()
    );
    assert!(
        p99(&took) < Duration::from_millis(100),
        "B's p99 {:?} (max {:?})",
        p99(&took),
        took.last()
    );
    drop(held);
}

#[tokio::test]
async fn wrong_keys_are_throttled_per_address_and_other_addresses_are_not() {
    let s = serve(
        AdmissionLimits {
            auth_failures_per_minute: 5,
            ..AdmissionLimits::default()
        },
        ConnectionLimits::default(),
    )
    .await;
    let url = format!("http://{}/api/v1/conferences", s.addr);
    let hostile = client_from(HOSTILE);
    for _ in 0..5 {
        let r = hostile
            .get(&url)
            .header("x-app-id", B.0)
            .header("x-api-key", "guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = hostile
        .get(&url)
        .header("x-app-id", B.0)
        .header("x-api-key", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // From the throttled address even a right key learns nothing; from another it is served.
    let r = hostile
        .get(&url)
        .header("x-app-id", B.0)
        .header("x-api-key", B.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(b_latencies(s.addr, 3).await.len(), 3);
}

/// Beyond its file limit (1,024, as on many hosts), 2,000 idle or half-sent connections from
/// one address left every other client unanswered. The real `switchyard lab` process, under
/// that limit: another app's requests are answered within 100 ms p99, and the probes answer.
#[tokio::test]
async fn two_thousand_held_connections_from_one_address_leave_others_answered() {
    let _ = rlimit::increase_nofile_limit(8192);
    let port = crate::common::ports::tcp();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _lab = Child(std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec {} lab --listen {addr} --app {}:{} --app {}:{} --global-rps 0",
            env!("CARGO_BIN_EXE_switchyard"),
            A.0,
            A.1,
            B.0,
            B.1
        ))
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("switchyard lab starts"));
    let http = client_from([127, 0, 0, 1]);
    until(|| async {
        let r = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // An instance out of files accepts nothing: the kernel's queue fills and connecting
    // waits; what is not connected within two seconds is not held.
    let held: Vec<TcpStream> = futures_util::future::join_all((0..2000).map(|i| async move {
        let connecting = connect_from(HOSTILE, addr);
        let mut conn = tokio::time::timeout(Duration::from_secs(2), connecting)
            .await
            .ok()?
            .ok()?;
        if i % 2 == 1 {
            let _ = conn
                .write_all(b"POST /api/v1/conferences HTTP/1.1\r\nHost: x\r\n")
                .await;
        }
        Some(conn)
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let took = b_latencies(addr, 200).await;
    eprintln!(
        "edge: {} held; others' p99 {:?}, max {:?}",
        held.len(),
        p99(&took),
        took.last()
    );
    for probe in ["/healthz", "/readyz"] {
        let r = http.get(format!("http://{addr}{probe}")).send().await;
        assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200), "{probe}");
    }
    assert!(
        p99(&took) < Duration::from_millis(100),
        "p99 {:?} (max {:?})",
        p99(&took),
        took.last()
    );
    drop(held);
}

/// A node fetches what an app names from inside the operator's network: play, announce and
/// hold-music URLs to internal addresses, in any spelling, are refused with a stable reason,
/// and nothing is played.
#[tokio::test]
async fn urls_a_node_would_fetch_from_inside_the_network_are_refused_with_their_reason() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    let room = t.room(A, "ssrf").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let internal = [
        "http://127.0.0.1:8021/internal/admin-secret.wav",
        "http://169.254.169.254/latest/meta-data/iam",
        "http://10.0.0.1/a.wav",
        "http://192.168.1.1/a.wav",
        "http://0.0.0.0/a.wav",
        "http://localhost:8080/a.wav",
        "http://2130706433/a.wav",
    ];
    for url in internal {
        let play = t
            .post(
                &format!("/api/v1/conferences/{room}/play"),
                A,
                json!({ "urls": [url] }),
            )
            .await;
        assert_eq!(play.status, 400, "play {url}: {play:?}");
        assert_eq!(play.body["detail"]["reason"], "private_address", "{play:?}");
        assert!(
            play.body["error"]
                .as_str()
                .unwrap()
                .starts_with("Refused url"),
            "{play:?}"
        );
        let path = format!("/api/v1/sessions/{s}/commands/conference/announce");
        let announce = t.post(&path, A, json!({ "url": url })).await;
        assert_eq!(announce.status, 400, "announce {url}: {announce:?}");
        assert_eq!(announce.body["detail"]["reason"], "private_address");
        let path = format!("/api/v1/sessions/{s}/commands/conference/hold");
        let hold = t.post(&path, A, json!({ "music": url })).await;
        assert_eq!(hold.status, 400, "hold {url}: {hold:?}");
        assert_eq!(hold.body["detail"]["reason"], "private_address");
    }
    let shown = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_ne!(shown.body["playback_status"], "playing", "{shown:?}");
    let member = t.members(A, &room).await;
    assert_eq!(member[0]["held"], false, "{member:?}");
    // A public URL still plays.
    let ok = t
        .post(
            &format!("/api/v1/conferences/{room}/play"),
            A,
            json!({ "urls": ["https://cdn.example.com/a.wav"] }),
        )
        .await;
    assert_eq!(ok.status, 202, "{ok:?}");
}

/// The operator's key guessed at `/metrics` is throttled like an app's key anywhere.
#[tokio::test]
async fn wrong_operator_keys_at_metrics_are_throttled_too() {
    let s = serve(
        AdmissionLimits {
            auth_failures_per_minute: 3,
            ..AdmissionLimits::default()
        },
        ConnectionLimits::default(),
    )
    .await;
    let hostile = client_from(HOSTILE);
    let scrape = |key: &'static str| {
        hostile
            .get(format!("http://{}/metrics", s.addr))
            .header("authorization", format!("Bearer {key}"))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(scrape("guess").await.unwrap().status(), 401);
    }
    assert_eq!(scrape("guess").await.unwrap().status(), 429);
}

/// The conference resource of seeds 000–003 (`/v1.0/…`) takes an app's keys too: its bodies
/// are held to the same time limit (it once was not admitted at all).
#[tokio::test]
async fn the_v1_0_resource_is_admitted_like_the_api() {
    let s = serve(
        AdmissionLimits {
            body_timeout: Duration::from_millis(300),
            ..AdmissionLimits::default()
        },
        ConnectionLimits::default(),
    )
    .await;
    let mut conn = slow_body(s.addr, "/v1.0/conferences").await;
    let answer = answer_of(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
