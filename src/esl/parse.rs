//! nom parsers for ESL header blocks: the outer block of every frame and the inner block of a
//! plain event. Parsers return offsets, never copies, so a frame's headers stay zero-copy slices
//! of the one `Bytes` the frame was frozen into.

use nom::{
    IResult, Input, Offset, Parser,
    branch::alt,
    bytes::complete::{tag, take},
    character::complete::space0,
    combinator::{eof, opt, verify},
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

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
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

/// Everything before the first LF (all of `input` when there is none), found with one
/// vectorised scan. nom's `take_until` does the same scan behind two calls that do not inline.
fn till_lf(input: &[u8]) -> Res<'_, &[u8]> {
    let at = memchr::memchr(b'\n', input).unwrap_or(input.len());
    Ok(input.take_split(at))
}

/// One line, without its LF (and without a CR before it). The last line may lack its LF.
fn line(input: &[u8]) -> Res<'_, &[u8]> {
    // `till_lf` stops at the LF or at the end, so taking one more byte takes exactly the LF.
    let (input, line) = terminated(till_lf, opt(take(1usize))).parse(input)?;
    Ok((input, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// A line that is empty once its CR is dropped: the end of a header block.
fn blank_line(input: &[u8]) -> Res<'_, &[u8]> {
    alt((tag("\n"), tag("\r\n"), terminated(tag("\r"), eof))).parse(input)
}

/// Everything before the first `:` or LF. nom's `take_till` tests byte by byte; one vectorised
/// scan for either delimiter is several times cheaper on header names.
fn till_colon_or_lf(input: &[u8]) -> Res<'_, &[u8]> {
    let at = memchr::memchr2(b':', b'\n', input).unwrap_or(input.len());
    Ok(input.take_split(at))
}

/// `Name:value` up to the end of its line, where spaces and tabs after the colon belong to no
/// one. The name is what precedes the first colon of the line and may not be empty. Each byte of
/// the line is scanned once: up to the colon for the name, then up to the LF for the value.
fn header(input: &[u8]) -> Res<'_, (&[u8], &[u8])> {
    let (input, name) = terminated(
        verify(till_colon_or_lf, |name: &[u8]| !name.is_empty()),
        tag(":"),
    )
    .parse(input)?;
    let (input, value) = line(input)?;
    let (value, _) = space0(value)?;
    Ok((input, (name, value)))
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
        // A blank line never parses as a header (its LF comes before any colon), so it is tested
        // for only once per block, when a line is not a header.
        let Ok((rest, (name, value))) = header(input) else {
            if let Ok((rest, _)) = blank_line(input) {
                return Ok(block.offset(rest));
            }
            // Report the offending line the way it reads, without its line end.
            return Err(line(input).map_or(input, |(_, line)| line));
        };
        out.push(HeaderSpan {
            name: Span::of(frame, name),
            value: Span::of(frame, value),
        });
        input = rest;
    }
    Ok(block.len())
}

/// The values of the first `name:` line of each of `names` in the header block at the start of
/// `block` (compared without regard to case), reading lines only until every one is found: a
/// name is `None` when the block ends first, or a line before its own is not a header.
pub(crate) fn first_headers<'a, const N: usize>(
    block: &'a [u8],
    names: [&[u8]; N],
) -> [Option<&'a [u8]>; N] {
    let mut found = [None; N];
    let mut missing = N;
    let mut input = block;
    while missing > 0 && !input.is_empty() {
        let Ok((rest, (name, value))) = header(input) else {
            break;
        };
        for (slot, wanted) in found.iter_mut().zip(names) {
            if slot.is_none() && name.eq_ignore_ascii_case(wanted) {
                *slot = Some(value);
                missing -= 1;
            }
        }
        input = rest;
    }
    found
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

    /// The straightforward parser the fast one replaced: split off a line, then split it at its
    /// first colon. Kept as the specification the fast one must match on any input.
    fn reference_header_block<'a>(
        block: &'a [u8],
        out: &mut Vec<HeaderSpan>,
    ) -> Result<usize, &'a [u8]> {
        use nom::bytes::complete::{take_till1, take_until};
        use nom::combinator::rest;

        fn line(input: &[u8]) -> Res<'_, &[u8]> {
            let found: Res<'_, &[u8]> = terminated(take_until("\n"), tag("\n")).parse(input);
            let (input, line) = match found {
                Ok(ok) => ok,
                Err(_) => rest.parse(input)?,
            };
            Ok((input, line.strip_suffix(b"\r").unwrap_or(line)))
        }
        fn header(line: &[u8]) -> Res<'_, (&[u8], &[u8])> {
            let (value, name) = terminated(take_till1(|c| c == b':'), tag(":")).parse(line)?;
            let (value, _) = space0(value)?;
            Ok((&[], (name, value)))
        }

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
                name: Span::of(block, name),
                value: Span::of(block, value),
            });
            input = rest;
        }
        Ok(block.len())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn header_block_matches_the_reference_parser(
            block in proptest::collection::vec(
                proptest::sample::select(b"ab:: \t\r\r\n\n\n".to_vec()),
                0..40,
            )
        ) {
            let mut got = Vec::new();
            let mut want = Vec::new();
            let got_result = header_block(&block, &block, &mut got);
            let want_result = reference_header_block(&block, &mut want);
            proptest::prop_assert_eq!(got_result, want_result);
            if want_result.is_ok() {
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn blank_line_forms_end_a_block_and_a_lone_cr_line_is_malformed() {
        let mut out = Vec::new();
        assert_eq!(
            header_block(b"A: 1\r\n\r\nbody", b"A: 1\r\n\r\nbody", &mut out),
            Ok(8)
        );
        assert_eq!(header_block(b"A: 1\n\r", b"A: 1\n\r", &mut out), Ok(6));
        assert_eq!(
            header_block(b"A: 1\n\r\r\n", b"A: 1\n\r\r\n", &mut out),
            Err(&b"\r"[..])
        );
        // Without a blank line the block is all of it; blanks after a value are the value's.
        let block = b"A: 1\nB:  x \r\n";
        out.clear();
        assert_eq!(header_block(block, block, &mut out), Ok(block.len()));
        assert_eq!(out[1].value.get(block), b"x ");
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
