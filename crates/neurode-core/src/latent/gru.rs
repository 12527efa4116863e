//! A GRU cell (PyTorch's `nn.GRUCell` equations and parameter layout), batch-major, with a
//! vector-Jacobian product. Parameters: `W_ih[3H][I]`, `W_hh[3H][H]`, `b_ih[3H]`, `b_hh[3H]`,
//! gate order (r, z, n):
//!
//! r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h.

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use crate::error::{Error, Result};
use crate::math::Act;
use crate::rng;
use crate::tensor::{self, Scalar};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gru {
    pub d_in: usize,
    pub d_h: usize,
}

impl Gru {
    pub fn new(d_in: usize, d_h: usize) -> Result<Self> {
        if d_in == 0 || d_h == 0 || d_in > 1 << 20 || d_h > 1 << 20 {
            return Err(Error::invalid("gru: widths must be from 1 to 2^20"));
        }
        Ok(Gru { d_in, d_h })
    }

    pub fn num_params(&self) -> usize {
        3 * self.d_h * (self.d_in + self.d_h) + 6 * self.d_h
    }

    /// PyTorch's initialisation: every parameter U(−1/√H, 1/√H), parameter p drawn from
    /// `rng::uniform_f64(seed, p, 0)`.
    pub fn init_params<R: Scalar>(&self, seed: u64, out: &mut [R]) {
        let bound = 1.0 / (self.d_h as f64).sqrt();
        for (p, o) in out.iter_mut().enumerate() {
            *o = R::from_f64(bound * (2.0 * rng::uniform_f64(seed, p as u64, 0) - 1.0));
        }
    }

    /// Workspace elements for `batch` rows (gate buffers and a transposed weight).
    pub fn workspace_len(&self, batch: usize) -> usize {
        let g = 3 * self.d_h;
        4 * batch * g + g * self.d_in.max(self.d_h)
    }

    fn parts<'a, R>(&self, p: &'a [R]) -> (&'a [R], &'a [R], &'a [R], &'a [R]) {
        let (i, h) = (self.d_in, self.d_h);
        let (wih, rest) = p.split_at(3 * h * i);
        let (whh, rest) = rest.split_at(3 * h * h);
        let (bih, bhh) = rest.split_at(3 * h);
        (wih, whh, bih, &bhh[..3 * h])
    }

    fn check<R>(&self, p: &[R], x: &[R], h: &[R], batch: usize, ws: &[R]) -> Result<()> {
        if p.len() != self.num_params() {
            return Err(Error::invalid(format!("gru params: length {} != {}", p.len(), self.num_params())));
        }
        if x.len() != batch * self.d_in || h.len() != batch * self.d_h {
            return Err(Error::invalid("gru: x or h has the wrong length"));
        }
        if ws.len() < self.workspace_len(batch) {
            return Err(Error::invalid("gru: workspace too small"));
        }
        Ok(())
    }

    /// Gates into `gi` (r, z, n after their activations) and `gh` (its n part keeps W_hn h + b_hn).
    fn gates<R: Scalar>(&self, p: &[R], x: &[R], h: &[R], batch: usize, gi: &mut [R], gh: &mut [R], wt: &mut [R]) {
        let hd = self.d_h;
        let g = 3 * hd;
        let (wih, whh, bih, bhh) = self.parts(p);
        tensor::linear_forward_raw(batch, self.d_in, g, x, wih, self.d_in, Some(bih), Act::Identity, gi, wt);
        tensor::linear_forward_raw(batch, hd, g, h, whh, hd, Some(bhh), Act::Identity, gh, wt);
        for b in 0..batch {
            let gir = &mut gi[b * g..(b + 1) * g];
            let ghr = &gh[b * g..(b + 1) * g];
            for j in 0..2 * hd {
                gir[j] += ghr[j];
            }
            R::sigmoid_slice(&mut gir[..2 * hd]);
            for j in 0..hd {
                gir[2 * hd + j] += gir[j] * ghr[2 * hd + j];
            }
            R::tanh_slice(&mut gir[2 * hd..]);
        }
    }

    /// `out = GRU(x, h)` for `batch` rows (x: batch × I, h and out: batch × H).
    pub fn forward<R: Scalar>(&self, p: &[R], x: &[R], h: &[R], batch: usize, out: &mut [R], ws: &mut [R]) -> Result<()> {
        self.check(p, x, h, batch, ws)?;
        if out.len() != batch * self.d_h {
            return Err(Error::invalid("gru: out has the wrong length"));
        }
        let hd = self.d_h;
        let g = 3 * hd;
        let (gi, rest) = ws.split_at_mut(batch * g);
        let (gh, rest) = rest.split_at_mut(batch * g);
        let wt = &mut rest[2 * batch * g..];
        self.gates(p, x, h, batch, gi, gh, wt);
        for b in 0..batch {
            let gr = &gi[b * g..(b + 1) * g];
            for j in 0..hd {
                let (z, n) = (gr[hd + j], gr[2 * hd + j]);
                out[b * hd + j] = (R::ONE - z) * n + z * h[b * hd + j];
            }
        }
        Ok(())
    }

    /// Vector-Jacobian product with cotangent `g` = dL/dh' (batch × H): writes dL/dh into
    /// `out_dh`, optionally dL/dx into `out_dx`, and ADDS dL/dθ (summed over rows) to `acc_dp`.
    pub fn vjp<R: Scalar>(
        &self,
        p: &[R],
        x: &[R],
        h: &[R],
        batch: usize,
        g: &[R],
        out_dx: Option<&mut [R]>,
        out_dh: &mut [R],
        acc_dp: &mut [R],
        ws: &mut [R],
    ) -> Result<()> {
        self.check(p, x, h, batch, ws)?;
        if g.len() != batch * self.d_h || out_dh.len() != batch * self.d_h || acc_dp.len() != self.num_params() {
            return Err(Error::invalid("gru vjp: g, out_dh or acc_dp has the wrong length"));
        }
        let (i, hd) = (self.d_in, self.d_h);
        let gw = 3 * hd;
        let (gi, rest) = ws.split_at_mut(batch * gw);
        let (gh, rest) = rest.split_at_mut(batch * gw);
        let (dgi, rest) = rest.split_at_mut(batch * gw);
        let (dgh, wt) = rest.split_at_mut(batch * gw);
        self.gates(p, x, h, batch, gi, gh, wt);
        for b in 0..batch {
            let gr = &gi[b * gw..(b + 1) * gw];
            let hn = &gh[b * gw + 2 * hd..(b + 1) * gw];
            let di = &mut dgi[b * gw..(b + 1) * gw];
            let dh = &mut dgh[b * gw..(b + 1) * gw];
            for j in 0..hd {
                let (r, z, n) = (gr[j], gr[hd + j], gr[2 * hd + j]);
                let gj = g[b * hd + j];
                let dn_pre = gj * (R::ONE - z) * (R::ONE - n * n);
                let dz_pre = gj * (h[b * hd + j] - n) * (z * (R::ONE - z));
                let dr_pre = dn_pre * hn[j] * (r * (R::ONE - r));
                di[j] = dr_pre;
                di[hd + j] = dz_pre;
                di[2 * hd + j] = dn_pre;
                dh[j] = dr_pre;
                dh[hd + j] = dz_pre;
                dh[2 * hd + j] = dn_pre * r;
            }
        }
        let (wih, whh, _, _) = self.parts(p);
        let (dwih, rest) = acc_dp.split_at_mut(3 * hd * i);
        let (dwhh, rest) = rest.split_at_mut(3 * hd * hd);
        let (dbih, dbhh) = rest.split_at_mut(gw);
        tensor::linear_grad_weight_raw(batch, i, gw, dgi, x, dwih, i, true);
        tensor::bias_grad_raw(batch, gw, dgi, dbih, true);
        tensor::linear_grad_weight_raw(batch, hd, gw, dgh, h, dwhh, hd, true);
        tensor::bias_grad_raw(batch, gw, dgh, dbhh, true);
        tensor::linear_grad_input_raw(batch, hd, gw, dgh, whh, hd, out_dh);
        for b in 0..batch {
            let zr = &gi[b * gw + hd..b * gw + 2 * hd];
            for j in 0..hd {
                out_dh[b * hd + j] += g[b * hd + j] * zr[j];
            }
        }
        if let Some(dx) = out_dx {
            if dx.len() != batch * i {
                return Err(Error::invalid("gru vjp: out_dx has the wrong length"));
            }
            tensor::linear_grad_input_raw(batch, i, gw, dgi, wih, i, dx);
        }
        Ok(())
    }
}
