//! ABI of continuous normalizing flows (Section 4), the named 2-D targets, the toy data sets and
//! the Gaussian baseline. Data crosses as f64; flows hold f64 or f32 parameters.

use crate::abi::{insert, put_back, slice, slice_mut, status, take, write_stats, Object};
use crate::cnf::{self, Aug, Cnf, Regularise, ShardOut, Trace};
use crate::datasets;
use crate::error::{Code, Error, Result};
use crate::grad::{GradOptions, Mode};
use crate::nn::decode_specs;
use crate::solver::{Method, Options};
use crate::tensor::Scalar;

/// Configuration of a flow call as TypeScript packs it (f64, NaN = not given).
const C_METHOD: usize = 0;
const C_RTOL: usize = 1;
const C_ATOL: usize = 2;
const C_GRAD: usize = 3;
const C_MAX_STEPS: usize = 4;
const C_STEP: usize = 5;
const C_SEMINORM: usize = 6;
const C_ARTOL: usize = 7;
const C_AATOL: usize = 8;
const C_TRACE: usize = 9;
const C_T1: usize = 10;
const C_BASE_STD: usize = 11;
const C_REG: usize = 12;
const C_LAMBDA_K: usize = 13;
const C_LAMBDA_J: usize = 14;
const C_SEED: usize = 15;
const C_ITERATION: usize = 16;
const C_FIRST_ROW: usize = 17;
pub const CFG_LEN: usize = 18;

struct Cfg {
    go: GradOptions,
    trace: Trace,
    t1: f64,
    base_std: f64,
    reg: Option<Regularise>,
    seed: u64,
    iteration: u64,
}

fn whole(v: f64, name: &str) -> Result<u64> {
    if !(v >= 0.0) || v > 9.0e15 || v.fract() != 0.0 {
        return Err(Error::invalid(format!("{name}: must be a whole number from 0 to 9e15")));
    }
    Ok(v as u64)
}

fn decode(c: &[f64]) -> Result<Cfg> {
    let method = Method::from_index(whole(c[C_METHOD], "method")? as u32).ok_or_else(|| Error::invalid("method: unknown"))?;
    let (rtol, atol) = (c[C_RTOL], c[C_ATOL]);
    if !(rtol > 0.0) || !rtol.is_finite() || !(atol >= 0.0) || !atol.is_finite() {
        return Err(Error::invalid("rtol: rtol must be > 0 and atol >= 0 (finite)"));
    }
    let mode = Mode::from_code(c[C_GRAD])?;
    let max_steps = whole(c[C_MAX_STEPS], "maxSteps")?.max(1);
    let step_size = if c[C_STEP].is_nan() { None } else { Some(c[C_STEP]) };
    let forward = Options { method, rtol, atol: vec![atol], max_steps, step_size, ..Options::default() };
    let adjoint_rtol = if c[C_ARTOL].is_nan() { rtol } else { c[C_ARTOL] };
    let adjoint_atol = if c[C_AATOL].is_nan() { atol } else { c[C_AATOL] };
    if !(adjoint_rtol > 0.0) || !adjoint_rtol.is_finite() || !(adjoint_atol >= 0.0) || !adjoint_atol.is_finite() {
        return Err(Error::invalid("adjointRtol: must be > 0 (and adjointAtol >= 0)"));
    }
    let go = GradOptions { mode, forward, adjoint_rtol, adjoint_atol, seminorm: c[C_SEMINORM] != 0.0 };
    let seed = whole(c[C_SEED], "seed")?;
    let iteration = whole(c[C_ITERATION], "iteration")?;
    let first_row = whole(c[C_FIRST_ROW], "firstRow")?;
    let stream = cnf::stream(cnf::PURPOSE_PROBE, iteration);
    let trace = match c[C_TRACE] as u32 {
        0 => Trace::Exact,
        1 => Trace::Hutchinson { gaussian: false, seed, stream, first_row },
        2 => Trace::Hutchinson { gaussian: true, seed, stream, first_row },
        _ => return Err(Error::invalid("trace: must be 'exact' or 'hutchinson'")),
    };
    let (t1, base_std) = (c[C_T1], c[C_BASE_STD]);
    if !(t1 > 0.0) || !t1.is_finite() {
        return Err(Error::invalid("t1: must be a finite number > 0"));
    }
    if !(base_std > 0.0) || !base_std.is_finite() {
        return Err(Error::invalid("baseStd: must be a finite number > 0"));
    }
    let reg = if c[C_REG] != 0.0 {
        let (k, j) = (c[C_LAMBDA_K], c[C_LAMBDA_J]);
        if !(k >= 0.0) || !(j >= 0.0) || !k.is_finite() || !j.is_finite() {
            return Err(Error::invalid("regularize: weights must be finite numbers >= 0"));
        }
        Some(Regularise { kinetic: k, jacobian: j })
    } else {
        None
    };
    Ok(Cfg { go, trace, t1, base_std, reg, seed, iteration })
}

/// Runs `run64` or `run32` with the flow a handle names (taken out of the table meanwhile).
fn with_cnf<T>(h: u32, run64: impl FnOnce(&mut Cnf<f64>) -> Result<T>, run32: impl FnOnce(&mut Cnf<f32>) -> Result<T>) -> Result<T> {
    let mut obj = take(h)?;
    let r = match &mut obj {
        Object::Cnf64(c) => run64(c),
        Object::Cnf32(c) => run32(c),
        _ => Err(Error::new(Code::InvalidHandle, format!("handle {h} is not a CNF"))),
    };
    put_back(h, obj);
    r
}

/// Creates a flow. arch 0: a layer stack (`code`: `n` [kind, in, out] triples, dim from them);
/// arch 1: planar with `units` units and a hypernetwork with hidden widths `code[..n]`.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_create(dtype: u32, arch: u32, code: *const u32, n: u32, dim: u32, units: u32, seed_lo: u32, seed_hi: u32, handle_out: *mut u32) -> i32 {
    let seed = (seed_hi as u64) << 32 | seed_lo as u64;
    fn make<R: Scalar>(arch: u32, code: &[u32], dim: u32, units: u32, seed: u64) -> Result<Cnf<R>> {
        match arch {
            0 => Cnf::mlp(&decode_specs(code)?, seed),
            1 => {
                let hidden: Vec<usize> = code.iter().map(|&v| v as usize).collect();
                if hidden.iter().any(|&h| h == 0) {
                    return Err(Error::invalid("hidden: widths must be >= 1"));
                }
                Cnf::planar(dim as usize, units as usize, &hidden, seed)
            }
            _ => Err(Error::invalid(format!("arch: unknown code {arch}"))),
        }
    }
    let r = (|| {
        let code = slice(code, if arch == 0 { n.saturating_mul(3) } else { n });
        let obj = match dtype {
            0 => Object::Cnf64(make(arch, code, dim, units, seed)?),
            1 => Object::Cnf32(make(arch, code, dim, units, seed)?),
            _ => return Err(Error::invalid(format!("dtype: unknown code {dtype}"))),
        };
        *handle_out = insert(obj);
        Ok(())
    })();
    status(r)
}

/// Writes [dim, numParams, dtype code] (f64); all −1 for a bad handle.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_info(h: u32, out: *mut f64) {
    let o = slice_mut(out, 3);
    let r = take(h);
    match r {
        Ok(obj) => {
            match &obj {
                Object::Cnf64(c) => o.copy_from_slice(&[c.dim() as f64, c.params.len() as f64, 0.0]),
                Object::Cnf32(c) => o.copy_from_slice(&[c.dim() as f64, c.params.len() as f64, 1.0]),
                _ => o.copy_from_slice(&[-1.0; 3]),
            }
            put_back(h, obj);
        }
        Err(_) => o.copy_from_slice(&[-1.0; 3]),
    }
}

/// Address of a flow's parameters (stable for its lifetime); 0 for a bad handle.
#[no_mangle]
pub extern "C" fn nd_cnf_params(h: u32) -> usize {
    match take(h) {
        Ok(mut obj) => {
            let p = match &mut obj {
                Object::Cnf64(c) => c.params.as_mut_ptr() as usize,
                Object::Cnf32(c) => c.params.as_mut_ptr() as usize,
                _ => 0,
            };
            put_back(h, obj);
            p
        }
        Err(_) => 0,
    }
}

/// Solves the flow (aug 0: rows [z]; 1: [z, l]; 2: [z, l, e_k, e_j]) from `y0` (n f64) at ts[0]
/// through ts; writes nts × n values to `out` and (nfe, steps, rejected) to `stats`.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_flow(h: u32, aug: u32, y0: *const f64, n: u32, ts: *const f64, nts: u32, cfg: *const f64, out: *mut f64, stats: *mut f64) -> i32 {
    let r = (|| {
        let c = decode(slice(cfg, CFG_LEN as u32))?;
        let aug = aug_code(aug)?;
        let (y0, ts) = (slice(y0, n), slice(ts, nts));
        let (ys, st) = with_cnf(h, |f| f.flow(aug, c.trace, y0, ts, &c.go.forward), |f| f.flow(aug, c.trace, y0, ts, &c.go.forward))?;
        slice_mut(out, ys.len()).copy_from_slice(&ys);
        write_stats(slice_mut(stats, 3), &st);
        Ok(())
    })();
    status(r)
}

/// info: [loss, objective, kinetic, jacobian, nfe forward, nfe backward].
unsafe fn write_shard(s: &ShardOut, grad: *mut f64, np: u32, info: *mut f64) -> Result<()> {
    if s.grad.len() != np as usize {
        return Err(Error::invalid(format!("grad: buffer holds {np} values, the flow has {} parameters", s.grad.len())));
    }
    slice_mut(grad, s.grad.len()).copy_from_slice(&s.grad);
    slice_mut(info, 6).copy_from_slice(&[s.loss, s.objective, s.kinetic, s.jacobian, s.forward.nfe as f64, s.backward.nfe as f64]);
    Ok(())
}

/// Maximum likelihood on rows `x` (n f64 = rows × dim): mean loss and its gradient (np f64).
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_mle(h: u32, x: *const f64, n: u32, cfg: *const f64, grad: *mut f64, np: u32, info: *mut f64) -> i32 {
    let r = (|| {
        let c = decode(slice(cfg, CFG_LEN as u32))?;
        let x = slice(x, n);
        let s = with_cnf(
            h,
            |f| f.mle_shard(x, c.t1, c.base_std, c.trace, c.reg, &c.go),
            |f| f.mle_shard(x, c.t1, c.base_std, c.trace, c.reg, &c.go),
        )?;
        write_shard(&s, grad, np, info)
    })();
    status(r)
}

/// Density matching, forward: `rows` base samples (rows first_row.. of iteration `iteration`)
/// pushed to t1; writes x (rows × dim f64) and the tape's handle.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_kl_forward(h: u32, rows: u32, cfg: *const f64, out_x: *mut f64, tape_out: *mut u32) -> i32 {
    let r = (|| {
        let c = decode(slice(cfg, CFG_LEN as u32))?;
        let first = whole(slice(cfg, CFG_LEN as u32)[C_FIRST_ROW], "firstRow")?;
        let rows = rows as usize;
        let (obj, x) = with_cnf(
            h,
            |f| f.kl_forward(rows, c.seed, c.iteration, first, c.t1, c.base_std, c.trace, c.reg, &c.go).map(|(t, x)| (Object::Tape64(t), x)),
            |f| f.kl_forward(rows, c.seed, c.iteration, first, c.t1, c.base_std, c.trace, c.reg, &c.go).map(|(t, x)| (Object::Tape32(t), x)),
        )?;
        slice_mut(out_x, x.len()).copy_from_slice(&x);
        *tape_out = insert(obj);
        Ok(())
    })();
    status(r)
}

/// Density matching, backward (consumes the tape): with log p̃ (rows) and ∇log p̃ (rows × dim)
/// at x, the mean of log q − log p̃ (+ regularisers) and its gradient.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_kl_backward(h: u32, tape: u32, logp: *const f64, dlogp: *const f64, rows: u32, dim: u32, cfg: *const f64, grad: *mut f64, np: u32, info: *mut f64) -> i32 {
    let r = (|| {
        let c = decode(slice(cfg, CFG_LEN as u32))?;
        let (lp, dl) = (slice(logp, rows), slice(dlogp, rows.saturating_mul(dim)));
        let t = take(tape)?;
        let s = match t {
            Object::Tape64(t) => with_cnf(h, |f| f.kl_backward(t, lp, dl, c.base_std, c.trace, c.reg), |_| Err(Error::invalid("tape: dtype differs from the flow's"))),
            Object::Tape32(t) => with_cnf(h, |_| Err(Error::invalid("tape: dtype differs from the flow's")), |f| f.kl_backward(t, lp, dl, c.base_std, c.trace, c.reg)),
            other => {
                put_back(tape, other);
                return Err(Error::new(Code::InvalidHandle, format!("handle {tape} is not a gradient tape")));
            }
        }?;
        write_shard(&s, grad, np, info)
    })();
    status(r)
}

/// log p̃ and ∇log p̃ of the named 2-D target `id` at n rows of x (n × 2).
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_target(id: u32, x: *const f64, n: u32, out_logp: *mut f64, out_grad: *mut f64) -> i32 {
    let r = (|| {
        let x = slice(x, n.saturating_mul(2));
        let (lp, g) = (slice_mut(out_logp, n as usize), slice_mut(out_grad, 2 * n as usize));
        for i in 0..n as usize {
            let (v, d) = cnf::targets::log_density(id, [x[2 * i], x[2 * i + 1]])?;
            lp[i] = v;
            g[2 * i] = d[0];
            g[2 * i + 1] = d[1];
        }
        Ok(())
    })();
    status(r)
}

/// n samples (n × 2 f64) of toy data set `kind` (datasets::NAMES) from a seed.
#[no_mangle]
pub unsafe extern "C" fn nd_toy_data(kind: u32, n: u32, seed_lo: u32, seed_hi: u32, out: *mut f64) -> i32 {
    let seed = (seed_hi as u64) << 32 | seed_lo as u64;
    status(datasets::toy(kind, n as usize, seed, slice_mut(out, 2 * n as usize)))
}

/// Mean negative log-likelihood of `test` under the maximum-likelihood Gaussian of `train`.
#[no_mangle]
pub unsafe extern "C" fn nd_gaussian_nll(train: *const f64, ntrain: u32, test: *const f64, ntest: u32, dim: u32, out: *mut f64) -> i32 {
    status(datasets::gaussian_nll(slice(train, ntrain), slice(test, ntest), dim as usize).map(|v| *out = v))
}

/// log N(z; 0, std² I) of n / dim rows of z.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_base_logp(dim: u32, z: *const f64, n: u32, std: f64, out: *mut f64) -> i32 {
    let r = (|| {
        let d = dim as usize;
        if d == 0 || n as usize % d != 0 || !(std > 0.0) || !std.is_finite() {
            return Err(Error::invalid("z: length must be a multiple of dim, baseStd > 0"));
        }
        let z = slice(z, n);
        for (o, row) in slice_mut(out, n as usize / d).iter_mut().zip(z.chunks_exact(d)) {
            *o = cnf::base_log_density(row, std);
        }
        Ok(())
    })();
    status(r)
}

fn aug_code(aug: u32) -> Result<Aug> {
    match aug {
        0 => Ok(Aug::Plain),
        1 => Ok(Aug::LogDet),
        2 => Ok(Aug::Regularised),
        _ => Err(Error::invalid("aug: unknown code")),
    }
}

/// The augmented derivative at time t for rows y (n f64, rows of the aug's width).
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_eval(h: u32, aug: u32, t: f64, y: *const f64, n: u32, cfg: *const f64, out: *mut f64) -> i32 {
    fn run<R: Scalar>(f: &mut Cnf<R>, aug: Aug, trace: Trace, t: f64, y: &[f64]) -> Result<Vec<f64>> {
        use crate::solver::Rhs;
        f.configure(aug, trace);
        let yr: Vec<R> = y.iter().map(|&v| R::from_f64(v)).collect();
        let mut dy = vec![R::ZERO; y.len()];
        f.eval(t, &yr, &mut dy)?;
        Ok(dy.iter().map(|v| v.to_f64()).collect())
    }
    let r = (|| {
        let c = decode(slice(cfg, CFG_LEN as u32))?;
        let aug = aug_code(aug)?;
        if !t.is_finite() {
            return Err(Error::invalid("t: must be finite"));
        }
        let y = slice(y, n);
        let dy = with_cnf(h, |f| run(f, aug, c.trace, t, y), |f| run(f, aug, c.trace, t, y))?;
        slice_mut(out, n as usize).copy_from_slice(&dy);
        Ok(())
    })();
    status(r)
}

/// VJP of the augmented field: out_y = a·∂F/∂y (n), out_p = a·∂F/∂θ (np), out_t = a·∂F/∂t.
#[no_mangle]
pub unsafe extern "C" fn nd_cnf_vjp(h: u32, aug: u32, t: f64, y: *const f64, a: *const f64, n: u32, cfg: *const f64, out_y: *mut f64, out_p: *mut f64, np: u32, out_t: *mut f64) -> i32 {
    type Out = (Vec<f64>, Vec<f64>, f64);
    fn run<R: Scalar>(f: &mut Cnf<R>, aug: Aug, trace: Trace, t: f64, y: &[f64], a: &[f64], np: usize) -> Result<Out> {
        use crate::grad::VjpRhs;
        f.configure(aug, trace);
        if np != f.params.len() {
            return Err(Error::invalid("params: buffer length differs from numParams"));
        }
        let conv = |v: &[f64]| -> Vec<R> { v.iter().map(|&x| R::from_f64(x)).collect() };
        let (yr, ar) = (conv(y), conv(a));
        let mut gy = vec![R::ZERO; y.len()];
        let mut gp = vec![R::ZERO; np];
        let gt = f.vjp(t, &yr, &ar, None, &mut gy, &mut gp)?;
        Ok((gy.iter().map(|v| v.to_f64()).collect(), gp.iter().map(|v| v.to_f64()).collect(), gt))
    }
    let r = (|| {
        let c = decode(slice(cfg, CFG_LEN as u32))?;
        let aug = aug_code(aug)?;
        if !t.is_finite() {
            return Err(Error::invalid("t: must be finite"));
        }
        let (y, a) = (slice(y, n), slice(a, n));
        let np = np as usize;
        let (gy, gp, gt) = with_cnf(h, |f| run(f, aug, c.trace, t, y, a, np), |f| run(f, aug, c.trace, t, y, a, np))?;
        slice_mut(out_y, n as usize).copy_from_slice(&gy);
        slice_mut(out_p, np).copy_from_slice(&gp);
        *out_t = gt;
        Ok(())
    })();
    status(r)
}

/// Densities e^{v_i} of log-density values on a grid (n values) and the integral
/// Σ e^{v_i}·cell: writes the densities to `out` and [log ∫, ∫] to `info` (log-sum-exp, so the
/// log integral is finite even where every e^{v_i} underflows).
#[no_mangle]
pub unsafe extern "C" fn nd_density_grid(logv: *const f64, n: u32, cell: f64, out: *mut f64, info: *mut f64) -> i32 {
    use crate::math::Float;
    let r = (|| {
        let v = slice(logv, n);
        if v.is_empty() || v.iter().any(|x| x.is_nan() || *x == f64::INFINITY) || !(cell > 0.0) || !cell.is_finite() {
            return Err(Error::invalid("values: need log-densities (not NaN or +Infinity) and a cell area > 0"));
        }
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for (o, &x) in slice_mut(out, n as usize).iter_mut().zip(v) {
            *o = Float::exp(x);
            s += Float::exp(x - m);
        }
        let log = m + Float::ln(s) + Float::ln(cell);
        slice_mut(info, 2).copy_from_slice(&[log, Float::exp(log)]);
        Ok(())
    })();
    status(r)
}
