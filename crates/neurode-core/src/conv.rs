//! Layers of convolutional classifiers, each with forward and VJP, for f32 and f64:
//! `Conv2d` (stride, padding, optional time channel = torchdiffeq's ConcatConv2d), `GroupNorm`,
//! relu, global average pooling and softmax cross-entropy.
//!
//! Activations are batch-major NHWC (`x[b][y][x][c]`): a convolution is then im2col + one gemm
//! whose output rows are already the next layer's layout, and im2col copies contiguous channel
//! runs. Parameters keep PyTorch's layout (`weight[out][in][kh][kw]`, then `bias[out]`), so
//! torchdiffeq weights load directly; the kernels permute the weight once per call.
//!
//! Convolutions run over blocks of output rows (bounded scratch, cache-sized im2col panels).
//! Every sum has a fixed order, so results are identical on every target and for any batch
//! split. Sizes are validated by the caller (`odenet::Seq`); the gemm wrapper re-checks them.

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::error::{Error, Result};
use crate::math::{Act, Float};
use crate::tensor::{self, Scalar};

/// GroupNorm's epsilon (PyTorch's default).
pub const NORM_EPS: f64 = 1e-5;

/// Elements of one im2col block (rows × kdim): ~256 KiB in f32, fits the L2 cache.
const BLOCK_ELEMS: usize = 1 << 16;

/// A 2-D convolution. With `time`, a constant channel holding t is prepended to the input
/// (torchdiffeq's ConcatConv2d: zero in the padding, weight column 0 multiplies t).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub ci: usize,
    pub co: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub bias: bool,
    pub time: bool,
}

/// Scratch of the convolutions of one network, sized once for the largest of them.
#[derive(Default)]
pub struct ConvScratch<R> {
    /// permuted weight, kdim × co (forward B matrix)
    wt: Vec<R>,
    /// permuted weight, co × kdim (input-gradient B matrix) and its gradient
    wp: Vec<R>,
    dwp: Vec<R>,
    cols: Vec<R>,
    dcols: Vec<R>,
}

impl<R: Scalar> ConvScratch<R> {
    /// Makes room for `c` (call for every convolution before use; grows only).
    pub fn reserve(&mut self, c: &Conv2d) {
        let kd = c.kdim();
        let need = kd * c.co;
        for v in [&mut self.wt, &mut self.wp, &mut self.dwp] {
            if v.len() < need {
                v.resize(need, R::ZERO);
            }
        }
        let nb = c.block_rows() * kd;
        for v in [&mut self.cols, &mut self.dcols] {
            if v.len() < nb {
                v.resize(nb, R::ZERO);
            }
        }
    }
    pub fn bytes(&self) -> usize {
        (self.wt.len() + self.wp.len() + self.dwp.len() + self.cols.len() + self.dcols.len()) * R::BYTES
    }
}

impl Conv2d {
    /// Input channels including the time channel.
    pub fn cin(&self) -> usize {
        self.ci + self.time as usize
    }
    /// Length of one im2col row: k·k·cin.
    pub fn kdim(&self) -> usize {
        self.k * self.k * self.cin()
    }
    pub fn weight_len(&self) -> usize {
        self.co * self.kdim()
    }
    pub fn num_params(&self) -> usize {
        self.weight_len() + if self.bias { self.co } else { 0 }
    }
    /// Output size, or None when the kernel does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.pad, w + 2 * self.pad);
        if self.k == 0 || self.stride == 0 || hp < self.k || wp < self.k {
            return None;
        }
        Some(((hp - self.k) / self.stride + 1, (wp - self.k) / self.stride + 1))
    }
    /// A 1×1 convolution without time channel: im2col is the identity (a linear layer).
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0 && !self.time
    }
    pub(crate) fn block_rows(&self) -> usize {
        if self.pointwise() {
            0
        } else {
            (BLOCK_ELEMS / self.kdim()).max(4) & !3
        }
    }
    /// Flat index of PyTorch's weight[o][c][ky][kx] for im2col column q = (ky·k + kx)·cin + c.
    #[inline]
    fn torch_index(&self, o: usize, q: usize) -> usize {
        let cin = self.cin();
        let (c, kk) = (q % cin, q / cin);
        o * self.kdim() + c * self.k * self.k + kk
    }

    /// One block of im2col rows [r0, r0 + nr) (row = (b, oy, ox), column = (ky, kx, c)).
    fn im2col<R: Scalar>(&self, t: R, x: &[R], h: usize, w: usize, oh: usize, ow: usize, r0: usize, nr: usize, cols: &mut [R]) {
        let (k, cin, ci, tc) = (self.k, self.cin(), self.ci, self.time as usize);
        let kd = self.kdim();
        for r in 0..nr {
            let rr = r0 + r;
            let (b, pos) = (rr / (oh * ow), rr % (oh * ow));
            let (oy, ox) = (pos / ow, pos % ow);
            let dst = &mut cols[r * kd..(r + 1) * kd];
            for ky in 0..k {
                let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                for kx in 0..k {
                    let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                    let d = &mut dst[(ky * k + kx) * cin..(ky * k + kx + 1) * cin];
                    if iy >= 0 && (iy as usize) < h && ix >= 0 && (ix as usize) < w {
                        if tc == 1 {
                            d[0] = t;
                        }
                        let src = ((b * h + iy as usize) * w + ix as usize) * ci;
                        d[tc..].copy_from_slice(&x[src..src + ci]);
                    } else {
                        d.iter_mut().for_each(|v| *v = R::ZERO);
                    }
                }
            }
        }
    }

    /// Adds a block of column gradients back onto the input gradient; returns their time part.
    fn col2im<R: Scalar>(&self, dcols: &[R], h: usize, w: usize, oh: usize, ow: usize, r0: usize, nr: usize, dx: Option<&mut [R]>) -> f64 {
        let (k, cin, ci, tc) = (self.k, self.cin(), self.ci, self.time as usize);
        let kd = self.kdim();
        let mut dt = 0.0f64;
        let mut dx = dx;
        for r in 0..nr {
            let rr = r0 + r;
            let (b, pos) = (rr / (oh * ow), rr % (oh * ow));
            let (oy, ox) = (pos / ow, pos % ow);
            let src = &dcols[r * kd..(r + 1) * kd];
            for ky in 0..k {
                let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                if iy < 0 || iy as usize >= h {
                    continue;
                }
                for kx in 0..k {
                    let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                    if ix < 0 || ix as usize >= w {
                        continue;
                    }
                    let s = &src[(ky * k + kx) * cin..(ky * k + kx + 1) * cin];
                    if tc == 1 {
                        dt += s[0].to_f64();
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        let o = ((b * h + iy as usize) * w + ix as usize) * ci;
                        for (d, v) in dx[o..o + ci].iter_mut().zip(&s[tc..]) {
                            *d += *v;
                        }
                    }
                }
            }
        }
        dt
    }

    /// y (batch·oh·ow × co) = conv(x) (batch·h·w × ci), params `p` of this layer.
    pub fn forward<R: Scalar>(&self, p: &[R], t: f64, x: &[R], batch: usize, h: usize, w: usize, y: &mut [R], s: &mut ConvScratch<R>) -> Result<()> {
        let (oh, ow) = self.out_hw(h, w).ok_or_else(|| Error::invalid("conv: kernel larger than the padded input"))?;
        let (kd, co) = (self.kdim(), self.co);
        s.reserve(self);
        for o in 0..co {
            for q in 0..kd {
                s.wt[q * co + o] = p[self.torch_index(o, q)];
            }
        }
        let bias = if self.bias { Some(&p[self.weight_len()..self.weight_len() + co]) } else { None };
        let rows = batch * oh * ow;
        let wt = &s.wt[..kd * co];
        if self.pointwise() {
            return tensor::gemm(rows, co, kd, x, kd, 1, wt, co, y, co, false, bias, Act::Identity);
        }
        let rb = self.block_rows();
        let tr = R::from_f64(t);
        let mut r0 = 0;
        while r0 < rows {
            let nr = rb.min(rows - r0);
            self.im2col(tr, x, h, w, oh, ow, r0, nr, &mut s.cols);
            tensor::gemm(nr, co, kd, &s.cols, kd, 1, wt, co, &mut y[r0 * co..(r0 + nr) * co], co, false, bias, Act::Identity)?;
            r0 += nr;
        }
        Ok(())
    }

    /// VJP: adds dL/dθ to `dp` (this layer's slice), overwrites `dx` (if wanted) with dL/dx and
    /// returns dL/dt (time channel; 0 without).
    pub fn backward<R: Scalar>(&self, p: &[R], t: f64, x: &[R], batch: usize, h: usize, w: usize, dy: &[R], dx: Option<&mut [R]>, dp: &mut [R], s: &mut ConvScratch<R>) -> Result<f64> {
        let (oh, ow) = self.out_hw(h, w).ok_or_else(|| Error::invalid("conv: kernel larger than the padded input"))?;
        let (kd, co) = (self.kdim(), self.co);
        s.reserve(self);
        for o in 0..co {
            for q in 0..kd {
                s.wp[o * kd + q] = p[self.torch_index(o, q)];
            }
        }
        let rows = batch * oh * ow;
        if self.bias {
            let wl = self.weight_len();
            tensor::bias_grad(rows, co, dy, &mut dp[wl..wl + co], true)?;
        }
        let mut dt = 0.0;
        let wp = &s.wp[..co * kd];
        let dwp = &mut s.dwp[..co * kd];
        if self.pointwise() {
            // dW = dyᵀ·x, dx = dy·W
            tensor::gemm(co, kd, rows, dy, 1, co, x, kd, dwp, kd, false, None, Act::Identity)?;
            if let Some(dx) = dx {
                tensor::gemm(rows, kd, co, dy, co, 1, wp, kd, dx, kd, false, None, Act::Identity)?;
            }
        } else {
            dwp.iter_mut().for_each(|v| *v = R::ZERO);
            let mut dx = dx;
            if let Some(d) = dx.as_deref_mut() {
                d.iter_mut().for_each(|v| *v = R::ZERO);
            }
            let rb = self.block_rows();
            let tr = R::from_f64(t);
            let need_cols = dx.is_some() || self.time;
            let mut r0 = 0;
            while r0 < rows {
                let nr = rb.min(rows - r0);
                let dyb = &dy[r0 * co..(r0 + nr) * co];
                self.im2col(tr, x, h, w, oh, ow, r0, nr, &mut s.cols);
                tensor::gemm(co, kd, nr, dyb, 1, co, &s.cols, kd, dwp, kd, true, None, Act::Identity)?;
                if need_cols {
                    tensor::gemm(nr, kd, co, dyb, co, 1, wp, kd, &mut s.dcols, kd, false, None, Act::Identity)?;
                    dt += self.col2im(&s.dcols, h, w, oh, ow, r0, nr, dx.as_deref_mut());
                }
                r0 += nr;
            }
        }
        for o in 0..co {
            for q in 0..kd {
                let i = self.torch_index(o, q);
                dp[i] += dwp[o * kd + q];
            }
        }
        Ok(dt)
    }

    /// Plain nested-loop convolution (same layouts): the reference for tests and benchmarks.
    pub fn forward_direct<R: Scalar>(&self, p: &[R], t: f64, x: &[R], batch: usize, h: usize, w: usize, y: &mut [R]) -> Result<()> {
        let (oh, ow) = self.out_hw(h, w).ok_or_else(|| Error::invalid("conv: kernel larger than the padded input"))?;
        let (k, cin, co) = (self.k, self.cin(), self.co);
        let tr = R::from_f64(t);
        for b in 0..batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yo = ((b * oh + oy) * ow + ox) * co;
                    for o in 0..co {
                        let mut acc = if self.bias { p[self.weight_len() + o] } else { R::ZERO };
                        for c in 0..cin {
                            for ky in 0..k {
                                let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                                if iy < 0 || iy as usize >= h {
                                    continue;
                                }
                                for kx in 0..k {
                                    let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                                    if ix < 0 || ix as usize >= w {
                                        continue;
                                    }
                                    let v = if self.time && c == 0 { tr } else { x[((b * h + iy as usize) * w + ix as usize) * self.ci + c - self.time as usize] };
                                    acc += p[((o * cin + c) * k + ky) * k + kx] * v;
                                }
                            }
                        }
                        y[yo + o] = acc;
                    }
                }
            }
        }
        Ok(())
    }
}

/// GroupNorm over NHWC rows: per sample and group of c/groups channels, normalise over those
/// channels × all positions, then scale γ[c] and shift β[c] (params `γ[c], β[c]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupNorm {
    pub groups: usize,
    pub c: usize,
}

/// Per-channel / per-group f64 scratch of GroupNorm (3·c + 4·groups ≤ 7·c values).
pub fn norm_scratch_len(c: usize) -> usize {
    7 * c
}

impl GroupNorm {
    pub fn num_params(&self) -> usize {
        2 * self.c
    }

    /// Mean and 1/σ of every group of one sample, into m[0..groups], rs[0..groups].
    fn stats<R: Scalar>(&self, xs: &[R], hw: usize, m: &mut [f64], rs: &mut [f64], acc: &mut [f64]) {
        let (c, g) = (self.c, self.groups);
        let cg = c / g;
        let n = (cg * hw) as f64;
        acc[..c].iter_mut().for_each(|v| *v = 0.0);
        for pos in 0..hw {
            for (a, v) in acc[..c].iter_mut().zip(&xs[pos * c..(pos + 1) * c]) {
                *a += v.to_f64();
            }
        }
        for gi in 0..g {
            m[gi] = acc[gi * cg..(gi + 1) * cg].iter().sum::<f64>() / n;
        }
        acc[..c].iter_mut().for_each(|v| *v = 0.0);
        for pos in 0..hw {
            for ch in 0..c {
                let d = xs[pos * c + ch].to_f64() - m[ch / cg];
                acc[ch] += d * d;
            }
        }
        for gi in 0..g {
            let var = acc[gi * cg..(gi + 1) * cg].iter().sum::<f64>() / n;
            rs[gi] = 1.0 / (var + NORM_EPS).sqrt();
        }
    }

    pub fn forward<R: Scalar>(&self, p: &[R], x: &[R], batch: usize, hw: usize, y: &mut [R], scratch: &mut [f64]) {
        let (c, g) = (self.c, self.groups);
        let cg = c / g;
        let (gamma, beta) = p.split_at(c);
        let (m, rest) = scratch.split_at_mut(g);
        let (rs, acc) = rest.split_at_mut(g);
        for b in 0..batch {
            let xs = &x[b * hw * c..(b + 1) * hw * c];
            self.stats(xs, hw, m, rs, acc);
            let ys = &mut y[b * hw * c..(b + 1) * hw * c];
            for pos in 0..hw {
                for ch in 0..c {
                    let gi = ch / cg;
                    let xh = (xs[pos * c + ch] - R::from_f64(m[gi])) * R::from_f64(rs[gi]);
                    ys[pos * c + ch] = xh * gamma[ch] + beta[ch];
                }
            }
        }
    }

    /// VJP: overwrites dx, adds dγ, dβ to dp.
    pub fn backward<R: Scalar>(&self, p: &[R], x: &[R], batch: usize, hw: usize, dy: &[R], dx: &mut [R], dp: &mut [R], scratch: &mut [f64]) {
        let (c, g) = (self.c, self.groups);
        let cg = c / g;
        let n = (cg * hw) as f64;
        let gamma = &p[..c];
        let (m, rest) = scratch.split_at_mut(g);
        let (rs, rest) = rest.split_at_mut(g);
        let (acc, rest) = rest.split_at_mut(c);
        let (sdy, rest) = rest.split_at_mut(c);
        let (sdyx, gm) = rest.split_at_mut(c);
        for b in 0..batch {
            let xs = &x[b * hw * c..(b + 1) * hw * c];
            let dys = &dy[b * hw * c..(b + 1) * hw * c];
            self.stats(xs, hw, m, rs, acc);
            sdy.iter_mut().for_each(|v| *v = 0.0);
            sdyx.iter_mut().for_each(|v| *v = 0.0);
            for pos in 0..hw {
                for ch in 0..c {
                    let gi = ch / cg;
                    let xh = (xs[pos * c + ch].to_f64() - m[gi]) * rs[gi];
                    let d = dys[pos * c + ch].to_f64();
                    sdy[ch] += d;
                    sdyx[ch] += d * xh;
                }
            }
            for ch in 0..c {
                dp[ch] += R::from_f64(sdyx[ch]);
                dp[c + ch] += R::from_f64(sdy[ch]);
            }
            // per group: mean(dy·γ) and mean(dy·γ·x̂), kept in gm[0..g], gm[g..2g]
            for gi in 0..g {
                let (mut a1, mut a2) = (0.0, 0.0);
                for ch in gi * cg..(gi + 1) * cg {
                    let gc = gamma[ch].to_f64();
                    a1 += gc * sdy[ch];
                    a2 += gc * sdyx[ch];
                }
                gm[gi] = a1 / n;
                gm[g + gi] = a2 / n;
            }
            let dxs = &mut dx[b * hw * c..(b + 1) * hw * c];
            for pos in 0..hw {
                for ch in 0..c {
                    let gi = ch / cg;
                    let i = pos * c + ch;
                    let xh = (xs[i].to_f64() - m[gi]) * rs[gi];
                    let v = rs[gi] * (dys[i].to_f64() * gamma[ch].to_f64() - gm[gi] - xh * gm[g + gi]);
                    dxs[i] = R::from_f64(v);
                }
            }
        }
    }
}

pub fn relu_forward<R: Scalar>(x: &[R], y: &mut [R]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o = if *v > R::ZERO { *v } else { R::ZERO };
    }
}

pub fn relu_backward<R: Scalar>(x: &[R], dy: &[R], dx: &mut [R]) {
    for ((o, v), d) in dx.iter_mut().zip(x).zip(dy) {
        *o = if *v > R::ZERO { *d } else { R::ZERO };
    }
}

/// Global average pooling: y[b][c] = mean over positions of x[b][pos][c].
pub fn pool_forward<R: Scalar>(x: &[R], batch: usize, hw: usize, c: usize, y: &mut [R]) {
    let inv = R::from_f64(1.0 / hw as f64);
    for b in 0..batch {
        let yr = &mut y[b * c..(b + 1) * c];
        yr.iter_mut().for_each(|v| *v = R::ZERO);
        for pos in 0..hw {
            for (o, v) in yr.iter_mut().zip(&x[(b * hw + pos) * c..(b * hw + pos + 1) * c]) {
                *o += *v;
            }
        }
        yr.iter_mut().for_each(|v| *v = *v * inv);
    }
}

pub fn pool_backward<R: Scalar>(dy: &[R], batch: usize, hw: usize, c: usize, dx: &mut [R]) {
    let inv = R::from_f64(1.0 / hw as f64);
    for b in 0..batch {
        for pos in 0..hw {
            for (o, v) in dx[(b * hw + pos) * c..(b * hw + pos + 1) * c].iter_mut().zip(&dy[b * c..(b + 1) * c]) {
                *o = *v * inv;
            }
        }
    }
}

/// Mean softmax cross-entropy over the rows of `logits` (batch × classes) and its gradient
/// (scaled by 1/batch). Returns (mean loss, number of rows whose arg-max equals the label).
/// Computed in f64 with the core's own exp/ln (identical bits everywhere).
pub fn softmax_xent<R: Scalar>(logits: &[R], labels: &[i32], classes: usize, dlogits: &mut [R]) -> Result<(f64, usize)> {
    let batch = labels.len();
    if batch == 0 || logits.len() != batch * classes || dlogits.len() != logits.len() {
        return Err(Error::invalid("labels: length does not match the logits"));
    }
    let inv = 1.0 / batch as f64;
    let mut loss = 0.0;
    let mut correct = 0;
    for b in 0..batch {
        let l = &logits[b * classes..(b + 1) * classes];
        let y = labels[b];
        if y < 0 || y as usize >= classes {
            return Err(Error::invalid(format!("labels: element {} is {} (must be in [0, {}))", b, y, classes)));
        }
        let (mut mx, mut arg) = (l[0].to_f64(), 0);
        for (i, v) in l.iter().enumerate() {
            if v.to_f64() > mx {
                mx = v.to_f64();
                arg = i;
            }
        }
        if !mx.is_finite() {
            return Err(Error::new(crate::error::Code::NonFinite, "logits are not finite"));
        }
        correct += (arg == y as usize) as usize;
        let mut s = 0.0;
        for v in l {
            s += Float::exp(v.to_f64() - mx);
        }
        let lse = mx + Float::ln(s);
        loss += lse - l[y as usize].to_f64();
        let d = &mut dlogits[b * classes..(b + 1) * classes];
        for i in 0..classes {
            let pr = Float::exp(l[i].to_f64() - lse);
            d[i] = R::from_f64((pr - if i == y as usize { 1.0 } else { 0.0 }) * inv);
        }
    }
    Ok((loss * inv, correct))
}

/// Arg-max of each row (first maximum), and the same mean cross-entropy without gradient.
pub fn argmax_rows<R: Scalar>(logits: &[R], classes: usize, out: &mut [i32]) {
    for (b, o) in out.iter_mut().enumerate() {
        let l = &logits[b * classes..(b + 1) * classes];
        let mut arg = 0;
        for i in 1..classes {
            if l[i] > l[arg] {
                arg = i;
            }
        }
        *o = arg as i32;
    }
}

#[cfg(test)]
mod tests;
