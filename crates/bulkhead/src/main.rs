//! STUB — being written. The `bulkhead` binary.
fn main() {}
