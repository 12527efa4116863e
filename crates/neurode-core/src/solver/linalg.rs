//! Dense LU with partial pivoting for the stiff solver's Newton matrix I − hγJ (and its
//! transpose in the gradient passes). Always in f64, row-major n × n.

/// Factors `a` in place (L below the diagonal with unit diagonal, U on and above); `piv[i]` is
/// the row swapped into i. Returns false if a pivot is zero or not finite (singular matrix).
pub fn lu_factor(a: &mut [f64], n: usize, piv: &mut [usize]) -> bool {
    for k in 0..n {
        let mut p = k;
        let mut best = a[k * n + k].abs();
        for i in k + 1..n {
            let v = a[i * n + k].abs();
            if v > best {
                best = v;
                p = i;
            }
        }
        if !(best > 0.0) || !best.is_finite() {
            return false;
        }
        piv[k] = p;
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
        }
        let d = a[k * n + k];
        for i in k + 1..n {
            let l = a[i * n + k] / d;
            a[i * n + k] = l;
            if l != 0.0 {
                for j in k + 1..n {
                    a[i * n + j] -= l * a[k * n + j];
                }
            }
        }
    }
    true
}

/// Solves A x = b in place (b becomes x) with the factors of `lu_factor`.
pub fn lu_solve(lu: &[f64], n: usize, piv: &[usize], b: &mut [f64]) {
    for k in 0..n {
        b.swap(k, piv[k]);
    }
    for i in 1..n {
        let mut s = b[i];
        for j in 0..i {
            s -= lu[i * n + j] * b[j];
        }
        b[i] = s;
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for j in i + 1..n {
            s -= lu[i * n + j] * b[j];
        }
        b[i] = s / lu[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_pivoting_system() {
        // needs a row swap: the (0,0) entry is zero
        let a0 = [0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0];
        let x = [1.0, -2.0, 0.5];
        let mut b = [0.0; 3];
        for i in 0..3 {
            b[i] = (0..3).map(|j| a0[i * 3 + j] * x[j]).sum();
        }
        let mut a = a0;
        let mut piv = [0; 3];
        assert!(lu_factor(&mut a, 3, &mut piv));
        lu_solve(&a, 3, &piv, &mut b);
        for i in 0..3 {
            assert!((b[i] - x[i]).abs() < 1e-14, "{:?}", b);
        }
        let mut s = [1.0, 2.0, 2.0, 4.0];
        assert!(!lu_factor(&mut s, 2, &mut [0; 2]), "singular");
    }
}
