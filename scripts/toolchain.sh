#!/usr/bin/env bash
# Install the offline wasm toolchain from Debian (see /work/shared/TOOLCHAIN.md §1):
#   rustc-web + cargo-web (own /usr/bin/rustc, /usr/bin/cargo), rust-web-src (std sources and
#   std's vendored deps, for -Z build-std), and lld-N where N = LLVM major of that rustc.
# Idempotent: does no apt work at all when a wasm32 probe already succeeds.
# Usage: scripts/toolchain.sh [--chromium]   (--chromium also installs Debian's chromium for browser tests)
set -euo pipefail

want_chromium=0
for arg in "$@"; do
  case $arg in
    --chromium) want_chromium=1 ;;
    *) echo "usage: $0 [--chromium]" >&2; exit 2 ;;
  esac
done

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

llvm_major() { /usr/bin/rustc -vV 2>/dev/null | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p'; }

# Probe the Debian route for real instead of looking at folders (a mismatched wasm32 std in a folder
# fools such checks): same rustc-web/rust-web-src version, std's vendor dir, and rustc + wasm-ld-N
# compiling and linking a one-line wasm32 library.
probe_rust() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || return 1
  local n sysroot tmp ok=1
  n=$(llvm_major); [ -n "$n" ] && command -v "wasm-ld-$n" >/dev/null || return 1
  [ "$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null)" = \
    "$(dpkg-query -W -f='${Version}' rust-web-src 2>/dev/null)" ] || return 1
  sysroot=$(/usr/bin/rustc --print sysroot)
  [ -d "$sysroot/lib/rustlib/src/rust/library/vendor" ] || return 1
  tmp=$(mktemp -d)
  printf '#![feature(no_core)]\n#![no_core]\n' > "$tmp/probe.rs"
  env -u RUSTUP_TOOLCHAIN RUSTC_BOOTSTRAP=1 /usr/bin/rustc --crate-type cdylib \
    --target wasm32-unknown-unknown -C "linker=wasm-ld-$n" -o "$tmp/probe.wasm" "$tmp/probe.rs" \
    >/dev/null 2>&1 || ok=0
  rm -rf "$tmp"
  [ $ok = 1 ]
}
probe_chromium() { [ $want_chromium = 0 ] || command -v chromium >/dev/null; }

if probe_rust && probe_chromium; then
  echo "toolchain: already present ($(/usr/bin/rustc -V), wasm-ld-$(llvm_major)$([ $want_chromium = 1 ] && echo ", $(chromium --version 2>/dev/null)"))"
  exit 0
fi

echo "toolchain: installing Debian packages (apt-get update once, then install)"
$SUDO apt-get update -q
pkgs=(rustc-web cargo-web rust-web-src)
[ $want_chromium = 1 ] && pkgs+=(chromium)
$SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
# Only now do we know which LLVM the (possibly just upgraded) rustc was built with.
n=$(llvm_major)
[ -n "$n" ] || { echo "ERROR: cannot read the LLVM version from /usr/bin/rustc -vV" >&2; exit 1; }
$SUDO apt-get install -y -q --no-install-recommends "lld-$n"

probe_rust || { echo "ERROR: Debian wasm toolchain installed but the wasm32 probe still fails" >&2; exit 1; }
probe_chromium || { echo "ERROR: chromium not on PATH after install" >&2; exit 1; }
echo "toolchain: ready ($(/usr/bin/rustc -V), wasm-ld-$n)"
