//! neurode core: ODE solvers, neural vector fields with vector-Jacobian products, gradients of
//! ODE solutions (adjoint, backprop, checkpoint) and optimisers. Compiled to SIMD wasm; the
//! `abi` module is the only surface TypeScript sees.

pub mod error;
pub mod real;
