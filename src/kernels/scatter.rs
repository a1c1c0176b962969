//! The scatter micro-kernel of the streaming class statistics
//! ([`crate::geometry::stats`]): `S += X^T X` on rows packed in column
//! panels, register-blocked, with AVX2/AVX-512 variants chosen at run time
//! (the `unsafe` calls of `target_feature` functions). Pure f64, no burn;
//! checked against the plain reference in `geometry::stats`'s tests.

/// Which scatter micro-kernel the CPU can run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kernel {
    /// Portable Rust (whatever the compile target allows).
    Portable,
    /// x86-64 with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    pub(crate) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Panel width (columns per packed panel).
    pub(crate) fn width(self) -> usize {
        match self {
            Kernel::Portable => 8,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 8,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 16,
        }
    }

    pub(crate) fn run(self, buf: &[f64], nr: usize, dim: usize, scatter: &mut [f64]) {
        match self {
            Kernel::Portable => scatter_panels::<4, 8, false>(buf, nr, dim, scatter),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` returned Avx2 only when the CPU has AVX2 and FMA.
            Kernel::Avx2 => unsafe { scatter_avx2(buf, nr, dim, scatter) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` returned Avx512 only when the CPU has AVX-512F.
            Kernel::Avx512 => unsafe { scatter_avx512(buf, nr, dim, scatter) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scatter_avx2(buf: &[f64], nr: usize, dim: usize, scatter: &mut [f64]) {
    scatter_panels::<4, 8, true>(buf, nr, dim, scatter);
}

// 4 x 16 tile = 8 zmm accumulators; an 8 x 16 tile measured 10x slower
// (the accumulator array spills), 4 x 24 about the same as 4 x 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn scatter_avx512(buf: &[f64], nr: usize, dim: usize, scatter: &mut [f64]) {
    scatter_panels::<4, 16, true>(buf, nr, dim, scatter);
}

/// Upper-triangle scatter update `S[j][k] += sum_r X[r][j] X[r][k]`, `j <= k`.
///
/// `buf` holds `nr` rows packed in panels of `NR` columns: entry `(r, j)` at
/// `((j / NR) * nr + r) * NR + j % NR`, zero-padded past `dim`. Each tile of
/// `MR` rows of S (a slice of a panel) times `NR` columns (one panel) keeps
/// its `MR x NR` sums in registers over all `nr` rows.
#[inline(always)]
fn scatter_panels<const MR: usize, const NR: usize, const FMA: bool>(
    buf: &[f64],
    nr: usize,
    dim: usize,
    scatter: &mut [f64],
) {
    let panels = dim.div_ceil(NR);
    let per_panel = NR / MR;
    for kp in 0..panels {
        let kpanel = &buf[kp * nr * NR..(kp + 1) * nr * NR];
        for jb in 0..(kp + 1) * per_panel {
            let j0 = jb * MR;
            if j0 >= dim {
                break;
            }
            let jp = jb / per_panel;
            let off = (jb % per_panel) * MR;
            let jpanel = &buf[jp * nr * NR..(jp + 1) * nr * NR];
            let mut acc = [[0.0f64; NR]; MR];
            for (a, b) in jpanel.chunks_exact(NR).zip(kpanel.chunks_exact(NR)) {
                let a: &[f64; MR] = a[off..off + MR].try_into().expect("tile width");
                let b: &[f64; NR] = b.try_into().expect("panel width");
                for i in 0..MR {
                    let ai = a[i];
                    for l in 0..NR {
                        acc[i][l] = if FMA {
                            ai.mul_add(b[l], acc[i][l])
                        } else {
                            acc[i][l] + ai * b[l]
                        };
                    }
                }
            }
            for (i, acc_row) in acc.iter().enumerate() {
                let j = j0 + i;
                if j >= dim {
                    break;
                }
                let k0 = (kp * NR).max(j);
                let k1 = ((kp + 1) * NR).min(dim);
                let row = &mut scatter[j * dim..(j + 1) * dim];
                for k in k0..k1 {
                    row[k] += acc_row[k - kp * NR];
                }
            }
        }
    }
}
