#![no_main]
//! Fuzzes the config parser: see `symfeat::fuzzing::config_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| symfeat::fuzzing::config_file(data));
