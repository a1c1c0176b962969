//! The one place where the concrete backend is chosen.
//!
//! Nets, heads and the trainer are generic over burn's `Backend`; this module
//! maps `--device cpu|cuda[:N]|vulkan[:N|:cpu]|libtorch` to a concrete backend
//! and runs a job on it. CPU: burn's pure-Rust `flex` backend. CUDA: burn's
//! `cuda` backend behind the `cuda` cargo feature (CUDA and NVRTC are loaded
//! at run time). Vulkan: burn's wgpu backend with its SPIR-V compiler behind
//! the `vulkan` cargo feature: any Vulkan 1.3 device (AMD, Intel, NVIDIA, or
//! Mesa's lavapipe on the CPU, which is how CI runs the GPU-generic code;
//! field notes §9).
//!
//! The one other module that names a concrete backend is
//! [`crate::kernels`]: it does not choose one, it recognises `Flex` and
//! `Autodiff<Flex>` (by `TypeId`) to replace burn's generic operations with
//! symfeat's CPU kernels, and falls back to the generic operations on any
//! other backend.

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use std::fmt;

/// The CPU backend (inference).
pub type Cpu = burn::backend::Flex;
/// The CPU backend with autodiff (training).
pub type CpuTrain = burn::backend::Autodiff<Cpu>;

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU (flex backend).
    Cpu,
    /// CUDA GPU with this index.
    Cuda(usize),
    /// A Vulkan device (cargo feature `vulkan`).
    Vulkan(VulkanDevice),
    /// The CPU through burn's libtorch backend (cargo feature `tch`).
    LibTorch,
}

/// Which Vulkan adapter `--device vulkan[...]` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VulkanDevice {
    /// `vulkan`: the best adapter found (a high-power GPU first; lavapipe
    /// when it is the only one).
    Best,
    /// `vulkan:N`: the N-th discrete GPU.
    Discrete(usize),
    /// `vulkan:cpu`: the CPU adapter (Mesa's lavapipe).
    Cpu,
}

impl DeviceChoice {
    /// Parse `cpu`, `cuda`, `cuda:N`, `vulkan`, `vulkan:N`, `vulkan:cpu` or
    /// `libtorch`.
    pub fn parse(s: &str) -> Result<Self> {
        let expected = "expected cpu, cuda, cuda:N, vulkan, vulkan:N, vulkan:cpu or libtorch";
        match s {
            "cpu" => Ok(Self::Cpu),
            "libtorch" => Ok(Self::LibTorch),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "vulkan" => Ok(Self::Vulkan(VulkanDevice::Best)),
            "vulkan:cpu" => Ok(Self::Vulkan(VulkanDevice::Cpu)),
            _ => {
                if let Some(n) = s.strip_prefix("cuda:") {
                    match n.parse::<usize>() {
                        Ok(n) => Ok(Self::Cuda(n)),
                        Err(_) => bail!("--device {s:?}: {expected}"),
                    }
                } else if let Some(n) = s.strip_prefix("vulkan:") {
                    match n.parse::<usize>() {
                        Ok(n) => Ok(Self::Vulkan(VulkanDevice::Discrete(n))),
                        Err(_) => bail!("--device {s:?}: {expected}"),
                    }
                } else {
                    bail!("--device {s:?}: {expected}")
                }
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Vulkan(VulkanDevice::Best) => write!(f, "vulkan"),
            Self::Vulkan(VulkanDevice::Discrete(n)) => write!(f, "vulkan:{n}"),
            Self::Vulkan(VulkanDevice::Cpu) => write!(f, "vulkan:cpu"),
            Self::LibTorch => write!(f, "libtorch"),
        }
    }
}

/// Work that runs on any autodiff backend; [`run_on`] picks the backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Run on backend `B` and `device`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Set the number of CPU threads used by the CPU backend (rayon's global
/// pool; libtorch's intra-op pool too when built with `tch`). Only the first
/// call takes effect on rayon; later calls are ignored.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        #[cfg(feature = "tch")]
        tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

/// Run `job` on the backend of `device`.
pub fn run_on<J: BackendJob>(device: DeviceChoice, job: J) -> Result<J::Output> {
    match device {
        DeviceChoice::Cpu => job.run::<CpuTrain>(Default::default()),
        DeviceChoice::Cuda(index) => run_cuda(index, job),
        DeviceChoice::Vulkan(which) => run_vulkan(which, job),
        DeviceChoice::LibTorch => run_libtorch(job),
    }
}

#[cfg(feature = "tch")]
fn run_libtorch<J: BackendJob>(job: J) -> Result<J::Output> {
    use burn::backend::libtorch::{LibTorch, LibTorchDevice};
    job.run::<burn::backend::Autodiff<LibTorch>>(LibTorchDevice::Cpu)
}

#[cfg(not(feature = "tch"))]
fn run_libtorch<J: BackendJob>(_job: J) -> Result<J::Output> {
    bail!(
        "--device libtorch: this symfeat was built without the libtorch backend; \
         rebuild with `cargo build --release --features tch` (LIBTORCH=<libtorch 2.9>)"
    )
}

/// Touch `device` with a first tensor. Without a usable device, burn's GPU
/// runtimes panic (in a worker thread, with a backtrace); the panic's report
/// is held back here and its first words returned, to be quoted in a clear
/// error.
#[cfg(any(feature = "cuda", feature = "vulkan"))]
fn probe_device<B: burn::tensor::backend::Backend>(device: &B::Device) -> Option<String> {
    let first_panic = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let previous = std::panic::take_hook();
    let seen = first_panic.clone();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        if let Ok(mut slot) = seen.lock() {
            slot.get_or_insert(msg);
        }
    }));
    // The device is only read, and the runtime is not used after a panic.
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t = burn::tensor::Tensor::<B, 1>::ones([1], device);
        t.into_data()
    }));
    std::panic::set_hook(previous);
    probe.err()?;
    let cause = first_panic
        .lock()
        .ok()
        .and_then(|m| m.clone())
        .unwrap_or_default();
    let short: String = cause
        .split(" - ")
        .next()
        .unwrap_or(&cause)
        .split(", adapters")
        .next()
        .unwrap_or(&cause)
        .chars()
        .take(160)
        .collect();
    Some(short)
}

#[cfg(feature = "cuda")]
fn run_cuda<J: BackendJob>(index: usize, job: J) -> Result<J::Output> {
    use burn::backend::cuda::{Cuda, CudaDevice};
    let device = CudaDevice::new(index);
    if let Some(cause) = probe_device::<Cuda>(&device) {
        bail!(
            "--device cuda:{index}: no usable CUDA device ({cause}); is an NVIDIA driver present, \
             and CUDA's headers under CUDA_PATH or /usr/local/cuda for NVRTC?"
        );
    }
    job.run::<burn::backend::Autodiff<Cuda>>(device)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<J: BackendJob>(index: usize, _job: J) -> Result<J::Output> {
    bail!(
        "--device cuda:{index}: this symfeat was built without CUDA support; \
         rebuild with `cargo build --release --features cuda`"
    )
}

#[cfg(feature = "vulkan")]
fn run_vulkan<J: BackendJob>(which: VulkanDevice, job: J) -> Result<J::Output> {
    use burn::backend::Vulkan;
    use burn::backend::wgpu::WgpuDevice;
    let device = match which {
        VulkanDevice::Best => WgpuDevice::DefaultDevice,
        VulkanDevice::Discrete(n) => WgpuDevice::DiscreteGpu(n),
        VulkanDevice::Cpu => WgpuDevice::Cpu,
    };
    if let Some(cause) = probe_device::<Vulkan>(&device) {
        bail!(
            "--device {}: no usable Vulkan adapter ({cause}); install a Vulkan driver \
             (on Debian without a GPU: `apt-get install mesa-vulkan-drivers`, the lavapipe \
             CPU device), or choose another --device",
            DeviceChoice::Vulkan(which)
        );
    }
    job.run::<burn::backend::Autodiff<Vulkan>>(device)
}

#[cfg(not(feature = "vulkan"))]
fn run_vulkan<J: BackendJob>(which: VulkanDevice, _job: J) -> Result<J::Output> {
    bail!(
        "--device {}: this symfeat was built without the Vulkan backend; \
         rebuild with `cargo build --release --features vulkan`",
        DeviceChoice::Vulkan(which)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:3").unwrap(),
            DeviceChoice::Cuda(3)
        );
        let err = DeviceChoice::parse("tpu").unwrap_err().to_string();
        assert!(err.contains("--device") && err.contains("cuda:N"), "{err}");
        assert_eq!(
            DeviceChoice::parse("libtorch").unwrap(),
            DeviceChoice::LibTorch
        );
        assert!(DeviceChoice::parse("cuda:x").is_err());
        assert_eq!(
            DeviceChoice::parse("vulkan").unwrap(),
            DeviceChoice::Vulkan(VulkanDevice::Best)
        );
        assert_eq!(
            DeviceChoice::parse("vulkan:2").unwrap(),
            DeviceChoice::Vulkan(VulkanDevice::Discrete(2))
        );
        assert_eq!(
            DeviceChoice::parse("vulkan:cpu").unwrap(),
            DeviceChoice::Vulkan(VulkanDevice::Cpu)
        );
        assert!(DeviceChoice::parse("vulkan:").is_err());
        for s in [
            "cpu",
            "cuda:1",
            "vulkan",
            "vulkan:3",
            "vulkan:cpu",
            "libtorch",
        ] {
            assert_eq!(DeviceChoice::parse(s).unwrap().to_string(), s);
        }
    }
}
