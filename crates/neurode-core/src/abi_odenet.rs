//! ABI of the image classifiers (`odenet`): create, parameters, one call per shard for loss +
//! gradient, evaluation, a learning-rate setter for optimisers (schedules) and a convolution
//! kernel runner for benchmarks.

use crate::abi::{insert, put_back, slice, slice_mut, status, take, Object};
use crate::conv::{ConvScratch, Conv2d};
use crate::error::{Code, Error, Result};
use crate::grad::Mode;
use crate::odenet::{grad_options, Arch, Classifier, Config, StepStats};
use crate::optim::Optimizer;
use crate::solver::Method;
use crate::tensor::Scalar;

/// Configuration as TypeScript packs it (f64; NaN = default):
/// [arch (0 conv, 1 mlp, 2 resnet, 3 dense), in_c, in_h, in_w, classes, width, blocks,
///  method index, rtol, atol, grad mode (0 adjoint, 1 backprop, 2 checkpoint), max_steps,
///  step_size, adjoint_rtol, adjoint_atol, seminorm (0/1)].
pub const CFG_COUNT: usize = 16;

fn whole(v: f64, name: &str, lo: f64, hi: f64) -> Result<usize> {
    if !(v >= lo && v <= hi) || v.fract() != 0.0 {
        return Err(Error::invalid(format!("{name}: must be a whole number in [{lo}, {hi}], got {v}")));
    }
    Ok(v as usize)
}

fn positive(v: f64, name: &str) -> Result<f64> {
    if !(v > 0.0) || !v.is_finite() {
        return Err(Error::invalid(format!("{name}: must be a finite number > 0, got {v}")));
    }
    Ok(v)
}

pub fn decode_config(c: &[f64]) -> Result<Config> {
    if c.len() != CFG_COUNT {
        return Err(Error::invalid("config: wrong length"));
    }
    let arch = match c[0] as u32 {
        0 => Arch::Conv,
        1 => Arch::Mlp,
        2 => Arch::ResNet,
        3 => Arch::Dense,
        _ => return Err(Error::invalid("arch: unknown architecture")),
    };
    let method = Method::from_index(whole(c[7], "method", 0.0, 64.0)? as u32).ok_or_else(|| Error::invalid("method: unknown method"))?;
    let mode = Mode::from_code(c[10])?;
    let rtol = positive(c[8], "rtol")?;
    let atol = positive(c[9], "atol")?;
    let step = if c[12].is_nan() { None } else { Some(positive(c[12], "stepSize")?) };
    if !method.tableau().adaptive() && step.is_none() {
        return Err(Error::invalid("stepSize: required for fixed-step methods"));
    }
    let mut go = grad_options(method, rtol, atol, mode, step, whole(c[11], "maxSteps", 1.0, 1e9)? as u64);
    if !c[13].is_nan() {
        go.adjoint_rtol = positive(c[13], "adjointRtol")?;
    }
    if !c[14].is_nan() {
        go.adjoint_atol = positive(c[14], "adjointAtol")?;
    }
    go.seminorm = c[15] != 0.0;
    Ok(Config {
        arch,
        in_c: whole(c[1], "inputShape", 1.0, 65536.0)?,
        in_h: whole(c[2], "inputShape", 1.0, 65536.0)?,
        in_w: whole(c[3], "inputShape", 1.0, 65536.0)?,
        classes: whole(c[4], "classes", 2.0, 4096.0)?,
        width: whole(c[5], "width", 1.0, 4096.0)?,
        blocks: whole(c[6], "blocks", 0.0, 64.0)?,
        go,
    })
}

/// Creates a classifier (dtype 0 f64, 1 f32) with parameters initialised from the seed.
#[no_mangle]
pub unsafe extern "C" fn nd_classifier_create(dtype: u32, cfg: *const f64, seed_lo: u32, seed_hi: u32, handle_out: *mut u32) -> i32 {
    let seed = (seed_hi as u64) << 32 | seed_lo as u64;
    let r = (|| {
        let c = decode_config(slice(cfg, CFG_COUNT as u32))?;
        let obj = match dtype {
            0 => Object::Classifier64(Classifier::new(c, seed)?),
            1 => Object::Classifier32(Classifier::new(c, seed)?),
            _ => return Err(Error::invalid(format!("dtype: unknown code {}", dtype))),
        };
        *handle_out = insert(obj);
        Ok(())
    })();
    status(r)
}

/// Writes [numParams, dtype code, input size, classes] (f64); all −1 for a bad handle.
#[no_mangle]
pub unsafe extern "C" fn nd_classifier_info(h: u32, out: *mut f64) {
    let o = slice_mut(out, 4);
    let r = take(h);
    match &r {
        Ok(Object::Classifier64(c)) => o.copy_from_slice(&[c.params.len() as f64, 0.0, c.input_size() as f64, c.cfg.classes as f64]),
        Ok(Object::Classifier32(c)) => o.copy_from_slice(&[c.params.len() as f64, 1.0, c.input_size() as f64, c.cfg.classes as f64]),
        _ => o.copy_from_slice(&[-1.0; 4]),
    }
    if let Ok(obj) = r {
        put_back(h, obj);
    }
}

/// Address of the parameters (stable for the object's lifetime); 0 for a bad handle.
#[no_mangle]
pub extern "C" fn nd_classifier_params(h: u32) -> usize {
    match take(h) {
        Ok(mut obj) => {
            let p = match &mut obj {
                Object::Classifier64(c) => c.params.as_mut_ptr() as usize,
                Object::Classifier32(c) => c.params.as_mut_ptr() as usize,
                _ => 0,
            };
            put_back(h, obj);
            p
        }
        Err(_) => 0,
    }
}

/// Runs the same code on a classifier of either dtype.
macro_rules! with_classifier {
    ($h:expr, |$c:ident| $body:expr) => {
        with_classifier($h, |cls| match cls {
            Cls::F64($c) => $body,
            Cls::F32($c) => $body,
        })
    };
}

enum Cls<'a> {
    F64(&'a mut Classifier<f64>),
    F32(&'a mut Classifier<f32>),
}

fn with_classifier<T>(h: u32, run: impl FnOnce(Cls) -> Result<T>) -> Result<T> {
    let mut obj = take(h)?;
    let r = match &mut obj {
        Object::Classifier64(c) => run(Cls::F64(c)),
        Object::Classifier32(c) => run(Cls::F32(c)),
        _ => Err(Error::new(Code::InvalidHandle, format!("handle {} is not a classifier", h))),
    };
    put_back(h, obj);
    r
}

/// Loss and gradient of one shard: x (n rows of f32, NCHW), labels (n i32), grad (np f64).
/// `stats` receives [loss, correct, nfe forward, nfe backward, steps, depth bytes, memory bytes].
#[no_mangle]
pub unsafe extern "C" fn nd_classifier_loss_grad(h: u32, x: *const f32, nx: u32, labels: *const i32, n: u32, grad: *mut f64, np: u32, stats: *mut f64) -> i32 {
    let (xs, ls, g) = (slice(x, nx), slice(labels, n), slice_mut(grad, np as usize));
    let r = with_classifier!(h, |c| c.loss_grad(xs, ls, g)).map(|s: StepStats| {
        let o = slice_mut(stats, 7);
        o.copy_from_slice(&[s.loss, s.correct as f64, s.nfe_forward as f64, s.nfe_backward as f64, s.steps as f64, s.depth_bytes as f64, s.memory_bytes as f64]);
    });
    status(r)
}

/// Predictions of n rows into `pred` (i32); with labels (has_labels = 1) also the loss.
/// `out` receives [loss sum, correct, forward NFE summed over chunks, chunks].
#[no_mangle]
pub unsafe extern "C" fn nd_classifier_evaluate(h: u32, x: *const f32, nx: u32, labels: *const i32, has_labels: u32, n: u32, pred: *mut i32, out: *mut f64) -> i32 {
    let xs = slice(x, nx);
    let ls = if has_labels != 0 { Some(slice(labels, n)) } else { None };
    let p = slice_mut(pred, n as usize);
    let r = with_classifier!(h, |c| c.evaluate(xs, ls, p)).map(|(l, k, nfe, ch)| {
        slice_mut(out, 4).copy_from_slice(&[l, k as f64, nfe as f64, ch as f64]);
    });
    status(r)
}

/// Sets an optimiser's learning rate (learning-rate schedules).
#[no_mangle]
pub extern "C" fn nd_optim_set_lr(h: u32, lr: f64) -> i32 {
    fn set<R: crate::real::Real>(o: &mut Optimizer<R>, lr: f64) {
        match o {
            Optimizer::Adam(a, _) => a.lr = lr,
            Optimizer::Sgd(a, _) => a.lr = lr,
            Optimizer::RmsProp(a, _) => a.lr = lr,
        }
    }
    if !(lr >= 0.0) || !lr.is_finite() {
        return status(Err(Error::invalid("lr: must be a finite number >= 0")));
    }
    let r = take(h).and_then(|mut obj| {
        let r = match &mut obj {
            Object::Optim64(o) => Ok(set(o, lr)),
            Object::Optim32(o) => Ok(set(o, lr)),
            _ => Err(Error::new(Code::InvalidHandle, format!("handle {} is not an optimiser", h))),
        };
        put_back(h, obj);
        r
    });
    status(r)
}

fn conv_run<R: Scalar>(c: &Conv2d, batch: usize, h: usize, w: usize, mode: u32, reps: u32) -> Result<()> {
    let (oh, ow) = c.out_hw(h, w).ok_or_else(|| Error::invalid("conv: kernel larger than the padded input"))?;
    let fill = |n: usize, s: u64| -> Vec<R> { (0..n).map(|i| R::from_f64(crate::rng::uniform_f64(7, s, i as u64) - 0.5)).collect() };
    let x = fill(batch * h * w * c.ci, 1);
    let p = fill(c.num_params(), 2);
    let dy = fill(batch * oh * ow * c.co, 3);
    let mut y = vec![R::ZERO; batch * oh * ow * c.co];
    let mut dx = vec![R::ZERO; x.len()];
    let mut dp = vec![R::ZERO; p.len()];
    let mut s = ConvScratch::default();
    for _ in 0..reps {
        match mode {
            0 => c.forward(&p, 0.5, &x, batch, h, w, &mut y, &mut s)?,
            1 => c.forward_direct(&p, 0.5, &x, batch, h, w, &mut y)?,
            3 => {
                let (kd, rows, rb) = (c.kdim(), batch * oh * ow, c.block_rows());
                let cols = fill(rb * kd, 4);
                let wt = fill(kd * c.co, 5);
                let mut r0 = 0;
                while r0 < rows {
                    let nr = rb.min(rows - r0);
                    crate::tensor::gemm(nr, c.co, kd, &cols, kd, 1, &wt, c.co, &mut y[r0 * c.co..(r0 + nr) * c.co], c.co, false, None, crate::math::Act::Identity)?;
                    r0 += nr;
                }
            }
            _ => {
                c.backward(&p, 0.5, &x, batch, h, w, &dy, Some(&mut dx), &mut dp, &mut s)?;
            }
        }
    }
    Ok(())
}

/// Benchmark hook: runs one convolution `reps` times on fixed data. `spec` = [ci, co, k, stride,
/// pad, bias, time, batch, h, w] (u32); mode 0 forward (im2col + gemm), 1 forward (direct
/// loops), 2 backward (weights + input), 3 the forward's gemms alone (no im2col). Times include
/// filling the inputs once: time two repetition counts and take the difference.
#[no_mangle]
pub unsafe extern "C" fn nd_conv_run(dtype: u32, spec: *const u32, mode: u32, reps: u32) -> i32 {
    let s = slice(spec, 10);
    let r = (|| {
        if s.iter().take(3).any(|v| *v == 0) || s[3] == 0 || s[0] > 4096 || s[1] > 4096 || s[2] > 16 || s[7] > 4096 || s[8] > 1024 || s[9] > 1024 || s[7] == 0 {
            return Err(Error::invalid("spec: sizes out of range"));
        }
        let c = Conv2d { ci: s[0] as usize, co: s[1] as usize, k: s[2] as usize, stride: s[3] as usize, pad: s[4] as usize, bias: s[5] != 0, time: s[6] != 0 };
        let (b, h, w) = (s[7] as usize, s[8] as usize, s[9] as usize);
        match dtype {
            0 => conv_run::<f64>(&c, b, h, w, mode, reps),
            1 => conv_run::<f32>(&c, b, h, w, mode, reps),
            _ => Err(Error::invalid("dtype: unknown code")),
        }
    })();
    status(r)
}
