/**
 * What the pool and its workers share: comlink's Endpoint over a Node MessagePort / Worker
 * (comlink ships a Node adapter but no `exports` map, so we keep our own few lines), the wire
 * format of replies, and the platform test.
 */
import type { Endpoint } from 'comlink';
import { NeurodeError, type ErrorCode } from './errors.js';

/** The parts of a Node `Worker` / `parentPort` the adapter uses. */
export interface NodePort {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  on(event: 'message', listener: (data: unknown) => void): unknown;
  off(event: 'message', listener: (data: unknown) => void): unknown;
}

type Listener = EventListenerOrEventListenerObject;

/** Node's `on('message', data)` as the DOM's `addEventListener('message', {data})`. */
export function nodeEndpoint(port: NodePort): Endpoint {
  const wrapped = new Map<Listener, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => port.postMessage(message, transfer),
    addEventListener: (_type: string, l: Listener) => {
      const f = (data: unknown) => {
        const ev = { data } as MessageEvent;
        if (typeof l === 'function') l(ev);
        else l.handleEvent(ev);
      };
      wrapped.set(l, f);
      port.on('message', f);
    },
    removeEventListener: (_type: string, l: Listener) => {
      const f = wrapped.get(l);
      if (f === undefined) return;
      port.off('message', f);
      wrapped.delete(l);
    },
  };
}

export function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string' && typeof (globalThis as { document?: unknown }).document === 'undefined';
}

/** The first message a worker posts once it listens (before that, messages could be lost). */
export const READY = 'neurode-worker-ready';

/** An error as it crosses the worker boundary (comlink would drop the code). */
export interface WireError {
  name: string;
  message: string;
  code?: ErrorCode;
  argument?: string;
  time?: number;
}

/** A worker's reply: the value, an error, or "send me the model" (its cache was empty). */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: WireError } | { ok: false; needModel: true };

export function toWire(e: unknown): WireError {
  if (e instanceof NeurodeError) return { name: e.name, message: e.message, code: e.code, argument: e.argument, time: e.time };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

export function fromWire(w: WireError): Error {
  if (w.code !== undefined) {
    return new NeurodeError(w.code, w.message, { ...(w.argument !== undefined ? { argument: w.argument } : {}), ...(w.time !== undefined ? { time: w.time } : {}) });
  }
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}
