//! The tokio codec: bytes from FreeSWITCH into [`Frame`]s, [`Command`]s into bytes.
//!
//! Decoding is check-then-parse. The cheap check looks for the blank line that ends the outer
//! header block and remembers how far it scanned, so a frame that arrives in pieces is never
//! rescanned; the nom parse of the header block runs once; once `Content-Length` is known the
//! buffer is reserved for the whole frame, which is then split off and frozen into one `Bytes`.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::command::Command;
use super::error::CodecError;
use super::frame::{self, ContentType, Frame};
use super::parse::{self, BlockEnd, HeaderSpan};
use super::tape::Tape;

/// FreeSWITCH refuses bodies above 16 MiB in the other direction; we use the same default cap.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Outer header blocks are a few hundred bytes; anything this long without a blank line is garbage.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Size limits of one connection's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (outer headers plus body) accepted; a larger one is an error.
    pub max_frame: usize,
    /// Largest outer header block accepted.
    pub max_header_block: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
        }
    }
}

#[derive(Debug)]
enum State {
    /// Looking for the end of the header block; bytes before `scanned` hold no blank line.
    Head { scanned: usize },
    /// Headers parsed; waiting until `total` bytes are buffered.
    Body {
        total: usize,
        body_start: Option<usize>,
        headers: Vec<HeaderSpan>,
        content_type: ContentType,
    },
}

/// Decoder of server-to-client frames and encoder of client commands.
#[derive(Debug)]
pub struct EslCodec {
    limits: Limits,
    state: State,
    /// Where plain events go instead of becoming frames while it tapes (see `tape.rs`).
    tape: Option<Arc<Tape>>,
    /// The header list of the last taped frame, reused for the next frame's.
    spare: Vec<HeaderSpan>,
}

impl Default for EslCodec {
    fn default() -> EslCodec {
        EslCodec::new(Limits::default())
    }
}

impl EslCodec {
    pub fn new(limits: Limits) -> EslCodec {
        EslCodec {
            limits,
            state: State::Head { scanned: 0 },
            tape: None,
            spare: Vec::new(),
        }
    }

    /// A codec that hands the plain events `tape` keeps to it instead of decoding them.
    pub fn with_tape(limits: Limits, tape: Option<Arc<Tape>>) -> EslCodec {
        EslCodec {
            tape,
            ..EslCodec::new(limits)
        }
    }

    /// Parses the header block `src[..head_end]` and works out how long the frame is.
    fn start_frame(
        &mut self,
        src: &[u8],
        head_end: usize,
        body_start: usize,
    ) -> Result<State, CodecError> {
        let mut headers = std::mem::take(&mut self.spare);
        headers.clear();
        parse::header_block(src, &src[..head_end], &mut headers).map_err(|line| {
            CodecError::MalformedHeader(String::from_utf8_lossy(line).into_owned())
        })?;
        let content_type = frame::find_header(src, &headers, "Content-Type")
            .map(|v| ContentType::parse(&frame::utf8_lossy(v)))
            .ok_or(CodecError::MissingContentType)?;
        let (total, body_start) = match frame::find_header(src, &headers, "Content-Length") {
            None => (body_start, None),
            Some(raw) => {
                let len = parse_content_length(raw)?;
                // Saturating: an absurd length fails the cap check below.
                let total = body_start.saturating_add(len);
                (total, Some(body_start))
            }
        };
        if total > self.limits.max_frame {
            return Err(CodecError::FrameTooLarge {
                size: total,
                cap: self.limits.max_frame,
            });
        }
        Ok(State::Body {
            total,
            body_start,
            headers,
            content_type,
        })
    }

    /// Decodes the next frame, or tapes it (see [`EslCodec::with_tape`]).
    fn decode_one(
        &mut self,
        src: &mut BytesMut,
        now: &mut Option<Instant>,
    ) -> Result<Step, CodecError> {
        if let State::Head { scanned } = self.state {
            if scanned == 0 {
                // Blank lines between frames carry nothing (FreeSWITCH skips them too).
                let blanks = src
                    .iter()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
                src.advance(blanks);
            }
            match parse::find_block_end(src, scanned) {
                BlockEnd::NotYet { resume } => {
                    // No blank line yet: the block ends at `resume + 1` at the earliest (`resume`
                    // is the last LF, or the end). Refused once more than the cap is buffered,
                    // unless that earliest end is still within the cap: a block of exactly the
                    // cap whose `\r\n` blank line has so far arrived as `\r` must not be refused
                    // when it would be accepted had the stream been split into reads elsewhere.
                    let cap = self.limits.max_header_block;
                    if src.len() > cap && resume >= cap {
                        return Err(CodecError::HeaderBlockTooLarge { cap });
                    }
                    self.state = State::Head { scanned: resume };
                    return Ok(Step::NotYet);
                }
                BlockEnd::Found {
                    head_end,
                    body_start,
                } => {
                    if head_end > self.limits.max_header_block {
                        return Err(CodecError::HeaderBlockTooLarge {
                            cap: self.limits.max_header_block,
                        });
                    }
                    self.state = self.start_frame(src, head_end, body_start)?;
                }
            }
        }
        let State::Body { total, .. } = self.state else {
            return Ok(Step::NotYet);
        };
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(Step::NotYet);
        }
        let State::Body {
            body_start,
            headers,
            content_type,
            ..
        } = std::mem::replace(&mut self.state, State::Head { scanned: 0 })
        else {
            return Ok(Step::NotYet);
        };
        if content_type == ContentType::EventPlain
            && let (Some(tape), Some(start)) = (&self.tape, body_start)
            && tape.taping()
            && tape.keep(&src[start..total], *now.get_or_insert_with(Instant::now))
        {
            src.advance(total);
            self.spare = headers;
            return Ok(Step::Taped);
        }
        let bytes = src.split_to(total).freeze();
        Ok(Step::Frame(frame::assemble(
            bytes,
            headers,
            body_start,
            content_type,
        )))
    }
}

/// What one step of decoding found.
enum Step {
    Frame(Frame),
    NotYet,
    /// A plain event the tape kept.
    Taped,
}

/// `Content-Length` is a plain decimal: no sign, no blanks, and not absurdly long.
fn parse_content_length(raw: &[u8]) -> Result<usize, CodecError> {
    let bad = || CodecError::BadContentLength(String::from_utf8_lossy(raw).into_owned());
    if raw.is_empty() || raw.len() > 12 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or_else(bad)
}

impl Decoder for EslCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // Taped events are consumed here, one after another, without becoming frames.
        let mut now = None;
        loop {
            match self.decode_one(src, &mut now)? {
                Step::Frame(frame) => return Ok(Some(frame)),
                Step::NotYet => return Ok(None),
                Step::Taped => {}
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.iter().all(|&b| b == b'\n' || b == b'\r') {
            src.clear();
            return Ok(None);
        }
        let buffered = src.len();
        src.clear();
        self.state = State::Head { scanned: 0 };
        Err(CodecError::Truncated { buffered })
    }
}

impl Encoder<Command> for EslCodec {
    type Error = CodecError;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        command.write_to(dst);
        Ok(())
    }
}

impl Encoder<&Command> for EslCodec {
    type Error = CodecError;

    fn encode(&mut self, command: &Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        command.write_to(dst);
        Ok(())
    }
}

/// Decodes every frame of a complete byte stream (a capture file, say).
pub fn decode_all(bytes: &[u8], limits: Limits) -> Result<Vec<Frame>, CodecError> {
    let mut codec = EslCodec::new(limits);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `stream` fed in reads of `sizes` (cycled), then ends it.
    fn decode_in_reads(
        stream: &[u8],
        sizes: &[usize],
        limits: Limits,
    ) -> Result<Vec<Frame>, CodecError> {
        let mut codec = EslCodec::new(limits);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut at = 0;
        for &size in sizes.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + size).min(stream.len());
            buf.extend_from_slice(&stream[at..end]);
            at = end;
            while let Some(frame) = codec.decode(&mut buf)? {
                frames.push(frame);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn a_header_block_at_the_cap_is_accepted_however_it_is_split() {
        let limits = Limits {
            max_frame: 1024,
            max_header_block: 32,
        };
        // A header block of exactly 32 bytes (its last LF included), ended by a CRLF blank line.
        let mut stream = b"Content-Type: text/x\nX: ".to_vec();
        stream.resize(31, b'y');
        stream.extend_from_slice(b"\n\r\n");
        assert_eq!(decode_all(&stream, limits).unwrap().len(), 1);
        for split in 1..stream.len() {
            let frames = decode_in_reads(&stream, &[split, stream.len()], limits)
                .unwrap_or_else(|e| panic!("split after {split} bytes: {e}"));
            assert_eq!(frames.len(), 1, "split after {split} bytes");
        }
        // One byte more and it is too large, split or not.
        let mut long = stream.clone();
        long.insert(25, b'y');
        assert!(matches!(
            decode_all(&long, limits),
            Err(CodecError::HeaderBlockTooLarge { .. })
        ));
        for split in 1..long.len() {
            assert!(matches!(
                decode_in_reads(&long, &[split, long.len()], limits),
                Err(CodecError::HeaderBlockTooLarge { .. })
            ));
        }
    }

    /// A taping codec consumes the plain events its tape keeps, whichever way the stream is
    /// split into reads, and yields every other frame in order.
    #[test]
    fn a_taping_codec_keeps_its_events_and_yields_the_rest() {
        let event = |name: &str, core: &str, seq: u64| {
            let body = format!("Event-Name: {name}\nCore-UUID: {core}\nEvent-Sequence: {seq}\n\n");
            format!(
                "Content-Length: {}\nContent-Type: text/event-plain\n\n{body}",
                body.len()
            )
        };
        let stream = [
            event("DTMF", "core", 1),
            "Content-Type: command/reply\nReply-Text: +OK\n\n".to_owned(),
            event("HEARTBEAT", "core", 2),
            event("CUSTOM", "core", 3),
            event("DTMF", "other", 4),
            event("CUSTOM", "core", 5),
        ]
        .concat();
        for split in [1, 7, 64, stream.len()] {
            let tape = Arc::new(Tape::default());
            tape.start("core", 100);
            let mut codec = EslCodec::with_tape(Limits::default(), Some(tape.clone()));
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for chunk in stream.as_bytes().chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    frames.push(frame);
                }
            }
            assert!(buf.is_empty());
            let kinds: Vec<String> = frames
                .iter()
                .map(|f| match f.content_type() {
                    ContentType::EventPlain => crate::esl::Event::from_frame(f)
                        .unwrap()
                        .sequence()
                        .unwrap()
                        .to_string(),
                    other => other.to_string(),
                })
                .collect();
            assert_eq!(kinds, ["command/reply", "2", "4"], "reads of {split}");
            let taped = tape.stop();
            let seqs: Vec<&str> = taped
                .events
                .iter()
                .map(|b| std::str::from_utf8(b).unwrap().lines().nth(2).unwrap())
                .collect();
            assert_eq!(
                seqs,
                [
                    "Event-Sequence: 1",
                    "Event-Sequence: 3",
                    "Event-Sequence: 5"
                ]
            );
        }
    }
}
