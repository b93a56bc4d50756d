//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`):
//! the test starts its own `chromedriver` on a free port, in its own process group, and stops
//! it (and the browser it started) by that group's id. `build.rs` turns the `browser` cfg on
//! when both binaries are there, or when `SWITCHYARD_REQUIRE_BROWSER=1` (then a missing one
//! fails the test with how to install it).

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const HOW_TO_INSTALL: &str = "install Chromium and its WebDriver with `apt-get install chromium \
    chromium-driver` (`scripts/test-deps.sh` does it), or set SWITCHYARD_CHROMIUM and \
    SWITCHYARD_CHROMEDRIVER";

/// How long a page gets to show what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(15);

fn path(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: std::path::PathBuf,
    /// This browser's turn: shared with the other tests' browsers, or alone.
    _turn: Turn,
}

/// The browsers of a test binary run side by side, but one that measures the page's long
/// tasks runs alone: several Chromiums on two cores put a 61 ms task into a page that has none
/// when it runs by itself (the thousand-room test, once in CI).
static BROWSERS: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Default::default);

enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl Browser {
    pub async fn start() -> Browser {
        let turn = Turn::Shared(BROWSERS.clone().read_owned().await);
        Browser::start_in(turn).await
    }

    /// A browser with no other browser of this binary running: for what measures time.
    #[allow(dead_code)]
    pub async fn start_alone() -> Browser {
        let turn = Turn::Alone(BROWSERS.clone().write_owned().await);
        Browser::start_in(turn).await
    }

    async fn start_in(turn: Turn) -> Browser {
        let chromium = path("SWITCHYARD_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = path("SWITCHYARD_CHROMEDRIVER", "/usr/bin/chromedriver");
        for binary in [&chromium, &chromedriver] {
            assert!(
                std::path::Path::new(binary).is_file(),
                "{binary} is missing: {HOW_TO_INSTALL}"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("switchyard-chromium-{}", uuid::Uuid::new_v4()));
        let _ = std::fs::create_dir_all(&profile);
        let mic = profile.join("mic.wav");
        std::fs::write(&mic, tone_wav(MIC_TONE, 48_000, 2)).unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // As this machine's Chromium wants it: no sandbox as root, and nothing that
                // reaches for the network on its own.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    // A microphone that says a steady tone, granted without asking (Talk).
                    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    format!("--use-file-for-fake-audio-capture={}", mic.display()),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("no Chromium session: {e}"));
        Browser {
            client,
            driver,
            profile,
            _turn: turn,
        }
    }

    /// Waits for an element to be on the page.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    /// Picks the option `value` of the select `css` (once it appears).
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} has no option {value:?}: {e}"));
    }

    /// Waits until the text of the element `css` satisfies `ok`; returns it.
    pub async fn text_until(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < PATIENCE {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = e.text().await
            {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: the text never came, last {last:?}")
    }

    /// Waits until the cells of the table row `css` satisfy `ok`; returns them.
    pub async fn cells_until(&self, css: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let script = "const r = document.querySelector(arguments[0]); \
            return r ? [...r.children].map((c) => c.textContent.trim()) : null;";
        let started = Instant::now();
        let mut last = Vec::new();
        while started.elapsed() < PATIENCE {
            if let Ok(serde_json::Value::Array(cells)) =
                self.client.execute(script, vec![json!(css)]).await
            {
                let cells: Vec<String> = cells
                    .iter()
                    .map(|c| c.as_str().unwrap_or_default().to_owned())
                    .collect();
                if ok(&cells) {
                    return cells;
                }
                last = cells;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: the cells never came, last {last:?}")
    }

    /// Waits until no element matches `css`.
    pub async fn gone(&self, css: &str) {
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            match self.client.find_all(Locator::Css(css)).await {
                Ok(found) if found.is_empty() => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("{css} never went away")
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.ok();
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    /// Saves a PNG of the page at `docs/<name>.png` (the README shows them).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&dir).expect("docs/");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot written");
    }

    /// Ends the browser session; dropping stops chromedriver and Chromium.
    pub async fn stop(self) {
        self.client.clone().close().await.ok();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The tone the browser's microphone says (Hz).
#[allow(dead_code)]
pub const MIC_TONE: f64 = 700.0;

/// A WAV of a steady tone at -10 dBFS: 16-bit mono, `secs` long.
fn tone_wav(freq: f64, rate: u32, secs: u32) -> Vec<u8> {
    let n = rate * secs;
    let mut out = Vec::with_capacity(44 + 2 * n as usize);
    let data = 2 * n;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let v = (std::f64::consts::TAU * freq * t).sin() * 0.316 * 32767.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}
