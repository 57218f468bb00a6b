//! The config parser and validator on arbitrary text: every outcome is Ok or a list of errors,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bulkhead_config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent"));
    }
});
