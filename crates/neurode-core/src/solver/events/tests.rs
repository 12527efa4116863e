use super::*;
use crate::solver::{FnRhs, Method};

/// torchdiffeq's event problems: y(t) known, event g = y − y(t2) with t2 the third of ten
/// points in [1, 8]; the crossing must be found at t2.
#[test]
fn constant_and_sine_problems_find_the_third_grid_time() {
    let t2 = 1.0 + 2.0 * 7.0 / 9.0;
    let (a, b) = (0.2, 3.0);
    let constant = |t: f64, y: &[f64], dy: &mut [f64]| dy[0] = a + (y[0] - (a * t + b)).powi(5);
    let sine_exact = |t: f64| -0.5 * t.powi(4) * (2.0 * t).cos() + 0.5 * t.powi(3) * (2.0 * t).sin() + 0.25 * t * t * (2.0 * t).cos() - t.powi(3) + 2.0 * t.powi(4) + (core::f64::consts::PI - 0.25) * t * t;
    let sine = |t: f64, y: &[f64], dy: &mut [f64]| dy[0] = 2.0 * y[0] / t + t.powi(4) * (2.0 * t).sin() - t * t + 4.0 * t.powi(3);
    for m in [Method::Dopri5, Method::Tsit5, Method::Kvaerno5] {
        for (name, y0, y2) in [("constant", a + b, a * t2 + b), ("sine", sine_exact(1.0), sine_exact(t2))] {
            let ev = [EventSpec { func: EventFn::Linear { w: vec![1.0], time: 0.0, offset: -y2 }, direction: Direction::Both, terminal: true }];
            let eo = EventOptions { events: &ev, t_end: Some(8.0), dir: 1.0, ts: &[], tol: 1e-14, max_log: 10 };
            let o = Options { method: m, rtol: 1e-11, atol: vec![1e-11], ..Options::default() };
            let mut out = vec![0.0; 1];
            let mut log = Vec::new();
            let mut st = [Stats::default()];
            let r = if name == "constant" {
                solve_events(&mut FnRhs(constant), &[y0], 1, 1.0, &eo, &mut NoCallbacks, &o, &mut out, &mut log, &mut st)
            } else {
                solve_events(&mut FnRhs(sine), &[y0], 1, 1.0, &eo, &mut NoCallbacks, &o, &mut out, &mut log, &mut st)
            }
            .unwrap();
            assert_eq!(r[0].event, Some(0));
            assert!((r[0].t - t2).abs() < 1e-6, "{:?} {}: t {} vs {}", m, name, r[0].t, t2);
            assert!((r[0].y[0] - y2).abs() < 1e-6 * y2.abs().max(1.0), "{:?} {}: y {} vs {}", m, name, r[0].y[0], y2);
        }
    }
}

#[test]
fn rows_stop_on_their_own_and_non_terminal_events_are_logged() {
    // free fall y'' = −1 from heights 1 and 4: ground at t = √2 and √8
    let fall = |_t: f64, y: &[f64], dy: &mut [f64]| {
        for r in 0..y.len() / 2 {
            dy[2 * r] = y[2 * r + 1];
            dy[2 * r + 1] = -1.0;
        }
    };
    let ev = [
        EventSpec { func: EventFn::Linear { w: vec![1.0, 0.0], time: 0.0, offset: 0.0 }, direction: Direction::Down, terminal: true },
        // passing height 0.5 (non-terminal)
        EventSpec { func: EventFn::Linear { w: vec![1.0, 0.0], time: 0.0, offset: -0.5 }, direction: Direction::Down, terminal: false },
    ];
    let ts = [1.0, 2.0];
    let eo = EventOptions { events: &ev, t_end: None, dir: 1.0, ts: &ts, tol: 1e-14, max_log: 10 };
    let o = Options { method: Method::Dopri5, rtol: 1e-10, atol: vec![1e-12], ..Options::default() };
    let mut out = vec![0.0; 3 * 4];
    let mut log = Vec::new();
    let mut st = [Stats::default(); 2];
    let r = solve_events(&mut FnRhs(fall), &[1.0, 0.0, 4.0, 0.0], 2, 0.0, &eo, &mut NoCallbacks, &o, &mut out, &mut log, &mut st).unwrap();
    assert!((r[0].t - 2f64.sqrt()).abs() < 1e-9 && (r[1].t - 8f64.sqrt()).abs() < 1e-9, "{:?}", r);
    assert!((r[0].y[1] + 2f64.sqrt()).abs() < 1e-9);
    // row 0 stopped before t = 2: NaN there; row 1 still has a state at t = 2 (height 4 − 2 = 2)
    assert!(out[2 * 4].is_nan() && (out[2 * 4 + 2] - 2.0).abs() < 1e-9, "{:?}", out);
    assert!((out[4] - 0.5).abs() < 1e-9, "row 0 at t=1: {}", out[4]);
    assert_eq!(log.len(), 2);
    assert!((log[0].t - 1.0).abs() < 1e-9 && (log[1].t - 7f64.sqrt()).abs() < 1e-9, "{:?}", log);
}
