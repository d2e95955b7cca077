//! Any bytes given to the trec reader end in examples or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixup_data::{Format, TrecLabels, parse_examples};

fuzz_target!(|data: &[u8]| {
    let _ = parse_examples(
        Path::new("fuzz.trec"),
        data,
        &Format::Trec(TrecLabels::Fine),
    );
});
