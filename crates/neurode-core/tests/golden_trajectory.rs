//! The determinism promise, native side: the same trajectory-fit iterations that
//! test/pool.test.ts runs through the wasm build (fitTrajectory, with and without a WorkerPool)
//! give the same parameter bytes here, natively. Both assert the same FNV-1a digest.
//!
//! The computation (TypeScript: ts/trajectory.ts with the options in test/pool.test.ts):
//! data = the spiral y' = (y³)A, A = [[-0.1, 2], [-2, -0.1]], from y0 = [2, 0] at
//! t_i = 10·i/199 (200 points, dopri5 defaults); field = mlp [2, 16, 2], tanh, input cube,
//! seed 7; 4 iterations of: 16 windows of 8 points drawn without replacement (seed 11, stream =
//! iteration), shards of 4 windows, each solved jointly (dopri5, rtol 1e-7, atol 1e-9,
//! backprop), L1 loss, shard gradients weighted by rows/batch and summed in shard order,
//! RMSprop (lr 0.01, alpha 0.99, eps 1e-8).

mod common;

use common::{assert_golden, batch_grad, choice, param_digest};
use neurode_core::field::NetField;
use neurode_core::grad::{self, GradOptions, Mode};
use neurode_core::loss::Loss;
use neurode_core::nn::{mlp, Act, TimeMode};
use neurode_core::optim::Optimizer;
use neurode_core::solver::{self, FnRhs, Options, Stats};

/// The digest test/pool.test.ts asserts too (its 'trajectory (ode_demo)' case).
const GOLDEN_TRAJECTORY: &str = "31069133";

fn fit_trajectory_digest() -> String {
    // data
    let npts = 200;
    let t: Vec<f64> = (0..npts).map(|i| (10.0 * i as f64) / 199.0).collect();
    let mut y = vec![0.0f64; npts * 2];
    let mut spiral = FnRhs(|_t: f64, y: &[f64], dy: &mut [f64]| {
        let (a, b) = (y[0] * y[0] * y[0], y[1] * y[1] * y[1]);
        dy[0] = a * -0.1 + b * -2.0;
        dy[1] = a * 2.0 + b * -0.1;
    });
    solver::solve(&mut spiral, &[2.0, 0.0], &t, &Options::default(), &mut y, &mut Stats::default(), None).unwrap();

    // model and optimiser
    let specs = mlp(&[2, 16, 2], Act::Tanh, TimeMode::None, true).unwrap();
    let mut field = NetField::<f64>::new(&specs, 7, 0.0).unwrap(); // PyTorch default init (initStd 0)
    let np = field.params.len();
    let mut opt = Optimizer::<f64>::new(2, np, &[0.01, 0.99, 1e-8, 0.0, 0.0]).unwrap();
    let forward = Options { rtol: 1e-7, atol: vec![1e-9], ..Options::default() };
    let go = GradOptions { mode: Mode::Backprop, forward, adjoint_rtol: 1e-7, adjoint_atol: 1e-9, seminorm: true };

    let (iterations, batch_time, batch, shard, d) = (4, 8, 16, 4, 2);
    let ts: Vec<f64> = t[..batch_time].iter().map(|v| v - t[0]).collect();
    for it in 0..iterations {
        let starts = choice(11, it, batch, npts - batch_time);
        let acc = batch_grad(batch, shard, |a, b| {
            let rows = b - a;
            let mut y0 = vec![0.0; rows * d];
            let mut target = vec![0.0; batch_time * rows * d];
            for r in 0..rows {
                let s = starts[a + r];
                y0[r * d..(r + 1) * d].copy_from_slice(&y[s * d..(s + 1) * d]);
                for k in 0..batch_time {
                    target[(k * rows + r) * d..(k * rows + r + 1) * d].copy_from_slice(&y[(s + k) * d..(s + k + 1) * d]);
                }
            }
            let tape = grad::forward(&mut field, &y0, &ts, &go).unwrap();
            let mut dl = vec![0.0; tape.ys.len()];
            Loss::L1.eval(&tape.ys, &target, None, &mut dl).unwrap();
            grad::backward(&mut field, tape, &dl).unwrap().params
        });
        let mut p = std::mem::take(&mut field.params);
        opt.step(&mut p, &acc).unwrap();
        field.params = p;
    }
    param_digest(&field.params)
}

#[test]
fn trajectory_fit_golden_digest() {
    assert_golden(fit_trajectory_digest, GOLDEN_TRAJECTORY);
}
