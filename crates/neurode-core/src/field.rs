//! Vector fields that live in the core (neural networks), addressed by handle from TypeScript.

use crate::abi::{put_back, take, Object};
use crate::error::{Code, Error, Result};
use crate::grad::VjpRhs;
use crate::nn::{LayerSpec, Net};
use crate::solver::Rhs;
use crate::tensor::Scalar;

/// Random stream of the normal initialisation (PyTorch-style init uses its own streams).
const INIT_STREAM: u64 = 0x1_4e17;

/// A `Net` with its parameters and a workspace sized for the largest batch seen so far (it
/// grows once per new batch size, never inside a solve's step loop after the first evaluation).
pub struct NetField<R: Scalar> {
    pub net: Net<R>,
    pub params: Vec<R>,
    ws: Vec<R>,
    /// Parameter cotangents thrown away by `vjp_y` (sized once).
    pscratch: Vec<R>,
}

impl<R: Scalar> NetField<R> {
    /// Parameters from the seed: PyTorch's default uniform init, or with `normal_std > 0`
    /// weights ~ N(0, normal_std²) and biases 0 (torchdiffeq's ode_demo initialisation).
    pub fn new(specs: &[LayerSpec], seed: u64, normal_std: f64) -> Result<Self> {
        let net = Net::<R>::new(specs)?;
        if net.dim_in() != net.dim_out() {
            return Err(Error::invalid(format!("layers: a vector field maps R^d to R^d, these map {} to {}", net.dim_in(), net.dim_out())));
        }
        if !(normal_std >= 0.0) || !normal_std.is_finite() {
            return Err(Error::invalid("initStd: must be a finite number >= 0"));
        }
        let mut params = vec![R::ZERO; net.num_params()];
        net.init_params(seed, &mut params)?;
        let mut f = NetField { params, net, ws: Vec::new(), pscratch: Vec::new() };
        if normal_std > 0.0 {
            let mut k = 0;
            for spec in f.net.specs() {
                // tensors in layout order, and whether each is a weight (else a bias: zero)
                let tensors: &[(usize, bool)] = &match *spec {
                    LayerSpec::Linear { d_in, d_out } => [(d_in * d_out, true), (d_out, false), (0, false), (0, false), (0, false)],
                    LayerSpec::ConcatLinear { d_in, d_out } => [((d_in + 1) * d_out, true), (d_out, false), (0, false), (0, false), (0, false)],
                    LayerSpec::ConcatSquash { d_in, d_out } => [(d_in * d_out, true), (d_out, false), (d_out, true), (d_out, true), (d_out, false)],
                    LayerSpec::Act { .. } => [(0, false); 5],
                };
                for &(len, weight) in tensors {
                    for p in &mut f.params[k..k + len] {
                        *p = if weight { R::from_f64(normal_std * crate::rng::normal_f64(seed, INIT_STREAM, k as u64)) } else { R::ZERO };
                        k += 1;
                    }
                }
            }
        }
        Ok(f)
    }

    pub fn dim(&self) -> usize {
        self.net.dim_in()
    }

    fn batch(&mut self, n: usize) -> Result<usize> {
        let d = self.dim();
        if n == 0 || n % d != 0 {
            return Err(Error::invalid(format!("y: length {} is not a positive multiple of dim {}", n, d)));
        }
        let b = n / d;
        let need = self.net.workspace_len(b);
        if need == usize::MAX {
            return Err(Error::new(Code::OutOfMemory, "workspace size overflows"));
        }
        if self.ws.len() < need {
            self.ws.resize(need, R::ZERO);
        }
        Ok(b)
    }
}

impl<R: Scalar> Rhs<R> for NetField<R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        let b = self.batch(y.len())?;
        self.net.forward(&self.params, t, y, b, dy, &mut self.ws)
    }
    /// Exact Jacobian rows for the stiff solver.
    fn vjp_y(&mut self, t: f64, y: &[R], a: &[R], out: &mut [R]) -> Result<bool> {
        let b = self.batch(y.len())?;
        if self.pscratch.len() != self.params.len() {
            self.pscratch.resize(self.params.len(), R::ZERO);
        }
        self.net.vjp(&self.params, t, y, b, a, None, out, &mut self.pscratch, &mut self.ws)?;
        Ok(true)
    }
}

impl<R: Scalar> VjpRhs<R> for NetField<R> {
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn param_groups(&self) -> Vec<(usize, usize)> {
        let mut groups = Vec::new();
        let mut off = 0;
        for spec in self.net.specs() {
            let sizes: &[usize] = &match *spec {
                LayerSpec::Linear { d_in, d_out } => [d_in * d_out, d_out, 0, 0, 0],
                LayerSpec::ConcatLinear { d_in, d_out } => [(d_in + 1) * d_out, d_out, 0, 0, 0],
                LayerSpec::ConcatSquash { d_in, d_out } => [d_in * d_out, d_out, d_out, d_out, d_out],
                LayerSpec::Act { .. } => [0; 5],
            };
            for &len in sizes.iter().filter(|&&l| l > 0) {
                groups.push((off, len));
                off += len;
            }
        }
        groups
    }
    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        let b = self.batch(y.len())?;
        self.net.vjp(&self.params, t, y, b, a, out_f, out_y, out_p, &mut self.ws)
    }
    fn rec_len(&mut self, n: usize) -> Result<usize> {
        let b = self.batch(n)?;
        self.net.rec_len(b).ok_or_else(|| Error::new(Code::OutOfMemory, "record size overflows"))
    }
    fn eval_rec(&mut self, t: f64, y: &[R], dy: &mut [R], rec: &mut [R]) -> Result<()> {
        let b = self.batch(y.len())?;
        self.net.forward_rec(&self.params, t, y, b, dy, &mut self.ws, rec)
    }
    fn vjp_rec(&mut self, t: f64, y: &[R], rec: &[R], a: &[R], out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        let b = self.batch(y.len())?;
        self.net.vjp_rec(&self.params, t, y, b, rec, a, out_y, out_p, &mut self.ws)
    }
}

/// Runs `run` with the core field a handle names, taking it out of the object table meanwhile.
pub fn with_field<R: Scalar, T>(handle: u32, run: impl FnOnce(&mut dyn VjpRhs<R>) -> Result<T>) -> Result<T> {
    let mut obj = take(handle)?;
    let r = match &mut obj {
        Object::Field64(f) => as_dyn::<R, f64>(f).map(run),
        Object::Field32(f) => as_dyn::<R, f32>(f).map(run),
        _ => Err(Error::new(Code::InvalidHandle, format!("handle {} is not a vector field", handle))),
    };
    put_back(handle, obj);
    r?
}

/// The field as `dyn VjpRhs<R>` when its element type is R (f32 fields cannot serve f64 solves).
fn as_dyn<R: Scalar, S: Scalar>(f: &mut NetField<S>) -> Result<&mut dyn VjpRhs<R>> {
    let any: &mut dyn core::any::Any = f;
    any.downcast_mut::<NetField<R>>()
        .map(|f| f as &mut dyn VjpRhs<R>)
        .ok_or_else(|| Error::invalid("dtype: the field's dtype differs from the solve's"))
}
