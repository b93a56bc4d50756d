//! Turns on the `live_esl` cfg when a real FreeSWITCH is named, so the live tests run then and are
//! reported as ignored (not passed) otherwise.
fn main() {
    println!("cargo::rerun-if-env-changed=SWITCHYARD_LIVE_ESL");
    println!("cargo::rustc-check-cfg=cfg(live_esl)");
    if std::env::var_os("SWITCHYARD_LIVE_ESL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=live_esl");
    }
}
