//! Dense kernels for batch-major neural layers: gemm in the three layouts a linear layer needs
//! (forward NT with fused bias + activation, input gradient NN, weight gradient TN), bias
//! gradient, transpose. See [`gemm`] for the accumulation-order contract (identical bits in the
//! wasm simd128 path and the portable fallback).
//!
//! All public functions validate sizes and slice lengths and return `Err(InvalidArgument)`
//! naming the argument; they never panic and never allocate.

#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::too_many_arguments)]

pub mod gemm;

use crate::error::{Error, Result};
use crate::math::{Act, Float};
use gemm::GemmArgs;

/// Element types with gemm kernels (`f32`, `f64`).
pub trait Scalar: Float {
    #[doc(hidden)]
    fn gemm_raw(g: &GemmArgs<Self>, c: &mut [Self]);
}

impl Scalar for f64 {
    #[inline]
    fn gemm_raw(g: &GemmArgs<Self>, c: &mut [Self]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        // SAFETY: sizes validated by the public wrappers / nn layer plans.
        unsafe {
            gemm::simd::gemm_simd::<crate::math::simd::F64x2>(g, c)
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        gemm::gemm_portable(g, c)
    }
}

impl Scalar for f32 {
    #[inline]
    fn gemm_raw(g: &GemmArgs<Self>, c: &mut [Self]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        // SAFETY: as above.
        unsafe {
            gemm::simd::gemm_simd::<crate::math::simd::F32x4>(g, c)
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        gemm::gemm_portable(g, c)
    }
}

fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::invalid(format!("{what}: size overflow")))
}

/// Minimum length of a strided matrix view: (rows−1)·rs + (cols−1)·cs + 1 (0 if empty).
fn span(rows: usize, cols: usize, rs: usize, cs: usize, what: &str) -> Result<usize> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    let a = mul(rows - 1, rs, what)?;
    let b = mul(cols - 1, cs, what)?;
    a.checked_add(b)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| Error::invalid(format!("{what}: size overflow")))
}

fn need(len: usize, req: usize, what: &str) -> Result<()> {
    if len < req {
        Err(Error::invalid(format!("{what}: length {len} is too short (need {req})")))
    } else {
        Ok(())
    }
}

/// General gemm: `C[i·ldc + j] (= | +=) Σ_{p<k} a[i·ars + p·acs] · b[p·ldb + j]`, then
/// `+ bias[j]` (if given) and `act` elementwise. `accumulate = true` starts each accumulator at
/// the old C value. Accumulation order per element: p increasing, one accumulator, no FMA.
#[allow(clippy::too_many_arguments)]
pub fn gemm<R: Scalar>(
    m: usize,
    n: usize,
    k: usize,
    a: &[R],
    ars: usize,
    acs: usize,
    b: &[R],
    ldb: usize,
    c: &mut [R],
    ldc: usize,
    accumulate: bool,
    bias: Option<&[R]>,
    act: Act,
) -> Result<()> {
    if ldb < n {
        return Err(Error::invalid("ldb: must be >= n"));
    }
    if ldc < n {
        return Err(Error::invalid("ldc: must be >= n"));
    }
    need(a.len(), span(m, k, ars, acs, "a")?, "a")?;
    need(b.len(), span(k, n, ldb, 1, "b")?, "b")?;
    need(c.len(), span(m, n, ldc, 1, "c")?, "c")?;
    if let Some(bb) = bias {
        need(bb.len(), n, "bias")?;
    }
    R::gemm_raw(&GemmArgs { m, n, k, a, ars, acs, b, ldb, ldc, accumulate, bias, act }, c);
    Ok(())
}

/// Workspace length (elements) for [`linear_forward`]: the transposed weight, d_in·d_out.
pub fn linear_forward_workspace_len(d_in: usize, d_out: usize) -> usize {
    d_in.saturating_mul(d_out)
}

/// Transpose `rows × cols` (row stride `ld_src`) into `dst` (`cols × rows`, dense).
pub fn transpose<R: Copy>(rows: usize, cols: usize, src: &[R], ld_src: usize, dst: &mut [R]) -> Result<()> {
    if ld_src < cols {
        return Err(Error::invalid("ld_src: must be >= cols"));
    }
    need(src.len(), span(rows, cols, ld_src, 1, "src")?, "src")?;
    need(dst.len(), mul(rows, cols, "dst")?, "dst")?;
    transpose_raw(rows, cols, src, ld_src, dst);
    Ok(())
}

pub(crate) fn transpose_raw<R: Copy>(rows: usize, cols: usize, src: &[R], ld_src: usize, dst: &mut [R]) {
    for r in 0..rows {
        let s = &src[r * ld_src..r * ld_src + cols];
        for (cc, &v) in s.iter().enumerate() {
            dst[cc * rows + r] = v;
        }
    }
}

/// Forward of a linear layer, batch-major: `y[b][o] = act(Σ_i x[b][i]·w[o·ldw + i] + bias[o])`
/// (y dense `batch × d_out`). `ldw >= d_in` allows a column sub-block of a wider weight
/// (ConcatLinear passes `&w[1..]`, `ldw = d_in + 1`). `ws` needs
/// [`linear_forward_workspace_len`] elements (the transposed weight is packed there).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward<R: Scalar>(
    batch: usize,
    d_in: usize,
    d_out: usize,
    x: &[R],
    w: &[R],
    ldw: usize,
    bias: Option<&[R]>,
    act: Act,
    y: &mut [R],
    ws: &mut [R],
) -> Result<()> {
    if ldw < d_in {
        return Err(Error::invalid("ldw: must be >= d_in"));
    }
    need(x.len(), mul(batch, d_in, "x")?, "x")?;
    need(w.len(), span(d_out, d_in, ldw, 1, "w")?, "w")?;
    need(y.len(), mul(batch, d_out, "y")?, "y")?;
    need(ws.len(), mul(d_in, d_out, "ws")?, "ws")?;
    if let Some(bb) = bias {
        need(bb.len(), d_out, "bias")?;
    }
    linear_forward_raw(batch, d_in, d_out, x, w, ldw, bias, act, y, ws);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_forward_raw<R: Scalar>(
    batch: usize,
    d_in: usize,
    d_out: usize,
    x: &[R],
    w: &[R],
    ldw: usize,
    bias: Option<&[R]>,
    act: Act,
    y: &mut [R],
    ws: &mut [R],
) {
    let wt = &mut ws[..d_in * d_out];
    transpose_raw(d_out, d_in, w, ldw, wt);
    let g = GemmArgs { m: batch, n: d_out, k: d_in, a: x, ars: d_in, acs: 1, b: &*wt, ldb: d_out, ldc: d_out, accumulate: false, bias, act };
    R::gemm_raw(&g, y);
}

/// Input gradient of a linear layer: `dx[b][i] = Σ_o dy[b][o]·w[o·ldw + i]` (overwrites dx).
#[allow(clippy::too_many_arguments)]
pub fn linear_grad_input<R: Scalar>(
    batch: usize,
    d_in: usize,
    d_out: usize,
    dy: &[R],
    w: &[R],
    ldw: usize,
    dx: &mut [R],
) -> Result<()> {
    if ldw < d_in {
        return Err(Error::invalid("ldw: must be >= d_in"));
    }
    need(dy.len(), mul(batch, d_out, "dy")?, "dy")?;
    need(w.len(), span(d_out, d_in, ldw, 1, "w")?, "w")?;
    need(dx.len(), mul(batch, d_in, "dx")?, "dx")?;
    linear_grad_input_raw(batch, d_in, d_out, dy, w, ldw, dx);
    Ok(())
}

pub(crate) fn linear_grad_input_raw<R: Scalar>(
    batch: usize,
    d_in: usize,
    d_out: usize,
    dy: &[R],
    w: &[R],
    ldw: usize,
    dx: &mut [R],
) {
    let g = GemmArgs { m: batch, n: d_in, k: d_out, a: dy, ars: d_out, acs: 1, b: w, ldb: ldw, ldc: d_in, accumulate: false, bias: None, act: Act::Identity };
    R::gemm_raw(&g, dx);
}

/// Weight gradient: `dw[o·lddw + i] (= | +=) Σ_b dy[b][o]·x[b][i]` (b increasing).
#[allow(clippy::too_many_arguments)]
pub fn linear_grad_weight<R: Scalar>(
    batch: usize,
    d_in: usize,
    d_out: usize,
    dy: &[R],
    x: &[R],
    dw: &mut [R],
    lddw: usize,
    accumulate: bool,
) -> Result<()> {
    if lddw < d_in {
        return Err(Error::invalid("lddw: must be >= d_in"));
    }
    need(dy.len(), mul(batch, d_out, "dy")?, "dy")?;
    need(x.len(), mul(batch, d_in, "x")?, "x")?;
    need(dw.len(), span(d_out, d_in, lddw, 1, "dw")?, "dw")?;
    linear_grad_weight_raw(batch, d_in, d_out, dy, x, dw, lddw, accumulate);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_grad_weight_raw<R: Scalar>(
    batch: usize,
    d_in: usize,
    d_out: usize,
    dy: &[R],
    x: &[R],
    dw: &mut [R],
    lddw: usize,
    accumulate: bool,
) {
    let g = GemmArgs { m: d_out, n: d_in, k: batch, a: dy, ars: 1, acs: d_out, b: x, ldb: d_in, ldc: lddw, accumulate, bias: None, act: Act::Identity };
    R::gemm_raw(&g, dw);
}

/// Bias gradient: `db[o] (= | +=) Σ_b dy[b][o]` (b increasing).
pub fn bias_grad<R: Scalar>(batch: usize, d_out: usize, dy: &[R], db: &mut [R], accumulate: bool) -> Result<()> {
    need(dy.len(), mul(batch, d_out, "dy")?, "dy")?;
    need(db.len(), d_out, "db")?;
    bias_grad_raw(batch, d_out, dy, db, accumulate);
    Ok(())
}

pub(crate) fn bias_grad_raw<R: Scalar>(batch: usize, d_out: usize, dy: &[R], db: &mut [R], accumulate: bool) {
    let db = &mut db[..d_out];
    if !accumulate {
        for v in db.iter_mut() {
            *v = R::ZERO;
        }
    }
    for b in 0..batch {
        let row = &dy[b * d_out..(b + 1) * d_out];
        for (d, &v) in db.iter_mut().zip(row) {
            *d = *d + v;
        }
    }
}

#[cfg(test)]
mod tests;
