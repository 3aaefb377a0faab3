//! A body posted to the admin API (/admin/drain and a push report).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    healthgate::fuzz::admin_json(data);
});
