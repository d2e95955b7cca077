//! Any bytes given to the tsv reader end in examples or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixup_data::{Format, parse_examples};

fuzz_target!(|data: &[u8]| {
    let _ = parse_examples(Path::new("fuzz.tsv"), data, &Format::Tsv);
});
