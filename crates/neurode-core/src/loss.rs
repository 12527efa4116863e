//! Losses between predictions and targets, with their gradients (the numerics of training steps
//! stay in the core).

use crate::error::{Error, Result};
use crate::real::Real;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// mean |p − y| (torchdiffeq's ode_demo)
    L1,
    /// mean (p − y)²
    Mse,
}

impl Loss {
    pub fn from_index(i: u32) -> Option<Loss> {
        match i {
            0 => Some(Loss::L1),
            1 => Some(Loss::Mse),
            _ => None,
        }
    }

    /// Returns the loss and writes dloss/dpred into `grad` (same length as `pred`).
    /// Entries with mask 0 are ignored; the mean is over the unmasked entries.
    pub fn eval<R: Real>(self, pred: &[R], target: &[R], mask: Option<&[u8]>, grad: &mut [R]) -> Result<f64> {
        if pred.len() != target.len() || grad.len() != pred.len() || mask.is_some_and(|m| m.len() != pred.len()) {
            return Err(Error::invalid("loss: prediction, target and mask lengths differ"));
        }
        let count = mask.map_or(pred.len(), |m| m.iter().filter(|&&v| v != 0).count());
        if count == 0 {
            grad.iter_mut().for_each(|g| *g = R::ZERO);
            return Ok(0.0);
        }
        let inv = 1.0 / count as f64;
        let mut total = 0.0f64;
        for i in 0..pred.len() {
            if mask.is_some_and(|m| m[i] == 0) {
                grad[i] = R::ZERO;
                continue;
            }
            let d = pred[i].to_f64() - target[i].to_f64();
            match self {
                Loss::L1 => {
                    total += d.abs();
                    grad[i] = R::from_f64(if d > 0.0 { inv } else if d < 0.0 { -inv } else { 0.0 });
                }
                Loss::Mse => {
                    total += d * d;
                    grad[i] = R::from_f64(2.0 * d * inv);
                }
            }
        }
        Ok(total * inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_and_gradients() {
        let p = [1.0, 2.0, -1.0];
        let y = [0.5, 2.5, -1.0];
        let mut g = [0.0; 3];
        let l = Loss::L1.eval(&p, &y, None, &mut g).unwrap();
        assert!((l - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(g, [1.0 / 3.0, -1.0 / 3.0, 0.0]);
        let l = Loss::Mse.eval(&p, &y, Some(&[1, 1, 0]), &mut g).unwrap();
        assert!((l - 0.25).abs() < 1e-15);
        assert_eq!(g, [0.5, -0.5, 0.0]);
        assert!(Loss::Mse.eval(&p, &y[..2], None, &mut g).is_err());
    }
}
