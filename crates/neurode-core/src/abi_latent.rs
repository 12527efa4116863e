//! ABI of the latent ODE (Section 5), its RNN baseline and the spirals data set. Data always
//! crosses as f64 (times, values) and u8 (masks); models hold f64 or f32 parameters.

use crate::abi::{insert, put_back, slice, slice_mut, status, take, Object};
use crate::error::{Code, Error, Result};
use crate::grad::{GradOptions, Mode};
use crate::latent::rnn::RnnBaseline;
use crate::latent::{spirals, subsample_mask, Config, Encoder, LatentOde, Series};
use crate::solver::{Method, Options};
use crate::tensor::Scalar;

fn seed64(lo: u32, hi: u32) -> u64 {
    (hi as u64) << 32 | lo as u64
}

fn whole(v: f64, name: &str, max: f64) -> Result<usize> {
    if !(v >= 0.0) || v > max || v.fract() != 0.0 {
        return Err(Error::invalid(format!("{name}: must be a whole number from 0 to {max}")));
    }
    Ok(v as usize)
}

/// Model config as TypeScript packs it: [obsDim, latentDim, hidden, rnnHidden, encoder (0 rnn,
/// 1 odernn), obsStd, poisson (0/1)].
fn decode_config(c: &[f64]) -> Result<Config> {
    Ok(Config {
        obs_dim: whole(c[0], "obsDim", 65536.0)?,
        latent_dim: whole(c[1], "latentDim", 65536.0)?,
        hidden: whole(c[2], "hidden", 65536.0)?,
        rnn_hidden: whole(c[3], "rnnHidden", 65536.0)?,
        encoder: match c[4] as u32 {
            0 => Encoder::Rnn,
            1 => Encoder::OdeRnn,
            _ => return Err(Error::invalid("encoder: must be 'rnn' or 'odernn'")),
        },
        obs_std: c[5],
        poisson: c[6] != 0.0,
    })
}

/// Solver options: [method index, rtol, atol, grad mode (0 adjoint, 1 backprop, 2 checkpoint),
/// maxSteps, stepSize (NaN = none)].
fn decode_solve(s: &[f64]) -> Result<GradOptions> {
    let method = Method::from_index(s[0] as u32).filter(|_| s[0] >= 0.0 && s[0].fract() == 0.0).ok_or_else(|| Error::invalid("method: unknown"))?;
    let (rtol, atol) = (s[1], s[2]);
    if !(rtol > 0.0) || !rtol.is_finite() || !(atol >= 0.0) || !atol.is_finite() {
        return Err(Error::invalid("rtol/atol: rtol must be > 0 and atol >= 0 (finite)"));
    }
    let mode = Mode::from_code(s[3])?;
    let max_steps = whole(s[4], "maxSteps", 9.0e15)?.max(1) as u64;
    let step_size = if s[5].is_nan() { None } else { Some(s[5]) };
    let forward = Options { method, rtol, atol: vec![atol], max_steps, step_size, ..Options::default() };
    Ok(GradOptions { mode, forward, adjoint_rtol: rtol, adjoint_atol: atol, seminorm: true })
}

/// Runs `run` with the object a handle names (taken out of the table meanwhile).
fn with_object<T>(h: u32, run: impl FnOnce(&mut Object) -> Result<T>) -> Result<T> {
    let mut obj = take(h)?;
    let r = run(&mut obj);
    put_back(h, obj);
    r
}

fn wrong(h: u32, what: &str) -> Error {
    Error::new(Code::InvalidHandle, format!("handle {h} is not {what}"))
}

#[no_mangle]
pub unsafe extern "C" fn nd_latent_create(dtype: u32, cfg: *const f64, seed_lo: u32, seed_hi: u32, handle_out: *mut u32) -> i32 {
    let r = decode_config(slice(cfg, 7)).and_then(|c| {
        let obj = match dtype {
            0 => Object::Latent64(LatentOde::new(c, seed64(seed_lo, seed_hi))?),
            1 => Object::Latent32(LatentOde::new(c, seed64(seed_lo, seed_hi))?),
            _ => return Err(Error::invalid(format!("dtype: unknown code {dtype}"))),
        };
        *handle_out = insert(obj);
        Ok(())
    });
    status(r)
}

#[no_mangle]
pub unsafe extern "C" fn nd_rnn_create(dtype: u32, obs_dim: u32, hidden: u32, seed_lo: u32, seed_hi: u32, handle_out: *mut u32) -> i32 {
    let (d, g, seed) = (obs_dim as usize, hidden as usize, seed64(seed_lo, seed_hi));
    let r = match dtype {
        0 => RnnBaseline::new(d, g, seed).map(Object::Rnn64),
        1 => RnnBaseline::new(d, g, seed).map(Object::Rnn32),
        _ => Err(Error::invalid(format!("dtype: unknown code {dtype}"))),
    }
    .map(|obj| *handle_out = insert(obj));
    status(r)
}

/// Number of parameters and their address (f64 or f32 per the model's dtype): writes
/// [numParams, dtype code, address]; all −1 for a handle that is not a latent ODE or RNN.
#[no_mangle]
pub unsafe extern "C" fn nd_latent_info(h: u32, out: *mut f64) {
    let o = slice_mut(out, 3);
    let r = with_object(h, |obj| {
        Ok(match obj {
            Object::Latent64(m) => [m.params.len() as f64, 0.0, m.params.as_mut_ptr() as usize as f64],
            Object::Latent32(m) => [m.params.len() as f64, 1.0, m.params.as_mut_ptr() as usize as f64],
            Object::Rnn64(m) => [m.params.len() as f64, 0.0, m.params.as_mut_ptr() as usize as f64],
            Object::Rnn32(m) => [m.params.len() as f64, 1.0, m.params.as_mut_ptr() as usize as f64],
            _ => [-1.0; 3],
        })
    });
    o.copy_from_slice(&r.unwrap_or([-1.0; 3]));
}

unsafe fn series<'a>(batch: u32, slots: u32, d: usize, times: *const f64, values: *const f64, mask: *const u8, emask: *const u8) -> Result<Series<'a>> {
    let n = (batch as usize).checked_mul(slots as usize).filter(|&n| n <= u32::MAX as usize && n * d <= u32::MAX as usize).ok_or_else(|| Error::invalid("data: too large"))?;
    Ok(Series { batch: batch as usize, slots: slots as usize, times: slice(times, n as u32), values: slice(values, (n * d) as u32), mask: slice(mask, n as u32), enc_mask: slice(emask, n as u32) })
}

/// A shard's draw as both sequence models' loss calls take it: the rows' indices in the data set
/// (f64 from JS; they key the rows' random numbers), the seed, the iteration and the subsample
/// bounds `keep` = (min, max) of observations kept per row, (0, 0) keeping all of them.
struct Draw<'a> {
    rows: &'a [f64],
    seed: u64,
    iteration: u64,
    keep: (u32, u32),
}

impl<'a> Draw<'a> {
    #[allow(clippy::too_many_arguments)]
    unsafe fn decode(rows: *const f64, batch: u32, seed_lo: u32, seed_hi: u32, iteration: f64, keep_min: u32, keep_max: u32) -> Result<Draw<'a>> {
        let iteration = whole(iteration, "iteration", 9.0e15)? as u64;
        Ok(Draw { rows: slice(rows, batch), seed: seed64(seed_lo, seed_hi), iteration, keep: (keep_min, keep_max) })
    }

    fn ids(&self) -> Result<Vec<u64>> {
        self.rows.iter().map(|&r| whole(r, "rows", 9.0e15).map(|v| v as u64)).collect()
    }

    fn subsampled(&self) -> bool {
        self.keep != (0, 0)
    }

    /// The observations each row of `s` keeps this iteration (rows keyed by `ids`).
    fn kept(&self, s: &Series, ids: &[u64]) -> Result<Vec<u8>> {
        subsample_mask(s, ids, self.seed, self.iteration, self.keep.0 as usize, self.keep.1 as usize)
    }
}

fn elbo_typed<R: Scalar>(m: &LatentOde<R>, s: &Series, draw: &Draw, t0: f64, go: &GradOptions, grad: &mut [f64], stats: &mut [f64]) -> Result<()> {
    let ids = draw.ids()?;
    // the encoder sees the kept observations; every observation is still scored
    let kept = if draw.subsampled() { Some(draw.kept(s, &ids)?) } else { None };
    let s = Series { enc_mask: kept.as_deref().unwrap_or(s.enc_mask), ..*s };
    let st = m.elbo_grad(&s, t0, &ids, draw.seed, draw.iteration, go, grad)?;
    stats.copy_from_slice(&[st.loss, st.nfe_forward as f64, st.nfe_backward as f64, st.recon, st.kl, st.poisson]);
    Ok(())
}

/// The mean negative ELBO of one shard and its gradient (f64, numParams) in one call. `rows`
/// (f64, batch) are the rows' indices in the data set; `stats` receives [loss, nfeForward,
/// nfeBackward, reconstruction, KL, Poisson term] (means over rows). `keep_min`/`keep_max`
/// (both 0 = off): the encoder sees a random subset of each row's `emask` observations.
#[no_mangle]
pub unsafe extern "C" fn nd_latent_elbo(
    h: u32,
    batch: u32,
    slots: u32,
    times: *const f64,
    values: *const f64,
    mask: *const u8,
    emask: *const u8,
    rows: *const f64,
    seed_lo: u32,
    seed_hi: u32,
    iteration: f64,
    keep_min: u32,
    keep_max: u32,
    t0: f64,
    sopts: *const f64,
    grad: *mut f64,
    np: u32,
    stats: *mut f64,
) -> i32 {
    let r = (|| {
        let go = decode_solve(slice(sopts, 6))?;
        let draw = Draw::decode(rows, batch, seed_lo, seed_hi, iteration, keep_min, keep_max)?;
        let g = slice_mut(grad, np as usize);
        let st = slice_mut(stats, 6);
        with_object(h, |obj| match obj {
            Object::Latent64(m) => elbo_typed(m, &series(batch, slots, m.cfg.obs_dim, times, values, mask, emask)?, &draw, t0, &go, g, st),
            Object::Latent32(m) => elbo_typed(m, &series(batch, slots, m.cfg.obs_dim, times, values, mask, emask)?, &draw, t0, &go, g, st),
            _ => Err(wrong(h, "a latent ODE")),
        })
    })();
    status(r)
}

/// Posterior predictions (f64, batch × nts × obsDim) at `ts` from the rows' `mask` observations;
/// `samples` draws of z₀ averaged (0 = from the posterior mean). `stats` gets [nfe].
#[no_mangle]
pub unsafe extern "C" fn nd_latent_predict(
    h: u32,
    batch: u32,
    slots: u32,
    times: *const f64,
    values: *const f64,
    mask: *const u8,
    ts: *const f64,
    nts: u32,
    samples: u32,
    seed_lo: u32,
    seed_hi: u32,
    t0: f64,
    sopts: *const f64,
    out: *mut f64,
    stats: *mut f64,
) -> i32 {
    let r = (|| {
        let go = decode_solve(slice(sopts, 6))?;
        let ts = slice(ts, nts);
        let seed = seed64(seed_lo, seed_hi);
        let st = with_object(h, |obj| match obj {
            Object::Latent64(m) => {
                let d = m.cfg.obs_dim;
                m.predict(&series(batch, slots, d, times, values, mask, mask)?, t0, ts, samples as usize, seed, &go.forward, slice_mut(out, batch as usize * nts as usize * d))
            }
            Object::Latent32(m) => {
                let d = m.cfg.obs_dim;
                m.predict(&series(batch, slots, d, times, values, mask, mask)?, t0, ts, samples as usize, seed, &go.forward, slice_mut(out, batch as usize * nts as usize * d))
            }
            _ => Err(wrong(h, "a latent ODE")),
        })?;
        *stats = st.nfe as f64;
        Ok(())
    })();
    status(r)
}

fn rnn_loss_typed<R: Scalar>(m: &RnnBaseline<R>, s: &Series, draw: &Draw, grad: &mut [f64]) -> Result<f64> {
    if !draw.subsampled() {
        return m.loss_grad(s, grad);
    }
    // the RNN reads and predicts only the kept observations
    let kept = draw.kept(s, &draw.ids()?)?;
    m.loss_grad(&Series { mask: &kept, enc_mask: &kept, ..*s }, grad)
}

/// The RNN baseline's loss (written to `loss`) and gradient (f64, numParams). `keep_min`/
/// `keep_max` (both 0 = off): each row is cut to a random subset of its observations (chosen as
/// for the latent ODE's encoder, keyed by `rows`, seed and iteration), which the RNN reads and
/// predicts, so it learns irregular gaps.
#[no_mangle]
pub unsafe extern "C" fn nd_rnn_loss(
    h: u32,
    batch: u32,
    slots: u32,
    times: *const f64,
    values: *const f64,
    mask: *const u8,
    rows: *const f64,
    seed_lo: u32,
    seed_hi: u32,
    iteration: f64,
    keep_min: u32,
    keep_max: u32,
    grad: *mut f64,
    np: u32,
    loss: *mut f64,
) -> i32 {
    let r = (|| {
        let g = slice_mut(grad, np as usize);
        let draw = Draw::decode(rows, batch, seed_lo, seed_hi, iteration, keep_min, keep_max)?;
        with_object(h, |obj| match obj {
            Object::Rnn64(m) => rnn_loss_typed(m, &series(batch, slots, m.obs_dim, times, values, mask, mask)?, &draw, g),
            Object::Rnn32(m) => rnn_loss_typed(m, &series(batch, slots, m.obs_dim, times, values, mask, mask)?, &draw, g),
            _ => Err(wrong(h, "an RNN baseline")),
        })
    })();
    status(r.map(|l| *loss = l))
}

#[no_mangle]
pub unsafe extern "C" fn nd_rnn_predict(h: u32, batch: u32, slots: u32, times: *const f64, values: *const f64, mask: *const u8, ts: *const f64, nts: u32, out: *mut f64) -> i32 {
    let ts = slice(ts, nts);
    let r = with_object(h, |obj| match obj {
        Object::Rnn64(m) => m.predict(&series(batch, slots, m.obs_dim, times, values, mask, mask)?, ts, slice_mut(out, batch as usize * nts as usize * m.obs_dim)),
        Object::Rnn32(m) => m.predict(&series(batch, slots, m.obs_dim, times, values, mask, mask)?, ts, slice_mut(out, batch as usize * nts as usize * m.obs_dim)),
        _ => Err(wrong(h, "an RNN baseline")),
    });
    status(r)
}

/// The bidirectional spirals. Buffers (f64): obs times n·nsample, obs values n·nsample·2,
/// truth times nsample + nextra, truth values n·(nsample + nextra)·2, starts n, clockwise n (0/1).
#[no_mangle]
pub unsafe extern "C" fn nd_spirals(
    n: u32,
    ntotal: u32,
    nsample: u32,
    nextra: u32,
    noise: f64,
    seed_lo: u32,
    seed_hi: u32,
    obs_times: *mut f64,
    obs_values: *mut f64,
    truth_times: *mut f64,
    truth_values: *mut f64,
    starts: *mut f64,
    clockwise: *mut f64,
) -> i32 {
    let r = spirals::spirals(n as usize, ntotal as usize, nsample as usize, nextra as usize, noise, seed64(seed_lo, seed_hi)).map(|s| {
        slice_mut(obs_times, s.obs_times.len()).copy_from_slice(&s.obs_times);
        slice_mut(obs_values, s.obs_values.len()).copy_from_slice(&s.obs_values);
        slice_mut(truth_times, s.truth_times.len()).copy_from_slice(&s.truth_times);
        slice_mut(truth_values, s.truth_values.len()).copy_from_slice(&s.truth_values);
        for (o, v) in slice_mut(starts, s.starts.len()).iter_mut().zip(&s.starts) {
            *o = *v as f64;
        }
        for (o, v) in slice_mut(clockwise, s.clockwise.len()).iter_mut().zip(&s.clockwise) {
            *o = if *v { 1.0 } else { 0.0 };
        }
    });
    status(r)
}
