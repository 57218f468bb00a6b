//! STUB — being written. The worker SDK (DESIGN §4).
#![deny(unsafe_code)]
