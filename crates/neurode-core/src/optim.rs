//! Optimisers with PyTorch semantics: [`Adam`], [`Sgd`] (momentum), [`RmsProp`].
//!
//! Element arithmetic is done in the parameter type `R` with the hyper-parameters rounded to R
//! (as PyTorch does with Python scalars), in PyTorch's expression order; scalar bias
//! corrections are computed in f64 (`beta^t` by binary powering: basic operations only).
//! State save/restore: `state()` returns a flat f64 vector `[step, buffers…]`, `set_state`
//! validates and restores it (f32 state values are exact in f64).

#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::error::{Error, Result};
use crate::real::Real;

fn check_len(params: usize, grads: usize, n: usize) -> Result<()> {
    if params != n {
        return Err(Error::invalid(format!("params: length {params} != optimiser size {n}")));
    }
    if grads != n {
        return Err(Error::invalid(format!("grads: length {grads} != optimiser size {n}")));
    }
    Ok(())
}

fn check_hyper(name: &str, v: f64, lo: f64, hi_exclusive: Option<f64>) -> Result<()> {
    let ok = v.is_finite() && v >= lo && hi_exclusive.map_or(true, |h| v < h);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(match hi_exclusive {
            Some(h) => format!("{name}: must be finite and in [{lo}, {h}), got {v}"),
            None => format!("{name}: must be finite and >= {lo}, got {v}"),
        }))
    }
}

/// x^n by binary powering (basic operations only, deterministic).
pub fn powi(x: f64, mut n: u64) -> f64 {
    let mut base = x;
    let mut acc = 1.0;
    while n > 0 {
        if n & 1 == 1 {
            acc *= base;
        }
        base *= base;
        n >>= 1;
    }
    acc
}

fn restore<R: Real>(s: &[f64], n_buffers: usize, n: usize, what: &str) -> Result<(u64, Vec<Vec<R>>)> {
    let want = 1 + n_buffers * n;
    if s.len() != want {
        return Err(Error::invalid(format!("state: length {} != {want} for {what} of size {n}", s.len())));
    }
    let step = s[0];
    if !(step >= 0.0 && step <= 9007199254740992.0 && step == step.trunc()) {
        return Err(Error::invalid(format!("state: step count must be a non-negative integer, got {step}")));
    }
    let bufs = (0..n_buffers).map(|b| s[1 + b * n..1 + (b + 1) * n].iter().map(|&v| R::from_f64(v)).collect()).collect();
    Ok((step as u64, bufs))
}

/// Adam (Kingma & Ba) as torch.optim.Adam (amsgrad = false): with g ← g + wd·p,
/// `m = β1·m + (1−β1)·g`, `v = β2·v + ((1−β2)·g)·g`,
/// `p ← p + (−lr/(1−β1^t))·m / (sqrt(v)/sqrt(1−β2^t) + eps)`.
#[derive(Clone, Debug)]
pub struct Adam<R> {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    step: u64,
    m: Vec<R>,
    v: Vec<R>,
}

impl<R: Real> Adam<R> {
    /// `n` parameters; PyTorch defaults are betas (0.9, 0.999), eps 1e-8, weight_decay 0.
    pub fn new(n: usize, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<Self> {
        check_hyper("lr", lr, 0.0, None)?;
        check_hyper("betas[0]", betas.0, 0.0, Some(1.0))?;
        check_hyper("betas[1]", betas.1, 0.0, Some(1.0))?;
        check_hyper("eps", eps, 0.0, None)?;
        check_hyper("weightDecay", weight_decay, 0.0, None)?;
        Ok(Adam { lr, beta1: betas.0, beta2: betas.1, eps, weight_decay, step: 0, m: vec![R::ZERO; n], v: vec![R::ZERO; n] })
    }
    /// PyTorch defaults with the given learning rate.
    pub fn with_lr(n: usize, lr: f64) -> Result<Self> {
        Self::new(n, lr, (0.9, 0.999), 1e-8, 0.0)
    }
    pub fn len(&self) -> usize {
        self.m.len()
    }
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }
    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn step(&mut self, params: &mut [R], grads: &[R]) -> Result<()> {
        check_len(params.len(), grads.len(), self.m.len())?;
        self.step += 1;
        let bc1 = 1.0 - powi(self.beta1, self.step);
        let bc2 = 1.0 - powi(self.beta2, self.step);
        let step_size = R::from_f64(-(self.lr / bc1));
        let bc2_sqrt = R::from_f64(bc2.sqrt());
        let (b1, b2) = (R::from_f64(self.beta1), R::from_f64(self.beta2));
        let (ob1, ob2) = (R::from_f64(1.0 - self.beta1), R::from_f64(1.0 - self.beta2));
        let eps = R::from_f64(self.eps);
        let wd = R::from_f64(self.weight_decay);
        let use_wd = self.weight_decay != 0.0;
        for i in 0..params.len() {
            let mut g = grads[i];
            if use_wd {
                g = g + wd * params[i];
            }
            let m = b1 * self.m[i] + ob1 * g;
            let v = b2 * self.v[i] + ob2 * g * g;
            self.m[i] = m;
            self.v[i] = v;
            let denom = v.sqrt() / bc2_sqrt + eps;
            params[i] = params[i] + step_size * m / denom;
        }
        Ok(())
    }

    /// `[step, m[0..n], v[0..n]]`
    pub fn state(&self) -> Vec<f64> {
        let mut s = Vec::with_capacity(1 + 2 * self.m.len());
        s.push(self.step as f64);
        s.extend(self.m.iter().map(|x| x.to_f64()));
        s.extend(self.v.iter().map(|x| x.to_f64()));
        s
    }
    pub fn set_state(&mut self, s: &[f64]) -> Result<()> {
        let (step, mut b) = restore::<R>(s, 2, self.m.len(), "Adam")?;
        self.v = b.pop().unwrap_or_default();
        self.m = b.pop().unwrap_or_default();
        self.step = step;
        Ok(())
    }
}

/// SGD as torch.optim.SGD (dampening 0, no Nesterov): g ← g + wd·p; with momentum μ > 0,
/// `buf = g` on the first step, else `buf = μ·buf + g`; `p ← p + (−lr)·buf` (or `·g` without
/// momentum).
#[derive(Clone, Debug)]
pub struct Sgd<R> {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    step: u64,
    buf: Vec<R>,
}

impl<R: Real> Sgd<R> {
    pub fn new(n: usize, lr: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
        check_hyper("lr", lr, 0.0, None)?;
        check_hyper("momentum", momentum, 0.0, None)?;
        check_hyper("weightDecay", weight_decay, 0.0, None)?;
        Ok(Sgd { lr, momentum, weight_decay, step: 0, buf: vec![R::ZERO; n] })
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn step(&mut self, params: &mut [R], grads: &[R]) -> Result<()> {
        check_len(params.len(), grads.len(), self.buf.len())?;
        let nlr = R::from_f64(-self.lr);
        let mu = R::from_f64(self.momentum);
        let wd = R::from_f64(self.weight_decay);
        let use_wd = self.weight_decay != 0.0;
        let first = self.step == 0;
        for i in 0..params.len() {
            let mut g = grads[i];
            if use_wd {
                g = g + wd * params[i];
            }
            let d = if self.momentum != 0.0 {
                let b = if first { g } else { mu * self.buf[i] + g };
                self.buf[i] = b;
                b
            } else {
                g
            };
            params[i] = params[i] + nlr * d;
        }
        self.step += 1;
        Ok(())
    }

    /// `[step, buf[0..n]]`
    pub fn state(&self) -> Vec<f64> {
        let mut s = Vec::with_capacity(1 + self.buf.len());
        s.push(self.step as f64);
        s.extend(self.buf.iter().map(|x| x.to_f64()));
        s
    }
    pub fn set_state(&mut self, s: &[f64]) -> Result<()> {
        let (step, mut b) = restore::<R>(s, 1, self.buf.len(), "SGD")?;
        self.buf = b.pop().unwrap_or_default();
        self.step = step;
        Ok(())
    }
}

/// RMSprop as torch.optim.RMSprop (not centered, no momentum): g ← g + wd·p,
/// `v = α·v + ((1−α)·g)·g`, `p ← p + (−lr)·g / (sqrt(v) + eps)`.
#[derive(Clone, Debug)]
pub struct RmsProp<R> {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    step: u64,
    v: Vec<R>,
}

impl<R: Real> RmsProp<R> {
    /// PyTorch defaults: alpha 0.99, eps 1e-8, weight_decay 0.
    pub fn new(n: usize, lr: f64, alpha: f64, eps: f64, weight_decay: f64) -> Result<Self> {
        check_hyper("lr", lr, 0.0, None)?;
        check_hyper("alpha", alpha, 0.0, Some(1.0))?;
        check_hyper("eps", eps, 0.0, None)?;
        check_hyper("weightDecay", weight_decay, 0.0, None)?;
        Ok(RmsProp { lr, alpha, eps, weight_decay, step: 0, v: vec![R::ZERO; n] })
    }
    pub fn with_lr(n: usize, lr: f64) -> Result<Self> {
        Self::new(n, lr, 0.99, 1e-8, 0.0)
    }
    pub fn len(&self) -> usize {
        self.v.len()
    }
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn step(&mut self, params: &mut [R], grads: &[R]) -> Result<()> {
        check_len(params.len(), grads.len(), self.v.len())?;
        let nlr = R::from_f64(-self.lr);
        let a = R::from_f64(self.alpha);
        let oa = R::from_f64(1.0 - self.alpha);
        let eps = R::from_f64(self.eps);
        let wd = R::from_f64(self.weight_decay);
        let use_wd = self.weight_decay != 0.0;
        for i in 0..params.len() {
            let mut g = grads[i];
            if use_wd {
                g = g + wd * params[i];
            }
            let v = a * self.v[i] + oa * g * g;
            self.v[i] = v;
            params[i] = params[i] + nlr * g / (v.sqrt() + eps);
        }
        self.step += 1;
        Ok(())
    }

    /// `[step, v[0..n]]`
    pub fn state(&self) -> Vec<f64> {
        let mut s = Vec::with_capacity(1 + self.v.len());
        s.push(self.step as f64);
        s.extend(self.v.iter().map(|x| x.to_f64()));
        s
    }
    pub fn set_state(&mut self, s: &[f64]) -> Result<()> {
        let (step, mut b) = restore::<R>(s, 1, self.v.len(), "RMSprop")?;
        self.v = b.pop().unwrap_or_default();
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()), "{a} vs {b}");
    }

    #[test]
    fn adam_hand_computed() {
        let mut o = Adam::<f64>::with_lr(2, 0.1).unwrap();
        let mut p = vec![1.0, -2.0];
        o.step(&mut p, &[0.5, -1.0]).unwrap();
        // step 1: m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g² → p -= lr·g/(|g| + eps)
        close(p[0], 1.0 - 0.1 * 0.5 / (0.5 + 1e-8));
        close(p[1], -2.0 + 0.1 * 1.0 / (1.0 + 1e-8));
        // step 2 with g = (0.25, 0): by formula
        let (p0, p1) = (p[0], p[1]);
        o.step(&mut p, &[0.25, 0.0]).unwrap();
        let m0 = 0.9 * 0.05 + 0.1 * 0.25;
        let v0 = 0.999 * (0.001 * 0.25) + 0.001 * 0.25 * 0.25;
        let mhat0 = m0 / (1.0 - 0.81);
        let vhat0 = v0 / (1.0 - 0.999f64 * 0.999);
        close(p[0], p0 - 0.1 * mhat0 / (vhat0.sqrt() + 1e-8));
        let m1 = 0.9 * -0.1;
        let v1 = 0.999 * 0.001;
        close(p[1], p1 - 0.1 * (m1 / 0.19) / ((v1 / (1.0 - 0.999f64 * 0.999)).sqrt() + 1e-8));
        // weight decay adds wd·p to the gradient
        let mut o = Adam::<f64>::new(1, 0.1, (0.9, 0.999), 1e-8, 0.5).unwrap();
        let mut p = vec![2.0];
        o.step(&mut p, &[0.0]).unwrap();
        close(p[0], 2.0 - 0.1 * 1.0 / (1.0 + 1e-8));
    }

    #[test]
    fn sgd_hand_computed() {
        let mut o = Sgd::<f64>::new(1, 0.1, 0.9, 0.0).unwrap();
        let mut p = vec![1.0];
        o.step(&mut p, &[1.0]).unwrap(); // buf = 1
        close(p[0], 0.9);
        o.step(&mut p, &[1.0]).unwrap(); // buf = 1.9
        close(p[0], 0.9 - 0.19);
        o.step(&mut p, &[-1.0]).unwrap(); // buf = 0.71
        close(p[0], 0.9 - 0.19 - 0.071);
        let mut plain = Sgd::<f32>::new(2, 0.5, 0.0, 0.0).unwrap();
        let mut q = vec![1.0f32, 2.0];
        plain.step(&mut q, &[2.0, -2.0]).unwrap();
        assert_eq!(q, vec![0.0, 3.0]);
    }

    #[test]
    fn rmsprop_hand_computed() {
        let mut o = RmsProp::<f64>::with_lr(1, 0.01).unwrap();
        let mut p = vec![1.0];
        o.step(&mut p, &[2.0]).unwrap(); // v = 0.01·4 = 0.04, sqrt = 0.2
        close(p[0], 1.0 - 0.01 * 2.0 / (0.2 + 1e-8));
        o.step(&mut p, &[1.0]).unwrap(); // v = 0.99·0.04 + 0.01
        let v: f64 = 0.99 * 0.04 + 0.01;
        close(p[0], 1.0 - 0.01 * 2.0 / (0.2 + 1e-8) - 0.01 / (v.sqrt() + 1e-8));
    }

    /// f(p) = Σ c_i (p_i − t_i)²
    fn grad(p: &[f64], g: &mut [f64]) {
        for i in 0..p.len() {
            let c = 1.0 + i as f64;
            g[i] = 2.0 * c * (p[i] - (i as f64 - 1.5));
        }
    }

    #[test]
    fn convergence_on_quadratic() {
        let n = 4;
        let target: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
        let mut g = vec![0.0; n];
        let err = |p: &[f64]| p.iter().zip(&target).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let mut p = vec![3.0; n];
        let mut adam = Adam::<f64>::with_lr(n, 0.05).unwrap();
        for _ in 0..2000 {
            grad(&p, &mut g);
            adam.step(&mut p, &g).unwrap();
        }
        assert!(err(&p) < 1e-3, "adam {}", err(&p));
        let mut p = vec![3.0; n];
        let mut sgd = Sgd::<f64>::new(n, 0.02, 0.9, 0.0).unwrap();
        for _ in 0..1000 {
            grad(&p, &mut g);
            sgd.step(&mut p, &g).unwrap();
        }
        assert!(err(&p) < 1e-8, "sgd {}", err(&p));
        let mut p = vec![3.0; n];
        let mut rms = RmsProp::<f64>::with_lr(n, 0.01).unwrap();
        for i in 0..3000 {
            grad(&p, &mut g);
            // decaying lr to settle RMSprop's sign-like steps
            rms.lr = if i < 1000 { 0.01 } else if i < 2000 { 0.001 } else { 0.0001 };
            rms.step(&mut p, &g).unwrap();
        }
        assert!(err(&p) < 1e-2, "rmsprop {}", err(&p));
    }

    #[test]
    fn state_roundtrip_and_validation() {
        let mut a = Adam::<f32>::with_lr(3, 0.1).unwrap();
        let mut p = vec![1.0f32, 2.0, 3.0];
        a.step(&mut p, &[0.1, 0.2, 0.3]).unwrap();
        let s = a.state();
        assert_eq!(s.len(), 7);
        assert_eq!(s[0], 1.0);
        let mut b = Adam::<f32>::with_lr(3, 0.1).unwrap();
        b.set_state(&s).unwrap();
        let mut p2 = p.clone();
        a.step(&mut p, &[0.3, 0.2, 0.1]).unwrap();
        b.step(&mut p2, &[0.3, 0.2, 0.1]).unwrap();
        assert_eq!(p, p2);
        assert!(b.set_state(&s[1..]).is_err());
        let mut bad = s.clone();
        bad[0] = -1.0;
        assert!(b.set_state(&bad).is_err());
        bad[0] = 1.5;
        assert!(b.set_state(&bad).is_err());
        assert!(a.step(&mut p[1..], &[0.0; 2]).is_err());
        assert!(a.step(&mut p, &[0.0; 2]).is_err());
        assert!(Adam::<f64>::new(1, -1.0, (0.9, 0.999), 1e-8, 0.0).is_err());
        assert!(Adam::<f64>::new(1, 0.1, (1.0, 0.999), 1e-8, 0.0).is_err());
        assert!(RmsProp::<f64>::new(1, 0.1, f64::NAN, 1e-8, 0.0).is_err());
        let mut s1 = Sgd::<f64>::new(2, 0.1, 0.5, 0.0).unwrap();
        let mut q = vec![0.0, 0.0];
        s1.step(&mut q, &[1.0, 1.0]).unwrap();
        let st = s1.state();
        let mut s2 = Sgd::<f64>::new(2, 0.1, 0.5, 0.0).unwrap();
        s2.set_state(&st).unwrap();
        assert_eq!(s2.step_count(), 1);
        let mut q2 = q.clone();
        s1.step(&mut q, &[1.0, 2.0]).unwrap();
        s2.step(&mut q2, &[1.0, 2.0]).unwrap();
        assert_eq!(q, q2);
        let mut r = RmsProp::<f64>::with_lr(1, 0.1).unwrap();
        r.step(&mut [1.0], &[1.0]).unwrap();
        let mut r2 = RmsProp::<f64>::with_lr(1, 0.1).unwrap();
        r2.set_state(&r.state()).unwrap();
        assert_eq!(r2.state(), r.state());
        assert!(r2.set_state(&[0.0]).is_err());
    }
}

/// One of the optimisers behind a handle, stepping with f64 gradients.
pub enum Optimizer<R: Real> {
    Adam(Adam<R>, Vec<R>),
    Sgd(Sgd<R>, Vec<R>),
    RmsProp(RmsProp<R>, Vec<R>),
}

impl<R: Real> Optimizer<R> {
    /// kind 0 adam [lr, beta1, beta2, eps, wd], 1 sgd [lr, momentum, wd], 2 rmsprop [lr, alpha, eps, wd].
    pub fn new(kind: u32, n: usize, h: &[f64]) -> Result<Self> {
        let buf = vec![R::ZERO; n];
        Ok(match kind {
            0 => Optimizer::Adam(Adam::new(n, h[0], (h[1], h[2]), h[3], h[4])?, buf),
            1 => Optimizer::Sgd(Sgd::new(n, h[0], h[1], h[2])?, buf),
            2 => Optimizer::RmsProp(RmsProp::new(n, h[0], h[1], h[2], h[3])?, buf),
            _ => return Err(Error::invalid(format!("optimiser: unknown kind {}", kind))),
        })
    }

    pub fn step(&mut self, params: &mut [R], grads: &[f64]) -> Result<()> {
        let (buf, step): (&mut Vec<R>, &mut dyn FnMut(&mut [R], &[R]) -> Result<()>) = match self {
            Optimizer::Adam(o, b) => (b, &mut |p, g| o.step(p, g)),
            Optimizer::Sgd(o, b) => (b, &mut |p, g| o.step(p, g)),
            Optimizer::RmsProp(o, b) => (b, &mut |p, g| o.step(p, g)),
        };
        if grads.len() != buf.len() {
            return Err(Error::invalid(format!("grads: expected {} numbers, got {}", buf.len(), grads.len())));
        }
        if grads.iter().any(|g| !g.is_finite()) {
            return Err(Error::new(crate::error::Code::NonFinite, "grads: contain NaN or Infinity"));
        }
        for (b, g) in buf.iter_mut().zip(grads) {
            *b = R::from_f64(*g);
        }
        step(params, buf)
    }

    pub fn state(&self) -> Vec<f64> {
        match self {
            Optimizer::Adam(o, _) => o.state(),
            Optimizer::Sgd(o, _) => o.state(),
            Optimizer::RmsProp(o, _) => o.state(),
        }
    }

    pub fn set_state(&mut self, s: &[f64]) -> Result<()> {
        match self {
            Optimizer::Adam(o, _) => o.set_state(s),
            Optimizer::Sgd(o, _) => o.set_state(s),
            Optimizer::RmsProp(o, _) => o.set_state(s),
        }
    }
}
