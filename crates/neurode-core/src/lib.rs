//! neurode core: ODE solvers, neural vector fields with vector-Jacobian products, gradients of
//! ODE solutions (adjoint, backprop, checkpoint) and optimisers. Compiled to SIMD wasm; the
//! `abi` module is the only surface TypeScript sees.

pub mod abi;
pub mod abi_latent;
pub mod abi_cnf;
pub mod abi_odenet;
pub mod abi_solvers;
pub mod abi_trajectory;
pub mod alloc;
pub mod cnf;
pub mod conv;
pub mod datasets;
pub mod error;
pub mod field;
pub mod grad;
pub mod loss;
pub mod math;
pub mod nn;
pub mod odenet;
pub mod optim;
pub mod rng;
pub mod tensor;
pub mod real;
pub mod solver;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;
pub mod latent;
