//! Image classifiers of the paper's Section 3: a sequence of layers (`Seq`) with an ODE block
//! (ODE-Net / RK-Net), residual blocks (ResNet) or neither (MLP), trained with softmax
//! cross-entropy. One call computes a batch's loss and full gradient.
//!
//! The ODE block's field is itself a `Seq` (GroupNorm → relu → ConcatConv → …) wrapped as a
//! `grad::VjpRhs`, so dopri5 and the three gradient modes come from `grad`: adjoint (ODE-Net,
//! memory independent of the number of steps) or backprop through the solver (RK-Net).
//!
//! Workspaces hold every layer's input for the backward pass (sized once per batch size).

#![allow(clippy::too_many_arguments)]

use crate::conv::{self, Conv2d, ConvScratch, GroupNorm};
use crate::error::{Code, Error, Result};
use crate::grad::{self, GradOptions, Mode, Tape, VjpRhs};
use crate::real::Real;
use crate::solver::{self, Method, Options, Rhs, Stats};
use crate::tensor::Scalar;

/// Per-sample activation shape (NHWC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn size(&self) -> usize {
        self.h * self.w * self.c
    }
}

pub enum Op {
    Conv(Conv2d),
    Norm(GroupNorm),
    Relu,
    /// Global average pooling to 1×1.
    Pool,
    /// (h, w, c) → (1, 1, h·w·c) (no data movement).
    Flatten,
    /// x + block(x)
    Res(Box<Seq>),
    /// The solution at t = 1 of z' = field(t, z), z(0) = x.
    Ode(Box<Seq>),
}

/// A validated sequence of layers with its shapes and parameter offsets.
pub struct Seq {
    pub ops: Vec<Op>,
    /// shapes[i] = input of op i; shapes[ops.len()] = output.
    pub shapes: Vec<Shape>,
    poff: Vec<usize>,
    np: usize,
}

const MAX_DIM: usize = 1 << 16;
const MAX_SIZE: usize = 1 << 24;

impl Seq {
    pub fn new(ops: Vec<Op>, input: Shape) -> Result<Seq> {
        let mut shapes = vec![input];
        let mut poff = Vec::with_capacity(ops.len());
        let mut np = 0usize;
        let bad = |i: usize, m: &str| Error::invalid(format!("layers[{i}]: {m}"));
        for (i, op) in ops.iter().enumerate() {
            let s = shapes[i];
            if s.h == 0 || s.w == 0 || s.c == 0 || s.h > MAX_DIM || s.w > MAX_DIM || s.c > MAX_DIM || s.h * s.w > MAX_SIZE || s.size() > MAX_SIZE {
                return Err(bad(i, "input shape out of range"));
            }
            let (out, p) = match op {
                Op::Conv(c) => {
                    if c.ci != s.c || c.co == 0 || c.co > MAX_DIM || c.k == 0 || c.k > 64 || c.stride == 0 || c.stride > 64 || c.pad > 64 {
                        return Err(bad(i, "convolution does not fit its input"));
                    }
                    let (oh, ow) = c.out_hw(s.h, s.w).ok_or_else(|| bad(i, "kernel larger than the padded input"))?;
                    if c.kdim() > MAX_SIZE || c.weight_len() > MAX_SIZE {
                        return Err(bad(i, "convolution too large"));
                    }
                    (Shape { h: oh, w: ow, c: c.co }, c.num_params())
                }
                Op::Norm(n) => {
                    if n.c != s.c || n.groups == 0 || n.c % n.groups != 0 {
                        return Err(bad(i, "group norm does not fit its input"));
                    }
                    (s, n.num_params())
                }
                Op::Relu => (s, 0),
                Op::Pool => (Shape { h: 1, w: 1, c: s.c }, 0),
                Op::Flatten => (Shape { h: 1, w: 1, c: s.size() }, 0),
                Op::Res(b) | Op::Ode(b) => {
                    if b.shapes[0] != s || b.output() != s {
                        return Err(bad(i, "a residual or ODE block must keep its input's shape"));
                    }
                    if b.ops.iter().any(|o| matches!(o, Op::Ode(_))) {
                        return Err(bad(i, "ODE blocks cannot be nested"));
                    }
                    (s, b.np)
                }
            };
            poff.push(np);
            np = np.checked_add(p).filter(|v| *v <= 1 << 28).ok_or_else(|| bad(i, "too many parameters"))?;
            shapes.push(out);
        }
        let last = shapes[shapes.len() - 1];
        if last.size() == 0 || last.size() > MAX_SIZE {
            return Err(Error::invalid("layers: output shape out of range"));
        }
        Ok(Seq { ops, shapes, poff, np })
    }

    pub fn num_params(&self) -> usize {
        self.np
    }
    pub fn input(&self) -> Shape {
        self.shapes[0]
    }
    pub fn output(&self) -> Shape {
        self.shapes[self.shapes.len() - 1]
    }
    fn max_size(&self) -> usize {
        self.shapes.iter().map(|s| s.size()).max().unwrap_or(0)
    }
    fn prange(&self, i: usize) -> core::ops::Range<usize> {
        let end = if i + 1 < self.poff.len() { self.poff[i + 1] } else { self.np };
        self.poff[i]..end
    }

    /// PyTorch's default initialisation as a pure function of the seed: conv/linear weights and
    /// biases uniform in ±1/√fan_in (value number p from `rng::uniform_f64(seed, p, 0)`),
    /// GroupNorm γ = 1, β = 0.
    pub fn init_params<R: Real>(&self, seed: u64, base: usize, out: &mut [R]) {
        for (i, op) in self.ops.iter().enumerate() {
            let r = self.prange(i);
            match op {
                Op::Conv(c) => {
                    let bound = 1.0 / ((c.cin() * c.k * c.k) as f64).sqrt();
                    for q in r {
                        let u = crate::rng::uniform_f64(seed, (base + q) as u64, 0);
                        out[q] = R::from_f64(bound * (2.0 * u - 1.0));
                    }
                }
                Op::Norm(n) => {
                    for (j, q) in r.enumerate() {
                        out[q] = if j < n.c { R::ONE } else { R::ZERO };
                    }
                }
                Op::Res(b) | Op::Ode(b) => {
                    let s = r.start;
                    b.init_params(seed, base + s, &mut out[r]);
                }
                _ => {}
            }
        }
    }

    /// Output of the last forward pass.
    pub fn output_of<'w, R: Scalar>(&self, ws: &'w SeqWs<R>) -> &'w [R] {
        &ws.acts[self.ops.len()]
    }

    /// Forward pass; every layer's input stays in `ws` for `backward`.
    pub fn forward<R: Scalar>(&self, p: &[R], t: f64, x: &[R], ws: &mut SeqWs<R>, ctx: &mut Ctx) -> Result<()> {
        let batch = ws.batch;
        if x.len() != batch * self.input().size() || p.len() != self.np {
            return Err(Error::invalid("x: length does not match the batch"));
        }
        let SeqWs { acts, conv, norm, subs, .. } = ws;
        acts[0].copy_from_slice(x);
        for (i, op) in self.ops.iter().enumerate() {
            let (ins, outs) = acts.split_at_mut(i + 1);
            let (x, y) = (&ins[i][..], &mut outs[0][..]);
            let s = self.shapes[i];
            let pp = &p[self.prange(i)];
            match op {
                Op::Conv(c) => c.forward(pp, t, x, batch, s.h, s.w, y, conv)?,
                Op::Norm(n) => n.forward(pp, x, batch, s.h * s.w, y, norm),
                Op::Relu => conv::relu_forward(x, y),
                Op::Pool => conv::pool_forward(x, batch, s.h * s.w, s.c, y),
                Op::Flatten => y.copy_from_slice(x),
                Op::Res(b) => {
                    let Sub::Res(sw) = &mut subs[i] else { return Err(internal()) };
                    b.forward(pp, t, x, sw, ctx)?;
                    for ((o, a), r) in y.iter_mut().zip(x).zip(b.output_of(sw)) {
                        *o = *a + *r;
                    }
                    if ctx.train {
                        ctx.depth_bytes += sw.stored_bytes();
                    }
                }
                Op::Ode(b) => {
                    let Sub::Ode(ow) = &mut subs[i] else { return Err(internal()) };
                    ode_forward(b, pp, x, y, ow, ctx)?;
                }
            }
        }
        Ok(())
    }

    /// Backward pass after `forward`: adds dL/dθ to `dp`, writes dL/dx to `dx` if given and
    /// returns dL/dt (time-conditioned layers).
    pub fn backward<R: Scalar>(&self, p: &[R], t: f64, ws: &mut SeqWs<R>, dy: &[R], dx: Option<&mut [R]>, dp: &mut [R], ctx: &mut Ctx) -> Result<f64> {
        let batch = ws.batch;
        let n = self.ops.len();
        if dy.len() != batch * self.output().size() || dp.len() != self.np {
            return Err(Error::invalid("dy: length does not match the batch"));
        }
        let want_dx = dx.is_some();
        let SeqWs { acts, g0, g1, conv, norm, subs, .. } = ws;
        g0[..dy.len()].copy_from_slice(dy);
        let mut dt = 0.0;
        for i in (0..n).rev() {
            let (si, so) = (self.shapes[i], self.shapes[i + 1]);
            let (lin, lout) = (batch * si.size(), batch * so.size());
            let x = &acts[i][..];
            let g = &g0[..lout];
            let d = &mut g1[..lin];
            let r = self.prange(i);
            let (pp, dpp) = (&p[r.clone()], &mut dp[r]);
            match &self.ops[i] {
                Op::Conv(c) => {
                    let dxo = if i > 0 || want_dx { Some(d) } else { None };
                    dt += c.backward(pp, t, x, batch, si.h, si.w, g, dxo, dpp, conv)?;
                }
                Op::Norm(nm) => nm.backward(pp, x, batch, si.h * si.w, g, d, dpp, norm),
                Op::Relu => conv::relu_backward(x, g, d),
                Op::Pool => conv::pool_backward(g, batch, si.h * si.w, si.c, d),
                Op::Flatten => d.copy_from_slice(g),
                Op::Res(b) => {
                    let Sub::Res(sw) = &mut subs[i] else { return Err(internal()) };
                    dt += b.backward(pp, t, sw, g, Some(&mut *d), dpp, ctx)?;
                    for (o, v) in d.iter_mut().zip(g) {
                        *o += *v;
                    }
                }
                Op::Ode(b) => {
                    let Sub::Ode(ow) = &mut subs[i] else { return Err(internal()) };
                    ode_backward(b, pp, g, d, dpp, ow, ctx)?;
                }
            }
            core::mem::swap(g0, g1);
        }
        if let Some(dx) = dx {
            let l = batch * self.input().size();
            dx.copy_from_slice(&g0[..l]);
        }
        Ok(dt)
    }
}

fn internal() -> Error {
    Error::invalid("workspace does not match the network")
}

/// What a forward/backward pass needs besides data, and what it counts.
pub struct Ctx<'a> {
    pub go: &'a GradOptions,
    /// Keep what the backward pass needs (tapes); false for inference.
    pub train: bool,
    pub nfe_forward: u64,
    pub nfe_backward: u64,
    pub steps: u64,
    /// Bytes stored for the backward pass by the depth part (residual blocks / ODE tape).
    pub depth_bytes: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(go: &'a GradOptions, train: bool) -> Self {
        Ctx { go, train, nfe_forward: 0, nfe_backward: 0, steps: 0, depth_bytes: 0 }
    }
}

pub enum Sub<R: Real> {
    None,
    Res(SeqWs<R>),
    Ode(OdeWs<R>),
}

pub struct OdeWs<R: Real> {
    field: SeqWs<R>,
    tape: Option<Tape<R>>,
    /// dL/dys for the tape ([0; n] then dL/dz(1)), and the inference solve's output.
    buf: Vec<R>,
}

/// Buffers of a `Seq` for one batch size.
pub struct SeqWs<R: Real> {
    batch: usize,
    acts: Vec<Vec<R>>,
    g0: Vec<R>,
    g1: Vec<R>,
    conv: ConvScratch<R>,
    norm: Vec<f64>,
    subs: Vec<Sub<R>>,
}

impl<R: Scalar> SeqWs<R> {
    pub fn new(seq: &Seq) -> Self {
        let subs = seq
            .ops
            .iter()
            .map(|op| match op {
                Op::Res(b) => Sub::Res(SeqWs::new(b)),
                Op::Ode(b) => Sub::Ode(OdeWs { field: SeqWs::new(b), tape: None, buf: Vec::new() }),
                _ => Sub::None,
            })
            .collect();
        let mut conv = ConvScratch::default();
        let mut norm_len = 0;
        for op in &seq.ops {
            match op {
                Op::Conv(c) => conv.reserve(c),
                Op::Norm(n) => norm_len = norm_len.max(conv::norm_scratch_len(n.c)),
                _ => {}
            }
        }
        SeqWs { batch: 0, acts: seq.shapes.iter().map(|_| Vec::new()).collect(), g0: Vec::new(), g1: Vec::new(), conv, norm: vec![0.0; norm_len], subs }
    }

    /// Sizes the buffers for `batch` rows (reallocates only when it grows).
    pub fn ensure(&mut self, seq: &Seq, batch: usize) -> Result<()> {
        if batch == self.batch {
            return Ok(());
        }
        let total = batch.checked_mul(seq.max_size()).filter(|v| *v <= 1 << 31).ok_or_else(|| Error::new(Code::OutOfMemory, "batch too large for the network"))?;
        for (a, s) in self.acts.iter_mut().zip(&seq.shapes) {
            a.resize(batch * s.size(), R::ZERO);
        }
        self.g0.resize(total, R::ZERO);
        self.g1.resize(total, R::ZERO);
        for (sub, op) in self.subs.iter_mut().zip(&seq.ops) {
            match (sub, op) {
                (Sub::Res(w), Op::Res(b)) => w.ensure(b, batch)?,
                (Sub::Ode(w), Op::Ode(b)) => {
                    w.field.ensure(b, batch)?;
                    w.buf.resize(2 * batch * b.input().size(), R::ZERO);
                }
                _ => {}
            }
        }
        self.batch = batch;
        Ok(())
    }

    /// Bytes of the stored layer inputs (what a backward pass needs from this sequence).
    pub fn stored_bytes(&self) -> usize {
        self.acts.iter().map(|a| a.len()).sum::<usize>() * R::BYTES
    }

    /// Bytes of the workspace in use for the current batch size.
    pub fn bytes(&self) -> usize {
        let own = (self.acts.iter().map(|a| a.len()).sum::<usize>() + self.g0.len() + self.g1.len()) * R::BYTES + self.conv.bytes() + self.norm.len() * 8;
        own + self
            .subs
            .iter()
            .map(|s| match s {
                Sub::None => 0,
                Sub::Res(w) => w.bytes(),
                Sub::Ode(w) => w.field.bytes() + w.buf.len() * R::BYTES,
            })
            .sum::<usize>()
    }
}

/// The ODE block's field f(t, z) as a right-hand side with VJPs.
pub struct FieldRhs<'a, R: Scalar> {
    pub seq: &'a Seq,
    pub p: &'a [R],
    pub ws: &'a mut SeqWs<R>,
    pub go: &'a GradOptions,
}

impl<'a, R: Scalar> FieldRhs<'a, R> {
    fn batch(&mut self, n: usize) -> Result<()> {
        let d = self.seq.input().size();
        if n == 0 || n % d != 0 {
            return Err(Error::invalid(format!("y: length {} is not a positive multiple of {}", n, d)));
        }
        self.ws.ensure(self.seq, n / d)
    }
}

impl<'a, R: Scalar> Rhs<R> for FieldRhs<'a, R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        self.batch(y.len())?;
        let mut ctx = Ctx::new(self.go, false);
        self.seq.forward(self.p, t, y, self.ws, &mut ctx)?;
        dy.copy_from_slice(self.seq.output_of(self.ws));
        Ok(())
    }
}

impl<'a, R: Scalar> VjpRhs<R> for FieldRhs<'a, R> {
    fn num_params(&self) -> usize {
        self.seq.num_params()
    }
    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        self.batch(y.len())?;
        let mut ctx = Ctx::new(self.go, true);
        self.seq.forward(self.p, t, y, self.ws, &mut ctx)?;
        if let Some(f) = out_f {
            f.copy_from_slice(self.seq.output_of(self.ws));
        }
        out_p.iter_mut().for_each(|v| *v = R::ZERO);
        self.seq.backward(self.p, t, self.ws, a, Some(out_y), out_p, &mut ctx)
    }
}

fn ode_forward<R: Scalar>(b: &Seq, p: &[R], x: &[R], y: &mut [R], ow: &mut OdeWs<R>, ctx: &mut Ctx) -> Result<()> {
    let n = x.len();
    let mut rhs = FieldRhs { seq: b, p, ws: &mut ow.field, go: ctx.go };
    if ctx.train {
        let tape = grad::forward(&mut rhs, x, &[0.0, 1.0], ctx.go)?;
        y.copy_from_slice(&tape.ys[n..2 * n]);
        ctx.nfe_forward += tape.forward_stats.nfe;
        ctx.steps += tape.forward_stats.steps;
        ctx.depth_bytes += tape.stored_bytes();
        ow.tape = Some(tape);
    } else {
        let mut st = Stats::default();
        solver::solve(&mut rhs, x, &[0.0, 1.0], &ctx.go.forward, &mut ow.buf[..2 * n], &mut st, None)?;
        y.copy_from_slice(&ow.buf[n..2 * n]);
        ctx.nfe_forward += st.nfe;
        ctx.steps += st.steps;
    }
    Ok(())
}

fn ode_backward<R: Scalar>(b: &Seq, p: &[R], dy: &[R], dx: &mut [R], dp: &mut [R], ow: &mut OdeWs<R>, ctx: &mut Ctx) -> Result<()> {
    let n = dy.len();
    let tape = ow.tape.take().ok_or_else(|| Error::invalid("backward: no forward pass to differentiate"))?;
    let dl = &mut ow.buf[..2 * n];
    dl[..n].iter_mut().for_each(|v| *v = R::ZERO);
    dl[n..].copy_from_slice(dy);
    let mut rhs = FieldRhs { seq: b, p, ws: &mut ow.field, go: ctx.go };
    let g = grad::backward(&mut rhs, tape, &ow.buf[..2 * n])?;
    for (o, v) in dx.iter_mut().zip(&g.y0) {
        *o = R::from_f64(*v);
    }
    for (o, v) in dp.iter_mut().zip(&g.params) {
        *o += R::from_f64(*v);
    }
    ctx.nfe_backward += g.stats.nfe;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The classifiers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// torchdiffeq's odenet_mnist: conv downsampling, ODE block of ConcatConvs, pool + linear.
    Conv,
    /// An ODE block on a `width` projection of the flattened input.
    Mlp,
    /// Same downsampling and head as `Conv`, `blocks` residual blocks instead of the ODE block.
    ResNet,
    /// One hidden layer of `width` relu units.
    Dense,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
    /// Input as the user passes it: channels, height, width (NCHW rows).
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub classes: usize,
    pub width: usize,
    pub blocks: usize,
    pub go: GradOptions,
}

/// Largest group count ≤ 32 dividing c (torchdiffeq: GroupNorm(min(32, c), c)).
pub fn norm_groups(c: usize) -> usize {
    (1..=c.min(32)).rev().find(|g| c % g == 0).unwrap_or(1)
}

pub fn build(cfg: &Config) -> Result<Seq> {
    let w = cfg.width;
    if w == 0 || w > 4096 || cfg.classes < 2 || cfg.classes > 4096 || cfg.blocks > 64 {
        return Err(Error::invalid("width, classes or blocks out of range"));
    }
    let conv = |ci, co, k, stride, pad, bias, time| Op::Conv(Conv2d { ci, co, k, stride, pad, bias, time });
    let lin = |ci, co| Op::Conv(Conv2d { ci, co, k: 1, stride: 1, pad: 0, bias: true, time: false });
    // 1×1 activations ('mlp'): one group (a layer norm); groups of 2 values would be ±1 steps
    let groups = if cfg.arch == Arch::Mlp { 1 } else { norm_groups(w) };
    let norm = || Op::Norm(GroupNorm { groups, c: w });
    let input = Shape { h: cfg.in_h, w: cfg.in_w, c: cfg.in_c };
    let d = input.size();
    let field = |time: bool, k: usize| -> Vec<Op> {
        let pad = k / 2;
        vec![norm(), Op::Relu, conv(w, w, k, 1, pad, true, time), norm(), Op::Relu, conv(w, w, k, 1, pad, true, time), norm()]
    };
    let head = |flat_first: bool| -> Vec<Op> {
        let mut v = vec![norm(), Op::Relu];
        if !flat_first {
            v.push(Op::Pool);
        }
        v.push(Op::Flatten);
        v.push(lin(w, cfg.classes));
        v
    };
    let down = || vec![conv(cfg.in_c, w, 3, 1, 0, true, false), norm(), Op::Relu, conv(w, w, 4, 2, 1, true, false), norm(), Op::Relu, conv(w, w, 4, 2, 1, true, false)];
    let mut ops = Vec::new();
    match cfg.arch {
        Arch::Conv | Arch::ResNet => {
            ops.extend(down());
            // the block input shape: run the downsampling alone once
            let s = Seq::new(down(), input)?.output();
            if cfg.arch == Arch::Conv {
                ops.push(Op::Ode(Box::new(Seq::new(field(true, 3), s)?)));
            } else {
                for _ in 0..cfg.blocks {
                    let mut b = field(false, 3);
                    b.pop(); // a residual block ends with its second convolution
                    if let Some(Op::Conv(c)) = b.get_mut(2) {
                        c.bias = false;
                    }
                    if let Some(Op::Conv(c)) = b.last_mut() {
                        c.bias = false;
                    }
                    ops.push(Op::Res(Box::new(Seq::new(b, s)?)));
                }
            }
            ops.extend(head(false));
        }
        Arch::Mlp => {
            ops.push(Op::Flatten);
            ops.push(lin(d, w));
            ops.push(Op::Ode(Box::new(Seq::new(field(true, 1), Shape { h: 1, w: 1, c: w })?)));
            ops.extend(head(true));
        }
        Arch::Dense => {
            ops.extend([Op::Flatten, lin(d, w), Op::Relu, lin(w, cfg.classes)]);
        }
    }
    Seq::new(ops, input)
}

/// Figures of one training step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepStats {
    pub loss: f64,
    pub correct: usize,
    pub nfe_forward: u64,
    pub nfe_backward: u64,
    pub steps: u64,
    pub depth_bytes: usize,
    /// Workspace bytes + the allocator's peak above them during the step.
    pub memory_bytes: usize,
}

pub struct Classifier<R: Scalar> {
    pub cfg: Config,
    pub seq: Seq,
    pub params: Vec<R>,
    ws: SeqWs<R>,
    grad: Vec<R>,
    xin: Vec<R>,
    dlogits: Vec<R>,
}

/// Rows per evaluation chunk (bounds inference memory).
pub const EVAL_CHUNK: usize = 256;

impl<R: Scalar> Classifier<R> {
    pub fn new(cfg: Config, seed: u64) -> Result<Self> {
        let seq = build(&cfg)?;
        let mut params = vec![R::ZERO; seq.num_params()];
        seq.init_params(seed, 0, &mut params);
        let ws = SeqWs::new(&seq);
        Ok(Classifier { grad: vec![R::ZERO; params.len()], params, ws, seq, cfg, xin: Vec::new(), dlogits: Vec::new() })
    }

    pub fn input_size(&self) -> usize {
        self.seq.input().size()
    }

    /// NCHW f32 rows → the network's NHWC input in R.
    fn load(&mut self, x: &[f32], batch: usize) -> Result<()> {
        let (c, h, w) = (self.cfg.in_c, self.cfg.in_h, self.cfg.in_w);
        let d = c * h * w;
        if x.len() != batch * d {
            return Err(Error::invalid(format!("x: length {} != rows × {}", x.len(), d)));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("x: must be finite"));
        }
        self.xin.resize(batch * d, R::ZERO);
        for b in 0..batch {
            for ch in 0..c {
                for pos in 0..h * w {
                    self.xin[b * d + pos * c + ch] = R::from_f64(x[b * d + ch * h * w + pos] as f64);
                }
            }
        }
        self.ws.ensure(&self.seq, batch)?;
        self.dlogits.resize(batch * self.cfg.classes, R::ZERO);
        Ok(())
    }

    /// Mean cross-entropy of a batch and its gradient (f64, params layout) in `out`.
    pub fn loss_grad(&mut self, x: &[f32], labels: &[i32], out: &mut [f64]) -> Result<StepStats> {
        let batch = labels.len();
        if batch == 0 {
            return Err(Error::invalid("labels: must not be empty"));
        }
        if out.len() != self.params.len() {
            return Err(Error::invalid("grad: wrong length"));
        }
        self.load(x, batch)?;
        let live0 = crate::alloc::stats().live_bytes;
        crate::alloc::reset_peak();
        let mut ctx = Ctx::new(&self.cfg.go, true);
        self.seq.forward(&self.params, 0.0, &self.xin, &mut self.ws, &mut ctx)?;
        let (loss, correct) = conv::softmax_xent(self.seq.output_of(&self.ws), labels, self.cfg.classes, &mut self.dlogits)?;
        self.grad.iter_mut().for_each(|v| *v = R::ZERO);
        self.seq.backward(&self.params, 0.0, &mut self.ws, &self.dlogits, None, &mut self.grad, &mut ctx)?;
        let peak = crate::alloc::stats().peak_bytes.saturating_sub(live0);
        for (o, g) in out.iter_mut().zip(&self.grad) {
            *o = g.to_f64();
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(Error::new(Code::NonFinite, "the gradient is not finite"));
        }
        Ok(StepStats {
            loss,
            correct,
            nfe_forward: ctx.nfe_forward,
            nfe_backward: ctx.nfe_backward,
            steps: ctx.steps,
            depth_bytes: ctx.depth_bytes,
            memory_bytes: self.ws.bytes() + peak,
        })
    }

    /// Predicted classes of `pred.len()` rows; with labels also the summed loss and the number
    /// correct. Returns (loss sum, correct, forward NFE summed over chunks, chunks).
    pub fn evaluate(&mut self, x: &[f32], labels: Option<&[i32]>, pred: &mut [i32]) -> Result<(f64, usize, u64, usize)> {
        let n = pred.len();
        let d = self.input_size();
        if x.len() != n * d || labels.is_some_and(|l| l.len() != n) {
            return Err(Error::invalid("x: length does not match the number of rows"));
        }
        let (mut loss, mut correct, mut nfe, mut chunks) = (0.0, 0, 0, 0);
        let k = self.cfg.classes;
        let mut r0 = 0;
        while r0 < n {
            let nr = EVAL_CHUNK.min(n - r0);
            self.load(&x[r0 * d..(r0 + nr) * d], nr)?;
            let mut ctx = Ctx::new(&self.cfg.go, false);
            self.seq.forward(&self.params, 0.0, &self.xin, &mut self.ws, &mut ctx)?;
            let logits = self.seq.output_of(&self.ws);
            conv::argmax_rows(logits, k, &mut pred[r0..r0 + nr]);
            if let Some(l) = labels {
                let (lm, c) = conv::softmax_xent(logits, &l[r0..r0 + nr], k, &mut self.dlogits)?;
                loss += lm * nr as f64;
                correct += c;
            }
            nfe += ctx.nfe_forward;
            chunks += 1;
            r0 += nr;
        }
        Ok((loss, correct, nfe, chunks))
    }
}

/// Gradient options of an ODE block from tolerances (dopri5 etc.).
pub fn grad_options(method: Method, rtol: f64, atol: f64, mode: Mode, step_size: Option<f64>, max_steps: u64) -> GradOptions {
    let forward = Options { method, rtol, atol: vec![atol], step_size, max_steps, ..Options::default() };
    GradOptions { mode, forward, adjoint_rtol: rtol, adjoint_atol: atol, seminorm: true }
}

#[cfg(test)]
mod tests;
