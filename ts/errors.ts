/** Every error neurode throws on purpose is a NeurodeError with a stable `code`. */
export type ErrorCode =
  | 'INVALID_ARGUMENT' // an argument is malformed; `argument` names it
  | 'NOT_INITIALIZED' // a synchronous API was called before `await init()`
  | 'DISPOSED' // the object's dispose() was called
  | 'INSTANCE_RESET' // the object lived in a WebAssembly instance replaced after a panic
  | 'MAX_STEPS' // the solver needed more than `maxSteps` steps
  | 'STEP_UNDERFLOW' // the step size became too small to advance time
  | 'NON_FINITE' // the state or its derivative became NaN or Infinity
  | 'WASM_PANIC' // the core hit an internal error; the instance was replaced
  | 'INVALID_HANDLE'
  | 'OUT_OF_MEMORY'
  | 'WORKER_CRASHED' // a pool worker died (crash, exit or terminate) while running the call
  | 'POOL_TERMINATED'; // the WorkerPool was terminated

export class NeurodeError extends Error {
  readonly code: ErrorCode;
  /** The argument at fault (INVALID_ARGUMENT). */
  readonly argument?: string;
  /** The time reached (MAX_STEPS, STEP_UNDERFLOW, NON_FINITE). */
  readonly time?: number;

  constructor(code: ErrorCode, message: string, extra: { argument?: string; time?: number; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'NeurodeError';
    this.code = code;
    if (extra.argument !== undefined) this.argument = extra.argument;
    if (extra.time !== undefined) this.time = extra.time;
  }
}

/** Shorthand for an INVALID_ARGUMENT error that names the argument. */
export function invalid(argument: string, problem: string): NeurodeError {
  return new NeurodeError('INVALID_ARGUMENT', `${argument}: ${problem}`, { argument });
}
