//! Just enough WAV for the simulator, through the `hound` crate: how long a local file plays,
//! and writing a real recording.

use std::path::Path;
use std::time::Duration;

/// Playing time of a PCM (or float) WAV file: its frames over its sample rate. `None` when the
/// file cannot be read as WAV (the caller then plays it for a default time).
pub fn duration(path: &Path) -> Option<Duration> {
    let reader = hound::WavReader::open(path).ok()?;
    let rate = reader.spec().sample_rate;
    if rate == 0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        f64::from(reader.duration()) / f64::from(rate),
    ))
}

/// A mono 16-bit PCM WAV of `samples` samples at `rate` Hz: a quiet 440 Hz tone, so the file is
/// real audio a player can open. Returns the size of the file written, in bytes.
pub fn write_tone(path: &Path, rate: u32, samples: u32) -> std::io::Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(io_error)?;
    for n in 0..samples {
        let t = f64::from(n) / f64::from(rate);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 3000.0;
        writer.write_sample(v as i16).map_err(io_error)?;
    }
    writer.finalize().map_err(io_error)?;
    Ok(std::fs::metadata(path)?.len())
}

fn io_error(e: hound::Error) -> std::io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => std::io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_written_recording_reads_back_with_its_length() {
        let path = std::env::temp_dir().join(format!("sim-wav-{}.wav", std::process::id()));
        let size = write_tone(&path, 8000, 12_000).unwrap();
        assert_eq!(
            size,
            44 + 24_000,
            "a canonical 44-byte header, then the samples"
        );
        assert_eq!(duration(&path), Some(Duration::from_millis(1500)));
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.spec().bits_per_sample, 16);
        let peak = reader
            .into_samples::<i16>()
            .map(|s| s.unwrap().unsigned_abs())
            .max();
        assert!(peak.is_some_and(|p| (2900..=3000).contains(&p)), "{peak:?}");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(duration(Path::new("/nonexistent.wav")), None);
    }

    #[test]
    fn a_file_that_is_not_wav_has_no_duration() {
        let path = std::env::temp_dir().join(format!("sim-notwav-{}.wav", std::process::id()));
        std::fs::write(&path, b"RIFF\x04\x00\x00\x00WAVE").unwrap();
        assert_eq!(duration(&path), None);
        std::fs::remove_file(&path).unwrap();
    }
}
