//! Native timing of one CNF training shard (profiling aid): `cargo run --release --example cnf_iter`.
use neurode_core::cnf::{Cnf, Trace};
use neurode_core::grad::{GradOptions, Mode};
use neurode_core::math::Act;
use neurode_core::nn::LayerSpec;
use neurode_core::solver::{Method, Options};

fn main() {
    let specs = [
        LayerSpec::ConcatLinear { d_in: 2, d_out: 64 },
        LayerSpec::Act { act: Act::Tanh, dim: 64 },
        LayerSpec::Linear { d_in: 64, d_out: 64 },
        LayerSpec::Act { act: Act::Tanh, dim: 64 },
        LayerSpec::Linear { d_in: 64, d_out: 2 },
    ];
    let mut f = Cnf::<f64>::mlp(&specs, 0).unwrap();
    let mut x = vec![0.0; 1024];
    neurode_core::datasets::toy(0, 512, 1, &mut x).unwrap();
    x.iter_mut().for_each(|v| *v /= 3.0);
    let forward = Options { method: Method::Dopri5, rtol: 1e-5, atol: vec![1e-5], ..Options::default() };
    let go = GradOptions { mode: Mode::Adjoint, forward, adjoint_rtol: 1e-5, adjoint_atol: 1e-5, seminorm: true };
    let reps: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(5);
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        let s = f.mle_shard(&x, 10.0, 0.1f64.sqrt(), Trace::Exact, None, &go).unwrap();
        println!("{:.1} ms  nfe {} / {}  loss {:.4}", t0.elapsed().as_secs_f64() * 1e3, s.forward.nfe, s.backward.nfe, s.loss);
    }
}
