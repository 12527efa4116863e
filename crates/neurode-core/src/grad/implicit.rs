//! Reverse mode through kvaerno5's implicit stages by the implicit function theorem: the stage
//! equation Z = S + hγ f̃(s, Z) gives, for a cotangent k̄ on k = f̃(s, Z), the cotangent J̃ᵀu on
//! S with (I − hγ J̃ᵀ) u = k̄ (J̃ = ∂f̃/∂y at the converged Z). J̃ comes from n VJPs (one row each).

use super::VjpRhs;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::solver::linalg::{lu_factor, lu_solve};
use crate::solver::tableau::KVAERNO5_GAMMA;

pub struct Ift<R: Real> {
    n: usize,
    mat: Vec<f64>,
    piv: Vec<usize>,
    e: Vec<R>,
    row: Vec<R>,
    rhs: Vec<f64>,
    p: Vec<R>,
}

impl<R: Real> Ift<R> {
    pub fn new(n: usize) -> Self {
        Ift { n, mat: vec![0.0; n * n], piv: vec![0; n], e: vec![R::ZERO; n], row: vec![R::ZERO; n], rhs: vec![0.0; n], p: Vec::new() }
    }

    /// `z` holds S_i on entry and Z_i = S_i + hγ k_i on exit; `kbar` is replaced by u.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(&mut self, f: &mut dyn VjpRhs<R>, dir: f64, s: f64, h: f64, z: &mut [R], k: &[R], kbar: &mut [R], nfe: &mut u64) -> Result<()> {
        let n = self.n;
        let hg = h * KVAERNO5_GAMMA;
        let hgr = R::from_f64(hg);
        for q in 0..n {
            z[q] += hgr * k[q];
        }
        // M = I − hγ J̃ᵀ, so M[c][r] = δ − hγ·dir·J[r][c] with row r of J from a VJP with e_r
        if self.p.len() != f.num_params() {
            self.p.resize(f.num_params(), R::ZERO);
        }
        for r in 0..n {
            self.e.iter_mut().for_each(|v| *v = R::ZERO);
            self.e[r] = R::ONE;
            *nfe += 1;
            f.vjp(dir * s, z, &self.e, None, &mut self.row, &mut self.p)?;
            for c in 0..n {
                self.mat[c * n + r] = -hg * dir * self.row[c].to_f64();
            }
        }
        for i in 0..n {
            self.mat[i * n + i] += 1.0;
        }
        if !lu_factor(&mut self.mat, n, &mut self.piv) {
            return Err(Error::invalid("grad: the Newton matrix of a kvaerno5 stage is singular"));
        }
        for q in 0..n {
            self.rhs[q] = kbar[q].to_f64();
        }
        lu_solve(&self.mat, n, &self.piv, &mut self.rhs);
        for q in 0..n {
            kbar[q] = R::from_f64(self.rhs[q]);
        }
        Ok(())
    }
}
