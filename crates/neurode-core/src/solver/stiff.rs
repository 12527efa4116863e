//! The stiff solver: Kværnø's ESDIRK 5(4) (`Method::Kvaerno5`), L-stable and stiffly accurate.
//!
//! Each implicit stage solves Z = S + hγ f(s_i, Z) (S = y0 + h Σ_{j<i} a_ij k_j) by simplified
//! Newton iterations with the matrix M = I − hγJ, J = ∂f/∂y from the field's VJP (one row per
//! call, `Rhs::vjp_y`) or, when the field has none, forward finite differences. J is kept across
//! steps and recomputed when Newton fails or converges slowly; M's LU is redone when h changes.
//! The error estimate is the embedded difference h·Σ e_j k_j, unfiltered (filtering it through
//! M⁻¹ underestimates the error on Prothero–Robinson-type problems). Dense output is the
//! cubic Hermite of the explicit methods (same `interp_weights`), so the gradient passes and
//! events treat every method alike; but the steps themselves land on the requested output times
//! (unlike the explicit methods), because that interpolant is poor for stiff components.

use super::linalg::{lu_factor, lu_solve};
use super::tableau::{interp_weights, KVAERNO5, KVAERNO5_GAMMA};
use super::{atol_at, count_attempt, finite_all, onto_grid, initial_step, next_float, next_step_size, prev_float, stage_state, stage_time, step_end_state, Directed, Options, StepInfo, StepObserver, Stats};
use crate::error::{Code, Error, Result};
use crate::math::powf64;
use crate::real::Real;

/// Newton stops when the estimated distance to the stage solution, in the error norm, is below
/// this fraction of the tolerance.
const KAPPA: f64 = 0.01;
const MAX_NEWTON: usize = 10;
/// A step whose iterations contracted slower than this recomputes J for the next step.
const SLOW_RATE: f64 = 0.3;

pub(crate) fn unit_roundoff<R: Real>() -> f64 {
    if R::BYTES == 4 { f32::EPSILON as f64 } else { f64::EPSILON }
}

/// The Jacobian J̃ = ∂f̃/∂y (internal field, first m components) and the LU of I − hγJ̃.
pub(crate) struct Newton {
    pub m: usize,
    pub jac: Vec<f64>,
    pub lu: Vec<f64>,
    pub piv: Vec<usize>,
    /// hγ the LU was formed for (NaN: none).
    pub lu_hg: f64,
    pub jac_valid: bool,
    /// J was evaluated at the current step's start.
    pub jac_current: bool,
    /// Last contraction estimate θ/(1−θ), seeds the first iteration's test.
    pub eta: f64,
}

impl Newton {
    pub fn new(m: usize) -> Self {
        Newton { m, jac: vec![0.0; m * m], lu: vec![0.0; m * m], piv: vec![0; m], lu_hg: f64::NAN, jac_valid: false, jac_current: false, eta: 1.0 }
    }

    /// LU of I − hγ J; false if singular.
    pub fn factor(&mut self, hg: f64) -> bool {
        let m = self.m;
        for i in 0..m * m {
            self.lu[i] = -hg * self.jac[i];
        }
        for i in 0..m {
            self.lu[i * m + i] += 1.0;
        }
        self.lu_hg = hg;
        lu_factor(&mut self.lu, m, &mut self.piv)
    }
}

/// J̃ = dir·∂f/∂y at (s, y) into nw.jac (row-major, m × m). `f0`, `tmp_y`, `tmp_f`: scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn jacobian<R: Real>(f: &mut Directed<R>, s: f64, y: &[R], f0: &mut [R], nw: &mut Newton, tmp_y: &mut [R], tmp_f: &mut [R], stats: &mut Stats) -> Result<()> {
    let (n, m) = (y.len(), nw.m);
    stats.jacobians += 1;
    let mut exact = true;
    for r in 0..m {
        tmp_y.iter_mut().for_each(|v| *v = R::ZERO);
        tmp_y[r] = R::ONE;
        f.nfe += 1;
        if !f.rhs.vjp_y(f.dir * s, y, tmp_y, tmp_f)? {
            exact = false;
            break;
        }
        for c in 0..m {
            nw.jac[r * m + c] = f.dir * tmp_f[c].to_f64();
        }
    }
    if !exact {
        // forward differences, one column per component, from f evaluated at exactly y
        f.eval(s, y, f0)?;
        let sq = unit_roundoff::<R>().sqrt();
        for c in 0..m {
            tmp_y.copy_from_slice(y);
            let yc = y[c].to_f64();
            let e = sq * yc.abs().max(1e-6);
            let yp = R::from_f64(yc + e);
            tmp_y[c] = yp;
            let e = yp.to_f64() - yc;
            f.eval(s, tmp_y, tmp_f)?;
            for r in 0..m {
                nw.jac[r * m + c] = (tmp_f[r].to_f64() - f0[r].to_f64()) / e;
            }
        }
    }
    let _ = n;
    if nw.jac.iter().any(|v| !v.is_finite()) {
        return Err(Error::new(Code::NonFinite, format!("the Jacobian is not finite at t = {}", f.dir * s)));
    }
    nw.jac_valid = true;
    nw.jac_current = true;
    nw.lu_hg = f64::NAN;
    Ok(())
}

/// Solves Z = S + hg·f̃(s, Z) from the guess in z; on success fz holds f̃ at the last iterate and
/// the result is the worst contraction rate seen. None: diverged or too slow.
#[allow(clippy::too_many_arguments)]
fn newton_stage<R: Real>(f: &mut Directed<R>, s: f64, hg: f64, sv: &[R], z: &mut [R], fz: &mut [R], r: &mut [f64], yref: &[R], nw: &mut Newton, o: &Options, stats: &mut Stats) -> Result<Option<f64>> {
    let n = z.len();
    let m = nw.m;
    let mut prev = 0.0f64;
    let mut worst = 0.0f64;
    let mut eta = powf64(nw.eta.max(unit_roundoff::<R>()), 0.8);
    for it in 0..MAX_NEWTON {
        f.eval(s, z, fz)?;
        stats.newton += 1;
        for i in 0..n {
            r[i] = sv[i].to_f64() + hg * fz[i].to_f64() - z[i].to_f64();
        }
        lu_solve(&nw.lu, m, &nw.piv, &mut r[..m]);
        let mut sum = 0.0;
        for i in 0..n {
            z[i] += R::from_f64(r[i]);
            // floored at a few ulps of Z: below that the iteration only sees rounding (float32)
            let mag = yref[i].abs().to_f64().max(z[i].abs().to_f64());
            let sc = atol_at(&o.atol, i) + o.rtol * mag + 16.0 * unit_roundoff::<R>() * mag;
            let q = r[i] / sc;
            sum += q * q;
        }
        let norm = (sum / n as f64).sqrt();
        if !norm.is_finite() {
            return Ok(None);
        }
        if it > 0 {
            let theta = norm / prev;
            if theta >= 0.99 {
                return Ok(None);
            }
            worst = worst.max(theta);
            eta = theta / (1.0 - theta);
        }
        if norm == 0.0 || eta * norm <= KAPPA {
            nw.eta = eta;
            return Ok(Some(worst));
        }
        prev = norm;
    }
    Ok(None)
}

/// Dense output of the step [s0, s1] at s_out: the method's Hermite cubic through (y0, k0, y1,
/// f̃(s1, y1)); f_end is evaluated once per step, on demand.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hermite_out<R: Real>(f: &mut Directed<R>, s0: f64, s1: f64, s_out: f64, y0: &[R], y1: &[R], k0: &[R], f_end: &mut [R], f_end_valid: &mut bool, dst: &mut [R]) -> Result<()> {
    let h = s1 - s0;
    let iw = interp_weights(&KVAERNO5, (s_out - s0) / h);
    if !*f_end_valid {
        f.eval(s1, y1, f_end)?;
        *f_end_valid = true;
    }
    let hr = R::from_f64(h);
    let (a0, a1, c0, c1) = (R::from_f64(iw.y0), R::from_f64(iw.y1), R::from_f64(iw.k[0]), R::from_f64(iw.f_end));
    for i in 0..dst.len() {
        dst[i] = a0 * y0[i] + a1 * y1[i] + hr * (c0 * k0[i] + c1 * f_end[i]);
    }
    Ok(())
}

/// Grid points strictly inside the span, in internal time, sorted.
pub(crate) fn internal_grid(o: &Options, dir: f64, s0: f64, s_end: f64) -> Vec<f64> {
    let mut grid: Vec<f64> = o.grid_points.iter().map(|t| dir * t).filter(|s| *s > s0 && *s < s_end).collect();
    grid.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
    grid.dedup();
    grid
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
    let tb = &KVAERNO5;
    let st = tb.stages();
    let s_out: Vec<f64> = ts.iter().map(|t| dir * t).collect();
    let s0 = s_out[0];
    let s_end = *s_out.last().unwrap_or(&s0);
    let grid = internal_grid(o, dir, s0, s_end);
    let at = |s: f64| dir * s;
    let m = f.rhs.implicit_dim().unwrap_or(n).min(n);
    let mut nw = Newton::new(m);
    let mut y = y0.to_vec();
    let mut y_prev = y0.to_vec();
    let mut y_new = vec![R::ZERO; n];
    let mut k = vec![vec![R::ZERO; n]; st];
    let mut f_end = vec![R::ZERO; n];
    let mut f_end_valid = false;
    let mut sv = vec![R::ZERO; n];
    let mut z = vec![R::ZERO; n];
    let mut tmp = vec![R::ZERO; n];
    let mut r = vec![0.0f64; n];

    f.eval(s0, &y, &mut k[0])?;
    if !finite_all(&k[0]) {
        return Err(Error::new(Code::NonFinite, format!("the derivative is not finite at t = {}", at(s0))));
    }
    let mut h = match o.first_step {
        Some(h) => h,
        None => {
            let (a, b) = k.split_at_mut(1);
            initial_step(f, s0, y0, &a[0], o, &mut z, &mut b[0])?
        }
    };
    let gamma = KVAERNO5_GAMMA;
    let mut s = s0;
    let mut s_prev = s0;
    let mut k0_valid = true;
    let mut restart = false;
    let mut idx = 1;
    let mut next_grid = 0;
    let mut attempts: u64 = 0;
    let mut last_nonfinite = false;
    let mut prev_ratio = 1.0f64;
    loop {
        while idx < ts.len() && s_out[idx] <= s {
            let dst = &mut out[idx * n..(idx + 1) * n];
            if s_out[idx] == s {
                dst.copy_from_slice(&y);
            } else {
                hermite_out(f, s_prev, s, s_out[idx], &y_prev, &y, &k[0], &mut f_end, &mut f_end_valid, dst)?;
            }
            idx += 1;
        }
        if idx == ts.len() || observer.as_deref().is_some_and(|ob| ob.stop()) {
            break;
        }
        count_attempt(&mut attempts, o.max_steps, at(s))?;
        let mut s_new = s + h;
        let mut on_grid = onto_grid(&grid, &mut next_grid, s, &mut s_new);
        // Steps land on the output times: a cubic Hermite between the ends of a long stiff step
        // misses quasi-steady components (Robertson's y2 by 1e-1 relative), the step ends do not.
        if idx < ts.len() && s_out[idx] < s_new {
            s_new = s_out[idx];
            on_grid = false;
        }
        let h_step = s_new - s;
        if !(s_new > s) || !h_step.is_finite() {
            let code = if last_nonfinite { Code::NonFinite } else { Code::StepUnderflow };
            return Err(Error::new(code, format!("step size underflow at t = {}{}", at(s), if last_nonfinite { " (the solution became non-finite)" } else { "" })));
        }
        if !k0_valid {
            if restart {
                f.eval(next_float(s), &y, &mut k[0])?;
            } else if f_end_valid {
                core::mem::swap(&mut k[0], &mut f_end);
            } else {
                // not k_last: that equals f̃(s, y) only to the Newton tolerance
                f.eval(s, &y, &mut k[0])?;
            }
            k0_valid = true;
            f_end_valid = false;
        }
        if !nw.jac_valid {
            let s_k0 = if restart { next_float(s) } else { s };
            jacobian(f, s_k0, &y, &mut y_new, &mut nw, &mut z, &mut tmp, stats)?;
        }
        let hg = h_step * gamma;
        let mut ok = nw.lu_hg == hg || nw.factor(hg);
        let s_end_eval = if on_grid { prev_float(s_new) } else { s_new };
        let s_k0 = if restart { next_float(s) } else { s };
        let hr = R::from_f64(h_step);
        let mut worst = 0.0f64;
        if ok {
            for i in 1..st {
                stage_state(tb, i, hr, &y, &k[..i], &mut sv);
                let hgr = R::from_f64(hg);
                for q in 0..n {
                    z[q] = sv[q] + hgr * k[i - 1][q];
                }
                let si = stage_time(tb, i, s, h_step, s_k0, s_end_eval);
                match newton_stage(f, si, hg, &sv, &mut z, &mut tmp, &mut r, &y, &mut nw, o, stats)? {
                    Some(th) => {
                        worst = worst.max(th);
                        if R::BYTES == 4 {
                            // (Z − S)/(hγ) carries float32 rounding of y divided by hγ, noise the
                            // error estimate would never get below: evaluate f instead
                            f.eval(si, &z, &mut k[i])?;
                        } else {
                            let inv = 1.0 / hg;
                            for q in 0..n {
                                k[i][q] = R::from_f64((z[q].to_f64() - sv[q].to_f64()) * inv);
                            }
                        }
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        if !ok {
            // Newton failed: first refresh a stale Jacobian, then shrink the step.
            stats.rejected += 1;
            if let Some(obs) = observer.as_deref_mut() {
                obs.rejected(s, s_new, &y)?;
            }
            if nw.jac_current {
                h = h_step * 0.25;
            } else {
                nw.jac_valid = false;
            }
            continue;
        }
        step_end_state(tb, hr, &y, &k, &mut y_new);
        for q in 0..n {
            let mut e = 0.0;
            for (j, &ej) in tb.e.iter().enumerate() {
                if ej != 0.0 {
                    e += ej * k[j][q].to_f64();
                }
            }
            r[q] = h_step * e;
        }
        let mut sum = 0.0;
        for q in 0..n {
            let sc = atol_at(&o.atol, q) + o.rtol * y[q].abs().to_f64().max(y_new[q].abs().to_f64());
            let v = r[q] / sc;
            sum += v * v;
        }
        let ratio = if finite_all(&y_new) { (sum / n as f64).sqrt() } else { f64::NAN };
        if ratio <= 1.0 {
            stats.steps += 1;
            if let Some(obs) = observer.as_deref_mut() {
                obs.accepted(&StepInfo { s0: s, s1: s_new, s_k0, s_last: s_end_eval, y0: &y, y1: &y_new, k: &k })?;
            }
            core::mem::swap(&mut y_prev, &mut y);
            core::mem::swap(&mut y, &mut y_new);
            s_prev = s;
            s = s_new;
            f_end_valid = false;
            k0_valid = false;
            restart = on_grid;
            last_nonfinite = false;
            nw.jac_current = false;
            if worst > SLOW_RATE || restart {
                nw.jac_valid = false;
            }
        } else {
            stats.rejected += 1;
            last_nonfinite = !ratio.is_finite();
            if let Some(obs) = observer.as_deref_mut() {
                obs.rejected(s, s_new, &y)?;
            }
        }
        h = next_step_size(h_step, ratio, prev_ratio, o);
        if ratio <= 1.0 {
            prev_ratio = ratio.max(1e-4);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
