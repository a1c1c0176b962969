//! symfeat's CPU fast paths: everything a burn upgrade touches and all the
//! performance-motivated `unsafe` of the crate.
//!
//! Nets call these entry points instead of burn's operations; each checks
//! (by `TypeId`) whether the backend is burn's CPU backend (`Flex`, or
//! `Autodiff<Flex>` in training) and otherwise falls back to burn's generic
//! operation, so the layers stay generic over the backend.
//!
//! - [`flex`]: the bridge to burn-flex tensors and burn's autodiff graph
//!   (primitives, `record!` for a custom backward);
//! - [`conv`] + [`sgemm`]: 2-D convolution (im2col, an f32 register tile
//!   and the `gemm` crate), forward and backward;
//! - [`pool`]: max pooling and global average pooling;
//! - [`shortcut`]: the ResNets' option-A shortcut;
//! - [`batch_norm`]: BatchNorm (+ residual, + ReLU) in one sweep;
//! - [`gemm`]: the wrappers around the `gemm` crate, shared with
//!   `geometry` (no burn in it);
//! - [`scatter`]: the SIMD scatter kernel of `geometry::stats` (no burn);
//! - [`binary_act`]: binary networks' sign activations (ApproxSign);
//! - [`bitconv`]: the bit-packed XNOR/popcount convolution of binary
//!   networks (no burn);
//! - [`tune_allocator`]: glibc's allocator settings for training.
//!
//! Speed figures and how they were measured: README, Speed.

pub(crate) mod batch_norm;
pub(crate) mod binary_act;
pub mod bitconv;
pub mod conv;
pub(crate) mod flex;
pub mod gemm;
pub mod pool;
pub(crate) mod scatter;
pub(crate) mod sgemm;
pub(crate) mod shortcut;

/// Makes glibc keep freed memory for reuse (`M_TOP_PAD` of 256 MiB): a
/// training step frees and reallocates the same large activation and
/// gradient buffers every time, and with glibc's defaults many of them come
/// back as fresh pages, each zero-filled on first touch (page faults were
/// 13 % of a CNN step in `perf`). Measured on the reference CNN, batch 128,
/// 2 threads: 983-1,018 train img/s before, 1,439-1,467 after. Call once,
/// at start-up, before other threads exist. A no-op off Linux/glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; it is called
    // before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        // Buffers up to 32 MiB (glibc's maximum) from the heap, not from
        // fresh mmap'd pages; and no trimming of what is freed below 1 GiB.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// What the nets' and kernels' tests share.
#[cfg(test)]
pub(crate) mod test_util {
    use burn::prelude::*;

    /// A tensor's values as f32.
    pub(crate) fn vals<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// Sum of |gradient| of a parameter (0 without a gradient).
    pub(crate) fn grad_abs_sum<B: burn::tensor::backend::AutodiffBackend, const D: usize>(
        p: &burn::module::Param<Tensor<B, D>>,
        grads: &B::Gradients,
    ) -> f64 {
        p.val().grad(grads).map_or(0.0, |g| {
            g.into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.abs() as f64)
                .sum()
        })
    }
}
