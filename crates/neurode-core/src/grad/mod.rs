//! Gradients of an ODE solution with respect to y0, the field's parameters θ and the output
//! times, given dL/dy at every output time.
//!
//! - `Adjoint`: Chen et al. 2018, Algorithm 1. The augmented state [z, a, a_t, a_θ] is
//!   integrated backward between consecutive output times (restarting at each, where dL/dy_i is
//!   added). Memory holds only the outputs: it does not grow with the number of steps.
//! - `Backprop`: reverse mode through the discrete forward solve, with the accepted step sizes
//!   held constant (as torchdiffeq's autograd does); stores every step's stages.
//! - `Checkpoint`: the same gradient, storing only each step's start state and recomputing its
//!   stages during the backward pass.
//!
//! Internal time is s = dir·t with the field f̃(s, y) = dir·f(dir·s, y) (see `solver`), so for a
//! cotangent a: a·∂f̃/∂y = dir·(a·∂f/∂y), a·∂f̃/∂θ = dir·(a·∂f/∂θ) and a·∂f̃/∂s = a·∂f/∂t.

use core::cell::RefCell;

use crate::error::{Code, Error, Result};
use crate::real::{same_bits, Real};
use crate::solver::tableau::{interp_weights, Dual, Tableau};
use crate::solver::{self, stage_state, stage_time, step_end_state, Options, Rhs, StepInfo, StepObserver, Stats};

/// A right-hand side that also has vector-Jacobian products.
pub trait VjpRhs<R: Real>: Rhs<R> {
    fn num_params(&self) -> usize;
    /// (start, len) of each parameter tensor: the full adjoint norm takes the RMS of each one
    /// separately (as torchdiffeq's mixed norm does per parameter tensor).
    fn param_groups(&self) -> Vec<(usize, usize)> {
        if self.num_params() == 0 { Vec::new() } else { vec![(0, self.num_params())] }
    }
    /// Overwrites `out_y` with a·∂f/∂y and `out_p` with a·∂f/∂θ (summed over the batch) and
    /// returns a·∂f/∂t. With `out_f`, also writes f(t, y) (one evaluation serves both).
    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64>;
    /// `vjp` for a caller that never reads `out_p` (the adjoint's stages whose a_θ value is not
    /// used, see `Rhs::eval_head`): a field may skip a·∂f/∂θ and leave `out_p` as scratch.
    /// Everything else must be what `vjp` returns, bit for bit. Default: `vjp`.
    fn vjp_skip_params(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        self.vjp(t, y, a, out_f, out_y, out_p)
    }
    /// Length of the evaluation record `eval_rec` writes for a state of length n: what a later
    /// `vjp_rec` at the same point needs to skip the forward pass (a network's activations).
    /// 0 (the default): no records; the discrete modes call `vjp`.
    fn rec_len(&mut self, _n: usize) -> Result<usize> {
        Ok(0)
    }
    /// `eval` that also fills `rec` (`rec_len` elements).
    fn eval_rec(&mut self, t: f64, y: &[R], dy: &mut [R], _rec: &mut [R]) -> Result<()> {
        self.eval(t, y, dy)
    }
    /// `vjp` without out_f from the record `eval_rec` wrote at the same (t, y): same bits.
    fn vjp_rec(&mut self, t: f64, y: &[R], _rec: &[R], a: &[R], out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        self.vjp(t, y, a, None, out_y, out_p)
    }
}

/// Lets a `VjpRhs` be passed where a plain `Rhs` is wanted.
struct AsRhs<'a, R: Real>(&'a mut dyn VjpRhs<R>);

impl<'a, R: Real> Rhs<R> for AsRhs<'a, R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        self.0.eval(t, y, dy)
    }
    fn vjp_y(&mut self, t: f64, y: &[R], a: &[R], out: &mut [R]) -> Result<bool> {
        self.0.vjp_y(t, y, a, out)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Adjoint,
    Backprop,
    Checkpoint,
}

impl Mode {
    /// The mode from its ABI code (TypeScript's GRAD_MODES order: 0 adjoint, 1 backprop,
    /// 2 checkpoint).
    pub fn from_code(c: f64) -> Result<Mode> {
        [Mode::Adjoint, Mode::Backprop, Mode::Checkpoint]
            .into_iter()
            .zip([0.0, 1.0, 2.0])
            .find_map(|(m, k)| (c == k).then_some(m))
            .ok_or_else(|| Error::invalid("grad: must be 'adjoint', 'backprop' or 'checkpoint'"))
    }
}

#[derive(Clone, Debug)]
pub struct GradOptions {
    pub mode: Mode,
    pub forward: Options,
    pub adjoint_rtol: f64,
    pub adjoint_atol: f64,
    /// Leave a_θ and a_t out of the adjoint's error norm (Kidger et al. 2021).
    pub seminorm: bool,
}

/// One accepted step as the tape keeps it.
struct Step<R> {
    s0: f64,
    s1: f64,
    s_k0: f64,
    s_last: f64,
    y0: Vec<R>,
    /// Stage derivatives (backprop only; checkpoint recomputes them).
    k: Vec<Vec<R>>,
    /// Evaluation records of the stages (backprop with a field that keeps them; an empty one:
    /// the backward pass lets `vjp` recompute that stage's forward pass).
    recs: Vec<Vec<R>>,
    /// Stage 0 is the previous step's last stage (FSAL): its record is that one.
    k0_shared: bool,
}

/// What the forward pass leaves for the backward pass.
pub struct Tape<R: Real> {
    mode: Mode,
    opts: GradOptions,
    dir: f64,
    ts: Vec<f64>,
    /// Outputs, ts.len() × n.
    pub ys: Vec<R>,
    n: usize,
    steps: Vec<Step<R>>,
    pub forward_stats: Stats,
    /// Whether `backward` computes dL/dts (the adjoint spends one evaluation per output time on
    /// it); callers that never read it (trajectory fitting) turn it off.
    ts_grad: bool,
}

impl<R: Real> Tape<R> {
    /// Bytes held for the backward pass (outputs + stored steps): a deterministic memory figure.
    pub fn stored_bytes(&self) -> usize {
        let steps: usize = self.steps.iter().map(|s| (s.y0.len() + s.k.iter().chain(&s.recs).map(|v| v.len()).sum::<usize>()) * R::BYTES).sum();
        self.ys.len() * R::BYTES + steps
    }
    pub fn steps_stored(&self) -> usize {
        self.steps.len()
    }
    pub fn num_times(&self) -> usize {
        self.ts.len()
    }
    pub fn times(&self) -> Vec<f64> {
        self.ts.clone()
    }
    pub fn is_adjoint(&self) -> bool {
        self.mode == Mode::Adjoint
    }
    /// `backward` then leaves dL/dts at zero and skips the work only it needs.
    pub fn skip_ts_grad(&mut self) {
        self.ts_grad = false;
    }
}

/// The forward solve's latest evaluations with their records (backprop). The explicit RK loop
/// evaluates an accepted step's stages 1.. right before accepting it, so they are still here
/// then; each is found by its exact (t, state) — a miss only costs a recomputation.
struct RecRing<R> {
    slots: Vec<RecSlot<R>>,
    next: usize,
    rec_len: usize,
}

struct RecSlot<R> {
    t: f64,
    y: Vec<R>,
    rec: Vec<R>,
    live: bool,
}

impl<R: Real> RecRing<R> {
    fn new(count: usize, n: usize, rec_len: usize) -> Self {
        let slots = (0..count).map(|_| RecSlot { t: 0.0, y: vec![R::ZERO; n], rec: vec![R::ZERO; rec_len], live: false }).collect();
        RecRing { slots, next: 0, rec_len }
    }

    /// Moves out the record of the evaluation at (t, y), if still held.
    fn take(&mut self, t: f64, y: &[R]) -> Option<Vec<R>> {
        let m = self.slots.len();
        for back in 1..=m {
            let e = &mut self.slots[(self.next + m - back) % m];
            if e.live && e.t.to_bits() == t.to_bits() && same_bits(&e.y, y) {
                e.live = false;
                return Some(core::mem::replace(&mut e.rec, vec![R::ZERO; self.rec_len]));
            }
        }
        None
    }
}

/// The field as a plain `Rhs` whose evaluations also fill the ring.
struct Recording<'a, R: Real> {
    f: &'a mut dyn VjpRhs<R>,
    ring: &'a RefCell<RecRing<R>>,
}

impl<'a, R: Real> Rhs<R> for Recording<'a, R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        let mut ring = self.ring.borrow_mut();
        let i = ring.next;
        ring.next = (i + 1) % ring.slots.len();
        let e = &mut ring.slots[i];
        e.live = false;
        self.f.eval_rec(t, y, dy, &mut e.rec)?;
        if e.y.len() == y.len() {
            e.t = t;
            e.y.copy_from_slice(y);
            e.live = true;
        }
        Ok(())
    }
    fn vjp_y(&mut self, t: f64, y: &[R], a: &[R], out: &mut [R]) -> Result<bool> {
        self.f.vjp_y(t, y, a, out)
    }
}

struct Recorder<'r, R: Real> {
    keep_stages: bool,
    steps: Vec<Step<R>>,
    /// With records: the ring, the tableau, the direction and a stage-state buffer.
    ring: Option<(&'r RefCell<RecRing<R>>, &'static Tableau, f64, Vec<R>)>,
}

impl<'r, R: Real> StepObserver<R> for Recorder<'r, R> {
    fn accepted(&mut self, st: &StepInfo<R>) -> Result<()> {
        let mut recs = Vec::new();
        let mut k0_shared = false;
        if let Some((ring, tb, dir, ybuf)) = self.ring.as_mut() {
            let mut ring = ring.borrow_mut();
            let ns = tb.stages();
            let h = st.s1 - st.s0;
            // FSAL: stage 0 is the previous step's last stage (same time, same state)
            k0_shared = tb.fsal && self.steps.last().is_some_and(|p| p.s_last == st.s_k0 && p.recs.get(ns - 1).is_some_and(|r| !r.is_empty()));
            for i in 0..ns {
                if i == 0 && k0_shared {
                    recs.push(Vec::new());
                    continue;
                }
                stage_state(tb, i, R::from_f64(h), st.y0, &st.k[..i], ybuf);
                let t = *dir * stage_time(tb, i, st.s0, h, st.s_k0, st.s_last);
                recs.push(ring.take(t, ybuf).unwrap_or_default());
            }
        }
        self.steps.push(Step {
            s0: st.s0,
            s1: st.s1,
            s_k0: st.s_k0,
            s_last: st.s_last,
            y0: st.y0.to_vec(),
            k: if self.keep_stages { st.k.to_vec() } else { Vec::new() },
            recs,
            k0_shared,
        });
        Ok(())
    }
}

/// Solves forward and records what `backward` needs.
pub fn forward<R: Real>(f: &mut dyn VjpRhs<R>, y0: &[R], ts: &[f64], o: &GradOptions) -> Result<Tape<R>> {
    forward_observed(f, y0, ts, o, None)
}

/// Two observers in turn (the tape's recorder and a step callback).
struct Chain<'a, 'b, 'r, R: Real> {
    first: Option<&'a mut Recorder<'r, R>>,
    second: Option<&'b mut dyn StepObserver<R>>,
}

impl<'a, 'b, 'r, R: Real> StepObserver<R> for Chain<'a, 'b, 'r, R> {
    fn accepted(&mut self, st: &StepInfo<R>) -> Result<()> {
        if let Some(o) = self.first.as_deref_mut() {
            o.accepted(st)?;
        }
        if let Some(o) = self.second.as_deref_mut() {
            o.accepted(st)?;
        }
        Ok(())
    }
    fn rejected(&mut self, s0: f64, s1: f64, y0: &[R]) -> Result<()> {
        if let Some(o) = self.second.as_deref_mut() {
            o.rejected(s0, s1, y0)?;
        }
        Ok(())
    }
}

/// `forward` with an extra observer of the forward solve's steps (step callbacks).
pub fn forward_observed<R: Real>(f: &mut dyn VjpRhs<R>, y0: &[R], ts: &[f64], o: &GradOptions, extra: Option<&mut dyn StepObserver<R>>) -> Result<Tape<R>> {
    let n = y0.len();
    let mut ys = vec![R::ZERO; ts.len() * n];
    let mut stats = Stats::default();
    let m = o.forward.method;
    if o.mode != Mode::Adjoint && matches!(m, solver::Method::ExplicitAdams | solver::Method::ImplicitAdams) {
        return Err(Error::invalid("grad: 'backprop' and 'checkpoint' are not available for the Adams methods; use 'adjoint'"));
    }
    // kvaerno5's stages are Newton solutions: checkpoint keeps them too (recomputing them would
    // replay the Newton history), so both discrete modes store the stages.
    let dir = if ts.len() > 1 && ts[1] < ts[0] { -1.0 } else { 1.0 };
    let tb = m.tableau();
    // Backprop through an explicit RK method keeps each stage's evaluation record, so that the
    // backward pass's VJPs skip the forward pass (ring: one rejected attempt's evaluations fit).
    let rec_len = if o.mode == Mode::Backprop && m.explicit_rk() { f.rec_len(n)? } else { 0 };
    let ring = RefCell::new(RecRing::new(if rec_len > 0 { 2 * tb.stages() + 2 } else { 0 }, n, rec_len));
    let mut rec = Recorder {
        keep_stages: o.mode == Mode::Backprop || m == solver::Method::Kvaerno5,
        steps: Vec::new(),
        ring: if rec_len > 0 { Some((&ring, tb, dir, vec![R::ZERO; n])) } else { None },
    };
    let mut chain = Chain { first: if o.mode == Mode::Adjoint { None } else { Some(&mut rec) }, second: extra };
    if rec_len > 0 {
        solver::solve(&mut Recording { f, ring: &ring }, y0, ts, &o.forward, &mut ys, &mut stats, Some(&mut chain))?;
    } else {
        solver::solve(&mut AsRhs(f), y0, ts, &o.forward, &mut ys, &mut stats, Some(&mut chain))?;
    }
    drop(chain);
    Ok(Tape { mode: o.mode, opts: o.clone(), dir, ts: ts.to_vec(), ys, n, steps: rec.steps, forward_stats: stats, ts_grad: true })
}

/// Gradients: dL/dy0, dL/dθ, dL/dts (f64) and the backward pass's statistics.
pub struct Grads {
    pub y0: Vec<f64>,
    pub params: Vec<f64>,
    pub ts: Vec<f64>,
    pub stats: Stats,
}

/// The backward pass. `dl_dys` is ts.len() × n. Consumes the tape.
pub fn backward<R: Real>(f: &mut dyn VjpRhs<R>, tape: Tape<R>, dl_dys: &[R]) -> Result<Grads> {
    backward_observed(f, tape, dl_dys, None)
}

/// `backward` with an observer of the backward pass's steps: for 'adjoint' the steps of the
/// augmented solve (state [z, a, a_t, a_θ]); for backprop/checkpoint each recorded step in
/// reverse, with y0 = dL/dy at the step's start.
pub fn backward_observed<R: Real>(f: &mut dyn VjpRhs<R>, tape: Tape<R>, dl_dys: &[R], extra: Option<&mut dyn StepObserver<R>>) -> Result<Grads> {
    if dl_dys.len() != tape.ys.len() {
        return Err(Error::invalid(format!("dLdys must hold {} numbers (ts.length × state length), got {}", tape.ys.len(), dl_dys.len())));
    }
    if dl_dys.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("dLdys must be finite"));
    }
    let g = match tape.mode {
        Mode::Adjoint => adjoint(f, &tape, dl_dys, extra),
        Mode::Backprop | Mode::Checkpoint => discrete(f, &tape, dl_dys, extra),
    }?;
    // Extreme states can overflow the backward pass without any step failing: never hand out
    // a non-finite gradient silently.
    for (name, v) in [("dL/dy0", &g.y0), ("dL/dθ", &g.params), ("dL/dts", &g.ts)] {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::new(Code::NonFinite, format!("{}[{}] is not finite (the backward pass overflowed)", name, i)));
        }
    }
    Ok(g)
}

/// Calls the user's VJP for the internal field f̃ = dir·f and accumulates its pieces:
/// ȳ += dir·(a·∂f/∂y), θ̄ += dir·(a·∂f/∂θ); returns a·∂f/∂t (= a·∂f̃/∂s).
#[allow(clippy::too_many_arguments)]
fn vjp_acc<R: Real>(f: &mut dyn VjpRhs<R>, dir: f64, s: f64, y: &[R], rec: Option<&[R]>, a: &[R], gy: &mut [R], gp: &mut [f64], tmp_y: &mut [R], tmp_p: &mut [R], nfe: &mut u64) -> Result<f64> {
    *nfe += 1;
    let gt = match rec {
        Some(r) => f.vjp_rec(dir * s, y, r, a, tmp_y, tmp_p)?,
        None => f.vjp(dir * s, y, a, None, tmp_y, tmp_p)?,
    };
    let d = R::from_f64(dir);
    for m in 0..gy.len() {
        gy[m] += d * tmp_y[m];
    }
    for m in 0..gp.len() {
        gp[m] += dir * tmp_p[m].to_f64();
    }
    Ok(gt)
}

fn is_zero<R: Real>(v: &[R]) -> bool {
    v.iter().all(|x| *x == R::ZERO)
}

/// Reverse mode through the recorded steps (backprop and checkpoint).
fn discrete<R: Real>(f: &mut dyn VjpRhs<R>, tape: &Tape<R>, w: &[R], mut extra: Option<&mut dyn StepObserver<R>>) -> Result<Grads> {
    let n = tape.n;
    let p = f.num_params();
    let dir = tape.dir;
    let tb = tape.opts.forward.method.tableau();
    let st = tb.stages();
    let nt = tape.ts.len();
    let s_out: Vec<f64> = tape.ts.iter().map(|t| dir * t).collect();
    let mut nfe = 0u64;
    let mut gt = vec![0.0f64; nt];
    let mut gp = vec![0.0f64; p];
    let mut gy = vec![R::ZERO; n]; // adjoint of the current step's end state
    let mut gy0 = vec![R::ZERO; n];
    let mut kbar = vec![vec![R::ZERO; n]; st];
    let mut kbuf = vec![vec![R::ZERO; n]; st];
    let mut ybuf = vec![R::ZERO; n];
    let mut y1 = vec![R::ZERO; n];
    let mut tmp_y = vec![R::ZERO; n];
    let mut tmp_p = vec![R::ZERO; p];
    let mut f_end = vec![R::ZERO; n];
    let mut fe_bar = vec![R::ZERO; n];
    let mut next_out = nt; // outputs idx < next_out are not yet handled
    let implicit = tape.opts.forward.method == solver::Method::Kvaerno5;
    let mut ift = if implicit { Some(implicit::Ift::new(n)) } else { None };
    // checkpoint: the records of the recomputed stages (one step's worth)
    let crec_len = if tape.mode == Mode::Checkpoint && !implicit { f.rec_len(n)? } else { 0 };
    let mut crec = vec![vec![R::ZERO; crec_len]; if crec_len > 0 { st } else { 0 }];
    for (si, step) in tape.steps.iter().enumerate().rev() {
        let h = step.s1 - step.s0;
        let hr = R::from_f64(h);
        // The step's stages: stored (backprop) or recomputed with the forward's operations.
        let k: &[Vec<R>] = if tape.mode == Mode::Backprop || implicit {
            &step.k
        } else {
            for i in 0..st {
                if i > 0 {
                    let (ks, _) = kbuf.split_at(i);
                    stage_state(tb, i, hr, &step.y0, ks, &mut ybuf);
                } else {
                    ybuf.copy_from_slice(&step.y0);
                }
                nfe += 1;
                let t = dir * stage_time(tb, i, step.s0, h, step.s_k0, step.s_last);
                if crec_len > 0 {
                    f.eval_rec(t, &ybuf, &mut kbuf[i], &mut crec[i])?;
                } else {
                    f.eval(t, &ybuf, &mut kbuf[i])?;
                }
                if dir < 0.0 {
                    for v in kbuf[i].iter_mut() {
                        *v = -*v;
                    }
                }
            }
            &kbuf
        };
        // y1: the next step's start, or the last state (recomputed identically)
        match tape.steps.get(si + 1) {
            Some(next) => y1.copy_from_slice(&next.y0),
            None => {
                if tb.fsal {
                    let (ks, _) = k.split_at(st - 1);
                    stage_state(tb, st - 1, hr, &step.y0, ks, &mut y1);
                } else {
                    step_end_state(tb, hr, &step.y0, k, &mut y1);
                }
            }
        }
        for kb in kbar.iter_mut() {
            kb.iter_mut().for_each(|v| *v = R::ZERO);
        }
        gy0.iter_mut().for_each(|v| *v = R::ZERO);
        fe_bar.iter_mut().for_each(|v| *v = R::ZERO);
        let mut have_f_end = false;
        // Outputs produced by this step: s0 < s_out ≤ s1 (the forward emits after acceptance).
        while next_out > 1 && s_out[next_out - 1] > step.s0 && s_out[next_out - 1] <= step.s1 {
            let i = next_out - 1;
            next_out -= 1;
            let wi = &w[i * n..(i + 1) * n];
            if is_zero(wi) {
                continue;
            }
            let iw = interp_weights(tb, Dual { v: (s_out[i] - step.s0) / h, d: 1.0 });
            if iw.f_end.v != 0.0 || (tape.ts_grad && iw.f_end.d != 0.0) {
                if !have_f_end {
                    nfe += 1;
                    f.eval(dir * step.s1, &y1, &mut f_end)?;
                    if dir < 0.0 {
                        f_end.iter_mut().for_each(|v| *v = -*v);
                    }
                    have_f_end = true;
                }
            }
            // value: ys_i = a0·y0 + a1·y1 + h·Σ c_j k_j + h·e·f_end
            let (a0, a1) = (R::from_f64(iw.y0.v), R::from_f64(iw.y1.v));
            for m in 0..n {
                gy0[m] += a0 * wi[m];
                gy[m] += a1 * wi[m];
            }
            if tape.ts_grad {
                let mut dtheta = 0.0f64;
                for m in 0..n {
                    let mut d = iw.y0.d * step.y0[m].to_f64() + iw.y1.d * y1[m].to_f64();
                    let mut dk = 0.0;
                    for j in 0..st {
                        dk += iw.k[j].d * k[j][m].to_f64();
                    }
                    if have_f_end {
                        dk += iw.f_end.d * f_end[m].to_f64();
                    }
                    d += h * dk;
                    dtheta += wi[m].to_f64() * d;
                }
                // θ = (s_out − s0)/h: moving t_i moves θ; moving t_0 shifts every step (h fixed)
                gt[i] += dir * dtheta / h;
                gt[0] -= dir * dtheta / h;
            }
            for j in 0..st {
                if iw.k[j].v != 0.0 {
                    let c = hr * R::from_f64(iw.k[j].v);
                    for m in 0..n {
                        kbar[j][m] += c * wi[m];
                    }
                }
            }
            if iw.f_end.v != 0.0 {
                let c = hr * R::from_f64(iw.f_end.v);
                for m in 0..n {
                    fe_bar[m] += c * wi[m];
                }
            }
        }
        if !is_zero(&fe_bar) {
            let g = vjp_acc(f, dir, step.s1, &y1, None, &fe_bar, &mut gy, &mut gp, &mut tmp_y, &mut tmp_p, &mut nfe)?;
            gt[0] += dir * g;
        }
        // y1 = y0 + h Σ b_j k_j (FSAL: the last stage's state, with a_last = b)
        for j in 0..st {
            if tb.b[j] != 0.0 {
                let c = hr * R::from_f64(tb.b[j]);
                for m in 0..n {
                    kbar[j][m] += c * gy[m];
                }
            }
        }
        for m in 0..n {
            gy[m] += gy0[m];
        }
        // stages in reverse: k_i = f̃(s_i, Y_i), Y_i = y0 + h Σ_{j<i} a_ij k_j
        for i in (0..st).rev() {
            if is_zero(&kbar[i]) {
                continue;
            }
            if i > 0 {
                stage_state(tb, i, hr, &step.y0, &k[..i], &mut ybuf);
            } else {
                ybuf.copy_from_slice(&step.y0);
            }
            gy0.iter_mut().for_each(|v| *v = R::ZERO);
            let s_i = stage_time(tb, i, step.s0, h, step.s_k0, step.s_last);
            if let (Some(ift), true) = (ift.as_mut(), i > 0) {
                // k_i = f̃(Z_i), Z_i = S_i + hγ k_i: the cotangent reaching S_i is J̃ᵀu with
                // (I − hγ J̃ᵀ) u = k̄_i (implicit function theorem at the converged stage)
                ift.prepare(f, dir, s_i, h, &mut ybuf, &k[i], &mut kbar[i], &mut nfe)?;
            }
            let (kb_head, kb_tail) = kbar.split_at_mut(i);
            // the stage's evaluation record, if one was kept (never for kvaerno5: its stages
            // are differentiated at the converged Newton point above)
            let rec: Option<&[R]> = if crec_len > 0 {
                Some(&crec[i])
            } else if i == 0 && step.k0_shared && si > 0 {
                tape.steps[si - 1].recs.get(st - 1).map(|r| r.as_slice())
            } else {
                step.recs.get(i).filter(|r| !r.is_empty()).map(|r| r.as_slice())
            };
            let g = vjp_acc(f, dir, s_i, &ybuf, rec, &kb_tail[0], &mut gy0, &mut gp, &mut tmp_y, &mut tmp_p, &mut nfe)?;
            gt[0] += dir * g;
            for m in 0..n {
                gy[m] += gy0[m];
            }
            for (j, &a) in tb.a[i].iter().enumerate() {
                if a != 0.0 {
                    let c = hr * R::from_f64(a);
                    for m in 0..n {
                        kb_head[j][m] += c * gy0[m];
                    }
                }
            }
        }
        if let Some(obs) = extra.as_deref_mut() {
            obs.accepted(&StepInfo { s0: step.s0, s1: step.s1, s_k0: step.s_k0, s_last: step.s_last, y0: &gy, y1: &gy, k })?;
        }
    }
    // the output at ts[0] is y0 itself
    for m in 0..n {
        gy[m] += w[m];
    }
    if !tape.ts_grad {
        gt.fill(0.0);
    }
    Ok(Grads { y0: gy.iter().map(|v| v.to_f64()).collect(), params: gp, ts: gt, stats: Stats { nfe, steps: tape.steps.len() as u64, ..Stats::default() } })
}

/// The augmented system of Algorithm 1 over x = [z, a, a_t, a_θ]:
/// z' = f, a' = −a·∂f/∂z, a_t' = −a·∂f/∂t, a_θ' = −a·∂f/∂θ.
struct Augmented<'a, R: Real> {
    f: &'a mut dyn VjpRhs<R>,
    n: usize,
    tmp_y: Vec<R>,
    tmp_p: Vec<R>,
}

impl<'a, R: Real> Augmented<'a, R> {
    /// dx = [f, −a·∂f/∂z, −a·∂f/∂t, −a·∂f/∂θ], the last block zeros when `params` is false.
    fn derivative(&mut self, t: f64, x: &[R], dx: &mut [R], params: bool) -> Result<()> {
        let n = self.n;
        let (z, rest) = x.split_at(n);
        let a = &rest[..n];
        let (dz, drest) = dx.split_at_mut(n);
        let gt = if params {
            self.f.vjp(t, z, a, Some(dz), &mut self.tmp_y, &mut self.tmp_p)?
        } else {
            self.f.vjp_skip_params(t, z, a, Some(dz), &mut self.tmp_y, &mut self.tmp_p)?
        };
        let (da, drest) = drest.split_at_mut(n);
        for m in 0..n {
            da[m] = -self.tmp_y[m];
        }
        drest[0] = -R::from_f64(gt);
        if params {
            for (d, v) in drest[1..].iter_mut().zip(self.tmp_p.iter()) {
                *d = -*v;
            }
        } else {
            drest[1..].iter_mut().for_each(|d| *d = R::ZERO);
        }
        Ok(())
    }
}

impl<'a, R: Real> Rhs<R> for Augmented<'a, R> {
    fn eval(&mut self, t: f64, x: &[R], dx: &mut [R]) -> Result<()> {
        self.derivative(t, x, dx, true)
    }
    /// Past [z, a, a_t] only a_θ remains (it never feeds back): skip a·∂f/∂θ.
    fn eval_head(&mut self, t: f64, x: &[R], dx: &mut [R], m: usize) -> Result<()> {
        self.derivative(t, x, dx, m > 2 * self.n + 1)
    }
    /// a_t and a_θ never feed back: the stiff solver's Newton matrix covers [z, a] only.
    fn implicit_dim(&self) -> Option<usize> {
        Some(2 * self.n)
    }
}

fn adjoint<R: Real>(f: &mut dyn VjpRhs<R>, tape: &Tape<R>, w: &[R], mut extra: Option<&mut dyn StepObserver<R>>) -> Result<Grads> {
    let n = tape.n;
    let p = f.num_params();
    let nt = tape.ts.len();
    let len = 2 * n + 1 + p;
    let mut stats = Stats::default();
    let mut gt = vec![0.0f64; nt];
    let mut x = vec![R::ZERO; len];
    let mut x_out = vec![R::ZERO; 2 * len];
    let mut fy = vec![R::ZERO; n];
    let fo = &tape.opts.forward;
    // torchdiffeq's adjoint norms: max(|a_t|, rms(z), rms(a)) and, unless seminorm, the RMS of
    // every parameter tensor's adjoint.
    let mut groups = vec![(0, n), (n, n), (2 * n, 1)];
    if !tape.opts.seminorm {
        groups.extend(f.param_groups().into_iter().map(|(a, l)| (2 * n + 1 + a, l)));
    }
    let aopts = Options { rtol: tape.opts.adjoint_rtol, atol: vec![tape.opts.adjoint_atol], norm_groups: groups, grid_points: Vec::new(), first_step: None, ..fo.clone() };
    // start at the last output: z = y_N, a = dL/dy_N
    x[..n].copy_from_slice(&tape.ys[(nt - 1) * n..]);
    x[n..2 * n].copy_from_slice(&w[(nt - 1) * n..]);
    let mut aug = Augmented { f, n, tmp_y: vec![R::ZERO; n], tmp_p: vec![R::ZERO; p] };
    for i in (1..nt).rev() {
        // direct effect of moving t_i: dL/dt_i = w_i · f(t_i, y_i)
        let wi = &w[i * n..(i + 1) * n];
        if tape.ts_grad && !is_zero(wi) {
            stats.nfe += 1;
            aug.f.eval(tape.ts[i], &tape.ys[i * n..(i + 1) * n], &mut fy)?;
            let d: f64 = (0..n).map(|m| wi[m].to_f64() * fy[m].to_f64()).sum();
            gt[i] = d;
            x[2 * n] -= R::from_f64(d);
        }
        let mut s = Stats::default();
        solver::solve(&mut aug, &x, &[tape.ts[i], tape.ts[i - 1]], &aopts, &mut x_out, &mut s, match extra {
            Some(ref mut o) => Some(&mut **o as &mut dyn StepObserver<R>),
            None => None,
        })?;
        stats.add(&s);
        x.copy_from_slice(&x_out[len..]);
        // restart from the forward pass's state and add the cotangent of this output
        x[..n].copy_from_slice(&tape.ys[(i - 1) * n..i * n]);
        for m in 0..n {
            x[n + m] += w[(i - 1) * n + m];
        }
    }
    if nt == 1 {
        x[n..2 * n].copy_from_slice(&w[..n]);
    }
    if tape.ts_grad {
        gt[0] = x[2 * n].to_f64();
    }
    Ok(Grads {
        y0: x[n..2 * n].iter().map(|v| v.to_f64()).collect(),
        params: x[2 * n + 1..].iter().map(|v| v.to_f64()).collect(),
        ts: gt,
        stats,
    })
}

pub mod implicit;

#[cfg(test)]
mod tests;
