//! Elementary functions built from IEEE basic operations (placeholder until the vectorised
//! kernels land).
pub fn powf64(x: f64, y: f64) -> f64 {
    x.powf(y)
}
