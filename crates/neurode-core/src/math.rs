//! Deterministic elementary functions for `f32` and `f64`, built from IEEE basic operations only
//! (+ − × ÷, comparisons, bit manipulation), so native and wasm builds give the same bits.
//!
//! Every kernel is written ONCE, generic over a "lane" abstraction ([`L64`] / [`L32`]): the scalar
//! instantiation (`f64`, `f32`) is used by the scalar API, by slice tails and by the portable
//! fallback; the wasm simd128 instantiation (`f64x2`, `f32x4`) runs the very same operation
//! sequence per lane. Branches are expressed as compare + select, so both paths agree bit for bit.
//!
//! NaN inputs are returned unchanged (same payload) by every function; NaN produced from a
//! non-NaN input (`ln(-1)`) is the canonical quiet NaN `f64::NAN` / `f32::NAN`.
//!
//! Algorithms (textbook): exp — Cody–Waite reduction x = k·ln2 + r, |r| ≤ ln2/2, Taylor polynomial
//! for e^r, scaling by 2^k in two exact steps (so subnormal results round once). ln — x = 2^e·m,
//! m ∈ [√½, √2), ln m = 2·atanh(s), s = (m−1)/(m+1), written as f − s·(f − R(s²)) to keep f = m−1
//! exact. expm1 shares exp's reduction; log1p uses ln(1+u) + correction; tanh|x| = −E/(E+2) with
//! E = expm1(−2|x|) (f32: so computed); f64 writes E = s·(e^r − 1) + (s − 1), s = 2^k,
//! e^r − 1 = 2r/(2 + d), d = r·coth(r/2) − 2 − r (an even series in r with Bernoulli-number
//! coefficients, here a 5-term Chebyshev fit in r²), over one common denominator: −(2(s−1) + 2rs + (s−1)d) / (2(s+1) + 2rs + (s+1)d),
//! one division and no cancellation at k = 0 (for |x| < ½, x + x³·P(x²) instead: no reduction, no division); sigmoid = 1/(1+e^{−|x|}) or e^{−|x|}/(1+e^{−|x|}); softplus = max(x,0) +
//! log1p(e^{−|x|}); sin/cos (f64, of 2π·u "turns") by exact octant reduction + Taylor series.

#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::real::Real;

// ---------------------------------------------------------------------------------------------
// Lane abstraction
// ---------------------------------------------------------------------------------------------

/// f64 lanes (scalar `f64` or wasm `f64x2`). Internal: kernels are generic over it.
pub(crate) trait L64: Copy {
    type M: Copy;
    type I: Copy;
    fn s(c: f64) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn lt(self, o: Self) -> Self::M;
    fn gt(self, o: Self) -> Self::M;
    fn eq(self, o: Self) -> Self::M;
    fn ne(self, o: Self) -> Self::M;
    /// m ? a : b (bitwise)
    fn sel(m: Self::M, a: Self, b: Self) -> Self;
    /// Whether every / some lane of a mask is set (to skip a select's unused side: each lane's
    /// result stays a function of that lane alone).
    fn all(m: Self::M) -> bool;
    fn any(m: Self::M) -> bool;
    /// o < self ? o : self (wasm `pmin`: one instruction, same as `sel(o.lt(self), o, self)`)
    fn pmin(self, o: Self) -> Self;
    /// self < o ? o : self (wasm `pmax`)
    fn pmax(self, o: Self) -> Self;
    fn bits(self) -> Self::I;
    fn from_bits(i: Self::I) -> Self;
    fn is(c: i64) -> Self::I;
    fn iadd(a: Self::I, b: Self::I) -> Self::I;
    fn isub(a: Self::I, b: Self::I) -> Self::I;
    fn iand(a: Self::I, b: Self::I) -> Self::I;
    fn ior(a: Self::I, b: Self::I) -> Self::I;
    fn ishl(a: Self::I, n: u32) -> Self::I;
    fn ishr_s(a: Self::I, n: u32) -> Self::I;
    fn ishr_u(a: Self::I, n: u32) -> Self::I;
}

/// f32 lanes (scalar `f32` or wasm `f32x4`).
pub(crate) trait L32: Copy {
    type M: Copy;
    type I: Copy;
    fn s(c: f32) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn lt(self, o: Self) -> Self::M;
    fn gt(self, o: Self) -> Self::M;
    fn eq(self, o: Self) -> Self::M;
    fn ne(self, o: Self) -> Self::M;
    fn sel(m: Self::M, a: Self, b: Self) -> Self;
    /// As `L64::all` / `L64::any`.
    fn all(m: Self::M) -> bool;
    fn any(m: Self::M) -> bool;
    fn pmin(self, o: Self) -> Self;
    fn pmax(self, o: Self) -> Self;
    fn bits(self) -> Self::I;
    fn from_bits(i: Self::I) -> Self;
    fn is(c: i32) -> Self::I;
    fn iadd(a: Self::I, b: Self::I) -> Self::I;
    fn isub(a: Self::I, b: Self::I) -> Self::I;
    fn iand(a: Self::I, b: Self::I) -> Self::I;
    fn ior(a: Self::I, b: Self::I) -> Self::I;
    fn ishl(a: Self::I, n: u32) -> Self::I;
    fn ishr_s(a: Self::I, n: u32) -> Self::I;
    fn ishr_u(a: Self::I, n: u32) -> Self::I;
}

impl L64 for f64 {
    type M = bool;
    type I = i64;
    #[inline(always)]
    fn s(c: f64) -> Self {
        c
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
    #[inline(always)]
    fn lt(self, o: Self) -> bool {
        self < o
    }
    #[inline(always)]
    fn gt(self, o: Self) -> bool {
        self > o
    }
    #[inline(always)]
    fn eq(self, o: Self) -> bool {
        self == o
    }
    #[inline(always)]
    fn ne(self, o: Self) -> bool {
        self != o
    }
    #[inline(always)]
    fn sel(m: bool, a: Self, b: Self) -> Self {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn all(m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn any(m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn pmin(self, o: Self) -> Self {
        if o < self {
            o
        } else {
            self
        }
    }
    #[inline(always)]
    fn pmax(self, o: Self) -> Self {
        if self < o {
            o
        } else {
            self
        }
    }
    #[inline(always)]
    fn bits(self) -> i64 {
        self.to_bits() as i64
    }
    #[inline(always)]
    fn from_bits(i: i64) -> Self {
        f64::from_bits(i as u64)
    }
    #[inline(always)]
    fn is(c: i64) -> i64 {
        c
    }
    #[inline(always)]
    fn iadd(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn isub(a: i64, b: i64) -> i64 {
        a.wrapping_sub(b)
    }
    #[inline(always)]
    fn iand(a: i64, b: i64) -> i64 {
        a & b
    }
    #[inline(always)]
    fn ior(a: i64, b: i64) -> i64 {
        a | b
    }
    #[inline(always)]
    fn ishl(a: i64, n: u32) -> i64 {
        a.wrapping_shl(n)
    }
    #[inline(always)]
    fn ishr_s(a: i64, n: u32) -> i64 {
        a.wrapping_shr(n)
    }
    #[inline(always)]
    fn ishr_u(a: i64, n: u32) -> i64 {
        ((a as u64) >> n) as i64
    }
}

impl L32 for f32 {
    type M = bool;
    type I = i32;
    #[inline(always)]
    fn s(c: f32) -> Self {
        c
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
    #[inline(always)]
    fn lt(self, o: Self) -> bool {
        self < o
    }
    #[inline(always)]
    fn gt(self, o: Self) -> bool {
        self > o
    }
    #[inline(always)]
    fn eq(self, o: Self) -> bool {
        self == o
    }
    #[inline(always)]
    fn ne(self, o: Self) -> bool {
        self != o
    }
    #[inline(always)]
    fn sel(m: bool, a: Self, b: Self) -> Self {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn all(m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn any(m: bool) -> bool {
        m
    }
    #[inline(always)]
    fn pmin(self, o: Self) -> Self {
        if o < self {
            o
        } else {
            self
        }
    }
    #[inline(always)]
    fn pmax(self, o: Self) -> Self {
        if self < o {
            o
        } else {
            self
        }
    }
    #[inline(always)]
    fn bits(self) -> i32 {
        self.to_bits() as i32
    }
    #[inline(always)]
    fn from_bits(i: i32) -> Self {
        f32::from_bits(i as u32)
    }
    #[inline(always)]
    fn is(c: i32) -> i32 {
        c
    }
    #[inline(always)]
    fn iadd(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn isub(a: i32, b: i32) -> i32 {
        a.wrapping_sub(b)
    }
    #[inline(always)]
    fn iand(a: i32, b: i32) -> i32 {
        a & b
    }
    #[inline(always)]
    fn ior(a: i32, b: i32) -> i32 {
        a | b
    }
    #[inline(always)]
    fn ishl(a: i32, n: u32) -> i32 {
        a.wrapping_shl(n)
    }
    #[inline(always)]
    fn ishr_s(a: i32, n: u32) -> i32 {
        a.wrapping_shr(n)
    }
    #[inline(always)]
    fn ishr_u(a: i32, n: u32) -> i32 {
        ((a as u32) >> n) as i32
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    //! wasm simd128 lanes. Each method is one IEEE lane-wise instruction (or a bitselect).
    use super::{L32, L64};
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct F64x2(pub v128);
    #[derive(Clone, Copy)]
    pub struct F32x4(pub v128);

    impl L64 for F64x2 {
        type M = v128;
        type I = v128;
        #[inline(always)]
        fn s(c: f64) -> Self {
            F64x2(f64x2_splat(c))
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            F64x2(f64x2_add(self.0, o.0))
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            F64x2(f64x2_sub(self.0, o.0))
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            F64x2(f64x2_mul(self.0, o.0))
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            F64x2(f64x2_div(self.0, o.0))
        }
        #[inline(always)]
        fn lt(self, o: Self) -> v128 {
            f64x2_lt(self.0, o.0)
        }
        #[inline(always)]
        fn gt(self, o: Self) -> v128 {
            f64x2_gt(self.0, o.0)
        }
        #[inline(always)]
        fn eq(self, o: Self) -> v128 {
            f64x2_eq(self.0, o.0)
        }
        #[inline(always)]
        fn ne(self, o: Self) -> v128 {
            f64x2_ne(self.0, o.0)
        }
        #[inline(always)]
        fn sel(m: v128, a: Self, b: Self) -> Self {
            F64x2(v128_bitselect(a.0, b.0, m))
        }
        #[inline(always)]
        fn all(m: v128) -> bool {
            i64x2_all_true(m)
        }
        #[inline(always)]
        fn any(m: v128) -> bool {
            v128_any_true(m)
        }
        #[inline(always)]
        fn pmin(self, o: Self) -> Self {
            F64x2(f64x2_pmin(self.0, o.0))
        }
        #[inline(always)]
        fn pmax(self, o: Self) -> Self {
            F64x2(f64x2_pmax(self.0, o.0))
        }
        #[inline(always)]
        fn bits(self) -> v128 {
            self.0
        }
        #[inline(always)]
        fn from_bits(i: v128) -> Self {
            F64x2(i)
        }
        #[inline(always)]
        fn is(c: i64) -> v128 {
            i64x2_splat(c)
        }
        #[inline(always)]
        fn iadd(a: v128, b: v128) -> v128 {
            i64x2_add(a, b)
        }
        #[inline(always)]
        fn isub(a: v128, b: v128) -> v128 {
            i64x2_sub(a, b)
        }
        #[inline(always)]
        fn iand(a: v128, b: v128) -> v128 {
            v128_and(a, b)
        }
        #[inline(always)]
        fn ior(a: v128, b: v128) -> v128 {
            v128_or(a, b)
        }
        #[inline(always)]
        fn ishl(a: v128, n: u32) -> v128 {
            i64x2_shl(a, n)
        }
        #[inline(always)]
        fn ishr_s(a: v128, n: u32) -> v128 {
            i64x2_shr(a, n)
        }
        #[inline(always)]
        fn ishr_u(a: v128, n: u32) -> v128 {
            u64x2_shr(a, n)
        }
    }

    impl L32 for F32x4 {
        type M = v128;
        type I = v128;
        #[inline(always)]
        fn s(c: f32) -> Self {
            F32x4(f32x4_splat(c))
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            F32x4(f32x4_add(self.0, o.0))
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            F32x4(f32x4_sub(self.0, o.0))
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            F32x4(f32x4_mul(self.0, o.0))
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            F32x4(f32x4_div(self.0, o.0))
        }
        #[inline(always)]
        fn lt(self, o: Self) -> v128 {
            f32x4_lt(self.0, o.0)
        }
        #[inline(always)]
        fn gt(self, o: Self) -> v128 {
            f32x4_gt(self.0, o.0)
        }
        #[inline(always)]
        fn eq(self, o: Self) -> v128 {
            f32x4_eq(self.0, o.0)
        }
        #[inline(always)]
        fn ne(self, o: Self) -> v128 {
            f32x4_ne(self.0, o.0)
        }
        #[inline(always)]
        fn sel(m: v128, a: Self, b: Self) -> Self {
            F32x4(v128_bitselect(a.0, b.0, m))
        }
        #[inline(always)]
        fn all(m: v128) -> bool {
            i32x4_all_true(m)
        }
        #[inline(always)]
        fn any(m: v128) -> bool {
            v128_any_true(m)
        }
        #[inline(always)]
        fn pmin(self, o: Self) -> Self {
            F32x4(f32x4_pmin(self.0, o.0))
        }
        #[inline(always)]
        fn pmax(self, o: Self) -> Self {
            F32x4(f32x4_pmax(self.0, o.0))
        }
        #[inline(always)]
        fn bits(self) -> v128 {
            self.0
        }
        #[inline(always)]
        fn from_bits(i: v128) -> Self {
            F32x4(i)
        }
        #[inline(always)]
        fn is(c: i32) -> v128 {
            i32x4_splat(c)
        }
        #[inline(always)]
        fn iadd(a: v128, b: v128) -> v128 {
            i32x4_add(a, b)
        }
        #[inline(always)]
        fn isub(a: v128, b: v128) -> v128 {
            i32x4_sub(a, b)
        }
        #[inline(always)]
        fn iand(a: v128, b: v128) -> v128 {
            v128_and(a, b)
        }
        #[inline(always)]
        fn ior(a: v128, b: v128) -> v128 {
            v128_or(a, b)
        }
        #[inline(always)]
        fn ishl(a: v128, n: u32) -> v128 {
            i32x4_shl(a, n)
        }
        #[inline(always)]
        fn ishr_s(a: v128, n: u32) -> v128 {
            i32x4_shr(a, n)
        }
        #[inline(always)]
        fn ishr_u(a: v128, n: u32) -> v128 {
            u32x4_shr(a, n)
        }
    }
}

/// Estrin evaluation of c[0] + c[1]·x + … + c[N−1]·x^(N−1) (short dependency chains; the same
/// operation sequence for every lane type).
#[inline(always)]
pub(crate) fn estrin64<V: L64, const N: usize>(x: V, c: &[f64; N]) -> V {
    let mut q = [V::s(0.0); N];
    for i in 0..N {
        q[i] = V::s(c[i]);
    }
    let mut p = x;
    let mut n = N;
    while n > 1 {
        for i in 0..n / 2 {
            q[i] = q[2 * i].add(q[2 * i + 1].mul(p));
        }
        if n % 2 == 1 {
            q[n / 2] = q[n - 1];
        }
        n = (n + 1) / 2;
        if n > 1 {
            p = p.mul(p);
        }
    }
    q[0]
}

#[inline(always)]
pub(crate) fn estrin32<V: L32, const N: usize>(x: V, c: &[f32; N]) -> V {
    let mut q = [V::s(0.0); N];
    for i in 0..N {
        q[i] = V::s(c[i]);
    }
    let mut p = x;
    let mut n = N;
    while n > 1 {
        for i in 0..n / 2 {
            q[i] = q[2 * i].add(q[2 * i + 1].mul(p));
        }
        if n % 2 == 1 {
            q[n / 2] = q[n - 1];
        }
        n = (n + 1) / 2;
        if n > 1 {
            p = p.mul(p);
        }
    }
    q[0]
}

// ---------------------------------------------------------------------------------------------
// f64 kernels
// ---------------------------------------------------------------------------------------------

pub(crate) mod k64 {
    use super::{estrin64, L64};

    const LOG2E: f64 = core::f64::consts::LOG2_E;
    /// ln 2 split: HI has 32 significant bits (k·HI exact for |k| < 2^21), LO = ln2 − HI.
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    /// 1.5·2^52: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f64 = 6755399441055744.0;
    const ABS_MASK: i64 = 0x7fff_ffff_ffff_ffff;
    const SIGN_MASK: i64 = i64::MIN;

    #[inline(always)]
    fn abs<V: L64>(x: V) -> V {
        V::from_bits(V::iand(x.bits(), V::is(ABS_MASK)))
    }

    /// keep NaN inputs unchanged
    #[inline(always)]
    fn nan_pass<V: L64>(x: V, r: V) -> V {
        V::sel(x.ne(x), x, r)
    }

    /// Reduction x = k·ln2 + r. Returns (r, t) where t = k + MAGIC (k in low bits).
    #[inline(always)]
    fn reduce<V: L64>(x: V) -> (V, V) {
        let t = x.mul(V::s(LOG2E)).add(V::s(MAGIC));
        let kf = t.sub(V::s(MAGIC));
        let r = x.sub(kf.mul(V::s(LN2_HI))).sub(kf.mul(V::s(LN2_LO)));
        (r, t)
    }

    /// e^r − 1 − r = r²·P(r) (Taylor through r^13), |r| ≤ 0.35.
    #[inline(always)]
    fn expm1_tail<V: L64>(r: V) -> V {
        const C: [f64; 12] = [
            1.0 / 2.0,
            1.0 / 6.0,
            1.0 / 24.0,
            1.0 / 120.0,
            1.0 / 720.0,
            1.0 / 5040.0,
            1.0 / 40320.0,
            1.0 / 362880.0,
            1.0 / 3628800.0,
            1.0 / 39916800.0,
            1.0 / 479001600.0,
            1.0 / 6227020800.0,
        ];
        r.mul(r).mul(estrin64(r, &C))
    }

    /// 2^k as a float for k in [-1022, 1023] held in integer lanes.
    #[inline(always)]
    fn pow2i<V: L64>(k: V::I) -> V {
        V::from_bits(V::ishl(V::iadd(k, V::is(1023)), 52))
    }

    #[inline(always)]
    pub fn exp<V: L64>(x: V) -> V {
        // clamp: beyond the thresholds the result is inf / 0 after scaling. NaN passes.
        let xc = x.pmin(V::s(709.8));
        let xc = xc.pmax(V::s(-746.0));
        let (r, t) = reduce(xc);
        let y = V::s(1.0).add(r.add(expm1_tail(r)));
        let k = V::isub(t.bits(), V::s(MAGIC).bits());
        let k1 = V::ishr_s(k, 1);
        let k2 = V::isub(k, k1);
        let res = y.mul(pow2i::<V>(k1)).mul(pow2i::<V>(k2));
        nan_pass(x, res)
    }

    #[inline(always)]
    pub fn expm1<V: L64>(x: V) -> V {
        // |x| ≤ 40: 2^k·(e^r − 1) + (2^k − 1); above 40, e^x − 1 = exp(x) (−1 below half an ulp).
        let xc = x.pmin(V::s(40.0));
        let xc = xc.pmax(V::s(-40.0));
        let (r, t) = reduce(xc);
        let e = r.add(expm1_tail(r));
        let k = V::isub(t.bits(), V::s(MAGIC).bits());
        let s = pow2i::<V>(k);
        let small = s.mul(e).add(s.sub(V::s(1.0)));
        let big = exp(x).sub(V::s(1.0));
        let res = V::sel(x.gt(V::s(40.0)), big, small);
        let res = V::sel(x.eq(V::s(0.0)), x, res); // keeps −0
        nan_pass(x, res)
    }

    /// ln x for finite x > 0 normal or subnormal; garbage otherwise (callers select).
    #[inline(always)]
    fn ln_core<V: L64>(x: V) -> V {
        let tiny = x.lt(V::s(f64::MIN_POSITIVE));
        let xs = V::sel(tiny, x.mul(V::s(18014398509481984.0)), x); // 2^54
        let ebias = V::sel(tiny, V::s(1023.0 + 54.0), V::s(1023.0));
        // shift so that the mantissa lands in [√½, √2)
        let ix = V::iadd(xs.bits(), V::is(0x3ff0_0000_0000_0000 - 0x3fe6_a09e_667f_3bcd));
        let eu = V::ishr_u(ix, 52);
        let ef = V::from_bits(V::ior(eu, V::is(0x4330_0000_0000_0000))).sub(V::s(4503599627370496.0));
        let e = ef.sub(ebias);
        let mb = V::iadd(V::iand(ix, V::is(0x000f_ffff_ffff_ffff)), V::is(0x3fe6_a09e_667f_3bcd));
        let f = V::from_bits(mb).sub(V::s(1.0));
        let l = log1p_red(f);
        e.mul(V::s(LN2_LO)).add(l).add(e.mul(V::s(LN2_HI)))
    }

    /// ln(1+f) for f ∈ [√½−1, √2−1].
    #[inline(always)]
    fn log1p_red<V: L64>(f: V) -> V {
        let s = f.div(V::s(2.0).add(f));
        let z = s.mul(s);
        // R(z) = Σ_{n=1..11} 2 z^n/(2n+1)
        const C: [f64; 11] = [
            2.0 / 3.0,
            2.0 / 5.0,
            2.0 / 7.0,
            2.0 / 9.0,
            2.0 / 11.0,
            2.0 / 13.0,
            2.0 / 15.0,
            2.0 / 17.0,
            2.0 / 19.0,
            2.0 / 21.0,
            2.0 / 23.0,
        ];
        let r = z.mul(estrin64(z, &C));
        f.sub(s.mul(f.sub(r)))
    }

    #[inline(always)]
    pub fn ln<V: L64>(x: V) -> V {
        let res = ln_core(x);
        let res = V::sel(x.eq(V::s(f64::INFINITY)), x, res);
        let res = V::sel(x.lt(V::s(0.0)), V::s(f64::NAN), res);
        let res = V::sel(x.eq(V::s(0.0)), V::s(f64::NEG_INFINITY), res);
        nan_pass(x, res)
    }

    /// ln(1+u) for u ∈ [0, 1] (no special cases).
    #[inline(always)]
    fn log1p_unit<V: L64>(u: V) -> V {
        let w = V::s(1.0).add(u);
        let c = u.sub(w.sub(V::s(1.0)));
        ln_core(w).add(c.div(w))
    }

    #[inline(always)]
    pub fn log1p<V: L64>(u: V) -> V {
        let w = V::s(1.0).add(u);
        let c = u.sub(w.sub(V::s(1.0)));
        let res = ln_core(w).add(c.div(w));
        let res = V::sel(u.eq(V::s(f64::INFINITY)), u, res);
        let res = V::sel(u.lt(V::s(-1.0)), V::s(f64::NAN), res);
        let res = V::sel(u.eq(V::s(-1.0)), V::s(f64::NEG_INFINITY), res);
        let res = V::sel(u.eq(V::s(0.0)), u, res); // keeps −0
        nan_pass(u, res)
    }

    /// |x| below which tanh is a polynomial (94-98% of an ode_demo hidden layer's inputs).
    const TANH_POLY: f64 = 0.5;

    /// tanh: for |x| < TANH_POLY, x + x·z·P(z) with z = x² (P: a 10-term Chebyshev fit of
    /// (tanh x − x)/x³ on z ∈ [0, ¼], error 4e-17; no reduction, no division, ≤ 1 ulp); else
    /// `tanh_exp`. A lane's result depends only on its own x (the select), so the scalar and the
    /// simd128 paths agree bit for bit; whole vectors on one side skip the other.
    #[inline(always)]
    pub fn tanh<V: L64>(x: V) -> V {
        let ax = abs(x);
        let small = ax.lt(V::s(TANH_POLY));
        if V::all(small) {
            return tanh_poly(x, ax);
        }
        let big = tanh_exp(x);
        if V::any(small) { V::sel(small, tanh_poly(x, ax), big) } else { big }
    }

    #[inline(always)]
    fn tanh_poly<V: L64>(x: V, ax: V) -> V {
        const P: [f64; 10] = [
            -0.3333333333333333,
            0.13333333333329825,
            -0.05396825396361009,
            0.021869488297234514,
            -0.008863229270067843,
            0.0035920334653723926,
            -0.001454959384380466,
            0.0005849653729022644,
            -0.00022107222975864633,
            5.946956589774769e-05,
        ];
        let z = ax.mul(ax);
        let r = ax.add(ax.mul(z.mul(estrin64(z, &P))));
        // on |x| with x's sign put back: tanh(−0) = −0
        V::from_bits(V::ior(r.bits(), V::iand(x.bits(), V::is(SIGN_MASK))))
    }

    /// tanh with one reduction and one division (algebra in the module comment).
    #[inline(always)]
    fn tanh_exp<V: L64>(x: V) -> V {
        // r·coth(r/2) = 2 + z·P(z), z = r² ≤ (ln2/2)²: a Chebyshev fit of the Bernoulli series
        // (relative error of 2 + z·P below 4e-18)
        const P: [f64; 5] = [
            0.1666666666666666,
            -0.002777777777756182,
            6.613756470334652e-05,
            -1.6534058035606199e-06,
            4.143671388885887e-08,
        ];
        let ax = abs(x).pmin(V::s(20.0)); // tanh(20) rounds to 1
        // reduce(−2|x|) with ax·(−2·log2 e) (the same product, one multiplication shorter)
        let t = ax.mul(V::s(-2.0 * LOG2E)).add(V::s(MAGIC));
        let kf = t.sub(V::s(MAGIC));
        let r = ax.mul(V::s(-2.0)).sub(kf.mul(V::s(LN2_HI))).sub(kf.mul(V::s(LN2_LO)));
        // s = 2^k straight from t's bits: (k + 1023) << 52
        let s = V::from_bits(V::ishl(V::iadd(t.bits(), V::is(1023 - MAGIC.to_bits() as i64)), 52));
        let z = r.mul(r);
        let d = z.mul(estrin64(z, &P)).sub(r); // e^r − 1 = 2r / (2 + d)
        let sn = s.mul(r.add(r));
        let (sm, sp) = (s.sub(V::s(1.0)), s.add(V::s(1.0)));
        let num = sm.add(sm).add(sn.add(sm.mul(d)));
        let den = sp.add(sp).add(sn.add(sp.mul(d)));
        let q = num.div(den); // −tanh|x|
        let res = V::from_bits(V::ior(abs(q).bits(), V::iand(x.bits(), V::is(SIGN_MASK))));
        nan_pass(x, res)
    }

    #[inline(always)]
    pub fn sigmoid<V: L64>(x: V) -> V {
        let e = exp(V::s(0.0).sub(abs(x)));
        let d = V::s(1.0).add(e);
        let res = V::sel(x.lt(V::s(0.0)), e.div(d), V::s(1.0).div(d));
        nan_pass(x, res)
    }

    #[inline(always)]
    pub fn softplus<V: L64>(x: V) -> V {
        let e = exp(V::s(0.0).sub(abs(x)));
        let l = log1p_unit(e);
        let m = V::sel(x.gt(V::s(0.0)), x, V::s(0.0));
        nan_pass(x, m.add(l))
    }

    #[inline(always)]
    pub fn relu<V: L64>(x: V) -> V {
        x.pmax(V::s(0.0))
    }

    #[inline(always)]
    pub fn elu<V: L64>(x: V) -> V {
        V::sel(x.gt(V::s(0.0)), x, expm1(x))
    }

    #[inline(always)]
    pub fn cube<V: L64>(x: V) -> V {
        x.mul(x).mul(x)
    }
}

// ---------------------------------------------------------------------------------------------
// f32 kernels (native single-precision arithmetic)
// ---------------------------------------------------------------------------------------------

pub(crate) mod k32 {
    use super::{estrin32, L32};

    const LOG2E: f32 = core::f32::consts::LOG2_E;
    /// ln 2 split: HI has 16 significant bits (k·HI exact for |k| < 2^8).
    const LN2_HI: f32 = 0.693145751953125;
    const LN2_LO: f32 = (core::f64::consts::LN_2 - 0.693145751953125_f64) as f32;
    const MAGIC: f32 = 12582912.0; // 1.5·2^23
    const ABS_MASK: i32 = 0x7fff_ffff;
    const SIGN_MASK: i32 = i32::MIN;

    #[inline(always)]
    fn abs<V: L32>(x: V) -> V {
        V::from_bits(V::iand(x.bits(), V::is(ABS_MASK)))
    }

    #[inline(always)]
    fn nan_pass<V: L32>(x: V, r: V) -> V {
        V::sel(x.ne(x), x, r)
    }

    #[inline(always)]
    fn reduce<V: L32>(x: V) -> (V, V) {
        let t = x.mul(V::s(LOG2E)).add(V::s(MAGIC));
        let kf = t.sub(V::s(MAGIC));
        let r = x.sub(kf.mul(V::s(LN2_HI))).sub(kf.mul(V::s(LN2_LO)));
        (r, t)
    }

    /// e^r − 1 − r = r²·P(r) (Taylor through r^8).
    #[inline(always)]
    fn expm1_tail<V: L32>(r: V) -> V {
        const C: [f32; 7] = [
            1.0 / 2.0,
            1.0 / 6.0,
            1.0 / 24.0,
            1.0 / 120.0,
            1.0 / 720.0,
            1.0 / 5040.0,
            1.0 / 40320.0,
        ];
        r.mul(r).mul(estrin32(r, &C))
    }

    #[inline(always)]
    fn pow2i<V: L32>(k: V::I) -> V {
        V::from_bits(V::ishl(V::iadd(k, V::is(127)), 23))
    }

    #[inline(always)]
    pub fn exp<V: L32>(x: V) -> V {
        let xc = x.pmin(V::s(89.0));
        let xc = xc.pmax(V::s(-110.0));
        let (r, t) = reduce(xc);
        let y = V::s(1.0).add(r.add(expm1_tail(r)));
        let k = V::isub(t.bits(), V::s(MAGIC).bits());
        let k1 = V::ishr_s(k, 1);
        let k2 = V::isub(k, k1);
        let res = y.mul(pow2i::<V>(k1)).mul(pow2i::<V>(k2));
        nan_pass(x, res)
    }

    #[inline(always)]
    fn expm1_nonpos<V: L32>(x: V) -> V {
        let xc = x.pmax(V::s(-20.0));
        let (r, t) = reduce(xc);
        let e = r.add(expm1_tail(r));
        let k = V::isub(t.bits(), V::s(MAGIC).bits());
        let s = pow2i::<V>(k);
        s.mul(e).add(s.sub(V::s(1.0)))
    }

    #[inline(always)]
    pub fn expm1<V: L32>(x: V) -> V {
        let xc = x.pmin(V::s(20.0));
        let xc = xc.pmax(V::s(-20.0));
        let (r, t) = reduce(xc);
        let e = r.add(expm1_tail(r));
        let k = V::isub(t.bits(), V::s(MAGIC).bits());
        let s = pow2i::<V>(k);
        let small = s.mul(e).add(s.sub(V::s(1.0)));
        let big = exp(x).sub(V::s(1.0));
        let res = V::sel(x.gt(V::s(20.0)), big, small);
        let res = V::sel(x.eq(V::s(0.0)), x, res);
        nan_pass(x, res)
    }

    #[inline(always)]
    fn ln_core<V: L32>(x: V) -> V {
        let tiny = x.lt(V::s(f32::MIN_POSITIVE));
        let xs = V::sel(tiny, x.mul(V::s(33554432.0)), x); // 2^25
        let ebias = V::sel(tiny, V::s(127.0 + 25.0), V::s(127.0));
        let ix = V::iadd(xs.bits(), V::is(0x3f80_0000 - 0x3f35_04f3));
        let eu = V::ishr_u(ix, 23);
        let ef = V::from_bits(V::ior(eu, V::is(0x4b00_0000))).sub(V::s(8388608.0));
        let e = ef.sub(ebias);
        let mb = V::iadd(V::iand(ix, V::is(0x007f_ffff)), V::is(0x3f35_04f3));
        let f = V::from_bits(mb).sub(V::s(1.0));
        let l = log1p_red(f);
        e.mul(V::s(LN2_LO)).add(l).add(e.mul(V::s(LN2_HI)))
    }

    #[inline(always)]
    fn log1p_red<V: L32>(f: V) -> V {
        let s = f.div(V::s(2.0).add(f));
        let z = s.mul(s);
        const C: [f32; 5] = [2.0 / 3.0, 2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0, 2.0 / 11.0];
        let r = z.mul(estrin32(z, &C));
        f.sub(s.mul(f.sub(r)))
    }

    #[inline(always)]
    pub fn ln<V: L32>(x: V) -> V {
        let res = ln_core(x);
        let res = V::sel(x.eq(V::s(f32::INFINITY)), x, res);
        let res = V::sel(x.lt(V::s(0.0)), V::s(f32::NAN), res);
        let res = V::sel(x.eq(V::s(0.0)), V::s(f32::NEG_INFINITY), res);
        nan_pass(x, res)
    }

    #[inline(always)]
    fn log1p_unit<V: L32>(u: V) -> V {
        let w = V::s(1.0).add(u);
        let c = u.sub(w.sub(V::s(1.0)));
        ln_core(w).add(c.div(w))
    }

    #[inline(always)]
    pub fn log1p<V: L32>(u: V) -> V {
        let w = V::s(1.0).add(u);
        let c = u.sub(w.sub(V::s(1.0)));
        let res = ln_core(w).add(c.div(w));
        let res = V::sel(u.eq(V::s(f32::INFINITY)), u, res);
        let res = V::sel(u.lt(V::s(-1.0)), V::s(f32::NAN), res);
        let res = V::sel(u.eq(V::s(-1.0)), V::s(f32::NEG_INFINITY), res);
        let res = V::sel(u.eq(V::s(0.0)), u, res);
        nan_pass(u, res)
    }

    /// f32 keeps the two-division form (the f64 kernel's single-division form reaches 3 ulp in f32).
    #[inline(always)]
    pub fn tanh<V: L32>(x: V) -> V {
        let ax = abs(x);
        let small = ax.lt(V::s(0.5));
        if V::all(small) {
            return tanh_poly(x, ax);
        }
        let big = tanh_exp(x, ax);
        if V::any(small) { V::sel(small, tanh_poly(x, ax), big) } else { big }
    }

    /// As k64's: x + x³·P(x²) for |x| < ½ (5-term Chebyshev fit, error 5e-9, ≤ 1 ulp).
    #[inline(always)]
    fn tanh_poly<V: L32>(x: V, ax: V) -> V {
        const P: [f32; 5] = [-0.3333333134651184, 0.1333322525024414, -0.05393346771597862, 0.021470682695508003, -0.006942941807210445];
        let z = ax.mul(ax);
        let r = ax.add(ax.mul(z.mul(estrin32(z, &P))));
        V::from_bits(V::ior(r.bits(), V::iand(x.bits(), V::is(SIGN_MASK))))
    }

    #[inline(always)]
    fn tanh_exp<V: L32>(x: V, ax: V) -> V {
        let e = expm1_nonpos(ax.mul(V::s(-2.0)));
        let t = V::s(0.0).sub(e).div(e.add(V::s(2.0)));
        let res = V::from_bits(V::ior(abs(t).bits(), V::iand(x.bits(), V::is(SIGN_MASK))));
        nan_pass(x, res)
    }

    #[inline(always)]
    pub fn sigmoid<V: L32>(x: V) -> V {
        let e = exp(V::s(0.0).sub(abs(x)));
        let d = V::s(1.0).add(e);
        let res = V::sel(x.lt(V::s(0.0)), e.div(d), V::s(1.0).div(d));
        nan_pass(x, res)
    }

    #[inline(always)]
    pub fn softplus<V: L32>(x: V) -> V {
        let e = exp(V::s(0.0).sub(abs(x)));
        let l = log1p_unit(e);
        let m = V::sel(x.gt(V::s(0.0)), x, V::s(0.0));
        nan_pass(x, m.add(l))
    }

    #[inline(always)]
    pub fn relu<V: L32>(x: V) -> V {
        x.pmax(V::s(0.0))
    }

    #[inline(always)]
    pub fn elu<V: L32>(x: V) -> V {
        V::sel(x.gt(V::s(0.0)), x, expm1(x))
    }

    #[inline(always)]
    pub fn cube<V: L32>(x: V) -> V {
        x.mul(x).mul(x)
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise activation selector (shared with tensor/ and nn/)
// ---------------------------------------------------------------------------------------------

/// Elementwise functions that can be fused into gemm epilogues and used as layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    Identity,
    Tanh,
    Relu,
    Softplus,
    Sigmoid,
    /// ELU with alpha = 1: x if x > 0 else e^x − 1.
    Elu,
    /// x³ elementwise (input transform of torchdiffeq's ode_demo).
    Cube,
}

#[inline(always)]
pub(crate) fn act64<V: L64>(a: Act, x: V) -> V {
    match a {
        Act::Identity => x,
        Act::Tanh => k64::tanh(x),
        Act::Relu => k64::relu(x),
        Act::Softplus => k64::softplus(x),
        Act::Sigmoid => k64::sigmoid(x),
        Act::Elu => k64::elu(x),
        Act::Cube => k64::cube(x),
    }
}

#[inline(always)]
pub(crate) fn act32<V: L32>(a: Act, x: V) -> V {
    match a {
        Act::Identity => x,
        Act::Tanh => k32::tanh(x),
        Act::Relu => k32::relu(x),
        Act::Softplus => k32::softplus(x),
        Act::Sigmoid => k32::sigmoid(x),
        Act::Elu => k32::elu(x),
        Act::Cube => k32::cube(x),
    }
}

// ---------------------------------------------------------------------------------------------
// Slice maps: SIMD body + scalar tail (same kernel), or the scalar kernel everywhere.
// ---------------------------------------------------------------------------------------------

macro_rules! map64 {
    ($xs:expr, |$v:ident| $body:expr) => {{
        let xs: &mut [f64] = $xs;
        #[allow(unused_mut)]
        let mut i = 0usize;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            use core::arch::wasm32::*;
            use simd::F64x2;
            let n2 = xs.len() & !1;
            let n4 = xs.len() & !3;
            let p = xs.as_mut_ptr();
            while i < n4 {
                // two independent vectors per iteration (instruction-level parallelism)
                // SAFETY: i + 4 <= len.
                unsafe {
                    let $v = F64x2(v128_load(p.add(i) as *const v128));
                    let r0: F64x2 = $body;
                    let $v = F64x2(v128_load(p.add(i + 2) as *const v128));
                    let r1: F64x2 = $body;
                    v128_store(p.add(i) as *mut v128, r0.0);
                    v128_store(p.add(i + 2) as *mut v128, r1.0);
                }
                i += 4;
            }
            while i < n2 {
                // SAFETY: i + 2 <= len; unaligned v128 access is allowed in wasm.
                unsafe {
                    let $v = F64x2(v128_load(p.add(i) as *const v128));
                    let r: F64x2 = $body;
                    v128_store(p.add(i) as *mut v128, r.0);
                }
                i += 2;
            }
        }
        for x in &mut xs[i..] {
            let $v: f64 = *x;
            *x = $body;
        }
    }};
}

macro_rules! map32 {
    ($xs:expr, |$v:ident| $body:expr) => {{
        let xs: &mut [f32] = $xs;
        #[allow(unused_mut)]
        let mut i = 0usize;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            use core::arch::wasm32::*;
            use simd::F32x4;
            let n4 = xs.len() & !3;
            let n8 = xs.len() & !7;
            let p = xs.as_mut_ptr();
            while i < n8 {
                // SAFETY: i + 8 <= len.
                unsafe {
                    let $v = F32x4(v128_load(p.add(i) as *const v128));
                    let r0: F32x4 = $body;
                    let $v = F32x4(v128_load(p.add(i + 4) as *const v128));
                    let r1: F32x4 = $body;
                    v128_store(p.add(i) as *mut v128, r0.0);
                    v128_store(p.add(i + 4) as *mut v128, r1.0);
                }
                i += 8;
            }
            while i < n4 {
                // SAFETY: i + 4 <= len.
                unsafe {
                    let $v = F32x4(v128_load(p.add(i) as *const v128));
                    let r: F32x4 = $body;
                    v128_store(p.add(i) as *mut v128, r.0);
                }
                i += 4;
            }
        }
        for x in &mut xs[i..] {
            let $v: f32 = *x;
            *x = $body;
        }
    }};
}

/// Deterministic transcendental functions for the state element types.
/// Scalar methods and in-place slice methods give identical bits per element.
pub trait Float: Real {
    fn exp(self) -> Self;
    fn expm1(self) -> Self;
    fn ln(self) -> Self;
    fn log1p(self) -> Self;
    fn tanh(self) -> Self;
    fn sigmoid(self) -> Self;
    fn softplus(self) -> Self;
    fn elu(self) -> Self;
    /// Apply an [`Act`] to one value.
    fn act(self, a: Act) -> Self;
    fn exp_slice(xs: &mut [Self]);
    fn expm1_slice(xs: &mut [Self]);
    fn ln_slice(xs: &mut [Self]);
    fn log1p_slice(xs: &mut [Self]);
    fn tanh_slice(xs: &mut [Self]);
    fn sigmoid_slice(xs: &mut [Self]);
    fn softplus_slice(xs: &mut [Self]);
    /// Apply an [`Act`] in place to every element.
    fn act_slice(a: Act, xs: &mut [Self]);
}

impl Float for f64 {
    #[inline]
    fn exp(self) -> Self {
        k64::exp(self)
    }
    #[inline]
    fn expm1(self) -> Self {
        k64::expm1(self)
    }
    #[inline]
    fn ln(self) -> Self {
        k64::ln(self)
    }
    #[inline]
    fn log1p(self) -> Self {
        k64::log1p(self)
    }
    #[inline]
    fn tanh(self) -> Self {
        k64::tanh(self)
    }
    #[inline]
    fn sigmoid(self) -> Self {
        k64::sigmoid(self)
    }
    #[inline]
    fn softplus(self) -> Self {
        k64::softplus(self)
    }
    #[inline]
    fn elu(self) -> Self {
        k64::elu(self)
    }
    #[inline]
    fn act(self, a: Act) -> Self {
        act64(a, self)
    }
    fn exp_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::exp(v))
    }
    fn expm1_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::expm1(v))
    }
    fn ln_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::ln(v))
    }
    fn log1p_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::log1p(v))
    }
    fn tanh_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::tanh(v))
    }
    fn sigmoid_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::sigmoid(v))
    }
    fn softplus_slice(xs: &mut [Self]) {
        map64!(xs, |v| k64::softplus(v))
    }
    fn act_slice(a: Act, xs: &mut [Self]) {
        match a {
            Act::Identity => {}
            Act::Tanh => map64!(xs, |v| k64::tanh(v)),
            Act::Relu => map64!(xs, |v| k64::relu(v)),
            Act::Softplus => map64!(xs, |v| k64::softplus(v)),
            Act::Sigmoid => map64!(xs, |v| k64::sigmoid(v)),
            Act::Elu => map64!(xs, |v| k64::elu(v)),
            Act::Cube => map64!(xs, |v| k64::cube(v)),
        }
    }
}

impl Float for f32 {
    #[inline]
    fn exp(self) -> Self {
        k32::exp(self)
    }
    #[inline]
    fn expm1(self) -> Self {
        k32::expm1(self)
    }
    #[inline]
    fn ln(self) -> Self {
        k32::ln(self)
    }
    #[inline]
    fn log1p(self) -> Self {
        k32::log1p(self)
    }
    #[inline]
    fn tanh(self) -> Self {
        k32::tanh(self)
    }
    #[inline]
    fn sigmoid(self) -> Self {
        k32::sigmoid(self)
    }
    #[inline]
    fn softplus(self) -> Self {
        k32::softplus(self)
    }
    #[inline]
    fn elu(self) -> Self {
        k32::elu(self)
    }
    #[inline]
    fn act(self, a: Act) -> Self {
        act32(a, self)
    }
    fn exp_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::exp(v))
    }
    fn expm1_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::expm1(v))
    }
    fn ln_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::ln(v))
    }
    fn log1p_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::log1p(v))
    }
    fn tanh_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::tanh(v))
    }
    fn sigmoid_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::sigmoid(v))
    }
    fn softplus_slice(xs: &mut [Self]) {
        map32!(xs, |v| k32::softplus(v))
    }
    fn act_slice(a: Act, xs: &mut [Self]) {
        match a {
            Act::Identity => {}
            Act::Tanh => map32!(xs, |v| k32::tanh(v)),
            Act::Relu => map32!(xs, |v| k32::relu(v)),
            Act::Softplus => map32!(xs, |v| k32::softplus(v)),
            Act::Sigmoid => map32!(xs, |v| k32::sigmoid(v)),
            Act::Elu => map32!(xs, |v| k32::elu(v)),
            Act::Cube => map32!(xs, |v| k32::cube(v)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sin / cos of an angle given in turns (f64): (sin 2πu, cos 2πu). Used by the normal sampler.
// ---------------------------------------------------------------------------------------------

/// `(sin(2π·u), cos(2π·u))` for finite `u`, from basic operations only. The reduction to a
/// quarter turn is exact (u − round(u) and ·4 are exact); the remaining angle |θ| ≤ π/4 goes
/// through Taylor series to degree 23/22; quadrant rotation is a swap/negation. Non-finite `u`
/// gives NaN.
pub fn sin_cos_turns(u: f64) -> (f64, f64) {
    if !u.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let uf = u - round_half_even(u); // exact, in [-0.5, 0.5]
    let v = uf * 4.0; // exact, in [-2, 2]
    let q = round_half_even(v);
    let f = v - q; // exact, in [-0.5, 0.5]
    let qm = (q as i64).rem_euclid(4);
    let theta = f * core::f64::consts::FRAC_PI_2; // |θ| ≤ π/4
    let t2 = theta * theta;
    let mut sp = 0.0f64;
    let mut cp = 0.0f64;
    let mut k = 11;
    while k > 0 {
        sp = (sp + SIN_C[k]) * t2;
        cp = (cp + COS_C[k]) * t2;
        k -= 1;
    }
    let s = theta + theta * sp;
    let c = 1.0 + cp;
    match qm {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Round to the nearest integer, ties to even (basic operations only).
#[inline]
pub fn round_half_even(x: f64) -> f64 {
    const BIG: f64 = 4503599627370496.0; // 2^52
    let a = if x < 0.0 { -x } else { x };
    if !(a < BIG) {
        return x;
    }
    let r = (a + BIG) - BIG;
    if x < 0.0 {
        -r
    } else {
        r
    }
}

const fn fact(n: usize) -> f64 {
    let mut d = 1.0f64;
    let mut i = 2;
    while i <= n {
        d *= i as f64;
        i += 1;
    }
    d
}

const fn sin_coefs() -> [f64; 12] {
    // index k: (-1)^k / (2k+1)!
    let mut c = [0.0f64; 12];
    let mut k = 0;
    while k < 12 {
        let v = 1.0 / fact(2 * k + 1);
        c[k] = if k % 2 == 1 { -v } else { v };
        k += 1;
    }
    c
}

const fn cos_coefs() -> [f64; 12] {
    let mut c = [0.0f64; 12];
    let mut k = 0;
    while k < 12 {
        let v = 1.0 / fact(2 * k);
        c[k] = if k % 2 == 1 { -v } else { v };
        k += 1;
    }
    c
}

const SIN_C: [f64; 12] = sin_coefs();
const COS_C: [f64; 12] = cos_coefs();

#[cfg(test)]
mod tests {
    use super::*;

    fn ord64(x: f64) -> i128 {
        let b = x.to_bits() as i64;
        if b < 0 {
            -((b & i64::MAX) as i128)
        } else {
            b as i128
        }
    }
    fn ulp64(a: f64, b: f64) -> u64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
        }
        (ord64(a) - ord64(b)).unsigned_abs().min(u64::MAX as u128) as u64
    }
    fn ulp32(a: f32, b: f32) -> u64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
        }
        let o = |x: f32| {
            let b = x.to_bits() as i32;
            if b < 0 {
                -((b & i32::MAX) as i64)
            } else {
                b as i64
            }
        };
        (o(a) - o(b)).unsigned_abs()
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut z = self.0;
            z = (z ^ (z >> 33)).wrapping_mul(0xff51afd7ed558ccd);
            z ^ (z >> 33)
        }
        fn unif(&mut self, a: f64, b: f64) -> f64 {
            a + (b - a) * ((self.next() >> 11) as f64 / 9007199254740992.0)
        }
    }

    /// Test points: uniform in several ranges, log-uniform magnitudes, random bit patterns,
    /// subnormals and special values.
    fn points64(lo: f64, hi: f64) -> Vec<f64> {
        let mut g = Lcg(12345);
        let mut v = vec![
            0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN,
            f64::MIN_POSITIVE, -f64::MIN_POSITIVE, 5e-324, -5e-324, 1e-310, -1e-310, f64::MAX,
            -f64::MAX, 1e-300, 1e-20, -1e-20, 709.78, 709.7827128933840, 709.79, -708.39,
            -745.13, -745.14, -744.0, 37.0, -37.0, 19.0, 20.0, -40.0, 40.0, 710.0, -750.0,
            0.34657359027997264, -0.34657359027997264, 0.6931471805599453, 1e-8, -1e-8,
        ];
        for _ in 0..200_000 {
            v.push(g.unif(lo, hi));
        }
        for _ in 0..100_000 {
            v.push(g.unif(-3.0, 3.0));
        }
        for _ in 0..100_000 {
            // log-uniform magnitudes 1e-320 .. 1e308, random sign
            let e = g.unif(-320.0, 308.0);
            let m = 10f64.powf(e);
            v.push(if g.next() & 1 == 0 { m } else { -m });
        }
        for _ in 0..100_000 {
            let x = f64::from_bits(g.next());
            if x.is_finite() {
                v.push(x);
            }
        }
        v
    }

    fn points32(lo: f32, hi: f32) -> Vec<f32> {
        let mut g = Lcg(777);
        let mut v = vec![
            0.0, -0.0, 1.0, -1.0, 0.5, 2.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN,
            f32::MIN_POSITIVE, 1e-45, -1e-45, 1e-40, f32::MAX, -f32::MAX, 88.72, 88.7228,
            88.73, -87.33, -103.97, -103.98, -104.0, -110.0, 9.0, 10.0, -20.0, 20.0,
        ];
        for _ in 0..300_000 {
            v.push(g.unif(lo as f64, hi as f64) as f32);
        }
        for _ in 0..100_000 {
            v.push(g.unif(-3.0, 3.0) as f32);
        }
        for _ in 0..100_000 {
            let e = g.unif(-45.0, 38.0);
            let m = 10f64.powf(e) as f32;
            v.push(if g.next() & 1 == 0 { m } else { -m });
        }
        for _ in 0..100_000 {
            let x = f32::from_bits(g.next() as u32);
            if x.is_finite() {
                v.push(x);
            }
        }
        v
    }

    fn ref_sigmoid(x: f64) -> f64 {
        if x < 0.0 {
            let e = x.exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + (-x).exp())
        }
    }
    fn ref_softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    fn check64(name: &str, pts: &[f64], ours: fn(f64) -> f64, slice: fn(&mut [f64]), reference: fn(f64) -> f64, limit: u64) {
        let mut worst = 0u64;
        let mut at = 0.0;
        for &x in pts {
            let d = ulp64(ours(x), reference(x));
            if d > worst {
                worst = d;
                at = x;
            }
        }
        // slice form gives identical bits
        let mut v = pts.to_vec();
        slice(&mut v);
        for (i, &x) in pts.iter().enumerate() {
            assert_eq!(v[i].to_bits(), ours(x).to_bits(), "{name} slice != scalar at {x:e}");
        }
        eprintln!("f64 {name:9}: max error {worst} ulp (at x = {at:e}) over {} points", pts.len());
        assert!(worst <= limit, "{name}: {worst} ulp at {at:e} (ours {:e}, ref {:e})", ours(at), reference(at));
    }

    fn check32(name: &str, pts: &[f32], ours: fn(f32) -> f32, slice: fn(&mut [f32]), reference: fn(f64) -> f64, limit: u64) {
        let mut worst = 0u64;
        let mut at = 0.0;
        for &x in pts {
            let d = ulp32(ours(x), reference(x as f64) as f32);
            if d > worst {
                worst = d;
                at = x;
            }
        }
        let mut v = pts.to_vec();
        slice(&mut v);
        for (i, &x) in pts.iter().enumerate() {
            assert_eq!(v[i].to_bits(), ours(x).to_bits(), "{name} slice != scalar at {x:e}");
        }
        eprintln!("f32 {name:9}: max error {worst} ulp (at x = {at:e}) over {} points", pts.len());
        assert!(worst <= limit, "{name}: {worst} ulp at {at:e} (ours {:e}, ref {:e})", ours(at), reference(at as f64) as f32);
    }

    #[test]
    fn exp_f64() {
        check64("exp", &points64(-750.0, 750.0), |x| Float::exp(x), f64::exp_slice, f64::exp, 4);
    }
    #[test]
    fn expm1_f64() {
        check64("expm1", &points64(-50.0, 750.0), |x| Float::expm1(x), f64::expm1_slice, f64::exp_m1, 4);
    }
    #[test]
    fn ln_f64() {
        let mut p = points64(0.0, 1e6);
        let mut g = Lcg(9);
        for _ in 0..100_000 {
            p.push(g.unif(0.5, 2.0));
        }
        for _ in 0..50_000 {
            p.push(1.0 + g.unif(-1e-6, 1e-6));
        }
        check64("ln", &p, |x| Float::ln(x), f64::ln_slice, f64::ln, 4);
    }
    #[test]
    fn log1p_f64() {
        let mut p = points64(-1.0, 10.0);
        p.extend_from_slice(&[-1.0, -1.0 + 1e-16, -2.0]);
        check64("log1p", &p, |x| Float::log1p(x), f64::log1p_slice, f64::ln_1p, 4);
    }
    #[test]
    fn tanh_f64() {
        check64("tanh", &points64(-25.0, 25.0), |x| Float::tanh(x), f64::tanh_slice, f64::tanh, 4);
    }
    #[test]
    fn sigmoid_f64() {
        check64("sigmoid", &points64(-800.0, 800.0), |x| Float::sigmoid(x), f64::sigmoid_slice, ref_sigmoid, 4);
    }
    #[test]
    fn softplus_f64() {
        check64("softplus", &points64(-800.0, 800.0), |x| Float::softplus(x), f64::softplus_slice, ref_softplus, 4);
    }

    #[test]
    fn exp_f32() {
        check32("exp", &points32(-110.0, 95.0), |x| Float::exp(x), f32::exp_slice, f64::exp, 2);
    }
    #[test]
    fn expm1_f32() {
        check32("expm1", &points32(-30.0, 95.0), |x| Float::expm1(x), f32::expm1_slice, f64::exp_m1, 2);
    }
    #[test]
    fn ln_f32() {
        let mut p = points32(0.0, 1e6);
        let mut g = Lcg(10);
        for _ in 0..100_000 {
            p.push(g.unif(0.5, 2.0) as f32);
        }
        check32("ln", &p, |x| Float::ln(x), f32::ln_slice, f64::ln, 2);
    }
    #[test]
    fn log1p_f32() {
        check32("log1p", &points32(-1.0, 10.0), |x| Float::log1p(x), f32::log1p_slice, f64::ln_1p, 2);
    }
    #[test]
    fn tanh_f32() {
        check32("tanh", &points32(-12.0, 12.0), |x| Float::tanh(x), f32::tanh_slice, f64::tanh, 2);
    }
    #[test]
    fn sigmoid_f32() {
        check32("sigmoid", &points32(-110.0, 110.0), |x| Float::sigmoid(x), f32::sigmoid_slice, ref_sigmoid, 2);
    }
    #[test]
    fn softplus_f32() {
        check32("softplus", &points32(-110.0, 110.0), |x| Float::softplus(x), f32::softplus_slice, ref_softplus, 2);
    }

    #[test]
    fn specials_and_nan_payload() {
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        for f in [<f64 as Float>::exp, <f64 as Float>::ln, <f64 as Float>::tanh, <f64 as Float>::sigmoid, <f64 as Float>::softplus, <f64 as Float>::expm1, <f64 as Float>::log1p] {
            assert_eq!(f(nan).to_bits(), nan.to_bits());
        }
        assert_eq!(Float::exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(Float::exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(Float::exp(710.0), f64::INFINITY);
        assert_eq!(Float::ln(0.0), f64::NEG_INFINITY);
        assert!(Float::ln(-1.0f64).is_nan());
        assert_eq!(Float::ln(f64::INFINITY), f64::INFINITY);
        assert_eq!(Float::tanh(f64::INFINITY), 1.0);
        assert_eq!(Float::tanh(-0.0f64).to_bits(), (-0.0f64).to_bits());
        assert_eq!(Float::sigmoid(f64::NEG_INFINITY), 0.0);
        assert_eq!(Float::softplus(f64::INFINITY), f64::INFINITY);
        assert_eq!(Float::softplus(f64::NEG_INFINITY), 0.0);
        assert_eq!(Float::exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(Float::ln(0.0f32), f32::NEG_INFINITY);
        assert_eq!(Float::tanh(f32::NEG_INFINITY), -1.0);
    }

    #[test]
    fn sin_cos_turns_accuracy() {
        let mut g = Lcg(5);
        let mut ws = 0u64;
        let mut wc = 0u64;
        let mut worst_abs = 0.0f64;
        for i in 0..200_000 {
            let u = if i < 100_000 { g.unif(0.0, 1.0) } else { g.unif(-3.0, 3.0) };
            let (s, c) = sin_cos_turns(u);
            let th = 2.0 * core::f64::consts::PI * u;
            worst_abs = worst_abs.max((s - th.sin()).abs()).max((c - th.cos()).abs());
            if u > 0.0 && u < 1.0 / 16.0 {
                // only measure ulp where 2πu is exact enough for std to be a reference
                ws = ws.max(ulp64(s, th.sin()));
            }
            if u.abs() < 1.0 / 16.0 {
                wc = wc.max(ulp64(c, th.cos()));
            }
        }
        eprintln!("sin_cos_turns: max abs error {worst_abs:e}; ulp (|u|<1/16) sin {ws}, cos {wc}");
        assert!(worst_abs < 4e-15, "{worst_abs:e}"); // reference 2πu itself is rounded (|2πu| up to 19)
        assert_eq!(sin_cos_turns(0.25), (1.0, -0.0));
        assert_eq!(sin_cos_turns(0.0), (0.0, 1.0));
    }
}

/// x^y for x > 0 from our own exp and ln (deterministic on every target; used by the step-size
/// controller and the initial-step heuristic).
pub fn powf64(x: f64, y: f64) -> f64 {
    <f64 as Float>::exp(y * <f64 as Float>::ln(x))
}
