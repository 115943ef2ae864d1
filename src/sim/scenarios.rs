//! Each e2e scenario's starting state in the model, and its expected end.
#![forbid(unsafe_code)]
