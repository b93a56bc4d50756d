//! Audio helpers for live streams: G.711 µ-law, rate conversion by two between 8 and 16 kHz,
//! and raw L16 (signed 16-bit little-endian PCM, mono) bytes.
//!
//! The media node gives and takes L16 in 20 ms frames; the WebSocket server may want another
//! rate (L16 protocol) or µ-law at 8 kHz (Twilio protocol). The converters keep their filter
//! state between frames so that the frame edges make no clicks.

use std::sync::LazyLock;

/// The µ-law bias (ITU-T G.711): added to the magnitude so that every segment has a leading one.
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude µ-law encodes; louder samples are clipped to it.
const ULAW_CLIP: i32 = 32635;

/// µ-law byte to linear sample, built at compile time so that decoding is one lookup.
const ULAW_TABLE: [i16; 256] = build_ulaw_table();

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let byte = !(i as u8);
        let exponent = ((byte >> 4) & 0x07) as i32;
        let mantissa = (byte & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
        table[i] = if byte & 0x80 != 0 {
            -magnitude
        } else {
            magnitude
        } as i16;
        i += 1;
    }
    table
}

/// Encodes one linear sample as G.711 µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let (sign, magnitude) = if sample < 0 {
        (0x80, -i32::from(sample))
    } else {
        (0x00, i32::from(sample))
    };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment (exponent) is where the highest set bit sits, from bit 7 (0) to bit 14 (7).
    let exponent = (31 - biased.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one G.711 µ-law byte to a linear sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    ULAW_TABLE[usize::from(byte)]
}

/// Samples in one 20 ms frame at `rate` (160 at 8 kHz, 320 at 16 kHz).
pub fn frame_samples(rate: u32) -> usize {
    (rate / 50) as usize
}

/// Reads little-endian L16 bytes as samples; an odd trailing byte is ignored (callers that get
/// audio in pieces keep it themselves, see `protocol::InboundDecoder`).
pub fn pcm_from_le(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

/// Appends `samples` to `out` as little-endian L16 bytes.
pub fn pcm_to_le(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
}

/// Taps of the half-band low-pass filter both converters use.
const TAPS: usize = 31;

/// A symmetric half-band low-pass at 16 kHz: a Blackman-windowed sinc with its cutoff at 4 kHz
/// (half of 8 kHz, so what stays fits at 8 kHz), normalised to a gain of one at DC. It passes
/// 1 kHz flat and takes tens of dB off 6 kHz; every other tap but the centre is zero.
static HALF_BAND: LazyLock<[f32; TAPS]> = LazyLock::new(|| {
    let middle = (TAPS / 2) as f64;
    let mut taps = [0f64; TAPS];
    for (k, tap) in taps.iter_mut().enumerate() {
        let n = k as f64 - middle;
        let sinc = if n == 0.0 {
            1.0
        } else {
            let x = std::f64::consts::PI * n / 2.0;
            x.sin() / x
        };
        // The window spans two more points than the taps so that the outer taps are not zero.
        let phase = std::f64::consts::PI * n / (middle + 1.0);
        let window = 0.42 + 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos();
        *tap = sinc * window;
    }
    let sum: f64 = taps.iter().sum();
    taps.map(|tap| (tap / sum) as f32)
});

/// The last `TAPS` samples at 16 kHz, newest at `head - 1`, for filtering across frames.
#[derive(Debug, Clone)]
struct DelayLine {
    samples: [f32; TAPS],
    head: usize,
}

impl DelayLine {
    fn new() -> DelayLine {
        DelayLine {
            samples: [0.0; TAPS],
            head: 0,
        }
    }

    fn push(&mut self, sample: f32) {
        self.samples[self.head] = sample;
        self.head = (self.head + 1) % TAPS;
    }

    /// The filter's output for the samples now in the line, times `gain`, as a clipped sample.
    /// The taps are symmetric, so the order they meet the samples in does not matter.
    fn filter(&self, gain: f32) -> i16 {
        let (older, newer) = self.samples.split_at(self.head);
        let acc: f32 = newer
            .iter()
            .chain(older)
            .zip(HALF_BAND.iter())
            .map(|(sample, tap)| sample * tap)
            .sum();
        (acc * gain)
            .round()
            .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
    }
}

/// 8 kHz to 16 kHz: puts a zero between samples and low-passes away the image above 4 kHz.
/// Keeps its filter state across calls, so feeding 20 ms frames one by one gives the same
/// output as feeding the whole signal at once.
#[derive(Debug, Clone)]
pub struct Upsampler {
    line: DelayLine,
}

impl Upsampler {
    pub fn new() -> Upsampler {
        Upsampler {
            line: DelayLine::new(),
        }
    }

    /// Appends two output samples per input sample to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(input.len() * 2);
        for &sample in input {
            // The inserted zeros halve the signal's level, hence the gain of two.
            self.line.push(f32::from(sample));
            out.push(self.line.filter(2.0));
            self.line.push(0.0);
            out.push(self.line.filter(2.0));
        }
    }
}

impl Default for Upsampler {
    fn default() -> Upsampler {
        Upsampler::new()
    }
}

/// 16 kHz to 8 kHz: low-passes away what is above 4 kHz (it would alias) and keeps every other
/// sample. Keeps its filter state, and which sample is next to keep, across calls.
#[derive(Debug, Clone)]
pub struct Downsampler {
    line: DelayLine,
    /// Whether the next input sample is one the output keeps.
    keep_next: bool,
}

impl Downsampler {
    pub fn new() -> Downsampler {
        Downsampler {
            line: DelayLine::new(),
            keep_next: true,
        }
    }

    /// Appends one output sample per two input samples to `out` (an odd count carries over).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(input.len() / 2 + 1);
        for &sample in input {
            self.line.push(f32::from(sample));
            if self.keep_next {
                out.push(self.line.filter(1.0));
            }
            self.keep_next = !self.keep_next;
        }
    }
}

impl Default for Downsampler {
    fn default() -> Downsampler {
        Downsampler::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * n as f64 / rate).sin()) as i16
            })
            .collect()
    }

    /// The amplitude of `freq` in `x` (Goertzel); exact when `x` holds whole cycles of it.
    fn amplitude_at(x: &[i16], freq: f64, rate: f64) -> f64 {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &sample in x {
            let s = f64::from(sample) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * power.max(0.0).sqrt() / x.len() as f64
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// The output after the filter has settled: skips the first 40 ms, keeps 800 samples
    /// (whole cycles of every tone the tests use).
    fn settled(x: &[i16], rate: usize) -> &[i16] {
        let start = rate / 25;
        &x[start..start + 800]
    }

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(-1), 0x7F);
    }

    #[test]
    fn ulaw_round_trip() {
        // Every byte but 0x7F (negative zero, which decodes to 0 and so encodes as 0xFF) survives.
        for byte in 0..=255u8 {
            let expected = if byte == 0x7F { 0xFF } else { byte };
            assert_eq!(ulaw_encode(ulaw_decode(byte)), expected, "byte {byte:#04x}");
        }
        // Every sample comes back within half a step of its segment (steps grow 8 -> 1024).
        for sample in i16::MIN..=i16::MAX {
            let back = i32::from(ulaw_decode(ulaw_encode(sample)));
            let error = (back - i32::from(sample).clamp(-ULAW_CLIP, ULAW_CLIP)).abs();
            let step = (i32::from(sample).abs() / 16).max(8);
            assert!(error <= step, "{sample} came back as {back}");
        }
    }

    #[test]
    fn half_band_shape() {
        let taps = *HALF_BAND;
        let sum: f32 = taps.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        for k in 0..TAPS {
            assert_eq!(taps[k], taps[TAPS - 1 - k]);
            if (k as i32 - 15) % 2 == 0 && k != 15 {
                assert!(taps[k].abs() < 1e-6, "tap {k} is {}", taps[k]);
            }
        }
    }

    #[test]
    fn upsampled_1k_keeps_its_amplitude_and_has_no_image() {
        let input = tone(1000.0, 8000.0, 10_000.0, 1600);
        let mut out = Vec::new();
        Upsampler::new().process(&input, &mut out);
        assert_eq!(out.len(), 3200);
        let steady = settled(&out, 16_000);
        let kept = amplitude_at(steady, 1000.0, 16_000.0);
        assert!((kept - 10_000.0).abs() < 1000.0, "1 kHz came out at {kept}");
        let image = amplitude_at(steady, 7000.0, 16_000.0);
        assert!(image < 1000.0, "the 7 kHz image is at {image}");
    }

    #[test]
    fn downsampled_1k_keeps_its_amplitude() {
        let input = tone(1000.0, 16_000.0, 10_000.0, 3200);
        let mut out = Vec::new();
        Downsampler::new().process(&input, &mut out);
        assert_eq!(out.len(), 1600);
        let kept = amplitude_at(settled(&out, 8000), 1000.0, 8000.0);
        assert!((kept - 10_000.0).abs() < 1000.0, "1 kHz came out at {kept}");
    }

    #[test]
    fn downsampling_attenuates_6k_by_over_20_db() {
        let input = tone(6000.0, 16_000.0, 10_000.0, 3200);
        let mut out = Vec::new();
        Downsampler::new().process(&input, &mut out);
        let steady = settled(&out, 8000);
        let ratio = rms(steady) / rms(settled(&input, 16_000));
        assert!(ratio < 0.1, "6 kHz kept {ratio} of its level");
        // It would alias to 2 kHz.
        assert!(amplitude_at(steady, 2000.0, 8000.0) < 1000.0);
    }

    #[test]
    fn frames_give_the_same_output_as_the_whole() {
        let narrow = tone(440.0, 8000.0, 8000.0, 1600);
        let mut whole = Vec::new();
        Upsampler::new().process(&narrow, &mut whole);
        let mut up = Upsampler::new();
        let mut framed = Vec::new();
        for frame in narrow.chunks(frame_samples(8000)) {
            up.process(frame, &mut framed);
        }
        assert_eq!(framed, whole);

        let wide = tone(440.0, 16_000.0, 8000.0, 3200);
        let mut whole = Vec::new();
        Downsampler::new().process(&wide, &mut whole);
        for size in [frame_samples(16_000), 7] {
            let mut down = Downsampler::new();
            let mut framed = Vec::new();
            for frame in wide.chunks(size) {
                down.process(frame, &mut framed);
            }
            assert_eq!(framed, whole, "in chunks of {size}");
        }
    }

    #[test]
    fn frame_sizes_and_le_bytes() {
        assert_eq!(frame_samples(8000), 160);
        assert_eq!(frame_samples(16_000), 320);
        let mut bytes = Vec::new();
        pcm_to_le(&[1, -2, 0x1234], &mut bytes);
        assert_eq!(bytes, [0x01, 0x00, 0xFE, 0xFF, 0x34, 0x12]);
        bytes.push(0x99);
        assert_eq!(pcm_from_le(&bytes), [1, -2, 0x1234]);
    }
}
