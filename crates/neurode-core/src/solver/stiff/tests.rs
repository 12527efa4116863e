use super::super::tableau::{Method, KVAERNO5, KVAERNO5_GAMMA};
use super::super::{solve, FnRhs, Options, Stats};

/// Full Butcher matrix of Kvaerno5 (strict lower part + γ on the diagonal of stages 1..).
fn full_a() -> Vec<Vec<f64>> {
    let s = KVAERNO5.stages();
    (0..s).map(|i| (0..s).map(|j| if j < i { KVAERNO5.a[i][j] } else if j == i && i > 0 { KVAERNO5_GAMMA } else { 0.0 }).collect()).collect()
}

#[test]
fn kvaerno5_order_conditions() {
    let a = full_a();
    let (b, c) = (KVAERNO5.b, KVAERNO5.c);
    let s = c.len();
    for i in 0..s {
        let sum: f64 = a[i].iter().sum();
        assert!((sum - c[i]).abs() < 1e-14, "row {} sums to {} not {}", i, sum, c[i]);
    }
    // stiffly accurate: b is the last row
    assert_eq!(&a[s - 1][..], b);
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
    let pw = |k: i32| c.iter().map(|x| x.powi(k)).collect::<Vec<_>>();
    let av = |v: &[f64]| (0..s).map(|i| dot(&a[i], v)).collect::<Vec<_>>();
    for k in 0..5 {
        assert!((dot(b, &pw(k)) - 1.0 / (k as f64 + 1.0)).abs() < 1e-12, "b·c^{}", k);
    }
    assert!((dot(b, &av(&c)) - 1.0 / 6.0).abs() < 1e-12);
    assert!((dot(b, &av(&pw(2))) - 1.0 / 12.0).abs() < 1e-12);
    assert!((dot(b, &av(&av(c))) - 1.0 / 24.0).abs() < 1e-12);
    let cac: Vec<f64> = c.iter().zip(av(c)).map(|(x, y)| x * y).collect();
    assert!((dot(b, &cac) - 1.0 / 8.0).abs() < 1e-12);
    // embedded solution (b − e) is the 6th row: order 4
    let bh: Vec<f64> = b.iter().zip(KVAERNO5.e).map(|(x, e)| x - e).collect();
    for k in 0..4 {
        assert!((dot(&bh, &pw(k)) - 1.0 / (k as f64 + 1.0)).abs() < 1e-12, "b̂·c^{}", k);
    }
}

fn robertson(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    dy[2] = 3e7 * y[1] * y[1];
    dy[1] = -dy[0] - dy[2];
}

#[test]
fn robertson_is_solved_in_few_steps_and_conserves_mass() {
    let ts = [0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5];
    let o = Options { method: Method::Kvaerno5, rtol: 1e-6, atol: vec![1e-8, 1e-14, 1e-8], ..Options::default() };
    let mut out = vec![0.0; ts.len() * 3];
    let mut st = Stats::default();
    solve(&mut FnRhs(robertson), &[1.0, 0.0, 0.0], &ts, &o, &mut out, &mut st, None).unwrap();
    for i in 0..ts.len() {
        let m: f64 = out[i * 3..i * 3 + 3].iter().sum();
        assert!((m - 1.0).abs() < 1e-8, "mass at t={} is {}", ts[i], m);
    }
    assert!(st.steps < 2000 && st.newton > 0 && st.jacobians > 0, "{:?}", st);
    // the explicit method needs far more steps on the same span
    let o2 = Options { method: Method::Dopri5, rtol: 1e-6, atol: vec![1e-8, 1e-14, 1e-8], max_steps: 20_000, ..Options::default() };
    let mut st2 = Stats::default();
    let r = solve(&mut FnRhs(robertson), &[1.0, 0.0, 0.0], &ts, &o2, &mut out, &mut st2, None);
    assert!(r.is_err(), "dopri5 should exceed 20000 steps");
}

#[test]
fn stiff_linear_decay_matches_closed_form() {
    // y' = −1000 (y − cos t) − sin t has the smooth solution y = cos t
    let f = |t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -1000.0 * (y[0] - t.cos()) - t.sin();
    let ts = [0.0, 0.5, 1.0, 2.0];
    let o = Options { method: Method::Kvaerno5, rtol: 1e-10, atol: vec![1e-10], ..Options::default() };
    let mut out = vec![0.0; 4];
    let mut st = Stats::default();
    solve(&mut FnRhs(f), &[1.0], &ts, &o, &mut out, &mut st, None).unwrap();
    for (i, t) in ts.iter().enumerate() {
        assert!((out[i] - t.cos()).abs() < 1e-8, "t={} {} vs {}", t, out[i], t.cos());
    }
    assert!(st.steps < 1000, "{:?}", st);
    // backward in time from t = 2 to 0 (the stiff direction is then unstable in forward sense,
    // but y = cos t stays the attracting solution of the reversed problem only for the smooth part)
}
