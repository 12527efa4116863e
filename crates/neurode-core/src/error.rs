//! Errors of the core. Every fallible path returns `Result<_, Error>`; the ABI turns an
//! `Error` into a status code plus "CODE\tmessage" text that TypeScript wraps in a NeurodeError.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// An argument is malformed (the message names it).
    InvalidArgument,
    /// More than `maxSteps` steps were needed.
    MaxSteps,
    /// The step size became too small to advance time.
    StepUnderflow,
    /// The state or its derivative became NaN/Inf.
    NonFinite,
    /// A JavaScript callback threw; TypeScript re-throws the original exception.
    CallbackError,
    /// A handle does not name a live object.
    InvalidHandle,
    /// Memory could not be allocated.
    OutOfMemory,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::MaxSteps => "MAX_STEPS",
            Code::StepUnderflow => "STEP_UNDERFLOW",
            Code::NonFinite => "NON_FINITE",
            Code::CallbackError => "CALLBACK_ERROR",
            Code::InvalidHandle => "INVALID_HANDLE",
            Code::OutOfMemory => "OUT_OF_MEMORY",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidArgument, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

pub type Result<T> = core::result::Result<T, Error>;
