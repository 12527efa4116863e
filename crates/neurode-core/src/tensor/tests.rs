use super::*;
use crate::math::Act;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / 9007199254740992.0) * 2.0 - 1.0
    }
    fn vec<R: Scalar>(&mut self, n: usize) -> Vec<R> {
        (0..n).map(|_| R::from_f64(self.next())).collect()
    }
}

/// naive reference with the documented order: acc = 0 (or c), + a·b for p increasing, + bias, act
#[allow(clippy::too_many_arguments)]
fn naive<R: Scalar>(m: usize, n: usize, k: usize, a: &[R], ars: usize, acs: usize, b: &[R], ldb: usize, c: &mut [R], ldc: usize, accumulate: bool, bias: Option<&[R]>, act: Act) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = if accumulate { c[i * ldc + j] } else { R::ZERO };
            for p in 0..k {
                acc = acc + a[i * ars + p * acs] * b[p * ldb + j];
            }
            if let Some(bb) = bias {
                acc = acc + bb[j];
            }
            c[i * ldc + j] = acc.act(act);
        }
    }
}

const SIZES: [usize; 9] = [1, 2, 3, 4, 5, 7, 17, 63, 65];

fn check_layouts<R: Scalar>() {
    let mut g = Lcg(42);
    let acts = [Act::Identity, Act::Tanh, Act::Relu, Act::Softplus, Act::Sigmoid, Act::Elu, Act::Cube];
    let mut count = 0;
    for (si, &batch) in SIZES.iter().enumerate() {
        for (sj, &d_in) in SIZES.iter().enumerate() {
            for (sk, &d_out) in SIZES.iter().enumerate() {
                if (si + sj + sk) % 3 != 0 && batch > 3 && d_in > 3 && d_out > 3 {
                    continue; // keep the test quick: a third of the big combinations
                }
                count += 1;
                let x: Vec<R> = g.vec(batch * d_in);
                let w: Vec<R> = g.vec(d_out * d_in);
                let bias: Vec<R> = g.vec(d_out);
                let dy: Vec<R> = g.vec(batch * d_out);
                let act = acts[count % acts.len()];
                // forward NT
                let mut y = vec![R::ZERO; batch * d_out];
                let mut ws = vec![R::ZERO; linear_forward_workspace_len(d_in, d_out)];
                linear_forward(batch, d_in, d_out, &x, &w, d_in, Some(&bias), act, &mut y, &mut ws).unwrap();
                let mut yr = vec![R::ZERO; batch * d_out];
                naive(batch, d_out, d_in, &x, d_in, 1, &ws, d_out, &mut yr, d_out, false, Some(&bias), act);
                // (naive over the transposed weight = Σ_i x[b][i]·w[o][i], same order)
                let mut yr2 = vec![R::ZERO; batch * d_out];
                for b in 0..batch {
                    for o in 0..d_out {
                        let mut acc = R::ZERO;
                        for i in 0..d_in {
                            acc = acc + x[b * d_in + i] * w[o * d_in + i];
                        }
                        yr2[b * d_out + o] = (acc + bias[o]).act(act);
                    }
                }
                assert!(y.iter().zip(&yr).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()));
                assert!(y.iter().zip(&yr2).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()), "NT {batch} {d_in} {d_out}");
                // input grad NN
                let mut dx = vec![R::ZERO; batch * d_in];
                linear_grad_input(batch, d_in, d_out, &dy, &w, d_in, &mut dx).unwrap();
                for b in 0..batch {
                    for i in 0..d_in {
                        let mut acc = R::ZERO;
                        for o in 0..d_out {
                            acc = acc + dy[b * d_out + o] * w[o * d_in + i];
                        }
                        assert_eq!(acc.to_f64().to_bits(), dx[b * d_in + i].to_f64().to_bits(), "NN");
                    }
                }
                // weight grad TN, overwrite and accumulate
                let mut dw = vec![R::ZERO; d_out * d_in];
                linear_grad_weight(batch, d_in, d_out, &dy, &x, &mut dw, d_in, false).unwrap();
                let mut dw2 = dw.clone();
                linear_grad_weight(batch, d_in, d_out, &dy, &x, &mut dw2, d_in, true).unwrap();
                for o in 0..d_out {
                    for i in 0..d_in {
                        let mut acc = R::ZERO;
                        for b in 0..batch {
                            acc = acc + dy[b * d_out + o] * x[b * d_in + i];
                        }
                        assert_eq!(acc.to_f64().to_bits(), dw[o * d_in + i].to_f64().to_bits(), "TN");
                        let mut acc2 = acc;
                        for b in 0..batch {
                            acc2 = acc2 + dy[b * d_out + o] * x[b * d_in + i];
                        }
                        assert_eq!(acc2.to_f64().to_bits(), dw2[o * d_in + i].to_f64().to_bits(), "TN acc");
                    }
                }
                // bias grad
                let mut db = vec![R::ZERO; d_out];
                bias_grad(batch, d_out, &dy, &mut db, false).unwrap();
                for o in 0..d_out {
                    let mut acc = R::ZERO;
                    for b in 0..batch {
                        acc = acc + dy[b * d_out + o];
                    }
                    assert_eq!(acc.to_f64().to_bits(), db[o].to_f64().to_bits());
                }
            }
        }
    }
    eprintln!("gemm layouts checked exactly on {count} size triples");
}

#[test]
fn gemm_layouts_f64_exact() {
    check_layouts::<f64>();
}

#[test]
fn gemm_layouts_f32_exact() {
    check_layouts::<f32>();
}

#[test]
fn gemm_strided_and_validation() {
    let mut g = Lcg(7);
    // ConcatLinear-style sub-block: w is [out][1+in], use columns 1..
    let (batch, d_in, d_out) = (5, 3, 6);
    let w: Vec<f64> = g.vec(d_out * (d_in + 1));
    let x: Vec<f64> = g.vec(batch * d_in);
    let mut y = vec![0.0; batch * d_out];
    let mut ws = vec![0.0; d_in * d_out];
    linear_forward(batch, d_in, d_out, &x, &w[1..], d_in + 1, None, Act::Identity, &mut y, &mut ws).unwrap();
    for b in 0..batch {
        for o in 0..d_out {
            let mut acc = 0.0;
            for i in 0..d_in {
                acc += x[b * d_in + i] * w[o * (d_in + 1) + 1 + i];
            }
            assert_eq!(acc, y[b * d_out + o]);
        }
    }
    // validation errors, no panics
    assert!(linear_forward(batch, d_in, d_out, &x[1..], &w[1..], d_in + 1, None, Act::Identity, &mut y, &mut ws).is_err());
    assert!(linear_forward(batch, d_in, d_out, &x, &w[2..], d_in + 1, None, Act::Identity, &mut y, &mut ws).is_err());
    assert!(linear_forward(batch, d_in, d_out, &x, &w, d_in - 1, None, Act::Identity, &mut y, &mut ws).is_err());
    assert!(linear_forward(batch, d_in, d_out, &x, &w, d_in, None, Act::Identity, &mut y, &mut ws[1..]).is_err());
    assert!(linear_forward(usize::MAX, 2, 2, &x, &w, 2, None, Act::Identity, &mut y, &mut ws).is_err());
    assert!(gemm(3, 3, 3, &x, usize::MAX, 1, &w, 3, &mut y, 3, false, None, Act::Identity).is_err());
    let e = bias_grad(4, 5, &x, &mut y, false).unwrap_err();
    assert!(e.message.contains("dy"), "{}", e.message);
    // empty sizes are fine
    linear_forward::<f64>(0, 3, 4, &[], &w, 3, None, Act::Tanh, &mut [], &mut ws).unwrap();
}

fn bench<R: Scalar>(n: usize) -> f64 {
    let mut g = Lcg(1);
    let a: Vec<R> = g.vec(n * n);
    let b: Vec<R> = g.vec(n * n);
    let mut c = vec![R::ZERO; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        gemm(n, n, n, &a, n, 1, &b, n, &mut c, n, false, None, Act::Identity).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Not an assertion: prints native GFLOP/s of the portable kernel (host build).
#[test]
fn gemm_benchmark_report() {
    let f64g = bench::<f64>(256);
    let f32g = bench::<f32>(256);
    eprintln!("native portable gemm 256^3: f64 {f64g:.2} GFLOP/s, f32 {f32g:.2} GFLOP/s (test profile opt-level=2)");
}
