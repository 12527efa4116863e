//! The boundary TypeScript calls: `extern "C"` functions over linear memory. Every call that
//! can fail returns a status (0 ok, 1 error with "CODE\tmessage" in the error buffer, 2 a
//! JavaScript callback threw and TypeScript re-throws its exception). Nothing here panics on
//! bad input; a panic that still happens is reported through `nd_panic` before the trap.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::error::{Code, Error, Result};
use crate::field::NetField;
use crate::grad::{GradOptions, Mode, Tape, VjpRhs};
use crate::nn::decode_specs;
use crate::optim::Optimizer;
use crate::real::Real;
use crate::tensor::Scalar;
use crate::solver::{self, Method, Options, Rhs, Stats};

pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const CALLBACK_THREW: i32 = 2;

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    /// Calls the JavaScript right-hand side on top of TypeScript's stack: dy = f(t, y).
    /// Returns 0, or 1 if it threw (the exception is kept on the JS side).
    fn nd_js_rhs(t: f64, y: *const u8, dy: *mut u8, n: u32) -> i32;
    /// Calls the JavaScript VJP on top of TypeScript's stack: out_y = a·∂f/∂y, out_p = a·∂f/∂θ,
    /// out_t[0] = a·∂f/∂t. Returns 0, or 1 if it threw.
    fn nd_js_vjp(t: f64, y: *const u8, a: *const u8, out_y: *mut u8, out_p: *mut u8, n: u32, p: u32, out_t: *mut f64) -> i32;
    /// Receives a panic message right before the instance traps.
    fn nd_panic(msg: *const u8, len: u32);
}

// Host builds (cargo test) have no JavaScript: a JS right-hand side is an error there.
#[cfg(not(target_arch = "wasm32"))]
unsafe fn nd_js_rhs(_t: f64, _y: *const u8, _dy: *mut u8, _n: u32) -> i32 {
    1
}
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
unsafe fn nd_js_vjp(_t: f64, _y: *const u8, _a: *const u8, _oy: *mut u8, _op: *mut u8, _n: u32, _p: u32, _ot: *mut f64) -> i32 {
    1
}
#[cfg(not(target_arch = "wasm32"))]
unsafe fn nd_panic(_msg: *const u8, _len: u32) {}

/// Objects TypeScript holds by handle. An object is taken out of the table while in use, so a
/// JavaScript callback that re-enters the core can never alias it.
pub enum Object {
    Tape64(Tape<f64>),
    Tape32(Tape<f32>),
    Field64(NetField<f64>),
    Field32(NetField<f32>),
    Optim64(Optimizer<f64>),
    Optim32(Optimizer<f32>),
    Latent64(crate::latent::LatentOde<f64>),
    Latent32(crate::latent::LatentOde<f32>),
    Rnn64(crate::latent::rnn::RnnBaseline<f64>),
    Rnn32(crate::latent::rnn::RnnBaseline<f32>),
    Classifier64(crate::odenet::Classifier<f64>),
    Classifier32(crate::odenet::Classifier<f32>),
    Cnf64(crate::cnf::Cnf<f64>),
    Cnf32(crate::cnf::Cnf<f32>),
}

thread_local! {
    static OBJECTS: RefCell<BTreeMap<u32, Object>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_HANDLE: Cell<u32> = const { Cell::new(1) };
}

pub fn insert(obj: Object) -> u32 {
    let h = NEXT_HANDLE.with(|c| {
        let h = c.get();
        c.set(h.wrapping_add(1).max(1));
        h
    });
    OBJECTS.with(|o| o.borrow_mut().insert(h, obj));
    h
}

pub fn take(h: u32) -> Result<Object> {
    OBJECTS.with(|o| o.borrow_mut().remove(&h)).ok_or_else(|| Error::new(Code::InvalidHandle, format!("no object with handle {} (disposed or in use)", h)))
}

pub fn put_back(h: u32, obj: Object) {
    OBJECTS.with(|o| o.borrow_mut().insert(h, obj));
}

/// Frees an object (any kind). Unknown handles are ignored (dispose is idempotent).
#[no_mangle]
pub extern "C" fn nd_free_object(h: u32) {
    OBJECTS.with(|o| o.borrow_mut().remove(&h));
}

/// Number of live objects (for leak tests).
#[no_mangle]
pub extern "C" fn nd_object_count() -> u32 {
    OBJECTS.with(|o| o.borrow().len() as u32)
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(e: &Error) {
    LAST_ERROR.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        s.push_str(e.code.as_str());
        s.push('\t');
        s.push_str(&e.message);
    });
}

pub(crate) fn status(r: Result<()>) -> i32 {
    match r {
        Ok(()) => OK,
        Err(e) if e.code == Code::CallbackError => CALLBACK_THREW,
        Err(e) => {
            set_error(&e);
            FAILED
        }
    }
}

/// Installs the panic hook. Called once by TypeScript right after instantiation.
#[no_mangle]
pub extern "C" fn nd_init() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        unsafe { nd_panic(msg.as_ptr(), msg.len() as u32) };
    }));
}

#[no_mangle]
pub extern "C" fn nd_error_ptr() -> *const u8 {
    LAST_ERROR.with(|s| s.borrow().as_ptr())
}

#[no_mangle]
pub extern "C" fn nd_error_len() -> usize {
    LAST_ERROR.with(|s| s.borrow().len())
}

/// Buffers handed to TypeScript: 16-byte aligned (SIMD-friendly), freed with the same size.
#[no_mangle]
pub extern "C" fn nd_alloc(size: usize) -> *mut u8 {
    match std::alloc::Layout::from_size_align(size.max(1), 16) {
        Ok(l) => unsafe { std::alloc::alloc_zeroed(l) },
        Err(_) => core::ptr::null_mut(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nd_free(ptr: *mut u8, size: usize) {
    if !ptr.is_null() {
        std::alloc::dealloc(ptr, std::alloc::Layout::from_size_align_unchecked(size.max(1), 16));
    }
}

/// Writes [live bytes, peak bytes, live blocks, total allocations] as f64.
#[no_mangle]
pub unsafe extern "C" fn nd_mem_stats(out: *mut f64) {
    let s = crate::alloc::stats();
    let o = core::slice::from_raw_parts_mut(out, 4);
    o[0] = s.live_bytes as f64;
    o[1] = s.peak_bytes as f64;
    o[2] = s.live_blocks as f64;
    o[3] = s.total_allocs as f64;
}

#[no_mangle]
pub extern "C" fn nd_mem_reset_peak() {
    crate::alloc::reset_peak();
}

/// Test hook: panics on purpose so tests can check that a panic becomes WASM_PANIC and that
/// the next call works on a fresh instance.
#[no_mangle]
pub extern "C" fn nd_test_panic(code: u32) -> u32 {
    if code != 0x5eed {
        panic!("deliberate panic requested by a test (code {})", code);
    }
    code
}

/// A JavaScript right-hand side. y and dy are copied through two scratch buffers that live for
/// the whole solve, so TypeScript can keep typed-array views over them.
pub(crate) struct JsRhs<R: Real> {
    pub(crate) y: Vec<R>,
    pub(crate) dy: Vec<R>,
}

/// `dst.copy_from_slice(src)` for the few elements of a JavaScript right-hand side's state
/// without a memory.copy call (V8 makes it a C call that costs more than the copy); the volatile
/// stores keep LLVM from turning the loop back into one. Exact bit copy either way.
#[inline]
fn copy_small<R: Copy>(dst: &mut [R], src: &[R]) {
    if dst.len() > 32 || dst.len() != src.len() {
        dst.copy_from_slice(src);
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        // SAFETY: d is a valid, exclusive element of dst.
        unsafe { core::ptr::write_volatile(d, *s) };
    }
}

impl<R: Real> Rhs<R> for JsRhs<R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        let n = y.len();
        if self.y.len() != n {
            // Only reached by independent solves with rows of another width: size once.
            self.y.resize(n, R::ZERO);
            self.dy.resize(n, R::ZERO);
        }
        copy_small(&mut self.y, y);
        let threw = unsafe { nd_js_rhs(t, self.y.as_ptr() as *const u8, self.dy.as_mut_ptr() as *mut u8, n as u32) };
        if threw != 0 {
            return Err(Error::new(Code::CallbackError, "the right-hand side threw"));
        }
        copy_small(dy, &self.dy);
        Ok(())
    }
}

/// A JavaScript right-hand side with its VJP ({ f, vjp } in TypeScript).
struct JsVjp<R: Real> {
    rhs: JsRhs<R>,
    p: usize,
    y: Vec<R>,
    a: Vec<R>,
    oy: Vec<R>,
    op: Vec<R>,
}

impl<R: Real> JsVjp<R> {
    fn new(n: usize, p: usize) -> Self {
        JsVjp { rhs: JsRhs { y: vec![R::ZERO; n], dy: vec![R::ZERO; n] }, p, y: vec![R::ZERO; n], a: vec![R::ZERO; n], oy: vec![R::ZERO; n], op: vec![R::ZERO; p] }
    }
}

impl<R: Real> Rhs<R> for JsVjp<R> {
    fn eval(&mut self, t: f64, y: &[R], dy: &mut [R]) -> Result<()> {
        self.rhs.eval(t, y, dy)
    }
}

impl<R: Real> VjpRhs<R> for JsVjp<R> {
    fn num_params(&self) -> usize {
        self.p
    }
    fn vjp(&mut self, t: f64, y: &[R], a: &[R], out_f: Option<&mut [R]>, out_y: &mut [R], out_p: &mut [R]) -> Result<f64> {
        if let Some(fv) = out_f {
            self.rhs.eval(t, y, fv)?;
        }
        let n = y.len();
        if self.y.len() != n {
            self.y.resize(n, R::ZERO);
            self.a.resize(n, R::ZERO);
            self.oy.resize(n, R::ZERO);
        }
        self.y.copy_from_slice(y);
        self.a.copy_from_slice(a);
        self.oy.iter_mut().for_each(|v| *v = R::ZERO);
        self.op.iter_mut().for_each(|v| *v = R::ZERO);
        let mut gt = 0.0f64;
        let threw = unsafe {
            nd_js_vjp(t, self.y.as_ptr() as *const u8, self.a.as_ptr() as *const u8, self.oy.as_mut_ptr() as *mut u8, self.op.as_mut_ptr() as *mut u8, n as u32, self.p as u32, &mut gt)
        };
        if threw != 0 {
            return Err(Error::new(Code::CallbackError, "the vjp threw"));
        }
        if !gt.is_finite() {
            return Err(Error::new(Code::NonFinite, format!("the vjp returned a non-finite time derivative at t = {}", t)));
        }
        out_y.copy_from_slice(&self.oy);
        out_p.copy_from_slice(&self.op);
        Ok(gt)
    }
}

/// Writes (nfe, steps, rejected) as three f64.
pub(crate) fn write_stats(out: &mut [f64], s: &Stats) {
    out[0] = s.nfe as f64;
    out[1] = s.steps as f64;
    out[2] = s.rejected as f64;
}

/// Options as TypeScript packs them: an f64 array (NaN = not given).
const OPT_RTOL: usize = 0;
const OPT_STEP: usize = 1;
const OPT_FIRST: usize = 2;
const OPT_MAX_STEPS: usize = 3;
const OPT_INDEPENDENT: usize = 4;
const OPT_SAFETY: usize = 5;
const OPT_IFACTOR: usize = 6;
const OPT_DFACTOR: usize = 7;
const OPT_PCOEFF: usize = 8;
const OPT_ICOEFF: usize = 9;
pub const OPT_COUNT: usize = 10;

fn opt(v: f64) -> Option<f64> {
    if v.is_nan() { None } else { Some(v) }
}

pub(crate) unsafe fn slice<'a, T>(p: *const T, n: u32) -> &'a [T] {
    if n == 0 { &[] } else { core::slice::from_raw_parts(p, n as usize) }
}

pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, n: usize) -> &'a mut [T] {
    if n == 0 { &mut [] } else { core::slice::from_raw_parts_mut(p, n) }
}

pub(crate) fn decode_options(method: u32, o: &[f64], atol: &[f64], grid: &[f64]) -> Result<(Options, bool)> {
    let method = Method::from_index(method).ok_or_else(|| Error::invalid(format!("unknown method index {}", method)))?;
    let max_steps = o[OPT_MAX_STEPS];
    if !(max_steps >= 1.0) || max_steps > 9.0e15 || max_steps.fract() != 0.0 {
        return Err(Error::invalid("maxSteps must be a whole number >= 1"));
    }
    let d = Options::default();
    Ok((
        Options {
            method,
            rtol: opt(o[OPT_RTOL]).unwrap_or(d.rtol),
            atol: if atol.is_empty() { d.atol } else { atol.to_vec() },
            step_size: opt(o[OPT_STEP]),
            first_step: opt(o[OPT_FIRST]),
            max_steps: max_steps as u64,
            grid_points: grid.to_vec(),
            norm_groups: Vec::new(),
            safety: opt(o[OPT_SAFETY]).unwrap_or(d.safety),
            ifactor: opt(o[OPT_IFACTOR]).unwrap_or(d.ifactor),
            dfactor: opt(o[OPT_DFACTOR]).unwrap_or(d.dfactor),
            pcoeff: opt(o[OPT_PCOEFF]).unwrap_or(d.pcoeff),
            icoeff: opt(o[OPT_ICOEFF]).unwrap_or(d.icoeff),
        },
        o[OPT_INDEPENDENT] != 0.0,
    ))
}

#[allow(clippy::too_many_arguments)]
unsafe fn odeint_typed<R: Scalar>(
    field: u32,
    y0: *const u8,
    n: u32,
    dim: u32,
    ts: &[f64],
    opts: Options,
    independent: bool,
    out: *mut u8,
    stats: *mut f64,
) -> Result<()> {
    let y0 = slice(y0 as *const R, n);
    let out = slice_mut(out as *mut R, ts.len() * n as usize);
    let width = if independent { dim as usize } else { n as usize };
    if field != 0 {
        return crate::field::with_field::<R, _>(field, |f| solve_with(f, y0, n, dim, ts, opts, independent, out, stats));
    }
    let mut rhs = JsRhs { y: vec![R::ZERO; width], dy: vec![R::ZERO; width] };
    solve_with(&mut rhs, y0, n, dim, ts, opts, independent, out, stats)
}

#[allow(clippy::too_many_arguments)]
unsafe fn solve_with<R: Real>(rhs: &mut dyn Rhs<R>, y0: &[R], n: u32, dim: u32, ts: &[f64], opts: Options, independent: bool, out: &mut [R], stats: *mut f64) -> Result<()> {
    if independent {
        if dim == 0 || n % dim != 0 {
            return Err(Error::invalid(format!("y0 length {} is not a multiple of dim {}", n, dim)));
        }
        let batch = (n / dim) as usize;
        let mut rows = vec![Stats::default(); batch];
        let r = solver::solve_independent(rhs, y0, dim as usize, ts, &opts, out, &mut rows);
        crate::abi_solvers::set_last_stats(rows.iter().fold(Stats::default(), |mut a, s| { a.add(s); a }));
        let st = slice_mut(stats, 3 * (batch + 1));
        let mut total = Stats::default();
        for (b, s) in rows.iter().enumerate() {
            total.add(s);
            write_stats(&mut st[3 * (b + 1)..], s);
        }
        write_stats(st, &total);
        r
    } else {
        let mut s = Stats::default();
        let r = crate::abi_solvers::solve_observed(rhs, y0, ts, &opts, out, &mut s);
        crate::abi_solvers::set_last_stats(s);
        write_stats(slice_mut(stats, 3), &s);
        r
    }
}

/// Solves an ODE. dtype 0 = f64, 1 = f32 (y0/out element type). `field` 0 = the JavaScript
/// right-hand side. `opts` holds OPT_COUNT f64. `stats` receives 3 f64 (nfe, steps, rejected),
/// or 3·(1 + batch) in independent mode (totals first, then one triple per row).
#[no_mangle]
pub unsafe extern "C" fn nd_odeint(
    dtype: u32,
    field: u32,
    method: u32,
    y0: *const u8,
    n: u32,
    dim: u32,
    ts: *const f64,
    nts: u32,
    opts: *const f64,
    atol: *const f64,
    natol: u32,
    grid: *const f64,
    ngrid: u32,
    out: *mut u8,
    stats: *mut f64,
) -> i32 {
    let ts = slice(ts, nts);
    let r = decode_options(method, slice(opts, OPT_COUNT as u32), slice(atol, natol), slice(grid, ngrid)).and_then(|(o, independent)| match dtype {
        0 => odeint_typed::<f64>(field, y0, n, dim, ts, o, independent, out, stats),
        1 => odeint_typed::<f32>(field, y0, n, dim, ts, o, independent, out, stats),
        _ => Err(Error::invalid(format!("unknown dtype {}", dtype))),
    });
    status(r)
}


/// Gradient options as TypeScript packs them: [mode (0 adjoint, 1 backprop, 2 checkpoint),
/// adjoint rtol (NaN = forward's), adjoint atol (NaN = forward's), seminorm (0/1), JS params].
const GOPT_COUNT: usize = 5;

fn decode_grad(forward: Options, g: &[f64]) -> Result<(GradOptions, usize)> {
    let mode = Mode::from_code(g[0])?;
    let adjoint_rtol = opt(g[1]).unwrap_or(forward.rtol);
    let adjoint_atol = opt(g[2]).unwrap_or_else(|| forward.atol.iter().cloned().fold(f64::INFINITY, f64::min));
    if !(adjoint_rtol > 0.0) || !adjoint_rtol.is_finite() || !(adjoint_atol >= 0.0) || !adjoint_atol.is_finite() {
        return Err(Error::invalid("adjointRtol must be > 0 and adjointAtol >= 0"));
    }
    let p = g[4];
    if !(p >= 0.0) || p.fract() != 0.0 || p > 1.0e9 {
        return Err(Error::invalid("numParams must be a whole number >= 0"));
    }
    Ok((GradOptions { mode, forward, adjoint_rtol, adjoint_atol, seminorm: g[3] != 0.0 }, p as usize))
}

unsafe fn grad_forward_typed<R: Scalar>(field: u32, y0: *const u8, n: u32, ts: &[f64], go: GradOptions, js_params: usize, out: *mut u8, stats: *mut f64) -> Result<Tape<R>> {
    let y0 = slice(y0 as *const R, n);
    let tape = with_vjp_field::<R, _>(field, n as usize, js_params, |f| crate::abi_solvers::grad_forward(f, y0, ts, &go))?;
    slice_mut(out as *mut R, tape.ys.len()).copy_from_slice(&tape.ys);
    write_stats(slice_mut(stats, 3), &tape.forward_stats);
    Ok(tape)
}

/// Runs `run` with the right-hand side a handle names (0 = JavaScript f + vjp).
fn with_vjp_field<R: Scalar, T>(field: u32, n: usize, js_params: usize, run: impl FnOnce(&mut dyn VjpRhs<R>) -> Result<T>) -> Result<T> {
    if field == 0 {
        let mut js = JsVjp::<R>::new(n, js_params);
        return run(&mut js);
    }
    crate::field::with_field::<R, T>(field, run)
}

/// Forward solve that records what the backward pass needs. Writes the tape's handle to
/// `tape_out`. `gopts` holds GOPT_COUNT f64.
#[no_mangle]
pub unsafe extern "C" fn nd_grad_forward(
    dtype: u32,
    field: u32,
    method: u32,
    y0: *const u8,
    n: u32,
    ts: *const f64,
    nts: u32,
    opts: *const f64,
    atol: *const f64,
    natol: u32,
    grid: *const f64,
    ngrid: u32,
    gopts: *const f64,
    out: *mut u8,
    stats: *mut f64,
    tape_out: *mut u32,
) -> i32 {
    let ts = slice(ts, nts);
    let r = decode_options(method, slice(opts, OPT_COUNT as u32), slice(atol, natol), slice(grid, ngrid))
        .and_then(|(o, _)| decode_grad(o, slice(gopts, GOPT_COUNT as u32)))
        .and_then(|(go, p)| match dtype {
            0 => grad_forward_typed::<f64>(field, y0, n, ts, go, p, out, stats).map(Object::Tape64),
            1 => grad_forward_typed::<f32>(field, y0, n, ts, go, p, out, stats).map(Object::Tape32),
            _ => Err(Error::invalid(format!("unknown dtype {}", dtype))),
        })
        .map(|obj| *tape_out = insert(obj));
    status(r)
}

unsafe fn grad_backward_typed<R: Scalar>(field: u32, tape: Tape<R>, js_params: u32, dl: *const u8, out_y0: *mut f64, out_p: *mut f64, np: u32, out_ts: *mut f64, stats: *mut f64) -> Result<()> {
    let n = tape.ys.len();
    let nts = tape.num_times();
    let dl = slice(dl as *const R, n as u32);
    let state = n / nts;
    let g = with_vjp_field::<R, _>(field, state, js_params as usize, |f| {
        if f.num_params() != np as usize {
            return Err(Error::invalid(format!("params buffer has {} entries, the field has {}", np, f.num_params())));
        }
        crate::abi_solvers::grad_backward(f, tape, dl)
    })?;
    slice_mut(out_y0, g.y0.len()).copy_from_slice(&g.y0);
    slice_mut(out_p, g.params.len()).copy_from_slice(&g.params);
    slice_mut(out_ts, g.ts.len()).copy_from_slice(&g.ts);
    write_stats(slice_mut(stats, 3), &g.stats);
    Ok(())
}

/// Backward pass of a tape (consumed, also on error). `dl` holds dL/dys in the tape's dtype;
/// outputs are f64: dL/dy0 (state length), dL/dθ (np), dL/dts (ts length).
#[no_mangle]
pub unsafe extern "C" fn nd_grad_backward(tape: u32, field: u32, js_params: u32, dl: *const u8, out_y0: *mut f64, out_p: *mut f64, np: u32, out_ts: *mut f64, stats: *mut f64) -> i32 {
    let r = take(tape).and_then(|obj| match obj {
        Object::Tape64(t) => grad_backward_typed::<f64>(field, t, js_params, dl, out_y0, out_p, np, out_ts, stats),
        Object::Tape32(t) => grad_backward_typed::<f32>(field, t, js_params, dl, out_y0, out_p, np, out_ts, stats),
        #[allow(unreachable_patterns)]
        other => {
            put_back(tape, other);
            Err(Error::new(Code::InvalidHandle, format!("handle {} is not a gradient tape", tape)))
        }
    });
    status(r)
}

/// Bytes a tape holds for its backward pass (deterministic memory figure).
#[no_mangle]
pub extern "C" fn nd_tape_bytes(tape: u32) -> f64 {
    OBJECTS.with(|o| match o.borrow().get(&tape) {
        Some(Object::Tape64(t)) => t.stored_bytes() as f64,
        Some(Object::Tape32(t)) => t.stored_bytes() as f64,
        _ => -1.0,
    })
}


// ---------------------------------------------------------------------------------------------
// Vector fields

/// Creates a field from `[kind, in, out]` u32 triples; parameters initialised from the seed
/// (init_std > 0: weights ~ N(0, init_std²), biases 0).
#[no_mangle]
pub unsafe extern "C" fn nd_field_create(dtype: u32, code: *const u32, nlayers: u32, seed_lo: u32, seed_hi: u32, init_std: f64, handle_out: *mut u32) -> i32 {
    let seed = (seed_hi as u64) << 32 | seed_lo as u64;
    let r = (|| {
        let specs = decode_specs(slice(code, nlayers.saturating_mul(3)))?;
        let obj = match dtype {
            0 => Object::Field64(NetField::new(&specs, seed, init_std)?),
            1 => Object::Field32(NetField::new(&specs, seed, init_std)?),
            _ => return Err(Error::invalid(format!("dtype: unknown code {}", dtype))),
        };
        *handle_out = insert(obj);
        Ok(())
    })();
    status(r)
}

/// Writes [dim, dim, numParams, dtype code] (f64) for a field; all −1 for a bad handle.
#[no_mangle]
pub unsafe extern "C" fn nd_field_info(h: u32, out: *mut f64) {
    let o = slice_mut(out, 4);
    OBJECTS.with(|t| match t.borrow().get(&h) {
        Some(Object::Field64(f)) => o.copy_from_slice(&[f.dim() as f64, f.dim() as f64, f.params.len() as f64, 0.0]),
        Some(Object::Field32(f)) => o.copy_from_slice(&[f.dim() as f64, f.dim() as f64, f.params.len() as f64, 1.0]),
        _ => o.copy_from_slice(&[-1.0; 4]),
    });
}

/// Address of a field's parameters (stable for the field's lifetime); 0 for a bad handle.
#[no_mangle]
pub extern "C" fn nd_field_params(h: u32) -> usize {
    OBJECTS.with(|t| match t.borrow_mut().get_mut(&h) {
        Some(Object::Field64(f)) => f.params.as_mut_ptr() as usize,
        Some(Object::Field32(f)) => f.params.as_mut_ptr() as usize,
        _ => 0,
    })
}

/// out = f(t, y) for a batch (y and out in the field's dtype, n values).
#[no_mangle]
pub unsafe extern "C" fn nd_field_eval(h: u32, t: f64, y: *const u8, n: u32, out: *mut u8) -> i32 {
    status(with_field_any(h, |f64f| f64f.eval(t, slice(y as *const f64, n), slice_mut(out as *mut f64, n as usize)), |f32f| {
        f32f.eval(t, slice(y as *const f32, n), slice_mut(out as *mut f32, n as usize))
    }))
}

/// VJP of a field: out_y (f64, n), out_p (f64, numParams), out_t (f64, 1).
#[no_mangle]
pub unsafe extern "C" fn nd_field_vjp(h: u32, t: f64, y: *const u8, n: u32, a: *const u8, out_y: *mut f64, out_p: *mut f64, out_t: *mut f64) -> i32 {
    fn run<R: Real>(f: &mut dyn VjpRhs<R>, t: f64, y: &[R], a: &[R], out_y: &mut [f64], out_p: &mut [f64], out_t: &mut f64) -> Result<()> {
        let mut gy = vec![R::ZERO; y.len()];
        let mut gp = vec![R::ZERO; f.num_params()];
        *out_t = f.vjp(t, y, a, None, &mut gy, &mut gp)?;
        for (o, v) in out_y.iter_mut().zip(&gy) {
            *o = v.to_f64();
        }
        for (o, v) in out_p.iter_mut().zip(&gp) {
            *o = v.to_f64();
        }
        Ok(())
    }
    let np = OBJECTS.with(|t| match t.borrow().get(&h) {
        Some(Object::Field64(f)) => f.params.len(),
        Some(Object::Field32(f)) => f.params.len(),
        _ => 0,
    });
    // the raw outputs are re-sliced inside whichever closure runs
    status(with_field_any(
        h,
        |f| run::<f64>(f, t, slice(y as *const f64, n), slice(a as *const f64, n), slice_mut(out_y, n as usize), slice_mut(out_p, np), &mut *out_t),
        |f| run::<f32>(f, t, slice(y as *const f32, n), slice(a as *const f32, n), slice_mut(out_y, n as usize), slice_mut(out_p, np), &mut *out_t),
    ))
}

/// Runs the closure matching the field's dtype.
fn with_field_any(h: u32, run64: impl FnOnce(&mut dyn VjpRhs<f64>) -> Result<()>, run32: impl FnOnce(&mut dyn VjpRhs<f32>) -> Result<()>) -> Result<()> {
    let is32 = OBJECTS.with(|t| matches!(t.borrow().get(&h), Some(Object::Field32(_))));
    if is32 {
        crate::field::with_field::<f32, _>(h, run32)
    } else {
        crate::field::with_field::<f64, _>(h, run64)
    }
}

// ---------------------------------------------------------------------------------------------
// Optimisers

/// Creates an optimiser: kind 0 adam [lr, beta1, beta2, eps, weightDecay], 1 sgd [lr, momentum,
/// weightDecay], 2 rmsprop [lr, alpha, eps, weightDecay]; `hyper` holds 5 f64.
#[no_mangle]
pub unsafe extern "C" fn nd_optim_create(kind: u32, dtype: u32, n: u32, hyper: *const f64, handle_out: *mut u32) -> i32 {
    let hp = slice(hyper, 5);
    let r = (|| {
        let obj = match dtype {
            0 => Object::Optim64(Optimizer::new(kind, n as usize, hp)?),
            1 => Object::Optim32(Optimizer::new(kind, n as usize, hp)?),
            _ => return Err(Error::invalid(format!("dtype: unknown code {}", dtype))),
        };
        *handle_out = insert(obj);
        Ok(())
    })();
    status(r)
}

/// One optimiser step on `params` (n values of the optimiser's dtype) with f64 gradients.
#[no_mangle]
pub unsafe extern "C" fn nd_optim_step(h: u32, params: *mut u8, n: u32, grads: *const f64) -> i32 {
    let g = slice(grads, n);
    let r = take(h).and_then(|mut obj| {
        let r = match &mut obj {
            Object::Optim64(o) => o.step(slice_mut(params as *mut f64, n as usize), g),
            Object::Optim32(o) => o.step(slice_mut(params as *mut f32, n as usize), g),
            _ => Err(Error::new(Code::InvalidHandle, format!("handle {} is not an optimiser", h))),
        };
        put_back(h, obj);
        r
    });
    status(r)
}

/// Optimiser state as f64: writes up to `cap` values to `out`, returns the full length (−1 bad handle).
#[no_mangle]
pub unsafe extern "C" fn nd_optim_state(h: u32, out: *mut f64, cap: u32) -> f64 {
    OBJECTS.with(|t| {
        let st = match t.borrow().get(&h) {
            Some(Object::Optim64(o)) => o.state(),
            Some(Object::Optim32(o)) => o.state(),
            _ => return -1.0,
        };
        let k = st.len().min(cap as usize);
        slice_mut(out, k).copy_from_slice(&st[..k]);
        st.len() as f64
    })
}

#[no_mangle]
pub unsafe extern "C" fn nd_optim_set_state(h: u32, state: *const f64, n: u32) -> i32 {
    let s = slice(state, n);
    let r = take(h).and_then(|mut obj| {
        let r = match &mut obj {
            Object::Optim64(o) => o.set_state(s),
            Object::Optim32(o) => o.set_state(s),
            _ => Err(Error::new(Code::InvalidHandle, format!("handle {} is not an optimiser", h))),
        };
        put_back(h, obj);
        r
    });
    status(r)
}

// ---------------------------------------------------------------------------------------------
// Small numeric services for training loops (kept in the core so results never depend on the
// JavaScript engine).

/// dst[i] += scale·src[i], in index order: gradients of shards are summed in shard order with it.
#[no_mangle]
pub unsafe extern "C" fn nd_sum_into(dst: *mut f64, src: *const f64, n: u32, scale: f64) {
    let d = slice_mut(dst, n as usize);
    for (a, b) in d.iter_mut().zip(slice(src, n)) {
        *a += scale * *b;
    }
}

/// Fills `out` (n f64) from the counter-based generator: kind 0 uniform [0,1), 1 standard
/// normal, 2 Rademacher ±1, 3 integers in [0, range), 4 n distinct integers in [0, range)
/// (Floyd's algorithm, for sampling without replacement). Value i is F(seed, stream, start + i).
#[no_mangle]
pub unsafe extern "C" fn nd_rng_fill(kind: u32, seed_lo: u32, seed_hi: u32, stream: f64, start: f64, n: u32, range: f64, out: *mut f64) -> i32 {
    let seed = (seed_hi as u64) << 32 | seed_lo as u64;
    let o = slice_mut(out, n as usize);
    if !(stream >= 0.0 && start >= 0.0) || (kind >= 3 && !(range >= 1.0)) || kind > 4 || (kind == 4 && (n as f64) > range) {
        set_error(&Error::invalid("rng: bad kind, stream, start or range"));
        return FAILED;
    }
    let (stream, start) = (stream as u64, start as u64);
    if kind == 4 {
        // Floyd: for j in range−n .. range, pick t ∈ [0, j]; take t unless taken, else j.
        let range = range as u64;
        let mut chosen: Vec<u64> = Vec::with_capacity(n as usize);
        for (i, j) in (range - n as u64..range).enumerate() {
            let t = crate::rng::u64_at(seed, stream, start + i as u64) % (j + 1);
            chosen.push(if chosen.contains(&t) { j } else { t });
        }
        for (v, c) in o.iter_mut().zip(chosen) {
            *v = c as f64;
        }
        return OK;
    }
    for (i, v) in o.iter_mut().enumerate() {
        let idx = start + i as u64;
        *v = match kind {
            0 => crate::rng::uniform_f64(seed, stream, idx),
            1 => crate::rng::normal_f64(seed, stream, idx),
            2 => crate::rng::rademacher(seed, stream, idx),
            _ => (crate::rng::u64_at(seed, stream, idx) % range as u64) as f64,
        };
    }
    OK
}

/// Loss between prediction and target (dtype 0 f64 / 1 f32, n values) with dloss/dpred in
/// `grad` (same dtype); kind 0 L1 (mean |p − y|), 1 MSE. Writes the loss to `out`.
#[no_mangle]
pub unsafe extern "C" fn nd_loss(kind: u32, dtype: u32, pred: *const u8, target: *const u8, n: u32, grad: *mut u8, out: *mut f64) -> i32 {
    fn run<R: Real>(kind: crate::loss::Loss, p: *const u8, t: *const u8, n: u32, g: *mut u8) -> Result<f64> {
        unsafe { kind.eval(slice(p as *const R, n), slice(t as *const R, n), None, slice_mut(g as *mut R, n as usize)) }
    }
    let r = crate::loss::Loss::from_index(kind).ok_or_else(|| Error::invalid("loss: unknown kind")).and_then(|k| match dtype {
        0 => run::<f64>(k, pred, target, n, grad),
        1 => run::<f32>(k, pred, target, n, grad),
        _ => Err(Error::invalid("dtype: unknown code")),
    });
    status(r.map(|l| *out = l))
}
