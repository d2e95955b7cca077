//! What kind of device a tensor lives on, as far as the kernels care.

use burn::tensor::Device;

/// The device without its autodiff wrapper.
#[allow(unreachable_patterns, clippy::match_single_binding)]
pub(crate) fn base(device: &Device) -> &burn::backend::DispatchDevice {
    match device.as_dispatch() {
        burn::backend::DispatchDevice::Autodiff(inner) => inner,
        other => other,
    }
}

/// Whether the host-side kernels ([`crate::dropout()`]'s masks, [`crate::FusedAdam`]'s host
/// loop) run on `device`: the Flex backend (LibTorch's CPU device has its own Adam path and
/// shares the dropout masks, [`has_host_dropout`]). ndarray was not measured; GPUs keep their
/// device RNG and Burn's Adam.
#[allow(unreachable_patterns, unused_variables)]
pub fn is_host_device(device: &Device) -> bool {
    match base(device) {
        #[cfg(feature = "flex")]
        burn::backend::DispatchDevice::Flex(_) => true,
        _ => false,
    }
}

/// Whether [`crate::dropout()`] draws its masks on the host: Flex and LibTorch's CPU device
/// (measured to pay on both); GPUs keep their device RNG.
pub fn has_host_dropout(device: &Device) -> bool {
    #[cfg(feature = "tch")]
    if is_libtorch_cpu(device) {
        return true;
    }
    is_host_device(device)
}

/// Whether [`crate::lstm_layer()`] has a fused implementation on `device`: the Flex backend
/// (our recurrence, [`crate::lstm`]) and LibTorch's CPU device (ATen's LSTM, `lstm_tch`), with
/// or without autodiff. Elsewhere models run the layer in plain Burn ops.
pub fn has_fused_lstm(device: &Device) -> bool {
    #[cfg(feature = "tch")]
    if is_libtorch_cpu(device) {
        return true;
    }
    has_fused_kernels(device)
}

/// Whether `device` is LibTorch's CPU device (with or without autodiff), where the ATen-backed
/// ops (`lstm_tch`, `norm_tch`, `softmax_tch`) run.
#[cfg(feature = "tch")]
#[allow(deprecated)]
pub(crate) fn is_libtorch_cpu(device: &Device) -> bool {
    matches!(
        base(device),
        burn::backend::DispatchDevice::LibTorch(burn::backend::LibTorchDevice::Cpu)
    )
}

/// Whether the fused LayerNorm and softmax ([`crate::layer_norm()`], [`crate::softmax()`]) run
/// on `device` (today: the Flex backend, with or without autodiff); elsewhere those functions
/// run Burn's own ops.
#[allow(unreachable_patterns, unused_variables)]
pub fn has_fused_kernels(device: &Device) -> bool {
    match base(device) {
        #[cfg(feature = "flex")]
        burn::backend::DispatchDevice::Flex(_) => true,
        _ => false,
    }
}
