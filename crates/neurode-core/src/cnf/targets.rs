//! Unnormalised 2-D target densities p̃ = e^{−U} for density matching (paper Fig. 4; the four
//! energies of Rezende & Mohamed 2015, Table 1), with analytic gradients of log p̃.
//!
//! w1 = sin(2π z1/4), w2 = 3 exp(−½((z1 − 1)/0.6)²), w3 = 3 σ((z1 − 1)/0.3);
//! U1 = ½((‖z‖ − 2)/0.4)² − ln(e^{−½((z1−2)/0.6)²} + e^{−½((z1+2)/0.6)²})
//! U2 = ½((z2 − w1)/0.4)²
//! U3 = −ln(e^{−½((z2−w1)/0.35)²} + e^{−½((z2−w1+w2)/0.35)²})
//! U4 = −ln(e^{−½((z2−w1)/0.4)²} + e^{−½((z2−w1+w3)/0.35)²})
//! U2–U4 do not depend on z1 away from the waves, so e^{−U} is not integrable and the reverse KL
//! would be unbounded below (a flow could spread along z1 forever). They get the envelope
//! (z1/4)⁸ (< 0.1 for |z1| < 3, e^{−1} at |z1| = 4), which keeps their look on the [−4, 4]² window
//! where Rezende & Mohamed show them and makes them proper.

use crate::error::{Error, Result};
use crate::math::{sin_cos_turns, Float};

pub const NAMES: [&str; 4] = ["ring", "wave", "twoWaves", "waveStep"];

/// ln(e^a + e^b) and the weight e^a / (e^a + e^b).
fn lse(a: f64, b: f64) -> (f64, f64) {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    let e = Float::exp(lo - hi);
    let v = hi + Float::log1p(e);
    let w_hi = 1.0 / (1.0 + e);
    (v, if a >= b { w_hi } else { 1.0 - w_hi })
}

/// log p̃(z) and its gradient for target `id` (index into NAMES).
pub fn log_density(id: u32, z: [f64; 2]) -> Result<(f64, [f64; 2])> {
    let [z1, z2] = z;
    let (s, c) = sin_cos_turns(z1 / 4.0);
    let w1 = s;
    let dw1 = core::f64::consts::FRAC_PI_2 * c;
    let (u, g) = match id {
        0 => {
            let r = (z1 * z1 + z2 * z2).sqrt();
            let e = (r - 2.0) / 0.4;
            let a = -0.5 * ((z1 - 2.0) / 0.6) * ((z1 - 2.0) / 0.6);
            let b = -0.5 * ((z1 + 2.0) / 0.6) * ((z1 + 2.0) / 0.6);
            let (l, wa) = lse(a, b);
            // d/dz of ½e²: e/0.4 · z/r (0 at the origin, where r is not differentiable)
            let k = if r > 0.0 { e / 0.4 / r } else { 0.0 };
            let dl1 = (wa * (z1 - 2.0) + (1.0 - wa) * (z1 + 2.0)) / 0.36;
            (0.5 * e * e - l, [k * z1 + dl1, k * z2])
        }
        1 => {
            let e = (z2 - w1) / 0.4;
            (0.5 * e * e, [-e / 0.4 * dw1, e / 0.4])
        }
        2 | 3 => {
            let (w, dw, s1, s2) = if id == 2 {
                let q = (z1 - 1.0) / 0.6;
                let w2 = 3.0 * Float::exp(-0.5 * q * q);
                (w2, -w2 * q / 0.6, 0.35, 0.35)
            } else {
                let sg = Float::sigmoid((z1 - 1.0) / 0.3);
                (3.0 * sg, 3.0 * sg * (1.0 - sg) / 0.3, 0.4, 0.35)
            };
            let e1 = (z2 - w1) / s1;
            let e2 = (z2 - w1 + w) / s2;
            let (l, p1) = lse(-0.5 * e1 * e1, -0.5 * e2 * e2);
            let p2 = 1.0 - p1;
            // ∇U = p1·e1/s1·∇(z2 − w1) + p2·e2/s2·∇(z2 − w1 + w)
            let (c1, c2) = (p1 * e1 / s1, p2 * e2 / s2);
            (-l, [c1 * -dw1 + c2 * (dw - dw1), c1 + c2])
        }
        _ => return Err(Error::invalid(format!("target: unknown id {id}"))),
    };
    let (u, g) = if id == 0 {
        (u, g)
    } else {
        let q = z1 / 4.0;
        let q2 = q * q;
        let q4 = q2 * q2;
        (u + q4 * q4, [g[0] + 2.0 * q4 * q2 * q, g[1]])
    };
    Ok((-u, [-g[0], -g[1]]))
}
