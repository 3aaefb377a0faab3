//! An HTTP answer (status from the first two bytes, then the body) judged
//! by every kind of http expectation: status, body substring and regex,
//! JSON pointers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
    healthgate::fuzz::http_answer(status, &data[2..]);
});
