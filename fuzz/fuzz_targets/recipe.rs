//! Any text given to the recipe parser ends in a recipe or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mixup_cli::recipe::Recipe;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Recipe::parse(text, Path::new("fuzz.toml"));
    }
});
