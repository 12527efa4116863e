//! Classifier checks: parameter counts against the peer's PyTorch models, whole-network
//! gradients against finite differences for every architecture and gradient mode, memory
//! behaviour of adjoint vs backprop, and the ODE field's VJP.

use super::*;

fn cfg(arch: Arch, mode: Mode, method: Method, step: Option<f64>) -> Config {
    Config { arch, in_c: 1, in_h: 12, in_w: 12, classes: 3, width: 8, blocks: 2, go: grad_options(method, 1e-9, 1e-9, mode, step, 100_000) }
}

fn data(n: usize, d: usize) -> (Vec<f32>, Vec<i32>) {
    let x = (0..n * d).map(|i| crate::rng::uniform_f64(5, 0, i as u64) as f32).collect();
    let y = (0..n).map(|i| (i % 3) as i32).collect();
    (x, y)
}

fn mnist_cfg(arch: Arch, width: usize) -> Config {
    Config { arch, in_c: 1, in_h: 28, in_w: 28, classes: 10, width, blocks: 6, go: grad_options(Method::Dopri5, 1e-3, 1e-3, Mode::Adjoint, None, 1000) }
}

#[test]
fn parameter_counts_match_the_pytorch_models() {
    // MODELS_PEER.md: torchdiffeq's odenet_mnist 208,266; ResNet (6 blocks) 576,778; MLP 784→300→10 238,510
    assert_eq!(build(&mnist_cfg(Arch::Conv, 64)).unwrap().num_params(), 208_266);
    assert_eq!(build(&mnist_cfg(Arch::ResNet, 64)).unwrap().num_params(), 576_778);
    assert_eq!(build(&mnist_cfg(Arch::Dense, 300)).unwrap().num_params(), 238_510);
    let s = build(&mnist_cfg(Arch::Conv, 64)).unwrap();
    // downsampling to 64 channels at 6×6
    assert!(s.shapes.contains(&Shape { h: 6, w: 6, c: 64 }));
    assert_eq!(s.output(), Shape { h: 1, w: 1, c: 10 });
}

fn check_grad(c: Config, tol: f64) {
    let mut m = Classifier::<f64>::new(c, 3).unwrap();
    let d = m.input_size();
    let (x, y) = data(2, d);
    let np = m.params.len();
    let mut g = vec![0.0; np];
    m.loss_grad(&x, &y, &mut g).unwrap();
    let p0 = m.params.clone();
    let h = 1e-5;
    let idx: Vec<usize> = (0..30).map(|j| (j * 7919 + 5) % np).collect();
    let mut scratch = vec![0.0; np];
    for i in idx {
        m.params[i] = p0[i] + h;
        let lp = m.loss_grad(&x, &y, &mut scratch).unwrap().loss;
        m.params[i] = p0[i] - h;
        let lm = m.loss_grad(&x, &y, &mut scratch).unwrap().loss;
        m.params[i] = p0[i];
        let num = (lp - lm) / (2.0 * h);
        assert!((num - g[i]).abs() <= tol * (1e-3 + num.abs()), "{:?} {:?} param {i}: fd {num} vs {}", m.cfg.arch, m.cfg.go.mode, g[i]);
    }
}

#[test]
fn gradients_match_finite_differences_for_every_architecture() {
    // fixed steps: the discrete gradient is the exact derivative of the computed loss
    check_grad(cfg(Arch::Conv, Mode::Backprop, Method::Rk4, Some(0.25)), 1e-5);
    check_grad(cfg(Arch::Conv, Mode::Checkpoint, Method::Rk4, Some(0.25)), 1e-5);
    check_grad(cfg(Arch::Mlp, Mode::Backprop, Method::Rk4, Some(0.25)), 1e-5);
    check_grad(cfg(Arch::ResNet, Mode::Backprop, Method::Rk4, Some(0.25)), 1e-5);
    check_grad(cfg(Arch::Dense, Mode::Backprop, Method::Rk4, Some(0.25)), 1e-5);
}

#[test]
fn adjoint_memory_does_not_grow_with_steps_backprop_does() {
    let mut figs = Vec::new();
    for mode in [Mode::Adjoint, Mode::Backprop] {
        for step in [0.5, 0.125] {
            let mut m = Classifier::<f64>::new(cfg(Arch::Conv, mode, Method::Rk4, Some(step)), 1).unwrap();
            let (x, y) = data(2, m.input_size());
            let mut g = vec![0.0; m.params.len()];
            let s = m.loss_grad(&x, &y, &mut g).unwrap();
            assert_eq!(s.steps, (1.0 / step) as u64);
            figs.push(s.depth_bytes);
        }
    }
    // adjoint stores z(0), z(1) only; backprop stores every step's state and stages
    assert_eq!(figs[0], figs[1]);
    let n = 2 * 2 * (2 * 2 * 8) * 8; // two outputs × batch 2 × (2×2×8) values × 8 bytes
    assert_eq!(figs[0], n);
    assert!(figs[3] > 3 * figs[2], "{figs:?}");
}

#[test]
fn field_vjp_matches_finite_differences_in_time() {
    let c = cfg(Arch::Conv, Mode::Adjoint, Method::Dopri5, None);
    let s = build(&c).unwrap();
    let Some(Op::Ode(b)) = s.ops.iter().find(|o| matches!(o, Op::Ode(_))) else { panic!("no ODE block") };
    let mut p = vec![0.0; b.num_params()];
    b.init_params(9, 0, &mut p);
    let mut ws = SeqWs::<f64>::new(b);
    let n = 2 * b.input().size();
    let y: Vec<f64> = (0..n).map(|i| crate::rng::uniform_f64(1, 1, i as u64) - 0.5).collect();
    let a: Vec<f64> = (0..n).map(|i| crate::rng::uniform_f64(1, 2, i as u64) - 0.5).collect();
    let mut rhs = FieldRhs { seq: b, p: &p, ws: &mut ws, go: &c.go };
    let (mut gy, mut gp) = (vec![0.0; n], vec![0.0; p.len()]);
    let dt = rhs.vjp(0.4, &y, &a, None, &mut gy, &mut gp).unwrap();
    let mut f = vec![0.0; n];
    let mut l = |t: f64| {
        rhs.eval(t, &y, &mut f).unwrap();
        f.iter().zip(&a).map(|(u, v)| u * v).sum::<f64>()
    };
    let num = (l(0.4 + 1e-6) - l(0.4 - 1e-6)) / 2e-6;
    assert!((num - dt).abs() < 1e-6 * (1.0 + num.abs()), "dt {dt} vs fd {num}");
}

#[test]
fn bad_configurations_and_inputs_are_errors() {
    let mut c = cfg(Arch::Conv, Mode::Adjoint, Method::Dopri5, None);
    c.in_h = 3; // the downsampling kernel does not fit
    assert!(build(&c).is_err());
    let mut c = cfg(Arch::Dense, Mode::Adjoint, Method::Dopri5, None);
    c.classes = 1;
    assert!(build(&c).is_err());
    let mut m = Classifier::<f32>::new(cfg(Arch::Dense, Mode::Adjoint, Method::Dopri5, None), 1).unwrap();
    let mut g = vec![0.0; m.params.len()];
    let (x, _) = data(2, 144);
    assert!(m.loss_grad(&x, &[0, 3], &mut g).is_err());
    assert!(m.loss_grad(&x[1..], &[0, 1], &mut g).is_err());
    let mut bad = x.clone();
    bad[3] = f32::NAN;
    assert!(m.loss_grad(&bad, &[0, 1], &mut g).is_err());
    let mut pred = [0; 2];
    assert!(m.evaluate(&x, Some(&[0, 1]), &mut pred).is_ok());
    // an invalid GroupNorm or mismatched block shape is rejected by Seq::new
    let s = Shape { h: 2, w: 2, c: 6 };
    assert!(Seq::new(vec![Op::Norm(GroupNorm { groups: 4, c: 6 })], s).is_err());
    let blk = Seq::new(vec![Op::Pool], s).unwrap();
    assert!(Seq::new(vec![Op::Res(Box::new(blk))], s).is_err());
}

#[test]
fn evaluate_agrees_with_training_loss_and_chunks() {
    // fixed steps: rows do not interact, so chunking cannot change the result
    let c = cfg(Arch::Conv, Mode::Adjoint, Method::Rk4, Some(0.25));
    let mut m = Classifier::<f64>::new(c, 2).unwrap();
    let d = m.input_size();
    let n = EVAL_CHUNK + 3; // two chunks
    let (x, y) = data(n, d);
    let mut pred = vec![0; n];
    let (loss, correct, _, chunks) = m.evaluate(&x, Some(&y), &mut pred).unwrap();
    assert_eq!(chunks, 2);
    assert_eq!(correct, pred.iter().zip(&y).filter(|(a, b)| a == b).count());
    let mut g = vec![0.0; m.params.len()];
    let s = m.loss_grad(&x, &y, &mut g).unwrap();
    assert!((s.loss - loss / n as f64).abs() < 1e-12, "{} vs {}", s.loss, loss / n as f64);
}

/// Max |adjoint − backprop| over the gradient, relative to max |backprop|, with rk4 steps h.
fn adjoint_gap(h: f64) -> f64 {
    let mut gs = Vec::new();
    for mode in [Mode::Adjoint, Mode::Backprop] {
        let mut m = Classifier::<f64>::new(cfg(Arch::Conv, mode, Method::Rk4, Some(h)), 3).unwrap();
        let (x, y) = data(2, m.input_size());
        let mut g = vec![0.0; m.params.len()];
        m.loss_grad(&x, &y, &mut g).unwrap();
        gs.push(g);
    }
    let d = gs[0].iter().zip(&gs[1]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    d / gs[1].iter().map(|v| v.abs()).fold(0.0, f64::max)
}

#[test]
fn adjoint_gradient_converges_to_the_exact_discrete_gradient() {
    // The adjoint solves the continuous adjoint ODE (and reconstructs z backward), so it matches
    // the discrete gradient only as steps shrink; relu kinks make the convergence low-order.
    let (coarse, fine) = (adjoint_gap(1.0 / 16.0), adjoint_gap(1.0 / 128.0));
    assert!(fine < 2e-3, "gap {fine}");
    assert!(fine < coarse / 8.0, "gaps {coarse} → {fine}");
}
