#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lode_fuzz::p2p_decoders::run(data));
