//! Latent ODE for irregularly sampled time series (Chen et al. 2018, Section 5; the ODE-RNN
//! encoder of Rubanova et al. 2019) and its data: the model's negative ELBO and gradient for one
//! shard of sequences in one call, posterior predictions, the RNN baseline ([`rnn`]) and the
//! bidirectional spirals ([`spirals`]).
//!
//! Model: an encoder runs backward in time over a row's observations and gives q(z₀) =
//! N(μ, σ²) at the model time t₀; z₀ = μ + σ ε (ε from `rng`, keyed by seed, iteration and the
//! row's index in the data set); z(t) solves dz/dt = f(z) for the whole shard as one joint state
//! at the union of the shard's observation times; a decoder maps z(tᵢ) to the observation mean.
//! Loss per row: −log N(x | dec(z), obsStd²) summed over observations + KL(q ‖ N(0, I)),
//! optionally − Σ log λ(z(tᵢ)) + ∫ λ(z) dt (Poisson process of observation times, paper 5.1; the
//! integral rides along as one extra state per row). The shard's loss is the mean over rows.
//!
//! Parameters (one flat vector): encoder GRU | encoder ODE net (odernn) | encoder output layer
//! (H_rnn → [μ, log σ²]) | dynamics | intensity λ (poisson) | decoder.

#![allow(clippy::too_many_arguments, clippy::needless_range_loop, clippy::type_complexity)]

pub mod gru;
pub mod rnn;
pub mod spirals;
#[cfg(test)]
mod tests;

use crate::error::{Code, Error, Result};
use crate::grad::{self, GradOptions, Mode, Tape, VjpRhs};
use crate::math::{Act, Float};
use crate::nn::{mlp, LayerSpec, Net, TimeMode};
use crate::real::Real;
use crate::rng;
use crate::solver::{self, Rhs, Stats};
use crate::tensor::Scalar;
use gru::Gru;

/// Stream offsets of the counter-based generator: ε of training iteration i uses stream
/// `EPS_STREAM + i`, posterior draw s of a prediction `PREDICT_STREAM + s`.
pub const EPS_STREAM: u64 = 1 << 40;
pub const PREDICT_STREAM: u64 = 1 << 41;
/// Streams `SUBSAMPLE_STREAM + i` choose the encoder's observations in iteration i.
pub const SUBSAMPLE_STREAM: u64 = 3 << 40;

/// An encoder mask that keeps k ∈ [min, max] (uniform, at most all, at least one) of each row's
/// `enc_mask` observations, chosen uniformly (partial Fisher–Yates) from (seed, iteration, row
/// id): training on random subsets teaches the encoder sparse inputs (the others are still scored).
pub fn subsample_mask(s: &Series, rows: &[u64], seed: u64, iteration: u64, min: usize, max: usize) -> Result<Vec<u8>> {
    if min == 0 || max < min || rows.len() != s.batch {
        return Err(Error::invalid("subsample: need 1 <= min <= max and one row id per row"));
    }
    let stream = SUBSAMPLE_STREAM.wrapping_add(iteration);
    let mut m = vec![0u8; s.batch * s.slots];
    for b in 0..s.batch {
        let mut list = s.used(b, s.enc_mask);
        let n = list.len() as u64;
        if n == 0 {
            continue;
        }
        let base = rows[b].wrapping_mul(1 << 24);
        let k = (min as u64 + rng::u64_at(seed, stream, base) % (max - min + 1) as u64).min(n);
        for i in 0..k {
            let j = i + rng::u64_at(seed, stream, base.wrapping_add(1 + i)) % (n - i);
            list.swap(i as usize, j as usize);
        }
        for &k in &list[..k as usize] {
            m[b * s.slots + k] = 1;
        }
    }
    Ok(m)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoder {
    /// GRU over the observations, backward in time, with the time gap as an extra input.
    Rnn,
    /// ODE-RNN: the hidden state follows an ODE between observations, GRU update at each.
    OdeRnn,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub obs_dim: usize,
    pub latent_dim: usize,
    pub hidden: usize,
    pub rnn_hidden: usize,
    pub encoder: Encoder,
    pub obs_std: f64,
    pub poisson: bool,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        for (v, name) in [(self.obs_dim, "obsDim"), (self.latent_dim, "latentDim"), (self.hidden, "hidden"), (self.rnn_hidden, "rnnHidden")] {
            if v == 0 || v > 1 << 16 {
                return Err(Error::invalid(format!("{name}: must be a whole number from 1 to 65536")));
            }
        }
        if !(self.obs_std > 0.0) || !self.obs_std.is_finite() {
            return Err(Error::invalid("obsStd: must be a finite number > 0"));
        }
        Ok(())
    }
}

/// A batch of time series: `batch` rows of `slots` time slots; `mask` marks the observations the
/// likelihood scores, `enc_mask` those the encoder sees (each row's used slots must have strictly
/// increasing times).
#[derive(Clone, Copy)]
pub struct Series<'a> {
    pub batch: usize,
    pub slots: usize,
    pub times: &'a [f64],
    pub values: &'a [f64],
    pub mask: &'a [u8],
    pub enc_mask: &'a [u8],
}

impl<'a> Series<'a> {
    pub fn check(&self, obs_dim: usize, t0: f64) -> Result<()> {
        let n = self.batch.checked_mul(self.slots).ok_or_else(|| Error::invalid("data: too large"))?;
        if self.batch == 0 || self.slots == 0 {
            return Err(Error::invalid("data: needs at least one row and one time slot"));
        }
        if self.times.len() != n || self.mask.len() != n || self.enc_mask.len() != n {
            return Err(Error::invalid(format!("data.times: times and masks must hold batch × T = {n} entries")));
        }
        if self.values.len() != n * obs_dim {
            return Err(Error::invalid(format!("data.values: must hold batch × T × obsDim = {} numbers, got {}", n * obs_dim, self.values.len())));
        }
        if !t0.is_finite() {
            return Err(Error::invalid("t0: must be finite"));
        }
        for b in 0..self.batch {
            let mut last = f64::NEG_INFINITY;
            for k in 0..self.slots {
                let i = b * self.slots + k;
                if self.mask[i] == 0 && self.enc_mask[i] == 0 {
                    continue;
                }
                let t = self.times[i];
                if !t.is_finite() {
                    return Err(Error::invalid(format!("data.times: row {b} slot {k} is not finite")));
                }
                if !(t > last) {
                    return Err(Error::invalid(format!("data.times: the observed times of row {b} must be strictly increasing (slot {k})")));
                }
                if t < t0 {
                    return Err(Error::invalid(format!("data.times: row {b} slot {k} is before the model's t0 = {t0}")));
                }
                last = t;
                if self.values[i * obs_dim..(i + 1) * obs_dim].iter().any(|v| !v.is_finite()) {
                    return Err(Error::invalid(format!("data.values: row {b} slot {k} is not finite")));
                }
            }
        }
        Ok(())
    }

    fn used(&self, b: usize, m: &[u8]) -> Vec<usize> {
        (0..self.slots).filter(|&k| m[b * self.slots + k] != 0).collect()
    }
}

/// Sorted distinct times of the slots a mask selects.
fn union_times(s: &Series, m: &[u8]) -> Vec<f64> {
    let mut u: Vec<f64> = (0..s.batch * s.slots).filter(|&i| m[i] != 0).map(|i| s.times[i]).collect();
    u.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
    u.dedup();
    u
}

fn grid_index(grid: &[f64], t: f64) -> usize {
    grid.partition_point(|&g| g < t)
}

/// A network with a slice of parameters, as a vector field (the ODE-RNN's hidden dynamics).
struct NetRhs<'a, R: Scalar> {
    net: &'a Net<R>,
    p: &'a [R],
    ws: Vec<R>,
}

impl<'a, R: Scalar> NetRhs<'a, R> {
    fn rows(&mut self, n: usize) -> Result<usize> {
        let d = self.net.dim_in();
        if n % d != 0 {
            return Err(Error::invalid("state: not a multiple of the field's width"));
        }
        let b = n / d;
        let need = self.net.workspace_len(b);
        if self.ws.len() < need {
            self.ws.resize(need, R::ZERO);
        }
        Ok(b)
    }
}

impl<'a, R: Scalar> Rhs<R> for NetRhs<'a, R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        let b = self.rows(y.len())?;
        self.net.forward(self.p, t, y, b, dy, &mut self.ws)
    }
}

impl<'a, R: Scalar> VjpRhs<R> for NetRhs<'a, R> {
    fn num_params(&self) -> usize {
        self.p.len()
    }
    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        let b = self.rows(y.len())?;
        self.net.vjp(self.p, t, y, b, a, out_f, out_y, out_p, &mut self.ws)
    }
}

/// The latent dynamics over rows of width W = L (or L + 1 with the Poisson intensity's running
/// integral Λ, dΛ/dt = λ(z)). Parameters: dynamics, then λ.
pub struct LatentField<'a, R: Scalar> {
    dynamics: &'a Net<R>,
    lam: Option<&'a Net<R>>,
    p: &'a [R],
    nd: usize,
    l: usize,
    ws: Vec<R>,
    z: Vec<R>,
    dz: Vec<R>,
    lv: Vec<R>,
    az: Vec<R>,
    al: Vec<R>,
    gz: Vec<R>,
    gz2: Vec<R>,
}

impl<'a, R: Scalar> LatentField<'a, R> {
    fn new(dynamics: &'a Net<R>, lam: Option<&'a Net<R>>, p: &'a [R]) -> Self {
        let nd = dynamics.num_params();
        let l = dynamics.dim_in();
        LatentField { dynamics, lam, p, nd, l, ws: Vec::new(), z: Vec::new(), dz: Vec::new(), lv: Vec::new(), az: Vec::new(), al: Vec::new(), gz: Vec::new(), gz2: Vec::new() }
    }

    fn width(&self) -> usize {
        self.l + usize::from(self.lam.is_some())
    }

    /// Rows of a state; sizes the buffers (once per batch size, never again inside a solve).
    fn rows(&mut self, n: usize) -> Result<usize> {
        let w = self.width();
        if n % w != 0 {
            return Err(Error::invalid("state: not a multiple of the latent width"));
        }
        let b = n / w;
        let mut need = self.dynamics.workspace_len(b);
        if let Some(lam) = self.lam {
            need = need.max(lam.workspace_len(b));
            if self.z.len() != b * self.l {
                for v in [&mut self.z, &mut self.dz, &mut self.az, &mut self.gz, &mut self.gz2] {
                    v.resize(b * self.l, R::ZERO);
                }
                self.lv.resize(b, R::ZERO);
                self.al.resize(b, R::ZERO);
            }
        }
        if self.ws.len() < need {
            self.ws.resize(need, R::ZERO);
        }
        Ok(b)
    }

    fn split_rows(l: usize, y: &[R], z: &mut [R], last: &mut [R]) {
        for (b, row) in y.chunks_exact(l + 1).enumerate() {
            z[b * l..(b + 1) * l].copy_from_slice(&row[..l]);
            last[b] = row[l];
        }
    }

    fn join_rows(l: usize, z: &[R], last: &[R], y: &mut [R]) {
        for (b, row) in y.chunks_exact_mut(l + 1).enumerate() {
            row[..l].copy_from_slice(&z[b * l..(b + 1) * l]);
            row[l] = last[b];
        }
    }
}

impl<'a, R: Scalar> Rhs<R> for LatentField<'a, R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        let b = self.rows(y.len())?;
        let (pd, pl) = self.p.split_at(self.nd);
        match self.lam {
            None => self.dynamics.forward(pd, t, y, b, dy, &mut self.ws),
            Some(lam) => {
                Self::split_rows(self.l, y, &mut self.z, &mut self.lv);
                self.dynamics.forward(pd, t, &self.z, b, &mut self.dz, &mut self.ws)?;
                lam.forward(pl, t, &self.z, b, &mut self.lv, &mut self.ws)?;
                Self::join_rows(self.l, &self.dz, &self.lv, dy);
                Ok(())
            }
        }
    }
}

impl<'a, R: Scalar> VjpRhs<R> for LatentField<'a, R> {
    fn num_params(&self) -> usize {
        self.p.len()
    }
    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        let b = self.rows(y.len())?;
        let (pd, pl) = self.p.split_at(self.nd);
        let (od, ol) = out_p.split_at_mut(self.nd);
        match self.lam {
            None => self.dynamics.vjp(pd, t, y, b, a, out_f, out_y, od, &mut self.ws),
            Some(lam) => {
                let l = self.l;
                Self::split_rows(l, y, &mut self.z, &mut self.lv);
                Self::split_rows(l, a, &mut self.az, &mut self.al);
                let want_f = out_f.is_some();
                let dt = self.dynamics.vjp(pd, t, &self.z, b, &self.az, if want_f { Some(&mut self.dz) } else { None }, &mut self.gz, od, &mut self.ws)?;
                let dt2 = lam.vjp(pl, t, &self.z, b, &self.al, if want_f { Some(&mut self.lv) } else { None }, &mut self.gz2, ol, &mut self.ws)?;
                for (g, g2) in self.gz.iter_mut().zip(&self.gz2) {
                    *g += *g2;
                }
                self.al.iter_mut().for_each(|v| *v = R::ZERO);
                Self::join_rows(l, &self.gz, &self.al, out_y);
                if let Some(f) = out_f {
                    Self::join_rows(l, &self.dz, &self.lv, f);
                }
                Ok(dt + dt2)
            }
        }
    }
}

/// One step of the encoder as the backward pass needs it.
enum EncOp<R: Real> {
    /// GRU update of the rows marked active (others keep h): input x, state before.
    Gru { x: Vec<R>, h: Vec<R>, active: Vec<bool> },
    /// The hidden state's ODE over one interval (odernn).
    Ode(Tape<R>),
}

#[derive(Clone, Copy, Debug)]
struct Layout {
    gru: usize,
    enc_ode: usize,
    enc_out: usize,
    dynamics: usize,
    lam: usize,
    dec: usize,
    total: usize,
}

/// Figures of one loss evaluation (means over the shard's rows).
#[derive(Clone, Copy, Debug, Default)]
pub struct ElboStats {
    pub loss: f64,
    pub recon: f64,
    pub kl: f64,
    pub poisson: f64,
    pub nfe_forward: u64,
    pub nfe_backward: u64,
}

pub struct LatentOde<R: Scalar> {
    pub cfg: Config,
    gru: Gru,
    enc_ode: Option<Net<R>>,
    enc_out: Net<R>,
    dynamics: Net<R>,
    lam: Option<Net<R>>,
    dec: Net<R>,
    lay: Layout,
    pub params: Vec<R>,
}

fn net<R: Scalar>(dims: &[usize], act: Act) -> Result<Net<R>> {
    Net::new(&mlp(dims, act, TimeMode::None, false)?)
}

impl<R: Scalar> LatentOde<R> {
    pub fn new(cfg: Config, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let (d, l, h, g) = (cfg.obs_dim, cfg.latent_dim, cfg.hidden, cfg.rnn_hidden);
        let gru_in = if cfg.encoder == Encoder::Rnn { d + 1 } else { d };
        let gru = Gru::new(gru_in, g)?;
        let enc_ode = if cfg.encoder == Encoder::OdeRnn { Some(net(&[g, h, g], Act::Tanh)?) } else { None };
        let enc_out = net(&[g, 2 * l], Act::Identity)?;
        let dynamics = net(&[l, h, h, l], Act::Elu)?;
        let lam = if cfg.poisson {
            let mut specs = mlp(&[l, h, 1], Act::Tanh, TimeMode::None, false)?;
            specs.push(LayerSpec::Act { act: Act::Softplus, dim: 1 });
            Some(Net::new(&specs)?)
        } else {
            None
        };
        let dec = net(&[l, h, d], Act::Relu)?;
        let mut off = 0;
        let mut next = |n: usize| {
            let o = off;
            off += n;
            o
        };
        let lay = Layout {
            gru: next(gru.num_params()),
            enc_ode: next(enc_ode.as_ref().map_or(0, |n| n.num_params())),
            enc_out: next(enc_out.num_params()),
            dynamics: next(dynamics.num_params()),
            lam: next(lam.as_ref().map_or(0, |n| n.num_params())),
            dec: next(dec.num_params()),
            total: 0,
        };
        let lay = Layout { total: lay.dec + dec.num_params(), ..lay };
        let mut params = vec![R::ZERO; lay.total];
        let sub = |k: u64| rng::u64_at(seed, 0x1a7e_0de, k);
        gru.init_params(sub(0), &mut params[lay.gru..lay.enc_ode]);
        if let Some(n) = &enc_ode {
            n.init_params(sub(1), &mut params[lay.enc_ode..lay.enc_out])?;
        }
        enc_out.init_params(sub(2), &mut params[lay.enc_out..lay.dynamics])?;
        dynamics.init_params(sub(3), &mut params[lay.dynamics..lay.lam])?;
        if let Some(n) = &lam {
            n.init_params(sub(4), &mut params[lay.lam..lay.dec])?;
        }
        dec.init_params(sub(5), &mut params[lay.dec..])?;
        Ok(LatentOde { cfg, gru, enc_ode, enc_out, dynamics, lam, dec, lay, params })
    }

    pub fn num_params(&self) -> usize {
        self.lay.total
    }

    /// Parameters of the sub-networks (for tests and the ABI).
    pub fn ranges(&self) -> [(&'static str, usize, usize); 6] {
        let l = &self.lay;
        [("gru", l.gru, l.enc_ode), ("encOde", l.enc_ode, l.enc_out), ("encOut", l.enc_out, l.dynamics), ("dynamics", l.dynamics, l.lam), ("intensity", l.lam, l.dec), ("decoder", l.dec, l.total)]
    }

    fn gru_update(&self, x: &[R], active: &[bool], h: &mut [R], hn: &mut [R], ws: &mut [R]) -> Result<()> {
        let (bn, g) = (active.len(), self.cfg.rnn_hidden);
        self.gru.forward(&self.params[self.lay.gru..self.lay.enc_ode], x, h, bn, hn, ws)?;
        for b in 0..bn {
            if active[b] {
                h[b * g..(b + 1) * g].copy_from_slice(&hn[b * g..(b + 1) * g]);
            }
        }
        Ok(())
    }

    fn enc_field(&self) -> Result<NetRhs<'_, R>> {
        let net = self.enc_ode.as_ref().ok_or_else(|| Error::invalid("encoder: this model has no ODE-RNN encoder"))?;
        Ok(NetRhs { net, p: &self.params[self.lay.enc_ode..self.lay.enc_out], ws: Vec::new() })
    }

    /// Runs the encoder over the rows' `enc_mask` observations, backward in time, from h = 0 and
    /// returns the final hidden state (batch × H_rnn). With `ops`, records what the backward
    /// pass needs (then `go` should store the solves: backprop or checkpoint).
    fn encode(&self, s: &Series, t0: f64, go: &GradOptions, mut ops: Option<&mut Vec<EncOp<R>>>, stats: &mut Stats) -> Result<Vec<R>> {
        let (bn, d, g) = (s.batch, self.cfg.obs_dim, self.cfg.rnn_hidden);
        let mut h = vec![R::ZERO; bn * g];
        let mut hn = vec![R::ZERO; bn * g];
        let mut ws = vec![R::ZERO; self.gru.workspace_len(bn)];
        let lists: Vec<Vec<usize>> = (0..bn).map(|b| s.used(b, s.enc_mask)).collect();
        let di = self.gru.d_in;
        let value = |b: usize, k: usize, c: usize| R::from_f64(s.values[(b * s.slots + k) * d + c]);
        match self.cfg.encoder {
            Encoder::Rnn => {
                // step st sees each row's st-th observation from the end, with the gap to the
                // observation before it (or to t0 for the first)
                let nmax = lists.iter().map(|l| l.len()).max().unwrap_or(0);
                for st in 0..nmax {
                    let mut x = vec![R::ZERO; bn * di];
                    let mut active = vec![false; bn];
                    for b in 0..bn {
                        let lb = &lists[b];
                        if st < lb.len() {
                            let k = lb[lb.len() - 1 - st];
                            let prev = if st + 1 < lb.len() { s.times[b * s.slots + lb[lb.len() - 2 - st]] } else { t0 };
                            for c in 0..d {
                                x[b * di + c] = value(b, k, c);
                            }
                            x[b * di + d] = R::from_f64(s.times[b * s.slots + k] - prev);
                            active[b] = true;
                        }
                    }
                    let before = if ops.is_some() { h.clone() } else { Vec::new() };
                    self.gru_update(&x, &active, &mut h, &mut hn, &mut ws)?;
                    if let Some(o) = ops.as_deref_mut() {
                        o.push(EncOp::Gru { x, h: before, active });
                    }
                }
            }
            Encoder::OdeRnn => {
                let grid = union_times(s, s.enc_mask);
                let mut field = self.enc_field()?;
                let mut left: Vec<usize> = lists.iter().map(|l| l.len()).collect();
                let mut ode = |h: &mut Vec<R>, ta: f64, tb: f64, ops: &mut Option<&mut Vec<EncOp<R>>>, stats: &mut Stats| -> Result<()> {
                    let tape = grad::forward(&mut field, h, &[ta, tb], go)?;
                    stats.add(&tape.forward_stats);
                    h.copy_from_slice(&tape.ys[bn * g..]);
                    if let Some(o) = ops.as_deref_mut() {
                        o.push(EncOp::Ode(tape));
                    }
                    Ok(())
                };
                for j in (0..grid.len()).rev() {
                    if j + 1 < grid.len() {
                        ode(&mut h, grid[j + 1], grid[j], &mut ops, stats)?;
                    }
                    let mut x = vec![R::ZERO; bn * di];
                    let mut active = vec![false; bn];
                    for b in 0..bn {
                        if left[b] > 0 {
                            let k = lists[b][left[b] - 1];
                            if s.times[b * s.slots + k] == grid[j] {
                                for c in 0..d {
                                    x[b * di + c] = value(b, k, c);
                                }
                                active[b] = true;
                                left[b] -= 1;
                            }
                        }
                    }
                    let before = if ops.is_some() { h.clone() } else { Vec::new() };
                    self.gru_update(&x, &active, &mut h, &mut hn, &mut ws)?;
                    if let Some(o) = ops.as_deref_mut() {
                        o.push(EncOp::Gru { x, h: before, active });
                    }
                }
                if let Some(&first) = grid.first() {
                    if first > t0 {
                        ode(&mut h, first, t0, &mut ops, stats)?;
                    }
                }
            }
        }
        Ok(h)
    }

    /// Reverse of `encode`: cotangent `dh` of the final hidden state → parameter gradients
    /// (added to `grad`, f64).
    fn encode_backward(&self, ops: Vec<EncOp<R>>, mut dh: Vec<R>, grad: &mut [f64], stats: &mut Stats) -> Result<()> {
        let g = self.cfg.rnn_hidden;
        let bn = dh.len() / g;
        let p_gru = &self.params[self.lay.gru..self.lay.enc_ode];
        let mut acc = vec![R::ZERO; p_gru.len()];
        let mut ws = vec![R::ZERO; self.gru.workspace_len(bn)];
        let mut gm = vec![R::ZERO; bn * g];
        let mut prev = vec![R::ZERO; bn * g];
        let mut field = if self.enc_ode.is_some() { Some(self.enc_field()?) } else { None };
        for op in ops.into_iter().rev() {
            match op {
                EncOp::Gru { x, h, active } => {
                    gm.copy_from_slice(&dh);
                    for b in 0..bn {
                        if !active[b] {
                            gm[b * g..(b + 1) * g].iter_mut().for_each(|v| *v = R::ZERO);
                        }
                    }
                    self.gru.vjp(p_gru, &x, &h, bn, &gm, None, &mut prev, &mut acc, &mut ws)?;
                    for b in 0..bn {
                        if !active[b] {
                            prev[b * g..(b + 1) * g].copy_from_slice(&dh[b * g..(b + 1) * g]);
                        }
                    }
                    core::mem::swap(&mut dh, &mut prev);
                }
                EncOp::Ode(tape) => {
                    let f = field.as_mut().ok_or_else(|| Error::invalid("encoder: no ODE field"))?;
                    let mut w = vec![R::ZERO; 2 * bn * g];
                    w[bn * g..].copy_from_slice(&dh);
                    let gr = grad::backward(f, tape, &w)?;
                    stats.add(&gr.stats);
                    for (a, v) in dh.iter_mut().zip(&gr.y0) {
                        *a = R::from_f64(*v);
                    }
                    for (a, v) in grad[self.lay.enc_ode..self.lay.enc_out].iter_mut().zip(&gr.params) {
                        *a += *v;
                    }
                }
            }
        }
        for (a, v) in grad[self.lay.gru..self.lay.enc_ode].iter_mut().zip(&acc) {
            *a += v.to_f64();
        }
        Ok(())
    }

    /// q(z₀) parameters: rows of [μ (L), log σ² (L)].
    fn posterior(&self, h: &[R], bn: usize) -> Result<Vec<R>> {
        let mut out = vec![R::ZERO; bn * 2 * self.cfg.latent_dim];
        let mut ws = vec![R::ZERO; self.enc_out.workspace_len(bn)];
        self.enc_out.forward(&self.params[self.lay.enc_out..self.lay.dynamics], 0.0, h, bn, &mut out, &mut ws)?;
        Ok(out)
    }

    /// The shard's mean negative ELBO and its gradient (`grad`, overwritten). `row_ids` are the
    /// rows' indices in the data set (they key ε with `seed` and `iteration`).
    pub fn elbo_grad(&self, s: &Series, t0: f64, row_ids: &[u64], seed: u64, iteration: u64, go: &GradOptions, grad: &mut [f64]) -> Result<ElboStats> {
        let (bn, d, l) = (s.batch, self.cfg.obs_dim, self.cfg.latent_dim);
        s.check(d, t0)?;
        if row_ids.len() != bn {
            return Err(Error::invalid(format!("rows: must hold one index per row ({bn})")));
        }
        if grad.len() != self.lay.total {
            return Err(Error::invalid("grad: wrong length"));
        }
        grad.iter_mut().for_each(|v| *v = 0.0);
        let scale = 1.0 / bn as f64;
        let sr = R::from_f64(scale);
        let mut st_f = Stats::default();
        let mut st_b = Stats::default();
        let mut ops = Vec::new();
        let h = self.encode(s, t0, go, Some(&mut ops), &mut st_f)?;
        let post = self.posterior(&h, bn)?;
        let w = l + usize::from(self.cfg.poisson);
        let mut z0 = vec![R::ZERO; bn * w];
        let mut eps = vec![R::ZERO; bn * l];
        let mut sig = vec![R::ZERO; bn * l];
        let mut kl = 0.0f64;
        for b in 0..bn {
            for j in 0..l {
                let (mu, lv) = (post[b * 2 * l + j], post[b * 2 * l + l + j]);
                let sg = (lv * R::from_f64(0.5)).exp();
                let e = R::from_f64(rng::normal_f64(seed, EPS_STREAM.wrapping_add(iteration), row_ids[b].wrapping_mul(l as u64).wrapping_add(j as u64)));
                eps[b * l + j] = e;
                sig[b * l + j] = sg;
                z0[b * w + j] = mu + sg * e;
                kl += 0.5 * (mu * mu + sg * sg - R::ONE - lv).to_f64();
            }
        }
        // latent trajectory at t0 and the shard's observation times
        let mut ts = vec![t0];
        ts.extend(union_times(s, s.mask).into_iter().filter(|&t| t > t0));
        let p_lat = &self.params[self.lay.dynamics..self.lay.dec];
        let mut field = LatentField::new(&self.dynamics, self.lam.as_ref(), p_lat);
        let tape = grad::forward(&mut field, &z0, &ts, go)?;
        st_f.add(&tape.forward_stats);
        let mut obs: Vec<(usize, usize, usize)> = Vec::new(); // (row, slot, grid index)
        let mut last_j = vec![usize::MAX; bn];
        for b in 0..bn {
            for k in s.used(b, s.mask) {
                let j = grid_index(&ts, s.times[b * s.slots + k]);
                obs.push((b, k, j));
                last_j[b] = j;
            }
        }
        let n = obs.len();
        let mut zc = vec![R::ZERO; n * l];
        for (o, &(b, _, j)) in obs.iter().enumerate() {
            zc[o * l..(o + 1) * l].copy_from_slice(&tape.ys[(j * bn + b) * w..(j * bn + b) * w + l]);
        }
        let mut dys = vec![R::ZERO; tape.ys.len()];
        let mut dzc = vec![R::ZERO; n * l];
        let mut recon = 0.0f64;
        let mut pois = 0.0f64;
        if n > 0 {
            let p_dec = &self.params[self.lay.dec..];
            let mut ws = vec![R::ZERO; self.dec.workspace_len(n).max(self.lam.as_ref().map_or(0, |m| m.workspace_len(n)))];
            let mut xh = vec![R::ZERO; n * d];
            self.dec.forward(p_dec, 0.0, &zc, n, &mut xh, &mut ws)?;
            let sd = self.cfg.obs_std;
            let var = R::from_f64(sd * sd);
            let c0 = Float::ln(sd) + 0.5 * Float::ln(2.0 * core::f64::consts::PI);
            let mut dxh = vec![R::ZERO; n * d];
            for (o, &(b, k, _)) in obs.iter().enumerate() {
                for c in 0..d {
                    let x = R::from_f64(s.values[(b * s.slots + k) * d + c]);
                    let r = xh[o * d + c] - x;
                    recon += 0.5 * (r * r / var).to_f64() + c0;
                    dxh[o * d + c] = r / var * sr;
                }
            }
            let mut dp = vec![R::ZERO; self.dec.num_params()];
            self.dec.vjp(p_dec, 0.0, &zc, n, &dxh, None, &mut dzc, &mut dp, &mut ws)?;
            for (a, v) in grad[self.lay.dec..].iter_mut().zip(&dp) {
                *a += v.to_f64();
            }
            if let Some(lam) = &self.lam {
                let p_lam = &self.params[self.lay.lam..self.lay.dec];
                let mut lv = vec![R::ZERO; n];
                lam.forward(p_lam, 0.0, &zc, n, &mut lv, &mut ws)?;
                let mut dl = vec![R::ZERO; n];
                for o in 0..n {
                    if !(lv[o] > R::ZERO) {
                        return Err(Error::new(Code::NonFinite, "the intensity λ(z) underflowed to 0 at an observation"));
                    }
                    pois -= Float::ln(lv[o].to_f64());
                    dl[o] = -sr / lv[o];
                }
                let mut dz2 = vec![R::ZERO; n * l];
                let mut dpl = vec![R::ZERO; lam.num_params()];
                lam.vjp(p_lam, 0.0, &zc, n, &dl, None, &mut dz2, &mut dpl, &mut ws)?;
                for (a, v) in dzc.iter_mut().zip(&dz2) {
                    *a += *v;
                }
                for (a, v) in grad[self.lay.lam..self.lay.dec].iter_mut().zip(&dpl) {
                    *a += v.to_f64();
                }
                // ∫ λ dt from t0 to the row's last observation: Λ at that time
                for b in 0..bn {
                    if last_j[b] != usize::MAX {
                        let i = (last_j[b] * bn + b) * w + l;
                        pois += tape.ys[i].to_f64();
                        dys[i] += sr;
                    }
                }
            }
        }
        for (o, &(b, _, j)) in obs.iter().enumerate() {
            let base = (j * bn + b) * w;
            for c in 0..l {
                dys[base + c] += dzc[o * l + c];
            }
        }
        let gr = grad::backward(&mut field, tape, &dys)?;
        st_b.add(&gr.stats);
        for (a, v) in grad[self.lay.dynamics..self.lay.dec].iter_mut().zip(&gr.params) {
            *a += *v;
        }
        // through z0 = μ + σ ε and the KL term to [μ, log σ²]
        let mut dpost = vec![R::ZERO; bn * 2 * l];
        let half = R::from_f64(0.5);
        for b in 0..bn {
            for j in 0..l {
                let dz = R::from_f64(gr.y0[b * w + j]);
                let (mu, sg, e) = (post[b * 2 * l + j], sig[b * l + j], eps[b * l + j]);
                dpost[b * 2 * l + j] = dz + sr * mu;
                dpost[b * 2 * l + l + j] = dz * e * half * sg + sr * half * (sg * sg - R::ONE);
            }
        }
        let g = self.cfg.rnn_hidden;
        let mut dh = vec![R::ZERO; bn * g];
        let mut dpo = vec![R::ZERO; self.enc_out.num_params()];
        let mut ws = vec![R::ZERO; self.enc_out.workspace_len(bn)];
        self.enc_out.vjp(&self.params[self.lay.enc_out..self.lay.dynamics], 0.0, &h, bn, &dpost, None, &mut dh, &mut dpo, &mut ws)?;
        for (a, v) in grad[self.lay.enc_out..self.lay.dynamics].iter_mut().zip(&dpo) {
            *a += v.to_f64();
        }
        self.encode_backward(ops, dh, grad, &mut st_b)?;
        let loss = (recon + kl + pois) * scale;
        if !loss.is_finite() || grad.iter().any(|v| !v.is_finite()) {
            return Err(Error::new(Code::NonFinite, "the ELBO or its gradient is not finite"));
        }
        Ok(ElboStats { loss, recon: recon * scale, kl: kl * scale, poisson: pois * scale, nfe_forward: st_f.nfe, nfe_backward: st_b.nfe })
    }

    /// Posterior predictions at `ts` (increasing, ≥ t0) for each row: the decoded mean over
    /// `samples` draws of z₀ (0 = decode from z₀ = μ). `out`: batch × ts.len() × obsDim.
    pub fn predict(&self, s: &Series, t0: f64, ts: &[f64], samples: usize, seed: u64, opts: &solver::Options, out: &mut [f64]) -> Result<Stats> {
        let (bn, d, l) = (s.batch, self.cfg.obs_dim, self.cfg.latent_dim);
        s.check(d, t0)?;
        let q = ts.len();
        if q == 0 || ts.iter().any(|t| !t.is_finite()) || ts.windows(2).any(|w| !(w[1] > w[0])) {
            return Err(Error::invalid("ts: must be finite and strictly increasing"));
        }
        if ts[0] < t0 {
            return Err(Error::invalid(format!("ts: predictions start at the model's t0 = {t0} (got {})", ts[0])));
        }
        if samples > 1 << 16 {
            return Err(Error::invalid("samples: at most 65536"));
        }
        if out.len() != bn * q * d {
            return Err(Error::invalid("out: wrong length"));
        }
        let go = GradOptions { mode: Mode::Adjoint, forward: opts.clone(), adjoint_rtol: opts.rtol, adjoint_atol: 1e-9, seminorm: true };
        let mut stats = Stats::default();
        let h = self.encode(s, t0, &go, None, &mut stats)?;
        let post = self.posterior(&h, bn)?;
        let draws = samples.max(1);
        let rows = draws * bn;
        let mut z0 = vec![R::ZERO; rows * l];
        for si in 0..draws {
            for b in 0..bn {
                for j in 0..l {
                    let (mu, lv) = (post[b * 2 * l + j], post[b * 2 * l + l + j]);
                    z0[(si * bn + b) * l + j] = if samples == 0 {
                        mu
                    } else {
                        let e = R::from_f64(rng::normal_f64(seed, PREDICT_STREAM + si as u64, (b * l + j) as u64));
                        mu + (lv * R::from_f64(0.5)).exp() * e
                    };
                }
            }
        }
        let mut grid = if ts[0] > t0 { vec![t0] } else { Vec::new() };
        grid.extend_from_slice(ts);
        let off = grid.len() - q;
        let nd = self.dynamics.num_params();
        let mut field = LatentField::new(&self.dynamics, None, &self.params[self.lay.dynamics..self.lay.dynamics + nd]);
        let mut ys = vec![R::ZERO; grid.len() * rows * l];
        solver::solve(&mut field, &z0, &grid, opts, &mut ys, &mut stats, None)?;
        let nrows = q * rows;
        let mut xh = vec![R::ZERO; nrows * d];
        let mut ws = vec![R::ZERO; self.dec.workspace_len(nrows)];
        self.dec.forward(&self.params[self.lay.dec..], 0.0, &ys[off * rows * l..], nrows, &mut xh, &mut ws)?;
        for b in 0..bn {
            for qi in 0..q {
                for c in 0..d {
                    let mut acc = 0.0f64;
                    for si in 0..draws {
                        acc += xh[((qi * draws + si) * bn + b) * d + c].to_f64();
                    }
                    out[(b * q + qi) * d + c] = acc / draws as f64;
                }
            }
        }
        Ok(stats)
    }
}
