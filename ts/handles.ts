/**
 * Ownership of core objects from TypeScript: a handle plus the instance generation it lives in.
 * dispose() frees it; a FinalizationRegistry frees it if the wrapper is garbage-collected first.
 */
import { NeurodeError } from './errors.js';
import { core } from './wasm.js';

interface Held { handle: number; generation: number }

const registry = new FinalizationRegistry<Held>((held) => {
  // Only free in the instance that made it (a panic may have replaced the instance since).
  try {
    const c = core();
    if (c.generation === held.generation) c.exports.nd_free_object(held.handle);
  } catch {
    /* the core is gone: nothing to free */
  }
});

export class CoreHandle {
  private readonly held: Held;
  private disposed = false;

  constructor(handle: number, private readonly what: string) {
    this.held = { handle, generation: core().generation };
    registry.register(this, this.held, this);
  }

  /** The live handle; throws DISPOSED or INSTANCE_RESET when it cannot be used. */
  get(): number {
    if (this.disposed) throw new NeurodeError('DISPOSED', `this ${this.what} was disposed`);
    if (core().generation !== this.held.generation) {
      throw new NeurodeError('INSTANCE_RESET', `this ${this.what} was lost when the WebAssembly core was restarted after a panic`);
    }
    return this.held.handle;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the core object (idempotent). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    registry.unregister(this);
    const c = core();
    if (c.generation === this.held.generation) c.exports.nd_free_object(this.held.handle);
  }

  /** Marks the object as consumed by the core (it freed it itself). */
  consumed(): void {
    this.disposed = true;
    registry.unregister(this);
  }
}
