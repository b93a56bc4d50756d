//! The controller's Prometheus histograms as the benches read them from `/metrics`: scraped
//! before and after a step, subtracted, summed over steps, and read as quantiles.

use std::collections::HashMap;

/// One histogram: cumulative counts by bucket bound (seconds), in order, and the sum of what
/// it recorded (seconds).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
}

impl Histogram {
    /// How many values it holds.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, c)| *c)
    }

    /// Their mean, in ms.
    pub fn mean_ms(&self) -> f64 {
        match self.count() {
            n if n > 0.0 => self.sum / n * 1000.0,
            _ => f64::NAN,
        }
    }
}

pub type Histograms = HashMap<String, Histogram>;

/// The histograms of a `/metrics` text, each series filed under `key(name, labels)` (`None`:
/// not wanted; `labels` without the braces); the series filed under one key are summed.
pub fn parse(text: &str, key: impl Fn(&str, &str) -> Option<String>) -> Histograms {
    let mut out = Histograms::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        if let Some(name) = name.strip_suffix("_bucket") {
            let le = labels
                .split(',')
                .find_map(|l| l.strip_prefix("le=\""))
                .map(|v| v.trim_end_matches('"'));
            let Some(le) = le else { continue };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let rest: Vec<&str> = labels
                .split(',')
                .filter(|l| !l.is_empty() && !l.starts_with("le="))
                .collect();
            let Some(key) = key(name, &rest.join(",")) else {
                continue;
            };
            let buckets = &mut out.entry(key).or_default().buckets;
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += value,
                None => buckets.push((le, value)),
            }
        } else if let Some(name) = name.strip_suffix("_sum")
            && let Some(key) = key(name, labels)
        {
            out.entry(key).or_default().sum += value;
        }
    }
    for h in out.values_mut() {
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// `after − before`, bucket by bucket.
pub fn delta(before: &Histograms, after: &Histograms) -> Histograms {
    after
        .iter()
        .map(|(key, h)| {
            let old = before.get(key);
            let buckets = h
                .buckets
                .iter()
                .map(|&(le, c)| {
                    let was = old
                        .and_then(|o| o.buckets.iter().find(|(b, _)| *b == le))
                        .map_or(0.0, |(_, c)| *c);
                    (le, c - was)
                })
                .collect();
            let sum = h.sum - old.map_or(0.0, |o| o.sum);
            (key.clone(), Histogram { buckets, sum })
        })
        .collect()
}

/// Sums another step's histograms into `into`.
pub fn add(into: &mut Histograms, more: &Histograms) {
    for (key, h) in more {
        let mine = into.entry(key.clone()).or_default();
        for &(le, c) in &h.buckets {
            match mine.buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, m)) => *m += c,
                None => mine.buckets.push((le, c)),
            }
        }
        mine.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        mine.sum += h.sum;
    }
}

/// The `q` quantile of cumulative buckets, interpolated within its bucket as Prometheus's
/// `histogram_quantile` does (so only as fine as the buckets), in ms; and the count.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> (f64, f64) {
    let total = buckets.last().map_or(0.0, |(_, c)| *c);
    if total <= 0.0 {
        return (f64::NAN, 0.0);
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return (lower.0 * 1000.0, total);
            }
            let within = if c > lower.1 {
                (rank - lower.1) / (c - lower.1)
            } else {
                1.0
            };
            return ((lower.0 + (le - lower.0) * within) * 1000.0, total);
        }
        lower = (le, c);
    }
    (f64::NAN, total)
}
