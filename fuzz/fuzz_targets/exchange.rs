//! What a tcp target answers to an exchange step.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    healthgate::fuzz::exchange(data);
});
