use super::*;
use crate::grad::{GradOptions, Mode, VjpRhs};
use crate::math::Act;
use crate::nn::{mlp as mlp_specs, LayerSpec, TimeMode};
use crate::solver::{Method, Options, Rhs};

fn tight() -> Options {
    Options { method: Method::Dopri5, rtol: 1e-12, atol: vec![1e-12], ..Options::default() }
}

fn grad_opts(mode: Mode, tol: f64) -> GradOptions {
    let forward = Options { method: Method::Dopri5, rtol: tol, atol: vec![tol], ..Options::default() };
    GradOptions { mode, forward, adjoint_rtol: tol, adjoint_atol: tol, seminorm: true }
}

/// exp(M) for a 2 × 2 matrix (Taylor series with scaling and squaring).
fn expm2(m: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let mul = |a: [[f64; 2]; 2], b: [[f64; 2]; 2]| {
        let mut c = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        c
    };
    let s = 10;
    let a = [[m[0][0] / 1024.0, m[0][1] / 1024.0], [m[1][0] / 1024.0, m[1][1] / 1024.0]];
    let mut e = [[1.0, 0.0], [0.0, 1.0]];
    let mut term = e;
    for k in 1..25 {
        term = mul(term, a);
        for row in term.iter_mut() {
            for v in row.iter_mut() {
                *v /= k as f64;
            }
        }
        for i in 0..2 {
            for j in 0..2 {
                e[i][j] += term[i][j];
            }
        }
    }
    for _ in 0..s {
        e = mul(e, e);
    }
    e
}

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[test]
fn linear_field_log_density_matches_closed_form() {
    let a = [[-0.3, 0.8], [-0.5, 0.2]];
    let mut f = Cnf::<f64>::mlp(&[LayerSpec::Linear { d_in: 2, d_out: 2 }], 0).unwrap();
    f.params.copy_from_slice(&[a[0][0], a[0][1], a[1][0], a[1][1], 0.0, 0.0]);
    let t1 = 1.3;
    let xs = [0.7, -1.2, 2.0, 0.4, -0.3, -0.9];
    let y0: Vec<f64> = xs.chunks(2).flat_map(|x| [x[0], x[1], 0.0]).collect();
    let (ys, _) = f.flow(Aug::LogDet, Trace::Exact, &y0, &[t1, 0.0], &tight()).unwrap();
    let back = expm2([[-a[0][0] * t1, -a[0][1] * t1], [-a[1][0] * t1, -a[1][1] * t1]]);
    let tr = a[0][0] + a[1][1];
    for (r, x) in xs.chunks(2).enumerate() {
        let z0 = [back[0][0] * x[0] + back[0][1] * x[1], back[1][0] * x[0] + back[1][1] * x[1]];
        let row = &ys[9 + 3 * r..9 + 3 * r + 3];
        let logp = base_log_density(&row[..2], 1.0) - row[2];
        let truth = base_log_density(&z0, 1.0) - t1 * tr;
        assert!((logp - truth).abs() < 1e-8, "row {r}: {logp} vs {truth}");
        assert!((row[0] - z0[0]).abs() < 1e-9 && (row[1] - z0[1]).abs() < 1e-9);
    }
}

fn fields() -> Vec<(&'static str, Cnf<f64>)> {
    let mut v = Vec::new();
    for (name, act, time) in [
        ("concatsquash-tanh", Act::Tanh, TimeMode::ConcatSquash),
        ("concat-softplus", Act::Softplus, TimeMode::Concat),
        ("concatsquash-elu", Act::Elu, TimeMode::ConcatSquash),
        ("none-sigmoid", Act::Sigmoid, TimeMode::None),
    ] {
        let specs = mlp_specs(&[3, 7, 5, 3], act, time, false).unwrap();
        v.push((name, Cnf::<f64>::mlp(&specs, 11).unwrap()));
    }
    v.push(("planar", Cnf::<f64>::planar(3, 6, &[8], 5).unwrap()));
    // larger random parameters than the default init, so second derivatives matter
    let mut rnd = lcg(3);
    for (_, f) in v.iter_mut() {
        for p in f.params.iter_mut() {
            *p = *p * 1.5 + 0.2 * rnd();
        }
    }
    v
}

/// Central-difference Jacobian trace of f at one row.
fn fd_trace(f: &mut Cnf<f64>, t: f64, z: &[f64]) -> f64 {
    let d = z.len();
    f.configure(Aug::Plain, Trace::Exact);
    let h = 1e-5;
    let mut tr = 0.0;
    let (mut fp, mut fm) = (vec![0.0; d], vec![0.0; d]);
    for i in 0..d {
        let mut zp = z.to_vec();
        zp[i] += h;
        f.eval(t, &zp, &mut fp).unwrap();
        let mut zm = z.to_vec();
        zm[i] -= h;
        f.eval(t, &zm, &mut fm).unwrap();
        tr += (fp[i] - fm[i]) / (2.0 * h);
    }
    tr
}

#[test]
fn exact_trace_equals_finite_difference_trace() {
    let z = [0.4, -0.7, 1.1];
    for (name, mut f) in fields() {
        let t = 0.37;
        let want = fd_trace(&mut f, t, &z);
        f.configure(Aug::LogDet, Trace::Exact);
        let mut dy = [0.0; 4];
        f.eval(t, &[z[0], z[1], z[2], 0.0], &mut dy).unwrap();
        eprintln!("{name}: exact {} fd {want}", -dy[3]);
        assert!((-dy[3] - want).abs() < 1e-8 * (1.0 + want.abs()), "{name}: {} vs {want}", -dy[3]);
    }
}

#[test]
fn hutchinson_mean_within_three_standard_errors() {
    let z = [0.4, -0.7, 1.1];
    let n = 10_000;
    for (name, mut f) in fields() {
        let t = 0.2;
        f.configure(Aug::LogDet, Trace::Exact);
        let mut dy = [0.0; 4];
        f.eval(t, &[z[0], z[1], z[2], 0.0], &mut dy).unwrap();
        let exact = -dy[3];
        for gaussian in [false, true] {
            // one row per probe: the probe of row r is keyed by its sample index
            f.configure(Aug::LogDet, Trace::Hutchinson { gaussian, seed: 9, stream: stream(PURPOSE_PROBE, 0), first_row: 0 });
            let y: Vec<f64> = (0..n).flat_map(|_| [z[0], z[1], z[2], 0.0]).collect();
            let mut dy = vec![0.0; y.len()];
            f.eval(t, &y, &mut dy).unwrap();
            let est: Vec<f64> = (0..n).map(|r| -dy[4 * r + 3]).collect();
            let mean = est.iter().sum::<f64>() / n as f64;
            let var = est.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
            let se = (var / n as f64).sqrt();
            eprintln!("{name} gaussian={gaussian}: mean {mean} exact {exact} se {se}");
            assert!(se > 0.0 && (mean - exact).abs() < 3.0 * se, "{name}: {mean} vs {exact} (se {se})");
        }
    }
}

/// The VJP of the augmented field against central differences of its evaluation.
fn check_vjp(name: &str, f: &mut Cnf<f64>, aug: Aug, trace: Trace) {
    let d = f.dim();
    let b = 2;
    f.configure(aug, trace);
    let w = f.width();
    let mut rnd = lcg(17);
    let y: Vec<f64> = (0..b * w).map(|_| rnd()).collect();
    let a: Vec<f64> = (0..b * w).map(|_| rnd()).collect();
    let t = 0.6;
    let np = f.num_params();
    let (mut gy, mut gp, mut fv) = (vec![0.0; b * w], vec![0.0; np], vec![0.0; b * w]);
    let gt = f.vjp(t, &y, &a, Some(&mut fv), &mut gy, &mut gp).unwrap();
    let mut f0 = vec![0.0; b * w];
    f.eval(t, &y, &mut f0).unwrap();
    assert_eq!(fv, f0, "{name}: out_f differs from eval");
    let dot = |f: &mut Cnf<f64>, t: f64, y: &[f64]| {
        let mut o = vec![0.0; y.len()];
        f.eval(t, y, &mut o).unwrap();
        o.iter().zip(&a).map(|(x, y)| x * y).sum::<f64>()
    };
    let h = 1e-6;
    let tol = |g: f64| 1e-6 * (1.0 + g.abs());
    for i in 0..b * w {
        let (mut yp, mut ym) = (y.clone(), y.clone());
        yp[i] += h;
        ym[i] -= h;
        let fd = (dot(f, t, &yp) - dot(f, t, &ym)) / (2.0 * h);
        assert!((fd - gy[i]).abs() < tol(fd), "{name} y[{i}]: {} vs fd {fd}", gy[i]);
    }
    let fd = (dot(f, t + h, &y) - dot(f, t - h, &y)) / (2.0 * h);
    assert!((fd - gt).abs() < tol(fd), "{name} t: {gt} vs fd {fd}");
    let step = (np / 25).max(1);
    for p in (0..np).step_by(step).chain([np - 1]) {
        let orig = f.params[p];
        f.params[p] = orig + h;
        let up = dot(f, t, &y);
        f.params[p] = orig - h;
        let dn = dot(f, t, &y);
        f.params[p] = orig;
        let fd = (up - dn) / (2.0 * h);
        assert!((fd - gp[p]).abs() < tol(fd), "{name} param {p}: {} vs fd {fd}", gp[p]);
    }
    let _ = d;
}

#[test]
fn augmented_vjp_matches_finite_differences() {
    for (name, mut f) in fields() {
        for aug in [Aug::Plain, Aug::LogDet, Aug::Regularised] {
            check_vjp(name, &mut f, aug, Trace::Exact);
            check_vjp(name, &mut f, aug, Trace::Hutchinson { gaussian: true, seed: 4, stream: 1, first_row: 3 });
        }
    }
}

#[test]
fn mle_gradient_matches_finite_differences_in_every_mode() {
    let specs = mlp_specs(&[2, 6, 2], Act::Tanh, TimeMode::ConcatSquash, false).unwrap();
    let x = [0.5, -0.3, 1.2, 0.8, -0.6, 0.1];
    let reg = Some(Regularise { kinetic: 0.1, jacobian: 0.05 });
    for (mode, tol) in [(Mode::Backprop, 1e-10), (Mode::Checkpoint, 1e-10), (Mode::Adjoint, 1e-11)] {
        let mut f = Cnf::<f64>::mlp(&specs, 2).unwrap();
        let go = grad_opts(mode, tol);
        let out = f.mle_shard(&x, 0.8, 1.0, Trace::Exact, reg, &go).unwrap();
        let loss = |f: &mut Cnf<f64>| f.mle_shard(&x, 0.8, 1.0, Trace::Exact, reg, &grad_opts(Mode::Backprop, 1e-12)).unwrap().loss;
        let h = 1e-6;
        for p in [0, 5, 13, 20, f.params.len() - 1] {
            let orig = f.params[p];
            f.params[p] = orig + h;
            let up = loss(&mut f);
            f.params[p] = orig - h;
            let dn = loss(&mut f);
            f.params[p] = orig;
            let fd = (up - dn) / (2.0 * h);
            assert!((fd - out.grad[p]).abs() < 2e-6 * (1.0 + fd.abs()), "{mode:?} param {p}: {} vs fd {fd}", out.grad[p]);
        }
        assert!(out.kinetic > 0.0 && out.jacobian > 0.0);
    }
}

#[test]
fn kl_gradient_matches_finite_differences() {
    let mut f = Cnf::<f64>::planar(2, 4, &[5], 1).unwrap();
    let go = grad_opts(Mode::Backprop, 1e-11);
    let trace = Trace::Hutchinson { gaussian: false, seed: 3, stream: stream(PURPOSE_PROBE, 2), first_row: 0 };
    let loss = |f: &mut Cnf<f64>| -> (f64, Vec<f64>) {
        let (tape, x) = f.kl_forward(5, 3, 2, 0, 1.0, 1.0, trace, None, &go).unwrap();
        let mut lp = vec![0.0; 5];
        let mut g = vec![0.0; 10];
        for r in 0..5 {
            let (v, d) = targets::log_density(3, [x[2 * r], x[2 * r + 1]]).unwrap();
            lp[r] = v;
            g[2 * r] = d[0];
            g[2 * r + 1] = d[1];
        }
        let s = f.kl_backward(tape, &lp, &g, 1.0, trace, None).unwrap();
        (s.loss, s.grad)
    };
    let (_, grad) = loss(&mut f);
    let h = 1e-6;
    for p in [0, 3, 9, f.params.len() / 2, f.params.len() - 1] {
        let orig = f.params[p];
        f.params[p] = orig + h;
        let up = loss(&mut f).0;
        f.params[p] = orig - h;
        let dn = loss(&mut f).0;
        f.params[p] = orig;
        let fd = (up - dn) / (2.0 * h);
        assert!((fd - grad[p]).abs() < 1e-6 * (1.0 + fd.abs()), "param {p}: {} vs fd {fd}", grad[p]);
    }
}

#[test]
fn sample_then_log_prob_round_trip() {
    let specs = mlp_specs(&[2, 8, 8, 2], Act::Tanh, TimeMode::ConcatSquash, false).unwrap();
    let mut f = Cnf::<f64>::mlp(&specs, 7).unwrap();
    let z0 = [0.3, -1.1, -0.4, 0.9];
    let y0 = [z0[0], z0[1], 0.0, z0[2], z0[3], 0.0];
    let (fw, _) = f.flow(Aug::LogDet, Trace::Exact, &y0, &[0.0, 1.0], &tight()).unwrap();
    let x = &fw[6..];
    let back0 = [x[0], x[1], 0.0, x[3], x[4], 0.0];
    let (bw, _) = f.flow(Aug::LogDet, Trace::Exact, &back0, &[1.0, 0.0], &tight()).unwrap();
    for r in 0..2 {
        for i in 0..2 {
            assert!((bw[6 + 3 * r + i] - z0[2 * r + i]).abs() < 1e-9);
        }
        // forward: log q = log N(z0) + l(1); backward: log p = log N(z0') − l(0)
        let lq = base_log_density(&z0[2 * r..2 * r + 2], 1.0) + x[3 * r + 2];
        let lp = base_log_density(&bw[6 + 3 * r..6 + 3 * r + 2], 1.0) - bw[6 + 3 * r + 2];
        assert!((lq - lp).abs() < 1e-9, "{lq} vs {lp}");
    }
}

#[test]
fn targets_gradients_match_finite_differences() {
    for id in 0..4 {
        for z in [[0.3, -0.8], [1.7, 0.4], [-2.2, 1.1], [0.0, 0.0]] {
            let (v, g) = targets::log_density(id, z).unwrap();
            assert!(v.is_finite());
            let h = 1e-6;
            for i in 0..2 {
                let (mut zp, mut zm) = (z, z);
                zp[i] += h;
                zm[i] -= h;
                let fd = (targets::log_density(id, zp).unwrap().0 - targets::log_density(id, zm).unwrap().0) / (2.0 * h);
                assert!((fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()), "target {id} at {z:?} dim {i}: {} vs {fd}", g[i]);
            }
        }
    }
    assert!(targets::log_density(9, [0.0, 0.0]).is_err());
}

#[test]
fn f32_flow_agrees_with_f64() {
    let specs = mlp_specs(&[2, 16, 2], Act::Tanh, TimeMode::ConcatSquash, false).unwrap();
    let mut a = Cnf::<f64>::mlp(&specs, 1).unwrap();
    let mut b = Cnf::<f32>::mlp(&specs, 1).unwrap();
    let o = Options { rtol: 1e-5, atol: vec![1e-5], ..Options::default() };
    let y0 = [0.5, -0.2, 0.0];
    let (ya, _) = a.flow(Aug::LogDet, Trace::Exact, &y0, &[1.0, 0.0], &o).unwrap();
    let (yb, _) = b.flow(Aug::LogDet, Trace::Exact, &y0, &[1.0, 0.0], &o).unwrap();
    for i in 0..6 {
        assert!((ya[i] - yb[i]).abs() < 1e-3, "{i}: {} vs {}", ya[i], yb[i]);
    }
}

/// The closed-form trace path against the stacked-tangent path: f, the trace and every VJP
/// output agree to rounding (different summation order), for several activations, time modes
/// and widths, and it is taken exactly for [lin, act, lin, act, lin] log-density solves.
#[test]
fn closed_form_trace_matches_stacked_tangents() {
    let cases: Vec<(Vec<LayerSpec>, &str)> = vec![
        (vec![LayerSpec::ConcatLinear { d_in: 2, d_out: 64 }, LayerSpec::Act { act: Act::Tanh, dim: 64 }, LayerSpec::Linear { d_in: 64, d_out: 64 }, LayerSpec::Act { act: Act::Tanh, dim: 64 }, LayerSpec::Linear { d_in: 64, d_out: 2 }], "bench-tanh"),
        (mlp_specs(&[3, 7, 5, 3], Act::Softplus, TimeMode::Concat, false).unwrap(), "concat-softplus"),
        (mlp_specs(&[3, 6, 9, 3], Act::Sigmoid, TimeMode::None, false).unwrap(), "none-sigmoid"),
        (mlp_specs(&[2, 8, 5, 2], Act::Elu, TimeMode::Concat, false).unwrap(), "concat-elu"),
        (mlp_specs(&[4, 5, 6, 4], Act::Relu, TimeMode::Concat, false).unwrap(), "concat-relu"),
    ];
    for (specs, name) in cases {
        let mut f = Cnf::<f64>::mlp(&specs, 5).unwrap();
        assert!(f.closed.is_some(), "{name}: closed form not detected");
        let mut rnd = lcg(21);
        for p in f.params.iter_mut() {
            *p = *p * 1.5 + 0.2 * rnd();
        }
        f.configure(Aug::LogDet, Trace::Exact);
        let (d, w, b) = (f.dim(), f.width(), 13);
        let y: Vec<f64> = (0..b * w).map(|_| 1.5 * rnd()).collect();
        let a: Vec<f64> = (0..b * w).map(|_| rnd()).collect();
        let t = 0.45;
        let np = f.num_params();
        let run = |f: &mut Cnf<f64>, closed: bool| {
            f.use_closed = closed;
            assert_eq!(f.closed_applies(), closed);
            let (mut gy, mut gp, mut fv, mut ev) = (vec![0.0; b * w], vec![0.0; np], vec![0.0; b * w], vec![0.0; b * w]);
            let gt = f.vjp(t, &y, &a, Some(&mut fv), &mut gy, &mut gp).unwrap();
            f.eval(t, &y, &mut ev).unwrap();
            assert_eq!(fv, ev, "{name}: out_f differs from eval");
            (fv, gy, gp, gt)
        };
        let (f0, gy0, gp0, gt0) = run(&mut f, false);
        let (f1, gy1, gp1, gt1) = run(&mut f, true);
        // without the parameter gradient (the adjoint's unused stages): same f, dL/dy, dL/dt bits
        let (mut fv2, mut gy2, mut gp2) = (vec![0.0; b * w], vec![0.0; b * w], vec![0.0; np]);
        let gt2 = f.vjp_skip_params(t, &y, &a, Some(&mut fv2), &mut gy2, &mut gp2).unwrap();
        assert!(fv2 == f1 && gy2 == gy1 && gt2.to_bits() == gt1.to_bits(), "{name}: vjp_skip_params differs from vjp");
        let close = |x: &[f64], y: &[f64], what: &str| {
            let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
            for i in 0..x.len() {
                assert!((x[i] - y[i]).abs() <= 1e-12 * scale, "{name} {what}[{i}]: {} vs {}", x[i], y[i]);
            }
        };
        close(&f0, &f1, "f");
        close(&gy0, &gy1, "dL/dy");
        close(&gp0, &gp1, "dL/dparams");
        close(&[gt0], &[gt1], "dL/dt");
        assert!(f0.iter().skip(d).step_by(w).all(|v| *v != 0.0), "{name}: trace column unused");
    }
    // other patterns and modes keep the stacked path
    let deep = Cnf::<f64>::mlp(&mlp_specs(&[2, 4, 4, 4, 2], Act::Tanh, TimeMode::Concat, false).unwrap(), 1).unwrap();
    assert!(deep.closed.is_none());
    let cs = Cnf::<f64>::mlp(&mlp_specs(&[2, 4, 4, 2], Act::Tanh, TimeMode::ConcatSquash, false).unwrap(), 1).unwrap();
    assert!(cs.closed.is_none());
    let mut c = Cnf::<f64>::mlp(&mlp_specs(&[2, 4, 4, 2], Act::Tanh, TimeMode::Concat, false).unwrap(), 1).unwrap();
    for (aug, trace, want) in [
        (Aug::LogDet, Trace::Exact, true),
        (Aug::Regularised, Trace::Exact, false),
        (Aug::LogDet, Trace::Hutchinson { gaussian: false, seed: 1, stream: 0, first_row: 0 }, false),
        (Aug::Plain, Trace::Exact, false),
    ] {
        c.configure(aug, trace);
        assert_eq!(c.closed_applies(), want, "{aug:?} {trace:?}");
    }
}
