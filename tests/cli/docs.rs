//! The commands in the docs (README.md, docs/*.md), so the docs cannot rot:
//! - every `sh` block is read line by line: a `switchyard` subcommand must exist and accept every
//!   `--flag` written after it (its `--help` lists it), `cargo test --test X` and `cargo bench
//!   --bench X` must name targets that exist, and a repository path (`scripts/…`, `fixtures/…`,
//!   `tests/…`…) must exist;
//! - the README's quick starts run as written: the ESL decoder over the recorded bytes, and the
//!   lab tour (create a room, a call, join, unmute, mute, play, leave, hang up, delete) against a
//!   `switchyard lab` started here, every answer a success.
//!
//! What needs what CI has not (docker compose, a production node, a nightly toolchain, root) is
//! checked by the first rule only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, with their text.
fn docs() -> Vec<(String, String)> {
    let mut files = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    files.extend(more);
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(root()).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The `sh` code blocks of a Markdown text: (line number of the block, its lines).
fn sh_blocks(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some((i + 1, Vec::new())),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((_, lines)), _) => lines.push(line.to_owned()),
            _ => {}
        }
    }
    blocks
}

/// A block's commands: continuation lines joined, comments and blank lines left out.
fn commands(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in lines {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let code = strip_comment(&full);
        if !code.trim().is_empty() {
            out.push(code.trim().to_owned());
        }
    }
    out
}

/// The line without its `# comment` (a `#` that starts a word outside quotes).
fn strip_comment(line: &str) -> String {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return line[..i].to_owned(),
            _ => {}
        }
        prev = c;
    }
    line.to_owned()
}

/// The words of a command, quotes removed (enough for what the docs write).
fn words(command: &str) -> Vec<String> {
    let (mut out, mut word, mut quote) = (Vec::new(), String::new(), None);
    for c in command.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// `switchyard <words> --help`: its text, when that subcommand exists.
fn help(path: &[&str]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What is wrong with the `switchyard` invocation that starts at `args` (the words after the
/// binary), if anything.
fn check_switchyard(args: &[String]) -> Option<String> {
    let mut path: Vec<&str> = Vec::new();
    let mut text = help(&[])?;
    for w in args {
        if w.starts_with('-') || w.contains(['/', '$', '.', '=', ':']) {
            break;
        }
        let mut longer = path.clone();
        longer.push(w);
        match help(&longer) {
            Some(t) => {
                path = longer;
                text = t;
            }
            None => break,
        }
    }
    if path.is_empty() {
        return Some(format!("no such switchyard subcommand: {args:?}"));
    }
    let rest = args.iter().skip(path.len());
    for flag in rest.take_while(|w| !["|", ">", "&&", ";"].contains(&w.as_str())) {
        let Some(name) = flag.strip_prefix("--") else {
            continue;
        };
        let name = name.split('=').next().unwrap_or_default();
        if !text.contains(&format!("--{name}")) {
            return Some(format!("`switchyard {}` has no --{name}", path.join(" ")));
        }
    }
    None
}

/// The test targets and the benches, read once.
static TESTS: LazyLock<Vec<String>> = LazyLock::new(|| targets("tests"));
static BENCHES: LazyLock<Vec<String>> = LazyLock::new(|| targets("benches"));

/// Test targets (tests/*.rs and tests/*/main.rs) and benches (benches/*.rs).
fn targets(dir: &str) -> Vec<String> {
    std::fs::read_dir(root().join(dir))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                p.file_stem().map(|s| s.to_string_lossy().into_owned())
            } else if p.join("main.rs").is_file() {
                p.file_name().map(|s| s.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .collect()
}

/// What is wrong with one command of the docs, if anything.
fn check(command: &str) -> Vec<String> {
    let w = words(command);
    let mut wrong = Vec::new();
    for (i, word) in w.iter().enumerate() {
        let next = w.get(i + 1).cloned().unwrap_or_default();
        if word.ends_with("target/release/switchyard") || word == "switchyard" {
            wrong.extend(check_switchyard(&w[i + 1..]));
        }
        if word == "cargo"
            && next == "run"
            && let Some(dash) = w.iter().position(|x| x == "--")
        {
            wrong.extend(check_switchyard(&w[dash + 1..]));
        }
        if word == "--test" && !TESTS.contains(&next) {
            wrong.push(format!("no test target {next}"));
        }
        if word == "--bench" && !BENCHES.contains(&next) {
            wrong.push(format!("no bench {next}"));
        }
        let prefixes = [
            "scripts/",
            "fixtures/",
            "tests/",
            "benches/",
            "deploy/",
            "freeswitch-conf/",
            "docs/",
        ];
        let path = word.trim_end_matches([',', ';', ')']);
        if prefixes.iter().any(|p| path.starts_with(p))
            && !path.contains(['*', '$', '<'])
            && !root().join(path).exists()
        {
            wrong.push(format!("no such path {path}"));
        }
    }
    wrong
}

#[test]
fn every_command_in_the_docs_names_what_exists() {
    let mut wrong = Vec::new();
    let mut seen = 0;
    for (file, text) in docs() {
        for (line, block) in sh_blocks(&text) {
            for command in commands(&block) {
                seen += 1;
                for why in check(&command) {
                    wrong.push(format!("{file}:{line}: {why}\n    {command}"));
                }
            }
        }
    }
    assert!(seen > 50, "only {seen} commands found in the docs");
    assert!(
        wrong.is_empty(),
        "the docs name what does not exist:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checks_catch_what_has_rotted() {
    assert!(!check("./target/release/switchyard lab --no-such-flag").is_empty());
    assert!(!check("./target/release/switchyard no-such-command").is_empty());
    assert!(!check("cargo test --test fleet_nodes").is_empty());
    assert!(!check("cargo bench --bench nothing_here").is_empty());
    assert!(!check("cat fixtures/esl/nothing.raw").is_empty());
    assert!(check("cargo run --release -- lab --nodes 2   # two nodes").is_empty());
    assert_eq!(
        check("./target/release/switchyard esl decode fixtures/esl/01_event_plain_ALL.recv.raw"),
        Vec::<String>::new()
    );
    assert_eq!(
        commands(&["a \\".into(), "  b # c".into(), "# d".into()]),
        ["a b"]
    );
}

/// The README's `sh` block that contains `marker`, with `./target/release/switchyard` made the
/// binary under test.
fn readme_block(marker: &str) -> String {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, lines) = sh_blocks(&text)
        .into_iter()
        .find(|(_, b)| b.iter().any(|l| l.contains(marker)))
        .unwrap_or_else(|| panic!("README.md has no sh block with {marker}"));
    lines.join("\n").replace(
        "./target/release/switchyard",
        env!("CARGO_BIN_EXE_switchyard"),
    )
}

/// Runs `script` with bash in the repository (`set -e`, as a reader's shell would stop at a
/// failing command; not `pipefail`: `… | head` closes the pipe early by design); its stdout, or a
/// panic with what went wrong.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}\nfailed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_readme_esl_quick_start_runs_as_written() {
    let block = readme_block("esl decode");
    // `esl tap` needs a node on 8021 (the lab tour runs the rest against one); `cargo build`
    // is what built the binary under test.
    let script: Vec<&str> = block
        .lines()
        .filter(|l| !l.contains("esl tap") && !l.starts_with("cargo build"))
        .collect();
    let out = bash(&script.join("\n"));
    let frames: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(frames.len() > 10, "{out}");
    assert!(
        frames.iter().all(|f| f["content_type"].is_string()),
        "{out}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f["event"]["headers"]["Event-Name"].is_string()),
        "no event decoded: {out}"
    );
}

struct Lab(Child);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_lab_tour_runs_as_written() {
    let needs = Command::new("jq").arg("--version").output();
    assert!(
        needs.is_ok_and(|o| o.status.success()),
        "the lab tour pipes answers through jq: install it (apt-get install jq; scripts/test-deps.sh does)"
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", crate::common::ports::tcp())
        .parse()
        .unwrap();
    let mut lab = Lab(Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["lab", "--listen", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    crate::log_format::wait_listening(addr, &mut lab.0);
    let tour = readme_block("API=http://127.0.0.1:8080")
        .replace("http://127.0.0.1:8080", &format!("http://{addr}"));
    // curl prints each answer's body as it is (no newline between them): a stream of JSON.
    let out = bash(&format!("{tour}\necho\necho \"ROOM=$ROOM CALL=$CALL\""));
    let (bodies, vars) = out.rsplit_once("ROOM=").unwrap_or_default();
    let vars = format!("ROOM={vars}");
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(bodies)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the answers are not JSON ({e}): {out}"));
    assert!(
        vars.contains("ROOM=lab01-room-") && !vars.trim_end().ends_with("CALL="),
        "the tour's room or call was not made: {vars}\n{out}"
    );
    assert!(answers.len() >= 8, "{out}");
    let refused: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|a| a["success"] == serde_json::Value::Bool(false))
        .collect();
    assert!(
        refused.is_empty(),
        "the tour was refused: {refused:?}\n{out}"
    );
    assert!(
        answers.iter().any(|a| a["status"] == "joining"),
        "no join answered: {out}"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_link_in_the_docs_leads_somewhere_in_the_repository() {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut wrong = Vec::new();
    for (file, text) in docs() {
        if text.contains("../shared") {
            wrong.push(format!("{file} names ../shared, outside the repository"));
        }
        let dir = root().join(&file).parent().unwrap().to_path_buf();
        for m in link.captures_iter(&text) {
            let target = &m[1];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if path.is_empty() {
                root().join(&file)
            } else {
                dir.join(path)
            };
            let Ok(resolved) = resolved.canonicalize() else {
                wrong.push(format!("{file}: {target}: no such file"));
                continue;
            };
            if !resolved.starts_with(root()) {
                wrong.push(format!("{file}: {target}: outside the repository"));
                continue;
            }
            if fragment.is_empty() {
                continue;
            }
            let headings = std::fs::read_to_string(&resolved).unwrap_or_default();
            let found = headings
                .lines()
                .filter_map(|l| {
                    l.trim_start_matches('#')
                        .strip_prefix(' ')
                        .filter(|_| l.starts_with('#'))
                })
                .any(|h| anchor(h) == fragment);
            if !found {
                wrong.push(format!("{file}: {target}: no such heading"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "broken links in the docs:\n{}",
        wrong.join("\n")
    );
}
