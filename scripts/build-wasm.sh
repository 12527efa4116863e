#!/usr/bin/env bash
# Build crates/neurode-core to SIMD wasm and write OUTDIR/neurode.wasm (default OUTDIR: pkg).
# Route A: a rustc on PATH that already has the wasm32-unknown-unknown std (rustup target add).
# Route B: Debian's rustc-web offline with -Z build-std (TOOLCHAIN.md §2); what CI uses.
# WASM_ROUTE=A|B forces a route; WASM_TARGET_DIR overrides route B's cargo target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-pkg}
TARGET=wasm32-unknown-unknown
CRATE=neurode-core
LIB=neurode_core
# Inherited from make or an outer cargo, these would redirect the build to another toolchain.
unset CARGO RUSTC_WRAPPER RUSTC RUSTDOC

has_wasm_std() {
  local dir
  dir=$(rustc --print target-libdir --target $TARGET 2>/dev/null) || return 1
  compgen -G "$dir/libstd-*.rlib" >/dev/null
}
debian_ok() { [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && command -v "wasm-ld-$(debian_llvm)" >/dev/null; }
debian_llvm() { /usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p'; }

route=${WASM_ROUTE:-}
if [ -z "$route" ]; then
  if command -v rustc >/dev/null && has_wasm_std; then route=A
  elif debian_ok; then route=B
  else
    echo "ERROR: no Rust toolchain can build $TARGET. Fix either: (A) rustup target add $TARGET," \
         "or (B) run scripts/toolchain.sh (make toolchain) to install Debian's rustc-web, rust-web-src and lld." >&2
    exit 1
  fi
fi

start=$(date +%s)
case $route in
  A)
    echo "build-wasm: route A, $(rustc -V), linker: rust-lld (bundled with the toolchain)"
    RUSTFLAGS="-C target-feature=+simd128" \
      cargo build --offline --locked --release --target $TARGET -p $CRATE --lib
    wasm=target/$TARGET/release/$LIB.wasm
    ;;
  B)
    unset RUSTUP_TOOLCHAIN  # rustup's proxies must not pick the compiler
    n=$(debian_llvm)
    sysroot=$(/usr/bin/rustc --print sysroot)
    tdir=${WASM_TARGET_DIR:-target/wasm-debian}  # separate dir: host (rustup) builds stay untouched
    echo "build-wasm: route B (Debian, offline), $(/usr/bin/rustc -V), linker: wasm-ld-$n ($(wasm-ld-$n --version))"
    # build-std needs std's vendored deps even though our crate has none: source replacement via
    # --config (not a checked-in .cargo/config.toml) keeps host builds untouched.
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    RUSTFLAGS="-C target-feature=+simd128 -C linker=wasm-ld-$n" \
      /usr/bin/cargo \
        --config "source.crates-io.replace-with='std-vendor'" \
        --config "source.std-vendor.directory='$sysroot/lib/rustlib/src/rust/library/vendor'" \
        build --offline --locked --release --target $TARGET -p $CRATE --lib \
        --target-dir "$tdir" -Z build-std=std,panic_abort
    wasm=$tdir/$TARGET/release/$LIB.wasm
    ;;
  *) echo "ERROR: WASM_ROUTE must be A or B, not '$route'" >&2; exit 2 ;;
esac
echo "build-wasm: cargo took $(( $(date +%s) - start )) s"

# Check before copying, so a bad module never replaces a good pkg/neurode.wasm.
node scripts/check-wasm.mjs "$wasm"
mkdir -p "$OUT"
cp "$wasm" "$OUT/neurode.wasm"
echo "build-wasm: wrote $OUT/neurode.wasm"
