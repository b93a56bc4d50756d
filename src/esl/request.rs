//! The server side of the wire: commands as mod_event_socket reads them. Used by the simulator;
//! the controller never reads commands.
//!
//! FreeSWITCH's rules (`read_packet`): CR and LF before the first byte are skipped; a block ends at
//! a blank line (CR ignored); the first line is the command; later lines are `Name: value` split at
//! the first colon with leading spaces dropped, and lines without a colon are ignored; a
//! `Content-Length` header is followed by that many body bytes; nothing is URL-decoded.

use bytes::{Buf, Bytes, BytesMut};
use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_till1, take_until},
    character::complete::space0,
    sequence::terminated,
};
use tokio_util::codec::{Decoder, Encoder};

use super::error::CodecError;
use super::parse::{BlockEnd, find_block_end};

/// A command block received from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The first line, e.g. `api status` or `event plain ALL`.
    pub command: String,
    /// The header lines after it, in order.
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The largest command body FreeSWITCH accepts.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// FreeSWITCH cuts a header block at 10 MiB; we refuse it instead.
const MAX_BLOCK: usize = 10 * 1024 * 1024;

/// Decodes client commands and passes already-framed server bytes through.
#[derive(Debug, Default)]
pub struct RequestCodec {
    scanned: usize,
    pending: Option<(Request, usize)>,
    /// Counts the line feeds skipped between commands (a client's wake-ups), when set.
    line_feeds: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl RequestCodec {
    /// A codec that adds every line feed it skips between commands to `counter`.
    pub fn counting_line_feeds(
        counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> RequestCodec {
        RequestCodec {
            line_feeds: Some(counter),
            ..RequestCodec::default()
        }
    }
}

type Res<'a, T> = IResult<&'a [u8], T, ()>;

fn header_line(line: &[u8]) -> Res<'_, (&[u8], &[u8])> {
    let (value, name) = terminated(take_till1(|c| c == b':'), tag(":")).parse(line)?;
    let (value, _) = space0(value)?;
    Ok((&[], (name, value)))
}

fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut input = block;
    std::iter::from_fn(move || {
        if input.is_empty() {
            return None;
        }
        let found: Res<'_, &[u8]> = terminated(take_until("\n"), tag("\n")).parse(input);
        let (rest, line) = found.unwrap_or((&[], input));
        input = rest;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_block(block: &[u8]) -> Result<(Request, usize), CodecError> {
    let mut lines = lines(block).filter(|l| !l.is_empty());
    let command = text(lines.next().unwrap_or_default()).trim().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| header_line(l).ok())
        .map(|(_, (n, v))| (text(n), text(v)))
        .collect();
    let body_len = match headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        None => 0,
        Some((_, v)) => match v.trim().parse::<usize>() {
            Ok(n) if n <= MAX_BODY => n,
            _ => return Err(CodecError::BadContentLength(v.clone())),
        },
    };
    let request = Request {
        command,
        headers,
        body: None,
    };
    Ok((request, body_len))
}

impl Decoder for RequestCodec {
    type Item = Request;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        if self.pending.is_none() {
            if self.scanned == 0 {
                let blanks = src
                    .iter()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
                if let Some(counter) = &self.line_feeds {
                    let feeds = src[..blanks].iter().filter(|&&b| b == b'\n').count();
                    counter.fetch_add(feeds as u64, std::sync::atomic::Ordering::Relaxed);
                }
                src.advance(blanks);
            }
            match find_block_end(src, self.scanned) {
                BlockEnd::NotYet { resume } => {
                    // As in the frame decoder: a block of exactly the cap whose CRLF blank line
                    // has arrived only as far as the CR is not refused.
                    if src.len() > MAX_BLOCK && resume >= MAX_BLOCK {
                        return Err(CodecError::HeaderBlockTooLarge { cap: MAX_BLOCK });
                    }
                    self.scanned = resume;
                    return Ok(None);
                }
                BlockEnd::Found {
                    head_end,
                    body_start,
                } => {
                    let parsed = parse_block(&src[..head_end])?;
                    src.advance(body_start);
                    self.scanned = 0;
                    self.pending = Some(parsed);
                }
            }
        }
        let Some((_, body_len)) = &self.pending else {
            return Ok(None);
        };
        let body_len = *body_len;
        if src.len() < body_len {
            src.reserve(body_len - src.len());
            return Ok(None);
        }
        let Some((mut request, _)) = self.pending.take() else {
            return Ok(None);
        };
        if body_len > 0 || request.header("Content-Length").is_some() {
            request.body = Some(src.split_to(body_len).freeze());
        }
        Ok(Some(request))
    }
}

impl Encoder<Bytes> for RequestCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Request> {
        let mut codec = RequestCodec::default();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn commands_headers_and_bodies_are_read_as_freeswitch_reads_them() {
        let got = decode_all(
            b"\r\nauth ClueCon\r\n\r\nbgapi status\nJob-UUID:  j1\nno colon\n\n\
              sendevent CUSTOM\nContent-Length: 3\n\nabcexit\n\n",
        );
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].command, "auth ClueCon");
        assert_eq!(got[1].command, "bgapi status");
        assert_eq!(got[1].header("job-uuid"), Some("j1"));
        assert_eq!(got[1].headers.len(), 1);
        assert_eq!(got[2].body.as_deref(), Some(&b"abc"[..]));
        assert_eq!(got[3].command, "exit");
    }

    #[test]
    fn the_captured_client_bytes_decode_to_their_commands() {
        let sent = include_bytes!("../../fixtures/esl/04_command_session.sent.raw");
        let got = decode_all(sent);
        assert_eq!(got[0].command, "auth ClueCon");
        assert!(
            got.iter()
                .any(|r| r.command == "event plain CUSTOM conference::maintenance")
        );
        assert_eq!(got.last().map(|r| r.command.as_str()), Some("exit"));
    }
}
