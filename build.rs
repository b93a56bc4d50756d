//! Turns on the `live_fs` cfg when the live tests have a real FreeSWITCH: one they can start (the
//! binary `SWITCHYARD_FREESWITCH`, default `/usr/local/freeswitch/bin/freeswitch`, exists), one
//! running that `SWITCHYARD_LIVE_ESL` names, or `SWITCHYARD_REQUIRE_FREESWITCH=1` (CI: a missing
//! FreeSWITCH then fails the tests, saying how to install it). Otherwise the live tests are
//! compiled and reported as ignored, never passed.
//!
//! Likewise the `schemathesis` cfg: the API fuzzer is on the `PATH`, or
//! `SWITCHYARD_REQUIRE_SCHEMATHESIS=1` (CI: a missing one fails `tests/api/schemathesis.rs`).
//!
//! The `garage` cfg: the object-storage tests have Garage (`SWITCHYARD_GARAGE`, default
//! `/usr/local/bin/garage`), or `SWITCHYARD_REQUIRE_GARAGE=1`.
//!
//! And the `browser` cfg: the dashboard's browser tests have Chromium and its WebDriver
//! (`SWITCHYARD_CHROMIUM`, default `/usr/bin/chromium`; `SWITCHYARD_CHROMEDRIVER`, default
//! `/usr/bin/chromedriver`: Debian's `chromium` and `chromium-driver`), or
//! `SWITCHYARD_REQUIRE_BROWSER=1` (CI: a missing one fails them, saying how to install it).
use std::path::{Path, PathBuf};

fn set(name: &str) -> Option<String> {
    println!("cargo::rerun-if-env-changed={name}");
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(live_fs)");
    // Read, not watched: `scripts/test` runs the live tests once per FreeSWITCH version by
    // changing it, and a watched variable would rebuild the crate and every test binary each time
    // (the tests read it at run time). A FreeSWITCH named here after the first build turns the
    // live tests on at the next build (or with SWITCHYARD_REQUIRE_FREESWITCH=1).
    let binary = PathBuf::from(
        std::env::var("SWITCHYARD_FREESWITCH")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "/usr/local/freeswitch/bin/freeswitch".into()),
    );
    // Notice the binary appearing or going: watch it, or the nearest directory that exists.
    let watched = binary
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if watched != Path::new("/") {
        println!("cargo::rerun-if-changed={}", watched.display());
    }
    let external = set("SWITCHYARD_LIVE_ESL").is_some();
    let required = set("SWITCHYARD_REQUIRE_FREESWITCH").is_some_and(|v| v != "0");
    let live = external || required || binary.is_file();
    if live {
        println!("cargo::rustc-cfg=live_fs");
    }

    println!("cargo::rustc-check-cfg=cfg(schemathesis)");
    // Read once, not watched: every change of PATH (another shell, a pyenv shim) would rebuild
    // the crate. Installing Schemathesis later leaves the test ignored until build.rs runs again
    // (`scripts/test` makes it run, by requiring it).
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("schemathesis").is_file())
    });
    let required = set("SWITCHYARD_REQUIRE_SCHEMATHESIS").is_some_and(|v| v != "0");
    if on_path || required {
        println!("cargo::rustc-cfg=schemathesis");
    }

    println!("cargo::rustc-check-cfg=cfg(garage)");
    // Garage, the S3 server of the object-storage tests (`SWITCHYARD_GARAGE`, default
    // `/usr/local/bin/garage`, from ../shared/garage), or `SWITCHYARD_REQUIRE_GARAGE=1` (CI: a
    // missing one fails them, saying how to install it).
    let garage =
        PathBuf::from(set("SWITCHYARD_GARAGE").unwrap_or_else(|| "/usr/local/bin/garage".into()));
    let required = set("SWITCHYARD_REQUIRE_GARAGE").is_some_and(|v| v != "0");
    if required || garage.is_file() {
        println!("cargo::rustc-cfg=garage");
    }

    println!("cargo::rustc-check-cfg=cfg(browser)");
    let chromium = set("SWITCHYARD_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
    let driver = set("SWITCHYARD_CHROMEDRIVER").unwrap_or_else(|| "/usr/bin/chromedriver".into());
    for path in [&chromium, &driver] {
        if let Some(dir) = Path::new(path).parent().filter(|d| d.exists()) {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
    let required = set("SWITCHYARD_REQUIRE_BROWSER").is_some_and(|v| v != "0");
    if required || (Path::new(&chromium).is_file() && Path::new(&driver).is_file()) {
        println!("cargo::rustc-cfg=browser");
    }
}
