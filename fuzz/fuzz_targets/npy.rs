#![no_main]
//! Fuzzes the npy parser: see `symfeat::fuzzing::npy_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| symfeat::fuzzing::npy_file(data));
