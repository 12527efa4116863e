//! Neural vector fields `f(t, x)` built from layers, with forward, vector-Jacobian product
//! (w.r.t. input, parameters and time) and Jacobian-vector product (w.r.t. input).
//!
//! Layout is batch-major (`x[b][i]`), parameters are PyTorch's (each layer's weight row-major
//! `[out][in]`, then its bias). See [`Net`] for the evaluation API, [`mlp`] for the
//! API.md §3 architecture, [`encode_specs`]/[`decode_specs`] for the ABI encoding.

#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::too_many_arguments)]

mod net;
#[cfg(test)]
mod tests;

pub use crate::math::Act;
pub use net::Net;

use crate::error::{Error, Result};

/// One layer of a sequential vector field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// `y = W·x + b`; params `W[d_out][d_in]`, `b[d_out]` (PyTorch nn.Linear).
    Linear { d_in: usize, d_out: usize },
    /// torchdiffeq ConcatLinear: `y = W·[t, x] + b`; params `W[d_out][1 + d_in]` (column 0
    /// multiplies t), `b[d_out]`.
    ConcatLinear { d_in: usize, d_out: usize },
    /// FFJORD ConcatSquashLinear: `y = (W·x + b) ⊙ sigmoid(g·t + c) + h·t`; params in the order
    /// `W[d_out][d_in]`, `b[d_out]`, `h[d_out][1]`, `g[d_out][1]`, `c[d_out]`.
    ConcatSquash { d_in: usize, d_out: usize },
    /// Elementwise function of width `dim` (tanh, relu, softplus, sigmoid, elu, cube, identity).
    Act { act: Act, dim: usize },
}

impl LayerSpec {
    pub fn dim_in(&self) -> usize {
        match *self {
            LayerSpec::Linear { d_in, .. } | LayerSpec::ConcatLinear { d_in, .. } | LayerSpec::ConcatSquash { d_in, .. } => d_in,
            LayerSpec::Act { dim, .. } => dim,
        }
    }
    pub fn dim_out(&self) -> usize {
        match *self {
            LayerSpec::Linear { d_out, .. } | LayerSpec::ConcatLinear { d_out, .. } | LayerSpec::ConcatSquash { d_out, .. } => d_out,
            LayerSpec::Act { dim, .. } => dim,
        }
    }
    /// Number of parameters (`None` on overflow).
    pub fn num_params(&self) -> Option<usize> {
        match *self {
            LayerSpec::Linear { d_in, d_out } => d_in.checked_mul(d_out)?.checked_add(d_out),
            LayerSpec::ConcatLinear { d_in, d_out } => d_in.checked_add(1)?.checked_mul(d_out)?.checked_add(d_out),
            LayerSpec::ConcatSquash { d_in, d_out } => d_in.checked_mul(d_out)?.checked_add(d_out.checked_mul(4)?),
            LayerSpec::Act { .. } => Some(0),
        }
    }
}

/// How time enters the linear layers of [`mlp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeMode {
    /// `Linear` layers, f does not depend on t.
    None,
    /// `ConcatLinear` layers (torchdiffeq).
    Concat,
    /// `ConcatSquash` layers (FFJORD).
    ConcatSquash,
}

/// The API.md §3 MLP: optional input cube, then linear layers (kind by `time`) of widths
/// `dims[0] → dims[1] → … → dims[n−1]` with `activation` between them and none after the last.
/// `mlp(&[2, 50, 2], Act::Tanh, TimeMode::None, true)` is torchdiffeq's ode_demo field.
pub fn mlp(dims: &[usize], activation: Act, time: TimeMode, input_cube: bool) -> Result<Vec<LayerSpec>> {
    if dims.len() < 2 {
        return Err(Error::invalid("dims: need at least 2 entries (input and output width)"));
    }
    if dims.iter().any(|&d| d == 0) {
        return Err(Error::invalid("dims: every width must be >= 1"));
    }
    if activation == Act::Cube {
        return Err(Error::invalid("activation: cube is an input transform, not an MLP activation"));
    }
    let mut v = Vec::with_capacity(2 * dims.len());
    if input_cube {
        v.push(LayerSpec::Act { act: Act::Cube, dim: dims[0] });
    }
    for k in 0..dims.len() - 1 {
        let (d_in, d_out) = (dims[k], dims[k + 1]);
        v.push(match time {
            TimeMode::None => LayerSpec::Linear { d_in, d_out },
            TimeMode::Concat => LayerSpec::ConcatLinear { d_in, d_out },
            TimeMode::ConcatSquash => LayerSpec::ConcatSquash { d_in, d_out },
        });
        if k + 2 < dims.len() {
            v.push(LayerSpec::Act { act: activation, dim: d_out });
        }
    }
    Ok(v)
}

/// Kind codes of the integer encoding.
pub mod kind {
    pub const LINEAR: u32 = 0;
    pub const CONCAT_LINEAR: u32 = 1;
    pub const CONCAT_SQUASH: u32 = 2;
    pub const TANH: u32 = 3;
    pub const RELU: u32 = 4;
    pub const SOFTPLUS: u32 = 5;
    pub const SIGMOID: u32 = 6;
    pub const ELU: u32 = 7;
    pub const CUBE: u32 = 8;
    pub const IDENTITY: u32 = 9;
}

fn act_code(a: Act) -> u32 {
    match a {
        Act::Tanh => kind::TANH,
        Act::Relu => kind::RELU,
        Act::Softplus => kind::SOFTPLUS,
        Act::Sigmoid => kind::SIGMOID,
        Act::Elu => kind::ELU,
        Act::Cube => kind::CUBE,
        Act::Identity => kind::IDENTITY,
    }
}

/// Encode layers as `[kind, in, out]` u32 triples (activations: in = out = dim).
/// Errors if a width does not fit in u32.
pub fn encode_specs(specs: &[LayerSpec]) -> Result<Vec<u32>> {
    let mut v = Vec::with_capacity(3 * specs.len());
    for (l, s) in specs.iter().enumerate() {
        let k = match *s {
            LayerSpec::Linear { .. } => kind::LINEAR,
            LayerSpec::ConcatLinear { .. } => kind::CONCAT_LINEAR,
            LayerSpec::ConcatSquash { .. } => kind::CONCAT_SQUASH,
            LayerSpec::Act { act, .. } => act_code(act),
        };
        let conv = |d: usize| u32::try_from(d).map_err(|_| Error::invalid(format!("specs[{l}]: width {d} does not fit in u32")));
        v.extend_from_slice(&[k, conv(s.dim_in())?, conv(s.dim_out())?]);
    }
    Ok(v)
}

/// Decode `[kind, in, out]` triples. Errors on a length that is not a multiple of 3, unknown
/// kinds, zero widths, activations with in ≠ out, and consecutive layers whose widths differ.
pub fn decode_specs(code: &[u32]) -> Result<Vec<LayerSpec>> {
    if code.is_empty() || code.len() % 3 != 0 {
        return Err(Error::invalid("specs: length must be a positive multiple of 3 ([kind, in, out] per layer)"));
    }
    let mut v = Vec::with_capacity(code.len() / 3);
    for (l, c) in code.chunks_exact(3).enumerate() {
        let (k, d_in, d_out) = (c[0], c[1] as usize, c[2] as usize);
        if d_in == 0 || d_out == 0 {
            return Err(Error::invalid(format!("specs[{l}]: widths must be >= 1")));
        }
        let act = |a: Act| {
            if d_in != d_out {
                Err(Error::invalid(format!("specs[{l}]: activation needs in == out (got {d_in}, {d_out})")))
            } else {
                Ok(LayerSpec::Act { act: a, dim: d_in })
            }
        };
        let s = match k {
            kind::LINEAR => LayerSpec::Linear { d_in, d_out },
            kind::CONCAT_LINEAR => LayerSpec::ConcatLinear { d_in, d_out },
            kind::CONCAT_SQUASH => LayerSpec::ConcatSquash { d_in, d_out },
            kind::TANH => act(Act::Tanh)?,
            kind::RELU => act(Act::Relu)?,
            kind::SOFTPLUS => act(Act::Softplus)?,
            kind::SIGMOID => act(Act::Sigmoid)?,
            kind::ELU => act(Act::Elu)?,
            kind::CUBE => act(Act::Cube)?,
            kind::IDENTITY => act(Act::Identity)?,
            _ => return Err(Error::invalid(format!("specs[{l}]: unknown layer kind {k}"))),
        };
        if let Some(prev) = v.last() {
            let p: &LayerSpec = prev;
            if p.dim_out() != d_in {
                return Err(Error::invalid(format!("specs[{l}]: input width {d_in} != previous output width {}", p.dim_out())));
            }
        }
        v.push(s);
    }
    Ok(v)
}
