//! Any bytes given to the csv reader end in examples or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixup_data::{Format, parse_examples};

fuzz_target!(|data: &[u8]| {
    let _ = parse_examples(
        Path::new("fuzz.csv"),
        data,
        &Format::Csv {
            text_column: "text".into(),
            label_column: "label".into(),
            text_b_column: None,
        },
    );
});
