#!/usr/bin/env node
// Sanity-check a built module: it must validate (WebAssembly.validate, Node's own engine) and contain
// SIMD instructions. We decode every instruction of every function body in the code section, so
// 0xfd bytes inside immediates (constants, offsets, indices) or data segments are never counted.
// Usage: node scripts/check-wasm.mjs FILE.wasm [--min=N]   (N: minimum SIMD instructions, default 1)
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const min = Number(args.find((a) => a.startsWith('--min='))?.slice(6) ?? 1);
if (!file) { console.error('usage: check-wasm.mjs FILE.wasm [--min=N]'); process.exit(2); }

const fail = (msg) => { console.error(`check-wasm: ERROR: ${file}: ${msg}`); process.exit(1); };
const bytes = readFileSync(file);
if (!WebAssembly.validate(bytes)) fail('WebAssembly.validate() rejects the module');

let p = 0;
const u8 = () => { if (p >= bytes.length) throw new Error('unexpected end'); return bytes[p++]; };
const leb = () => { let r = 0n, s = 0n, b; do { b = u8(); r |= BigInt(b & 0x7f) << s; s += 7n; } while (b & 0x80); return Number(r); };
const skip = (n) => { p += n; };
const memarg = () => { const align = leb(); if (align & 0x40) leb(); leb(); }; // multi-memory: memidx
const heapOrValType = () => { const b = bytes[p]; if (b === 0x63 || b === 0x64) { p++; leb(); } else leb(); };
const blockType = () => { if (bytes[p] === 0x40) p++; else heapOrValType(); };

// Immediates of the one-byte opcodes that have any (MVP, reference types, tail calls, exceptions).
const IMM = {
  0x02: blockType, 0x03: blockType, 0x04: blockType, 0x06: blockType,
  0x07: leb, 0x08: leb, 0x09: leb, 0x0c: leb, 0x0d: leb, 0x10: leb, 0x12: leb, 0x18: leb,
  0x0e: () => { const n = leb(); for (let i = 0; i <= n; i++) leb(); },
  0x11: () => { leb(); leb(); }, 0x13: () => { leb(); leb(); },
  0x1c: () => { const n = leb(); for (let i = 0; i < n; i++) heapOrValType(); },
  0x1f: () => { blockType(); const n = leb(); for (let i = 0; i < n; i++) { const k = u8(); if (k < 2) leb(); leb(); } },
  0x20: leb, 0x21: leb, 0x22: leb, 0x23: leb, 0x24: leb, 0x25: leb, 0x26: leb,
  0x3f: leb, 0x40: leb, 0x41: leb, 0x42: leb, 0x43: () => skip(4), 0x44: () => skip(8),
  0xd0: heapOrValType, 0xd2: leb,
};
for (let op = 0x28; op <= 0x3e; op++) IMM[op] = memarg;
const NO_IMM = new Set([0x00, 0x01, 0x05, 0x0a, 0x0b, 0x0f, 0x19, 0x1a, 0x1b, 0xd1]);
// 0xfc prefix (saturating truncation, bulk memory, tables): number of u32 immediates per sub-opcode.
const FC_IMM = [0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1];

const simdOps = new Map();
function simd() {
  const op = leb();
  if (op <= 11 || op === 92 || op === 93) memarg(); // v128.load*/store, load32/64_zero
  else if (op === 12 || op === 13) skip(16); // v128.const, i8x16.shuffle
  else if (op >= 21 && op <= 34) skip(1); // extract/replace_lane
  else if (op >= 84 && op <= 91) { memarg(); skip(1); } // load/store_lane
  simdOps.set(op, (simdOps.get(op) ?? 0) + 1);
}

function body(end) {
  const nLocals = leb();
  for (let i = 0; i < nLocals; i++) { leb(); heapOrValType(); }
  while (p < end) {
    const at = p, op = u8();
    if (op === 0xfd) simd();
    else if (op === 0xfc) { const sub = leb(); if (sub >= FC_IMM.length) throw new Error(`unknown 0xfc ${sub} at ${at}`); for (let i = 0; i < FC_IMM[sub]; i++) leb(); }
    else if (IMM[op]) IMM[op]();
    else if (!(NO_IMM.has(op) || (op >= 0x45 && op <= 0xc4))) throw new Error(`unknown opcode 0x${op.toString(16)} at byte ${at}`);
  }
  if (p !== end) throw new Error(`function body overran its size at byte ${end}`);
}

let functions = 0, withSimd = 0;
try {
  p = 8; // magic + version
  while (p < bytes.length) {
    const id = u8(), size = leb(), end = p + size;
    if (id === 10) {
      functions = leb();
      for (let i = 0; i < functions; i++) {
        const len = leb(), before = [...simdOps.values()].reduce((a, b) => a + b, 0);
        body(p + len);
        if ([...simdOps.values()].reduce((a, b) => a + b, 0) > before) withSimd++;
      }
    }
    p = end;
  }
} catch (e) {
  fail(`cannot decode the code section: ${e.message}`);
}

const total = [...simdOps.values()].reduce((a, b) => a + b, 0);
console.log(`check-wasm: ${file}: ${bytes.length} bytes, valid, ${functions} functions, ` +
  `${total} SIMD instructions (${simdOps.size} distinct) in ${withSimd} functions`);
if (total < min) fail(`${total} SIMD instructions (need >= ${min}): was it built with -C target-feature=+simd128, and do the kernels use v128?`);
