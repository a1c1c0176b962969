#![no_main]
//! Fuzzes the idx parser: see `symfeat::fuzzing::idx_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| symfeat::fuzzing::idx_file(data));
