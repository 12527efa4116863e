//! Register-blocked gemm kernels.
//!
//! One general kernel: `C[i][j] (= | +=) Σ_p A(i,p)·B(p,j)`, then optionally `+ bias[j]` and an
//! activation, where `A(i,p) = a[i·ars + p·acs]` (any strides, so Xᵀ or dYᵀ need no copy) and B
//! is row-major with leading dimension `ldb`.
//!
//! Accumulation order (the determinism contract): every output element has ONE accumulator that
//! starts at 0 (or at the old C value when accumulating) and adds `A(i,p)·B(p,j)` for p = 0, 1,
//! …, k−1 in increasing order, each product and sum rounded separately (no FMA). The epilogue is
//! `act(acc + bias[j])`. The wasm simd128 path (4 rows × 2 vectors register tiles, vectorised
//! over j) and the portable fallback perform exactly this sequence per element, so their bits
//! are identical, and equal to a naive triple loop in the same order.

#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::math::Act;
use crate::tensor::Scalar;

/// Arguments of the raw kernel. Sizes/strides are trusted (validated by the public wrappers).
#[doc(hidden)]
pub struct GemmArgs<'a, R> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: &'a [R],
    pub ars: usize,
    pub acs: usize,
    pub b: &'a [R],
    pub ldb: usize,
    pub ldc: usize,
    pub accumulate: bool,
    pub bias: Option<&'a [R]>,
    pub act: Act,
}

/// Portable kernel: rows in blocks of 4 (B row reused 4 times), ikj order, per-element
/// sequential accumulation over p.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
pub(crate) fn gemm_portable<R: Scalar>(g: &GemmArgs<R>, c: &mut [R]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    let mut i = 0;
    while i < m {
        let rows = if m - i >= 4 { 4 } else { 1 };
        if !g.accumulate {
            for r in 0..rows {
                let o = (i + r) * g.ldc;
                for v in &mut c[o..o + n] {
                    *v = R::ZERO;
                }
            }
        }
        if rows == 4 {
            let (c0, rest) = c[i * g.ldc..].split_at_mut(g.ldc);
            let (c1, rest) = rest.split_at_mut(g.ldc);
            let (c2, rest) = rest.split_at_mut(g.ldc);
            let c3 = &mut rest[..n];
            let (c0, c1, c2) = (&mut c0[..n], &mut c1[..n], &mut c2[..n]);
            for p in 0..k {
                let a0 = g.a[i * g.ars + p * g.acs];
                let a1 = g.a[(i + 1) * g.ars + p * g.acs];
                let a2 = g.a[(i + 2) * g.ars + p * g.acs];
                let a3 = g.a[(i + 3) * g.ars + p * g.acs];
                let br = &g.b[p * g.ldb..p * g.ldb + n];
                for j in 0..n {
                    let bv = br[j];
                    c0[j] = c0[j] + a0 * bv;
                    c1[j] = c1[j] + a1 * bv;
                    c2[j] = c2[j] + a2 * bv;
                    c3[j] = c3[j] + a3 * bv;
                }
            }
        } else {
            let cr = &mut c[i * g.ldc..i * g.ldc + n];
            for p in 0..k {
                let a0 = g.a[i * g.ars + p * g.acs];
                let br = &g.b[p * g.ldb..p * g.ldb + n];
                for j in 0..n {
                    cr[j] = cr[j] + a0 * br[j];
                }
            }
        }
        if g.bias.is_some() || g.act != Act::Identity {
            for r in 0..rows {
                let cr = &mut c[(i + r) * g.ldc..(i + r) * g.ldc + n];
                if let Some(bias) = g.bias {
                    for j in 0..n {
                        cr[j] = cr[j] + bias[j];
                    }
                }
                R::act_slice(g.act, cr);
            }
        }
        i += rows;
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd {
    use super::GemmArgs;
    use crate::math::simd::{F32x4, F64x2};
    use crate::math::{act32, act64, Act};
    use crate::tensor::Scalar;
    use core::arch::wasm32::*;

    /// A SIMD vector of the element type E.
    pub(crate) trait Vk: Copy {
        type E: Scalar;
        const W: usize;
        unsafe fn ld(p: *const Self::E) -> Self;
        unsafe fn st(self, p: *mut Self::E);
        fn splat(e: Self::E) -> Self;
        fn zero() -> Self;
        fn vadd(self, o: Self) -> Self;
        fn vmul(self, o: Self) -> Self;
        fn vact(self, a: Act) -> Self;
        /// Columns j, j + 1 (the last two, narrower than a vector) of rows 0..r for some r,
        /// returned; the caller finishes the rest. Default: none.
        #[inline(always)]
        unsafe fn narrow_pairs(_g: &GemmArgs<Self::E>, _c: *mut Self::E, _j: usize) -> usize {
            0
        }
    }

    impl Vk for F64x2 {
        type E = f64;
        const W: usize = 2;
        #[inline(always)]
        unsafe fn ld(p: *const f64) -> Self {
            F64x2(v128_load(p as *const v128))
        }
        #[inline(always)]
        unsafe fn st(self, p: *mut f64) {
            v128_store(p as *mut v128, self.0)
        }
        #[inline(always)]
        fn splat(e: f64) -> Self {
            F64x2(f64x2_splat(e))
        }
        #[inline(always)]
        fn zero() -> Self {
            F64x2(f64x2_splat(0.0))
        }
        #[inline(always)]
        fn vadd(self, o: Self) -> Self {
            F64x2(f64x2_add(self.0, o.0))
        }
        #[inline(always)]
        fn vmul(self, o: Self) -> Self {
            F64x2(f64x2_mul(self.0, o.0))
        }
        #[inline(always)]
        fn vact(self, a: Act) -> Self {
            act64(a, self)
        }
    }

    impl Vk for F32x4 {
        type E = f32;
        const W: usize = 4;
        #[inline(always)]
        unsafe fn ld(p: *const f32) -> Self {
            F32x4(v128_load(p as *const v128))
        }
        #[inline(always)]
        unsafe fn st(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        #[inline(always)]
        fn splat(e: f32) -> Self {
            F32x4(f32x4_splat(e))
        }
        #[inline(always)]
        fn zero() -> Self {
            F32x4(f32x4_splat(0.0))
        }
        #[inline(always)]
        fn vadd(self, o: Self) -> Self {
            F32x4(f32x4_add(self.0, o.0))
        }
        #[inline(always)]
        fn vmul(self, o: Self) -> Self {
            F32x4(f32x4_mul(self.0, o.0))
        }
        #[inline(always)]
        fn vact(self, a: Act) -> Self {
            act32(a, self)
        }
        /// Two rows per vector, lanes (i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1): four
        /// products per multiply where the scalar tail does one (a 2-d flow's input and output
        /// layers), each lane with `one`'s exact sequence.
        #[inline(always)]
        unsafe fn narrow_pairs(g: &GemmArgs<f32>, c: *mut f32, j: usize) -> usize {
            const G: usize = 4; // vectors per group: 8 rows
            let mut i = 0;
            while i + 2 * G <= g.m {
                let mut acc = [f32x4_splat(0.0); G];
                if g.accumulate {
                    for q in 0..G {
                        let lo = v128_load64_splat(c.add((i + 2 * q) * g.ldc + j) as *const u64);
                        let hi = v128_load64_splat(c.add((i + 2 * q + 1) * g.ldc + j) as *const u64);
                        acc[q] = i32x4_shuffle::<0, 1, 6, 7>(lo, hi);
                    }
                }
                let mut pa = g.a.as_ptr().add(i * g.ars);
                let mut pb = g.b.as_ptr().add(j);
                for _ in 0..g.k {
                    let bv = v128_load64_splat(pb as *const u64);
                    for q in 0..G {
                        let a0 = v128_load32_splat(pa.add(2 * q * g.ars) as *const u32);
                        let a1 = v128_load32_splat(pa.add((2 * q + 1) * g.ars) as *const u32);
                        let av = i32x4_shuffle::<0, 1, 4, 5>(a0, a1);
                        acc[q] = f32x4_add(acc[q], f32x4_mul(av, bv));
                    }
                    pa = pa.add(g.acs);
                    pb = pb.add(g.ldb);
                }
                let bias = g.bias.map(|b| v128_load64_splat(b.as_ptr().add(j) as *const u64));
                for q in 0..G {
                    let mut v = acc[q];
                    if let Some(bb) = bias {
                        v = f32x4_add(v, bb);
                    }
                    let v = F32x4(v).vact(g.act).0;
                    v128_store64_lane::<0>(v, c.add((i + 2 * q) * g.ldc + j) as *mut u64);
                    v128_store64_lane::<1>(v, c.add((i + 2 * q + 1) * g.ldc + j) as *mut u64);
                }
                i += 2 * G;
            }
            i
        }
    }

    /// MR rows × NV vectors register tile at (i, j) over p in [p0, p0 + kc), B(p, j..) read at
    /// `bp + (p − p0)·bstride` (a packed panel, or B itself). `load_c`: start from C (accumulate /
    /// later k-chunk); `epi`: apply bias + activation (last k-chunk).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile<V: Vk, const MR: usize, const NV: usize>(
        g: &GemmArgs<V::E>,
        c: *mut V::E,
        i: usize,
        j: usize,
        p0: usize,
        kc: usize,
        bp: *const V::E,
        bstride: usize,
        load_c: bool,
        epi: bool,
    ) {
        let mut acc = [[V::zero(); NV]; MR];
        if load_c {
            for r in 0..MR {
                for v in 0..NV {
                    acc[r][v] = V::ld(c.add((i + r) * g.ldc + j + v * V::W));
                }
            }
        }
        let a = g.a.as_ptr().add(p0 * g.acs);
        let mut pa = [a; MR];
        for r in 0..MR {
            pa[r] = a.add((i + r) * g.ars);
        }
        let mut pb = bp;
        for _ in 0..kc {
            let mut bv = [V::zero(); NV];
            for v in 0..NV {
                bv[v] = V::ld(pb.add(v * V::W));
            }
            for r in 0..MR {
                let av = V::splat(*pa[r]);
                for v in 0..NV {
                    acc[r][v] = acc[r][v].vadd(av.vmul(bv[v]));
                }
                pa[r] = pa[r].add(g.acs);
            }
            pb = pb.add(bstride);
        }
        if epi {
            if let Some(bias) = g.bias {
                for v in 0..NV {
                    let bb = V::ld(bias.as_ptr().add(j + v * V::W));
                    for r in 0..MR {
                        acc[r][v] = acc[r][v].vadd(bb);
                    }
                }
            }
            if g.act != Act::Identity {
                for r in 0..MR {
                    for v in 0..NV {
                        acc[r][v] = acc[r][v].vact(g.act);
                    }
                }
            }
        }
        for r in 0..MR {
            for v in 0..NV {
                acc[r][v].st(c.add((i + r) * g.ldc + j + v * V::W));
            }
        }
    }

    /// Copy B[p0..p0+kc][j..j + NV·W] into a contiguous panel of vectors.
    #[inline(always)]
    unsafe fn pack<V: Vk, const NV: usize>(g: &GemmArgs<V::E>, p0: usize, kc: usize, j: usize, panel: *mut V) {
        let mut pb = g.b.as_ptr().add(p0 * g.ldb + j);
        let mut dst = panel;
        for _ in 0..kc {
            for v in 0..NV {
                *dst.add(v) = V::ld(pb.add(v * V::W));
            }
            pb = pb.add(g.ldb);
            dst = dst.add(NV);
        }
    }

    /// All rows for one column panel (NV vectors wide) and one k-chunk. The panel is packed only
    /// when enough row tiles reuse it; a few rows read B in place (small products).
    #[inline(always)]
    unsafe fn panel_rows<V: Vk, const NV: usize>(g: &GemmArgs<V::E>, c: *mut V::E, j: usize, p0: usize, kc: usize, panel: *mut V) {
        // (a B whose rows are exactly one panel wide, n = NV·W = ldb, is a packed panel already)
        let (bp, bs) = if g.m > PACK_MIN_ROWS && g.ldb != NV * V::W {
            pack::<V, NV>(g, p0, kc, j, panel);
            (panel as *const V::E, NV * V::W)
        } else {
            (g.b.as_ptr().add(p0 * g.ldb + j), g.ldb)
        };
        let load_c = g.accumulate || p0 > 0;
        let epi = p0 + kc >= g.k;
        let mut i = 0;
        while i + 4 <= g.m {
            tile::<V, 4, NV>(g, c, i, j, p0, kc, bp, bs, load_c, epi);
            i += 4;
        }
        if i + 2 <= g.m {
            tile::<V, 2, NV>(g, c, i, j, p0, kc, bp, bs, load_c, epi);
            i += 2;
        }
        while i < g.m {
            tile::<V, 1, NV>(g, c, i, j, p0, kc, bp, bs, load_c, epi);
            i += 1;
        }
    }

    /// Row count up to which B is read in place instead of packed.
    const PACK_MIN_ROWS: usize = 8;

    /// One output element, scalar, same sequence.
    #[inline(always)]
    unsafe fn one<R: Scalar>(g: &GemmArgs<R>, c: *mut R, i: usize, j: usize) {
        let cp = c.add(i * g.ldc + j);
        let mut acc = if g.accumulate { *cp } else { R::ZERO };
        let mut pa = g.a.as_ptr().add(i * g.ars);
        let mut pb = g.b.as_ptr().add(j);
        for _ in 0..g.k {
            acc = acc + *pa * *pb;
            pa = pa.add(g.acs);
            pb = pb.add(g.ldb);
        }
        if let Some(bias) = g.bias {
            acc = acc + *bias.as_ptr().add(j);
        }
        *cp = acc.act(g.act);
    }

    /// k-chunk length: a packed panel is KC × 2 vectors (8 KiB for f64 and f32) on the stack.
    const KC: usize = 256;

    /// # Safety
    /// Arguments validated by the caller (all accessed indices in bounds).
    pub(crate) unsafe fn gemm_simd<V: Vk>(g: &GemmArgs<V::E>, c: &mut [V::E]) {
        let (m, n, k) = (g.m, g.n, g.k);
        if m == 0 || n == 0 {
            return;
        }
        let cp = c.as_mut_ptr();
        let tw = 2 * V::W;
        // The packed panel is written by `pack` before any read: leave it uninitialised
        // (zeroing 8 KiB per call dominated small products).
        let mut panel = core::mem::MaybeUninit::<[V; 2 * KC]>::uninit();
        let pp = panel.as_mut_ptr() as *mut V;
        let nfull = n / tw * tw;
        let nhalf = if n - nfull >= V::W { nfull + V::W } else { nfull };
        // k-chunks in increasing order; accumulators go through C between chunks (exact).
        let mut p0 = 0;
        loop {
            let kc = if k - p0 > KC { KC } else { k - p0 };
            let mut j = 0;
            while j < nfull {
                panel_rows::<V, 2>(g, cp, j, p0, kc, pp);
                j += tw;
            }
            if nhalf > nfull {
                panel_rows::<V, 1>(g, cp, nfull, p0, kc, pp);
            }
            p0 += kc;
            if p0 >= k {
                break;
            }
        }
        // columns narrower than a vector (f32 with n = 2 in a 2-d flow's last layer): rows in
        // groups, so independent accumulator chains overlap instead of waiting on each add
        let paired = if n - nhalf == 2 { V::narrow_pairs(g, cp, nhalf) } else { 0 };
        for j in nhalf..n {
            let mut i = paired;
            while i + NARROW_ROWS <= m {
                rows_scalar::<V::E, NARROW_ROWS>(g, cp, i, j);
                i += NARROW_ROWS;
            }
            while i < m {
                one(g, cp, i, j);
                i += 1;
            }
        }
    }

    /// Rows per group in the narrow-column tail.
    const NARROW_ROWS: usize = 8;

    /// Output elements (i..i + MR, j), scalar, each with the same sequence as `one`.
    #[inline(always)]
    unsafe fn rows_scalar<R: Scalar, const MR: usize>(g: &GemmArgs<R>, c: *mut R, i: usize, j: usize) {
        let mut acc = [R::ZERO; MR];
        if g.accumulate {
            for r in 0..MR {
                acc[r] = *c.add((i + r) * g.ldc + j);
            }
        }
        let mut pa = g.a.as_ptr().add(i * g.ars);
        let mut pb = g.b.as_ptr().add(j);
        for _ in 0..g.k {
            let bv = *pb;
            for r in 0..MR {
                acc[r] = acc[r] + *pa.add(r * g.ars) * bv;
            }
            pa = pa.add(g.acs);
            pb = pb.add(g.ldb);
        }
        for r in 0..MR {
            let mut v = acc[r];
            if let Some(bias) = g.bias {
                v = v + *bias.as_ptr().add(j);
            }
            *c.add((i + r) * g.ldc + j) = v.act(g.act);
        }
    }
}
