//! 2-D toy densities (FFJORD's toy data sets), each sample a pure function of (seed, index):
//! variate j of sample i comes from stream `BASE + 16·set + j` at index i, so any prefix or
//! shard of a data set is the same whatever else is drawn. Also a full-covariance Gaussian
//! baseline (maximum likelihood fit, held-out negative log-likelihood).

#![allow(clippy::needless_range_loop)]

use crate::error::{Error, Result};
use crate::math::{sin_cos_turns, Float};
use crate::rng;

const BASE: u64 = 0x70_0000;

pub const NAMES: [&str; 5] = ["twoCircles", "twoMoons", "pinwheel", "eightGaussians", "checkerboard"];

/// Writes n samples (n × 2, row-major) of data set `kind` (index into NAMES).
pub fn toy(kind: u32, n: usize, seed: u64, out: &mut [f64]) -> Result<()> {
    if kind as usize >= NAMES.len() {
        return Err(Error::invalid(format!("dataset: unknown kind {kind}")));
    }
    if out.len() != 2 * n {
        return Err(Error::invalid("out: must hold n × 2 values"));
    }
    let st = |j: u64| BASE + 16 * kind as u64 + j;
    let u = |j: u64, i: usize| rng::uniform_f64(seed, st(j), i as u64);
    let g = |j: u64, i: usize| rng::normal_f64(seed, st(j), i as u64);
    for i in 0..n {
        let (x, y) = match kind {
            // sklearn make_circles(factor 0.5, noise 0.08) × 3; classes alternate
            0 => {
                let r = if i % 2 == 0 { 1.0 } else { 0.5 };
                let (s, c) = sin_cos_turns(u(0, i));
                (3.0 * (r * c + 0.08 * g(1, i)), 3.0 * (r * s + 0.08 * g(2, i)))
            }
            // sklearn make_moons(noise 0.1) × 2 + (−1, −0.2)
            1 => {
                let (s, c) = sin_cos_turns(0.5 * u(0, i));
                let (px, py) = if i % 2 == 0 { (c, s) } else { (1.0 - c, 0.5 - s) };
                (2.0 * (px + 0.1 * g(1, i)) - 1.0, 2.0 * (py + 0.1 * g(2, i)) - 0.2)
            }
            // 5 arms: radial N(1, 0.3²), tangential N(0, 0.1²), rotated by 2πk/5 + 0.25·e^{radial}, × 2
            2 => {
                let k = (rng::u64_at(seed, st(0), i as u64) % 5) as f64;
                let fr = 1.0 + 0.3 * g(1, i);
                let ft = 0.1 * g(2, i);
                let angle = 2.0 * core::f64::consts::PI * k / 5.0 + 0.25 * Float::exp(fr);
                let (s, c) = sin_cos_turns(angle / (2.0 * core::f64::consts::PI));
                (2.0 * (fr * c - ft * s), 2.0 * (fr * s + ft * c))
            }
            // centres at radius 4 every 45°, N(0, 0.5²) noise, all divided by 1.414
            3 => {
                let k = (rng::u64_at(seed, st(0), i as u64) % 8) as f64;
                let (s, c) = sin_cos_turns(k / 8.0);
                ((4.0 * c + 0.5 * g(1, i)) / 1.414, (4.0 * s + 0.5 * g(2, i)) / 1.414)
            }
            // 4 × 4 checkerboard on [−4, 4]²: x1 ~ U(−2, 2), x2 in the cells of the other colour
            _ => {
                let x1 = 4.0 * u(0, i) - 2.0;
                let x2 = u(1, i) - 2.0 * (rng::u64_at(seed, st(2), i as u64) % 2) as f64;
                let cell = floor(x1);
                let parity = cell - 2.0 * floor(cell / 2.0);
                (2.0 * x1, 2.0 * (x2 + parity))
            }
        };
        out[2 * i] = x;
        out[2 * i + 1] = y;
    }
    Ok(())
}

fn floor(x: f64) -> f64 {
    let t = x.trunc();
    if t > x { t - 1.0 } else { t }
}

/// Fits N(μ, Σ) to `train` (rows of width d, maximum likelihood) and returns the mean negative
/// log-likelihood of `test` under it.
pub fn gaussian_nll(train: &[f64], test: &[f64], d: usize) -> Result<f64> {
    if d == 0 || train.len() % d != 0 || test.len() % d != 0 || train.len() < 2 * d || test.is_empty() {
        return Err(Error::invalid("data: need at least 2 training rows and 1 test row of width dim"));
    }
    let n = train.len() / d;
    let mut mu = vec![0.0; d];
    for r in 0..n {
        for i in 0..d {
            mu[i] += train[r * d + i];
        }
    }
    mu.iter_mut().for_each(|v| *v /= n as f64);
    let mut cov = vec![0.0; d * d];
    for r in 0..n {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (train[r * d + i] - mu[i]) * (train[r * d + j] - mu[j]);
            }
        }
    }
    cov.iter_mut().for_each(|v| *v /= n as f64);
    // Cholesky Σ = L Lᵀ
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = cov[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if !(s > 0.0) {
                    return Err(Error::invalid("data: the covariance is singular"));
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    let logdet: f64 = (0..d).map(|i| 2.0 * Float::ln(l[i * d + i])).sum();
    let m = test.len() / d;
    let mut y = vec![0.0; d];
    let mut total = 0.0;
    for r in 0..m {
        // solve L y = x − μ
        for i in 0..d {
            let mut s = test[r * d + i] - mu[i];
            for k in 0..i {
                s -= l[i * d + k] * y[k];
            }
            y[i] = s / l[i * d + i];
        }
        let q: f64 = y.iter().map(|v| v * v).sum();
        total += 0.5 * (q + logdet + d as f64 * Float::ln(2.0 * core::f64::consts::PI));
    }
    Ok(total / m as f64)
}
