use super::*;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / 9007199254740992.0) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, s: f64) -> Vec<f64> {
        (0..n).map(|_| s * self.next()).collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// VJP (x, params, t) against central differences, and JVP against the VJP.
fn fd_check(specs: &[LayerSpec], batch: usize, seed: u64) -> usize {
    let net = Net::<f64>::new(specs).unwrap();
    let mut g = Lcg(seed);
    let mut p = vec![0.0; net.num_params()];
    net.init_params(seed, &mut p).unwrap();
    for v in p.iter_mut() {
        *v += 0.3 * g.next(); // also non-default values (e.g. g, c of ConcatSquash)
    }
    let x = g.vec(batch * net.dim_in(), 1.0);
    let a = g.vec(batch * net.dim_out(), 1.0);
    let t = 0.37;
    let mut ws = vec![0.0; net.workspace_len(batch)];
    let mut f = vec![0.0; batch * net.dim_out()];
    let mut f2 = vec![0.0; batch * net.dim_out()];
    let mut gx = vec![0.0; x.len()];
    let mut gp = vec![f64::NAN; p.len()]; // must be overwritten
    let gt = net.vjp(&p, t, &x, batch, &a, Some(&mut f2), &mut gx, &mut gp, &mut ws).unwrap();
    net.forward(&p, t, &x, batch, &mut f, &mut ws).unwrap();
    assert_eq!(f, f2, "vjp out_f == forward");
    // an evaluation record gives the same bits without the VJP's own forward pass (stale
    // workspace and NaN-filled outputs must not matter)
    let mut rec = vec![f64::NAN; net.rec_len(batch).unwrap()];
    let mut f4 = vec![f64::NAN; f.len()];
    ws.iter_mut().for_each(|v| *v = f64::NAN);
    net.forward_rec(&p, t, &x, batch, &mut f4, &mut ws, &mut rec).unwrap();
    assert_eq!(f, f4, "forward_rec == forward");
    let (mut gx4, mut gp4) = (vec![f64::NAN; x.len()], vec![f64::NAN; p.len()]);
    ws.iter_mut().for_each(|v| *v = f64::NAN);
    let gt4 = net.vjp_rec(&p, t, &x, batch, &rec, &a, &mut gx4, &mut gp4, &mut ws).unwrap();
    assert_eq!((gt4.to_bits(), &gx4, &gp4), (gt.to_bits(), &gx, &gp), "vjp_rec == vjp ({specs:?})");
    // without out_f the VJP may skip the final layer's forward: nothing stale is read
    ws.iter_mut().for_each(|v| *v = f64::NAN);
    let gt5 = net.vjp(&p, t, &x, batch, &a, None, &mut gx4, &mut gp4, &mut ws).unwrap();
    assert_eq!((gt5.to_bits(), &gx4, &gp4), (gt.to_bits(), &gx, &gp), "vjp without out_f ({specs:?})");
    assert!(net.vjp_rec(&p, t, &x, batch, &vec![0.0; rec.len() + 1], &a, &mut gx4, &mut gp4, &mut ws).is_err());
    let mut out = vec![0.0; f.len()];
    let mut phi = |p: &[f64], t: f64, x: &[f64], ws: &mut [f64]| {
        net.forward(p, t, x, batch, &mut out, ws).unwrap();
        dot(&a, &out)
    };
    let h = 1e-6;
    let ok = |fd: f64, an: f64, what: &str| {
        assert!((fd - an).abs() <= 1e-6 * (an.abs() + 1e-2), "{what}: fd {fd:e} vs vjp {an:e} ({specs:?}, batch {batch})");
    };
    let mut checks = 0;
    for i in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += h;
        xm[i] -= h;
        ok((phi(&p, t, &xp, &mut ws) - phi(&p, t, &xm, &mut ws)) / (2.0 * h), gx[i], "x");
        checks += 1;
    }
    for i in 0..p.len() {
        let (mut pp, mut pm) = (p.clone(), p.clone());
        pp[i] += h;
        pm[i] -= h;
        ok((phi(&pp, t, &x, &mut ws) - phi(&pm, t, &x, &mut ws)) / (2.0 * h), gp[i], "param");
        checks += 1;
    }
    ok((phi(&p, t + h, &x, &mut ws) - phi(&p, t - h, &x, &mut ws)) / (2.0 * h), gt, "t");
    checks += 1;
    // JVP: a·(J v) == (aJ)·v
    let v = g.vec(x.len(), 1.0);
    let mut jv = vec![0.0; f.len()];
    let mut f3 = vec![0.0; f.len()];
    net.jvp(&p, t, &x, batch, &v, Some(&mut f3), &mut jv, &mut ws).unwrap();
    assert_eq!(f, f3);
    let (l, r) = (dot(&a, &jv), dot(&gx, &v));
    assert!((l - r).abs() <= 1e-12 * (1.0 + l.abs()), "jvp/vjp mismatch {l} {r}");
    checks
}

const ACTS: [Act; 7] = [Act::Tanh, Act::Relu, Act::Softplus, Act::Sigmoid, Act::Elu, Act::Cube, Act::Identity];

#[test]
fn vjp_single_layers_fd() {
    let mut n = 0;
    for &batch in &[1usize, 3, 5] {
        n += fd_check(&[LayerSpec::Linear { d_in: 3, d_out: 4 }], batch, 1);
        n += fd_check(&[LayerSpec::ConcatLinear { d_in: 3, d_out: 4 }], batch, 2);
        n += fd_check(&[LayerSpec::ConcatSquash { d_in: 3, d_out: 4 }], batch, 3);
        for (k, &act) in ACTS.iter().enumerate() {
            // activation alone (input = x) and after a linear layer (fused unless cube)
            n += fd_check(&[LayerSpec::Act { act, dim: 5 }], batch, 10 + k as u64);
            n += fd_check(&[LayerSpec::Linear { d_in: 2, d_out: 5 }, LayerSpec::Act { act, dim: 5 }], batch, 20 + k as u64);
            n += fd_check(&[LayerSpec::ConcatLinear { d_in: 2, d_out: 5 }, LayerSpec::Act { act, dim: 5 }], batch, 30 + k as u64);
            n += fd_check(&[LayerSpec::ConcatSquash { d_in: 2, d_out: 5 }, LayerSpec::Act { act, dim: 5 }], batch, 40 + k as u64);
        }
    }
    eprintln!("single-layer VJP/FD checks: {n} derivatives");
}

#[test]
fn vjp_mlps_fd() {
    let mut n = 0;
    for (k, &act) in [Act::Tanh, Act::Relu, Act::Softplus, Act::Sigmoid, Act::Elu].iter().enumerate() {
        for (j, &time) in [TimeMode::None, TimeMode::Concat, TimeMode::ConcatSquash].iter().enumerate() {
            let specs = mlp(&[3, 7, 6, 2], act, time, k % 2 == 0).unwrap();
            for &batch in &[1usize, 4, 9] {
                n += fd_check(&specs, batch, (100 + 10 * k + j) as u64);
            }
        }
    }
    eprintln!("MLP VJP/FD checks: {n} derivatives");
}

#[test]
fn ode_demo_forward_matches_naive() {
    let specs = mlp(&[2, 50, 2], Act::Tanh, TimeMode::None, true).unwrap();
    assert_eq!(
        specs,
        vec![
            LayerSpec::Act { act: Act::Cube, dim: 2 },
            LayerSpec::Linear { d_in: 2, d_out: 50 },
            LayerSpec::Act { act: Act::Tanh, dim: 50 },
            LayerSpec::Linear { d_in: 50, d_out: 2 },
        ]
    );
    let net = Net::<f64>::new(&specs).unwrap();
    assert_eq!(net.num_params(), 50 * 2 + 50 + 2 * 50 + 2);
    let mut p = vec![0.0; net.num_params()];
    net.init_params(123, &mut p).unwrap();
    let (w1, b1, w2, b2) = (&p[0..100], &p[100..150], &p[150..250], &p[250..252]);
    let batch = 7;
    let mut g = Lcg(5);
    let y = g.vec(batch * 2, 2.0);
    let mut out = vec![0.0; batch * 2];
    let mut ws = vec![0.0; net.workspace_len(batch)];
    net.forward(&p, 0.5, &y, batch, &mut out, &mut ws).unwrap();
    let mut maxrel: f64 = 0.0;
    for b in 0..batch {
        let y3 = [y[2 * b].powi(3), y[2 * b + 1].powi(3)];
        let hdn: Vec<f64> = (0..50).map(|j| (w1[2 * j] * y3[0] + w1[2 * j + 1] * y3[1] + b1[j]).tanh()).collect();
        for o in 0..2 {
            let r = (0..50).map(|j| w2[50 * o + j] * hdn[j]).sum::<f64>() + b2[o];
            maxrel = maxrel.max((r - out[2 * b + o]).abs() / r.abs().max(1e-3));
        }
    }
    eprintln!("ode_demo forward vs naive std reference: max rel diff {maxrel:e}");
    assert!(maxrel < 1e-13);
}

#[test]
fn init_is_pure_and_pytorch_like() {
    let specs = vec![
        LayerSpec::Linear { d_in: 4, d_out: 3 },
        LayerSpec::ConcatLinear { d_in: 3, d_out: 3 },
        LayerSpec::ConcatSquash { d_in: 3, d_out: 2 },
    ];
    let net = Net::<f64>::new(&specs).unwrap();
    let mut a = vec![0.0; net.num_params()];
    let mut b = a.clone();
    let mut c = a.clone();
    net.init_params(9, &mut a).unwrap();
    net.init_params(9, &mut b).unwrap();
    net.init_params(10, &mut c).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert!(a.iter().zip(&c).filter(|(x, y)| x != y).count() == a.len());
    // bounds per group
    let lin = &a[0..15];
    assert!(lin.iter().all(|v| v.abs() <= 0.5));
    let cl = &a[15..15 + 12 + 3];
    assert!(cl.iter().all(|v| v.abs() <= 0.5)); // 1/sqrt(4)
    let cs = &a[30..];
    assert_eq!(cs.len(), 6 + 2 + 6);
    assert!(cs[..8].iter().all(|v| v.abs() <= 1.0 / 3f64.sqrt()));
    // value is a function of (seed, flat index) only: the same params appear in a longer net
    let net2 = Net::<f64>::new(&[specs[0], specs[1]]).unwrap();
    let mut d = vec![0.0; net2.num_params()];
    net2.init_params(9, &mut d).unwrap();
    assert_eq!(&a[..d.len()], &d[..]);
    // f32 init = f64 init rounded
    let n32 = Net::<f32>::new(&specs).unwrap();
    let mut e = vec![0.0f32; n32.num_params()];
    n32.init_params(9, &mut e).unwrap();
    assert!(a.iter().zip(&e).all(|(x, y)| (*x as f32) == *y));
    // the statistics of many draws: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    let big = Net::<f64>::new(&[LayerSpec::Linear { d_in: 100, d_out: 100 }]).unwrap();
    let mut w = vec![0.0; big.num_params()];
    big.init_params(1, &mut w).unwrap();
    let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
    assert!((var - 0.01 / 3.0).abs() < 0.0002, "{var}");
}

#[test]
fn f32_forward_close_to_f64() {
    for time in [TimeMode::None, TimeMode::Concat, TimeMode::ConcatSquash] {
        let specs = mlp(&[3, 64, 64, 3], Act::Softplus, time, false).unwrap();
        let n64 = Net::<f64>::new(&specs).unwrap();
        let n32 = Net::<f32>::new(&specs).unwrap();
        let mut p = vec![0.0; n64.num_params()];
        n64.init_params(3, &mut p).unwrap();
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        let batch = 33;
        let x = Lcg(8).vec(batch * 3, 1.0);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut o64 = vec![0.0; batch * 3];
        let mut o32 = vec![0.0f32; batch * 3];
        n64.forward(&p, 0.25, &x, batch, &mut o64, &mut vec![0.0; n64.workspace_len(batch)]).unwrap();
        n32.forward(&p32, 0.25, &x32, batch, &mut o32, &mut vec![0.0; n32.workspace_len(batch)]).unwrap();
        let err = o64.iter().zip(&o32).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
        assert!(err < 1e-5, "{time:?}: {err}");
        // f32 vjp runs and is close too
        let a = Lcg(9).vec(batch * 3, 1.0);
        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let mut gx = vec![0.0; batch * 3];
        let mut gp = vec![0.0; p.len()];
        let mut gx32 = vec![0.0f32; batch * 3];
        let mut gp32 = vec![0.0f32; p.len()];
        let t64 = n64.vjp(&p, 0.25, &x, batch, &a, None, &mut gx, &mut gp, &mut vec![0.0; n64.workspace_len(batch)]).unwrap();
        let t32 = n32.vjp(&p32, 0.25, &x32, batch, &a32, None, &mut gx32, &mut gp32, &mut vec![0.0; n32.workspace_len(batch)]).unwrap();
        let err = gp.iter().zip(&gp32).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
        assert!(err < 1e-4, "{err}");
        assert!((t64 - t32).abs() < 1e-4 * (1.0 + t64.abs()));
    }
}

#[test]
fn encode_decode() {
    let specs = mlp(&[2, 16, 3], Act::Elu, TimeMode::ConcatSquash, true).unwrap();
    let code = encode_specs(&specs).unwrap();
    assert_eq!(code[..3], [kind::CUBE, 2, 2]);
    assert_eq!(decode_specs(&code).unwrap(), specs);
    assert!(decode_specs(&[]).is_err());
    assert!(decode_specs(&[0, 2]).is_err());
    assert!(decode_specs(&[42, 2, 2]).is_err());
    assert!(decode_specs(&[kind::TANH, 2, 3]).is_err());
    assert!(decode_specs(&[kind::LINEAR, 0, 3]).is_err());
    assert!(decode_specs(&[kind::LINEAR, 2, 3, kind::LINEAR, 4, 1]).is_err());
    assert!(Net::<f64>::new(&[LayerSpec::Linear { d_in: 2, d_out: 3 }, LayerSpec::Linear { d_in: 4, d_out: 1 }]).is_err());
    assert!(Net::<f64>::new(&[]).is_err());
    assert!(Net::<f64>::new(&[LayerSpec::Linear { d_in: usize::MAX, d_out: 3 }]).is_err());
    assert!(mlp(&[2], Act::Tanh, TimeMode::None, false).is_err());
    assert!(mlp(&[2, 0, 1], Act::Tanh, TimeMode::None, false).is_err());
}

#[test]
fn invalid_arguments_are_errors() {
    let net = Net::<f64>::new(&mlp(&[2, 4, 2], Act::Tanh, TimeMode::Concat, false).unwrap()).unwrap();
    let p = vec![0.1; net.num_params()];
    let x = vec![0.2; 6];
    let mut out = vec![0.0; 6];
    let mut ws = vec![0.0; net.workspace_len(3)];
    assert!(net.forward(&p, 0.0, &x, 3, &mut out, &mut ws).is_ok());
    assert!(net.forward(&p[1..], 0.0, &x, 3, &mut out, &mut ws).is_err());
    assert!(net.forward(&p, 0.0, &x, 2, &mut out, &mut ws).is_err());
    assert!(net.forward(&p, 0.0, &x, 3, &mut out[1..], &mut ws).is_err());
    let short = ws.len() - 1;
    let e = net.forward(&p, 0.0, &x, 3, &mut out, &mut ws[..short]).unwrap_err();
    assert!(e.message.starts_with("ws"));
    assert!(net.forward(&p, 0.0, &x, usize::MAX / 2, &mut out, &mut ws).is_err());
    assert_eq!(net.workspace_len(usize::MAX), usize::MAX);
    let mut gx = vec![0.0; 6];
    let mut gp = vec![0.0; p.len()];
    assert!(net.vjp(&p, 0.0, &x, 3, &out[..5], None, &mut gx, &mut gp, &mut ws).is_err());
    assert!(net.vjp(&p, 0.0, &x, 3, &out.clone(), None, &mut gx, &mut gp[1..], &mut ws).is_err());
    assert!(net.init_params(0, &mut gp[1..]).is_err());
    // batch 0 is allowed: empty outputs, zero parameter gradient
    net.forward(&p, 0.0, &[], 0, &mut [], &mut ws).unwrap();
    let dt = net.vjp(&p, 0.0, &[], 0, &[], None, &mut [], &mut gp, &mut ws).unwrap();
    assert_eq!(dt, 0.0);
    assert!(gp.iter().all(|&v| v == 0.0));
}

#[test]
fn workspace_reuse_gives_same_bits() {
    // results do not depend on stale workspace contents
    let specs = mlp(&[3, 8, 3], Act::Tanh, TimeMode::ConcatSquash, true).unwrap();
    let net = Net::<f64>::new(&specs).unwrap();
    let mut p = vec![0.0; net.num_params()];
    net.init_params(4, &mut p).unwrap();
    let x = Lcg(3).vec(12, 1.0);
    let mut o1 = vec![0.0; 12];
    let mut o2 = vec![0.0; 12];
    let mut ws = vec![0.0; net.workspace_len(4)];
    net.forward(&p, 0.1, &x, 4, &mut o1, &mut ws).unwrap();
    ws.iter_mut().for_each(|v| *v = f64::NAN);
    net.forward(&p, 0.1, &x, 4, &mut o2, &mut ws).unwrap();
    assert_eq!(o1, o2);
    let _ = o1[0].tanh();
}
