#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tilegate::fuzzing::token_request(data));
