//! `Net<R>`: a sequential stack of layers evaluated batch-major with caller-provided workspace.
//!
//! Forward pass: every layer writes its output into a workspace "slot" (`batch × d_out`). A
//! Linear/ConcatLinear layer followed by tanh/relu/softplus/sigmoid/elu/identity is fused: it
//! writes `act(x·Wᵀ + b)` straight into the activation's slot (its own slot is empty) — the
//! backward pass never needs the pre-activation, because those derivatives are functions of the
//! activation's output. ConcatSquash layers also keep their pre-gate value `W·x + b`.
//!
//! An evaluation record (`forward_rec` / `vjp_rec`) keeps what the backward pass reads — every
//! slot but a final Linear/ConcatLinear/ConcatSquash layer's output (written straight to `out`),
//! then the ConcatSquash pre-gates — so a VJP at a point evaluated before skips the forward pass.
//!
//! Workspace layout (elements, for a batch size B):
//! `[slots: B·Σ slot widths][z: B·Σ ConcatSquash widths][wt: max d_in·d_out]
//!  [g0: B·max width][g1: B·max width][vec: 4·max width]`.

#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::too_many_arguments)]

use core::marker::PhantomData;

use super::{Act, LayerSpec};
use crate::error::{Error, Result};
use crate::rng;
use crate::tensor::{self, Scalar};

/// A sequential neural vector field `f(t, x)` (parameters passed in, not owned).
#[derive(Clone, Debug)]
pub struct Net<R> {
    specs: Vec<LayerSpec>,
    param_off: Vec<usize>,
    num_params: usize,
    /// layer l writes into the slot of l+1 with the next layer's activation fused
    fused: Vec<bool>,
    /// per-row offset of layer l's slot
    slot_off: Vec<usize>,
    slots_w: usize,
    /// per-row offset of the z buffer of a ConcatSquash layer
    z_off: Vec<usize>,
    z_w: usize,
    /// per-row slot width an evaluation record keeps (all slots, or all but the final layer's
    /// when the backward pass does not read it)
    rec_slots_w: usize,
    max_wt: usize,
    max_dim: usize,
    _p: PhantomData<R>,
}

fn fusable(a: Act) -> bool {
    !matches!(a, Act::Cube)
}

struct Layout {
    slots: usize,
    z: usize,
    wt: usize,
    g: usize,
    vec: usize,
    total: usize,
}

impl<R: Scalar> Net<R> {
    /// Validate a layer stack and build its evaluation plan.
    pub fn new(specs: &[LayerSpec]) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::invalid("layers: need at least one layer"));
        }
        let mut param_off = Vec::with_capacity(specs.len());
        let mut np = 0usize;
        let mut max_wt = 0usize;
        let mut max_dim = 0usize;
        for (l, s) in specs.iter().enumerate() {
            if s.dim_in() == 0 || s.dim_out() == 0 {
                return Err(Error::invalid(format!("layers[{l}]: widths must be >= 1")));
            }
            if l > 0 && specs[l - 1].dim_out() != s.dim_in() {
                return Err(Error::invalid(format!(
                    "layers[{l}]: input width {} != previous output width {}",
                    s.dim_in(),
                    specs[l - 1].dim_out()
                )));
            }
            let p = s.num_params().ok_or_else(|| Error::invalid(format!("layers[{l}]: too many parameters")))?;
            param_off.push(np);
            np = np.checked_add(p).ok_or_else(|| Error::invalid("layers: too many parameters"))?;
            if !matches!(s, LayerSpec::Act { .. }) {
                let wt = s.dim_in().checked_mul(s.dim_out()).ok_or_else(|| Error::invalid(format!("layers[{l}]: too large")))?;
                max_wt = max_wt.max(wt);
            }
            max_dim = max_dim.max(s.dim_in()).max(s.dim_out());
        }
        let n = specs.len();
        let mut fused = vec![false; n];
        for l in 0..n.saturating_sub(1) {
            let lin = matches!(specs[l], LayerSpec::Linear { .. } | LayerSpec::ConcatLinear { .. });
            if let LayerSpec::Act { act, .. } = specs[l + 1] {
                if lin && fusable(act) {
                    fused[l] = true;
                }
            }
        }
        let mut slot_w = vec![0usize; n];
        let mut slot_off = vec![0usize; n];
        let mut z_off = vec![0usize; n];
        let mut acc = 0usize;
        let mut zacc = 0usize;
        for l in 0..n {
            slot_off[l] = acc;
            slot_w[l] = if fused[l] { 0 } else { specs[l].dim_out() };
            acc = acc.checked_add(slot_w[l]).ok_or_else(|| Error::invalid("layers: too large"))?;
            z_off[l] = zacc;
            if let LayerSpec::ConcatSquash { d_out, .. } = specs[l] {
                zacc = zacc.checked_add(d_out).ok_or_else(|| Error::invalid("layers: too large"))?;
            }
        }
        // The backward pass reads a layer's output only for activations (their derivative is a
        // function of it); a final linear layer's output goes straight to the caller.
        let rec_slots_w = if matches!(specs[n - 1], LayerSpec::Act { .. }) { acc } else { slot_off[n - 1] };
        Ok(Net {
            specs: specs.to_vec(),
            param_off,
            num_params: np,
            fused,
            slot_off,
            slots_w: acc,
            z_off,
            z_w: zacc,
            rec_slots_w,
            max_wt,
            max_dim,
            _p: PhantomData,
        })
    }

    pub fn specs(&self) -> &[LayerSpec] {
        &self.specs
    }
    pub fn num_params(&self) -> usize {
        self.num_params
    }
    pub fn dim_in(&self) -> usize {
        self.specs[0].dim_in()
    }
    pub fn dim_out(&self) -> usize {
        self.specs[self.specs.len() - 1].dim_out()
    }
    /// Offset of layer `l`'s parameters in the flat vector (`None` if out of range).
    pub fn param_offset(&self, l: usize) -> Option<usize> {
        self.param_off.get(l).copied()
    }

    fn layout(&self, batch: usize) -> Option<Layout> {
        let slots = batch.checked_mul(self.slots_w)?;
        let z = batch.checked_mul(self.z_w)?;
        let wt = self.max_wt;
        let g = batch.checked_mul(self.max_dim)?;
        let vec = self.max_dim.checked_mul(4)?;
        let total = slots.checked_add(z)?.checked_add(wt)?.checked_add(g.checked_mul(2)?)?.checked_add(vec)?;
        Some(Layout { slots, z, wt, g, vec, total })
    }

    /// Workspace elements needed by `forward`, `vjp` and `jvp` for `batch` rows
    /// (`usize::MAX` if the size overflows; the evaluation functions then return an error).
    pub fn workspace_len(&self, batch: usize) -> usize {
        self.layout(batch).map(|l| l.total).unwrap_or(usize::MAX)
    }

    fn check(&self, params: &[R], x: &[R], batch: usize, ws: &[R]) -> Result<Layout> {
        if params.len() != self.num_params {
            return Err(Error::invalid(format!("params: length {} != numParams {}", params.len(), self.num_params)));
        }
        let nx = batch.checked_mul(self.dim_in()).ok_or_else(|| Error::invalid("batch: too large"))?;
        if x.len() != nx {
            return Err(Error::invalid(format!("x: length {} != batch·dim_in = {nx}", x.len())));
        }
        batch.checked_mul(self.dim_out()).ok_or_else(|| Error::invalid("batch: too large"))?;
        let lay = self.layout(batch).ok_or_else(|| Error::invalid("batch: too large (workspace size overflows)"))?;
        if ws.len() < lay.total {
            return Err(Error::invalid(format!("ws: length {} < workspace_len(batch) = {}", ws.len(), lay.total)));
        }
        Ok(lay)
    }

    fn check_out(&self, name: &str, len: usize, want: usize) -> Result<()> {
        if len != want {
            Err(Error::invalid(format!("{name}: length {len} != {want}")))
        } else {
            Ok(())
        }
    }

    /// PyTorch default initialisation as a pure function of `seed`: parameter number p (flat
    /// index) is `bound·(2u − 1)`, `u = rng::uniform_f64(seed, p, 0)`, with bound
    /// 1/√fan_in: Linear fan_in = in; ConcatLinear in + 1; ConcatSquash W, b: in; h, g, c: 1.
    pub fn init_params(&self, seed: u64, out: &mut [R]) -> Result<()> {
        self.check_out("out", out.len(), self.num_params)?;
        for (l, s) in self.specs.iter().enumerate() {
            let off = self.param_off[l];
            let np = s.num_params().unwrap_or(0);
            for q in 0..np {
                let fan_in = match *s {
                    LayerSpec::Linear { d_in, .. } => d_in,
                    LayerSpec::ConcatLinear { d_in, .. } => d_in + 1,
                    LayerSpec::ConcatSquash { d_in, d_out } => {
                        if q < d_in * d_out + d_out {
                            d_in
                        } else {
                            1
                        }
                    }
                    LayerSpec::Act { .. } => 1,
                };
                let bound = 1.0 / (fan_in as f64).sqrt();
                let p = off + q;
                let u = rng::uniform_f64(seed, p as u64, 0);
                out[p] = R::from_f64(bound * (2.0 * u - 1.0));
            }
        }
        Ok(())
    }

    /// Runs layers `0..upto`. Layer l reads x (l = 0) or slot l−1 and writes its slot (or slot
    /// l+1 when fused); a final layer whose output the backward pass does not read (see
    /// `rec_slots_w`) writes straight into `fin` instead when `fin` is given (non-empty), so
    /// `slots` may then end before its slot.
    fn run_forward(&self, params: &[R], t: f64, x: &[R], batch: usize, upto: usize, slots: &mut [R], z: &mut [R], wt: &mut [R], vec: &mut [R], fin: &mut [R]) {
        let tr = R::from_f64(t);
        let last = self.specs.len() - 1;
        let mut l = 0;
        while l < upto {
            let s = self.specs[l];
            let (d_in, d_out) = (s.dim_in(), s.dim_out());
            let dst = if self.fused[l] { l + 1 } else { l };
            let direct = dst == last && self.rec_slots_w == self.slot_off[last] && !fin.is_empty();
            let out_off = if direct { slots.len() } else { batch * self.slot_off[dst] };
            let (lo, hi) = slots.split_at_mut(out_off);
            let input: &[R] = if l == 0 { x } else { &lo[batch * self.slot_off[l - 1]..batch * (self.slot_off[l - 1] + d_in)] };
            let out = if direct { &mut fin[..batch * d_out] } else { &mut hi[..batch * d_out] };
            let p = &params[self.param_off[l]..];
            let act = if self.fused[l] {
                match self.specs[l + 1] {
                    LayerSpec::Act { act, .. } => act,
                    _ => Act::Identity,
                }
            } else {
                Act::Identity
            };
            match s {
                LayerSpec::Linear { .. } => {
                    let (w, b) = (&p[..d_out * d_in], &p[d_out * d_in..d_out * d_in + d_out]);
                    // the activation in its own pass over the output, not in the gemm's epilogue:
                    // same bits, and a transcendental over one vector at a time compiles without
                    // the register spills of a whole register tile's worth (5-10% off an ode_demo evaluation)
                    tensor::linear_forward_raw(batch, d_in, d_out, input, w, d_in, Some(b), Act::Identity, out, wt);
                    R::act_slice(act, out);
                }
                LayerSpec::ConcatLinear { .. } => {
                    let ld = d_in + 1;
                    let (w, b) = (&p[..d_out * ld], &p[d_out * ld..d_out * ld + d_out]);
                    let beff = &mut vec[..d_out];
                    for o in 0..d_out {
                        beff[o] = w[o * ld] * tr + b[o];
                    }
                    tensor::linear_forward_raw(batch, d_in, d_out, input, &w[1..], ld, Some(&*beff), Act::Identity, out, wt);
                    R::act_slice(act, out);
                }
                LayerSpec::ConcatSquash { .. } => {
                    let nw = d_out * d_in;
                    let w = &p[..nw];
                    let b = &p[nw..nw + d_out];
                    let zb = &mut z[batch * self.z_off[l]..batch * (self.z_off[l] + d_out)];
                    tensor::linear_forward_raw(batch, d_in, d_out, input, w, d_in, Some(b), Act::Identity, zb, wt);
                    let (gate, rest) = vec.split_at_mut(d_out);
                    let hb = &mut rest[..d_out];
                    self.gate(p, d_in, d_out, tr, gate, hb);
                    for r in 0..batch {
                        let zr = &zb[r * d_out..(r + 1) * d_out];
                        let yr = &mut out[r * d_out..(r + 1) * d_out];
                        for o in 0..d_out {
                            yr[o] = zr[o] * gate[o] + hb[o];
                        }
                    }
                }
                LayerSpec::Act { act, .. } => {
                    out.copy_from_slice(&input[..batch * d_out]);
                    R::act_slice(act, out);
                }
            }
            l = if self.fused[l] { l + 2 } else { l + 1 };
        }
    }

    /// ConcatSquash gate `sigmoid(g·t + c)` and `h·t` per output.
    fn gate(&self, p: &[R], d_in: usize, d_out: usize, tr: R, gate: &mut [R], hb: &mut [R]) {
        let nw = d_out * d_in;
        let h = &p[nw + d_out..nw + 2 * d_out];
        let g = &p[nw + 2 * d_out..nw + 3 * d_out];
        let c = &p[nw + 3 * d_out..nw + 4 * d_out];
        for o in 0..d_out {
            gate[o] = (g[o] * tr + c[o]).sigmoid();
            hb[o] = h[o] * tr;
        }
    }

    /// The full forward pass into (slots, z); the result lands in `out`.
    fn forward_into(&self, params: &[R], t: f64, x: &[R], batch: usize, slots: &mut [R], z: &mut [R], wt: &mut [R], vec: &mut [R], out: &mut [R]) {
        let n = self.specs.len();
        self.run_forward(params, t, x, batch, n, slots, z, wt, vec, out);
        if self.rec_slots_w != self.slot_off[n - 1] {
            // the final layer is an activation: its output stays in its slot for the backward pass
            out.copy_from_slice(&slots[batch * self.slot_off[n - 1]..batch * (self.slot_off[n - 1] + self.dim_out())]);
        }
    }

    fn split<'a>(&self, lay: &Layout, ws: &'a mut [R]) -> (&'a mut [R], &'a mut [R], &'a mut [R], &'a mut [R], &'a mut [R], &'a mut [R]) {
        let (slots, rest) = ws.split_at_mut(lay.slots);
        let (z, rest) = rest.split_at_mut(lay.z);
        let (wt, rest) = rest.split_at_mut(lay.wt);
        let (g0, rest) = rest.split_at_mut(lay.g);
        let (g1, rest) = rest.split_at_mut(lay.g);
        let vec = &mut rest[..lay.vec];
        (slots, z, wt, g0, g1, vec)
    }

    /// `out = f(t, x)` for `batch` rows (`x`: batch × dim_in, `out`: batch × dim_out).
    pub fn forward(&self, params: &[R], t: f64, x: &[R], batch: usize, out: &mut [R], ws: &mut [R]) -> Result<()> {
        let lay = self.check(params, x, batch, ws)?;
        self.check_out("out", out.len(), batch * self.dim_out())?;
        let (slots, z, wt, _, _, vec) = self.split(&lay, ws);
        self.forward_into(params, t, x, batch, slots, z, wt, vec, out);
        Ok(())
    }

    /// Elements of an evaluation record for `batch` rows (see the module comment); `None` on
    /// overflow.
    pub fn rec_len(&self, batch: usize) -> Option<usize> {
        batch.checked_mul(self.rec_slots_w)?.checked_add(batch.checked_mul(self.z_w)?)
    }

    /// `forward` that also writes the evaluation record `rec` (`rec_len(batch)` elements) a
    /// later `vjp_rec` at the same (t, x) reads instead of recomputing the forward pass.
    pub fn forward_rec(&self, params: &[R], t: f64, x: &[R], batch: usize, out: &mut [R], ws: &mut [R], rec: &mut [R]) -> Result<()> {
        let lay = self.check(params, x, batch, ws)?;
        self.check_out("out", out.len(), batch * self.dim_out())?;
        let rl = self.rec_len(batch).ok_or_else(|| Error::invalid("batch: too large"))?;
        self.check_out("rec", rec.len(), rl)?;
        let (_, _, wt, _, _, vec) = self.split(&lay, ws);
        let (slots, z) = rec.split_at_mut(batch * self.rec_slots_w);
        self.forward_into(params, t, x, batch, slots, z, wt, vec, out);
        Ok(())
    }

    /// Vector-Jacobian product. With cotangent `a` (batch × dim_out): writes `out_x = a·∂f/∂x`
    /// (batch × dim_in), `out_params = Σ_rows a·∂f/∂θ` (overwritten), optionally `out_f = f(t,x)`,
    /// and returns `Σ_rows a·∂f/∂t`. Recomputes the forward pass itself.
    #[allow(clippy::too_many_arguments)]
    pub fn vjp(
        &self,
        params: &[R],
        t: f64,
        x: &[R],
        batch: usize,
        a: &[R],
        out_f: Option<&mut [R]>,
        out_x: &mut [R],
        out_params: &mut [R],
        ws: &mut [R],
    ) -> Result<f64> {
        let lay = self.check(params, x, batch, ws)?;
        self.check_vjp(batch, a, out_x, out_params)?;
        if let Some(f) = &out_f {
            self.check_out("out_f", f.len(), batch * self.dim_out())?;
        }
        let (slots, z, wt, g0, g1, vec) = self.split(&lay, ws);
        match out_f {
            Some(f) => self.forward_into(params, t, x, batch, slots, z, wt, vec, f),
            None => self.run_forward(params, t, x, batch, self.upto_without_out(), slots, z, wt, vec, &mut []),
        }
        Ok(self.backward(params, t, x, batch, slots, z, a, out_x, out_params, g0, g1, vec))
    }

    /// `vjp` (without out_f) from the record a `forward_rec` at the same (t, x) wrote: no
    /// forward pass.
    #[allow(clippy::too_many_arguments)]
    pub fn vjp_rec(&self, params: &[R], t: f64, x: &[R], batch: usize, rec: &[R], a: &[R], out_x: &mut [R], out_params: &mut [R], ws: &mut [R]) -> Result<f64> {
        let lay = self.check(params, x, batch, ws)?;
        self.check_vjp(batch, a, out_x, out_params)?;
        let rl = self.rec_len(batch).ok_or_else(|| Error::invalid("batch: too large"))?;
        self.check_out("rec", rec.len(), rl)?;
        let (_, _, _, g0, g1, vec) = self.split(&lay, ws);
        let (slots, z) = rec.split_at(batch * self.rec_slots_w);
        Ok(self.backward(params, t, x, batch, slots, z, a, out_x, out_params, g0, g1, vec))
    }

    /// Layers a VJP/JVP without out_f runs: the reverse pass of a final Linear/ConcatLinear reads
    /// only its input, so its forward is skipped (a ConcatSquash needs its pre-gate).
    fn upto_without_out(&self) -> usize {
        let n = self.specs.len();
        if matches!(self.specs[n - 1], LayerSpec::Linear { .. } | LayerSpec::ConcatLinear { .. }) { n - 1 } else { n }
    }

    fn check_vjp(&self, batch: usize, a: &[R], out_x: &[R], out_params: &[R]) -> Result<()> {
        self.check_out("a", a.len(), batch * self.dim_out())?;
        self.check_out("out_x", out_x.len(), batch * self.dim_in())?;
        self.check_out("out_params", out_params.len(), self.num_params)
    }

    /// The reverse pass of `vjp` over a forward pass's slots (at least `rec_slots_w` per row)
    /// and ConcatSquash pre-gates.
    #[allow(clippy::too_many_arguments)]
    fn backward(&self, params: &[R], t: f64, x: &[R], batch: usize, slots: &[R], z: &[R], a: &[R], out_x: &mut [R], out_params: &mut [R], g0: &mut [R], g1: &mut [R], vec: &mut [R]) -> f64 {
        let n = self.specs.len();
        let nout = batch * self.dim_out();
        let tr = R::from_f64(t);
        let mut dt = 0.0f64;
        g0[..nout].copy_from_slice(a);
        let (mut cur, mut nxt) = (g0, g1);
        for l in (0..n).rev() {
            let s = self.specs[l];
            let (d_in, d_out) = (s.dim_in(), s.dim_out());
            let input: &[R] = if l == 0 { x } else { &slots[batch * self.slot_off[l - 1]..batch * (self.slot_off[l - 1] + d_in)] };
            let go = &mut cur[..batch * d_out];
            let gi: &mut [R] = if l == 0 { &mut *out_x } else { &mut nxt[..batch * d_in] };
            let p = &params[self.param_off[l]..];
            let np = s.num_params().unwrap_or(0);
            let dp = &mut out_params[self.param_off[l]..self.param_off[l] + np];
            match s {
                LayerSpec::Linear { .. } => {
                    let nw = d_out * d_in;
                    let (dw, db) = dp.split_at_mut(nw);
                    tensor::linear_grad_weight_raw(batch, d_in, d_out, go, input, dw, d_in, false);
                    tensor::bias_grad_raw(batch, d_out, go, db, false);
                    tensor::linear_grad_input_raw(batch, d_in, d_out, go, &p[..nw], d_in, gi);
                }
                LayerSpec::ConcatLinear { .. } => {
                    let ld = d_in + 1;
                    let nw = d_out * ld;
                    let (dw, db) = dp.split_at_mut(nw);
                    tensor::linear_grad_weight_raw(batch, d_in, d_out, go, input, &mut dw[1..], ld, false);
                    tensor::bias_grad_raw(batch, d_out, go, db, false);
                    for o in 0..d_out {
                        dw[o * ld] = db[o] * tr;
                        dt += (db[o] * p[o * ld]).to_f64();
                    }
                    tensor::linear_grad_input_raw(batch, d_in, d_out, go, &p[1..nw], ld, gi);
                }
                LayerSpec::ConcatSquash { .. } => {
                    let nw = d_out * d_in;
                    let zb = &z[batch * self.z_off[l]..batch * (self.z_off[l] + d_out)];
                    let (gate, rest) = vec.split_at_mut(d_out);
                    let (hb, rest) = rest.split_at_mut(d_out);
                    let (sa, rest) = rest.split_at_mut(d_out);
                    let ds = &mut rest[..d_out];
                    self.gate(p, d_in, d_out, tr, gate, hb);
                    for o in 0..d_out {
                        sa[o] = R::ZERO;
                        ds[o] = R::ZERO;
                    }
                    for r in 0..batch {
                        let gr = &mut go[r * d_out..(r + 1) * d_out];
                        let zr = &zb[r * d_out..(r + 1) * d_out];
                        for o in 0..d_out {
                            sa[o] = sa[o] + gr[o];
                            ds[o] = ds[o] + gr[o] * zr[o];
                            gr[o] = gr[o] * gate[o]; // dz, in place
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
                    tensor::linear_grad_weight_raw(batch, d_in, d_out, go, input, dw, d_in, false);
                    tensor::bias_grad_raw(batch, d_out, go, db, false);
                    tensor::linear_grad_input_raw(batch, d_in, d_out, go, &p[..nw], d_in, gi);
                }
                LayerSpec::Act { act, .. } => {
                    let y = &slots[batch * self.slot_off[l]..batch * (self.slot_off[l] + d_out)];
                    act_deriv_mul(act, y, input, go, gi);
                }
            }
            core::mem::swap(&mut cur, &mut nxt);
        }
        dt
    }

    /// Jacobian-vector product w.r.t. the input: `out_jv = (∂f/∂x)·v` per row (v: batch ×
    /// dim_in, out_jv: batch × dim_out), optionally `out_f = f(t, x)`.
    #[allow(clippy::too_many_arguments)]
    pub fn jvp(
        &self,
        params: &[R],
        t: f64,
        x: &[R],
        batch: usize,
        v: &[R],
        out_f: Option<&mut [R]>,
        out_jv: &mut [R],
        ws: &mut [R],
    ) -> Result<()> {
        let lay = self.check(params, x, batch, ws)?;
        let (nin, nout) = (batch * self.dim_in(), batch * self.dim_out());
        self.check_out("v", v.len(), nin)?;
        self.check_out("out_jv", out_jv.len(), nout)?;
        if let Some(f) = &out_f {
            self.check_out("out_f", f.len(), nout)?;
        }
        let (slots, z, wt, g0, g1, vec) = self.split(&lay, ws);
        let n = self.specs.len();
        match out_f {
            Some(f) => self.forward_into(params, t, x, batch, slots, z, wt, vec, f),
            None => self.run_forward(params, t, x, batch, self.upto_without_out(), slots, z, wt, vec, &mut []),
        }
        let tr = R::from_f64(t);
        g0[..nin].copy_from_slice(v);
        let (mut cur, mut nxt) = (g0, g1);
        for l in 0..n {
            let s = self.specs[l];
            let (d_in, d_out) = (s.dim_in(), s.dim_out());
            let input: &[R] = if l == 0 { x } else { &slots[batch * self.slot_off[l - 1]..batch * (self.slot_off[l - 1] + d_in)] };
            let ti = &cur[..batch * d_in];
            let to: &mut [R] = if l == n - 1 { &mut *out_jv } else { &mut nxt[..batch * d_out] };
            let p = &params[self.param_off[l]..];
            match s {
                LayerSpec::Linear { .. } => {
                    tensor::linear_forward_raw(batch, d_in, d_out, ti, &p[..d_out * d_in], d_in, None, Act::Identity, to, wt);
                }
                LayerSpec::ConcatLinear { .. } => {
                    let ld = d_in + 1;
                    tensor::linear_forward_raw(batch, d_in, d_out, ti, &p[1..d_out * ld], ld, None, Act::Identity, to, wt);
                }
                LayerSpec::ConcatSquash { .. } => {
                    tensor::linear_forward_raw(batch, d_in, d_out, ti, &p[..d_out * d_in], d_in, None, Act::Identity, to, wt);
                    let (gate, rest) = vec.split_at_mut(d_out);
                    self.gate(p, d_in, d_out, tr, gate, &mut rest[..d_out]);
                    for r in 0..batch {
                        let tr_ = &mut to[r * d_out..(r + 1) * d_out];
                        for o in 0..d_out {
                            tr_[o] = tr_[o] * gate[o];
                        }
                    }
                }
                LayerSpec::Act { act, .. } => {
                    let y = &slots[batch * self.slot_off[l]..batch * (self.slot_off[l] + d_out)];
                    act_deriv_mul(act, y, input, ti, to);
                }
            }
            core::mem::swap(&mut cur, &mut nxt);
        }
        Ok(())
    }
}

/// `out = g ⊙ act'(·)`, the derivative taken from the activation's output `y` (or its input `x`
/// for cube). Softplus: σ(z) = −expm1(−y).
fn act_deriv_mul<R: Scalar>(act: Act, y: &[R], x: &[R], g: &[R], out: &mut [R]) {
    let n = out.len();
    let (y, x, g) = (&y[..n], &x[..n], &g[..n]);
    match act {
        Act::Identity => out.copy_from_slice(g),
        Act::Tanh => {
            for j in 0..n {
                out[j] = g[j] * (R::ONE - y[j] * y[j]);
            }
        }
        Act::Sigmoid => {
            for j in 0..n {
                out[j] = g[j] * (y[j] * (R::ONE - y[j]));
            }
        }
        Act::Relu => {
            for j in 0..n {
                out[j] = if y[j] > R::ZERO { g[j] } else { R::ZERO };
            }
        }
        Act::Elu => {
            for j in 0..n {
                out[j] = if y[j] > R::ZERO { g[j] } else { g[j] * (y[j] + R::ONE) };
            }
        }
        Act::Softplus => {
            for j in 0..n {
                out[j] = -y[j];
            }
            R::expm1_slice(out);
            for j in 0..n {
                out[j] = g[j] * -out[j];
            }
        }
        Act::Cube => {
            let three = R::from_f64(3.0);
            for j in 0..n {
                out[j] = g[j] * (x[j] * x[j] * three);
            }
        }
    }
}
