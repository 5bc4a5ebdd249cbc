//! Any bytes a client could send as a text frame: decoding never panics, and whatever decodes
//! re-encodes to something that decodes to the same message.
#![no_main]

use circle_protocol::decode_client;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = decode_client(text) {
        let again = decode_client(&frame.to_json()).expect("a decoded frame re-encodes validly");
        assert_eq!(again, frame);
    }
});
