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
    #[error("unknown device {name:?} (known: flex, ndarray, wgpu, cuda, tch, tch-cuda)")]
    Unknown {
        /// The requested name.
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
    let Some(feature) = feature_of(&name) else {
        return Err(DeviceError::Unknown { name });
    };
    let compiled = compiled_backends();
    if !compiled.contains(&name.as_str()) && !(feature == "tch" && compiled.contains(&"tch")) {
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
    let device = make(&name).ok_or_else(|| DeviceError::Unknown { name: name.clone() })?;
    Ok((device, name))
}

#[allow(unreachable_code, deprecated)]
fn make(name: &str) -> Option<Device> {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Some(Device::flex()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Some(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Some(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Some(Device::cuda(0)),
        #[cfg(feature = "tch")]
        "tch" | "tch-cpu" => Some(Device::libtorch()),
        #[cfg(feature = "tch")]
        "tch-cuda" => Some(Device::libtorch_cuda(0)),
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
    fn flex_is_the_default() {
        if std::env::var("BURN_DEVICE").is_err() {
            let (_, name) = select_device(None).expect("default");
            assert_eq!(name, compiled_backends()[0]);
        }
    }
}
