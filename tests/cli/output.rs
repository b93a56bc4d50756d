//! What the commands write on standard output, to a reader that may go away early.

use std::io::Read;
use std::process::{Command, Stdio};

/// `switchyard openapi | head -1`: the document is far larger than a pipe holds, so the
/// command is still writing when its reader goes; it stops quietly (exit 0, nothing on
/// standard error) instead of panicking on the broken pipe.
#[test]
fn a_command_whose_reader_goes_away_stops_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("switchyard runs");
    let mut stdout = child.stdout.take().expect("its standard output");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("the document begins");
    assert_eq!(first[0], b'{');
    drop(stdout);
    let done = child.wait_with_output().expect("it ends");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{:?}: {err}", done.status);
    assert!(err.is_empty(), "{err}");
}
