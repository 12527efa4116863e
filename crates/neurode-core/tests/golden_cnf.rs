//! The determinism promise for continuous normalizing flows, native side: the CNF fit that
//! test/pool.test.ts runs through the wasm build (with and without a WorkerPool) gives the same
//! parameter bytes here. Both assert the same FNV-1a digest.
//!
//! The computation (TypeScript: ts/cnf.ts fit() with the options in test/pool.test.ts):
//! data = twoMoons(96, seed 3); flow = concatsquash MLP [2, 8, 8, 2], tanh, seed 6, f64,
//! Hutchinson trace with Rademacher probes, dopri5 rtol = atol = 1e-5, adjoint with the
//! seminorm, t1 = 1, standard normal base; 4 iterations of: 32 rows drawn without replacement
//! (seed 9, stream = iteration), shards of 8 rows (probes keyed by seed 9, the iteration and the
//! shard's first row), mean −log p, gradients weighted by rows/batch and summed in shard order,
//! Adam (lr 0.03, betas 0.9/0.999, eps 1e-8).

mod common;

use common::{assert_golden, batch_grad, choice, param_digest};
use neurode_core::cnf::{self, Cnf, Trace};
use neurode_core::datasets;
use neurode_core::grad::{GradOptions, Mode};
use neurode_core::nn::{mlp, Act, TimeMode};
use neurode_core::optim::Optimizer;
use neurode_core::solver::{Method, Options};

/// The digest test/pool.test.ts asserts too (its 'CNF' case).
const GOLDEN_CNF: &str = "d27d4c92";

fn fit_cnf_digest() -> String {
    let (n, d) = (96, 2);
    let mut data = vec![0.0f64; n * d];
    datasets::toy(1, n, 3, &mut data).unwrap(); // datasets::NAMES[1] = twoMoons

    let specs = mlp(&[2, 8, 8, 2], Act::Tanh, TimeMode::ConcatSquash, false).unwrap();
    let mut flow = Cnf::<f64>::mlp(&specs, 6).unwrap();
    let np = flow.params.len();
    let mut opt = Optimizer::<f64>::new(0, np, &[0.03, 0.9, 0.999, 1e-8, 0.0]).unwrap();
    // the CNF's call configuration as abi_cnf.rs decodes it (adjoint tolerances = forward ones)
    let forward = Options { method: Method::Dopri5, rtol: 1e-5, atol: vec![1e-5], max_steps: 100_000, step_size: None, ..Options::default() };
    let go = GradOptions { mode: Mode::Adjoint, forward, adjoint_rtol: 1e-5, adjoint_atol: 1e-5, seminorm: true };

    let (iterations, batch, shard, seed) = (4, 32, 8, 9);
    for it in 0..iterations {
        let rows = choice(seed, it, batch, n);
        let acc = batch_grad(batch, shard, |a, b| {
            let x: Vec<f64> = rows[a..b].iter().flat_map(|&r| data[r * d..(r + 1) * d].to_vec()).collect();
            let trace = Trace::Hutchinson { gaussian: false, seed, stream: cnf::stream(cnf::PURPOSE_PROBE, it), first_row: a as u64 };
            flow.mle_shard(&x, 1.0, 1.0, trace, None, &go).unwrap().grad
        });
        let mut p = std::mem::take(&mut flow.params);
        opt.step(&mut p, &acc).unwrap();
        flow.params = p;
    }
    param_digest(&flow.params)
}

#[test]
fn cnf_fit_golden_digest() {
    assert_golden(fit_cnf_digest, GOLDEN_CNF);
}
