//! nom parsers for ESL header blocks: the outer block of every frame and the inner block of a
//! plain event. Parsers return offsets, never copies, so a frame's headers stay zero-copy slices
//! of the one `Bytes` the frame was frozen into.

use nom::{
    IResult, Offset, Parser,
    bytes::complete::{tag, take_till1, take_until},
    character::complete::space0,
    combinator::rest,
    sequence::terminated,
};

/// A byte range inside a frame. `u32` keeps a header at 16 bytes; frames are capped far below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn of(base: &[u8], part: &[u8]) -> Span {
        let start = base.offset(part);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// One `Name: value` line of a header block, as spans of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Errors carry nothing: the caller reports the offending line itself, and building nom's
/// error values would cost time on the hot path.
type Res<'a, T> = IResult<&'a [u8], T, ()>;

/// One line, without its LF (and without a CR before it). The last line may lack its LF.
fn line(input: &[u8]) -> Res<'_, &[u8]> {
    let found: Res<'_, &[u8]> = terminated(take_until("\n"), tag("\n")).parse(input);
    let (input, line) = match found {
        Ok(ok) => ok,
        Err(_) => rest.parse(input)?,
    };
    Ok((input, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// `Name:value`, where spaces and tabs after the colon belong to no one.
fn header(line: &[u8]) -> Res<'_, (&[u8], &[u8])> {
    let (value, name) = terminated(take_till1(|c| c == b':'), tag(":")).parse(line)?;
    let (value, _) = space0(value)?;
    Ok((&[], (name, value)))
}

/// Parses the lines of `block` into spans relative to `frame` (which must contain `block`), up to
/// the first blank line or the end of `block`. Returns how many bytes of `block` were consumed,
/// the blank line included. A line without a colon (or with an empty name) is the error.
pub(crate) fn header_block<'a>(
    frame: &'a [u8],
    block: &'a [u8],
    out: &mut Vec<HeaderSpan>,
) -> Result<usize, &'a [u8]> {
    let mut input = block;
    while !input.is_empty() {
        let Ok((rest, line)) = line(input) else {
            return Err(input);
        };
        if line.is_empty() {
            return Ok(block.offset(rest));
        }
        let Ok((_, (name, value))) = header(line) else {
            return Err(line);
        };
        out.push(HeaderSpan {
            name: Span::of(frame, name),
            value: Span::of(frame, value),
        });
        input = rest;
    }
    Ok(block.len())
}

/// Where a header block ends, if the buffer holds its terminating blank line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlockEnd {
    /// The block is `buf[..head_end]` (its last line's LF included); the body starts at `body_start`.
    Found { head_end: usize, body_start: usize },
    /// No blank line yet; scanning may resume at this offset when more bytes arrive.
    NotYet { resume: usize },
}

/// The cheap check of check-then-parse: finds the blank line (`\n\n` or `\n\r\n`) that ends a
/// header block, starting the scan at `from` so bytes already seen are not scanned again.
pub(crate) fn find_block_end(buf: &[u8], from: usize) -> BlockEnd {
    let mut pos = from;
    while let Some(i) = memchr::memchr(b'\n', &buf[pos..]).map(|i| i + pos) {
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => {
                return BlockEnd::Found {
                    head_end: i + 1,
                    body_start: i + 2,
                };
            }
            (Some(b'\r'), Some(b'\n')) => {
                return BlockEnd::Found {
                    head_end: i + 1,
                    body_start: i + 3,
                };
            }
            (None, _) | (Some(b'\r'), None) => return BlockEnd::NotYet { resume: i },
            _ => pos = i + 1,
        }
    }
    BlockEnd::NotYet { resume: buf.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        header_block(block, block, &mut out)
            .map_err(|l| String::from_utf8_lossy(l).into_owned())?;
        Ok(out
            .iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(h.name.get(block)).into_owned(),
                    String::from_utf8_lossy(h.value.get(block)).into_owned(),
                )
            })
            .collect())
    }

    #[test]
    fn header_lines_split_at_the_first_colon_and_drop_leading_blanks() {
        let got = parse(b"Reply-Text: +OK Job-UUID: x\r\nEmpty:\nTabbed:\t v\n").unwrap();
        assert_eq!(
            got,
            vec![
                ("Reply-Text".into(), "+OK Job-UUID: x".into()),
                ("Empty".into(), "".into()),
                ("Tabbed".into(), "v".into()),
            ]
        );
    }

    #[test]
    fn a_line_without_colon_or_name_is_an_error() {
        assert_eq!(parse(b"A: b\nno colon here\n"), Err("no colon here".into()));
        assert_eq!(parse(b": value\n"), Err(": value".into()));
    }

    #[test]
    fn a_block_stops_after_its_blank_line() {
        let block = b"A: 1\nB: 2\n\nrest";
        let mut out = Vec::new();
        assert_eq!(header_block(block, block, &mut out), Ok(11));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn block_end_accepts_lf_and_crlf_and_resumes() {
        assert_eq!(
            find_block_end(b"A: b\n\nbody", 0),
            BlockEnd::Found {
                head_end: 5,
                body_start: 6
            }
        );
        assert_eq!(
            find_block_end(b"A: b\r\n\r\nbody", 0),
            BlockEnd::Found {
                head_end: 6,
                body_start: 8
            }
        );
        assert_eq!(find_block_end(b"A: b\n", 0), BlockEnd::NotYet { resume: 4 });
        assert_eq!(
            find_block_end(b"A: b\r\n\r", 0),
            BlockEnd::NotYet { resume: 5 }
        );
        assert_eq!(
            find_block_end(b"A: b\nC: d", 0),
            BlockEnd::NotYet { resume: 9 }
        );
    }
}
