//! Fused kernels of the mixup zoo, added to Burn through its backend extensions
//! (`#[backend_extension]`), never by forking Burn.
//!
//! One file per op, each with a reference test against the plain Burn ops it replaces:
//! - [`lstm`]: one LSTM layer's recurrence over a whole sequence, both directions at once,
//!   with a hand-written backward (Flex).
//! - [`adam`]: Adam and AdamW as one pass over parameter, gradient and moments on Flex, through
//!   Burn's `Optimizer` trait with Burn's state type (records and resume unchanged).
//! - [`mod@dropout`]: dropout whose mask is drawn on the host by a fast counter-based generator on
//!   Flex (one multiply in the graph); other backends keep Burn's dropout.
//!
//! Models call the functions here and never name a backend: [`has_fused_lstm`] says whether a
//! device has the fused path, and the model falls back to plain Burn ops where it has not.

pub mod adam;
pub mod device;
pub mod dropout;
#[cfg(feature = "flex")]
pub mod lstm;
pub mod math;

pub use adam::{FusedAdam, FusedAdamW};
pub use device::{has_fused_lstm, is_host_device};
pub use dropout::{dropout, dropout_stream, fork_dropout, seed_dropout};
