#![no_main]
//! Fuzzes the cifar parser: see `symfeat::fuzzing::cifar_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| symfeat::fuzzing::cifar_file(data));
