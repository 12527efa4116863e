//! The explicit Runge–Kutta integrator: one step loop for every tableau, adaptive step-size
//! control (error norm, I/PI controller, Hairer's initial step), dense output at the requested
//! times, fixed steps, grid points, backward-in-time solves and per-row (independent) batches.
//!
//! Time runs internally in s = dir·t so the loop always moves forward; the field is evaluated
//! at t = dir·s and its derivative scaled by dir (as torchdiffeq does for decreasing `t`).

pub mod adams;
pub mod events;
pub mod linalg;
pub mod stiff;
pub mod tableau;

use crate::error::{Code, Error, Result};
use crate::math;
use crate::real::Real;
pub use tableau::{Interp, Method, Tableau};

/// A right-hand side f(t, y) over a whole state (batch × dim, row-major).
pub trait Rhs<R: Real> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()>;
    /// out = a·∂f/∂y if the field can compute it (rows of the Jacobian for the stiff solver's
    /// Newton iterations); Ok(false) means "not available: use finite differences".
    fn vjp_y(&mut self, _t: f64, _y: &[R], _a: &[R], _out: &mut [R]) -> Result<bool> {
        Ok(false)
    }
    /// The stiff solver's Newton matrix covers only the first `m` components (the others do not
    /// feed back into f, e.g. the adjoint's a_t and a_θ). None = all.
    fn implicit_dim(&self) -> Option<usize> {
        None
    }
    /// `eval` for a caller that never reads dy[m..], where m ≥ `implicit_dim` (those components
    /// neither feed back into f nor enter the error norm, and this stage's value of them is not
    /// part of the solution: the adjoint's a_θ at dopri5's second stage under the seminorm).
    /// The field may skip computing them and write zeros there. Default: `eval`.
    fn eval_head(&mut self, t: f64, y: &[R], dy: &mut [R], _m: usize) -> Result<()> {
        self.eval(t, y, dy)
    }
}

/// One accepted step, in internal time s (t = dir·s): what the gradient modes record.
pub struct StepInfo<'a, R: Real> {
    pub s0: f64,
    pub s1: f64,
    /// Where k0 was evaluated (s0, or just after it when restarting past a grid point).
    pub s_k0: f64,
    /// Where stages with c = 1 were evaluated (s1, or just before it at a grid point).
    pub s_last: f64,
    pub y0: &'a [R],
    pub y1: &'a [R],
    /// Stage derivatives k_j of the internal field dir·f.
    pub k: &'a [Vec<R>],
}

/// Sees every accepted step (used by the gradient modes that store the forward pass).
pub trait StepObserver<R: Real> {
    fn accepted(&mut self, step: &StepInfo<R>) -> Result<()>;
    /// A rejected attempt from (s0, y0) to s1 (step callbacks).
    fn rejected(&mut self, _s0: f64, _s1: f64, _y0: &[R]) -> Result<()> {
        Ok(())
    }
    /// Checked after each accepted step (once its outputs are written): true ends the solve
    /// early (terminal events); outputs not reached yet are left untouched.
    fn stop(&self) -> bool {
        false
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub nfe: u64,
    pub steps: u64,
    pub rejected: u64,
    /// Newton iterations of the implicit methods (kvaerno5, implicit_adams corrector iterations).
    pub newton: u64,
    /// Jacobian evaluations of the stiff solver.
    pub jacobians: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.nfe += o.nfe;
        self.steps += o.steps;
        self.rejected += o.rejected;
        self.newton += o.newton;
        self.jacobians += o.jacobians;
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub method: Method,
    pub rtol: f64,
    /// One value, or one per state component.
    pub atol: Vec<f64>,
    /// Fixed-step methods: the step. Adaptive methods ignore it.
    pub step_size: Option<f64>,
    pub first_step: Option<f64>,
    pub max_steps: u64,
    /// Times the integrator must step onto (sorted or not; those outside the span are ignored).
    pub grid_points: Vec<f64>,
    /// Error norm: RMS over each (start, len) group, maximum over groups (torchdiffeq's mixed
    /// norm; leaving a group out gives a seminorm). Empty = one RMS over the whole state.
    pub norm_groups: Vec<(usize, usize)>,
    pub safety: f64,
    pub ifactor: f64,
    pub dfactor: f64,
    /// PI controller coefficients (diffrax's convention): pcoeff = 0, icoeff = 1 is the I controller.
    pub pcoeff: f64,
    pub icoeff: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            method: Method::Dopri5,
            rtol: 1e-7,
            atol: vec![1e-9],
            step_size: None,
            first_step: None,
            max_steps: 100_000,
            grid_points: Vec::new(),
            norm_groups: Vec::new(),
            safety: 0.9,
            ifactor: 10.0,
            dfactor: 0.2,
            pcoeff: 0.0,
            icoeff: 1.0,
        }
    }
}

pub(crate) fn finite_all<R: Real>(y: &[R]) -> bool {
    y.iter().all(|v| v.is_finite())
}

/// Checks the arguments shared by every solve. `n` = state length.
pub fn validate(n: usize, y0_finite: bool, ts: &[f64], o: &Options) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("y0 must not be empty"));
    }
    if !y0_finite {
        return Err(Error::invalid("y0 must be finite (it contains NaN or Infinity)"));
    }
    if ts.is_empty() {
        return Err(Error::invalid("ts must hold at least one time"));
    }
    if ts.iter().any(|t| !t.is_finite()) {
        return Err(Error::invalid("ts must be finite"));
    }
    if ts.len() > 1 {
        let up = ts[1] > ts[0];
        for w in ts.windows(2) {
            if (up && !(w[1] > w[0])) || (!up && !(w[1] < w[0])) {
                return Err(Error::invalid("ts must be strictly increasing or strictly decreasing"));
            }
        }
    }
    let tb = o.method.tableau();
    if tb.adaptive() {
        if !(o.rtol > 0.0) || !o.rtol.is_finite() {
            return Err(Error::invalid("rtol must be a finite number > 0"));
        }
        if o.atol.len() != 1 && o.atol.len() != n {
            return Err(Error::invalid(format!("atol must be one number or {} numbers (one per component)", n)));
        }
        if o.atol.iter().any(|a| !(*a >= 0.0) || !a.is_finite()) {
            return Err(Error::invalid("atol must be finite and >= 0"));
        }
        if o.atol.iter().all(|a| *a == 0.0) && o.rtol == 0.0 {
            return Err(Error::invalid("atol and rtol cannot both be zero"));
        }
    } else if o.step_size.is_none() && o.grid_points.is_empty() {
        return Err(Error::invalid(format!("stepSize is required for the fixed-step method '{}' (or give gridPoints)", tb.name)));
    }
    if let Some(h) = o.step_size {
        if !(h > 0.0) || !h.is_finite() {
            return Err(Error::invalid("stepSize must be a finite number > 0"));
        }
    }
    if let Some(h) = o.first_step {
        if !(h > 0.0) || !h.is_finite() {
            return Err(Error::invalid("firstStep must be a finite number > 0"));
        }
    }
    if o.max_steps == 0 {
        return Err(Error::invalid("maxSteps must be >= 1"));
    }
    if o.grid_points.iter().any(|t| !t.is_finite()) {
        return Err(Error::invalid("gridPoints must be finite"));
    }
    if o.norm_groups.iter().any(|&(a, l)| l == 0 || a + l > n) {
        return Err(Error::invalid("norm groups out of range"));
    }
    for (v, name) in [(o.safety, "safety"), (o.ifactor, "ifactor"), (o.dfactor, "dfactor")] {
        if !(v > 0.0) || !v.is_finite() {
            return Err(Error::invalid(format!("{} must be a finite number > 0", name)));
        }
    }
    if !o.pcoeff.is_finite() || !o.icoeff.is_finite() || o.pcoeff + o.icoeff <= 0.0 {
        return Err(Error::invalid("pcoeff/icoeff must be finite with pcoeff + icoeff > 0"));
    }
    Ok(())
}

/// Evaluates the user's field in internal time: f̃(s, y) = dir · f(dir · s, y); counts calls.
pub struct Directed<'a, R: Real> {
    pub rhs: &'a mut dyn Rhs<R>,
    pub dir: f64,
    pub nfe: u64,
    /// Components from here on are passive (see `passive_from`); the state length if none.
    pub passive: usize,
}

impl<'a, R: Real> Directed<'a, R> {
    #[inline]
    pub fn eval(&mut self, s: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        self.nfe += 1;
        self.rhs.eval(self.dir * s, y, dy)?;
        if self.dir < 0.0 {
            for v in dy.iter_mut() {
                *v = -*v;
            }
        }
        Ok(())
    }

    /// `eval` whose passive components are not read by the caller.
    #[inline]
    fn eval_head(&mut self, s: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        if self.passive >= y.len() {
            return self.eval(s, y, dy);
        }
        self.nfe += 1;
        self.rhs.eval_head(self.dir * s, y, dy, self.passive)?;
        if self.dir < 0.0 {
            for v in dy.iter_mut() {
                *v = -*v;
            }
        }
        Ok(())
    }
}

/// First index of the passive tail of an explicit RK solve's state: components that do not feed
/// back into f (past `implicit_dim`) and lie outside every norm group, so a stage whose value
/// reaches neither the solution nor the dense output need not compute them. n: none.
fn passive_from<R: Real>(rhs: &dyn Rhs<R>, o: &Options, n: usize) -> usize {
    match (rhs.implicit_dim(), o.norm_groups.is_empty()) {
        (Some(m), false) => o.norm_groups.iter().fold(m, |p, &(a, l)| p.max(a + l)).min(n),
        _ => n,
    }
}

/// Work buffers of one solve, allocated once before the step loop.
struct Work<R: Real> {
    y: Vec<R>,
    y_prev: Vec<R>,
    y_new: Vec<R>,
    k: Vec<Vec<R>>,
    /// f(t1, y1) for the Hermite interpolant of methods without FSAL.
    f_end: Vec<R>,
    f_end_valid: bool,
}

/// Solve one state (all rows share one step size: torchdiffeq's batch semantics).
/// `out` receives ts.len() × y0.len() values, out[0..n] = y0.
pub fn solve<R: Real>(
    rhs: &mut dyn Rhs<R>,
    y0: &[R],
    ts: &[f64],
    o: &Options,
    out: &mut [R],
    stats: &mut Stats,
    observer: Option<&mut dyn StepObserver<R>>,
) -> Result<()> {
    let n = y0.len();
    validate(n, finite_all(y0), ts, o)?;
    if out.len() != ts.len() * n {
        return Err(Error::invalid("output buffer has the wrong length"));
    }
    out[..n].copy_from_slice(y0);
    if ts.len() == 1 {
        return Ok(());
    }
    let dir = if ts[1] > ts[0] { 1.0 } else { -1.0 };
    let passive = if o.method.explicit_rk() { passive_from(rhs, o, n) } else { n };
    let mut f = Directed { rhs, dir, nfe: 0, passive };
    let r = match o.method {
        Method::Kvaerno5 => stiff::integrate(&mut f, y0, ts, o, out, stats, observer),
        Method::ExplicitAdams | Method::ImplicitAdams => adams::integrate(&mut f, y0, ts, o, out, stats, observer),
        _ => integrate(&mut f, y0, ts, o, out, stats, observer),
    };
    stats.nfe += f.nfe;
    r
}

/// Solve each row of a batch as its own problem (step size, status and stats per row).
/// `row_stats` gets one entry per row; the first failing row's error is returned.
pub fn solve_independent<R: Real>(
    rhs: &mut dyn Rhs<R>,
    y0: &[R],
    dim: usize,
    ts: &[f64],
    o: &Options,
    out: &mut [R],
    row_stats: &mut [Stats],
) -> Result<()> {
    let n = y0.len();
    if dim == 0 || n % dim != 0 {
        return Err(Error::invalid(format!("y0 length {} is not a multiple of dim {}", n, dim)));
    }
    let batch = n / dim;
    if row_stats.len() != batch {
        return Err(Error::invalid("row stats buffer has the wrong length"));
    }
    validate(n, finite_all(y0), ts, o)?;
    if out.len() != ts.len() * n {
        return Err(Error::invalid("output buffer has the wrong length"));
    }
    let mut row_opts = o.clone();
    let mut row_out = vec![R::ZERO; ts.len() * dim];
    for b in 0..batch {
        if o.atol.len() == n {
            row_opts.atol = o.atol[b * dim..(b + 1) * dim].to_vec();
        }
        let row = &y0[b * dim..(b + 1) * dim];
        solve(rhs, row, ts, &row_opts, &mut row_out, &mut row_stats[b], None)
            .map_err(|e| Error::new(e.code, format!("row {}: {}", b, e.message)))?;
        for i in 0..ts.len() {
            out[i * n + b * dim..i * n + (b + 1) * dim].copy_from_slice(&row_out[i * dim..(i + 1) * dim]);
        }
    }
    Ok(())
}

/// RMS of q(i) within each norm group, maximum over the groups.
#[inline]
pub(crate) fn mixed_rms(groups: &[(usize, usize)], n: usize, q: impl Fn(usize) -> f64) -> f64 {
    let rms = |a: usize, l: usize| {
        let mut sum = 0.0;
        for i in a..a + l {
            let v = q(i);
            sum += v * v;
        }
        (sum / l as f64).sqrt()
    };
    if groups.is_empty() {
        return rms(0, n);
    }
    let mut m = 0.0f64;
    for &(a, l) in groups {
        let r = rms(a, l);
        if !(r <= m) {
            m = r; // NaN propagates
        }
    }
    m
}

#[inline]
pub(crate) fn atol_at(atol: &[f64], i: usize) -> f64 {
    if atol.len() == 1 { atol[0] } else { atol[i] }
}

pub(crate) fn rms_scaled<R: Real>(v: &[R], y: &[R], o: &Options) -> f64 {
    mixed_rms(&o.norm_groups, v.len(), |i| v[i].to_f64() / (atol_at(&o.atol, i) + y[i].abs().to_f64() * o.rtol))
}

/// Hairer–Nørsett–Wanner II.4 starting step (as torchdiffeq: exponent 1/order).
pub(crate) fn initial_step<R: Real>(f: &mut Directed<R>, s0: f64, y0: &[R], f0: &[R], o: &Options, tmp: &mut [R], f1: &mut [R]) -> Result<f64> {
    let order = o.method.tableau().order as f64;
    let d0 = rms_scaled(y0, y0, o);
    let d1 = rms_scaled(f0, y0, o);
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
    let h0r = R::from_f64(h0);
    for i in 0..y0.len() {
        tmp[i] = y0[i] + h0r * f0[i];
    }
    // f1 only enters a norm: its passive components are never read
    f.eval_head(s0 + h0, tmp, f1)?;
    for i in 0..y0.len() {
        tmp[i] = f1[i] - f0[i];
    }
    let d2 = rms_scaled(tmp, y0, o) / h0;
    if !d2.is_finite() {
        return Ok(h0);
    }
    let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        math::powf64(0.01 / d1.max(d2), 1.0 / order)
    };
    Ok((100.0 * h0).min(h1))
}

/// One Runge–Kutta step from (s, y) with k[0] = f(s, y) already set; fills k[1..] and y_new.
/// Returns the error ratio (RMS of err/tol; 0 for fixed-step methods).
/// `s_end_eval` is where stages with c = 1 are evaluated: s_new, or just before it when s_new is
/// a grid point (a discontinuity: the step must only see the field's left limit).
#[allow(clippy::too_many_arguments)]
fn rk_step<R: Real>(f: &mut Directed<R>, tb: &Tableau, s: f64, h: f64, s_end_eval: f64, w: &mut Work<R>, o: &Options) -> Result<f64> {
    let n = w.y.len();
    let st = tb.stages();
    let hr = R::from_f64(h);
    for i in 1..st {
        // stage state y + h Σ a_ij k_j, written into y_new (reused as scratch)
        let (ks, rest) = w.k.split_at_mut(i);
        stage_state(tb, i, hr, &w.y, ks, &mut w.y_new);
        let si = stage_time(tb, i, s, h, s, s_end_eval);
        if tb.stage_in_output(i) {
            f.eval(si, &w.y_new, &mut rest[0])?;
        } else {
            f.eval_head(si, &w.y_new, &mut rest[0])?;
        }
    }
    if !tb.fsal {
        step_end_state(tb, hr, &w.y, &w.k, &mut w.y_new);
    }
    // For FSAL tableaus the last stage state already is y_new.
    if !tb.adaptive() {
        return Ok(0.0);
    }
    // error estimate h·Σ e_j k_j, written into f_end (free during a step) to norm it below
    let err = &mut w.f_end;
    for m in 0..n {
        let mut e = R::ZERO;
        for (j, &ej) in tb.e.iter().enumerate() {
            if ej != 0.0 {
                e += R::from_f64(ej) * w.k[j][m];
            }
        }
        err[m] = hr * e;
    }
    let (y0, y1, err) = (&w.y, &w.y_new, &w.f_end);
    let ratio = mixed_rms(&o.norm_groups, n, |m| err[m].to_f64() / (atol_at(&o.atol, m) + o.rtol * y0[m].abs().to_f64().max(y1[m].abs().to_f64())));
    if !finite_all(&w.y_new) {
        return Ok(f64::NAN);
    }
    Ok(ratio)
}

/// Stage i's state y0 + h·Σ_j a_ij k_j (j < i). Shared by the step and the gradient passes so
/// that recomputed stages are bit-identical.
#[inline]
pub fn stage_state<R: Real>(tb: &Tableau, i: usize, h: R, y0: &[R], k: &[Vec<R>], out: &mut [R]) {
    out.copy_from_slice(y0);
    for (j, &a) in tb.a[i].iter().enumerate() {
        if a != 0.0 {
            let c = h * R::from_f64(a);
            let kj = &k[j];
            for m in 0..out.len() {
                out[m] += c * kj[m];
            }
        }
    }
}

/// y1 = y0 + h·Σ b_j k_j for methods without FSAL (with FSAL y1 is the last stage's state).
#[inline]
pub fn step_end_state<R: Real>(tb: &Tableau, h: R, y0: &[R], k: &[Vec<R>], out: &mut [R]) {
    out.copy_from_slice(y0);
    for (j, &b) in tb.b.iter().enumerate() {
        if b != 0.0 {
            let c = h * R::from_f64(b);
            for m in 0..out.len() {
                out[m] += c * k[j][m];
            }
        }
    }
}

/// Where stage i is evaluated: k0 at s_k0, stages with c = 1 at s_last, others at s0 + c_i·h.
#[inline]
pub fn stage_time(tb: &Tableau, i: usize, s0: f64, h: f64, s_k0: f64, s_last: f64) -> f64 {
    if i == 0 {
        s_k0
    } else if tb.c[i] == 1.0 {
        s_last
    } else {
        s0 + tb.c[i] * h
    }
}

/// Value of the current step's dense output at internal time s_out ∈ [s0, s1].
fn interpolate<R: Real>(f: &mut Directed<R>, tb: &Tableau, s0: f64, s1: f64, s_out: f64, w: &mut Work<R>, dst: &mut [R]) -> Result<()> {
    let h = s1 - s0;
    let iw = tableau::interp_weights(tb, (s_out - s0) / h);
    if iw.f_end != 0.0 && !w.f_end_valid {
        f.eval(s1, &w.y, &mut w.f_end)?;
        w.f_end_valid = true;
    }
    let hr = R::from_f64(h);
    let (a0, a1) = (R::from_f64(iw.y0), R::from_f64(iw.y1));
    for m in 0..dst.len() {
        let mut acc = R::ZERO;
        for j in 0..tb.stages() {
            if iw.k[j] != 0.0 {
                acc += R::from_f64(iw.k[j]) * w.k[j][m];
            }
        }
        if iw.f_end != 0.0 {
            acc += R::from_f64(iw.f_end) * w.f_end[m];
        }
        dst[m] = a0 * w.y_prev[m] + a1 * w.y[m] + hr * acc;
    }
    Ok(())
}

fn integrate<R: Real>(
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
    let tb = o.method.tableau();
    let st = tb.stages();
    let s_out: Vec<f64> = ts.iter().map(|t| dir * t).collect();
    let s0 = s_out[0];
    let s_end = *s_out.last().unwrap();
    let mut grid: Vec<f64> = o.grid_points.iter().map(|t| dir * t).filter(|s| *s > s0 && *s < s_end).collect();
    grid.sort_by(|a, b| a.partial_cmp(b).unwrap());
    grid.dedup();
    let mut w = Work {
        y: y0.to_vec(),
        y_prev: y0.to_vec(),
        y_new: vec![R::ZERO; n],
        k: vec![vec![R::ZERO; n]; st],
        f_end: vec![R::ZERO; n],
        f_end_valid: false,
    };
    let at = |s: f64| dir * s;

    f.eval(s0, &w.y, &mut w.k[0])?;
    if !finite_all(&w.k[0]) {
        return Err(Error::new(Code::NonFinite, format!("the derivative is not finite at t = {}", at(s0))));
    }
    let adaptive = tb.adaptive();
    let mut h = if adaptive {
        match o.first_step {
            Some(h) => h,
            None => {
                let (a, b) = w.k.split_at_mut(1);
                let mut tmp = vec![R::ZERO; n];
                initial_step(f, s0, y0, &a[0], o, &mut tmp, &mut b[0])?
            }
        }
    } else {
        o.step_size.unwrap_or(f64::INFINITY)
    };
    let mut s = s0;
    let mut s_prev = s0;
    let mut k0_valid = true; // k[0] holds f(s, y)
    let mut restart = false; // the last step ended on a grid point
    let mut idx = 1;
    let mut next_grid = 0;
    let mut attempts: u64 = 0;
    let mut last_reject_nonfinite = false;
    let mut prev_ratio = 1.0f64;
    loop {
        // Emit every output inside the last accepted step [s_prev, s].
        while idx < ts.len() && s_out[idx] <= s {
            let dst = &mut out[idx * n..(idx + 1) * n];
            if s_out[idx] == s {
                dst.copy_from_slice(&w.y);
            } else {
                interpolate(f, tb, s_prev, s, s_out[idx], &mut w, dst)?;
            }
            idx += 1;
        }
        if idx == ts.len() || observer.as_deref().is_some_and(|ob| ob.stop()) {
            break;
        }
        count_attempt(&mut attempts, o.max_steps, at(s))?;
        // Step target: the controller's step, shortened onto a grid point (and, for fixed
        // steps, onto the end of the span so the last step lands on it).
        let mut s_new = s + h;
        let on_grid = onto_grid(&grid, &mut next_grid, s, &mut s_new);
        if !adaptive && s_new > s_end {
            s_new = s_end;
        }
        let h_step = s_new - s;
        if !(s_new > s) || !h_step.is_finite() {
            let code = if last_reject_nonfinite { Code::NonFinite } else { Code::StepUnderflow };
            return Err(Error::new(code, format!("step size underflow at t = {}{}", at(s), if last_reject_nonfinite { " (the solution became non-finite)" } else { "" })));
        }
        if !k0_valid {
            if restart {
                // Past a discontinuity (grid point): start from the field's right limit.
                f.eval(next_float(s), &w.y, &mut w.k[0])?;
            } else if tb.fsal {
                w.k.swap(0, st - 1); // First Same As Last: f(s, y) is the last stage of the previous step
            } else if w.f_end_valid {
                core::mem::swap(&mut w.k[0], &mut w.f_end);
                w.f_end_valid = false;
            } else {
                f.eval(s, &w.y, &mut w.k[0])?;
            }
            k0_valid = true;
        }
        let s_end_eval = if on_grid { prev_float(s_new) } else { s_new };
        let ratio = rk_step(f, tb, s, h_step, s_end_eval, &mut w, o)?;
        let accept = if adaptive { ratio <= 1.0 } else { true };
        if accept {
            if !adaptive && !finite_all(&w.y_new) {
                return Err(Error::new(Code::NonFinite, format!("the solution is not finite at t = {}", at(s_new))));
            }
            stats.steps += 1;
            if let Some(obs) = observer.as_deref_mut() {
                let s_k0 = if restart { next_float(s) } else { s };
                obs.accepted(&StepInfo { s0: s, s1: s_new, s_k0, s_last: s_end_eval, y0: &w.y, y1: &w.y_new, k: &w.k })?;
            }
            core::mem::swap(&mut w.y_prev, &mut w.y);
            core::mem::swap(&mut w.y, &mut w.y_new);
            s_prev = s;
            s = s_new;
            w.f_end_valid = false;
            k0_valid = false;
            last_reject_nonfinite = false;
            restart = on_grid;
        } else {
            stats.rejected += 1;
            last_reject_nonfinite = !ratio.is_finite();
            if let Some(obs) = observer.as_deref_mut() {
                obs.rejected(s, s_new, &w.y)?;
            }
        }
        if adaptive {
            h = next_step_size(h_step, ratio, prev_ratio, o);
            if accept {
                prev_ratio = ratio.max(1e-4);
            }
        }
    }
    Ok(())
}

/// Shortens a step from s to s_new onto the next grid point (skipping those already passed);
/// true when the step now ends on one. Shared by every solver's step loop.
pub(crate) fn onto_grid(grid: &[f64], next: &mut usize, s: f64, s_new: &mut f64) -> bool {
    while *next < grid.len() && grid[*next] <= s {
        *next += 1;
    }
    if *next < grid.len() && grid[*next] <= *s_new {
        *s_new = grid[*next];
        return true;
    }
    false
}

/// Counts one step attempt against maxSteps (t = the time reached, for the error).
pub(crate) fn count_attempt(attempts: &mut u64, max_steps: u64, t: f64) -> Result<()> {
    if *attempts >= max_steps {
        return Err(Error::new(Code::MaxSteps, format!("maxSteps ({}) exceeded at t = {}", max_steps, t)));
    }
    *attempts += 1;
    Ok(())
}

/// The neighbouring doubles of a finite x (toward −∞ / +∞).
pub(crate) fn prev_float(x: f64) -> f64 {
    if x == 0.0 {
        return -f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b - 1 } else { b + 1 })
}

pub(crate) fn next_float(x: f64) -> f64 {
    -prev_float(-x)
}

/// Step-size controller: I (torchdiffeq's) or PI (diffrax's pcoeff/icoeff convention).
pub(crate) fn next_step_size(h: f64, ratio: f64, prev_ratio: f64, o: &Options) -> f64 {
    if !ratio.is_finite() {
        return h * o.dfactor;
    }
    if ratio == 0.0 {
        return h * o.ifactor;
    }
    let order = o.method.tableau().order as f64;
    let dfactor = if ratio < 1.0 { 1.0 } else { o.dfactor };
    let mut factor = o.safety * math::powf64(ratio, -(o.pcoeff + o.icoeff) / order);
    if o.pcoeff != 0.0 && ratio < 1.0 {
        factor *= math::powf64(prev_ratio, o.pcoeff / order);
    }
    h * factor.max(dfactor).min(o.ifactor)
}

/// A right-hand side from a Rust closure (tests, benchmarks and composed models).
pub struct FnRhs<F>(pub F);

impl<R: Real, F: FnMut(f64, &[R], &mut [R])> Rhs<R> for FnRhs<F> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        (self.0)(t, y, dy);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
