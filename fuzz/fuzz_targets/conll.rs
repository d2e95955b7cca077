//! Any bytes given to the CoNLL reader (BIO or IOB1) end in sentences or an error, never a
//! panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixup_data::{ConllOptions, TagScheme, parse_conll};

fuzz_target!(|data: &[u8]| {
    let iob1 = ConllOptions {
        scheme: TagScheme::Iob1,
        ..ConllOptions::default()
    };
    let _ = parse_conll(Path::new("fuzz.conll"), data, &ConllOptions::default());
    let _ = parse_conll(Path::new("fuzz.conll"), data, &iob1);
});
