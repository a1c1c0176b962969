//! The one place where the concrete backend is chosen.
//!
//! Nets, heads and the trainer are generic over burn's `Backend`; this module
//! maps `--device cpu|cuda[:N]|libtorch` to a concrete backend and runs a job
//! on it. CPU: burn's pure-Rust `flex` backend. CUDA: burn's `cuda` backend
//! behind the `cuda` cargo feature (CUDA and NVRTC are loaded at run time).
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
    /// The CPU through burn's libtorch backend (cargo feature `tch`).
    LibTorch,
}

impl DeviceChoice {
    /// Parse `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "libtorch" => Ok(Self::LibTorch),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => bail!("--device {s:?}: expected cpu, cuda, cuda:N or libtorch"),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
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

#[cfg(feature = "cuda")]
fn run_cuda<J: BackendJob>(index: usize, job: J) -> Result<J::Output> {
    use burn::backend::cuda::{Cuda, CudaDevice};
    // Without a usable GPU, the first CUDA tensor panics in a worker thread;
    // probe it here, with the panic's report held back (it printed a
    // backtrace), and turn it into a clear error that quotes its first
    // words.
    let device = CudaDevice::new(index);
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
    let probe = std::panic::catch_unwind(|| {
        let t = burn::tensor::Tensor::<Cuda, 1>::ones([1], &device);
        t.into_data()
    });
    std::panic::set_hook(previous);
    if probe.is_err() {
        let cause = first_panic
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .map(|m| {
                let short: String = m
                    .split(" - ")
                    .next()
                    .unwrap_or(&m)
                    .chars()
                    .take(160)
                    .collect();
                format!(" ({short})")
            })
            .unwrap_or_default();
        bail!(
            "--device cuda:{index}: no usable CUDA device{cause}; is an NVIDIA driver present, \
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
    }
}
