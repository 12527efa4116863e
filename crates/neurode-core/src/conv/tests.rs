//! Layer checks: im2col convolution against direct loops, every VJP against central finite
//! differences (f64), cross-entropy against its definition.

use super::*;

fn rnd(n: usize, s: u64) -> Vec<f64> {
    (0..n).map(|i| crate::rng::uniform_f64(11, s, i as u64) * 2.0 - 1.0).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `f` at `x` along the coordinates `idx`, compared with `g`.
fn fd(mut f: impl FnMut(&[f64]) -> f64, x: &[f64], g: &[f64], idx: &[usize], tol: f64, what: &str) {
    let h = 1e-6;
    let mut xp = x.to_vec();
    for &i in idx {
        xp[i] = x[i] + h;
        let fp = f(&xp);
        xp[i] = x[i] - h;
        let fm = f(&xp);
        xp[i] = x[i];
        let num = (fp - fm) / (2.0 * h);
        assert!((num - g[i]).abs() <= tol * (1.0 + num.abs()), "{what}[{i}]: fd {num} vs vjp {}", g[i]);
    }
}

fn some(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    (0..k).map(|j| (j * 7919 + 13) % n).collect()
}

const CONVS: [(Conv2d, usize, usize, usize); 5] = [
    (Conv2d { ci: 3, co: 5, k: 3, stride: 1, pad: 1, bias: true, time: true }, 2, 5, 4),
    (Conv2d { ci: 2, co: 4, k: 4, stride: 2, pad: 1, bias: true, time: false }, 2, 7, 6),
    (Conv2d { ci: 1, co: 3, k: 3, stride: 1, pad: 0, bias: false, time: false }, 3, 6, 6),
    (Conv2d { ci: 6, co: 4, k: 1, stride: 1, pad: 0, bias: true, time: false }, 3, 2, 3),
    // kdim 1024 → 64-row blocks; 2·6·6 = 72 rows: two blocks
    (Conv2d { ci: 64, co: 3, k: 4, stride: 2, pad: 1, bias: true, time: true }, 2, 12, 12),
];

#[test]
fn conv_im2col_matches_direct_loops() {
    for (c, b, h, w) in CONVS {
        let (oh, ow) = c.out_hw(h, w).unwrap();
        let x = rnd(b * h * w * c.ci, 1);
        let p = rnd(c.num_params(), 2);
        let mut y1 = vec![0.0; b * oh * ow * c.co];
        let mut y2 = y1.clone();
        let mut s = ConvScratch::default();
        c.forward(&p, 0.7, &x, b, h, w, &mut y1, &mut s).unwrap();
        c.forward_direct(&p, 0.7, &x, b, h, w, &mut y2).unwrap();
        for i in 0..y1.len() {
            assert!((y1[i] - y2[i]).abs() < 1e-12, "{c:?} y[{i}] {} vs {}", y1[i], y2[i]);
        }
        // f32 path
        let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let pf: Vec<f32> = p.iter().map(|v| *v as f32).collect();
        let mut yf = vec![0.0f32; y1.len()];
        let mut sf = ConvScratch::default();
        c.forward(&pf, 0.7, &xf, b, h, w, &mut yf, &mut sf).unwrap();
        for i in 0..y1.len() {
            assert!((yf[i] as f64 - y1[i]).abs() < 1e-4, "f32 {c:?} y[{i}]");
        }
    }
}

#[test]
fn conv_padding_sees_zero_time_channel() {
    // one input pixel, 3×3 kernel, pad 1: only the centre tap sees t (PyTorch pads [t, x] with 0)
    let c = Conv2d { ci: 1, co: 1, k: 3, stride: 1, pad: 1, bias: false, time: true };
    let mut p = vec![0.0; c.num_params()];
    for i in 0..9 {
        p[i] = 1.0; // weights on the time channel
    }
    let mut y = vec![0.0; 1];
    c.forward(&p, 2.0, &[5.0], 1, 1, 1, &mut y, &mut ConvScratch::default()).unwrap();
    assert_eq!(y[0], 2.0);
}

#[test]
fn conv_vjp_matches_finite_differences() {
    for (c, b, h, w) in CONVS {
        let (oh, ow) = c.out_hw(h, w).unwrap();
        let x = rnd(b * h * w * c.ci, 3);
        let p = rnd(c.num_params(), 4);
        let a = rnd(b * oh * ow * c.co, 5);
        let t = 0.3;
        let mut s = ConvScratch::default();
        let mut dx = vec![0.0; x.len()];
        let mut dp = vec![0.0; p.len()];
        let dt = c.backward(&p, t, &x, b, h, w, &a, Some(&mut dx), &mut dp, &mut s).unwrap();
        let mut y = vec![0.0; a.len()];
        let mut sc = ConvScratch::default();
        let mut lx = |xx: &[f64]| {
            c.forward(&p, t, xx, b, h, w, &mut y, &mut sc).unwrap();
            dot(&y, &a)
        };
        fd(&mut lx, &x, &dx, &some(x.len(), 40), 1e-7, "conv dx");
        let mut y = vec![0.0; a.len()];
        let mut lp = |pp: &[f64]| {
            c.forward(pp, t, &x, b, h, w, &mut y, &mut sc).unwrap();
            dot(&y, &a)
        };
        fd(&mut lp, &p, &dp, &some(p.len(), 40), 1e-7, "conv dp");
        let mut y = vec![0.0; a.len()];
        let mut lt = |tt: &[f64]| {
            c.forward(&p, tt[0], &x, b, h, w, &mut y, &mut sc).unwrap();
            dot(&y, &a)
        };
        fd(&mut lt, &[t], &[dt], &[0], 1e-7, "conv dt");
        // backward without an input gradient gives the same parameter gradient
        let mut dp2 = vec![0.0; p.len()];
        c.backward(&p, t, &x, b, h, w, &a, None, &mut dp2, &mut s).unwrap();
        assert_eq!(dp, dp2);
    }
}

#[test]
fn group_norm_forward_and_vjp() {
    let (b, hw, c) = (2, 5, 6);
    for groups in [1, 3, 6] {
        let n = GroupNorm { groups, c };
        let x = rnd(b * hw * c, 6);
        let mut p = rnd(2 * c, 7);
        p.iter_mut().take(c).for_each(|v| *v += 1.5);
        let a = rnd(x.len(), 8);
        let mut sc = vec![0.0; norm_scratch_len(c)];
        let mut y = vec![0.0; x.len()];
        // forward against the definition (two-pass mean/variance)
        n.forward(&p, &x, b, hw, &mut y, &mut sc);
        let cg = c / groups;
        for bb in 0..b {
            for g in 0..groups {
                let vals: Vec<f64> = (0..hw).flat_map(|pos| (g * cg..(g + 1) * cg).map(move |ch| (pos, ch))).map(|(pos, ch)| x[(bb * hw + pos) * c + ch]).collect();
                let m = vals.iter().sum::<f64>() / vals.len() as f64;
                let v = vals.iter().map(|q| (q - m) * (q - m)).sum::<f64>() / vals.len() as f64;
                for pos in 0..hw {
                    for ch in g * cg..(g + 1) * cg {
                        let i = (bb * hw + pos) * c + ch;
                        let want = (x[i] - m) / (v + NORM_EPS).sqrt() * p[ch] + p[c + ch];
                        assert!((y[i] - want).abs() < 1e-12);
                    }
                }
            }
        }
        let mut dx = vec![0.0; x.len()];
        let mut dp = vec![0.0; p.len()];
        n.backward(&p, &x, b, hw, &a, &mut dx, &mut dp, &mut sc);
        let mut lx = |xx: &[f64]| {
            n.forward(&p, xx, b, hw, &mut y, &mut sc);
            dot(&y, &a)
        };
        fd(&mut lx, &x, &dx, &some(x.len(), 60), 1e-6, "norm dx");
        let mut y2 = vec![0.0; x.len()];
        let mut sc2 = vec![0.0; norm_scratch_len(c)];
        let mut lp = |pp: &[f64]| {
            n.forward(pp, &x, b, hw, &mut y2, &mut sc2);
            dot(&y2, &a)
        };
        fd(&mut lp, &p, &dp, &some(p.len(), 60), 1e-6, "norm dp");
    }
}

#[test]
fn relu_and_pool_vjp() {
    let (b, hw, c) = (2, 3, 4);
    let x = rnd(b * hw * c, 9);
    let a = rnd(x.len(), 10);
    let mut dx = vec![0.0; x.len()];
    relu_backward(&x, &a, &mut dx);
    let mut y = vec![0.0; x.len()];
    fd(|xx: &[f64]| { relu_forward(xx, &mut y); dot(&y, &a) }, &x, &dx, &some(x.len(), 24), 1e-7, "relu");
    let ap = rnd(b * c, 11);
    pool_backward(&ap, b, hw, c, &mut dx);
    let mut yp = vec![0.0; b * c];
    fd(|xx: &[f64]| { pool_forward(xx, b, hw, c, &mut yp); dot(&yp, &ap) }, &x, &dx, &some(x.len(), 24), 1e-7, "pool");
}

#[test]
fn cross_entropy_value_gradient_and_errors() {
    let logits = vec![1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
    let labels = [1, 0];
    let mut g = vec![0.0; 6];
    let (l, correct) = softmax_xent(&logits, &labels, 3, &mut g).unwrap();
    let ce = |r: &[f64], y: usize| -> f64 { let s: f64 = r.iter().map(|v| v.exp()).sum(); s.ln() - r[y] };
    let want = (ce(&logits[..3], 1) + ce(&logits[3..], 0)) / 2.0;
    assert!((l - want).abs() < 1e-14);
    assert_eq!(correct, 1);
    let mut g2 = vec![0.0; 6];
    fd(|z: &[f64]| softmax_xent(z, &labels, 3, &mut g2).unwrap().0, &logits, &g, &[0, 1, 2, 3, 4, 5], 1e-8, "xent");
    assert!(softmax_xent(&logits, &[3, 0], 3, &mut g).is_err());
    assert!(softmax_xent(&logits, &[-1, 0], 3, &mut g).is_err());
    assert!(softmax_xent(&logits[..5], &labels, 3, &mut g).is_err());
    let mut pred = [0; 2];
    argmax_rows(&logits, 3, &mut pred);
    assert_eq!(pred, [1, 2]);
}
