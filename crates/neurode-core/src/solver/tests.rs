use super::*;

fn decay(_t: f64, y: &[f64], dy: &mut [f64]) {
    for i in 0..y.len() {
        dy[i] = -y[i];
    }
}

fn solve_f64(m: Method, y0: &[f64], ts: &[f64], f: &mut dyn Rhs<f64>, tweak: impl Fn(&mut Options)) -> (Vec<f64>, Stats) {
    let mut o = Options { method: m, ..Options::default() };
    tweak(&mut o);
    let mut out = vec![0.0; ts.len() * y0.len()];
    let mut st = Stats::default();
    solve(f, y0, ts, &o, &mut out, &mut st, None).unwrap();
    (out, st)
}

#[test]
fn adaptive_methods_solve_exponential_decay() {
    let ts: Vec<f64> = (0..11).map(|i| i as f64).collect();
    for m in [Method::Bosh3, Method::Dopri5, Method::Tsit5, Method::Dopri8] {
        let (out, st) = solve_f64(m, &[1.0], &ts, &mut FnRhs(decay), |o| {
            o.rtol = 1e-10;
            o.atol = vec![1e-12];
        });
        for (i, t) in ts.iter().enumerate() {
            let err = (out[i] - (-t).exp()).abs();
            assert!(err < 1e-8, "{:?} t={} err={}", m, t, err);
        }
        assert!(st.steps > 0 && st.nfe > st.steps);
    }
}

#[test]
fn backward_in_time_matches_forward() {
    let ts = [2.0, 1.0, 0.0];
    let y2 = (-2.0f64).exp();
    let (out, _) = solve_f64(Method::Dopri5, &[y2], &ts, &mut FnRhs(decay), |o| {
        o.rtol = 1e-10;
        o.atol = vec![1e-12];
    });
    assert!((out[2] - 1.0).abs() < 1e-8, "{}", out[2]);
    assert!((out[1] - (-1.0f64).exp()).abs() < 1e-8);
}

fn fixed_error(m: Method, h: f64) -> f64 {
    // y' = y·cos t, y(0) = 1: y = exp(sin t); the error at t = 2 (a step end)
    let ts = [0.0, 2.0];
    let (out, _) = solve_f64(m, &[1.0], &ts, &mut FnRhs(|t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * t.cos()), |o| o.step_size = Some(h));
    (out[1] - 2.0f64.sin().exp()).abs()
}

#[test]
fn fixed_step_convergence_orders() {
    for (m, p) in [(Method::Euler, 1.0), (Method::Midpoint, 2.0), (Method::Heun, 2.0), (Method::Rk4, 4.0)] {
        let e1 = fixed_error(m, 0.02);
        let e2 = fixed_error(m, 0.01);
        let order = (e1 / e2).log2();
        assert!((order - p).abs() < 0.25, "{:?}: observed order {} (errors {} {})", m, order, e1, e2);
    }
}

/// One step of size h from t = 0 on y' = y·cos t, interpolated at θ = 0.37: the local error of
/// the dense output shrinks like h^(q+1) with q the interpolant's order.
fn dense_error(m: Method, h: f64) -> f64 {
    let th = 0.37;
    let ts = [0.0, th * h, h];
    let (out, st) = solve_f64(m, &[1.0], &ts, &mut FnRhs(|t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * t.cos()), |o| {
        o.first_step = Some(h);
        o.rtol = 1.0;
        o.atol = vec![1.0];
    });
    assert_eq!(st.steps, 1);
    (out[1] - (th * h).sin().exp()).abs()
}

#[test]
fn dense_output_orders() {
    for (m, q) in [(Method::Bosh3, 3.0), (Method::Dopri5, 4.0), (Method::Tsit5, 4.0), (Method::Dopri8, 5.0)] {
        let e1 = dense_error(m, 0.05);
        let e2 = dense_error(m, 0.025);
        let order = (e1 / e2).log2() - 1.0;
        assert!(order > q - 0.4, "{:?}: dense output order {} (errors {} {})", m, order, e1, e2);
    }
}

#[test]
fn grid_points_are_stepped_onto() {
    struct Times(Vec<f64>);
    impl StepObserver<f64> for Times {
        fn accepted(&mut self, step: &StepInfo<f64>) -> Result<()> {
            self.0.push(step.s1);
            Ok(())
        }
    }
    let mut times = Times(vec![]);
    let o = Options { grid_points: vec![0.3, 1.7], ..Options::default() };
    let mut out = vec![0.0; 2];
    let mut st = Stats::default();
    solve(&mut FnRhs(decay), &[1.0], &[0.0, 2.0], &o, &mut out, &mut st, Some(&mut times)).unwrap();
    assert!(times.0.contains(&0.3) && times.0.contains(&1.7), "{:?}", times.0);
}

#[test]
fn errors_have_codes() {
    let o = Options { max_steps: 3, ..Options::default() };
    let mut out = vec![0.0; 2];
    let mut st = Stats::default();
    let e = solve(&mut FnRhs(decay), &[1.0], &[0.0, 100.0], &o, &mut out, &mut st, None).unwrap_err();
    assert_eq!(e.code, Code::MaxSteps);
    let e = solve(&mut FnRhs(|_t: f64, _y: &[f64], dy: &mut [f64]| dy[0] = f64::NAN), &[1.0], &[0.0, 1.0], &Options::default(), &mut out, &mut st, None).unwrap_err();
    assert_eq!(e.code, Code::NonFinite);
    // y' = y², y(0) = 1 blows up at t = 1
    let e = solve(&mut FnRhs(|_t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0]), &[1.0], &[0.0, 2.0], &Options::default(), &mut out, &mut st, None).unwrap_err();
    assert!(e.code == Code::StepUnderflow || e.code == Code::NonFinite || e.code == Code::MaxSteps, "{:?}", e);
    assert!(e.message.contains("t = 0.99") || e.message.contains("t = 1"), "{}", e.message);
    for (ts, y0) in [(vec![0.0, 1.0, 1.0], 1.0), (vec![0.0, 1.0, 0.5], 1.0), (vec![0.0, 1.0], f64::NAN), (vec![0.0, f64::INFINITY], 1.0)] {
        let mut out = vec![0.0; ts.len()];
        let e = solve(&mut FnRhs(decay), &[y0], &ts, &Options::default(), &mut out, &mut st, None).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
    }
}

#[test]
fn independent_rows_equal_solo_solves_and_f32_works() {
    let y0 = [1.0, 2.0, -0.5, 3.0];
    let f = |_t: f64, y: &[f64], dy: &mut [f64]| {
        // a 2-D nonlinear field per row
        for r in 0..y.len() / 2 {
            dy[2 * r] = y[2 * r + 1];
            dy[2 * r + 1] = -y[2 * r] * y[2 * r] * y[2 * r];
        }
    };
    let ts = [0.0, 0.5, 3.0];
    let mut out = vec![0.0; 3 * 4];
    let mut rows = vec![Stats::default(); 2];
    solve_independent(&mut FnRhs(f), &y0, 2, &ts, &Options::default(), &mut out, &mut rows).unwrap();
    for r in 0..2 {
        let (solo, st) = solve_f64(Method::Dopri5, &y0[2 * r..2 * r + 2], &ts, &mut FnRhs(f), |_| {});
        assert_eq!(st, rows[r]);
        for i in 0..3 {
            assert_eq!(solo[2 * i..2 * i + 2], out[i * 4 + 2 * r..i * 4 + 2 * r + 2]);
        }
    }
    let mut out32 = vec![0.0f32; 3];
    let mut st = Stats::default();
    solve(&mut FnRhs(|_t: f64, y: &[f32], dy: &mut [f32]| dy[0] = -y[0]), &[1.0f32], &[0.0, 1.0, 2.0], &Options { rtol: 1e-5, atol: vec![1e-7], ..Options::default() }, &mut out32, &mut st, None).unwrap();
    assert!((out32[2] as f64 - (-2.0f64).exp()).abs() < 1e-5);
}
