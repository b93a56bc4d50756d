//! How many events per second the simulator delivers to one subscribed client: the simulator
//! must never be the bottleneck of a controller load test (target ≥ 100,000 events/s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard::esl::{ContentType, EslCodec};
use switchyard::sim::{SimConfig, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// Each heartbeat is two events (HEARTBEAT and RE_SCHEDULE).
const HEARTBEATS: u64 = 5_000;

async fn subscribed(sim: &Simulator) -> (TcpStream, EslCodec, BytesMut) {
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream
        .write_all(b"auth ClueCon\n\nevent plain HEARTBEAT RE_SCHEDULE\n\n")
        .await
        .unwrap();
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::new();
    let mut replies = 0;
    while replies < 3 {
        if let Some(_frame) = codec.decode(&mut buf).unwrap() {
            replies += 1;
        } else {
            stream.read_buf(&mut buf).await.unwrap();
        }
    }
    (stream, codec, buf)
}

async fn deliver(sim: &Simulator, conn: &mut (TcpStream, EslCodec, BytesMut)) -> Duration {
    let start = Instant::now();
    for _ in 0..HEARTBEATS {
        sim.heartbeat_now();
    }
    let (stream, codec, buf) = conn;
    let mut events = 0;
    while events < HEARTBEATS * 2 {
        match codec.decode(buf).unwrap() {
            Some(frame) => {
                assert_eq!(frame.content_type(), &ContentType::EventPlain);
                events += 1;
            }
            None => {
                stream.read_buf(buf).await.unwrap();
            }
        }
    }
    start.elapsed()
}

fn sim_events(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            heartbeat: None,
            ..SimConfig::default()
        }))
        .unwrap();
    let mut conn = rt.block_on(subscribed(&sim));
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(HEARTBEATS * 2));
    group.sample_size(20);
    group.bench_function("events_to_one_client", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(deliver(&sim, &mut conn)))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, sim_events);
criterion_main!(benches);
