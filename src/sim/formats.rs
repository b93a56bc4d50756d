//! The file formats a node plays (`show files`), as the two FreeSWITCH lines the controller
//! supports have them with `freeswitch-conf/` (`fixtures/esl/11_show_files_1.1x.txt`): 1.11
//! gives `tts` (mod_dptools, `tts://<engine>|<voice>|<text>` plays as a file); a stock 1.10.12
//! does not (mod_ssml gave it there, and it is not built), so spoken text plays only with
//! `say:`, which fires no done event (`fixtures/esl/11_versions.md`).

use super::core::State;

/// `(format, module)` rows of `show files` on 1.11, in its order.
const FORMATS: &[(&str, &str)] = &[
    ("L16", "mod_native_file"),
    ("PCMA", "mod_native_file"),
    ("PCMU", "mod_native_file"),
    ("adpcm", "mod_sndfile"),
    ("aiff", "mod_sndfile"),
    ("al", "mod_sndfile"),
    ("alaw", "mod_sndfile"),
    ("au", "mod_sndfile"),
    ("avr", "mod_sndfile"),
    ("caf", "mod_sndfile"),
    ("file", "mod_dptools"),
    ("file_string", "mod_dptools"),
    ("flac", "mod_sndfile"),
    ("gsm", "mod_sndfile"),
    ("htk", "mod_sndfile"),
    ("http", "mod_http_cache"),
    ("http_cache", "mod_http_cache"),
    ("https", "mod_http_cache"),
    ("iff", "mod_sndfile"),
    ("local_stream", "mod_local_stream"),
    ("m1a", "mod_sndfile"),
    ("mat", "mod_sndfile"),
    ("mpc", "mod_sndfile"),
    ("oga", "mod_sndfile"),
    ("oga", "mod_sndfile"),
    ("ogg", "mod_sndfile"),
    ("paf", "mod_sndfile"),
    ("pvf", "mod_sndfile"),
    ("r16", "mod_sndfile"),
    ("r24", "mod_sndfile"),
    ("r32", "mod_sndfile"),
    ("r8", "mod_sndfile"),
    ("raw", "mod_sndfile"),
    ("rf64", "mod_sndfile"),
    ("sd2", "mod_sndfile"),
    ("sds", "mod_sndfile"),
    ("sf", "mod_sndfile"),
    ("silence_stream", "mod_tone_stream"),
    ("tone_stream", "mod_tone_stream"),
    ("tts", "mod_dptools"),
    ("ul", "mod_sndfile"),
    ("ulaw", "mod_sndfile"),
    ("voc", "mod_sndfile"),
    ("vox", "mod_sndfile"),
    ("w64", "mod_sndfile"),
    ("wav", "mod_sndfile"),
    ("wve", "mod_sndfile"),
    ("xi", "mod_sndfile"),
];

impl State {
    /// Whether `tts://` plays as a file here: not on a simulated 1.10.
    pub(crate) fn speaks_tts_files(&self) -> bool {
        !self.config.version.starts_with("1.10.")
    }

    /// `show files`.
    pub(crate) fn show_files(&self) -> String {
        let tts = self.speaks_tts_files();
        let rows: Vec<String> = FORMATS
            .iter()
            .filter(|(name, _)| tts || *name != "tts")
            .map(|(name, module)| format!("file,{name},{module}\n"))
            .collect();
        format!("type,name,ikey\n{}\n{} total.\n", rows.concat(), rows.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::sim::{Core, SimConfig};

    #[test]
    fn show_files_is_what_each_version_answers() {
        for (version, fixture) in [
            ("1.11.3-dev~64bit", "1.11"),
            ("1.10.12-release~64bit", "1.10"),
        ] {
            let core = Core::new(Arc::new(SimConfig {
                version: version.into(),
                ..SimConfig::default()
            }));
            let real = std::fs::read_to_string(format!("fixtures/esl/11_show_files_{fixture}.txt"))
                .unwrap();
            assert_eq!(core.lock().show_files(), real, "{version}");
        }
    }
}
