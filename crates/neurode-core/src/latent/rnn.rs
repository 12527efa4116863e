//! The RNN baseline of Table 2: a GRU that reads each observation together with the time gap to
//! the next one and predicts that next observation (`x̂ = W h + b`). Trained by teacher forcing
//! on next-step squared error; predicts autoregressively (its own predictions are fed back where
//! no observation is available).
//!
//! Parameters: GRU (input obsDim + 1, hidden H) | output layer H → obsDim.

#![allow(clippy::needless_range_loop)]

use super::gru::Gru;
use super::Series;
use crate::error::{Code, Error, Result};
use crate::math::Act;
use crate::nn::{mlp, Net, TimeMode};
use crate::rng;
use crate::tensor::Scalar;

pub struct RnnBaseline<R: Scalar> {
    pub obs_dim: usize,
    pub hidden: usize,
    gru: Gru,
    out: Net<R>,
    pub params: Vec<R>,
}

impl<R: Scalar> RnnBaseline<R> {
    pub fn new(obs_dim: usize, hidden: usize, seed: u64) -> Result<Self> {
        if obs_dim == 0 || obs_dim > 1 << 16 || hidden == 0 || hidden > 1 << 16 {
            return Err(Error::invalid("obsDim/hidden: must be whole numbers from 1 to 65536"));
        }
        let gru = Gru::new(obs_dim + 1, hidden)?;
        let out = Net::new(&mlp(&[hidden, obs_dim], Act::Identity, TimeMode::None, false)?)?;
        let ng = gru.num_params();
        let mut params = vec![R::ZERO; ng + out.num_params()];
        gru.init_params(rng::u64_at(seed, 0x2a4_0be, 0), &mut params[..ng]);
        out.init_params(rng::u64_at(seed, 0x2a4_0be, 1), &mut params[ng..])?;
        Ok(RnnBaseline { obs_dim, hidden, gru, out, params })
    }

    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    fn split(&self) -> (&[R], &[R]) {
        self.params.split_at(self.gru.num_params())
    }

    /// Mean over rows of each row's mean squared next-step error (rows with fewer than two
    /// observations add 0); `grad` (overwritten) is its gradient.
    pub fn loss_grad(&self, s: &Series, grad: &mut [f64]) -> Result<f64> {
        let (bn, d, g) = (s.batch, self.obs_dim, self.hidden);
        s.check(d, -f64::MAX)?;
        if grad.len() != self.params.len() {
            return Err(Error::invalid("grad: wrong length"));
        }
        let (pg, po) = self.split();
        let lists: Vec<Vec<usize>> = (0..bn).map(|b| s.used(b, s.mask)).collect();
        let steps = lists.iter().map(|l| l.len()).max().unwrap_or(0).saturating_sub(1);
        let di = d + 1;
        let mut xs = vec![R::ZERO; steps * bn * di];
        let mut hs = vec![R::ZERO; (steps + 1) * bn * g]; // hs[st] = state before step st
        let mut active = vec![false; steps * bn];
        let mut hn = vec![R::ZERO; bn * g];
        let mut ws = vec![R::ZERO; self.gru.workspace_len(bn)];
        let val = |b: usize, k: usize, c: usize| s.values[(b * s.slots + k) * d + c];
        for st in 0..steps {
            for b in 0..bn {
                let lb = &lists[b];
                if st + 1 < lb.len() {
                    let (k, k1) = (lb[st], lb[st + 1]);
                    for c in 0..d {
                        xs[(st * bn + b) * di + c] = R::from_f64(val(b, k, c));
                    }
                    xs[(st * bn + b) * di + d] = R::from_f64(s.times[b * s.slots + k1] - s.times[b * s.slots + k]);
                    active[st * bn + b] = true;
                }
            }
            let (done, rest) = hs.split_at_mut((st + 1) * bn * g);
            let h = &done[st * bn * g..];
            self.gru.forward(pg, &xs[st * bn * di..(st + 1) * bn * di], h, bn, &mut hn, &mut ws)?;
            for b in 0..bn {
                let src = if active[st * bn + b] { &hn[b * g..(b + 1) * g] } else { &h[b * g..(b + 1) * g] };
                rest[b * g..(b + 1) * g].copy_from_slice(src);
            }
        }
        let rows = steps * bn;
        let mut pred = vec![R::ZERO; rows * d];
        let mut wo = vec![R::ZERO; self.out.workspace_len(rows.max(1))];
        let hafter = &hs[bn * g..];
        let mut loss = 0.0f64;
        let mut dpred = vec![R::ZERO; rows * d];
        if rows > 0 {
            self.out.forward(po, 0.0, hafter, rows, &mut pred, &mut wo)?;
            for b in 0..bn {
                let nb = lists[b].len();
                if nb < 2 {
                    continue;
                }
                let w = 1.0 / ((nb - 1) * d * bn) as f64;
                for st in 0..nb - 1 {
                    let k1 = lists[b][st + 1];
                    for c in 0..d {
                        let r = pred[(st * bn + b) * d + c].to_f64() - val(b, k1, c);
                        loss += w * r * r;
                        dpred[(st * bn + b) * d + c] = R::from_f64(2.0 * w * r);
                    }
                }
            }
        }
        grad.iter_mut().for_each(|v| *v = 0.0);
        if rows > 0 {
            let ng = self.gru.num_params();
            let mut dh_all = vec![R::ZERO; rows * g];
            let mut dpo = vec![R::ZERO; self.out.num_params()];
            self.out.vjp(po, 0.0, hafter, rows, &dpred, None, &mut dh_all, &mut dpo, &mut wo)?;
            for (a, v) in grad[ng..].iter_mut().zip(&dpo) {
                *a = v.to_f64();
            }
            let mut acc = vec![R::ZERO; ng];
            let mut dh = vec![R::ZERO; bn * g];
            let mut gm = vec![R::ZERO; bn * g];
            let mut prev = vec![R::ZERO; bn * g];
            for st in (0..steps).rev() {
                for (a, v) in dh.iter_mut().zip(&dh_all[st * bn * g..(st + 1) * bn * g]) {
                    *a += *v;
                }
                gm.copy_from_slice(&dh);
                for b in 0..bn {
                    if !active[st * bn + b] {
                        gm[b * g..(b + 1) * g].iter_mut().for_each(|v| *v = R::ZERO);
                    }
                }
                let h = &hs[st * bn * g..(st + 1) * bn * g];
                self.gru.vjp(pg, &xs[st * bn * di..(st + 1) * bn * di], h, bn, &gm, None, &mut prev, &mut acc, &mut ws)?;
                for b in 0..bn {
                    if !active[st * bn + b] {
                        prev[b * g..(b + 1) * g].copy_from_slice(&dh[b * g..(b + 1) * g]);
                    }
                }
                core::mem::swap(&mut dh, &mut prev);
            }
            for (a, v) in grad[..ng].iter_mut().zip(&acc) {
                *a = v.to_f64();
            }
        }
        if !loss.is_finite() || grad.iter().any(|v| !v.is_finite()) {
            return Err(Error::new(Code::NonFinite, "the loss or its gradient is not finite"));
        }
        Ok(loss)
    }

    /// Predictions at `ts` (increasing) for each row (batch × ts.len() × obsDim): the row's
    /// observations and the query times are read in time order (a query before an observation at
    /// the same time); each query gets the prediction from everything before it, and that
    /// prediction is fed back as the next input.
    pub fn predict(&self, s: &Series, ts: &[f64], out: &mut [f64]) -> Result<()> {
        let (bn, d, g) = (s.batch, self.obs_dim, self.hidden);
        s.check(d, -f64::MAX)?;
        let q = ts.len();
        if q == 0 || ts.iter().any(|t| !t.is_finite()) || ts.windows(2).any(|w| !(w[1] > w[0])) {
            return Err(Error::invalid("ts: must be finite and strictly increasing"));
        }
        if out.len() != bn * q * d {
            return Err(Error::invalid("out: wrong length"));
        }
        // events per row: (time, Ok(slot) observation | Err(query index))
        let events: Vec<Vec<(f64, core::result::Result<usize, usize>)>> = (0..bn)
            .map(|b| {
                let obs = s.used(b, s.mask);
                let mut e: Vec<(f64, core::result::Result<usize, usize>)> = Vec::with_capacity(obs.len() + q);
                let (mut i, mut j) = (0, 0);
                while i < obs.len() || j < q {
                    let to = if i < obs.len() { s.times[b * s.slots + obs[i]] } else { f64::INFINITY };
                    if j < q && ts[j] <= to {
                        e.push((ts[j], Err(j)));
                        j += 1;
                    } else {
                        e.push((to, Ok(obs[i])));
                        i += 1;
                    }
                }
                e
            })
            .collect();
        let (pg, po) = self.split();
        let n = events.iter().map(|e| e.len()).max().unwrap_or(0);
        let di = d + 1;
        let mut h = vec![R::ZERO; bn * g];
        let mut hn = vec![R::ZERO; bn * g];
        let mut x = vec![R::ZERO; bn * di];
        let mut v = vec![R::ZERO; bn * d];
        let mut vt = vec![0.0f64; bn];
        let mut pred = vec![R::ZERO; bn * d];
        let mut ws = vec![R::ZERO; self.gru.workspace_len(bn)];
        let mut wo = vec![R::ZERO; self.out.workspace_len(bn)];
        for k in 0..n {
            if k > 0 {
                for b in 0..bn {
                    if k < events[b].len() {
                        x[b * di..b * di + d].copy_from_slice(&v[b * d..(b + 1) * d]);
                        x[b * di + d] = R::from_f64(events[b][k].0 - vt[b]);
                    }
                }
                self.gru.forward(pg, &x, &h, bn, &mut hn, &mut ws)?;
                for b in 0..bn {
                    if k < events[b].len() {
                        h[b * g..(b + 1) * g].copy_from_slice(&hn[b * g..(b + 1) * g]);
                    }
                }
            }
            self.out.forward(po, 0.0, &h, bn, &mut pred, &mut wo)?;
            for b in 0..bn {
                if k >= events[b].len() {
                    continue;
                }
                let (t, e) = events[b][k];
                vt[b] = t;
                match e {
                    Ok(slot) => {
                        for c in 0..d {
                            v[b * d + c] = R::from_f64(s.values[(b * s.slots + slot) * d + c]);
                        }
                    }
                    Err(qi) => {
                        v[b * d..(b + 1) * d].copy_from_slice(&pred[b * d..(b + 1) * d]);
                        for c in 0..d {
                            out[(b * q + qi) * d + c] = pred[b * d + c].to_f64();
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
