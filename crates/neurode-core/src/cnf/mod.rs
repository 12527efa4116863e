//! Continuous normalizing flows (Chen et al. 2018, Section 4; FFJORD's Hutchinson estimator;
//! RNODE's regularisers).
//!
//! The flow state is one row per sample: `[z (D), l]`, or `[z, l, e_k, e_j]` with regularisers,
//! integrated with
//!   dz/dt = f(t, z),   dl/dt = −tr(∂f/∂z),   de_k/dt = ‖f‖²,   de_j/dt = Σ_k ‖J·v_k‖²
//! (Theorem 1). The trace is `Σ_k v_kᵀ J v_k`: with v_k = e_k (k < D) it is exact and
//! Σ_k ‖J e_k‖² = ‖J‖²_F; with one probe ε (Rademacher or Gaussian, fixed per solve and keyed
//! by (seed, iteration, sample index)) it is Hutchinson's estimate and ‖Jε‖² estimates ‖J‖²_F.
//!
//! [`CnfField`] implements `VjpRhs` over this augmented state, so the adjoint, backprop and
//! checkpoint gradient modes all apply. Its VJP differentiates the trace term too: the arch
//! evaluates f and every J·v_k in one stacked forward-mode sweep and reverses that sweep
//! (second derivatives of the activations included).
//!
//! Log-density: solving `[x, 0]` from t1 back to 0 gives z0 and l(0) = ∫₀^{t1} tr J dt, so
//! log p(x) = log N(z0) − l(0). Sampling solves `[z0, 0]` forward: log q(x) = log N(z0) + l(t1).

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

pub mod closed;
pub mod mlp;
pub mod planar;
pub mod targets;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::grad::{self, GradOptions, Tape, VjpRhs};
use crate::math::Float;
use crate::nn::LayerSpec;
use crate::rng;
use crate::solver::{self, Options, Rhs, Stats};
use crate::tensor::Scalar;
use closed::ClosedTrace;
use mlp::StackedMlp;
use planar::Planar;

/// Random streams: (purpose << 48) | iteration.
pub const PURPOSE_PROBE: u64 = 1;
pub const PURPOSE_BASE: u64 = 2;

pub fn stream(purpose: u64, iteration: u64) -> u64 {
    (purpose << 48) | (iteration & ((1 << 48) - 1))
}

/// How the trace is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trace {
    Exact,
    /// One probe per sample, fixed per solve: ε[b][i] = F(seed, stream, (first_row + b)·D + i).
    Hutchinson { gaussian: bool, seed: u64, stream: u64, first_row: u64 },
}

/// Which columns the state rows carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aug {
    /// `[z]`: the flow only (sampling, trajectories).
    Plain,
    /// `[z, l]`.
    LogDet,
    /// `[z, l, e_kinetic, e_jacobian]`.
    Regularised,
}

impl Aug {
    pub fn width(self, d: usize) -> usize {
        match self {
            Aug::Plain => d,
            Aug::LogDet => d + 1,
            Aug::Regularised => d + 3,
        }
    }
}

pub enum Arch<R: Scalar> {
    Mlp(StackedMlp<R>),
    Planar(Planar<R>),
}

/// A continuous normalizing flow: its field's architecture and parameters, the augmentation and
/// trace mode of the current solve, and buffers sized once per batch size.
pub struct Cnf<R: Scalar> {
    pub arch: Arch<R>,
    pub params: Vec<R>,
    d: usize,
    pub aug: Aug,
    pub trace: Trace,
    batch: usize,
    /// Tangents v_k: K·B × D.
    tang: Vec<R>,
    k: usize,
    z: Vec<R>,
    gz: Vec<R>,
    /// The closed-form exact trace of two-hidden-layer MLP fields (see [`closed`]).
    closed: Option<ClosedTrace<R>>,
    /// Use `closed` when it applies (log-density with the exact trace); off to test against
    /// the stacked tangents.
    pub use_closed: bool,
}

impl<R: Scalar> Cnf<R> {
    /// A flow whose field is a layer stack (dim in = dim out = D).
    pub fn mlp(specs: &[LayerSpec], seed: u64) -> Result<Self> {
        let m = StackedMlp::<R>::new(specs)?;
        let mut params = vec![R::ZERO; m.net.num_params()];
        m.net.init_params(seed, &mut params)?;
        let d = m.dim();
        let offs: Vec<usize> = (0..specs.len()).map(|l| m.net.param_offset(l).unwrap_or(0)).collect();
        let closed = ClosedTrace::new(specs, &offs);
        let mut f = Self::with(Arch::Mlp(m), params, d);
        f.closed = closed;
        Ok(f)
    }

    /// The planar CNF with `units` hidden units and a tanh hypernetwork of t.
    pub fn planar(d: usize, units: usize, hidden: &[usize], seed: u64) -> Result<Self> {
        let p = Planar::<R>::new(d, units, hidden)?;
        let mut params = vec![R::ZERO; p.hyper.num_params()];
        p.hyper.init_params(seed, &mut params)?;
        Ok(Self::with(Arch::Planar(p), params, d))
    }

    fn with(arch: Arch<R>, params: Vec<R>, d: usize) -> Self {
        Cnf { arch, params, d, aug: Aug::LogDet, trace: Trace::Exact, batch: 0, tang: Vec::new(), k: 0, z: Vec::new(), gz: Vec::new(), closed: None, use_closed: true }
    }

    pub fn dim(&self) -> usize {
        self.d
    }

    pub fn width(&self) -> usize {
        self.aug.width(self.d)
    }

    /// Sets what the next solves compute. The probe (if any) is drawn when the batch is seen.
    pub fn configure(&mut self, aug: Aug, trace: Trace) {
        self.aug = aug;
        self.trace = trace;
        self.batch = 0;
    }

    /// Rows of a state; (re)builds the tangents when the batch size changes (once per solve).
    fn rows(&mut self, n: usize) -> Result<usize> {
        let w = self.width();
        if n == 0 || n % w != 0 {
            return Err(Error::invalid(format!("y: length {n} is not a positive multiple of the row width {w}")));
        }
        let b = n / w;
        if b != self.batch {
            let d = self.d;
            self.k = match (self.aug, self.trace) {
                (Aug::Plain, _) => 0,
                (_, Trace::Exact) => d,
                (_, Trace::Hutchinson { .. }) => 1,
            };
            let len = self.k.checked_mul(b).and_then(|v| v.checked_mul(d)).ok_or_else(|| Error::invalid("batch: too large"))?;
            self.tang.clear();
            self.tang.resize(len, R::ZERO);
            match self.trace {
                _ if self.k == 0 => {}
                Trace::Exact => {
                    for k in 0..d {
                        for r in 0..b {
                            self.tang[(k * b + r) * d + k] = R::ONE;
                        }
                    }
                }
                Trace::Hutchinson { gaussian, seed, stream, first_row } => {
                    for r in 0..b {
                        for i in 0..d {
                            let idx = (first_row + r as u64) * d as u64 + i as u64;
                            let v = if gaussian { rng::normal_f64(seed, stream, idx) } else { rng::rademacher(seed, stream, idx) };
                            self.tang[r * d + i] = R::from_f64(v);
                        }
                    }
                }
            }
            self.z.resize(b * d, R::ZERO);
            self.gz.resize(b * d, R::ZERO);
            self.batch = b;
        }
        Ok(b)
    }

    /// Whether this solve takes the closed-form trace path.
    fn closed_applies(&self) -> bool {
        self.use_closed && self.closed.is_some() && self.aug == Aug::LogDet && self.trace == Trace::Exact
    }

    /// The closed-form path: f and the trace of rows of y. Returns the batch size.
    fn closed_forward(&mut self, t: f64, y: &[R]) -> Result<usize> {
        let w = self.width();
        let d = self.d;
        if y.is_empty() || y.len() % w != 0 {
            return Err(Error::invalid(format!("y: length {} is not a positive multiple of the row width {w}", y.len())));
        }
        let b = y.len() / w;
        let Some(c) = self.closed.as_mut() else { return Err(Error::invalid("closed trace: not available")) };
        let z = c.input(b);
        for r in 0..b {
            z[r * d..(r + 1) * d].copy_from_slice(&y[r * w..r * w + d]);
        }
        c.forward(&self.params, t);
        Ok(b)
    }

    fn closed_derivative(&self, b: usize, dy: &mut [R]) {
        let (d, w) = (self.d, self.width());
        if let Some(c) = &self.closed {
            let (f, tr) = (c.f(), c.trace());
            for r in 0..b {
                dy[r * w..r * w + d].copy_from_slice(&f[r * d..(r + 1) * d]);
                dy[r * w + d] = -tr[r];
            }
        }
    }

    /// Forward through the arch: afterwards `out()` is [f; J·v_1; …].
    fn run_forward(&mut self, t: f64, y: &[R]) -> Result<usize> {
        let b = self.rows(y.len())?;
        let (d, w) = (self.d, self.width());
        for r in 0..b {
            self.z[r * d..(r + 1) * d].copy_from_slice(&y[r * w..r * w + d]);
        }
        let unit = self.trace == Trace::Exact;
        match &mut self.arch {
            Arch::Mlp(m) => {
                m.input(&self.z, b, &self.tang, self.k)?;
                m.forward(&self.params, t);
            }
            Arch::Planar(p) => {
                p.input(&self.z, b, &self.tang, self.k, unit)?;
                p.forward(&self.params, t)?;
            }
        }
        Ok(b)
    }

    fn out(&self) -> &[R] {
        match &self.arch {
            Arch::Mlp(m) => m.output(),
            Arch::Planar(p) => p.output(),
        }
    }

    /// The augmented derivative from the arch's output stack.
    fn write_derivative(&self, b: usize, dy: &mut [R]) {
        let (d, w, k) = (self.d, self.width(), self.k);
        let out = self.out();
        for r in 0..b {
            let f = &out[r * d..(r + 1) * d];
            let row = &mut dy[r * w..(r + 1) * w];
            row[..d].copy_from_slice(f);
            if self.aug == Aug::Plain {
                continue;
            }
            let mut tr = R::ZERO;
            let mut fro = R::ZERO;
            for kk in 0..k {
                let jv = &out[((kk + 1) * b + r) * d..((kk + 1) * b + r + 1) * d];
                let v = &self.tang[(kk * b + r) * d..(kk * b + r + 1) * d];
                for i in 0..d {
                    tr += v[i] * jv[i];
                    fro += jv[i] * jv[i];
                }
            }
            row[d] = -tr;
            if self.aug == Aug::Regularised {
                let mut ke = R::ZERO;
                for i in 0..d {
                    ke += f[i] * f[i];
                }
                row[d + 1] = ke;
                row[d + 2] = fro;
            }
        }
    }
}

impl<R: Scalar> Rhs<R> for Cnf<R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        if self.closed_applies() {
            let b = self.closed_forward(t, y)?;
            self.closed_derivative(b, dy);
            return Ok(());
        }
        let b = self.run_forward(t, y)?;
        self.write_derivative(b, dy);
        Ok(())
    }
}

impl<R: Scalar> VjpRhs<R> for Cnf<R> {
    fn num_params(&self) -> usize {
        self.params.len()
    }

    fn param_groups(&self) -> Vec<(usize, usize)> {
        let net = match &self.arch {
            Arch::Mlp(m) => &m.net,
            Arch::Planar(p) => &p.hyper,
        };
        let mut g = Vec::new();
        for (l, s) in net.specs().iter().enumerate() {
            let np = s.num_params().unwrap_or(0);
            if np > 0 {
                g.push((net.param_offset(l).unwrap_or(0), np));
            }
        }
        g
    }

    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        if self.closed_applies() {
            return self.closed_vjp(t, y, a, out_f, out_y, out_p, true);
        }
        let b = self.run_forward(t, y)?;
        let (d, w, k, aug) = (self.d, self.width(), self.k, self.aug);
        if a.len() != y.len() || out_y.len() != y.len() || out_p.len() != self.params.len() {
            return Err(Error::invalid("vjp: buffer lengths do not match the state"));
        }
        if let Some(f) = out_f {
            self.write_derivative(b, f);
        }
        // cotangent of the output stack: f rows get a_z (+ 2 a_k f), J·v_k rows −a_l v_k (+ 2 a_j J·v_k)
        let two = R::from_f64(2.0);
        let mut g = core::mem::take(&mut self.gz);
        let tang = &self.tang;
        let (out, cot) = match &mut self.arch {
            Arch::Mlp(m) => m.out_and_cotangent(),
            Arch::Planar(p) => p.out_and_cotangent(),
        };
        for r in 0..b {
            let ar = &a[r * w..(r + 1) * w];
            let c = &mut cot[r * d..(r + 1) * d];
            c.copy_from_slice(&ar[..d]);
            if aug == Aug::Regularised {
                let f = &out[r * d..(r + 1) * d];
                for i in 0..d {
                    c[i] += two * ar[d + 1] * f[i];
                }
            }
            for kk in 0..k {
                let o = ((kk + 1) * b + r) * d;
                let v = &tang[(kk * b + r) * d..(kk * b + r + 1) * d];
                let c = &mut cot[o..o + d];
                for i in 0..d {
                    c[i] = -ar[d] * v[i];
                }
                if aug == Aug::Regularised {
                    let jv = &out[o..o + d];
                    for i in 0..d {
                        c[i] += two * ar[d + 2] * jv[i];
                    }
                }
            }
        }
        let dt = match &mut self.arch {
            Arch::Mlp(m) => m.backward(&self.params, t, &mut g, out_p),
            Arch::Planar(p) => p.backward(&self.params, t, &mut g, out_p)?,
        };
        for r in 0..b {
            let oy = &mut out_y[r * w..(r + 1) * w];
            oy[..d].copy_from_slice(&g[r * d..(r + 1) * d]);
            oy[d..].iter_mut().for_each(|v| *v = R::ZERO);
        }
        self.gz = g;
        Ok(dt)
    }

    fn vjp_skip_params(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        if self.closed_applies() {
            return self.closed_vjp(t, y, a, out_f, out_y, out_p, false);
        }
        self.vjp(t, y, a, out_f, out_y, out_p)
    }
}

impl<R: Scalar> Cnf<R> {
    /// `params`: also a·∂f/∂θ into out_p (else out_p is scratch).
    fn closed_vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R], params: bool) -> Result<f64> {
        if a.len() != y.len() || out_y.len() != y.len() || out_p.len() != self.params.len() {
            return Err(Error::invalid("vjp: buffer lengths do not match the state"));
        }
        let b = self.closed_forward(t, y)?;
        let (d, w) = (self.d, self.width());
        if let Some(f) = out_f {
            self.closed_derivative(b, f);
        }
        let Some(c) = self.closed.as_mut() else { return Err(Error::invalid("closed trace: not available")) };
        let (af, cr) = c.cotangents();
        for r in 0..b {
            af[r * d..(r + 1) * d].copy_from_slice(&a[r * w..r * w + d]);
            // dl/dt = −tr
            cr[r] = -a[r * w + d];
        }
        let gz = &mut self.gz;
        if gz.len() < b * d {
            gz.resize(b * d, R::ZERO);
        }
        let dt = c.backward(&self.params, t, &mut gz[..b * d], out_p, params);
        for r in 0..b {
            let oy = &mut out_y[r * w..(r + 1) * w];
            oy[..d].copy_from_slice(&gz[r * d..(r + 1) * d]);
            oy[d..].iter_mut().for_each(|v| *v = R::ZERO);
        }
        Ok(dt)
    }
}

/// log N(z; 0, s²I) of one row.
pub fn base_log_density(z: &[f64], s: f64) -> f64 {
    let d = z.len() as f64;
    let mut q = 0.0;
    for &v in z {
        q += (v / s) * (v / s);
    }
    -0.5 * q - d * Float::ln(s) - 0.5 * d * Float::ln(2.0 * core::f64::consts::PI)
}

/// What one training shard reports (means over its rows; `grad` of the mean loss).
#[derive(Clone, Debug, Default)]
pub struct ShardOut {
    pub loss: f64,
    /// Mean negative log-likelihood (fit) or mean log q − log p̃ (fitDensity).
    pub objective: f64,
    pub kinetic: f64,
    pub jacobian: f64,
    pub grad: Vec<f64>,
    pub forward: Stats,
    pub backward: Stats,
}

/// Regulariser weights (RNODE); `None` leaves the extra state columns out.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Regularise {
    pub kinetic: f64,
    pub jacobian: f64,
}

fn aug_for(reg: Option<Regularise>) -> Aug {
    if reg.is_some() { Aug::Regularised } else { Aug::LogDet }
}

fn check_rows(name: &str, len: usize, d: usize) -> Result<usize> {
    if len == 0 || len % d != 0 {
        return Err(Error::invalid(format!("{name}: length {len} is not a positive multiple of dim {d}")));
    }
    Ok(len / d)
}

impl<R: Scalar> Cnf<R> {
    /// Solves the flow from rows `y0` (width = `aug.width(D)`) at ts[0] through `ts`; returns the
    /// states at every time (ts.len() × rows × width) and the statistics.
    pub fn flow(&mut self, aug: Aug, trace: Trace, y0: &[f64], ts: &[f64], o: &Options) -> Result<(Vec<f64>, Stats)> {
        self.configure(aug, trace);
        check_rows("y0", y0.len(), self.width())?;
        if y0.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("x: must be finite"));
        }
        let y: Vec<R> = y0.iter().map(|&v| R::from_f64(v)).collect();
        let mut out = vec![R::ZERO; ts.len() * y.len()];
        let mut st = Stats::default();
        solver::solve(self, &y, ts, o, &mut out, &mut st, None)?;
        Ok((out.iter().map(|v| v.to_f64()).collect(), st))
    }

    /// Maximum likelihood on rows `x` (B × D): mean of −log p(x) (+ regularisers) and its gradient.
    pub fn mle_shard(&mut self, x: &[f64], t1: f64, base_std: f64, trace: Trace, reg: Option<Regularise>, go: &GradOptions) -> Result<ShardOut> {
        let d = self.d;
        let b = check_rows("x", x.len(), d)?;
        let aug = aug_for(reg);
        self.configure(aug, trace);
        let w = self.width();
        let mut y0 = vec![R::ZERO; b * w];
        for r in 0..b {
            for i in 0..d {
                if !x[r * d + i].is_finite() {
                    return Err(Error::invalid("x: must be finite"));
                }
                y0[r * w + i] = R::from_f64(x[r * d + i]);
            }
        }
        let tape = grad::forward(self, &y0, &[t1, 0.0], go)?;
        let fwd = tape.forward_stats;
        let n = b * w;
        let mut cot = vec![R::ZERO; 2 * n];
        let (mut nll, mut ke, mut je) = (0.0, 0.0, 0.0);
        let inv = 1.0 / b as f64;
        let rg = reg.unwrap_or_default();
        let mut zr = vec![0.0; d];
        for r in 0..b {
            let row = &tape.ys[n + r * w..n + (r + 1) * w];
            for i in 0..d {
                zr[i] = row[i].to_f64();
            }
            nll += -base_log_density(&zr, base_std) + row[d].to_f64();
            let c = &mut cot[n + r * w..n + (r + 1) * w];
            for i in 0..d {
                c[i] = R::from_f64(zr[i] / (base_std * base_std) * inv);
            }
            c[d] = R::from_f64(inv);
            if aug == Aug::Regularised {
                // integrated from t1 down to 0, so e(0) = −∫₀^{t1}
                ke -= row[d + 1].to_f64();
                je -= row[d + 2].to_f64();
                c[d + 1] = R::from_f64(-rg.kinetic * inv);
                c[d + 2] = R::from_f64(-rg.jacobian * inv);
            }
        }
        let g = grad::backward(self, tape, &cot)?;
        let (nll, ke, je) = (nll * inv, ke * inv, je * inv);
        Ok(ShardOut { loss: nll + rg.kinetic * ke + rg.jacobian * je, objective: nll, kinetic: ke, jacobian: je, grad: g.params, forward: fwd, backward: g.stats })
    }

    /// Density matching, first half: draws z0 ~ N(0, s²I) for rows first_row.. (keyed by seed and
    /// iteration) and solves forward to t1 keeping a tape. Returns the tape and x = T(z0).
    pub fn kl_forward(&mut self, rows: usize, seed: u64, iteration: u64, first_row: u64, t1: f64, base_std: f64, trace: Trace, reg: Option<Regularise>, go: &GradOptions) -> Result<(Tape<R>, Vec<f64>)> {
        let d = self.d;
        if rows == 0 {
            return Err(Error::invalid("rows: must be >= 1"));
        }
        self.configure(aug_for(reg), trace);
        let w = self.width();
        let mut y0 = vec![R::ZERO; rows * w];
        let st = stream(PURPOSE_BASE, iteration);
        for r in 0..rows {
            for i in 0..d {
                let idx = (first_row + r as u64) * d as u64 + i as u64;
                y0[r * w + i] = R::from_f64(base_std * rng::normal_f64(seed, st, idx));
            }
        }
        let tape = grad::forward(self, &y0, &[0.0, t1], go)?;
        let n = rows * w;
        let mut x = vec![0.0; rows * d];
        for r in 0..rows {
            for i in 0..d {
                x[r * d + i] = tape.ys[n + r * w + i].to_f64();
            }
        }
        Ok((tape, x))
    }

    /// Density matching, second half: with log p̃(x) and ∇log p̃(x) at the tape's end points,
    /// the mean of log q(x) − log p̃(x) (+ regularisers) and its gradient. The flow must be
    /// configured as in `kl_forward` (same trace and regularisers).
    pub fn kl_backward(&mut self, tape: Tape<R>, logp: &[f64], dlogp: &[f64], base_std: f64, trace: Trace, reg: Option<Regularise>) -> Result<ShardOut> {
        let d = self.d;
        let aug = aug_for(reg);
        self.configure(aug, trace);
        let w = self.width();
        let n = tape.ys.len() / 2;
        let rows = n / w;
        if tape.ys.len() != 2 * rows * w || rows == 0 {
            return Err(Error::invalid("tape: not a flow tape of this model"));
        }
        if logp.len() != rows || dlogp.len() != rows * d {
            return Err(Error::invalid(format!("logDensity: expected {rows} values and {} gradient entries", rows * d)));
        }
        if logp.iter().chain(dlogp).any(|v| !v.is_finite()) {
            return Err(Error::invalid("logDensity: returned a non-finite value or gradient"));
        }
        let inv = 1.0 / rows as f64;
        let rg = reg.unwrap_or_default();
        let mut cot = vec![R::ZERO; 2 * n];
        let (mut obj, mut ke, mut je) = (0.0, 0.0, 0.0);
        let mut z0 = vec![0.0; d];
        for r in 0..rows {
            for i in 0..d {
                z0[i] = tape.ys[r * w + i].to_f64();
            }
            let row = &tape.ys[n + r * w..n + (r + 1) * w];
            let logq = base_log_density(&z0, base_std) + row[d].to_f64();
            obj += logq - logp[r];
            let c = &mut cot[n + r * w..n + (r + 1) * w];
            for i in 0..d {
                c[i] = R::from_f64(-dlogp[r * d + i] * inv);
            }
            c[d] = R::from_f64(inv);
            if aug == Aug::Regularised {
                ke += row[d + 1].to_f64();
                je += row[d + 2].to_f64();
                c[d + 1] = R::from_f64(rg.kinetic * inv);
                c[d + 2] = R::from_f64(rg.jacobian * inv);
            }
        }
        let fwd = tape.forward_stats;
        let g = grad::backward(self, tape, &cot)?;
        let (obj, ke, je) = (obj * inv, ke * inv, je * inv);
        Ok(ShardOut { loss: obj + rg.kinetic * ke + rg.jacobian * je, objective: obj, kinetic: ke, jacobian: je, grad: g.params, forward: fwd, backward: g.stats })
    }
}
