//! Just enough WAV for the simulator: how long a local file plays, and writing a real recording.

use std::path::Path;
use std::time::Duration;

/// Playing time of a PCM WAV file, from its `fmt ` byte rate and `data` size.
pub fn duration(path: &Path) -> Option<Duration> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut byte_rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = pos + 8;
        if id == b"fmt " && body + 12 <= bytes.len() {
            byte_rate = Some(u32::from_le_bytes(
                bytes[body + 8..body + 12].try_into().ok()?,
            ));
        }
        if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0)?;
            let size = size.min(bytes.len() - body);
            return Some(Duration::from_secs_f64(size as f64 / f64::from(rate)));
        }
        pos = body + size + (size & 1);
    }
    None
}

/// A mono 16-bit PCM WAV of `samples` samples at `rate` Hz: a quiet 440 Hz tone, so the file is
/// real audio a player can open.
pub fn write_tone(path: &Path, rate: u32, samples: u32) -> std::io::Result<()> {
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let t = f64::from(n) / f64::from(rate);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 3000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_recording_reads_back_with_its_length() {
        let path = std::env::temp_dir().join(format!("sim-wav-{}.wav", std::process::id()));
        write_tone(&path, 8000, 12_000).unwrap();
        assert_eq!(duration(&path), Some(Duration::from_millis(1500)));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(duration(Path::new("/nonexistent.wav")), None);
    }
}
