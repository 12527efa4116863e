//! A sequential network evaluated with forward-mode tangents stacked under the primal rows, and
//! the reverse pass through that stacked evaluation (forward-over-reverse second derivatives).
//!
//! Rows: the primal batch (B rows) followed by K tangent blocks (B rows each; block k carries
//! v_k, e.g. e_k for the exact trace or a Hutchinson probe). A linear layer maps every row with
//! the same weight (bias and time terms only on primal rows), an activation maps primal rows
//! through σ and tangent rows through σ'(x_primal)·ẋ. One gemm per layer therefore serves the
//! value and all K Jacobian-vector products, and one reverse sweep through the same stack gives
//! the gradient of any function of (f, J·v_1, …, J·v_K), including σ'' terms.

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::error::{Error, Result};
use crate::math::Act;
use crate::nn::{LayerSpec, Net};
use crate::tensor::{self, Scalar};

pub struct StackedMlp<R: Scalar> {
    pub net: Net<R>,
    /// Number of rows (1 + K)·B the buffers are sized for, and the primal batch B.
    rows: usize,
    batch: usize,
    /// Input stack: (1 + K)·B × D.
    x0: Vec<R>,
    /// Output of every layer, all rows.
    out: Vec<Vec<R>>,
    /// ConcatSquash pre-gate values W·x (+ b on primal rows), all rows.
    zcs: Vec<Vec<R>>,
    /// σ'(x) of every activation layer, primal rows.
    d1: Vec<Vec<R>>,
    g0: Vec<R>,
    g1: Vec<R>,
    wt: Vec<R>,
    vec: Vec<R>,
    max_dim: usize,
}

/// σ'(x) from the input x and the output y (elementwise).
pub fn act_d1<R: Scalar>(act: Act, x: &[R], y: &[R], out: &mut [R]) {
    let n = out.len();
    match act {
        Act::Identity => out.iter_mut().for_each(|v| *v = R::ONE),
        Act::Tanh => (0..n).for_each(|j| out[j] = R::ONE - y[j] * y[j]),
        Act::Sigmoid => (0..n).for_each(|j| out[j] = y[j] * (R::ONE - y[j])),
        Act::Relu => (0..n).for_each(|j| out[j] = if y[j] > R::ZERO { R::ONE } else { R::ZERO }),
        Act::Elu => (0..n).for_each(|j| out[j] = if y[j] > R::ZERO { R::ONE } else { y[j] + R::ONE }),
        Act::Softplus => {
            // σ(x) = 1 − e^{−softplus(x)} = −expm1(−y)
            (0..n).for_each(|j| out[j] = -y[j]);
            R::expm1_slice(out);
            out.iter_mut().for_each(|v| *v = -*v);
        }
        Act::Cube => {
            let three = R::from_f64(3.0);
            (0..n).for_each(|j| out[j] = three * x[j] * x[j]);
        }
    }
}

/// σ''(x) from x, y = σ(x) and d1 = σ'(x) (one element).
#[inline]
pub fn act_d2<R: Scalar>(act: Act, x: R, y: R, d1: R) -> R {
    match act {
        Act::Identity | Act::Relu => R::ZERO,
        Act::Tanh => R::from_f64(-2.0) * y * d1,
        Act::Sigmoid => d1 * (R::ONE - R::from_f64(2.0) * y),
        Act::Softplus => d1 * (R::ONE - d1),
        Act::Elu => {
            if y > R::ZERO {
                R::ZERO
            } else {
                y + R::ONE
            }
        }
        Act::Cube => R::from_f64(6.0) * x,
    }
}

impl<R: Scalar> StackedMlp<R> {
    pub fn new(specs: &[LayerSpec]) -> Result<Self> {
        let net = Net::<R>::new(specs)?;
        if net.dim_in() != net.dim_out() {
            return Err(Error::invalid(format!("layers: a flow maps R^d to R^d, these map {} to {}", net.dim_in(), net.dim_out())));
        }
        let n = specs.len();
        let mut max_wt = 0;
        let mut max_dim = 0;
        for s in specs {
            max_dim = max_dim.max(s.dim_in()).max(s.dim_out());
            if !matches!(s, LayerSpec::Act { .. }) {
                max_wt = max_wt.max(s.dim_in() * s.dim_out());
            }
        }
        Ok(StackedMlp {
            net,
            rows: 0,
            batch: 0,
            x0: Vec::new(),
            out: vec![Vec::new(); n],
            zcs: vec![Vec::new(); n],
            d1: vec![Vec::new(); n],
            g0: Vec::new(),
            g1: Vec::new(),
            wt: vec![R::ZERO; max_wt],
            vec: vec![R::ZERO; 4 * max_dim],
            max_dim,
        })
    }

    pub fn dim(&self) -> usize {
        self.net.dim_in()
    }

    /// Sizes the buffers for B primal rows and K tangent blocks (allocates only when they grow).
    fn size(&mut self, batch: usize, k: usize) -> Result<()> {
        let rows = batch.checked_mul(k + 1).ok_or_else(|| Error::invalid("batch: too large"))?;
        self.batch = batch;
        self.rows = rows;
        let grow = |v: &mut Vec<R>, n: usize| {
            if v.len() < n {
                v.resize(n, R::ZERO);
            }
        };
        let d = self.dim();
        grow(&mut self.x0, rows * d);
        for l in 0..self.out.len() {
            let s = self.net.specs()[l];
            grow(&mut self.out[l], rows * s.dim_out());
            if matches!(s, LayerSpec::ConcatSquash { .. }) {
                grow(&mut self.zcs[l], rows * s.dim_out());
            }
            if matches!(s, LayerSpec::Act { .. }) {
                grow(&mut self.d1[l], batch * s.dim_out());
            }
        }
        grow(&mut self.g0, rows * self.max_dim);
        grow(&mut self.g1, rows * self.max_dim);
        Ok(())
    }

    /// Input stack: primal rows z, then tangent block k (rows of v_k, given as K·B × D).
    pub fn input(&mut self, z: &[R], batch: usize, tangents: &[R], k: usize) -> Result<()> {
        self.size(batch, k)?;
        let d = self.dim();
        self.x0[..batch * d].copy_from_slice(z);
        self.x0[batch * d..(k + 1) * batch * d].copy_from_slice(&tangents[..k * batch * d]);
        Ok(())
    }

    /// Forward through the stack set by `input`. Afterwards `output()` holds f (primal rows) and
    /// J·v_k (tangent block k).
    pub fn forward(&mut self, params: &[R], t: f64) {
        let (b, rows) = (self.batch, self.rows);
        let tr = R::from_f64(t);
        for l in 0..self.out.len() {
            let s = self.net.specs()[l];
            let (d_in, d_out) = (s.dim_in(), s.dim_out());
            let (before, after) = self.out.split_at_mut(l);
            let out = &mut after[0][..rows * d_out];
            let inp: &[R] = if l == 0 { &self.x0[..rows * d_in] } else { &before[l - 1][..rows * d_in] };
            let p = &params[self.net.param_offset(l).unwrap_or(0)..];
            let (ip, it) = inp.split_at(b * d_in);
            let (op, ot) = out.split_at_mut(b * d_out);
            let kb = rows - b;
            match s {
                LayerSpec::Linear { .. } => {
                    let nw = d_out * d_in;
                    let (w, bias) = (&p[..nw], &p[nw..nw + d_out]);
                    tensor::linear_forward_raw(b, d_in, d_out, ip, w, d_in, Some(bias), Act::Identity, op, &mut self.wt);
                    if kb > 0 {
                        tensor::linear_forward_raw(kb, d_in, d_out, it, w, d_in, None, Act::Identity, ot, &mut self.wt);
                    }
                }
                LayerSpec::ConcatLinear { .. } => {
                    let ld = d_in + 1;
                    let (w, bias) = (&p[..d_out * ld], &p[d_out * ld..d_out * ld + d_out]);
                    let beff = &mut self.vec[..d_out];
                    for o in 0..d_out {
                        beff[o] = w[o * ld] * tr + bias[o];
                    }
                    tensor::linear_forward_raw(b, d_in, d_out, ip, &w[1..], ld, Some(&*beff), Act::Identity, op, &mut self.wt);
                    if kb > 0 {
                        tensor::linear_forward_raw(kb, d_in, d_out, it, &w[1..], ld, None, Act::Identity, ot, &mut self.wt);
                    }
                }
                LayerSpec::ConcatSquash { .. } => {
                    let nw = d_out * d_in;
                    let (w, bias) = (&p[..nw], &p[nw..nw + d_out]);
                    let zb = &mut self.zcs[l][..rows * d_out];
                    let (zp, zt) = zb.split_at_mut(b * d_out);
                    tensor::linear_forward_raw(b, d_in, d_out, ip, w, d_in, Some(bias), Act::Identity, zp, &mut self.wt);
                    if kb > 0 {
                        tensor::linear_forward_raw(kb, d_in, d_out, it, w, d_in, None, Act::Identity, zt, &mut self.wt);
                    }
                    let (gate, rest) = self.vec.split_at_mut(d_out);
                    let hb = &mut rest[..d_out];
                    cs_gate(p, d_in, d_out, tr, gate, hb);
                    for r in 0..rows {
                        let zr = &zb[r * d_out..(r + 1) * d_out];
                        let yr = &mut out[r * d_out..(r + 1) * d_out];
                        if r < b {
                            for o in 0..d_out {
                                yr[o] = zr[o] * gate[o] + hb[o];
                            }
                        } else {
                            for o in 0..d_out {
                                yr[o] = zr[o] * gate[o];
                            }
                        }
                    }
                }
                LayerSpec::Act { act, .. } => {
                    op.copy_from_slice(ip);
                    R::act_slice(act, op);
                    let d1 = &mut self.d1[l][..b * d_out];
                    act_d1(act, ip, op, d1);
                    for (blk_o, blk_i) in ot.chunks_exact_mut(b * d_out).zip(it.chunks_exact(b * d_out)) {
                        for j in 0..b * d_out {
                            blk_o[j] = d1[j] * blk_i[j];
                        }
                    }
                }
            }
        }
    }

    /// The last layer's output: f (B × D) then J·v_k blocks.
    pub fn output(&self) -> &[R] {
        let n = self.net.specs().len();
        &self.out[n - 1][..self.rows * self.dim()]
    }

    /// The output stack and its cotangent buffer (rows × D), to be filled before `backward`.
    pub fn out_and_cotangent(&mut self) -> (&[R], &mut [R]) {
        let n = self.rows * self.dim();
        let l = self.out.len() - 1;
        (&self.out[l][..n], &mut self.g0[..n])
    }

    /// Reverse sweep after `forward` with the cotangent in `cotangent_mut()`: writes the gradient
    /// w.r.t. the primal input (B × D) and the parameters (overwritten); returns ∂/∂t.
    pub fn backward(&mut self, params: &[R], t: f64, out_z: &mut [R], out_p: &mut [R]) -> f64 {
        let (b, rows) = (self.batch, self.rows);
        let kb = rows - b;
        let tr = R::from_f64(t);
        let mut dt = 0.0f64;
        let n = self.out.len();
        let (mut cur, mut nxt) = (core::mem::take(&mut self.g0), core::mem::take(&mut self.g1));
        for l in (0..n).rev() {
            let s = self.net.specs()[l];
            let (d_in, d_out) = (s.dim_in(), s.dim_out());
            let inp: &[R] = if l == 0 { &self.x0[..rows * d_in] } else { &self.out[l - 1][..rows * d_in] };
            let go = &mut cur[..rows * d_out];
            // the input gradient of tangent rows is not needed below the first layer
            let in_rows = if l == 0 { b } else { rows };
            let gi: &mut [R] = if l == 0 { &mut out_z[..b * d_in] } else { &mut nxt[..rows * d_in] };
            let off = self.net.param_offset(l).unwrap_or(0);
            let p = &params[off..];
            let np = s.num_params().unwrap_or(0);
            let dp = &mut out_p[off..off + np];
            match s {
                LayerSpec::Linear { .. } => {
                    let nw = d_out * d_in;
                    let (dw, db) = dp.split_at_mut(nw);
                    tensor::linear_grad_weight_raw(rows, d_in, d_out, go, inp, dw, d_in, false);
                    tensor::bias_grad_raw(b, d_out, go, db, false);
                    tensor::linear_grad_input_raw(in_rows, d_in, d_out, &go[..in_rows * d_out], &p[..nw], d_in, gi);
                }
                LayerSpec::ConcatLinear { .. } => {
                    let ld = d_in + 1;
                    let nw = d_out * ld;
                    let (dw, db) = dp.split_at_mut(nw);
                    tensor::linear_grad_weight_raw(rows, d_in, d_out, go, inp, &mut dw[1..], ld, false);
                    tensor::bias_grad_raw(b, d_out, go, db, false);
                    for o in 0..d_out {
                        dw[o * ld] = db[o] * tr;
                        dt += (db[o] * p[o * ld]).to_f64();
                    }
                    tensor::linear_grad_input_raw(in_rows, d_in, d_out, &go[..in_rows * d_out], &p[1..nw], ld, gi);
                }
                LayerSpec::ConcatSquash { .. } => {
                    let nw = d_out * d_in;
                    let zb = &self.zcs[l][..rows * d_out];
                    let (gate, rest) = self.vec.split_at_mut(d_out);
                    let (hb, rest) = rest.split_at_mut(d_out);
                    let (sa, rest) = rest.split_at_mut(d_out);
                    let ds = &mut rest[..d_out];
                    cs_gate(p, d_in, d_out, tr, gate, hb);
                    sa.iter_mut().for_each(|v| *v = R::ZERO);
                    ds.iter_mut().for_each(|v| *v = R::ZERO);
                    for r in 0..rows {
                        let gr = &mut go[r * d_out..(r + 1) * d_out];
                        let zr = &zb[r * d_out..(r + 1) * d_out];
                        for o in 0..d_out {
                            if r < b {
                                sa[o] = sa[o] + gr[o];
                            }
                            ds[o] = ds[o] + gr[o] * zr[o];
                            gr[o] = gr[o] * gate[o];
                        }
                    }
                    let (dw, rest) = dp.split_at_mut(nw);
                    let (db, rest) = rest.split_at_mut(d_out);
                    let (dh, rest) = rest.split_at_mut(d_out);
                    let (dg, dc) = rest.split_at_mut(d_out);
                    let h = &p[nw + d_out..nw + 2 * d_out];
                    let g = &p[nw + 2 * d_out..nw + 3 * d_out];
                    for o in 0..d_out {
                        let dsig = ds[o] * (gate[o] * (R::ONE - gate[o]));
                        dh[o] = sa[o] * tr;
                        dg[o] = dsig * tr;
                        dc[o] = dsig;
                        dt += (sa[o] * h[o] + dsig * g[o]).to_f64();
                    }
                    tensor::linear_grad_weight_raw(rows, d_in, d_out, go, inp, dw, d_in, false);
                    tensor::bias_grad_raw(b, d_out, go, db, false);
                    tensor::linear_grad_input_raw(in_rows, d_in, d_out, &go[..in_rows * d_out], &p[..nw], d_in, gi);
                }
                LayerSpec::Act { act, .. } => {
                    let y = &self.out[l][..b * d_out];
                    let d1 = &self.d1[l][..b * d_out];
                    let (xp, xt) = inp.split_at(b * d_out);
                    let (gp, gt) = go.split_at(b * d_out);
                    let (ip, it) = gi.split_at_mut(b * d_out);
                    for j in 0..b * d_out {
                        ip[j] = d1[j] * gp[j];
                    }
                    if kb > 0 {
                        for ((gtk, xtk), itk) in gt.chunks_exact(b * d_out).zip(xt.chunks_exact(b * d_out)).zip(it.chunks_exact_mut(b * d_out)) {
                            for j in 0..b * d_out {
                                itk[j] = d1[j] * gtk[j];
                            }
                            for j in 0..b * d_out {
                                ip[j] = ip[j] + act_d2(act, xp[j], y[j], d1[j]) * (xtk[j] * gtk[j]);
                            }
                        }
                    }
                }
            }
            core::mem::swap(&mut cur, &mut nxt);
        }
        // cur/nxt are the two gradient buffers in some order; both go back
        self.g0 = cur;
        self.g1 = nxt;
        dt
    }
}

/// ConcatSquash gate `sigmoid(g·t + c)` and `h·t` per output.
fn cs_gate<R: Scalar>(p: &[R], d_in: usize, d_out: usize, tr: R, gate: &mut [R], hb: &mut [R]) {
    let nw = d_out * d_in;
    let h = &p[nw + d_out..nw + 2 * d_out];
    let g = &p[nw + 2 * d_out..nw + 3 * d_out];
    let c = &p[nw + 3 * d_out..nw + 4 * d_out];
    for o in 0..d_out {
        gate[o] = (g[o] * tr + c[o]).sigmoid();
        hb[o] = h[o] * tr;
    }
}
