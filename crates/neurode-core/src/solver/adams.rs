//! Fixed-step Adams methods with torchdiffeq's semantics (`explicit_adams`, `implicit_adams`):
//! the history holds f at the previous step ends (newest first, at most MAX_ORDER − 1 values);
//! while it has fewer than 3 values a step is RK4 (Kutta's 3/8 rule); then Adams–Bashforth of
//! order min(history, 11) predicts, and for implicit_adams the Adams–Moulton formula one order
//! higher corrects by functional iteration (at most 4 times, converged when the change of the
//! increment is within rtol/atol in the max norm; if not, the oldest history value is dropped).
//!
//! Like torchdiffeq, the order grows to 11, where Adams–Bashforth's stability region is tiny:
//! explicit_adams is for non-stiff problems with small steps.
//! One difference on purpose: the coefficients assume equal steps, so the history restarts
//! whenever the step length changes (a shortened last step, grid points); torchdiffeq applies
//! them to unequal steps. Dense output is the cubic Hermite through (y0, f0, y1, f1).
//! The coefficients are computed here from the backward-difference recurrences.

use super::stiff::{hermite_out, internal_grid};
use super::{count_attempt, onto_grid};
use super::tableau::RK4;
use super::{atol_at, finite_all, next_float, prev_float, stage_state, stage_time, step_end_state, Directed, Method, Options, StepInfo, StepObserver, Stats};
use crate::error::{Code, Error, Result};
use crate::real::Real;

pub const MAX_ORDER: usize = 12;
const MIN_ORDER: usize = 4;
const MAX_ITERS: usize = 4;

fn binom(n: usize, k: usize) -> f64 {
    let mut c = 1.0;
    for i in 0..k {
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    c
}

/// Adams–Bashforth weights of the k-step formula, newest value first:
/// y1 = y0 + h Σ_i β_i f_{−i}.
pub fn bashforth(k: usize) -> Vec<f64> {
    // γ_j = 1 − Σ_{i<j} γ_i / (j + 1 − i)
    let mut g = vec![0.0; k];
    for j in 0..k {
        g[j] = 1.0 - (0..j).map(|i| g[i] / (j + 1 - i) as f64).sum::<f64>();
    }
    (0..k).map(|i| (if i % 2 == 0 { 1.0 } else { -1.0 }) * (i..k).map(|j| binom(j, i) * g[j]).sum::<f64>()).collect()
}

/// Adams–Moulton weights over k + 1 values f_{+1}, f_0, …, f_{−k+1} (newest first).
pub fn moulton(k: usize) -> Vec<f64> {
    // γ*_j = −Σ_{i<j} γ*_i / (j + 1 − i), γ*_0 = 1
    let mut g = vec![0.0; k + 1];
    for j in 0..=k {
        g[j] = if j == 0 { 1.0 } else { -(0..j).map(|i| g[i] / (j + 1 - i) as f64).sum::<f64>() };
    }
    (0..=k).map(|i| (if i % 2 == 0 { 1.0 } else { -1.0 }) * (i..=k).map(|j| binom(j, i) * g[j]).sum::<f64>()).collect()
}

pub(crate) fn integrate<R: Real>(
    f: &mut Directed<R>,
    y0: &[R],
    ts: &[f64],
    o: &Options,
    out: &mut [R],
    stats: &mut Stats,
    mut observer: Option<&mut dyn StepObserver<R>>,
) -> Result<()> {
    let n = y0.len();
    let dir = f.dir;
    let implicit = o.method == Method::ImplicitAdams;
    let s_out: Vec<f64> = ts.iter().map(|t| dir * t).collect();
    let s0 = s_out[0];
    let s_end = *s_out.last().unwrap_or(&s0);
    let grid = internal_grid(o, dir, s0, s_end);
    let at = |s: f64| dir * s;
    let ab: Vec<Vec<f64>> = (0..MAX_ORDER).map(bashforth).collect();
    let am: Vec<Vec<f64>> = (0..=MAX_ORDER).map(moulton).collect();
    let cap = MAX_ORDER - 1;
    // history ring: hist[(head + i) % cap] is the i-th newest value
    let mut hist = vec![vec![R::ZERO; n]; cap];
    let (mut head, mut len) = (0usize, 0usize);
    let mut k = vec![vec![R::ZERO; n]; RK4.stages()];
    let mut y = y0.to_vec();
    let mut y_prev = y0.to_vec();
    let mut y_new = vec![R::ZERO; n];
    let mut f_next = vec![R::ZERO; n];
    let mut f1 = vec![R::ZERO; n];
    let mut dy = vec![0.0f64; n];
    let mut delta = vec![0.0f64; n];
    let h_fixed = o.step_size.unwrap_or(f64::INFINITY);
    f.eval(s0, &y, &mut k[0])?;
    if !finite_all(&k[0]) {
        return Err(Error::new(Code::NonFinite, format!("the derivative is not finite at t = {}", at(s0))));
    }
    let mut s = s0;
    let mut s_prev = s0;
    let mut h_last = f64::NAN;
    let mut restart = false;
    let mut idx = 1;
    let mut next_grid = 0;
    let mut attempts = 0u64;
    let mut f_end_valid = true; // k[0] of the next step = f_next (computed after each step)
    let mut steps_done = 0u64;
    let restart_grid_base = !grid.is_empty(); // with grid points steps are taken from where we are
    loop {
        while idx < ts.len() && s_out[idx] <= s {
            let dst = &mut out[idx * n..(idx + 1) * n];
            if s_out[idx] == s {
                dst.copy_from_slice(&y);
            } else {
                // k[0] still holds the last step's f0 here; f_next is f̃(s, y)
                hermite_out(f, s_prev, s, s_out[idx], &y_prev, &y, &k[0], &mut f_next, &mut f_end_valid, dst)?;
            }
            idx += 1;
        }
        if idx == ts.len() || observer.as_deref().is_some_and(|ob| ob.stop()) {
            break;
        }
        count_attempt(&mut attempts, o.max_steps, at(s))?;
        // steps at s0 + j·h (as torchdiffeq's grid) so equal steps stay equal up to rounding
        let mut s_new = if h_fixed.is_finite() && !restart_grid_base { s0 + (steps_done + 1) as f64 * h_fixed } else { s + h_fixed };
        let on_grid = onto_grid(&grid, &mut next_grid, s, &mut s_new);
        if s_new > s_end {
            s_new = s_end;
        }
        let h = s_new - s;
        if !(s_new > s) || !h.is_finite() {
            return Err(Error::new(Code::StepUnderflow, format!("step size underflow at t = {}", at(s))));
        }
        if s != s0 {
            if restart {
                f.eval(next_float(s), &y, &mut k[0])?;
            } else {
                core::mem::swap(&mut k[0], &mut f_next);
            }
        }
        if restart || !((h - h_last).abs() <= 1e-9 * h) {
            len = 0; // the formulas need equal steps: start over with RK4
        }
        // push f0 as the newest history value
        head = (head + cap - 1) % cap;
        hist[head].copy_from_slice(&k[0]);
        len = (len + 1).min(cap);
        let order = len.min(MAX_ORDER - 1);
        let s_end_eval = if on_grid { prev_float(s_new) } else { s_new };
        let s_k0 = if restart { next_float(s) } else { s };
        let hr = R::from_f64(h);
        if order < MIN_ORDER - 1 {
            for i in 1..RK4.stages() {
                let (ks, rest) = k.split_at_mut(i);
                stage_state(&RK4, i, hr, &y, ks, &mut y_new);
                f.eval(stage_time(&RK4, i, s, h, s_k0, s_end_eval), &y_new, &mut rest[0])?;
            }
            step_end_state(&RK4, hr, &y, &k, &mut y_new);
        } else {
            let b = &ab[order];
            for q in 0..n {
                let mut acc = 0.0;
                for (i, &bi) in b.iter().enumerate() {
                    acc += bi * hist[(head + i) % cap][q].to_f64();
                }
                dy[q] = h * acc;
            }
            if implicit {
                let c = &am[order];
                for q in 0..n {
                    let mut acc = 0.0;
                    for (i, &ci) in c.iter().enumerate().skip(1) {
                        acc += ci * hist[(head + i - 1) % cap][q].to_f64();
                    }
                    delta[q] = h * acc;
                }
                let mut converged = false;
                for _ in 0..MAX_ITERS {
                    for q in 0..n {
                        y_new[q] = y[q] + R::from_f64(dy[q]);
                    }
                    f.eval(s_end_eval, &y_new, &mut f1)?;
                    stats.newton += 1;
                    let mut worst = 0.0f64;
                    for q in 0..n {
                        let d = h * c[0] * f1[q].to_f64() + delta[q];
                        let tol = atol_at(&o.atol, q) + o.rtol * dy[q].abs().max(d.abs());
                        let ratio = (d - dy[q]).abs() / tol;
                        if !(ratio <= worst) {
                            worst = ratio;
                        }
                        dy[q] = d;
                    }
                    if worst < 1.0 {
                        converged = true;
                        break;
                    }
                }
                if !converged && len > 1 {
                    len -= 1; // drop the oldest value: lower order next time
                }
            }
            for q in 0..n {
                y_new[q] = y[q] + R::from_f64(dy[q]);
            }
        }
        if !finite_all(&y_new) {
            return Err(Error::new(Code::NonFinite, format!("the solution is not finite at t = {}", at(s_new))));
        }
        stats.steps += 1;
        if let Some(obs) = observer.as_deref_mut() {
            obs.accepted(&StepInfo { s0: s, s1: s_new, s_k0, s_last: s_end_eval, y0: &y, y1: &y_new, k: &k })?;
        }
        f.eval(s_end_eval, &y_new, &mut f_next)?;
        f_end_valid = true;
        core::mem::swap(&mut y_prev, &mut y);
        core::mem::swap(&mut y, &mut y_new);
        s_prev = s;
        s = s_new;
        h_last = h;
        restart = on_grid;
        steps_done += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_match_the_classical_tables() {
        let close = |a: &[f64], b: &[f64], d: f64| a.iter().zip(b).all(|(x, y)| (x - y / d).abs() < 1e-13);
        assert!(close(&bashforth(2), &[3.0, -1.0], 2.0));
        assert!(close(&bashforth(4), &[55.0, -59.0, 37.0, -9.0], 24.0));
        assert!(close(&moulton(1), &[1.0, 1.0], 2.0));
        assert!(close(&moulton(3), &[9.0, 19.0, -5.0, 1.0], 24.0));
        assert!(close(&moulton(4), &[251.0, 646.0, -264.0, 106.0, -19.0], 720.0));
        for k in 1..MAX_ORDER {
            // consistency: the weights sum to one
            assert!((bashforth(k).iter().sum::<f64>() - 1.0).abs() < 1e-9, "AB{}", k);
            assert!((moulton(k).iter().sum::<f64>() - 1.0).abs() < 1e-9, "AM{}", k);
        }
    }
}
