//! What kind of device a tensor lives on, as far as the kernels care.

use burn::tensor::Device;

/// The device without its autodiff wrapper.
#[allow(unreachable_patterns, clippy::match_single_binding)]
fn base(device: &Device) -> &burn::backend::DispatchDevice {
    match device.as_dispatch() {
        burn::backend::DispatchDevice::Autodiff(inner) => inner,
        other => other,
    }
}

/// Whether tensors on `device` live in host memory (flex, ndarray, LibTorch on the CPU): there,
/// drawing a dropout mask on the host and uploading it costs a copy at most.
#[allow(unreachable_patterns, unused_variables)]
pub fn is_host_device(device: &Device) -> bool {
    match base(device) {
        #[cfg(feature = "flex")]
        burn::backend::DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        burn::backend::DispatchDevice::NdArray(_) => true,
        #[cfg(feature = "tch")]
        burn::backend::DispatchDevice::LibTorch(d) => {
            matches!(d, burn::backend::libtorch::LibTorchDevice::Cpu)
        }
        _ => false,
    }
}

/// Whether [`crate::lstm::lstm_recurrence`] has a fused implementation on `device` (today: the
/// Flex backend, with or without autodiff).
#[allow(unreachable_patterns, unused_variables)]
pub fn has_fused_lstm(device: &Device) -> bool {
    match base(device) {
        #[cfg(feature = "flex")]
        burn::backend::DispatchDevice::Flex(_) => true,
        _ => false,
    }
}
