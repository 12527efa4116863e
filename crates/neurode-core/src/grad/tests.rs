use super::*;
use crate::solver::Method;

/// y' = A y + c·sin(t) (per component), θ = [A (row-major), c]: non-autonomous, with a
/// hand-written VJP.
struct Lin {
    n: usize,
    theta: Vec<f64>,
}

impl Rhs<f64> for Lin {
    fn eval(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<()> {
        let n = self.n;
        for i in 0..n {
            let mut s = self.theta[n * n + i] * t.sin();
            for j in 0..n {
                s += self.theta[i * n + j] * y[j];
            }
            dy[i] = s;
        }
        Ok(())
    }
}

impl VjpRhs<f64> for Lin {
    fn num_params(&self) -> usize {
        self.n * self.n + self.n
    }
    fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out_f: Option<&mut [f64]>, out_y: &mut [f64], out_p: &mut [f64]) -> Result<f64> {
        let n = self.n;
        if let Some(fv) = out_f {
            self.eval(t, y, fv)?;
        }
        let mut gt = 0.0;
        for j in 0..n {
            out_y[j] = (0..n).map(|i| a[i] * self.theta[i * n + j]).sum();
        }
        for i in 0..n {
            for j in 0..n {
                out_p[i * n + j] = a[i] * y[j];
            }
            out_p[n * n + i] = a[i] * t.sin();
            gt += a[i] * self.theta[n * n + i] * t.cos();
        }
        Ok(gt)
    }
}

fn problem() -> (Lin, Vec<f64>, Vec<f64>, Vec<f64>) {
    let theta = vec![-0.3, 1.1, -0.9, -0.2, 0.5, -0.4];
    let y0 = vec![1.0, -0.5];
    let ts = vec![0.5, 1.0, 1.7, 2.5, 3.1];
    let w: Vec<f64> = (0..ts.len() * 2).map(|i| ((i * 7 + 3) % 5) as f64 * 0.3 - 0.6).collect();
    (Lin { n: 2, theta }, y0, ts, w)
}

fn opts(mode: Mode, method: Method, tol: f64) -> GradOptions {
    let forward = Options { method, rtol: tol, atol: vec![tol], step_size: Some(0.05), ..Options::default() };
    GradOptions { mode, forward, adjoint_rtol: tol, adjoint_atol: tol, seminorm: true }
}

fn loss(f: &mut Lin, y0: &[f64], ts: &[f64], w: &[f64], o: &Options) -> f64 {
    let mut out = vec![0.0; ts.len() * y0.len()];
    let mut st = Stats::default();
    solver::solve(f, y0, ts, o, &mut out, &mut st, None).unwrap();
    out.iter().zip(w).map(|(a, b)| a * b).sum()
}

fn grads(mode: Mode, method: Method, tol: f64) -> Grads {
    let (mut f, y0, ts, w) = problem();
    let o = opts(mode, method, tol);
    let tape = forward(&mut f, &y0, &ts, &o).unwrap();
    backward(&mut f, tape, &w).unwrap()
}

/// Central differences of the discrete solve (fixed steps make it smooth in every input).
fn fd_grads(method: Method, tol: f64) -> Grads {
    let (mut f, y0, ts, w) = problem();
    let o = opts(Mode::Backprop, method, tol).forward;
    let h = 1e-6;
    let mut g = Grads { y0: vec![], params: vec![], ts: vec![], stats: Stats::default() };
    for i in 0..y0.len() {
        let (mut a, mut b) = (y0.clone(), y0.clone());
        a[i] += h;
        b[i] -= h;
        g.y0.push((loss(&mut f, &a, &ts, &w, &o) - loss(&mut f, &b, &ts, &w, &o)) / (2.0 * h));
    }
    for i in 0..f.theta.len() {
        let keep = f.theta[i];
        f.theta[i] = keep + h;
        let lp = loss(&mut f, &y0, &ts, &w, &o);
        f.theta[i] = keep - h;
        let lm = loss(&mut f, &y0, &ts, &w, &o);
        f.theta[i] = keep;
        g.params.push((lp - lm) / (2.0 * h));
    }
    for i in 0..ts.len() {
        let (mut a, mut b) = (ts.clone(), ts.clone());
        a[i] += h;
        b[i] -= h;
        g.ts.push((loss(&mut f, &y0, &a, &w, &o) - loss(&mut f, &y0, &b, &w, &o)) / (2.0 * h));
    }
    g
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{}", what);
    for i in 0..a.len() {
        assert!((a[i] - b[i]).abs() <= tol * (1.0 + b[i].abs()), "{}[{}]: {} vs {}", what, i, a[i], b[i]);
    }
}

#[test]
fn backprop_matches_finite_differences_of_the_discrete_solve() {
    // fixed-step rk4: the discrete solution is a smooth function of y0, θ and every t_i
    for method in [Method::Rk4, Method::Midpoint] {
        let g = grads(Mode::Backprop, method, 1e-6);
        let fd = fd_grads(method, 1e-6);
        close(&g.y0, &fd.y0, 1e-7, "y0");
        close(&g.params, &fd.params, 1e-7, "params");
        // The end points are left out: with step sizes held constant (torchdiffeq's convention)
        // the fixed grid's clipped last step does not stretch when t0 or ts[last] move, while
        // the actual solve keeps landing on ts[last]. (The adaptive test below checks them.)
        let nt = g.ts.len();
        close(&g.ts[1..nt - 1], &fd.ts[1..nt - 1], 1e-6, "ts");
    }
}

#[test]
fn checkpoint_equals_backprop_bit_for_bit() {
    for method in [Method::Dopri5, Method::Tsit5, Method::Rk4, Method::Bosh3, Method::Dopri8] {
        let a = grads(Mode::Backprop, method, 1e-8);
        let b = grads(Mode::Checkpoint, method, 1e-8);
        assert_eq!(a.y0, b.y0, "{:?}", method);
        assert_eq!(a.params, b.params, "{:?}", method);
        assert_eq!(a.ts, b.ts, "{:?}", method);
    }
}

#[test]
fn adjoint_converges_to_backprop() {
    for method in [Method::Dopri5, Method::Tsit5, Method::Dopri8] {
        let a = grads(Mode::Adjoint, method, 1e-11);
        let b = grads(Mode::Backprop, method, 1e-11);
        close(&a.y0, &b.y0, 1e-7, "y0");
        close(&a.params, &b.params, 1e-7, "params");
        close(&a.ts, &b.ts, 1e-6, "ts");
    }
}

#[test]
fn reversed_time_gradients() {
    let (mut f, y0, mut ts, w) = problem();
    ts.reverse();
    for mode in [Mode::Backprop, Mode::Adjoint] {
        let o = opts(mode, Method::Dopri5, 1e-11);
        let tape = forward(&mut f, &y0, &ts, &o).unwrap();
        let g = backward(&mut f, tape, &w).unwrap();
        // finite differences of the adaptive solve at tight tolerance
        let fo = o.forward.clone();
        let h = 1e-6;
        for i in 0..2 {
            let (mut a, mut b) = (y0.clone(), y0.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&mut f, &a, &ts, &w, &fo) - loss(&mut f, &b, &ts, &w, &fo)) / (2.0 * h);
            assert!((g.y0[i] - fd).abs() < 1e-6, "{:?} y0[{}] {} vs {}", mode, i, g.y0[i], fd);
        }
        for i in 0..ts.len() {
            let (mut a, mut b) = (ts.clone(), ts.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&mut f, &y0, &a, &w, &fo) - loss(&mut f, &y0, &b, &w, &fo)) / (2.0 * h);
            assert!((g.ts[i] - fd).abs() < 1e-5, "{:?} ts[{}] {} vs {}", mode, i, g.ts[i], fd);
        }
    }
}

#[test]
fn adjoint_memory_does_not_grow_with_steps() {
    let (mut f, y0, ts, _) = problem();
    let a = forward(&mut f, &y0, &ts, &opts(Mode::Adjoint, Method::Dopri5, 1e-6)).unwrap();
    let b = forward(&mut f, &y0, &ts, &opts(Mode::Adjoint, Method::Dopri5, 1e-10)).unwrap();
    assert!(b.forward_stats.steps > 2 * a.forward_stats.steps);
    assert_eq!(a.stored_bytes(), b.stored_bytes());
    let c = forward(&mut f, &y0, &ts, &opts(Mode::Checkpoint, Method::Dopri5, 1e-10)).unwrap();
    let d = forward(&mut f, &y0, &ts, &opts(Mode::Backprop, Method::Dopri5, 1e-10)).unwrap();
    assert_eq!(c.stored_bytes(), (ts.len() * 2 + c.steps_stored() * 2) * 8);
    assert_eq!(d.stored_bytes(), (ts.len() * 2 + d.steps_stored() * 2 * 8) * 8);
}

/// kvaerno5 in every mode (stages differentiated by the implicit function theorem in the
/// discrete modes, the adjoint system solved by kvaerno5 itself) agrees with an accurate
/// explicit solve's gradient.
#[test]
fn kvaerno5_gradients_in_all_modes() {
    let truth = grads(Mode::Backprop, Method::Dopri8, 1e-12);
    for mode in [Mode::Backprop, Mode::Checkpoint, Mode::Adjoint] {
        let (mut f, y0, ts, w) = problem();
        let mut o = opts(mode, Method::Kvaerno5, 1e-10);
        o.forward.step_size = None;
        let tape = forward(&mut f, &y0, &ts, &o).unwrap();
        let g = backward(&mut f, tape, &w).unwrap();
        close(&g.y0, &truth.y0, 1e-6, "y0");
        close(&g.params, &truth.params, 1e-6, "params");
        close(&g.ts, &truth.ts, 1e-6, "ts");
    }
}

/// The same network without evaluation records: every VJP recomputes its forward pass.
struct NoRec(crate::field::NetField<f64>);

impl Rhs<f64> for NoRec {
    fn eval(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<()> {
        self.0.eval(t, y, dy)
    }
}

impl VjpRhs<f64> for NoRec {
    fn num_params(&self) -> usize {
        self.0.num_params()
    }
    fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out_f: Option<&mut [f64]>, out_y: &mut [f64], out_p: &mut [f64]) -> Result<f64> {
        self.0.vjp(t, y, a, out_f, out_y, out_p)
    }
}

/// Backprop keeps each stage's network activations (checkpoint: one step's worth) so the VJPs
/// skip their forward pass: the gradients are bit-identical to recomputing, and (explicit RK)
/// only the first step's first stage may lack a record.
#[test]
fn evaluation_records_give_the_same_bits() {
    use crate::nn::{mlp, Act, TimeMode};
    let net = |time| {
        let specs = mlp(&[2, 16, 2], Act::Tanh, time, true).unwrap();
        crate::field::NetField::<f64>::new(&specs, 3, 0.0).unwrap()
    };
    let y0 = vec![1.0, -0.5, 0.3, 0.8, -1.2, 0.1];
    for (time, method, tol, rev) in [
        (TimeMode::None, Method::Dopri5, 1e-9, false),
        (TimeMode::Concat, Method::Dopri5, 1e-6, true),
        (TimeMode::ConcatSquash, Method::Tsit5, 1e-7, false),
        (TimeMode::None, Method::Bosh3, 1e-5, false),
        (TimeMode::Concat, Method::Dopri8, 1e-8, false),
        (TimeMode::None, Method::Rk4, 0.0, false),
    ] {
        let mut ts = vec![0.0, 0.3, 0.35, 1.0, 1.6];
        if rev {
            ts.reverse();
        }
        let w: Vec<f64> = (0..ts.len() * y0.len()).map(|i| ((i * 7 + 3) % 5) as f64 * 0.3 - 0.6).collect();
        for mode in [Mode::Backprop, Mode::Checkpoint] {
            let mut o = opts(mode, method, tol.max(1e-12));
            o.forward.step_size = if method == Method::Rk4 { Some(0.1) } else { None };
            let (mut a, mut b) = (net(time), NoRec(net(time)));
            let ta = forward(&mut a, &y0, &ts, &o).unwrap();
            let tb = forward(&mut b, &y0, &ts, &o).unwrap();
            assert_eq!(ta.ys, tb.ys);
            let rec_len = a.rec_len(y0.len()).unwrap();
            assert!(rec_len > 0);
            let (mut held, mut missing) = (0, 0);
            for (si, s) in ta.steps.iter().enumerate() {
                for (i, r) in s.recs.iter().enumerate() {
                    if !r.is_empty() {
                        assert_eq!(r.len(), rec_len);
                        held += 1;
                    } else if !(i == 0 && s.k0_shared) {
                        missing += 1;
                        assert!(si == 0 && i == 0, "{:?} {:?}: step {} stage {} has no record", method, mode, si, i);
                    }
                }
            }
            if mode == Mode::Backprop {
                assert!(missing <= 1 && held >= ta.steps.len() * (method.tableau().stages() - 1), "{:?}: {} held, {} missing", method, held, missing);
                assert_eq!(ta.stored_bytes(), tb.stored_bytes() + held * rec_len * 8);
            } else {
                assert_eq!((held, ta.stored_bytes()), (0, tb.stored_bytes()));
            }
            let (ga, gb) = (backward(&mut a, ta, &w).unwrap(), backward(&mut b, tb, &w).unwrap());
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ga.y0), bits(&gb.y0), "{:?} {:?}", method, mode);
            assert_eq!(bits(&ga.params), bits(&gb.params), "{:?} {:?}", method, mode);
            assert_eq!(bits(&ga.ts), bits(&gb.ts), "{:?} {:?}", method, mode);
            assert_eq!(ga.stats.nfe, gb.stats.nfe);
        }
    }
}

/// Without dL/dts: the discrete modes give the same dL/dy0 and dL/dθ bits (rk4's Hermite
/// interpolant needs f at a step's end only for dL/dts), the adjoint the same gradient to its
/// tolerance with fewer evaluations (none for w_i·f(t_i, y_i)).
#[test]
fn skipping_ts_gradients_keeps_the_other_gradients() {
    for (mode, method, step) in [(Mode::Backprop, Method::Dopri5, None), (Mode::Checkpoint, Method::Rk4, Some(0.3)), (Mode::Adjoint, Method::Dopri5, None)] {
        let (mut f, y0, ts, w) = problem();
        let mut o = opts(mode, method, 1e-9);
        o.forward.step_size = step;
        let tape = forward(&mut f, &y0, &ts, &o).unwrap();
        let full = backward(&mut f, tape, &w).unwrap();
        let mut tape = forward(&mut f, &y0, &ts, &o).unwrap();
        tape.skip_ts_grad();
        let part = backward(&mut f, tape, &w).unwrap();
        assert!(part.ts.iter().all(|&v| v == 0.0) && part.ts.len() == ts.len(), "{mode:?}");
        assert!(full.ts.iter().any(|&v| v != 0.0), "{mode:?}");
        if mode == Mode::Adjoint {
            close(&part.y0, &full.y0, 1e-6, "adjoint y0");
            close(&part.params, &full.params, 1e-6, "adjoint params");
            assert!(part.stats.nfe < full.stats.nfe, "{} vs {}", part.stats.nfe, full.stats.nfe);
        } else {
            assert_eq!(part.y0, full.y0, "{mode:?}");
            assert_eq!(part.params, full.params, "{mode:?}");
            assert!(part.stats.nfe <= full.stats.nfe, "{mode:?}");
        }
    }
}

/// `Lin` that poisons a·∂f/∂θ whenever the adjoint says it is not needed, and counts those calls.
struct Skipping {
    f: Lin,
    skipped: usize,
}

impl Rhs<f64> for Skipping {
    fn eval(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<()> {
        self.f.eval(t, y, dy)
    }
}

impl VjpRhs<f64> for Skipping {
    fn num_params(&self) -> usize {
        self.f.num_params()
    }
    fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out_f: Option<&mut [f64]>, out_y: &mut [f64], out_p: &mut [f64]) -> Result<f64> {
        self.f.vjp(t, y, a, out_f, out_y, out_p)
    }
    fn vjp_skip_params(&mut self, t: f64, y: &[f64], a: &[f64], out_f: Option<&mut [f64]>, out_y: &mut [f64], out_p: &mut [f64]) -> Result<f64> {
        self.skipped += 1;
        let g = self.f.vjp(t, y, a, out_f, out_y, out_p)?;
        out_p.iter_mut().for_each(|v| *v = f64::NAN);
        Ok(g)
    }
}

#[test]
fn seminorm_adjoint_skips_unused_parameter_gradients_exactly() {
    // (method, seminorm, whether every step skips a stage)
    for (method, seminorm, per_step) in [(Method::Dopri5, true, true), (Method::Dopri5, false, false), (Method::Tsit5, true, false), (Method::Bosh3, true, false)] {
        let (f, y0, ts, w) = problem();
        let mut o = opts(Mode::Adjoint, method, 1e-7);
        o.seminorm = seminorm;
        let mut plain = f;
        let tape = forward(&mut plain, &y0, &ts, &o).unwrap();
        let want = backward(&mut plain, tape, &w).unwrap();
        let mut sk = Skipping { f: problem().0, skipped: 0 };
        let tape = forward(&mut sk, &y0, &ts, &o).unwrap();
        let got = backward(&mut sk, tape, &w).unwrap();
        // the skipped values reach nothing: same bits (a poisoned one would show as NaN)
        for (a, b) in [(&got.y0, &want.y0), (&got.params, &want.params), (&got.ts, &want.ts)] {
            assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{method:?} seminorm {seminorm}");
        }
        assert_eq!(got.stats, want.stats);
        // the initial-step probe of every interval (only normed) and dopri5's second stage of
        // every attempted step; nothing under the full norm
        let intervals = (ts.len() - 1) as u64;
        let want_skips = match (seminorm, per_step) {
            (false, _) => 0,
            (true, false) => intervals,
            (true, true) => intervals + got.stats.steps + got.stats.rejected,
        };
        assert_eq!(sk.skipped as u64, want_skips, "{method:?} seminorm {seminorm}");
    }
}
