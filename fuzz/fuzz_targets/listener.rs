//! Raw bytes from a client, served by the load-balancer listener's stack
//! (or, when the first byte is odd, the admin listener's), in-process.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        healthgate::fuzz::serve(first & 1 == 1, rest);
    }
});
