//! Helpers shared by the Flex kernels.

use burn::backend::flex::FlexTensor;

/// `t` itself when it is contiguous from its first element, else a contiguous copy.
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t.clone()
    } else {
        t.to_contiguous()
    }
}
