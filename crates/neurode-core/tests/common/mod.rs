//! Shared by the golden_*.rs tests: the TypeScript side's digest (ts/nn.ts fnv1a/paramDigest),
//! its counter-based random numbers (ts/train.ts random()) and its shard bookkeeping
//! (shardRanges, and sumInOrder's weighted sum in shard order), so that each test reproduces
//! a fit() exactly as the wasm build runs it.
#![allow(dead_code)]

use neurode_core::abi::nd_rng_fill;

/// FNV-1a (32 bit) of bytes, as 8 hex digits.
pub fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u32 = 0x811c9dc5;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    format!("{:08x}", h)
}

/// Parameters of either dtype, as their little-endian bytes (a typed array's buffer in JS).
pub trait LeBytes: Copy {
    fn le_bytes(self, out: &mut Vec<u8>);
}
impl LeBytes for f64 {
    fn le_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl LeBytes for f32 {
    fn le_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// A model's digest(): FNV-1a of its parameter bytes.
pub fn param_digest<T: LeBytes>(p: &[T]) -> String {
    let mut bytes = Vec::with_capacity(p.len() * 8);
    for &v in p {
        v.le_bytes(&mut bytes);
    }
    fnv1a(&bytes)
}

/// TypeScript's random(kind, n, { seed, stream, range }) through the same core function.
#[derive(Clone, Copy)]
pub enum Kind {
    Uniform = 0,
    Integer = 3,
    /// n distinct integers in [0, range) (minibatches drawn without replacement).
    Choice = 4,
}

pub fn random(kind: Kind, n: usize, seed: u64, stream: u64, range: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; n];
    let st = unsafe { nd_rng_fill(kind as u32, seed as u32, (seed >> 32) as u32, stream as f64, 0.0, n as u32, range as f64, out.as_mut_ptr()) };
    assert_eq!(st, 0, "nd_rng_fill failed");
    out
}

/// Sample indices drawn without replacement (random('choice', …)).
pub fn choice(seed: u64, stream: u64, n: usize, range: usize) -> Vec<usize> {
    random(Kind::Choice, n, seed, stream, range).iter().map(|&v| v as usize).collect()
}

/// Row ranges [start, end) of fixed-size shards covering a batch (shardRanges).
pub fn shard_ranges(batch: usize, shard: usize) -> Vec<(usize, usize)> {
    (0..batch).step_by(shard).map(|a| (a, (a + shard).min(batch))).collect()
}

/// A batch's gradient as fit() combines its shards: each shard's gradient (`shard_grad(a, b)`
/// for rows [a, b)) weighted by its share of the batch and summed in shard order, each sum in
/// index order (shardRanges, then sumInOrder → nd_sum_into).
pub fn batch_grad(batch: usize, shard: usize, mut shard_grad: impl FnMut(usize, usize) -> Vec<f64>) -> Vec<f64> {
    let mut acc: Vec<f64> = Vec::new();
    for (a, b) in shard_ranges(batch, shard) {
        let g = shard_grad(a, b);
        let w = (b - a) as f64 / batch as f64;
        if acc.is_empty() {
            acc = vec![0.0; g.len()];
        }
        assert_eq!(acc.len(), g.len());
        for (s, v) in acc.iter_mut().zip(&g) {
            *s += w * *v;
        }
    }
    acc
}

/// The determinism check every golden test makes: two native runs agree, and their digest is
/// the one the wasm build gives (asserted in test/pool.test.ts).
pub fn assert_golden(run: fn() -> String, golden: &str) {
    let a = run();
    assert_eq!(a, run(), "two native runs differ");
    assert_eq!(a, golden, "native digest differs from the golden one the wasm build gives");
}
