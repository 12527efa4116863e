//! A counting global allocator: the core's memory use is a deterministic number that tests and
//! benchmarks can assert on (RSS is neither deterministic nor about us).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static TOTAL_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE_BYTES.fetch_add(size, Relaxed) + size;
    if live > PEAK_BYTES.load(Relaxed) {
        PEAK_BYTES.store(live, Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grew(l.size());
            LIVE_BLOCKS.fetch_add(1, Relaxed);
            TOTAL_ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
            LIVE_BLOCKS.fetch_add(1, Relaxed);
            TOTAL_ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE_BYTES.fetch_sub(l.size(), Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            LIVE_BYTES.fetch_sub(l.size(), Relaxed);
            grew(new);
            TOTAL_ALLOCS.fetch_add(1, Relaxed);
        }
        q
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemStats {
    pub live_bytes: usize,
    pub peak_bytes: usize,
    pub live_blocks: usize,
    pub total_allocs: usize,
}

pub fn stats() -> MemStats {
    MemStats {
        live_bytes: LIVE_BYTES.load(Relaxed),
        peak_bytes: PEAK_BYTES.load(Relaxed),
        live_blocks: LIVE_BLOCKS.load(Relaxed),
        total_allocs: TOTAL_ALLOCS.load(Relaxed),
    }
}

/// Start a new peak measurement from the current live size.
pub fn reset_peak() {
    PEAK_BYTES.store(LIVE_BYTES.load(Relaxed), Relaxed);
}
