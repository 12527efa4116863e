//! Finite-difference checks (f64) of the GRU cell, the latent ODE's ELBO gradient (both
//! encoders, with and without the Poisson term, all gradient modes) and the RNN baseline, plus
//! the spirals generator against its closed form.

use super::gru::Gru;
use super::rnn::RnnBaseline;
use super::spirals::{curve, spirals};
use super::*;
use crate::solver::{Method, Options};

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// max over i of |a − b| / (1 + |b|).
fn worst(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

#[test]
fn gru_vjp_matches_finite_differences() {
    let gru = Gru::new(3, 4).unwrap();
    let bn = 2;
    let mut r = lcg(1);
    let mut p = vec![0.0f64; gru.num_params()];
    gru.init_params(7, &mut p);
    let x: Vec<f64> = (0..bn * 3).map(|_| r()).collect();
    let h: Vec<f64> = (0..bn * 4).map(|_| 0.8 * r()).collect();
    let g: Vec<f64> = (0..bn * 4).map(|_| r()).collect();
    let mut ws = vec![0.0; gru.workspace_len(bn)];
    let f = |p: &[f64], x: &[f64], h: &[f64], ws: &mut [f64]| {
        let mut o = vec![0.0; bn * 4];
        gru.forward(p, x, h, bn, &mut o, ws).unwrap();
        o.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()
    };
    let mut dx = vec![0.0; bn * 3];
    let mut dh = vec![0.0; bn * 4];
    let mut dp = vec![0.5; gru.num_params()]; // accumulates onto what is there
    gru.vjp(&p, &x, &h, bn, &g, Some(&mut dx), &mut dh, &mut dp, &mut ws).unwrap();
    dp.iter_mut().for_each(|v| *v -= 0.5);
    let e = 1e-6;
    let fd = |v: &mut Vec<f64>, i: usize, which: u8, ws: &mut [f64]| {
        let o = v[i];
        v[i] = o + e;
        let up = match which {
            0 => f(v, &x, &h, ws),
            1 => f(&p, v, &h, ws),
            _ => f(&p, &x, v, ws),
        };
        v[i] = o - e;
        let dn = match which {
            0 => f(v, &x, &h, ws),
            1 => f(&p, v, &h, ws),
            _ => f(&p, &x, v, ws),
        };
        v[i] = o;
        (up - dn) / (2.0 * e)
    };
    let mut pp = p.clone();
    let fdp: Vec<f64> = (0..p.len()).map(|i| fd(&mut pp, i, 0, &mut ws)).collect();
    let mut xx = x.clone();
    let fdx: Vec<f64> = (0..x.len()).map(|i| fd(&mut xx, i, 1, &mut ws)).collect();
    let mut hh = h.clone();
    let fdh: Vec<f64> = (0..h.len()).map(|i| fd(&mut hh, i, 2, &mut ws)).collect();
    eprintln!("gru fd: params {:e}, x {:e}, h {:e}", worst(&dp, &fdp), worst(&dx, &fdx), worst(&dh, &fdh));
    assert!(worst(&dp, &fdp) < 1e-8);
    assert!(worst(&dx, &fdx) < 1e-8);
    assert!(worst(&dh, &fdh) < 1e-8);
}

#[test]
fn gru_matches_hand_computed_cell() {
    // 1 input, 1 hidden unit: the equations written out
    let gru = Gru::new(1, 1).unwrap();
    let p = [0.3, -0.2, 0.5, 0.7, 0.1, -0.4, 0.05, 0.02, -0.03, 0.01, 0.2, -0.1];
    let (x, h) = (0.9f64, -0.6f64);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let r = sig(p[0] * x + p[6] + p[3] * h + p[9]);
    let z = sig(p[1] * x + p[7] + p[4] * h + p[10]);
    let n = (p[2] * x + p[8] + r * (p[5] * h + p[11])).tanh();
    let want = (1.0 - z) * n + z * h;
    let mut out = [0.0];
    let mut ws = vec![0.0; gru.workspace_len(1)];
    gru.forward(&p, &[x], &[h], 1, &mut out, &mut ws).unwrap();
    assert!((out[0] - want).abs() < 1e-15, "{} vs {}", out[0], want);
}

struct Toy {
    times: Vec<f64>,
    values: Vec<f64>,
    mask: Vec<u8>,
    enc: Vec<u8>,
}

/// 3 rows × 5 slots of 2-D data with irregular times and missing values.
fn toy() -> Toy {
    let mut r = lcg(3);
    let times = vec![0.1, 0.3, 0.35, 0.8, 1.2, 0.0, 0.2, 0.5, 0.9, 1.0, 0.15, 0.3, 0.7, 0.75, 1.4];
    let values: Vec<f64> = (0..30).map(|_| r()).collect();
    let mask = vec![1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1];
    let enc = vec![1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0];
    Toy { times, values, mask, enc }
}

fn cfg(encoder: Encoder, poisson: bool) -> Config {
    Config { obs_dim: 2, latent_dim: 2, hidden: 5, rnn_hidden: 3, encoder, obs_std: 0.5, poisson }
}

fn gopts(mode: Mode, method: Method) -> GradOptions {
    let forward = match method {
        Method::Rk4 => Options { method, step_size: Some(0.05), ..Options::default() },
        _ => Options { method, rtol: 1e-11, atol: vec![1e-12], ..Options::default() },
    };
    GradOptions { mode, forward, adjoint_rtol: 1e-11, adjoint_atol: 1e-12, seminorm: true }
}

fn check_elbo(encoder: Encoder, poisson: bool, mode: Mode, method: Method, tol: f64) {
    let t = toy();
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values, mask: &t.mask, enc_mask: &t.enc };
    let mut m = LatentOde::<f64>::new(cfg(encoder, poisson), 11).unwrap();
    let go = gopts(mode, method);
    let rows = [4u64, 9, 2];
    let mut g = vec![0.0; m.num_params()];
    let st = m.elbo_grad(&s, 0.0, &rows, 5, 17, &go, &mut g).unwrap();
    assert!(st.loss.is_finite() && st.kl > 0.0);
    assert!((st.loss - (st.recon + st.kl + st.poisson)).abs() < 1e-12 * st.loss.abs().max(1.0));
    let mut tmp = vec![0.0; m.num_params()];
    let e = 1e-6;
    let mut fd = vec![0.0; m.num_params()];
    for i in 0..m.num_params() {
        let o = m.params[i];
        m.params[i] = o + e;
        let up = m.elbo_grad(&s, 0.0, &rows, 5, 17, &go, &mut tmp).unwrap().loss;
        m.params[i] = o - e;
        let dn = m.elbo_grad(&s, 0.0, &rows, 5, 17, &go, &mut tmp).unwrap().loss;
        m.params[i] = o;
        fd[i] = (up - dn) / (2.0 * e);
    }
    let w = worst(&g, &fd);
    eprintln!("elbo fd {:?} poisson {} {:?} {:?}: worst {:e} (loss {:.4}, nfe {}/{})", encoder, poisson, mode, method, w, st.loss, st.nfe_forward, st.nfe_backward);
    for (name, a, b) in m.ranges() {
        if b > a {
            assert!(g[a..b].iter().any(|v| *v != 0.0), "{name}: zero gradient");
        }
    }
    assert!(w < tol, "worst {w:e}");
}

#[test]
fn elbo_gradient_rnn_encoder_fixed_step() {
    check_elbo(Encoder::Rnn, false, Mode::Backprop, Method::Rk4, 1e-7);
}

#[test]
fn elbo_gradient_odernn_encoder_fixed_step() {
    check_elbo(Encoder::OdeRnn, false, Mode::Backprop, Method::Rk4, 1e-7);
}

#[test]
fn elbo_gradient_poisson_fixed_step() {
    check_elbo(Encoder::Rnn, true, Mode::Checkpoint, Method::Rk4, 1e-7);
}

#[test]
fn elbo_gradient_adaptive_all_modes() {
    for mode in [Mode::Backprop, Mode::Adjoint] {
        check_elbo(Encoder::OdeRnn, true, mode, Method::Dopri5, 1e-5);
    }
}

#[test]
fn elbo_is_a_pure_function_of_rows_and_iteration() {
    let t = toy();
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values, mask: &t.mask, enc_mask: &t.enc };
    let m = LatentOde::<f64>::new(cfg(Encoder::Rnn, false), 2).unwrap();
    let go = gopts(Mode::Backprop, Method::Dopri5);
    let mut g1 = vec![0.0; m.num_params()];
    let mut g2 = vec![0.0; m.num_params()];
    let a = m.elbo_grad(&s, 0.0, &[0, 1, 2], 1, 0, &go, &mut g1).unwrap().loss;
    let b = m.elbo_grad(&s, 0.0, &[0, 1, 2], 1, 0, &go, &mut g2).unwrap().loss;
    assert_eq!(a.to_bits(), b.to_bits());
    assert_eq!(g1, g2);
    let c = m.elbo_grad(&s, 0.0, &[0, 1, 2], 1, 1, &go, &mut g2).unwrap().loss;
    assert_ne!(a, c, "a new iteration draws a new ε");
    // one row alone: its loss is the row's share of the batch's (the KL term is per row)
    let s1 = Series { batch: 1, slots: 5, times: &t.times[..5], values: &t.values[..10], mask: &t.mask[..5], enc_mask: &t.enc[..5] };
    let m_rows = m.elbo_grad(&s1, 0.0, &[0], 1, 0, &go, &mut vec![0.0; m.num_params()]).unwrap();
    assert!(m_rows.loss.is_finite());
}

#[test]
fn elbo_rejects_bad_input() {
    let t = toy();
    let m = LatentOde::<f64>::new(cfg(Encoder::Rnn, false), 2).unwrap();
    let go = gopts(Mode::Backprop, Method::Dopri5);
    let mut g = vec![0.0; m.num_params()];
    let mut times = t.times.clone();
    times[1] = 0.05; // before slot 0 (0.1): not increasing
    let s = Series { batch: 3, slots: 5, times: &times, values: &t.values, mask: &t.mask, enc_mask: &t.enc };
    let e = m.elbo_grad(&s, 0.0, &[0, 1, 2], 1, 0, &go, &mut g).unwrap_err();
    assert!(e.message.starts_with("data.times"), "{}", e.message);
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values[..29], mask: &t.mask, enc_mask: &t.enc };
    assert!(m.elbo_grad(&s, 0.0, &[0, 1, 2], 1, 0, &go, &mut g).unwrap_err().message.starts_with("data.values"));
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values, mask: &t.mask, enc_mask: &t.enc };
    assert!(m.elbo_grad(&s, 0.5, &[0, 1, 2], 1, 0, &go, &mut g).is_err(), "observations before t0");
    assert!(LatentOde::<f64>::new(Config { obs_std: 0.0, ..cfg(Encoder::Rnn, false) }, 0).is_err());
}

#[test]
fn predict_shapes_samples_and_f32() {
    let t = toy();
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values, mask: &t.mask, enc_mask: &t.enc };
    let m = LatentOde::<f64>::new(cfg(Encoder::OdeRnn, false), 4).unwrap();
    let o = Options::default();
    let ts = [0.0, 0.5, 1.0, 2.0, 3.0];
    let mut mean = vec![0.0; 3 * 5 * 2];
    m.predict(&s, 0.0, &ts, 0, 0, &o, &mut mean).unwrap();
    let mut avg = vec![0.0; 30];
    m.predict(&s, 0.0, &ts, 64, 9, &o, &mut avg).unwrap();
    let mut one = vec![0.0; 30];
    m.predict(&s, 0.0, &ts, 1, 9, &o, &mut one).unwrap();
    assert!(mean.iter().chain(&avg).all(|v| v.is_finite()));
    assert!(worst(&avg, &mean) < worst(&one, &mean), "averaging draws moves toward the mean decode");
    // a prediction at t0 equals the decoded z0 whether t0 is in ts or not
    let mut a = vec![0.0; 6];
    m.predict(&s, 0.0, &[0.0], 0, 0, &o, &mut a).unwrap();
    for b in 0..3 {
        assert_eq!(&a[b * 2..b * 2 + 2], &mean[b * 10..b * 10 + 2]);
    }
    // rows are independent: predicting row 1 alone gives the same numbers
    let s1 = Series { batch: 1, slots: 5, times: &t.times[5..10], values: &t.values[10..20], mask: &t.mask[5..10], enc_mask: &t.enc[5..10] };
    let mut r1 = vec![0.0; 10];
    m.predict(&s1, 0.0, &ts, 0, 0, &o, &mut r1).unwrap();
    assert!(worst(&r1, &mean[10..20]) < 1e-6, "{:e}", worst(&r1, &mean[10..20]));
    assert!(m.predict(&s, 0.0, &[1.0, 0.5], 0, 0, &o, &mut vec![0.0; 12]).is_err());
    assert!(m.predict(&s, 0.5, &[1.0], 0, 0, &o, &mut vec![0.0; 6]).is_err());
    let m32 = LatentOde::<f32>::new(cfg(Encoder::Rnn, true), 4).unwrap();
    let mut p32 = vec![0.0; 30];
    m32.predict(&s, 0.0, &ts, 2, 0, &Options { rtol: 1e-5, atol: vec![1e-6], ..Options::default() }, &mut p32).unwrap();
    assert!(p32.iter().all(|v| v.is_finite()));
}

#[test]
fn rnn_baseline_gradient_matches_finite_differences() {
    let t = toy();
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values, mask: &t.mask, enc_mask: &t.mask };
    let mut m = RnnBaseline::<f64>::new(2, 4, 3).unwrap();
    let mut g = vec![0.0; m.num_params()];
    let loss = m.loss_grad(&s, &mut g).unwrap();
    // the loss written out: mean over rows of the mean squared next-step error
    let mut tmp = vec![0.0; m.num_params()];
    let e = 1e-6;
    let mut fd = vec![0.0; m.num_params()];
    for i in 0..m.num_params() {
        let o = m.params[i];
        m.params[i] = o + e;
        let up = m.loss_grad(&s, &mut tmp).unwrap();
        m.params[i] = o - e;
        let dn = m.loss_grad(&s, &mut tmp).unwrap();
        m.params[i] = o;
        fd[i] = (up - dn) / (2.0 * e);
    }
    eprintln!("rnn fd worst {:e} (loss {loss:.4})", worst(&g, &fd));
    assert!(worst(&g, &fd) < 1e-8);
    // teacher forcing and the autoregressive predictor agree on one-step predictions: predict
    // row 0 at its 2nd observed time from its first observation only
    let mask0 = [1u8, 0, 0, 0, 0];
    let s0 = Series { batch: 1, slots: 5, times: &t.times[..5], values: &t.values[..10], mask: &mask0, enc_mask: &mask0 };
    let mut out = vec![0.0; 4];
    m.predict(&s0, &[0.3, 0.8], &mut out).unwrap();
    let mask01 = [1u8, 1, 0, 0, 0];
    let s01 = Series { batch: 1, slots: 5, times: &t.times[..5], values: &t.values[..10], mask: &mask01, enc_mask: &mask01 };
    let mut out2 = vec![0.0; 2];
    m.predict(&s01, &[0.3], &mut out2).unwrap(); // query before the observation at the same time
    assert_eq!(&out[..2], &out2[..]);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn spirals_follow_the_closed_form() {
    let d = spirals(50, 500, 100, 100, 0.1, 7).unwrap();
    assert_eq!(d.obs_values.len(), 50 * 100 * 2);
    assert_eq!(d.truth_values.len(), 50 * 200 * 2);
    let step = 6.0 * core::f64::consts::PI / 499.0;
    let mut resid = Vec::new();
    for i in 0..50 {
        let (st, cw) = (d.starts[i] as usize, d.clockwise[i]);
        assert!((100..300).contains(&st));
        for k in 0..200 {
            let t = (st + k) as f64 * step;
            let (th, r, dx) = if cw { (6.0 * core::f64::consts::PI + 1.0 - t, 15.0 / (6.0 * core::f64::consts::PI + 1.0 - t), -5.0) } else { (t, 0.3 * t, 5.0) };
            let want = [r * th.cos() + dx, r * th.sin()];
            for c in 0..2 {
                assert!((d.truth_values[(i * 200 + k) * 2 + c] - want[c]).abs() < 1e-12);
                if k < 100 {
                    resid.push(d.obs_values[(i * 100 + k) * 2 + c] - want[c]);
                }
            }
        }
    }
    let n = resid.len() as f64;
    let mean = resid.iter().sum::<f64>() / n;
    let sd = (resid.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n).sqrt();
    eprintln!("spirals noise: mean {mean:.4}, sd {sd:.4} (0.1); clockwise {}", d.clockwise.iter().filter(|c| **c).count());
    assert!(mean.abs() < 5.0 * 0.1 / n.sqrt() && (sd - 0.1).abs() < 0.005);
    let cw = d.clockwise.iter().filter(|c| **c).count();
    assert!((10..=40).contains(&cw));
    assert_eq!(curve(0.0, false), [5.0, 0.0]);
    assert!(spirals(10, 300, 100, 100, 0.1, 0).is_err());
    assert!(spirals(10, 500, 100, 0, -1.0, 0).is_err());
    let again = spirals(50, 500, 100, 100, 0.1, 7).unwrap();
    assert_eq!(again.obs_values, d.obs_values);
}


#[test]
fn subsample_mask_keeps_a_seeded_subset() {
    let t = toy();
    let s = Series { batch: 3, slots: 5, times: &t.times, values: &t.values, mask: &t.mask, enc_mask: &t.mask };
    let m = subsample_mask(&s, &[0, 1, 2], 9, 4, 2, 3).unwrap();
    for b in 0..3 {
        let kept = (0..5).filter(|&k| m[b * 5 + k] == 1).count();
        let had = (0..5).filter(|&k| t.mask[b * 5 + k] == 1).count();
        assert!((2..=3).contains(&kept) && kept <= had);
        assert!((0..5).all(|k| m[b * 5 + k] == 0 || t.mask[b * 5 + k] == 1), "a subset of the observations");
    }
    assert_eq!(m, subsample_mask(&s, &[0, 1, 2], 9, 4, 2, 3).unwrap());
    // every subset size and every slot occurs over iterations
    let mut seen = [0usize; 5];
    for it in 0..200 {
        let m = subsample_mask(&s, &[0, 1, 2], 9, it, 1, 4).unwrap();
        for k in 0..5 {
            seen[k] += m[5 + k] as usize;
        }
    }
    assert!(seen[..4].iter().all(|&c| c > 40) && seen[4] == 0, "{seen:?}");
    assert!(subsample_mask(&s, &[0, 1, 2], 9, 4, 0, 3).is_err());
}
