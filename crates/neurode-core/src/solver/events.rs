//! Events: functions g_k(t, y_row) whose zero crossings are located on the dense output of each
//! accepted step (Illinois root finding to a time tolerance). Every row of a batch is solved on
//! its own (own step sizes), so a row that meets a terminal event stops and the others go on.
//! Non-terminal events are logged and the solve continues. Two crossings of the same function
//! within one step cancel out and are not seen (as in SciPy's solve_ivp).
//!
//! Direction is along the integration: `Up` fires when g goes from < 0 to ≥ 0 as the solver
//! advances, `Down` from > 0 to ≤ 0. A g that is exactly 0 at the start does not fire there.

use core::cell::RefCell;

use super::tableau::interp_weights;
use super::{solve, validate, Options, Rhs, StepInfo, StepObserver, Stats};
use crate::error::{Code, Error, Result};
use crate::real::Real;

#[derive(Clone, Debug)]
pub enum EventFn {
    /// g = w·y_row + time·t + offset (evaluated in the core).
    Linear { w: Vec<f64>, time: f64, offset: f64 },
    /// Evaluated by `EventCallbacks` (a JavaScript function).
    Callback,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Both,
}

#[derive(Clone, Debug)]
pub struct EventSpec {
    pub func: EventFn,
    pub direction: Direction,
    pub terminal: bool,
}

/// Event functions the core cannot evaluate itself.
pub trait EventCallbacks {
    /// Writes g_k(t, y) for every callback event k into out[k] (other entries untouched).
    fn values(&mut self, t: f64, row: usize, y: &[f64], out: &mut [f64]) -> Result<()>;
    /// ∂g_k/∂y into out_y; returns ∂g_k/∂t.
    fn grad(&mut self, k: usize, t: f64, row: usize, y: &[f64], out_y: &mut [f64]) -> Result<f64>;
}

/// No callbacks (all events linear).
pub struct NoCallbacks;

impl EventCallbacks for NoCallbacks {
    fn values(&mut self, _t: f64, _row: usize, _y: &[f64], _out: &mut [f64]) -> Result<()> {
        Err(Error::invalid("events: a callback event needs a JavaScript function"))
    }
    fn grad(&mut self, _k: usize, _t: f64, _row: usize, _y: &[f64], _out_y: &mut [f64]) -> Result<f64> {
        Err(Error::invalid("events: a callback event needs a JavaScript function"))
    }
}

/// All event values at (t, y).
pub fn event_values(events: &[EventSpec], cb: &mut dyn EventCallbacks, t: f64, row: usize, y: &[f64], out: &mut [f64]) -> Result<()> {
    if events.iter().any(|e| matches!(e.func, EventFn::Callback)) {
        cb.values(t, row, y, out)?;
    }
    for (k, e) in events.iter().enumerate() {
        if let EventFn::Linear { w, time, offset } = &e.func {
            out[k] = w.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() + time * t + offset;
        }
        if !out[k].is_finite() {
            return Err(Error::new(Code::NonFinite, format!("event {} is not finite at t = {}", k, t)));
        }
    }
    Ok(())
}

/// ∂g_k/∂y into out_y, returns ∂g_k/∂t.
pub fn event_grad(events: &[EventSpec], cb: &mut dyn EventCallbacks, k: usize, t: f64, row: usize, y: &[f64], out_y: &mut [f64]) -> Result<f64> {
    match &events[k].func {
        EventFn::Linear { w, time, .. } => {
            out_y.copy_from_slice(w);
            Ok(*time)
        }
        EventFn::Callback => {
            out_y.iter_mut().for_each(|v| *v = 0.0);
            let gt = cb.grad(k, t, row, y, out_y)?;
            if !gt.is_finite() || out_y.iter().any(|v| !v.is_finite()) {
                return Err(Error::new(Code::NonFinite, format!("the gradient of event {} is not finite at t = {}", k, t)));
            }
            Ok(gt)
        }
    }
}

/// One occurrence of an event.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub row: usize,
    pub event: usize,
    pub t: f64,
    pub y: Vec<f64>,
}

/// Per-row outcome: the time and state where the row stopped (a terminal event, or the end of
/// the span) and which event stopped it (None: none did).
#[derive(Clone, Debug)]
pub struct RowOutcome {
    pub t: f64,
    pub y: Vec<f64>,
    pub event: Option<usize>,
}

/// Lets the solver and the event observer share one right-hand side (the observer needs
/// f(t1, y1) for the Hermite dense output of methods without FSAL).
struct SharedRhs<'s, 'a, R: Real>(&'s RefCell<&'a mut dyn Rhs<R>>);

fn busy() -> Error {
    Error::invalid("events: the right-hand side is already in use")
}

impl<'s, 'a, R: Real> Rhs<R> for SharedRhs<'s, 'a, R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        self.0.try_borrow_mut().map_err(|_| busy())?.eval(t, y, dy)
    }
    fn vjp_y(&mut self, t: f64, y: &[R], a: &[R], out: &mut [R]) -> Result<bool> {
        self.0.try_borrow_mut().map_err(|_| busy())?.vjp_y(t, y, a, out)
    }
    fn implicit_dim(&self) -> Option<usize> {
        self.0.try_borrow().ok().and_then(|r| r.implicit_dim())
    }
}

struct Watcher<'s, 'a, 'e, R: Real> {
    rhs: &'s RefCell<&'a mut dyn Rhs<R>>,
    events: &'e [EventSpec],
    cb: &'e mut dyn EventCallbacks,
    o: &'e Options,
    dir: f64,
    row: usize,
    tol: f64,
    g_prev: Vec<f64>,
    g_new: Vec<f64>,
    g_tmp: Vec<f64>,
    ybuf: Vec<f64>,
    yr: Vec<R>,
    f_end: Vec<R>,
    extra_nfe: u64,
    stopped: Option<(f64, usize, Vec<f64>)>,
    log: &'e mut Vec<Occurrence>,
    max_log: usize,
}

impl<'s, 'a, 'e, R: Real> Watcher<'s, 'a, 'e, R> {
    /// Dense output of the step at internal time s into ybuf (f64).
    fn dense(&mut self, st: &StepInfo<R>, s: f64, have_f_end: &mut bool) -> Result<()> {
        let tb = self.o.method.tableau();
        let h = st.s1 - st.s0;
        let iw = interp_weights(tb, (s - st.s0) / h);
        if iw.f_end != 0.0 && !*have_f_end {
            self.extra_nfe += 1;
            let mut r = self.rhs.try_borrow_mut().map_err(|_| busy())?;
            r.eval(self.dir * st.s1, st.y1, &mut self.f_end)?;
            if self.dir < 0.0 {
                self.f_end.iter_mut().for_each(|v| *v = -*v);
            }
            *have_f_end = true;
        }
        for i in 0..self.ybuf.len() {
            let mut acc = 0.0;
            for j in 0..tb.stages() {
                if iw.k[j] != 0.0 {
                    acc += iw.k[j] * st.k[j][i].to_f64();
                }
            }
            if iw.f_end != 0.0 {
                acc += iw.f_end * self.f_end[i].to_f64();
            }
            self.ybuf[i] = iw.y0 * st.y0[i].to_f64() + iw.y1 * st.y1[i].to_f64() + h * acc;
        }
        // round through R so the event state is exactly what a dense output of dtype R gives
        for i in 0..self.ybuf.len() {
            self.yr[i] = R::from_f64(self.ybuf[i]);
            self.ybuf[i] = self.yr[i].to_f64();
        }
        Ok(())
    }

    fn g_at(&mut self, st: &StepInfo<R>, s: f64, k: usize, have_f_end: &mut bool) -> Result<f64> {
        self.dense(st, s, have_f_end)?;
        let t = self.dir * s;
        let ybuf = core::mem::take(&mut self.ybuf);
        let r = event_values(self.events, self.cb, t, self.row, &ybuf, &mut self.g_tmp);
        self.ybuf = ybuf;
        r?;
        Ok(self.g_tmp[k])
    }

    fn fires(&self, k: usize) -> bool {
        let (a, b) = (self.g_prev[k], self.g_new[k]);
        match self.events[k].direction {
            Direction::Up => a < 0.0 && b >= 0.0,
            Direction::Down => a > 0.0 && b <= 0.0,
            Direction::Both => (a < 0.0 && b >= 0.0) || (a > 0.0 && b <= 0.0),
        }
    }

    /// Illinois (modified regula falsi) on [s0, s1] for event k; returns the crossing time.
    fn root(&mut self, st: &StepInfo<R>, k: usize, have_f_end: &mut bool) -> Result<f64> {
        let (mut a, mut b) = (st.s0, st.s1);
        let (mut ga, mut gb) = (self.g_prev[k], self.g_new[k]);
        if gb == 0.0 {
            return Ok(b);
        }
        let tol = self.tol * (1.0 + a.abs().max(b.abs()));
        let mut side = 0i32;
        for _ in 0..200 {
            if (b - a).abs() <= tol {
                break;
            }
            let mut c = b - gb * (b - a) / (gb - ga);
            if !(c > a && c < b) {
                c = 0.5 * (a + b);
            }
            let gc = self.g_at(st, c, k, have_f_end)?;
            if gc == 0.0 {
                return Ok(c);
            }
            if (gc < 0.0) == (gb < 0.0) {
                b = c;
                gb = gc;
                if side == -1 {
                    ga *= 0.5;
                }
                side = -1;
            } else {
                a = c;
                ga = gc;
                if side == 1 {
                    gb *= 0.5;
                }
                side = 1;
            }
        }
        // the end on the far side of the crossing: g has changed sign there
        Ok(b)
    }
}

impl<'s, 'a, 'e, R: Real> StepObserver<R> for Watcher<'s, 'a, 'e, R> {
    fn accepted(&mut self, st: &StepInfo<R>) -> Result<()> {
        if self.stopped.is_some() {
            return Ok(());
        }
        let t1 = self.dir * st.s1;
        for i in 0..self.ybuf.len() {
            self.ybuf[i] = st.y1[i].to_f64();
        }
        let ybuf = core::mem::take(&mut self.ybuf);
        let r = event_values(self.events, self.cb, t1, self.row, &ybuf, &mut self.g_new);
        self.ybuf = ybuf;
        r?;
        let mut have_f_end = false;
        let mut hits: Vec<(f64, usize)> = Vec::new();
        for k in 0..self.events.len() {
            if self.fires(k) {
                let s = self.root(st, k, &mut have_f_end)?;
                hits.push((s, k));
            }
        }
        hits.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(core::cmp::Ordering::Equal).then(x.1.cmp(&y.1)));
        for (s, k) in hits {
            self.dense(st, s, &mut have_f_end)?;
            let t = self.dir * s;
            if self.events[k].terminal {
                self.stopped = Some((t, k, self.ybuf.clone()));
                break;
            }
            if self.log.len() >= self.max_log {
                return Err(Error::invalid(format!("maxEvents: more than {} non-terminal events", self.max_log)));
            }
            self.log.push(Occurrence { row: self.row, event: k, t, y: self.ybuf.clone() });
        }
        for k in 0..self.events.len() {
            // a start exactly on zero takes its sign from the first value after it
            if self.g_new[k] != 0.0 || self.g_prev[k] != 0.0 {
                self.g_prev[k] = self.g_new[k];
            }
        }
        Ok(())
    }
    fn stop(&self) -> bool {
        self.stopped.is_some()
    }
}

/// Settings of an event solve besides the solver options.
pub struct EventOptions<'e> {
    pub events: &'e [EventSpec],
    /// Where to stop if no terminal event happens (None: go on until maxSteps).
    pub t_end: Option<f64>,
    /// +1 or −1: the direction of time when there is no t_end.
    pub dir: f64,
    /// Extra output times strictly between t0 and t_end, in the direction of time.
    pub ts: &'e [f64],
    /// Root-finding tolerance on t (relative to 1 + |t|).
    pub tol: f64,
    pub max_log: usize,
}

/// Validates event specifications for rows of width `dim`.
pub fn validate_events(events: &[EventSpec], dim: usize) -> Result<()> {
    if events.is_empty() {
        return Err(Error::invalid("events must hold at least one event"));
    }
    for (k, e) in events.iter().enumerate() {
        if let EventFn::Linear { w, time, offset } = &e.func {
            if w.len() != dim {
                return Err(Error::invalid(format!("events[{}].linear must hold {} numbers (dim), got {}", k, dim, w.len())));
            }
            if w.iter().any(|v| !v.is_finite()) || !time.is_finite() || !offset.is_finite() {
                return Err(Error::invalid(format!("events[{}]: linear weights, time and offset must be finite", k)));
            }
        }
    }
    Ok(())
}

/// Solves every row of y0 (rows of width dim) from t0 until its first terminal event or t_end.
/// `out_ys` receives (1 + ts.len()) × y0.len() values: y0, then the state at each extra output
/// time (NaN where the row had stopped before it). Returns one outcome per row; `log` collects
/// non-terminal occurrences; `row_stats` one entry per row.
#[allow(clippy::too_many_arguments)]
pub fn solve_events<R: Real>(
    rhs: &mut dyn Rhs<R>,
    y0: &[R],
    dim: usize,
    t0: f64,
    eo: &EventOptions,
    cb: &mut dyn EventCallbacks,
    o: &Options,
    out_ys: &mut [R],
    log: &mut Vec<Occurrence>,
    row_stats: &mut [Stats],
) -> Result<Vec<RowOutcome>> {
    let n = y0.len();
    if dim == 0 || n % dim != 0 {
        return Err(Error::invalid(format!("y0 length {} is not a multiple of dim {}", n, dim)));
    }
    let batch = n / dim;
    validate_events(eo.events, dim)?;
    if !t0.is_finite() {
        return Err(Error::invalid("t0 must be finite"));
    }
    if !(eo.tol > 0.0) || !eo.tol.is_finite() {
        return Err(Error::invalid("eventTol must be a finite number > 0"));
    }
    let dir = match eo.t_end {
        Some(te) => {
            if !te.is_finite() || te == t0 {
                return Err(Error::invalid("tEnd must be finite and differ from t0"));
            }
            if te > t0 { 1.0 } else { -1.0 }
        }
        None => {
            if eo.dir >= 0.0 { 1.0 } else { -1.0 }
        }
    };
    // the span: t0, the extra outputs, the end (far away when none is given)
    let t_far = eo.t_end.unwrap_or(t0 + dir * 1e300);
    let mut ts = Vec::with_capacity(eo.ts.len() + 2);
    ts.push(t0);
    ts.extend_from_slice(eo.ts);
    ts.push(t_far);
    for w in ts.windows(2) {
        if !(dir * (w[1] - w[0]) > 0.0) {
            return Err(Error::invalid("ts must lie strictly between t0 and tEnd, in the direction of time"));
        }
    }
    validate(n, super::finite_all(y0), &ts, o)?;
    if row_stats.len() != batch || out_ys.len() != (1 + eo.ts.len()) * n {
        return Err(Error::invalid("event output buffers have the wrong length"));
    }
    let nt = ts.len();
    let mut row_out = vec![R::ZERO; nt * dim];
    let mut outcomes = Vec::with_capacity(batch);
    let mut row_opts = o.clone();
    let cell: RefCell<&mut dyn Rhs<R>> = RefCell::new(rhs);
    for b in 0..batch {
        if o.atol.len() == n {
            row_opts.atol = o.atol[b * dim..(b + 1) * dim].to_vec();
        }
        let row = &y0[b * dim..(b + 1) * dim];
        let y0f: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
        let m = eo.events.len();
        let mut g0 = vec![0.0; m];
        event_values(eo.events, cb, t0, b, &y0f, &mut g0)?;
        row_out.iter_mut().for_each(|v| *v = R::from_f64(f64::NAN));
        let mut w = Watcher {
            rhs: &cell,
            events: eo.events,
            cb: &mut *cb,
            o: &row_opts,
            dir,
            row: b,
            tol: eo.tol,
            g_prev: g0,
            g_new: vec![0.0; m],
            g_tmp: vec![0.0; m],
            ybuf: vec![0.0; dim],
            yr: vec![R::ZERO; dim],
            f_end: vec![R::ZERO; dim],
            extra_nfe: 0,
            stopped: None,
            log: &mut *log,
            max_log: eo.max_log,
        };
        let mut st = Stats::default();
        let r = solve(&mut SharedRhs(&cell), row, &ts, &row_opts, &mut row_out, &mut st, Some(&mut w));
        st.nfe += w.extra_nfe;
        row_stats[b] = st;
        let stopped = w.stopped.take();
        match (r, stopped) {
            (_, Some((t, k, y))) => {
                // outputs at or after the event time are not part of this row's solution
                for (i, &ti) in ts.iter().enumerate().skip(1) {
                    if dir * (ti - t) >= 0.0 {
                        row_out[i * dim..(i + 1) * dim].iter_mut().for_each(|v| *v = R::from_f64(f64::NAN));
                    }
                }
                outcomes.push(RowOutcome { t, y, event: Some(k) });
            }
            (Ok(()), None) => {
                if eo.t_end.is_none() {
                    return Err(Error::new(Code::MaxSteps, format!("row {}: no terminal event before t = {}", b, t_far)));
                }
                let last = &row_out[(nt - 1) * dim..nt * dim];
                outcomes.push(RowOutcome { t: t_far, y: last.iter().map(|v| v.to_f64()).collect(), event: None });
            }
            (Err(e), None) => return Err(Error::new(e.code, format!("row {}: {}", b, e.message))),
        }
        for i in 0..nt - 1 {
            out_ys[i * n + b * dim..i * n + (b + 1) * dim].copy_from_slice(&row_out[i * dim..(i + 1) * dim]);
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests;
