//! The paper's planar CNF (Section 4): dz/dt = Σ_m u_m·tanh(w_mᵀz + b_m), u_m = U_m ⊙ σ(G_m),
//! where a small hypernetwork of t produces W, U, G (M × D each) and b (M). Jacobian-vector
//! products J·v = Σ_m u_m (1 − h_m²)(w_m·v) and their reverse pass are written out by hand:
//! every per-row piece is a gemm over the batch.

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::error::{Error, Result};
use crate::math::Act;
use crate::nn::{LayerSpec, Net};
use crate::tensor::{self, Scalar};

pub struct Planar<R: Scalar> {
    pub hyper: Net<R>,
    d: usize,
    m: usize,
    hws: Vec<R>,
    /// Hypernetwork output [W (M×D), U (M×D), G (M×D), b (M)].
    hp: Vec<R>,
    sg: Vec<R>,
    /// uᵀ as a [D][M] weight.
    ut: Vec<R>,
    batch: usize,
    k: usize,
    /// [h; (1 − h²) ⊙ s_1; …]: (1 + K)·B × M.
    q: Vec<R>,
    /// s_k = rows of v_k·w_m: K·B × M.
    s: Vec<R>,
    /// z (B × D) and the tangents (K·B × D).
    z: Vec<R>,
    v: Vec<R>,
    /// Output stack [f; J·v_1; …] and its cotangent: (1 + K)·B × D.
    out: Vec<R>,
    g: Vec<R>,
    qbar: Vec<R>,
    abar: Vec<R>,
    sbar: Vec<R>,
    dut: Vec<R>,
    cot: Vec<R>,
    wt: Vec<R>,
    /// Tangents are the unit vectors (exact trace): s_k does not depend on the row.
    unit: bool,
}

impl<R: Scalar> Planar<R> {
    /// `hidden`: widths of the hypernetwork's hidden layers (tanh); `m`: number of units.
    pub fn new(d: usize, m: usize, hidden: &[usize]) -> Result<Self> {
        if d == 0 || m == 0 {
            return Err(Error::invalid("width: planar units and dim must be >= 1"));
        }
        let nout = m.checked_mul(d).and_then(|v| v.checked_mul(3)).and_then(|v| v.checked_add(m)).ok_or_else(|| Error::invalid("width: too large"))?;
        let mut specs = Vec::new();
        let mut w = 1;
        for &h in hidden {
            specs.push(LayerSpec::Linear { d_in: w, d_out: h });
            specs.push(LayerSpec::Act { act: Act::Tanh, dim: h });
            w = h;
        }
        specs.push(LayerSpec::Linear { d_in: w, d_out: nout });
        let hyper = Net::<R>::new(&specs)?;
        let hws = vec![R::ZERO; hyper.workspace_len(1)];
        Ok(Planar {
            hyper,
            d,
            m,
            hws,
            hp: vec![R::ZERO; nout],
            sg: vec![R::ZERO; m * d],
            ut: vec![R::ZERO; m * d],
            batch: 0,
            k: 0,
            q: Vec::new(),
            s: Vec::new(),
            z: Vec::new(),
            v: Vec::new(),
            out: Vec::new(),
            g: Vec::new(),
            qbar: Vec::new(),
            abar: Vec::new(),
            sbar: Vec::new(),
            dut: vec![R::ZERO; m * d],
            cot: vec![R::ZERO; nout],
            wt: vec![R::ZERO; m * d],
            unit: false,
        })
    }

    pub fn dim(&self) -> usize {
        self.d
    }
    pub fn units(&self) -> usize {
        self.m
    }

    pub fn input(&mut self, z: &[R], batch: usize, tangents: &[R], k: usize, unit: bool) -> Result<()> {
        let (d, m) = (self.d, self.m);
        let rows = batch.checked_mul(k + 1).ok_or_else(|| Error::invalid("batch: too large"))?;
        let grow = |v: &mut Vec<R>, n: usize| {
            if v.len() < n {
                v.resize(n, R::ZERO);
            }
        };
        grow(&mut self.q, rows * m);
        grow(&mut self.qbar, rows * m);
        grow(&mut self.s, k * batch * m);
        grow(&mut self.sbar, batch * m);
        grow(&mut self.abar, batch * m);
        grow(&mut self.z, batch * d);
        grow(&mut self.v, k * batch * d);
        grow(&mut self.out, rows * d);
        grow(&mut self.g, rows * d);
        self.batch = batch;
        self.k = k;
        self.unit = unit;
        self.z[..batch * d].copy_from_slice(z);
        self.v[..k * batch * d].copy_from_slice(&tangents[..k * batch * d]);
        Ok(())
    }

    pub fn forward(&mut self, params: &[R], t: f64) -> Result<()> {
        let (d, m, b, k) = (self.d, self.m, self.batch, self.k);
        let md = m * d;
        self.hyper.forward(params, t, &[R::from_f64(t)], 1, &mut self.hp, &mut self.hws)?;
        let (w, rest) = self.hp.split_at(md);
        let (u, rest) = rest.split_at(md);
        let (gg, bias) = rest.split_at(md);
        self.sg.copy_from_slice(gg);
        R::sigmoid_slice(&mut self.sg);
        for mm in 0..m {
            for i in 0..d {
                self.ut[i * m + mm] = u[mm * d + i] * self.sg[mm * d + i];
            }
        }
        let (h, qt) = self.q.split_at_mut(b * m);
        tensor::linear_forward_raw(b, d, m, &self.z[..b * d], w, d, Some(&bias[..m]), Act::Tanh, h, &mut self.wt);
        for kk in 0..k {
            let sk = &mut self.s[kk * b * m..(kk + 1) * b * m];
            if self.unit {
                for r in 0..b {
                    for mm in 0..m {
                        sk[r * m + mm] = w[mm * d + kk];
                    }
                }
            } else {
                tensor::linear_forward_raw(b, d, m, &self.v[kk * b * d..(kk + 1) * b * d], w, d, None, Act::Identity, sk, &mut self.wt);
            }
            let qk = &mut qt[kk * b * m..(kk + 1) * b * m];
            for j in 0..b * m {
                qk[j] = (R::ONE - h[j] * h[j]) * sk[j];
            }
        }
        let rows = (k + 1) * b;
        tensor::linear_forward_raw(rows, m, d, &self.q[..rows * m], &self.ut, m, None, Act::Identity, &mut self.out[..rows * d], &mut self.wt);
        Ok(())
    }

    pub fn output(&self) -> &[R] {
        &self.out[..(self.k + 1) * self.batch * self.d]
    }

    /// The output stack and its cotangent buffer, to be filled before `backward`.
    pub fn out_and_cotangent(&mut self) -> (&[R], &mut [R]) {
        let n = (self.k + 1) * self.batch * self.d;
        (&self.out[..n], &mut self.g[..n])
    }

    pub fn backward(&mut self, params: &[R], t: f64, out_z: &mut [R], out_p: &mut [R]) -> Result<f64> {
        let (d, m, b, k) = (self.d, self.m, self.batch, self.k);
        let md = m * d;
        let rows = (k + 1) * b;
        let g = &self.g[..rows * d];
        // ū (as the [D][M] weight gradient of uᵀ) and q̄
        tensor::linear_grad_weight_raw(rows, m, d, g, &self.q[..rows * m], &mut self.dut, m, false);
        tensor::linear_grad_input_raw(rows, m, d, g, &self.ut, m, &mut self.qbar[..rows * m]);
        let h = &self.q[..b * m];
        let (hbar, qbt) = self.qbar[..rows * m].split_at(b * m);
        let abar = &mut self.abar[..b * m];
        let two = R::from_f64(2.0);
        for j in 0..b * m {
            let dd = R::ONE - h[j] * h[j];
            let mut dbar = R::ZERO;
            for kk in 0..k {
                dbar = dbar + qbt[kk * b * m + j] * self.s[kk * b * m + j];
            }
            abar[j] = hbar[j] * dd - dbar * (two * h[j] * dd);
        }
        let (cw, rest) = self.cot.split_at_mut(md);
        let (cu, rest) = rest.split_at_mut(md);
        let (cg, cb) = rest.split_at_mut(md);
        let (w, rest) = self.hp.split_at(md);
        let u = &rest[..md];
        tensor::linear_grad_weight_raw(b, d, m, abar, &self.z[..b * d], cw, d, false);
        tensor::bias_grad_raw(b, m, abar, cb, false);
        tensor::linear_grad_input_raw(b, d, m, abar, w, d, &mut out_z[..b * d]);
        // s_k = w·v_k: s̄_k = q̄_k ⊙ (1 − h²)
        for kk in 0..k {
            let sbar = &mut self.sbar[..b * m];
            for j in 0..b * m {
                sbar[j] = qbt[kk * b * m + j] * (R::ONE - h[j] * h[j]);
            }
            if self.unit {
                for r in 0..b {
                    for mm in 0..m {
                        cw[mm * d + kk] = cw[mm * d + kk] + sbar[r * m + mm];
                    }
                }
            } else {
                tensor::linear_grad_weight_raw(b, d, m, sbar, &self.v[kk * b * d..(kk + 1) * b * d], cw, d, true);
            }
        }
        for mm in 0..m {
            for i in 0..d {
                let ub = self.dut[i * m + mm];
                let sgv = self.sg[mm * d + i];
                cu[mm * d + i] = ub * sgv;
                cg[mm * d + i] = ub * u[mm * d + i] * (sgv * (R::ONE - sgv));
            }
        }
        let mut dx = [R::ZERO];
        self.hyper.vjp(params, t, &[R::from_f64(t)], 1, &self.cot, None, &mut dx, out_p, &mut self.hws)?;
        Ok(dx[0].to_f64())
    }
}
