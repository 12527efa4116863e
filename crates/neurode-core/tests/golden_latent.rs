//! The determinism promise for the latent ODE, native side: the fit that test/pool.test.ts runs
//! through the wasm build (with and without a WorkerPool) gives the same parameter bytes here.
//! Both assert the same FNV-1a digest.
//!
//! The computation (TypeScript: ts/latent.ts fit() with the options in test/pool.test.ts):
//! data = spirals(n 12, ntotal 60, nsample 20, noise 0.1, seed 1), all observed; model = obsDim
//! 2, latentDim 2, hidden 8, rnnHidden 6, GRU encoder, obsStd 0.3, no Poisson term, seed 1, f64,
//! dopri5 rtol 1e-7 atol 1e-9, backprop; 3 iterations of: 8 rows drawn without replacement
//! (seed 4, stream = iteration), shards of 2 rows (ε keyed by seed 4, the iteration and each
//! row's index in the data set), mean negative ELBO, gradients weighted by rows/batch and summed
//! in shard order, Adam (lr 0.01, betas 0.9/0.999, eps 1e-8).

mod common;

use common::{assert_golden, batch_grad, choice, param_digest};
use neurode_core::grad::{GradOptions, Mode};
use neurode_core::latent::{spirals::spirals, Config, Encoder, LatentOde, Series};
use neurode_core::optim::Optimizer;
use neurode_core::solver::{Method, Options};

/// The digest test/pool.test.ts asserts too (its 'latent ODE' case).
const GOLDEN_LATENT: &str = "a4c89b75";

fn fit_latent_digest() -> String {
    let (n, slots, d) = (12, 20, 2);
    let data = spirals(n, 60, slots, 0, 0.1, 1).unwrap();
    let (times, values) = (&data.obs_times, &data.obs_values);

    let cfg = Config { obs_dim: d, latent_dim: 2, hidden: 8, rnn_hidden: 6, encoder: Encoder::Rnn, obs_std: 0.3, poisson: false };
    let mut m = LatentOde::<f64>::new(cfg, 1).unwrap();
    let np = m.params.len();
    let mut opt = Optimizer::<f64>::new(0, np, &[0.01, 0.9, 0.999, 1e-8, 0.0]).unwrap();
    // the solve options as abi_latent.rs decodes them (adjoint tolerances = forward ones)
    let forward = Options { method: Method::Dopri5, rtol: 1e-7, atol: vec![1e-9], max_steps: 100_000, step_size: None, ..Options::default() };
    let go = GradOptions { mode: Mode::Backprop, forward, adjoint_rtol: 1e-7, adjoint_atol: 1e-9, seminorm: true };

    let (iterations, batch, shard, seed) = (3, 8, 2, 4);
    for it in 0..iterations {
        let rows = choice(seed, it, batch, n);
        let acc = batch_grad(batch, shard, |a, b| {
            // the shard's rows (ts/latent.ts takeRows), every slot observed and shown to the encoder
            let ids = &rows[a..b];
            let t: Vec<f64> = ids.iter().flat_map(|&r| times[r * slots..(r + 1) * slots].to_vec()).collect();
            let v: Vec<f64> = ids.iter().flat_map(|&r| values[r * slots * d..(r + 1) * slots * d].to_vec()).collect();
            let mask = vec![1u8; ids.len() * slots];
            let s = Series { batch: ids.len(), slots, times: &t, values: &v, mask: &mask, enc_mask: &mask };
            let keys: Vec<u64> = ids.iter().map(|&r| r as u64).collect();
            let mut g = vec![0.0f64; np];
            m.elbo_grad(&s, 0.0, &keys, seed, it, &go, &mut g).unwrap();
            g
        });
        let mut p = std::mem::take(&mut m.params);
        opt.step(&mut p, &acc).unwrap();
        m.params = p;
    }
    param_digest(&m.params)
}

#[test]
fn latent_fit_golden_digest() {
    assert_golden(fit_latent_digest, GOLDEN_LATENT);
}
