//! The bidirectional 2-D spirals of the paper's Section 5 (torchdiffeq's examples/latent_ode.py
//! setup). Curves: `ntotal` points on t ∈ [0, 6π]; clockwise θ = 6π + 1 − t, r = 50·0.3/θ,
//! (r cos θ − 5, r sin θ); counter-clockwise θ = t, r = 0.3 θ, (r cos θ + 5, r sin θ). Each of the
//! `n` series is a window of `nsample` consecutive curve points (times τ_k = k·6π/(ntotal − 1))
//! starting at an index uniform in [nsample, ntotal − nsample − nextra − 1], direction by a fair
//! coin, observed with Gaussian noise; the noise-free truth covers the window plus `nextra`
//! further points (for scoring extrapolation).
//!
//! Random numbers (rng.rs, keyed by `seed`): stream 0 start index, stream 1 direction, stream 2
//! noise (index (row·nsample + k)·2 + coordinate).

use crate::error::{Error, Result};
use crate::math::sin_cos_turns;
use crate::rng;

pub struct Spirals {
    /// Observation times, n × nsample (the same window times for every row).
    pub obs_times: Vec<f64>,
    /// Noisy observations, n × nsample × 2.
    pub obs_values: Vec<f64>,
    /// Truth times, nsample + nextra.
    pub truth_times: Vec<f64>,
    /// Noise-free values, n × (nsample + nextra) × 2.
    pub truth_values: Vec<f64>,
    pub starts: Vec<u64>,
    pub clockwise: Vec<bool>,
}

const SIX_PI: f64 = 6.0 * core::f64::consts::PI;

/// The curve point at time t.
pub fn curve(t: f64, clockwise: bool) -> [f64; 2] {
    let (theta, r, dx) = if clockwise {
        let th = SIX_PI + 1.0 - t;
        (th, 50.0 * 0.3 / th, -5.0)
    } else {
        (t, 0.3 * t, 5.0)
    };
    let (s, c) = sin_cos_turns(theta / (2.0 * core::f64::consts::PI));
    [r * c + dx, r * s]
}

pub fn spirals(n: usize, ntotal: usize, nsample: usize, nextra: usize, noise: f64, seed: u64) -> Result<Spirals> {
    if n == 0 || n > 1 << 24 {
        return Err(Error::invalid("n: must be from 1 to 2^24"));
    }
    if nsample < 2 {
        return Err(Error::invalid("nsample: must be >= 2"));
    }
    if !(noise >= 0.0) || !noise.is_finite() {
        return Err(Error::invalid("noise: must be a finite number >= 0"));
    }
    let span = ntotal.checked_sub(2 * nsample + nextra).filter(|&v| v >= 1).ok_or_else(|| Error::invalid("ntotal: must be > 2·nsample + nextra (windows start in [nsample, ntotal − nsample − nextra − 1])"))?;
    if ntotal > 1 << 24 || n.checked_mul(ntotal).map_or(true, |v| v > 1 << 28) {
        return Err(Error::invalid("ntotal: too large"));
    }
    let step = SIX_PI / (ntotal - 1) as f64;
    let nt = nsample + nextra;
    let mut s = Spirals {
        obs_times: Vec::with_capacity(n * nsample),
        obs_values: Vec::with_capacity(n * nsample * 2),
        truth_times: (0..nt).map(|k| k as f64 * step).collect(),
        truth_values: Vec::with_capacity(n * nt * 2),
        starts: Vec::with_capacity(n),
        clockwise: Vec::with_capacity(n),
    };
    for i in 0..n {
        let start = nsample as u64 + rng::u64_at(seed, 0, i as u64) % span as u64;
        let cw = rng::uniform_f64(seed, 1, i as u64) <= 0.5;
        s.starts.push(start);
        s.clockwise.push(cw);
        for k in 0..nt {
            let p = curve((start as usize + k) as f64 * step, cw);
            s.truth_values.extend_from_slice(&p);
            if k < nsample {
                s.obs_times.push(s.truth_times[k]);
                for (c, v) in p.iter().enumerate() {
                    let e = rng::normal_f64(seed, 2, ((i * nsample + k) * 2 + c) as u64);
                    s.obs_values.push(v + noise * e);
                }
            }
        }
    }
    Ok(s)
}
