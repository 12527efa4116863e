//! ABI of trajectory fitting (ts/trajectory.ts): one shard of windows — forward solve, loss and
//! backward pass — in a single call, without a tape handle crossing to TypeScript and without
//! dL/dts (never read there; the adjoint then saves one evaluation per output time).

use crate::abi::{slice, slice_mut, status, write_stats};
use crate::error::{Error, Result};
use crate::field::with_field;
use crate::grad::{self, GradOptions, Mode};
use crate::loss::Loss;
use crate::solver::{Method, Options, Stats};
use crate::tensor::Scalar;

/// `cfg` as TypeScript packs it: [grad (0 adjoint, 1 backprop, 2 checkpoint), method index,
/// rtol, atol, loss (0 l1, 1 mse)]. The adjoint uses the forward tolerances and the seminorm
/// (odeintWithGrad's defaults).
const CFG_COUNT: u32 = 5;

fn decode(cfg: &[f64]) -> Result<(GradOptions, Loss)> {
    let mode = Mode::from_code(cfg[0])?;
    let method = Method::from_index(cfg[1] as u32).filter(|_| cfg[1] >= 0.0 && cfg[1].fract() == 0.0).ok_or_else(|| Error::invalid("method: unknown index"))?;
    let (rtol, atol) = (cfg[2], cfg[3]);
    if !(rtol > 0.0) || !rtol.is_finite() || !(atol >= 0.0) || !atol.is_finite() {
        return Err(Error::invalid("rtol must be > 0 and atol >= 0"));
    }
    let loss = Loss::from_index(cfg[4] as u32).filter(|_| cfg[4] == 0.0 || cfg[4] == 1.0).ok_or_else(|| Error::invalid("loss: unknown kind"))?;
    let forward = Options { method, rtol, atol: vec![atol], ..Options::default() };
    Ok((GradOptions { mode, forward, adjoint_rtol: rtol, adjoint_atol: atol, seminorm: true }, loss))
}

#[allow(clippy::too_many_arguments)]
unsafe fn shard<R: Scalar>(field: u32, go: &GradOptions, loss: Loss, y0: *const u8, n: u32, ts: &[f64], target: *const u8, grad_out: *mut f64, np: u32, info: &mut [f64]) -> Result<()> {
    let y0 = slice(y0 as *const R, n);
    let target = slice(target as *const R, (ts.len() as u32).saturating_mul(n));
    with_field::<R, _>(field, |f| {
        if f.num_params() != np as usize {
            return Err(Error::invalid(format!("grad buffer has {} entries, the field has {}", np, f.num_params())));
        }
        let mut tape = grad::forward(f, y0, ts, go)?;
        tape.skip_ts_grad();
        let forward_stats: Stats = tape.forward_stats;
        let mut dl = vec![R::ZERO; tape.ys.len()];
        let value = loss.eval(&tape.ys, target, None, &mut dl)?;
        let g = grad::backward(f, tape, &dl)?;
        slice_mut(grad_out, np as usize).copy_from_slice(&g.params);
        info[0] = value;
        write_stats(&mut info[1..4], &forward_stats);
        write_stats(&mut info[4..7], &g.stats);
        Ok(())
    })
}

/// One shard of a trajectory fit on a core field: solves from `y0` (n = rows·dim, the field's
/// dtype) at `ts`, takes the loss against `target` (ts.len() × n, the field's dtype), and writes
/// dL/dθ (np f64) and `info` = [loss, forward nfe, steps, rejected, backward nfe, steps,
/// rejected] (7 f64).
#[no_mangle]
pub unsafe extern "C" fn nd_traj_shard(dtype: u32, field: u32, cfg: *const f64, y0: *const u8, n: u32, ts: *const f64, nts: u32, target: *const u8, grad_out: *mut f64, np: u32, info: *mut f64) -> i32 {
    let ts = slice(ts, nts);
    let info = slice_mut(info, 7);
    let r = decode(slice(cfg, CFG_COUNT)).and_then(|(go, loss)| match dtype {
        0 => shard::<f64>(field, &go, loss, y0, n, ts, target, grad_out, np, info),
        1 => shard::<f32>(field, &go, loss, y0, n, ts, target, grad_out, np, info),
        _ => Err(Error::invalid(format!("unknown dtype {}", dtype))),
    });
    status(r)
}
