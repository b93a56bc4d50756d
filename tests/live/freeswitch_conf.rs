//! `freeswitch-conf/`, checked without FreeSWITCH: every file parses; the files assemble the way
//! FreeSWITCH's preprocessor assembles them (includes, `set`/`env-set`/`exec-set` variables, one
//! tag per line) into one document that parses; every module comes from the issue's list and has
//! the configuration it reads at load; the conference profile and the dialplan context are the
//! ones the controller (`switchyard.example.toml`, the compose configuration, the command
//! builders, the simulator) uses; the dialplan answers and parks a call to a DID with
//! `switchyard_did` set; the Event Socket has no default password and admits only listed
//! networks; the compose file feeds the variables the configuration reads.
//!
//! FreeSWITCH facts used here come from its sources (`switch_xml.c` `preprocess`, each module's
//! `switch_xml_open_cfg` at load, `mod_conference`'s profile parameters and suppress-event names).
//!
//! The last test starts a real FreeSWITCH with this configuration (`tests/common/freeswitch.rs`)
//! and holds it to a clean start: no `[ERR]` or `[CRIT]` line, every listed module loaded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use roxmltree::{Document, Node, NodeType};
use switchyard::conference::RoomId;
use switchyard::node::commands;
use switchyard::server::config::Config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn conf_dir() -> PathBuf {
    repo().join("freeswitch-conf")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The preprocessor (switch_xml.c `preprocess`), as far as this configuration uses it.

/// What the core sets before it reads the configuration (example values).
const CORE_VARS: &[(&str, &str)] = &[
    ("local_ip_v4", "192.0.2.10"),
    ("base_dir", "/usr"),
    ("conf_dir", "/etc/freeswitch"),
    ("log_dir", "/var/log/freeswitch"),
    ("cache_dir", "/var/cache/freeswitch"),
    ("sounds_dir", "/usr/share/freeswitch/sounds"),
    ("recordings_dir", "/var/lib/freeswitch/recordings"),
    ("certs_dir", "/etc/freeswitch/tls"),
];

/// The `exec-set` commands this configuration runs: a random value, and an environment variable
/// that is set and not empty (`exec-set` leaves the variable alone when a command prints nothing).
const RANDOM_COMMAND: &str = "cat /proc/sys/kernel/random/uuid";
const RANDOM_VALUE: &str = "[random uuid]";
static PRINTENV: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^printenv ([A-Z_][A-Z0-9_]*) \| grep \.$").unwrap());

#[derive(Debug, Default)]
struct Assembled {
    text: String,
    vars: HashMap<String, String>,
    /// Every file read, relative to the configuration directory.
    files: BTreeSet<PathBuf>,
    /// Environment variable → the configuration variable it sets (`env-set`, or `exec-set` of
    /// `printenv`).
    from_env: BTreeMap<String, String>,
    /// Every value given to each variable by `set`, in order.
    set_values: BTreeMap<String, Vec<String>>,
    /// Variables that `exec-set` gives a random value.
    random: BTreeSet<String>,
    /// What FreeSWITCH would get wrong silently: an undefined variable (expands to nothing), a
    /// preprocessor tag that is not alone on its line (dropped), an include that matches nothing.
    problems: Vec<String>,
}

static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^<X-PRE-PROCESS cmd="([a-z-]+)" data="([^"]*)"/>$"#).unwrap());

static VAR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\$\$\{([^}]*)\}").unwrap());

fn assemble(dir: &Path, env: &HashMap<&str, &str>) -> Assembled {
    let mut out = Assembled {
        vars: CORE_VARS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Assembled::default()
    };
    preprocess(dir, &dir.join("freeswitch.xml"), env, &mut out, 0);
    out
}

fn expand(
    line: &str,
    vars: &HashMap<String, String>,
    problems: &mut Vec<String>,
    at: &str,
) -> String {
    VAR.replace_all(line, |c: &regex::Captures| match vars.get(&c[1]) {
        Some(v) => v.clone(),
        None => {
            problems.push(format!(
                "{at}: variable {} is not defined (it expands to nothing)",
                &c[1]
            ));
            String::new()
        }
    })
    .into_owned()
}

fn preprocess(
    dir: &Path,
    file: &Path,
    env: &HashMap<&str, &str>,
    out: &mut Assembled,
    depth: usize,
) {
    assert!(depth < 20, "include loop at {}", file.display());
    out.files
        .insert(file.strip_prefix(dir).unwrap_or(file).to_path_buf());
    let here = file.parent().unwrap().to_path_buf();
    for (n, raw) in read(file).lines().enumerate() {
        let at = format!(
            "{}:{}",
            file.strip_prefix(dir).unwrap_or(file).display(),
            n + 1
        );
        let line = expand(raw, &out.vars, &mut out.problems, &at);
        // FreeSWITCH skips these lines whole.
        if line.contains("<include>") || line.contains("</include>") || line.contains("<?") {
            continue;
        }
        if line.to_ascii_lowercase().contains("x-pre-process") {
            let Some(c) = TAG.captures(line.trim()) else {
                out.problems.push(format!(
                    "{at}: a preprocessor tag must be alone on its line as \
                     <X-PRE-PROCESS cmd=\"…\" data=\"…\"/>, and nothing else may name it \
                     (FreeSWITCH drops such lines): {raw}"
                ));
                continue;
            };
            let (cmd, data) = (c[1].to_owned(), c[2].to_owned());
            let (key, value) = data
                .split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .unwrap_or_default();
            match cmd.as_str() {
                "set" => {
                    out.set_values
                        .entry(key.clone())
                        .or_default()
                        .push(value.clone());
                    out.vars.insert(key, value);
                }
                "env-set" => match value.strip_prefix('$') {
                    Some(name) => {
                        out.from_env.insert(name.to_owned(), key.clone());
                        if let Some(v) = env.get(name) {
                            out.vars.insert(key, (*v).to_owned());
                        }
                    }
                    None => out
                        .problems
                        .push(format!("{at}: env-set wants name=$ENVIRONMENT_VARIABLE")),
                },
                "exec-set" => {
                    let printed = if value == RANDOM_COMMAND {
                        out.random.insert(key.clone());
                        Some(RANDOM_VALUE.to_owned())
                    } else if let Some(c) = PRINTENV.captures(&value) {
                        out.from_env.insert(c[1].to_owned(), key.clone());
                        env.get(&c[1])
                            .filter(|v| !v.is_empty())
                            .map(|v| v.to_string())
                    } else {
                        out.problems.push(format!(
                            "{at}: exec-set of a command this check does not know: {value}"
                        ));
                        None
                    };
                    if let Some(v) = printed {
                        out.vars.insert(key, v);
                    }
                }
                "include" => {
                    let matched = glob(&here, &data);
                    if matched.is_empty() {
                        out.problems
                            .push(format!("{at}: include {data} matches no file"));
                    }
                    for f in matched {
                        preprocess(dir, &f, env, out, depth + 1);
                    }
                }
                other => out
                    .problems
                    .push(format!("{at}: unexpected command {other}")),
            }
            continue;
        }
        if line.contains("<!--#") {
            out.problems.push(format!(
                "{at}: <!--# is a preprocessor command; not used here"
            ));
        }
        out.text.push_str(&line);
        out.text.push('\n');
    }
}

/// `dir/*.xml`, `*.xml` or a file name, relative to the including file (one `*` at most).
fn glob(here: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = here.join(pattern);
    let name = full.file_name().unwrap().to_string_lossy().into_owned();
    let parent = full.parent().unwrap();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return if full.is_file() {
            vec![full]
        } else {
            Vec::new()
        };
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            p.is_file() && n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    files.sort();
    files
}

fn lab() -> Assembled {
    let asm = assemble(&conf_dir(), &HashMap::new());
    assert!(asm.problems.is_empty(), "{:#?}", asm.problems);
    asm
}

// ---------------------------------------------------------------------------------------------
// Reading the assembled document.

fn element<'a>(node: Node<'a, 'a>, tag: &str) -> Option<Node<'a, 'a>> {
    node.children().find(|c| c.has_tag_name(tag))
}

fn elements<'a>(node: Node<'a, 'a>, tag: &'a str) -> impl Iterator<Item = Node<'a, 'a>> + 'a {
    node.children().filter(move |c| c.has_tag_name(tag))
}

fn section<'a>(doc: &'a Document<'a>, name: &str) -> Node<'a, 'a> {
    elements(doc.root_element(), "section")
        .find(|s| s.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no <section name=\"{name}\">"))
}

fn configuration<'a>(doc: &'a Document<'a>, name: &str) -> Node<'a, 'a> {
    elements(section(doc, "configuration"), "configuration")
        .find(|c| c.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no <configuration name=\"{name}\">"))
}

/// The `<param name value>` children of a node.
fn params(node: Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in elements(node, "param") {
        let name = p.attribute("name").expect("param without name").to_owned();
        let value = p
            .attribute("value")
            .expect("param without value")
            .to_owned();
        assert!(
            out.insert(name.clone(), value).is_none(),
            "param {name} given twice"
        );
    }
    out
}

fn settings(config: Node) -> BTreeMap<String, String> {
    params(element(config, "settings").expect("no <settings>"))
}

fn loaded_modules(doc: &Document) -> Vec<String> {
    let modules = element(configuration(doc, "modules.conf"), "modules").expect("no <modules>");
    elements(modules, "load")
        .map(|l| {
            l.attribute("module")
                .expect("load without module")
                .to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The controller's side.

const EXAMPLE_TOML: &str = "switchyard.example.toml";
const COMPOSE_TOML: &str = "deploy/switchyard.compose.toml";

/// The configurations the controller is run with, parsed by its own loader.
fn controller_configs() -> Vec<(&'static str, Config)> {
    let secrets = |k: &str| match k {
        "SWITCHYARD_NODE_FS1_PASSWORD" => Some("lab-esl-secret".to_owned()),
        "SWITCHYARD_APP_APP1_WEBHOOK_SECRET" => {
            Some("whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=".to_owned())
        }
        _ => None,
    };
    [EXAMPLE_TOML, COMPOSE_TOML]
        .into_iter()
        .map(|f| {
            let text = read(&repo().join(f));
            let config = Config::parse(&text, secrets).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f, config)
        })
        .collect()
}

/// The `environment:` of one service of docker-compose.yml, with `${X:-default}` taken as its
/// default and `${X:?…}` (required) as a stand-in secret.
fn compose_environment(service: &str) -> BTreeMap<String, String> {
    let text = read(&repo().join("docker-compose.yml"));
    let start = text
        .find(&format!("\n  {service}:\n"))
        .unwrap_or_else(|| panic!("no service {service} in docker-compose.yml"));
    let body = &text[start + 1..];
    let end = Regex::new(r"\n  [a-z]")
        .unwrap()
        .find(&body[1..])
        .map_or(body.len(), |m| m.start() + 1);
    let entry = Regex::new(r"(?m)^      ([A-Z][A-Z0-9_]*): *(.+?) *$").unwrap();
    let reference = Regex::new(r"^\$\{([A-Z0-9_]+)(?::-(.*)|:\?.*)\}$").unwrap();
    entry
        .captures_iter(&body[..end])
        .map(|c| {
            let raw = c[2].trim_matches('"');
            let value = match reference.captures(raw) {
                Some(r) => r
                    .get(2)
                    .map_or("required-secret-from-env", |d| d.as_str())
                    .to_owned(),
                None => raw.to_owned(),
            };
            (c[1].to_owned(), value)
        })
        .collect()
}

fn compose_fs_env() -> BTreeMap<String, String> {
    let env = compose_environment("freeswitch");
    assert!(
        !env.is_empty(),
        "the freeswitch service sets no environment"
    );
    env
}

fn assembled_with(env: &BTreeMap<String, String>) -> Assembled {
    let env: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let asm = assemble(&conf_dir(), &env);
    assert!(asm.problems.is_empty(), "{:#?}", asm.problems);
    asm
}

// ---------------------------------------------------------------------------------------------

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_file_parses_alone_and_assembled_as_freeswitch_reads_it() {
    let dir = conf_dir();
    let files = all_files(&dir);
    let all: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(&dir).unwrap().to_path_buf())
        .collect();
    for expected in [
        "freeswitch.xml",
        "vars.xml",
        "autoload_configs/modules.conf.xml",
        "autoload_configs/switch.conf.xml",
        "autoload_configs/acl.conf.xml",
        "autoload_configs/event_socket.conf.xml",
        "autoload_configs/conference.conf.xml",
        "autoload_configs/sofia.conf.xml",
        "dialplan/public.xml",
    ] {
        assert!(all.contains(Path::new(expected)), "missing {expected}");
    }
    // Sounds the configuration plays (hold music): 16-bit PCM WAV, 8 kHz mono, never read as XML.
    let (sounds, files): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.strip_prefix(&dir).unwrap().starts_with("sounds"));
    assert!(!sounds.is_empty(), "no hold music under sounds/");
    for f in &sounds {
        let wav = std::fs::read(f).unwrap();
        assert_eq!(f.extension().and_then(|e| e.to_str()), Some("wav"));
        assert!(wav.len() > 44 && &wav[..4] == b"RIFF" && &wav[8..16] == b"WAVEfmt ");
        let format = |at: usize| u16::from_le_bytes([wav[at], wav[at + 1]]);
        let rate = u32::from_le_bytes(wav[24..28].try_into().unwrap());
        assert_eq!(
            (format(20), format(22), rate, format(34)),
            (1, 1, 8000, 16),
            "{}: PCM, mono, 8000 Hz, 16 bits",
            f.display()
        );
    }
    let relative: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(&dir).unwrap().to_path_buf())
        .collect();
    for f in &files {
        assert_eq!(
            f.extension().and_then(|e| e.to_str()),
            Some("xml"),
            "{}",
            f.display()
        );
        let text = read(f);
        if let Err(e) = Document::parse(&text) {
            panic!("{} does not parse: {e}", f.display());
        }
    }

    let asm = lab();
    // Every file is reached by an include: none sits there unread.
    assert_eq!(asm.files, relative);
    let doc = Document::parse(&asm.text).unwrap_or_else(|e| panic!("assembled: {e}\n{}", asm.text));
    let root = doc.root_element();
    assert!(root.has_tag_name("document"));
    assert_eq!(root.attribute("type"), Some("freeswitch/xml"));
    let sections: BTreeSet<&str> = elements(root, "section")
        .filter_map(|s| s.attribute("name"))
        .collect();
    assert_eq!(sections, BTreeSet::from(["configuration", "dialplan"]));
    // Each configuration once.
    let mut names = BTreeSet::new();
    for c in elements(section(&doc, "configuration"), "configuration") {
        let name = c.attribute("name").expect("configuration without name");
        assert!(names.insert(name), "configuration {name} twice");
    }
}

#[test]
fn the_preprocessor_check_catches_what_freeswitch_gets_wrong_silently() {
    let dir = std::env::temp_dir().join(format!("switchyard-fsconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("freeswitch.xml"),
        "<?xml version=\"1.0\"?>\n<document type=\"freeswitch/xml\">\n\
         <!-- mentions <X-PRE-PROCESS cmd=\"include\" data=\"x.xml\"/> in a comment -->\n\
         <X-PRE-PROCESS cmd=\"include\" data=\"nothing/*.xml\"/>\n\
         <X-PRE-PROCESS cmd=\"set\" data=\"a=1\"/>\n\
         <x a=\"$${a}\" b=\"$${undefined}\"/>\n</document>\n",
    )
    .unwrap();
    let asm = assemble(&dir, &HashMap::new());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(asm.problems.len(), 3, "{:#?}", asm.problems);
    assert!(asm.problems[0].contains("alone on its line"));
    assert!(asm.problems[1].contains("matches no file"));
    assert!(asm.problems[2].contains("is not defined"));
    assert!(asm.text.contains("<x a=\"1\" b=\"\"/>"), "{}", asm.text);
}

/// The issue's list: modules.conf may load these and no others.
const ALLOWED_MODULES: &[&str] = &[
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_conference",
    "mod_loopback",
    "mod_sofia",
    "mod_sndfile",
    "mod_native_file",
    "mod_tone_stream",
    "mod_local_stream",
    "mod_http_cache",
    "mod_flite",
    "mod_say_en",
    "mod_db",
    "mod_hash",
    "mod_expr",
];

/// What the controller cannot do without.
const NEEDED_MODULES: &[(&str, &str)] = &[
    ("mod_event_socket", "the controller's connection"),
    (
        "mod_commands",
        "originate, uuid_transfer, uuid_kill, show channels",
    ),
    (
        "mod_dptools",
        "answer, park, set in the dialplan and in inline transfers",
    ),
    ("mod_dialplan_xml", "the public context"),
    ("mod_conference", "rooms"),
    ("mod_loopback", "the null endpoint of control legs"),
    ("mod_sofia", "callers"),
    ("mod_sndfile", "WAV playback and recordings"),
    ("mod_http_cache", "http(s) URLs to play"),
    ("mod_flite", "text to speech for talk actions"),
];

/// Modules that read a configuration when they load (`switch_xml_open_cfg` in their load path).
/// Others read none (mod_commands, mod_dialplan_xml, mod_native_file, mod_tone_stream, mod_flite,
/// mod_say_en, mod_expr) or only for features not used here (mod_dptools' ivr.conf for IVR
/// menus, mod_conference's conference_layouts.conf for video).
const CONFIG_OF: &[(&str, &str)] = &[
    ("mod_console", "console.conf"),
    ("mod_logfile", "logfile.conf"),
    ("mod_event_socket", "event_socket.conf"),
    ("mod_sofia", "sofia.conf"),
    ("mod_conference", "conference.conf"),
    ("mod_loopback", "loopback.conf"),
    ("mod_sndfile", "sndfile.conf"),
    ("mod_local_stream", "local_stream.conf"),
    ("mod_http_cache", "http_cache.conf"),
    ("mod_db", "db.conf"),
    ("mod_hash", "hash.conf"),
];

/// Read by the core itself.
const CORE_CONFIGS: &[&str] = &[
    "switch.conf",
    "modules.conf",
    "post_load_modules.conf",
    "acl.conf",
];

/// The module that provides an endpoint of a dial string.
fn endpoint_module(dial: &str) -> &'static str {
    match dial.split('/').next().unwrap() {
        "null" | "loopback" => "mod_loopback",
        "sofia" => "mod_sofia",
        other => panic!("unknown endpoint {other}"),
    }
}

#[test]
fn modules_come_from_the_list_and_each_has_the_configuration_it_reads() {
    let asm = lab();
    let doc = Document::parse(&asm.text).unwrap();
    let loaded = loaded_modules(&doc);
    let set: BTreeSet<&str> = loaded.iter().map(String::as_str).collect();
    assert_eq!(
        set.len(),
        loaded.len(),
        "a module is loaded twice: {loaded:?}"
    );
    for m in &loaded {
        assert!(
            ALLOWED_MODULES.contains(&m.as_str()),
            "{m} is not in the issue's list"
        );
    }
    for (m, why) in NEEDED_MODULES {
        assert!(set.contains(m), "{m} is not loaded ({why})");
    }
    for (m, cfg) in CONFIG_OF {
        if set.contains(m) {
            configuration(&doc, cfg);
        }
    }
    // No configuration that nothing reads (a misspelt name is one).
    for c in elements(section(&doc, "configuration"), "configuration") {
        let name = c.attribute("name").unwrap();
        let owner = CONFIG_OF.iter().find(|(_, n)| *n == name).map(|(m, _)| *m);
        assert!(
            CORE_CONFIGS.contains(&name) || owner.is_some_and(|m| set.contains(m)),
            "nothing reads configuration {name}"
        );
    }
    // The endpoint control legs are originated on.
    for (file, config) in controller_configs() {
        for node in config.node_configs() {
            let m = endpoint_module(&node.control_endpoint);
            assert!(
                set.contains(m),
                "{file}: control endpoint {} needs {m}",
                node.control_endpoint
            );
        }
    }
}

/// `suppress-events` names (mod_conference's event table).
const SUPPRESSIBLE: &[&str] = &[
    "del-member",
    "mute-member",
    "hold-member",
    "kick-member",
    "dtmf-member",
    "dtmf",
    "transfer",
    "energy-level",
    "volume-level",
    "gain-level",
    "energy-level-member",
    "volume-in-member",
    "volume-out-member",
    "start-talking",
    "stop-talking",
    "mute-detect",
    "floor-change",
    "play-file",
    "play-file-member",
    "play-file-done",
    "speak-text",
    "speak-text-member",
    "lock",
    "unlock",
    "record",
    "bgdial-result",
];

/// The suppress names of the conference events the controller turns into facts
/// (`conference::facts`): del-member, mute/unmute-member, deaf/undeaf and hold/unhold-member,
/// kick-member, start/stop-talking, play-file, play-file-member(-done), play-file-done,
/// start/pause/resume-recording. (add-member, hup-member, stop-recording, conference-create and
/// -destroy cannot be suppressed.)
const NEEDED_EVENTS: &[&str] = &[
    "del-member",
    "mute-member",
    "hold-member",
    "kick-member",
    "start-talking",
    "stop-talking",
    "play-file-member",
    "play-file",
    "play-file-done",
    "record",
];

fn conference_profile<'a>(doc: &'a Document<'a>, name: &str) -> Option<BTreeMap<String, String>> {
    let profiles =
        element(configuration(doc, "conference.conf"), "profiles").expect("no <profiles>");
    elements(profiles, "profile")
        .find(|p| p.attribute("name") == Some(name))
        .map(params)
}

#[test]
fn the_conference_profile_is_the_one_the_controller_uses() {
    // The example, as the toml crate reads it.
    let example: toml::Table = read(&repo().join(EXAMPLE_TOML)).parse().unwrap();
    let nodes = example["nodes"].as_array().unwrap();
    assert_eq!(
        nodes[0]["profile"].as_str(),
        Some("switchyard"),
        "{EXAMPLE_TOML}"
    );

    let asm = lab();
    let doc = Document::parse(&asm.text).unwrap();
    let room = RoomId::parse("lab01-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
    let channel = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";
    let at_profile = Regex::new(r"@([A-Za-z0-9_-]+)\+flags").unwrap();
    let mut used = BTreeSet::new();
    for (file, config) in controller_configs() {
        for node in config.node_configs() {
            // The profile as it reaches FreeSWITCH, in the commands the controller sends.
            let join = commands::join(channel, &room, &node.profile, false).unwrap();
            let control = commands::originate_control_leg(
                &room,
                channel,
                &node.control_endpoint,
                &node.profile,
                false,
            )
            .unwrap();
            for cmd in [join.as_str(), control.as_str()] {
                let profile = &at_profile.captures(cmd).unwrap_or_else(|| panic!("{cmd}"))[1];
                assert!(
                    conference_profile(&doc, profile).is_some(),
                    "{file}: rooms use conference profile {profile}, which conference.conf does not define"
                );
                used.insert(profile.to_owned());
            }
        }
    }
    assert_eq!(used, BTreeSet::from(["switchyard".to_owned()]));

    let p = conference_profile(&doc, "switchyard").unwrap();
    assert!(
        ["8000", "16000"].contains(&p["rate"].as_str()),
        "rate {}",
        p["rate"]
    );
    assert_eq!(p["interval"], "20");
    assert_eq!(p["tts-engine"], "flite");
    assert_eq!(p["tts-voice"], "slt");
    // The controller owns mute state: no keypad controls.
    assert_eq!(p["caller-controls"], "none");
    // No sounds of the room's own (enter, exit, alone, hold music, muted/unmuted…).
    let sounds: Vec<&String> = p.keys().filter(|k| k.ends_with("-sound")).collect();
    assert!(sounds.is_empty(), "sounds configured: {sounds:?}");
    let suppressed: Vec<&str> = p
        .get("suppress-events")
        .map_or(Vec::new(), |s| s.split(',').collect());
    for s in &suppressed {
        assert!(
            SUPPRESSIBLE.contains(s),
            "{s} is not a suppress-events name"
        );
        assert!(
            !NEEDED_EVENTS.contains(s),
            "{s} is suppressed but the controller needs it"
        );
    }
}

/// The actions the context's extensions run for a dialed number (XML dialplan hunting: the
/// first extension whose condition matches, and the ones after it while `continue="true"`).
fn run_dialplan(extensions: &[Node], number: &str) -> Vec<(String, String)> {
    let mut actions = Vec::new();
    for ext in extensions {
        let conditions: Vec<Node> = elements(*ext, "condition").collect();
        assert_eq!(
            conditions.len(),
            1,
            "one condition per extension is all this check reads"
        );
        let cond = conditions[0];
        assert_eq!(cond.attribute("field"), Some("destination_number"));
        let re = Regex::new(cond.attribute("expression").unwrap()).unwrap();
        let Some(caps) = re.captures(number) else {
            continue;
        };
        for a in elements(cond, "action") {
            let mut data = a.attribute("data").unwrap_or("").to_owned();
            for i in (1..caps.len()).rev() {
                data = data.replace(&format!("${i}"), caps.get(i).map_or("", |m| m.as_str()));
            }
            actions.push((a.attribute("application").unwrap().to_owned(), data));
        }
        if ext.attribute("continue") != Some("true") {
            break;
        }
    }
    actions
}

fn position(actions: &[(String, String)], app: &str, data: &str) -> usize {
    actions
        .iter()
        .position(|(a, d)| a == app && (data.is_empty() || d == data))
        .unwrap_or_else(|| panic!("no {app} {data} in {actions:?}"))
}

#[test]
fn calls_arrive_in_the_context_the_controller_expects_answered_parked_with_switchyard_did() {
    let asm = lab();
    let doc = Document::parse(&asm.text).unwrap();
    let sofia = configuration(&doc, "sofia.conf");
    let profiles: Vec<Node> = elements(element(sofia, "profiles").unwrap(), "profile").collect();
    let names: Vec<&str> = profiles
        .iter()
        .filter_map(|p| p.attribute("name"))
        .collect();
    assert_eq!(
        names,
        ["inbound", "nodes"],
        "the callers' profile and the node-to-node one"
    );
    let sip = settings(profiles[0]);
    assert_eq!(sip["sip-port"], "5060");
    assert_eq!(sip["dialplan"], "XML");

    // The simulator's calls arrive in the context the real ones do.
    let sim = read(&repo().join("src/sim/sofia.rs"));
    let sim_context = &Regex::new(r#"\bcontext: "([^"]+)","#)
        .unwrap()
        .captures(&sim)
        .unwrap()[1];
    assert_eq!(sim_context, "public");
    assert_eq!(sip["context"], sim_context);

    // The profile authenticates nobody, so its ACL is the gate: a list that denies by default.
    assert_eq!(sip["auth-calls"], "false");
    assert_acl_denies_by_default(&doc, &sip["apply-inbound-acl"]);

    let context = elements(section(&doc, "dialplan"), "context")
        .find(|c| c.attribute("name") == Some(sim_context))
        .expect("no public context");
    let extensions: Vec<Node> = elements(context, "extension").collect();
    for number in ["15551230000", "+15551230000", "1000"] {
        let actions = run_dialplan(&extensions, number);
        let set = position(&actions, "set", &format!("switchyard_did={number}"));
        let answer = position(&actions, "answer", "");
        let park = position(&actions, "park", "");
        assert!(set < answer && answer < park, "{number}: {actions:?}");
        assert!(!actions.iter().any(|(a, _)| a == "hangup"), "{actions:?}");
    }
    // Only digits reach the variable: anything else is refused.
    for hostile in [
        "${system(id)}",
        "15551230000;x=1",
        "sip:1555@example.com",
        "",
    ] {
        let actions = run_dialplan(&extensions, hostile);
        assert!(
            !actions
                .iter()
                .any(|(_, d)| d.starts_with("switchyard_did=")),
            "{hostile:?}: {actions:?}"
        );
        position(&actions, "hangup", "");
    }

    // The commented example of naming the owner in the dialplan works once uncommented.
    let example = doc
        .descendants()
        .filter(|n| n.node_type() == NodeType::Comment)
        .filter_map(|n| n.text())
        .find(|t| t.contains("switchyard_app_id="))
        .expect("no commented switchyard_app_id example");
    let start = example.find("<extension").unwrap();
    let end = example.rfind("</extension>").unwrap() + "</extension>".len();
    let example_doc = Document::parse(&example[start..end]).unwrap();
    let mut with_example = vec![example_doc.root_element()];
    with_example.extend(extensions.iter().copied());
    let actions = run_dialplan(&with_example, "15551230000");
    let app = position(&actions, "set", "switchyard_app_id=app1");
    let did = position(&actions, "set", "switchyard_did=15551230000");
    assert!(
        app < did && did < position(&actions, "park", ""),
        "{actions:?}"
    );
}

fn assert_acl_denies_by_default(doc: &Document, name: &str) -> Vec<String> {
    let lists = element(configuration(doc, "acl.conf"), "network-lists").unwrap();
    let list = elements(lists, "list")
        .find(|l| l.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no ACL list {name}"));
    assert_eq!(list.attribute("default"), Some("deny"), "ACL {name}");
    let allowed: Vec<String> = elements(list, "node")
        .filter(|n| n.attribute("type") == Some("allow"))
        .map(|n| {
            n.attribute("cidr")
                .expect("allow node without cidr")
                .to_owned()
        })
        .collect();
    for cidr in allowed.iter().flat_map(|c| c.split(',')) {
        assert!(
            !matches!(cidr.trim(), "0.0.0.0/0" | "::/0" | ""),
            "ACL {name} allows {cidr:?}"
        );
    }
    allowed
}

#[test]
fn the_event_socket_has_no_default_password_and_admits_only_listed_networks() {
    // Nowhere: not as a value, not as a fallback, not in a comment to copy.
    for f in all_files(&conf_dir()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).to_ascii_lowercase();
        assert!(
            !text.contains("cluecon"),
            "{} names FreeSWITCH's default password",
            f.display()
        );
    }

    // The password is a variable: random when the environment gives none, else the given one.
    let raw = read(&conf_dir().join("autoload_configs/event_socket.conf.xml"));
    let raw_doc = Document::parse(&raw).unwrap();
    let raw_password = settings(raw_doc.root_element())["password"].clone();
    let var = Regex::new(r"^\$\$\{([a-z_0-9]+)\}$")
        .unwrap()
        .captures(&raw_password)
        .unwrap_or_else(|| panic!("the password is not a variable: {raw_password}"))[1]
        .to_owned();
    let asm = lab();
    assert!(
        asm.random.contains(&var),
        "{var} has no random fallback (exec-set)"
    );
    assert!(
        !asm.set_values.contains_key(&var),
        "{var} has a fixed value: {:?}",
        asm.set_values[&var]
    );
    let doc = Document::parse(&asm.text).unwrap();
    let es = settings(configuration(&doc, "event_socket.conf"));
    assert_eq!(es["password"], RANDOM_VALUE);
    // An empty variable is no password either (mod_event_socket would fall back to its default).
    let empty = assembled_with(&BTreeMap::from([(
        "FS_ESL_PASSWORD".to_owned(),
        String::new(),
    )]));
    let empty_doc = Document::parse(&empty.text).unwrap();
    assert_eq!(
        settings(configuration(&empty_doc, "event_socket.conf"))["password"],
        RANDOM_VALUE
    );
    // Without an address from the environment, only this machine can connect.
    assert_eq!(es["listen-ip"], "127.0.0.1");
    assert_eq!(
        assert_acl_denies_by_default(&doc, &es["apply-inbound-acl"]),
        ["127.0.0.0/8", "127.0.0.1/32"]
    );

    // The lab: docker-compose.yml gives the password, the address and the controller's network.
    let env = compose_fs_env();
    let asm = assembled_with(&env);
    let doc = Document::parse(&asm.text).unwrap();
    let es = settings(configuration(&doc, "event_socket.conf"));
    assert_eq!(es["password"], env["FS_ESL_PASSWORD"]);
    assert_eq!(es["listen-ip"], "0.0.0.0");
    let allowed = assert_acl_denies_by_default(&doc, &es["apply-inbound-acl"]);
    assert_eq!(
        allowed,
        ["127.0.0.0/8".to_owned(), env["FS_ESL_ALLOWED_CIDR"].clone()]
    );

    // Every variable the compose file sets is one the configuration reads (a misspelt one would
    // silently leave the default).
    for name in env.keys() {
        assert!(asm.from_env.contains_key(name), "vars.xml reads no {name}");
    }
    // FreeSWITCH and Switchyard get the password from the same place.
    let text = read(&repo().join("docker-compose.yml"));
    let source = |var: &str| {
        Regex::new(&format!(r"(?m)^ +{var}: *(\$\{{[A-Z_]+)"))
            .unwrap()
            .captures(&text)
            .unwrap_or_else(|| panic!("docker-compose.yml sets no {var}"))[1]
            .to_owned()
    };
    assert_eq!(
        source("FS_ESL_PASSWORD"),
        source("SWITCHYARD_NODE_FS1_PASSWORD")
    );
}

#[test]
fn heartbeats_rtp_ports_and_http_playback_fit_the_controller_and_the_compose_file() {
    let env = compose_fs_env();
    let asm = assembled_with(&env);
    let doc = Document::parse(&asm.text).unwrap();
    let core = settings(configuration(&doc, "switch.conf"));

    // The node watchdog gives up after `silence_timeout`; heartbeats must come well within it.
    let heartbeat: u64 = core["event-heartbeat-interval"].parse().unwrap();
    for (file, config) in controller_configs() {
        for node in config.node_configs() {
            assert!(
                heartbeat * 2 < node.silence_timeout.as_secs(),
                "{file}: heartbeat every {heartbeat} s, watchdog at {:?}",
                node.silence_timeout
            );
        }
    }

    // The RTP range FreeSWITCH uses is the one the compose file publishes.
    let start: u32 = core["rtp-start-port"].parse().unwrap();
    let end: u32 = core["rtp-end-port"].parse().unwrap();
    assert!(start < end);
    let compose = read(&repo().join("docker-compose.yml"));
    let published = Regex::new(r#""(?:[0-9.]+:)?(\d+)-(\d+):(\d+)-(\d+)/udp""#)
        .unwrap()
        .captures(&compose)
        .expect("docker-compose.yml publishes no UDP range");
    let ports: Vec<u32> = (1..=4).map(|i| published[i].parse().unwrap()).collect();
    assert_eq!(ports, [start, end, start, end]);

    // http(s) URLs play as files.
    let cache = settings(configuration(&doc, "http_cache.conf"));
    assert_eq!(cache["enable-file-formats"], "true");
}

#[test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
fn a_real_freeswitch_starts_clean_with_this_configuration() {
    let node = common::freeswitch::FreeSwitch::start();
    let errors = node.errors();
    assert!(
        errors.is_empty(),
        "FreeSWITCH logged errors at start-up with freeswitch-conf/:\n{}",
        errors.join("\n")
    );
    let doc_text = lab().text;
    let doc = Document::parse(&doc_text).unwrap();
    let modules = loaded_modules(&doc);
    assert!(modules.len() >= 19, "{modules:?}");
    for module in &modules {
        let exists = node.api(&format!("module_exists {module}"));
        assert_eq!(
            exists.as_deref().map(str::trim),
            Some("true"),
            "{module} is listed in modules.conf.xml but not loaded"
        );
    }
    // The hold music stream plays our WAV.
    let moh = node.api("local_stream show moh").unwrap_or_default();
    assert!(
        moh.contains("ready:    true") && moh.contains("sounds/moh"),
        "local_stream://moh: {moh}"
    );
    // SIP listens where the tests' callers reach it.
    let sofia = node.api("sofia status").unwrap_or_default();
    assert!(
        sofia.contains(&format!("127.0.0.1:{}", node.sip_port)) && sofia.contains("RUNNING"),
        "{sofia}"
    );
}

/// The node-to-node link (issue 18; `fixtures/esl/10_cross_node.md`): a profile of its own that
/// only the other nodes may call, with an RTP timer, whose context puts a tagged leg for a room
/// id into that room (muted, join-only) and hangs it up when it leaves, and refuses the rest.
#[test]
fn other_nodes_reach_rooms_through_a_profile_of_their_own() {
    let asm = lab();
    let doc = Document::parse(&asm.text).unwrap();
    let sofia = configuration(&doc, "sofia.conf");
    let nodes = elements(element(sofia, "profiles").unwrap(), "profile")
        .find(|p| p.attribute("name") == Some("nodes"))
        .expect("no nodes profile");
    let set = settings(nodes);
    assert_eq!(set["sip-port"], "5070");
    assert_eq!(set["context"], "nodes");
    assert_eq!(set["auth-calls"], "false");
    assert_eq!(
        set["rtp-timer-name"], "soft",
        "a dead peer's BYE waits 5 s without it"
    );
    assert_eq!(
        assert_acl_denies_by_default(&doc, &set["apply-inbound-acl"]),
        ["127.0.0.1/32"]
    );
    let context = elements(section(&doc, "dialplan"), "context")
        .find(|c| c.attribute("name") == Some("nodes"))
        .expect("no nodes context");
    let session = "nodeB-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e";
    let room = "nodeA-room-550e8400-e29b-41d4-a716-446655440000";
    let leg = |tag: &str, dest: &str| -> Vec<(String, String)> {
        for ext in elements(context, "extension") {
            let conditions: Vec<Node> = elements(ext, "condition").collect();
            let mut caps = None;
            let all = conditions.iter().all(|c| {
                let value = match c.attribute("field") {
                    Some("destination_number") => dest,
                    Some("${sip_h_X-Switchyard-Session}") => tag,
                    other => panic!("an unexpected condition field {other:?}"),
                };
                let re = Regex::new(c.attribute("expression").unwrap()).unwrap();
                caps = re
                    .captures(value)
                    .map(|c| c.get(1).map_or(String::new(), |m| m.as_str().to_owned()));
                caps.is_some()
            });
            if all {
                let last = conditions.last().unwrap();
                let caps = caps.unwrap_or_default();
                return elements(*last, "action")
                    .map(|a| {
                        let data = a.attribute("data").unwrap_or("").replace("$1", &caps);
                        (a.attribute("application").unwrap().to_owned(), data)
                    })
                    .collect();
            }
        }
        Vec::new()
    };
    let actions = leg(session, room);
    let conf = position(
        &actions,
        "conference",
        &format!("{room}@switchyard+flags{{mute|join-only}}"),
    );
    assert!(
        conf < position(&actions, "hangup", "NORMAL_CLEARING"),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|(a, _)| a == "answer"), "{actions:?}");
    // No tag, a tag that is no session id, a destination that is no room id: refused.
    for (tag, dest) in [
        ("", room),
        ("x; rm -rf", room),
        (session, "15551230000"),
        (session, &format!("{room}@evil")),
    ] {
        let actions = leg(tag, dest);
        assert!(
            !actions.iter().any(|(a, _)| a == "conference"),
            "{tag} {dest}: {actions:?}"
        );
        position(&actions, "hangup", "");
    }
}
