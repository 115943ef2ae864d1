//! Every shrunk counterexample the property test found, spelled out as a
//! plain test named after what it pins (once the code passes it).
#![forbid(unsafe_code)]
