//! Exact trace of a two-hidden-layer field in closed form, and its reverse pass.
//!
//! For f = W3 σ2(W2 σ1(W1 z + b1) + b2) + b3 (each linear layer may also take t as a column),
//! with d1 = σ1'(h1), d2 = σ2'(h2) per row,
//!   tr ∂f/∂z = tr(W3 D2 W2 D1 W1) = Σ_{j,i} d2[j] C[j,i] d1[i],   C = W2 ⊙ G,  G = W3ᵀ W1ᵀ
//! (G[j,i] = Σ_k W3[k,j] W1[i,k], k over the D input columns). C does not depend on the batch,
//! so the trace of every row costs one gemm U = D1·Cᵀ and a row dot d2·u: one layer's work,
//! where stacking the D tangents e_k under the primal rows costs D times the hidden gemm.
//!
//! Reverse pass, with cotangents a_f (of f) and c (of tr) per row:
//!   ∂/∂h2 = (a_f W3) ⊙ d2 + c·u ⊙ σ2'',      ∂/∂h1 = (∂/∂h2 · W2) ⊙ d1 + c·v ⊙ σ1'',  v = C d2
//!   ∂C = Σ_rows c·d2 d1ᵀ = S,  ∂W2 += S ⊙ G,  ∂G = S ⊙ W2,
//!   ∂W3[k,j] += Σ_i ∂G[j,i] W1[i,k],  ∂W1[i,k] += Σ_j ∂G[j,i] W3[k,j],
//! plus the usual linear-layer terms. Six hidden-size gemms of B rows per VJP instead of nine
//! on (1 + D)·B rows (forward 3, weight gradient 3, input gradient 3 for D = 2).

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::mlp::{act_d1, act_d2};
use crate::math::Act;
use crate::nn::LayerSpec;
use crate::real::same_bits;
use crate::tensor::gemm::GemmArgs;
use crate::tensor::{self, Scalar};

/// One linear layer of the pattern: parameter offset, widths, and whether column 0 is t.
#[derive(Clone, Copy, Debug)]
struct Lin {
    off: usize,
    d_in: usize,
    d_out: usize,
    concat: bool,
}

impl Lin {
    fn of(s: &LayerSpec, off: usize) -> Option<Lin> {
        match *s {
            LayerSpec::Linear { d_in, d_out } => Some(Lin { off, d_in, d_out, concat: false }),
            LayerSpec::ConcatLinear { d_in, d_out } => Some(Lin { off, d_in, d_out, concat: true }),
            _ => None,
        }
    }
    /// Leading dimension of the weight rows.
    fn ld(&self) -> usize {
        self.d_in + self.concat as usize
    }
    /// Offset of W[o][i] = p[w0 + o·ld + i] (past the time column).
    fn w0(&self) -> usize {
        self.off + self.concat as usize
    }
    /// Offset of the bias.
    fn b0(&self) -> usize {
        self.off + self.d_out * self.ld()
    }
    /// Bias plus the time column times t.
    fn beff<R: Scalar>(&self, p: &[R], tr: R, out: &mut [R]) {
        let (ld, b0) = (self.ld(), self.b0());
        for o in 0..self.d_out {
            out[o] = if self.concat { p[self.off + o * ld] * tr + p[b0 + o] } else { p[b0 + o] };
        }
    }
    /// Bias gradient Σ_rows g (written into dp), its time column, and the returned ∂/∂t.
    fn bias_time_grad<R: Scalar>(&self, b: usize, g: &[R], p: &[R], tr: R, dp: &mut [R]) -> f64 {
        let (ld, b0) = (self.ld(), self.b0());
        tensor::bias_grad_raw(b, self.d_out, g, &mut dp[b0..b0 + self.d_out], false);
        let mut dt = 0.0;
        if self.concat {
            for o in 0..self.d_out {
                let db = dp[b0 + o];
                dp[self.off + o * ld] = db * tr;
                dt += (db * p[self.off + o * ld]).to_f64();
            }
        }
        dt
    }
}

pub struct ClosedTrace<R: Scalar> {
    l: [Lin; 3],
    act: [Act; 2],
    batch: usize,
    z: Vec<R>,
    y1: Vec<R>,
    d1: Vec<R>,
    y2: Vec<R>,
    d2: Vec<R>,
    f: Vec<R>,
    u: Vec<R>,
    tr: Vec<R>,
    /// G (H2 × H1), C (H2 × H1), Cᵀ (H1 × H2), S / ∂G (H2 × H1).
    g: Vec<R>,
    c: Vec<R>,
    ct: Vec<R>,
    s: Vec<R>,
    /// Transposed weights W1ᵀ, W2ᵀ, W3ᵀ (the forward gemms' B operands).
    wt: [Vec<R>; 3],
    /// The parameters G, C, Cᵀ and `wt` were computed from: they are recomputed only when the
    /// parameters change (once per solve, not per evaluation).
    pcache: Vec<R>,
    beff: Vec<R>,
    // reverse pass
    af: Vec<R>,
    cr: Vec<R>,
    gh2: Vec<R>,
    cd2: Vec<R>,
    v: Vec<R>,
    gh1: Vec<R>,
}

impl<R: Scalar> ClosedTrace<R> {
    /// The closed form applies to `[lin, act, lin, act, lin]` with linear or concat-linear
    /// layers and activations whose derivatives follow from their output (not cube).
    pub fn new(specs: &[LayerSpec], param_off: &[usize]) -> Option<Self> {
        if specs.len() != 5 || param_off.len() != 5 {
            return None;
        }
        let l = [Lin::of(&specs[0], param_off[0])?, Lin::of(&specs[2], param_off[2])?, Lin::of(&specs[4], param_off[4])?];
        let act_of = |s: &LayerSpec| match *s {
            LayerSpec::Act { act, .. } if act != Act::Cube => Some(act),
            _ => None,
        };
        let act = [act_of(&specs[1])?, act_of(&specs[3])?];
        let (h1, h2) = (l[0].d_out, l[1].d_out);
        Some(ClosedTrace {
            l,
            act,
            batch: 0,
            z: Vec::new(),
            y1: Vec::new(),
            d1: Vec::new(),
            y2: Vec::new(),
            d2: Vec::new(),
            f: Vec::new(),
            u: Vec::new(),
            tr: Vec::new(),
            g: vec![R::ZERO; h1 * h2],
            c: vec![R::ZERO; h1 * h2],
            ct: vec![R::ZERO; h1 * h2],
            s: vec![R::ZERO; h1 * h2],
            wt: [vec![R::ZERO; l[0].d_in * h1], vec![R::ZERO; h1 * h2], vec![R::ZERO; h2 * l[2].d_out]],
            pcache: Vec::new(),
            beff: vec![R::ZERO; h1.max(h2).max(l[2].d_out)],
            af: Vec::new(),
            cr: Vec::new(),
            gh2: Vec::new(),
            cd2: Vec::new(),
            v: Vec::new(),
            gh1: Vec::new(),
        })
    }

    /// Sizes the row buffers for `b` rows (allocates only when the batch grows).
    fn size(&mut self, b: usize) {
        self.batch = b;
        let (d, h1, h2) = (self.l[0].d_in, self.l[0].d_out, self.l[1].d_out);
        let grow = |v: &mut Vec<R>, n: usize| {
            if v.len() < n {
                v.resize(n, R::ZERO);
            }
        };
        for (v, n) in [
            (&mut self.z, b * d),
            (&mut self.y1, b * h1),
            (&mut self.d1, b * h1),
            (&mut self.y2, b * h2),
            (&mut self.d2, b * h2),
            (&mut self.f, b * d),
            (&mut self.u, b * h2),
            (&mut self.tr, b),
            (&mut self.af, b * d),
            (&mut self.cr, b),
            (&mut self.gh2, b * h2),
            (&mut self.cd2, b * h2),
            (&mut self.v, b * h1),
            (&mut self.gh1, b * h1),
        ] {
            grow(v, n);
        }
    }

    /// The input rows z (B × D) to fill before `forward`.
    pub fn input(&mut self, b: usize) -> &mut [R] {
        self.size(b);
        let d = self.l[0].d_in;
        &mut self.z[..b * d]
    }

    /// Recomputes the batch-independent matrices when the parameters differ (bitwise) from
    /// those they were computed from.
    fn refresh(&mut self, p: &[R]) {
        if same_bits(&self.pcache, p) {
            return;
        }
        let [l1, l2, l3] = self.l;
        let (d, h1, h2) = (l1.d_in, l1.d_out, l2.d_out);
        for (wt, l) in self.wt.iter_mut().zip(&self.l) {
            tensor::transpose_raw(l.d_out, l.d_in, &p[l.w0()..], l.ld(), wt);
        }
        // G, C = W2 ⊙ G and Cᵀ
        let (w1, w2, w3) = (&p[l1.w0()..], &p[l2.w0()..], &p[l3.w0()..]);
        let (ld1, ld2, ld3) = (l1.ld(), l2.ld(), l3.ld());
        for j in 0..h2 {
            for i in 0..h1 {
                let mut s = R::ZERO;
                for k in 0..d {
                    s += w3[k * ld3 + j] * w1[i * ld1 + k];
                }
                self.g[j * h1 + i] = s;
                let c = w2[j * ld2 + i] * s;
                self.c[j * h1 + i] = c;
                self.ct[i * h2 + j] = c;
            }
        }
        self.pcache.clear();
        self.pcache.extend_from_slice(p);
    }

    /// f (B × D) and tr ∂f/∂z (B) of the rows set by `input`.
    pub fn forward(&mut self, p: &[R], t: f64) {
        self.refresh(p);
        let b = self.batch;
        let [l1, l2, l3] = self.l;
        let (d, h1, h2) = (l1.d_in, l1.d_out, l2.d_out);
        let tr = R::from_f64(t);
        let y1 = &mut self.y1[..b * h1];
        let d1 = &mut self.d1[..b * h1];
        let y2 = &mut self.y2[..b * h2];
        let d2 = &mut self.d2[..b * h2];
        // the gemms of tensor::linear_forward with the cached transposes
        l1.beff(p, tr, &mut self.beff);
        gemm_act(b, h1, d, &self.z[..b * d], &self.wt[0], Some(&self.beff[..h1]), self.act[0], y1);
        act_d1(self.act[0], y1, y1, d1);
        l2.beff(p, tr, &mut self.beff);
        gemm_act(b, h2, h1, y1, &self.wt[1], Some(&self.beff[..h2]), self.act[1], y2);
        act_d1(self.act[1], y2, y2, d2);
        l3.beff(p, tr, &mut self.beff);
        gemm_act(b, d, h2, y2, &self.wt[2], Some(&self.beff[..d]), Act::Identity, &mut self.f[..b * d]);
        // U = D1·Cᵀ, tr = Σ_j d2·u
        let u = &mut self.u[..b * h2];
        gemm(b, h2, h1, d1, h1, &self.ct, h2, u);
        row_dots(b, h2, d2, u, &mut self.tr[..b]);
    }

    pub fn f(&self) -> &[R] {
        &self.f[..self.batch * self.l[0].d_in]
    }

    pub fn trace(&self) -> &[R] {
        &self.tr[..self.batch]
    }

    /// Cotangent buffers to fill after `forward`: a_f (B × D) and c (B), the cotangent of tr.
    pub fn cotangents(&mut self) -> (&mut [R], &mut [R]) {
        let (b, d) = (self.batch, self.l[0].d_in);
        (&mut self.af[..b * d], &mut self.cr[..b])
    }

    /// Reverse pass after `forward` with `cotangents` filled: the gradient w.r.t. z (B × D) and the
    /// parameters (overwritten); returns the derivative w.r.t. t. Without `params` the weight
    /// gradients are skipped (dp then holds only scratch; z and t are unchanged, bit for bit).
    pub fn backward(&mut self, p: &[R], t: f64, out_z: &mut [R], dp: &mut [R], params: bool) -> f64 {
        let b = self.batch;
        let [l1, l2, l3] = self.l;
        let (d, h1, h2) = (l1.d_in, l1.d_out, l2.d_out);
        let tr = R::from_f64(t);
        let (w1, w2, w3) = (&p[l1.w0()..], &p[l2.w0()..], &p[l3.w0()..]);
        let (ld1, ld2, ld3) = (l1.ld(), l2.ld(), l3.ld());
        let (af, cr) = (&self.af[..b * d], &self.cr[..b]);
        let (y1, d1, y2, d2, u) = (&self.y1[..b * h1], &self.d1[..b * h1], &self.y2[..b * h2], &self.d2[..b * h2], &self.u[..b * h2]);
        let mut dt = 0.0;
        // last layer (the bias gradients also give ∂/∂t: always)
        if params {
            tensor::linear_grad_weight_raw(b, h2, d, af, y2, &mut dp[l3.w0()..], ld3, false);
        }
        dt += l3.bias_time_grad(b, af, p, tr, dp);
        let gh2 = &mut self.gh2[..b * h2];
        tensor::linear_grad_input_raw(b, h2, d, af, w3, ld3, gh2);
        // ∂/∂h2 and c·d2
        let cd2 = &mut self.cd2[..b * h2];
        // σ2'' into cd2 first, then c·d2 over it
        act_d2_slice(self.act[1], y2, d2, cd2);
        for r in 0..b {
            let c = cr[r];
            let (g, e, dd, uu) = (&mut gh2[r * h2..(r + 1) * h2], &mut cd2[r * h2..(r + 1) * h2], &d2[r * h2..(r + 1) * h2], &u[r * h2..(r + 1) * h2]);
            for j in 0..h2 {
                g[j] = g[j] * dd[j] + c * uu[j] * e[j];
                e[j] = c * dd[j];
            }
        }
        // S = Σ_rows c·d2 d1ᵀ; v·c = (c·D2)·C
        let s = &mut self.s[..h2 * h1];
        let v = &mut self.v[..b * h1];
        gemm(b, h1, h2, cd2, h2, &self.c, h1, v);
        // middle layer: ∂W2 = S ⊙ G + Σ_rows gh2 y1ᵀ, then S becomes ∂G = S ⊙ W2
        let w20 = l2.w0();
        if params {
            tensor::linear_grad_weight_raw(b, h1, h2, cd2, d1, s, h1, false);
            for j in 0..h2 {
                for i in 0..h1 {
                    dp[w20 + j * ld2 + i] = s[j * h1 + i] * self.g[j * h1 + i];
                    s[j * h1 + i] = s[j * h1 + i] * w2[j * ld2 + i];
                }
            }
            tensor::linear_grad_weight_raw(b, h1, h2, gh2, y1, &mut dp[w20..], ld2, true);
        }
        dt += l2.bias_time_grad(b, gh2, p, tr, dp);
        let gh1 = &mut self.gh1[..b * h1];
        tensor::linear_grad_input_raw(b, h1, h2, gh2, w2, ld2, gh1);
        // σ1'' inline: tanh's −2·y·σ' in a loop the compiler can vectorise, others through act_d2
        match self.act[0] {
            Act::Tanh => {
                let m2 = R::from_f64(-2.0);
                for q in 0..b * h1 {
                    gh1[q] = gh1[q] * d1[q] + v[q] * (m2 * y1[q] * d1[q]);
                }
            }
            a1 => {
                for q in 0..b * h1 {
                    gh1[q] = gh1[q] * d1[q] + v[q] * act_d2(a1, y1[q], y1[q], d1[q]);
                }
            }
        }
        // first layer
        let w10 = l1.w0();
        dt += l1.bias_time_grad(b, gh1, p, tr, dp);
        tensor::linear_grad_input_raw(b, d, h1, gh1, w1, ld1, &mut out_z[..b * d]);
        if !params {
            return dt;
        }
        tensor::linear_grad_weight_raw(b, d, h1, gh1, &self.z[..b * d], &mut dp[w10..], ld1, false);
        // ∂G into W3 and W1
        // (sums over j run across rows of S, so many columns i accumulate side by side)
        let w30 = l3.w0();
        let acc = &mut self.v[..h1];
        for k in 0..d {
            for j in 0..h2 {
                let mut a = R::ZERO;
                for i in 0..h1 {
                    a += s[j * h1 + i] * w1[i * ld1 + k];
                }
                dp[w30 + k * ld3 + j] += a;
            }
            acc.iter_mut().for_each(|x| *x = R::ZERO);
            for j in 0..h2 {
                let wk = w3[k * ld3 + j];
                let sr = &s[j * h1..(j + 1) * h1];
                for i in 0..h1 {
                    acc[i] += sr[i] * wk;
                }
            }
            for i in 0..h1 {
                dp[w10 + i * ld1 + k] += acc[i];
            }
        }
        dt
    }
}

/// out[r] = Σ_j x[r][j]·y[r][j] (j increasing), rows in groups of 8 so that the independent
/// sums overlap instead of each waiting on its previous add.
fn row_dots<R: Scalar>(b: usize, n: usize, x: &[R], y: &[R], out: &mut [R]) {
    const G: usize = 8;
    let mut r = 0;
    while r + G <= b {
        let mut acc = [R::ZERO; G];
        for j in 0..n {
            for q in 0..G {
                acc[q] += x[(r + q) * n + j] * y[(r + q) * n + j];
            }
        }
        out[r..r + G].copy_from_slice(&acc);
        r += G;
    }
    for r in r..b {
        let mut acc = R::ZERO;
        for j in 0..n {
            acc += x[r * n + j] * y[r * n + j];
        }
        out[r] = acc;
    }
}

/// σ''(x) from y = σ(x) and d = σ'(x), elementwise (the activation chosen once, outside the loop).
fn act_d2_slice<R: Scalar>(act: Act, y: &[R], d: &[R], out: &mut [R]) {
    let n = out.len();
    let (y, d) = (&y[..n], &d[..n]);
    match act {
        Act::Tanh => {
            let m2 = R::from_f64(-2.0);
            (0..n).for_each(|q| out[q] = m2 * y[q] * d[q]);
        }
        _ => (0..n).for_each(|q| out[q] = act_d2(act, y[q], y[q], d[q])),
    }
}

/// Y (m × n) = act(X (m × k) · B (k × n) + bias), all dense.
fn gemm_act<R: Scalar>(m: usize, n: usize, k: usize, x: &[R], b: &[R], bias: Option<&[R]>, act: Act, y: &mut [R]) {
    R::gemm_raw(&GemmArgs { m, n, k, a: x, ars: k, acs: 1, b, ldb: n, ldc: n, accumulate: false, bias, act }, y);
}

/// C (m × n, dense) = A (m × k, row stride lda) · B (k × n, row stride ldb).
fn gemm<R: Scalar>(m: usize, n: usize, k: usize, a: &[R], lda: usize, b: &[R], ldb: usize, c: &mut [R]) {
    R::gemm_raw(&GemmArgs { m, n, k, a, ars: lda, acs: 1, b, ldb, ldc: n, accumulate: false, bias: None, act: Act::Identity }, c);
}
