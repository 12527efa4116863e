//! The determinism promise for the ODE-Net classifier, native side: the fit that
//! test/pool.test.ts runs through the wasm build (with and without a WorkerPool) gives the same
//! parameter bytes here. Both assert the same FNV-1a digest.
//!
//! The computation (TypeScript: ts/odenet.ts fit() with the options in test/pool.test.ts):
//! data = 24 generated 28×28 images (stripedImages(24, seed 8) there, `striped_images` here);
//! model = arch 'conv', width 8, 10 classes, seed 2, float32, dopri5 rtol = atol = 1e-3,
//! maxSteps 1000, adjoint with the seminorm; 3 iterations (one epoch each, full batch) of: the
//! rows in the order of counter-based uniform keys (seed 5, stream 0x0de7 + epoch; ties by
//! index), shards of 6 rows, mean cross-entropy, gradients weighted by rows/batch and summed in
//! shard order, SGD (lr 0.1, momentum 0.9, no weight decay) on the f32 parameters.

mod common;

use common::{assert_golden, batch_grad, param_digest, random, Kind};
use neurode_core::abi_odenet::decode_config;
use neurode_core::odenet::Classifier;
use neurode_core::optim::Optimizer;

/// The digest test/pool.test.ts asserts too (its 'ODE-Net (small)' case).
const GOLDEN_ODENET: &str = "6c5c7e1a";

const PIXELS: usize = 784;

/// Class c (uniform over 10) = uniform noise · 0.5 with every (c + 2)-th row lit by 0.5,
/// rounded to f32 (the TypeScript test's stripedImages).
fn striped_images(n: usize, seed: u64) -> (Vec<f32>, Vec<i32>) {
    let y: Vec<i32> = random(Kind::Integer, n, seed, 0, 10).iter().map(|&v| v as i32).collect();
    let u = random(Kind::Uniform, n * PIXELS, seed, 1, 0);
    let mut x = vec![0.0f32; n * PIXELS];
    for i in 0..n {
        for p in 0..PIXELS {
            let lit = if (p / 28) % (y[i] as usize + 2) == 0 { 0.5 } else { 0.0 };
            x[i * PIXELS + p] = (0.5 * u[i * PIXELS + p] + lit) as f32;
        }
    }
    (x, y)
}

fn fit_odenet_digest() -> String {
    let n = 24;
    let (x, y) = striped_images(n, 8);

    // ts/odenet.ts packConfig: [arch, c, h, w, classes, width, blocks, method (dopri5 = 5), rtol,
    // atol, grad (adjoint = 0), maxSteps, stepSize, adjointRtol, adjointAtol, seminorm]
    let cfg = decode_config(&[0.0, 1.0, 28.0, 28.0, 10.0, 8.0, 6.0, 5.0, 1e-3, 1e-3, 0.0, 1000.0, f64::NAN, f64::NAN, f64::NAN, 1.0]).unwrap();
    let mut m = Classifier::<f32>::new(cfg, 2).unwrap();
    let np = m.params.len();
    // fit() also sets the (unscheduled, so unchanged) learning rate before every step
    let mut opt = Optimizer::<f32>::new(1, np, &[0.1, 0.9, 0.0, 0.0, 0.0]).unwrap();

    let (iterations, batch, shard, seed) = (3, 24, 6, 5);
    for it in 0..iterations {
        // one batch per epoch: the epoch's order is the iteration's
        let keys = random(Kind::Uniform, n, seed, 0x0de7 + it, 0);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| keys[a].partial_cmp(&keys[b]).unwrap().then(a.cmp(&b)));
        let acc = batch_grad(batch, shard, |a, b| {
            let xs: Vec<f32> = order[a..b].iter().flat_map(|&r| x[r * PIXELS..(r + 1) * PIXELS].to_vec()).collect();
            let ys: Vec<i32> = order[a..b].iter().map(|&r| y[r]).collect();
            let mut g = vec![0.0f64; np];
            m.loss_grad(&xs, &ys, &mut g).unwrap();
            g
        });
        let mut p = std::mem::take(&mut m.params);
        opt.step(&mut p, &acc).unwrap();
        m.params = p;
    }
    param_digest(&m.params)
}

#[test]
fn odenet_fit_golden_digest() {
    assert_golden(fit_odenet_digest, GOLDEN_ODENET);
}
