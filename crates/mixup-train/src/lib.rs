//! # mixup-train
//!
//! The training side of the mixup zoo: recipes ([`recipe`]), finding or fetching data
//! ([`data`], [`fetch`]), the training loop ([`train`]), run folders ([`run`]), plots
//! ([`plot`]) and backend selection ([`device`], the only module that names backends). The
//! `mixup` binary (`src/main.rs`) is a thin command-line layer over these.

#![deny(missing_docs)]

pub mod data;
pub mod device;
pub mod fetch;
pub mod plot;
pub mod recipe;
pub mod run;
pub mod train;
