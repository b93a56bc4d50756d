#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Decode throughput of the Event Socket wire layer on real captures.
//!
//! The corpus is the plain-event captures under `fixtures/esl/`. Each iteration decodes every
//! capture from a fresh `BytesMut` with [`EslCodec`], calling `Decoder::decode` in a loop the way
//! a socket reader does (the copy of the capture into the buffer is setup, not measured).
//!
//! Run with `cargo bench --bench esl_decode`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::esl::{ContentType, EslCodec, Event, Limits, Tape};
use tokio_util::codec::Decoder;

const CAPTURES: [&str; 3] = [
    "01_event_plain_ALL.recv.raw",
    "09_restart.recv.raw",
    "06_api_survey.events.recv.raw",
];

struct Corpus {
    captures: Vec<Vec<u8>>,
    bytes: u64,
    events: u64,
}

fn corpus() -> Corpus {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/esl");
    let captures: Vec<Vec<u8>> = CAPTURES
        .iter()
        .map(|name| {
            let path = dir.join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        })
        .collect();
    let bytes = captures.iter().map(|c| c.len() as u64).sum();
    let mut corpus = Corpus {
        captures,
        bytes,
        events: 0,
    };
    corpus.events = decode(&mut buffers(&corpus), |_| ());
    assert!(corpus.events > 0, "the corpus holds no plain events");
    corpus
}

/// One freshly filled buffer per capture, as a socket reader would hand them to the codec.
fn buffers(corpus: &Corpus) -> Vec<BytesMut> {
    corpus
        .captures
        .iter()
        .map(|c| BytesMut::from(&c[..]))
        .collect()
}

/// Decodes the corpus, builds each event and reads `Event-Name` and `Unique-ID`.
fn index_events(buffers: &mut [BytesMut]) -> u64 {
    decode(buffers, |event| {
        black_box(event.name());
        black_box(event.unique_id());
    })
}

/// Decodes the corpus and reads every header of every event, fully percent-decoded.
fn read_every_header(buffers: &mut [BytesMut]) -> u64 {
    decode(buffers, |event| {
        black_box(event.name());
        black_box(event.unique_id());
        for (name, value) in event.headers() {
            black_box((name, value));
        }
    })
}

/// Decodes every frame of every buffer, hands each plain event to `per_event`, and returns how
/// many plain events there were. Frames are split off the buffers, so nothing is copied.
fn decode(buffers: &mut [BytesMut], mut per_event: impl FnMut(&Event)) -> u64 {
    let mut events = 0;
    for buf in buffers {
        let mut codec = EslCodec::new(Limits::default());
        while let Some(frame) = codec.decode(buf).expect("capture decodes") {
            if *frame.content_type() == ContentType::EventPlain {
                let event = Event::from_frame(&frame).expect("plain event parses");
                per_event(&event);
                events += 1;
            }
            black_box(&frame);
        }
        assert!(buf.is_empty(), "bytes left after the last frame");
    }
    events
}

/// What a standby's connection does with each event (issue 59): decodes the frame and keeps the
/// plain event's bytes on a tape (its name, `Core-UUID` and `Event-Sequence` read, the bytes
/// copied), against `index_events`'s decode and read. Events of another FreeSWITCH process than
/// the tape's go their usual way. Returns how many events were taped.
fn tape_events(buffers: &mut [BytesMut]) -> u64 {
    let tape = Arc::new(Tape::default());
    tape.start(
        TAPED_CORE.get().expect("the core is read first"),
        usize::MAX,
    );
    for buf in buffers {
        let mut codec = EslCodec::with_tape(Limits::default(), Some(tape.clone()));
        while let Some(frame) = codec.decode(buf).expect("capture decodes") {
            black_box(&frame);
        }
    }
    tape.len() as u64
}

/// The `Core-UUID` the tape keeps: the first capture's.
static TAPED_CORE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Times `routine` on freshly filled buffers. The fill (a copy of the corpus) and the freeing of
/// the buffers are left out. One fill per iteration (`PerIteration`) keeps the input hot in cache
/// as bytes just read from a socket are; an iteration takes about a millisecond, so timing each
/// one separately costs nothing measurable.
fn bench(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    corpus: &Corpus,
    name: &str,
    routine: fn(&mut [BytesMut]) -> u64,
) {
    group.bench_function(name, |b| {
        b.iter_batched_ref(
            || buffers(corpus),
            |bufs| black_box(routine(bufs)),
            BatchSize::PerIteration,
        );
    });
}

fn benches(c: &mut Criterion) {
    let corpus = corpus();
    println!(
        "corpus: {} bytes, {} plain events ({})",
        corpus.bytes,
        corpus.events,
        CAPTURES.join(", ")
    );

    // Bytes per second.
    let mut group = c.benchmark_group("esl_decode");
    group.throughput(Throughput::Bytes(corpus.bytes));
    bench(
        &mut group,
        &corpus,
        "decode_frames_index_events",
        index_events,
    );
    bench(
        &mut group,
        &corpus,
        "decode_and_read_every_header",
        read_every_header,
    );
    group.finish();

    // Events per second, same work.
    let mut group = c.benchmark_group("esl_decode_events");
    group.throughput(Throughput::Elements(corpus.events));
    bench(
        &mut group,
        &corpus,
        "decode_frames_index_events",
        index_events,
    );
    bench(
        &mut group,
        &corpus,
        "decode_and_read_every_header",
        read_every_header,
    );
    group.finish();

    // A standby's taping against decoding and reading the same events: the first capture only
    // (one FreeSWITCH process: the tape keeps all its events).
    let one = Corpus {
        captures: corpus.captures[..1].to_vec(),
        bytes: corpus.captures[0].len() as u64,
        events: decode(&mut buffers(&corpus)[..1], |_| ()),
    };
    let mut core = None;
    decode(&mut buffers(&one), |event| {
        if core.is_none() {
            core = event.header("Core-UUID").map(|c| c.into_owned());
        }
    });
    TAPED_CORE
        .set(core.expect("the first capture's events name their Core-UUID"))
        .expect("set once");
    let taped = tape_events(&mut buffers(&one));
    println!(
        "tape: {taped} of the first capture's {} plain events kept",
        one.events
    );
    let mut group = c.benchmark_group("esl_tape_events");
    group.throughput(Throughput::Elements(one.events));
    bench(&mut group, &one, "decode_frames_index_events", index_events);
    bench(&mut group, &one, "decode_and_tape", tape_events);
    group.finish();
}

criterion_group!(esl, benches);
criterion_main!(esl);
