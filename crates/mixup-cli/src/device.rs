//! Backend selection: the only place in the workspace that names backends.

use burn::tensor::Device;

/// The backends compiled into this binary, by cargo feature, in the order they are preferred.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "tch") {
        names.push("tch");
        names.push("tch-cuda");
    }
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    names
}

/// A device that cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The backend exists but this binary was built without its cargo feature.
    #[error(
        "backend {name:?} is not compiled into this binary (compiled: {compiled}); rebuild with \
         `cargo build --release -p mixup-train --features {feature}`"
    )]
    NotCompiled {
        /// The requested name.
        name: String,
        /// The feature to enable.
        feature: String,
        /// What is compiled in.
        compiled: String,
    },
    /// No such backend.
    #[error(
        "unknown device {name:?} (known: flex, ndarray, wgpu, cuda, tch, tch-cuda; GPUs take an \
         index, e.g. cuda:1; several devices are a comma-separated list)"
    )]
    Unknown {
        /// The requested name.
        name: String,
    },
    /// The backend is compiled in but its device does not work here (no GPU, no driver).
    #[error("device {name:?} is not usable here: {reason}")]
    Unavailable {
        /// The requested name.
        name: String,
        /// What the backend said, first line.
        reason: String,
    },
    /// A list where one device is wanted.
    #[error(
        "{name:?}: this command (or BURN_DEVICE) takes one device; only `mixup train --device` \
         takes a comma-separated list"
    )]
    List {
        /// The requested names.
        name: String,
    },
    /// Nothing compiled in at all.
    #[error("this binary was built without any backend feature (flex, ndarray, wgpu, cuda, tch)")]
    NoBackend,
}

fn feature_of(name: &str) -> Option<&'static str> {
    match name {
        "flex" => Some("flex"),
        "ndarray" => Some("ndarray"),
        "wgpu" => Some("wgpu"),
        "cuda" => Some("cuda"),
        "tch" | "tch-cpu" | "tch-cuda" => Some("tch"),
        _ => None,
    }
}

/// The device named `name`, or, with `None`, the one `BURN_DEVICE` names, or the first
/// compiled-in backend.
///
/// # Errors
///
/// [`DeviceError`] for an unknown name or one whose feature is not compiled in (Burn itself
/// would panic on such a `BURN_DEVICE`).
pub fn select_device(name: Option<&str>) -> Result<(Device, String), DeviceError> {
    let from_env = std::env::var("BURN_DEVICE")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let name = match name.map(str::to_string).or(from_env) {
        Some(n) => n.trim().to_ascii_lowercase(),
        None => compiled_backends()
            .first()
            .ok_or(DeviceError::NoBackend)?
            .to_string(),
    };
    if name.contains(',') {
        return Err(DeviceError::List { name });
    }
    let (base, index) = match name.split_once(':') {
        Some((b, i)) => match i.parse::<usize>() {
            Ok(i) if matches!(b, "cuda" | "tch-cuda" | "wgpu") => (b.to_string(), Some(i)),
            _ => return Err(DeviceError::Unknown { name }),
        },
        None => (name.clone(), None),
    };
    let Some(feature) = feature_of(&base) else {
        return Err(DeviceError::Unknown { name });
    };
    let compiled = compiled_backends();
    if !(compiled.contains(&base.as_str()) || feature == "tch" && compiled.contains(&"tch")) {
        return Err(DeviceError::NotCompiled {
            name,
            feature: feature.into(),
            compiled: if compiled.is_empty() {
                "none".into()
            } else {
                compiled.join(", ")
            },
        });
    }
    let device = make(&base, index).ok_or_else(|| DeviceError::Unknown { name: name.clone() })?;
    if matches!(base.as_str(), "wgpu" | "cuda" | "tch-cuda") {
        probe(&device).map_err(|reason| DeviceError::Unavailable {
            name: name.clone(),
            reason,
        })?;
    }
    Ok((device, name))
}

/// Puts one value on `device` and reads it back. GPU backends panic when there is no GPU or
/// driver (LibTorch: "Found no NVIDIA driver ..."); the panic is caught here, silently, and
/// its first line returned, so that a wrong `--device` is an error message, not a crash.
fn probe(device: &Device) -> Result<(), String> {
    use std::panic::{AssertUnwindSafe, catch_unwind, set_hook, take_hook};
    // The panic hook is process-wide: one probe at a time swaps it.
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = HOOK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let previous = take_hook();
    set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(|| {
        burn::tensor::Tensor::<1>::from_floats([1.0], device).into_scalar::<f32>()
    }));
    set_hook(previous);
    match result {
        Ok(1.0) => Ok(()),
        Ok(v) => Err(format!("a test value came back as {v}")),
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("the backend panicked");
            // LibTorch's messages carry a C++ backtrace after the first line (a real newline,
            // or an escaped one when the error was Debug-formatted).
            let first = text.lines().next().unwrap_or(text);
            let first = first.split("\\n").next().unwrap_or(first);
            Err(first.chars().take(300).collect())
        }
    }
}

/// Several devices for data-parallel training, from a comma-separated list such as
/// `cuda:0,cuda:1` (each entry as [`select_device`] takes it; `None` is one default device).
/// The first is the main device, which holds the model and the optimiser state.
///
/// # Errors
///
/// The first entry that [`select_device`] refuses, or an empty entry.
pub fn select_devices(spec: Option<&str>) -> Result<Vec<(Device, String)>, DeviceError> {
    let Some(spec) = spec.filter(|s| s.contains(',')) else {
        return Ok(vec![select_device(spec)?]);
    };
    spec.split(',')
        .map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                Err(DeviceError::Unknown {
                    name: spec.to_string(),
                })
            } else {
                select_device(Some(entry))
            }
        })
        .collect()
}

#[allow(unreachable_code, deprecated)]
fn make(name: &str, index: Option<usize>) -> Option<Device> {
    let _ = index;
    match name {
        #[cfg(feature = "flex")]
        "flex" => Some(Device::flex()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Some(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Some(Device::wgpu(match index {
            None => burn::tensor::DeviceKind::DefaultDevice,
            Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
        })),
        #[cfg(feature = "cuda")]
        "cuda" => Some(Device::cuda(index.unwrap_or(0))),
        #[cfg(feature = "tch")]
        "tch" | "tch-cpu" => Some(Device::libtorch()),
        #[cfg(feature = "tch")]
        "tch-cuda" => Some(Device::libtorch_cuda(index.unwrap_or(0))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_backends_are_errors_not_panics() {
        let e = select_device(Some("tpu")).expect_err("unknown");
        assert!(e.to_string().contains("\"tpu\""), "{e}");
        for name in ["flex", "ndarray", "wgpu", "cuda", "tch"] {
            let compiled = compiled_backends().contains(&name);
            match select_device(Some(name)) {
                Ok((_, n)) => assert!(compiled, "{name} selected without its feature ({n})"),
                Err(e) => {
                    assert!(!compiled, "{name} is compiled but failed: {e}");
                    assert!(e.to_string().contains(&format!("--features {name}")), "{e}");
                }
            }
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn device_lists_and_indexes() {
        let two = select_devices(Some("flex, flex")).expect("two flex replicas");
        assert_eq!(
            two.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
            ["flex", "flex"]
        );
        assert_eq!(select_devices(Some("flex")).expect("one").len(), 1);
        for bad in ["flex,,flex", "flex,", "flex:1", "cuda:x", "wgpu:-1"] {
            let e = select_devices(Some(bad)).expect_err(bad);
            assert!(matches!(e, DeviceError::Unknown { .. }), "{bad}: {e}");
        }
        let e = select_device(Some("flex,flex")).expect_err("one device wanted");
        assert!(matches!(e, DeviceError::List { .. }), "{e}");
        // An index is accepted on GPU backends (refused only because it is not compiled in).
        if !compiled_backends().contains(&"cuda") {
            let e = select_devices(Some("flex,cuda:1")).expect_err("cuda not compiled");
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_is_the_default() {
        if std::env::var("BURN_DEVICE").is_err() {
            let (_, name) = select_device(None).expect("default");
            assert_eq!(name, compiled_backends()[0]);
        }
    }
}
