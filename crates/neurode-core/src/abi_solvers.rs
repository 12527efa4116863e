//! ABI of the solver extensions (issue 10): event solves, the extra statistics of the last
//! solve (Newton iterations, Jacobians) and JavaScript step callbacks.

use std::cell::Cell;

use crate::abi::{decode_options, slice, slice_mut, status, JsRhs, OPT_COUNT};
use crate::error::{Code, Error, Result};
use crate::real::Real;
use crate::solver::events::{self, Direction, EventCallbacks, EventFn, EventOptions, EventSpec};
use crate::solver::{self, Options, Rhs, StepInfo, StepObserver, Stats};
use crate::tensor::Scalar;

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    /// Event callbacks: which = −1 writes every callback event's value g_k(t, y) to out[k];
    /// which = k ≥ 0 writes ∂g_k/∂y to out[0..dim] and ∂g_k/∂t to out[dim]. y is f64.
    fn nd_js_event(t: f64, y: *const f64, dim: u32, row: u32, which: i32, out: *mut f64, nout: u32) -> i32;
    /// Step callback: (t, y (f64), accepted, h). Returns 1 if it threw.
    fn nd_js_step(t: f64, y: *const f64, n: u32, accepted: u32, h: f64) -> i32;
}
#[cfg(not(target_arch = "wasm32"))]
unsafe fn nd_js_event(_t: f64, _y: *const f64, _dim: u32, _row: u32, _which: i32, _out: *mut f64, _nout: u32) -> i32 {
    1
}
#[cfg(not(target_arch = "wasm32"))]
unsafe fn nd_js_step(_t: f64, _y: *const f64, _n: u32, _accepted: u32, _h: f64) -> i32 {
    1
}

thread_local! {
    static LAST_STATS: Cell<Stats> = const { Cell::new(Stats { nfe: 0, steps: 0, rejected: 0, newton: 0, jacobians: 0 }) };
    static ON_STEP: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn set_last_stats(s: Stats) {
    LAST_STATS.with(|c| c.set(s));
}

/// [nfe, steps, rejected, newton, jacobians] of the last odeint / event solve.
#[no_mangle]
pub unsafe extern "C" fn nd_last_stats(out: *mut f64) {
    let s = LAST_STATS.with(|c| c.get());
    slice_mut(out, 5).copy_from_slice(&[s.nfe as f64, s.steps as f64, s.rejected as f64, s.newton as f64, s.jacobians as f64]);
}

/// Turns the JavaScript step callback on (1) or off (0) for the next solves.
#[no_mangle]
pub extern "C" fn nd_set_on_step(on: u32) {
    ON_STEP.with(|c| c.set(on != 0));
}

/// Calls the JavaScript step callback with (t, y, accepted, h) in user time.
pub(crate) struct JsStep {
    dir: f64,
    y: Vec<f64>,
}

impl JsStep {
    fn call<R: Real>(&mut self, s0: f64, s1: f64, y: &[R], accepted: bool) -> Result<()> {
        self.y.clear();
        self.y.extend(y.iter().map(|v| v.to_f64()));
        let threw = unsafe { nd_js_step(self.dir * s0, self.y.as_ptr(), self.y.len() as u32, accepted as u32, self.dir * (s1 - s0)) };
        if threw != 0 {
            return Err(Error::new(Code::CallbackError, "onStep threw"));
        }
        Ok(())
    }
}

impl<R: Real> StepObserver<R> for JsStep {
    fn accepted(&mut self, st: &StepInfo<R>) -> Result<()> {
        self.call(st.s0, st.s1, st.y0, true)
    }
    fn rejected(&mut self, s0: f64, s1: f64, y0: &[R]) -> Result<()> {
        self.call(s0, s1, y0, false)
    }
}

/// `solver::solve` with the JavaScript step callback attached when it is on.
pub(crate) fn solve_observed<R: Real>(rhs: &mut dyn Rhs<R>, y0: &[R], ts: &[f64], o: &Options, out: &mut [R], stats: &mut Stats) -> Result<()> {
    if ON_STEP.with(|c| c.get()) && ts.len() > 1 {
        let mut obs = JsStep { dir: if ts[1] > ts[0] { 1.0 } else { -1.0 }, y: Vec::with_capacity(y0.len()) };
        return solver::solve(rhs, y0, ts, o, out, stats, Some(&mut obs));
    }
    solver::solve(rhs, y0, ts, o, out, stats, None)
}

fn js_step_for(ts: &[f64]) -> Option<JsStep> {
    if ON_STEP.with(|c| c.get()) {
        Some(JsStep { dir: if ts.len() > 1 && ts[1] < ts[0] { -1.0 } else { 1.0 }, y: Vec::new() })
    } else {
        None
    }
}

/// grad::forward with the JavaScript step callback when it is on.
pub(crate) fn grad_forward<R: Real>(f: &mut dyn crate::grad::VjpRhs<R>, y0: &[R], ts: &[f64], o: &crate::grad::GradOptions) -> Result<crate::grad::Tape<R>> {
    let mut js = js_step_for(ts);
    crate::grad::forward_observed(f, y0, ts, o, js.as_mut().map(|j| j as &mut dyn StepObserver<R>))
}

/// grad::backward with the JavaScript step callback when it is on (time runs backward: the
/// callback's dir is the reverse of the forward solve's).
pub(crate) fn grad_backward<R: Real>(f: &mut dyn crate::grad::VjpRhs<R>, tape: crate::grad::Tape<R>, dl: &[R]) -> Result<crate::grad::Grads> {
    let mut js = js_step_for(&tape.times());
    if let Some(j) = js.as_mut() {
        j.dir = if tape.is_adjoint() { -j.dir } else { j.dir };
    }
    crate::grad::backward_observed(f, tape, dl, js.as_mut().map(|j| j as &mut dyn StepObserver<R>))
}

/// JavaScript event functions.
struct JsEvents {
    dim: usize,
    buf: Vec<f64>,
}

impl EventCallbacks for JsEvents {
    fn values(&mut self, t: f64, row: usize, y: &[f64], out: &mut [f64]) -> Result<()> {
        let threw = unsafe { nd_js_event(t, y.as_ptr(), y.len() as u32, row as u32, -1, out.as_mut_ptr(), out.len() as u32) };
        if threw != 0 {
            return Err(Error::new(Code::CallbackError, "an event function threw"));
        }
        Ok(())
    }
    fn grad(&mut self, k: usize, t: f64, row: usize, y: &[f64], out_y: &mut [f64]) -> Result<f64> {
        self.buf.resize(self.dim + 1, 0.0);
        self.buf.iter_mut().for_each(|v| *v = 0.0);
        let threw = unsafe { nd_js_event(t, y.as_ptr(), y.len() as u32, row as u32, k as i32, self.buf.as_mut_ptr(), self.buf.len() as u32) };
        if threw != 0 {
            return Err(Error::new(Code::CallbackError, "an event gradient threw"));
        }
        out_y.copy_from_slice(&self.buf[..self.dim]);
        Ok(self.buf[self.dim])
    }
}

/// Event specifications as TypeScript packs them: per event [kind (0 linear, 1 callback),
/// direction (1 up, −1 down, 0 both), terminal (0/1), time coefficient, offset, w_0..w_dim−1].
pub(crate) fn decode_events(spec: &[f64], nev: usize, dim: usize) -> Result<Vec<EventSpec>> {
    let stride = 5 + dim;
    if spec.len() != nev * stride {
        return Err(Error::invalid("events: packed specification has the wrong length"));
    }
    (0..nev)
        .map(|k| {
            let e = &spec[k * stride..(k + 1) * stride];
            let direction = match e[1] as i32 {
                1 => Direction::Up,
                -1 => Direction::Down,
                0 => Direction::Both,
                _ => return Err(Error::invalid(format!("events[{}].direction must be 'up', 'down' or 'both'", k))),
            };
            let func = match e[0] as i32 {
                0 => EventFn::Linear { w: e[5..].to_vec(), time: e[3], offset: e[4] },
                1 => EventFn::Callback,
                _ => return Err(Error::invalid(format!("events[{}]: unknown kind", k))),
            };
            Ok(EventSpec { func, direction, terminal: e[2] != 0.0 })
        })
        .collect()
}

/// Scalars of an event solve: [t0, tEnd (NaN: none), direction (±1, used without tEnd),
/// eventTol, maxEvents].
const EV_COUNT: usize = 5;

#[allow(clippy::too_many_arguments)]
unsafe fn event_typed<R: Scalar>(
    field: u32,
    o: Options,
    y0: *const u8,
    n: u32,
    dim: u32,
    sc: &[f64],
    ts: &[f64],
    evs: &[EventSpec],
    out_t: *mut f64,
    out_y: *mut f64,
    out_idx: *mut f64,
    out_ys: *mut u8,
    log_out: *mut f64,
    log_count: *mut f64,
    stats: *mut f64,
) -> Result<()> {
    let y0 = slice(y0 as *const R, n);
    let (n, dim) = (n as usize, dim as usize);
    if dim == 0 || n % dim != 0 {
        return Err(Error::invalid(format!("y0 length {} is not a multiple of dim {}", n, dim)));
    }
    let batch = n / dim;
    let max_log = sc[4];
    if !(max_log >= 0.0) || max_log > 1e7 || max_log.fract() != 0.0 {
        return Err(Error::invalid("maxEvents must be a whole number from 0 to 10^7"));
    }
    let eo = EventOptions { events: evs, t_end: if sc[1].is_nan() { None } else { Some(sc[1]) }, dir: sc[2], ts, tol: sc[3], max_log: max_log as usize };
    let out_ys = slice_mut(out_ys as *mut R, (1 + ts.len()) * n);
    let mut log = Vec::new();
    let mut rows = vec![Stats::default(); batch];
    let mut cb = JsEvents { dim, buf: Vec::new() };
    let mut run = |rhs: &mut dyn Rhs<R>| events::solve_events(rhs, y0, dim, sc[0], &eo, &mut cb, &o, out_ys, &mut log, &mut rows);
    let res = if field != 0 {
        crate::field::with_field::<R, _>(field, |f| run(f))
    } else {
        let mut rhs = JsRhs { y: vec![R::ZERO; dim], dy: vec![R::ZERO; dim] };
        run(&mut rhs)
    };
    let total = rows.iter().fold(Stats::default(), |mut a, s| {
        a.add(s);
        a
    });
    set_last_stats(total);
    let outcomes = res?;
    let (ot, oy, oi) = (slice_mut(out_t, batch), slice_mut(out_y, n), slice_mut(out_idx, batch));
    for (b, r) in outcomes.iter().enumerate() {
        ot[b] = r.t;
        oy[b * dim..(b + 1) * dim].copy_from_slice(&r.y);
        oi[b] = r.event.map_or(-1.0, |k| k as f64);
    }
    let stride = 3 + dim;
    let lo = slice_mut(log_out, log.len() * stride);
    for (i, e) in log.iter().enumerate() {
        lo[i * stride] = e.row as f64;
        lo[i * stride + 1] = e.event as f64;
        lo[i * stride + 2] = e.t;
        lo[i * stride + 3..(i + 1) * stride].copy_from_slice(&e.y);
    }
    *log_count = log.len() as f64;
    let st = slice_mut(stats, 3 * batch);
    for (b, s) in rows.iter().enumerate() {
        st[3 * b] = s.nfe as f64;
        st[3 * b + 1] = s.steps as f64;
        st[3 * b + 2] = s.rejected as f64;
    }
    Ok(())
}

/// Solves until events (see solver::events). `sc` holds EV_COUNT f64, `ev` nev·(5 + dim) f64.
/// Outputs: out_t (batch), out_y (batch × dim, f64), out_idx (batch; −1 = no terminal event),
/// out_ys ((1 + nts) × n, dtype), log_out (maxEvents × (3 + dim): row, event, t, y), log_count
/// (1), stats (3 per row); the totals with Newton counts via nd_last_stats.
#[no_mangle]
pub unsafe extern "C" fn nd_odeint_event(
    dtype: u32,
    field: u32,
    method: u32,
    y0: *const u8,
    n: u32,
    dim: u32,
    sc: *const f64,
    ts: *const f64,
    nts: u32,
    opts: *const f64,
    atol: *const f64,
    natol: u32,
    grid: *const f64,
    ngrid: u32,
    ev: *const f64,
    nev: u32,
    out_t: *mut f64,
    out_y: *mut f64,
    out_idx: *mut f64,
    out_ys: *mut u8,
    log_out: *mut f64,
    log_count: *mut f64,
    stats: *mut f64,
) -> i32 {
    let r = (|| {
        let (o, _) = decode_options(method, slice(opts, OPT_COUNT as u32), slice(atol, natol), slice(grid, ngrid))?;
        let evs = decode_events(slice(ev, nev.saturating_mul(5 + dim)), nev as usize, dim as usize)?;
        let sc = slice(sc, EV_COUNT as u32);
        let ts = slice(ts, nts);
        match dtype {
            0 => event_typed::<f64>(field, o, y0, n, dim, sc, ts, &evs, out_t, out_y, out_idx, out_ys, log_out, log_count, stats),
            1 => event_typed::<f32>(field, o, y0, n, dim, sc, ts, &evs, out_t, out_y, out_idx, out_ys, log_out, log_count, stats),
            _ => Err(Error::invalid(format!("unknown dtype {}", dtype))),
        }
    })();
    status(r)
}

/// The event time's gradient (implicit function theorem, as torchdiffeq's odeint_event). With
/// t* defined by g(t*, y(t*)) = 0 and a loss L(t*, y*), the cotangent of the solution at the
/// fixed time t* is a = ȳ − c·∂g/∂y with c = (t̄ + ȳ·f*)/(∂g/∂y·f* + ∂g/∂t), f* = f(t*, y*);
/// the backward pass of the solve over [t0, t*] with `a` then gives dL/dy0, dL/dθ and dL/dt0.
pub fn event_cotangent(f: &mut dyn Rhs<f64>, evs: &[EventSpec], cb: &mut dyn EventCallbacks, k: usize, row: usize, t: f64, y: &[f64], dl_dt: f64, dl_dy: &[f64], out_a: &mut [f64]) -> Result<()> {
    let dim = y.len();
    let mut fy = vec![0.0; dim];
    f.eval(t, y, &mut fy)?;
    let mut gy = vec![0.0; dim];
    let gt = events::event_grad(evs, cb, k, t, row, y, &mut gy)?;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let den = dot(&gy, &fy) + gt;
    if !(den != 0.0) || !den.is_finite() {
        return Err(Error::new(Code::NonFinite, format!("event {} has zero time derivative dg/dt = {} at t = {}: its time is not differentiable", k, den, t)));
    }
    let c = (dl_dt + dot(dl_dy, &fy)) / den;
    for i in 0..dim {
        out_a[i] = dl_dy[i] - c * gy[i];
    }
    Ok(())
}

/// Evaluates `event_cotangent` for one row (state of width dim, f64; a core field of dtype f64,
/// or the JavaScript right-hand side for field 0). `ev` packs the events as nd_odeint_event.
#[no_mangle]
pub unsafe extern "C" fn nd_event_cotangent(field: u32, ev: *const f64, nev: u32, dim: u32, k: u32, row: u32, t: f64, y: *const f64, dl_dt: f64, dl_dy: *const f64, out_a: *mut f64) -> i32 {
    let r = (|| {
        let evs = decode_events(slice(ev, nev.saturating_mul(5 + dim)), nev as usize, dim as usize)?;
        if k >= nev {
            return Err(Error::invalid("event index out of range"));
        }
        let (y, dl) = (slice(y, dim), slice(dl_dy, dim));
        let out = slice_mut(out_a, dim as usize);
        let mut cb = JsEvents { dim: dim as usize, buf: Vec::new() };
        if field != 0 {
            crate::field::with_field::<f64, _>(field, |f| event_cotangent(f, &evs, &mut cb, k as usize, row as usize, t, y, dl_dt, dl, out))
        } else {
            let mut rhs = JsRhs { y: vec![0.0; dim as usize], dy: vec![0.0; dim as usize] };
            event_cotangent(&mut rhs, &evs, &mut cb, k as usize, row as usize, t, y, dl_dt, dl, out)
        }
    })();
    status(r)
}
