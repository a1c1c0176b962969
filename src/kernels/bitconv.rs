//! Bit-packed binary convolution (and fully connected layer): 1-bit
//! weights and activations, 64 per word, dot products by XOR + popcount.
//!
//! For +-1 vectors `a`, `w` of length K held as bits (1 = +1),
//! `a . w = K - 2 popcount(a XOR w)`. Zero padding contributes 0 (neither
//! +1 nor -1), so a patch carries a validity mask: over the valid taps,
//! `a . w = n_valid - 2 popcount((a XOR w) AND mask)`.
//!
//! Layouts:
//! - weights, per output channel, K = kh kw C bits in tap-major order
//!   (bit `(ky kw + kx) C + c`), `ceil(K / 64)` words per row, the tail
//!   bits zero ([`PackedWeights::rows`], the export layout); for the
//!   kernel they are also interleaved in blocks of 8 output channels, word
//!   by word, so one 512-bit register holds 8 channels' word `i`;
//! - activations, per image, per pixel, `ceil(C / 64)` words of channel
//!   bits; a patch is assembled by copying each tap's C bits to its offset.
//!
//! The inner loop (8 channels x the patch's words, XOR, AND, popcount,
//! add) is compiled three times: with AVX-512 VPOPCNTDQ (8 popcounts per
//! instruction), with the scalar POPCNT instruction, and portable; the CPU
//! picks at run time. Images run in parallel on the rayon pool.
//!
//! Outputs are the exact integer dot products as f32 (|dot| <= K < 2^24),
//! the same values as a float convolution of +-1 tensors.

use rayon::prelude::*;

/// Shape of a binary layer; a fully connected layer is a 1x1 convolution
/// on a 1x1 image with C = its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BitGeom {
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height and width.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (all sides).
    pub pad: usize,
}

impl BitGeom {
    /// Bits per output channel.
    pub fn k(&self) -> usize {
        self.kh * self.kw * self.c
    }
    /// Words per output channel's row.
    pub fn words(&self) -> usize {
        self.k().div_ceil(64)
    }
    /// Output size on an `h x w` input.
    pub fn out(&self, h: usize, w: usize) -> (usize, usize) {
        let f = |n: usize, k: usize| (n + 2 * self.pad).saturating_sub(k) / self.stride.max(1) + 1;
        (f(h, self.kh), f(w, self.kw))
    }
}

/// Lanes per weight block.
const LANES: usize = 8;

/// A binary layer's packed signs.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    /// Its shape.
    pub geom: BitGeom,
    /// `[O, words]`, row-major.
    pub rows: Vec<u64>,
    /// `[ceil(O / 8), words, 8]`: the rows interleaved for the kernel
    /// (missing channels of the last block are zero and ignored).
    blocks: Vec<[u64; LANES]>,
}

impl PackedWeights {
    /// Pack +-1 weights `[O, C, kh, kw]` (burn's layout; +1 where `>= 0`).
    pub fn from_signs(signs: &[f32], geom: BitGeom) -> Self {
        let (c, kk) = (geom.c, geom.kh * geom.kw);
        let words = geom.words();
        let mut rows = vec![0u64; geom.o * words];
        for o in 0..geom.o {
            for ci in 0..c {
                for t in 0..kk {
                    if signs[(o * c + ci) * kk + t] >= 0.0 {
                        let bit = t * c + ci;
                        rows[o * words + bit / 64] |= 1 << (bit % 64);
                    }
                }
            }
        }
        Self::from_rows(rows, geom)
    }

    /// From rows of the export layout (`[O, words]`).
    pub fn from_rows(rows: Vec<u64>, geom: BitGeom) -> Self {
        let words = geom.words();
        let nblocks = geom.o.div_ceil(LANES);
        let mut blocks = vec![[0u64; LANES]; nblocks * words];
        for o in 0..geom.o {
            for i in 0..words {
                blocks[(o / LANES) * words + i][o % LANES] = rows[o * words + i];
            }
        }
        Self { geom, rows, blocks }
    }

    /// Bytes of the packed signs.
    pub fn bytes(&self) -> usize {
        self.rows.len() * 8
    }
}

/// Copy the low `nbits` bits of `src` (little-endian words) into `dst` at
/// bit offset `off` (ORed in; `dst` starts zeroed).
#[inline(always)]
fn put_bits(dst: &mut [u64], off: usize, src: &[u64], nbits: usize) {
    let (mut o, mut left) = (off, nbits);
    for &v in src {
        if left == 0 {
            break;
        }
        let take = left.min(64);
        let v = if take < 64 {
            v & ((1u64 << take) - 1)
        } else {
            v
        };
        let (w, sh) = (o / 64, o % 64);
        dst[w] |= v << sh;
        if sh != 0 && sh + take > 64 {
            dst[w + 1] |= v >> (64 - sh);
        }
        o += take;
        left -= take;
    }
}

/// The popcounts of `(patch XOR w) AND mask` for the 8 channels of one
/// weight block (`mask` `None`: all taps valid), summed over the words.
trait Dots {
    fn dots(patch: &[u64], mask: Option<&[u64]>, wb: &[[u64; LANES]]) -> [u64; LANES];
}

/// Portable Rust (LLVM may vectorise it).
struct Portable;

impl Dots for Portable {
    #[inline(always)]
    fn dots(patch: &[u64], mask: Option<&[u64]>, wb: &[[u64; LANES]]) -> [u64; LANES] {
        let mut acc = [0u64; LANES];
        for (i, (&p, w8)) in patch.iter().zip(wb).enumerate() {
            let m = mask.map_or(u64::MAX, |m| m[i]);
            for l in 0..LANES {
                acc[l] += ((p ^ w8[l]) & m).count_ones() as u64;
            }
        }
        acc
    }
}

/// AVX-512 VPOPCNTDQ: one 512-bit XOR, AND and popcount per word for the
/// 8 channels.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Dots for Avx512 {
    #[inline(always)]
    fn dots(patch: &[u64], mask: Option<&[u64]>, wb: &[[u64; LANES]]) -> [u64; LANES] {
        // SAFETY: `Avx512` is only used by `image_avx512`, which `isa()`
        // selects when the CPU has AVX-512F and VPOPCNTDQ.
        unsafe { avx512_dots(patch, mask, wb) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn avx512_dots(patch: &[u64], mask: Option<&[u64]>, wb: &[[u64; LANES]]) -> [u64; LANES] {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_si512();
    for (i, (&p, w8)) in patch.iter().zip(wb).enumerate() {
        // SAFETY: `w8` is 8 u64 = 64 bytes; unaligned load.
        let w = unsafe { _mm512_loadu_si512(w8.as_ptr().cast()) };
        let mut x = _mm512_xor_si512(_mm512_set1_epi64(p as i64), w);
        if let Some(m) = mask {
            x = _mm512_and_si512(x, _mm512_set1_epi64(m[i] as i64));
        }
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    let mut out = [0u64; LANES];
    // SAFETY: `out` is 64 bytes.
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), acc) };
    out
}

/// One image: `x` `[C, H, W]` floats -> `y` `[O, Ho, Wo]` dot products.
#[inline(always)]
fn image<D: Dots>(pw: &PackedWeights, x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    let g = pw.geom;
    let (ho, wo) = g.out(h, w);
    let hw = h * w;
    let cw = g.c.div_ceil(64);
    let words = g.words();
    let k = g.k() as i64;
    // Channel bits per pixel, word-major (`[cw, H W]`): each channel plane
    // ORs its bit into one contiguous row of words (vectorises).
    let mut planes = vec![0u64; cw * hw];
    for ci in 0..g.c {
        let plane = &x[ci * hw..(ci + 1) * hw];
        let (word, bit) = (ci / 64, ci % 64);
        let row = &mut planes[word * hw..(word + 1) * hw];
        for (d, &v) in row.iter_mut().zip(plane) {
            *d |= u64::from(v >= 0.0) << bit;
        }
    }
    let mut pix = vec![0u64; cw];
    let mut ones = vec![0u64; cw];
    put_bits(&mut ones, 0, &vec![u64::MAX; cw], g.c);
    let mut patch = vec![0u64; words];
    let mut mask = vec![0u64; words];
    let nblocks = g.o.div_ceil(LANES);
    let mut out = vec![0f32; nblocks * LANES];
    for oy in 0..ho {
        for ox in 0..wo {
            let (y0, x0) = (oy * g.stride, ox * g.stride);
            let interior =
                y0 >= g.pad && x0 >= g.pad && y0 + g.kh <= h + g.pad && x0 + g.kw <= w + g.pad;
            patch.fill(0);
            if !interior {
                mask.fill(0);
            }
            let mut valid = 0usize;
            for ky in 0..g.kh {
                let iy = (y0 + ky).wrapping_sub(g.pad);
                if iy >= h {
                    continue;
                }
                for kx in 0..g.kw {
                    let ix = (x0 + kx).wrapping_sub(g.pad);
                    if ix >= w {
                        continue;
                    }
                    let off = (ky * g.kw + kx) * g.c;
                    let p = iy * w + ix;
                    if cw == 1 {
                        // One word of channel bits: two shifted ORs.
                        let (wi, sh) = (off / 64, off % 64);
                        let v = planes[p];
                        patch[wi] |= v << sh;
                        if sh != 0 && sh + g.c > 64 {
                            patch[wi + 1] |= v >> (64 - sh);
                        }
                    } else {
                        for (j, d) in pix.iter_mut().enumerate() {
                            *d = planes[j * hw + p];
                        }
                        put_bits(&mut patch, off, &pix, g.c);
                    }
                    if !interior {
                        put_bits(&mut mask, off, &ones, g.c);
                    }
                    valid += 1;
                }
            }
            let n_valid = (valid * g.c) as i64;
            let m = (!interior).then_some(&mask[..]);
            for b in 0..nblocks {
                let acc = D::dots(&patch, m, &pw.blocks[b * words..(b + 1) * words]);
                let n = if interior { k } else { n_valid };
                for (l, &a) in acc.iter().enumerate() {
                    out[b * LANES + l] = (n - 2 * a as i64) as f32;
                }
            }
            let at = oy * wo + ox;
            for (o, &v) in out[..g.o].iter().enumerate() {
                y[o * ho * wo + at] = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
fn image_avx512(pw: &PackedWeights, x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    image::<Avx512>(pw, x, h, w, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn image_popcnt(pw: &PackedWeights, x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    image::<Portable>(pw, x, h, w, y)
}

/// Which compiled inner loop this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 VPOPCNTDQ.
    Avx512,
    /// Scalar POPCNT.
    Popcnt,
    /// Portable Rust.
    Portable,
}

/// The best inner loop for this CPU.
pub fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vpopcntdq") {
            return Isa::Avx512;
        }
        if is_x86_feature_detected!("popcnt") {
            return Isa::Popcnt;
        }
    }
    Isa::Portable
}

fn image_with(isa: Isa, pw: &PackedWeights, x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    match isa {
        // SAFETY: `isa()` found the features these were compiled for.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { image_avx512(pw, x, h, w, y) },
        #[cfg(target_arch = "x86_64")]
        Isa::Popcnt => unsafe { image_popcnt(pw, x, h, w, y) },
        _ => image::<Portable>(pw, x, h, w, y),
    }
}

/// The binary convolution of `x` `[N, C, H, W]` (binarised here: bit 1
/// where `>= 0`) with `pw`: `[N, O, Ho, Wo]` dot products, row-major, on
/// the inner loop `isa`.
pub fn conv_isa(pw: &PackedWeights, x: &[f32], [n, c, h, w]: [usize; 4], isa: Isa) -> Vec<f32> {
    assert_eq!(c, pw.geom.c, "binary conv: input channels");
    assert_eq!(x.len(), n * c * h * w, "binary conv: input size");
    let (ho, wo) = pw.geom.out(h, w);
    let per = pw.geom.o * ho * wo;
    let mut y = vec![0f32; n * per];
    if per == 0 {
        return y;
    }
    y.par_chunks_mut(per)
        .zip(x.par_chunks(c * h * w))
        .for_each(|(yi, xi)| image_with(isa, pw, xi, h, w, yi));
    y
}

/// [`conv_isa`] on the best inner loop.
pub fn conv(pw: &PackedWeights, x: &[f32], shape: [usize; 4]) -> Vec<f32> {
    conv_isa(pw, x, shape, isa())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The float convolution of sign(x) and sign(w) with zero padding, in
    /// f64 (the definition).
    fn reference(signs: &[f32], g: BitGeom, x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
        let s = |v: f32| if v >= 0.0 { 1.0 } else { -1.0 };
        let (ho, wo) = g.out(h, w);
        let mut y = vec![0f32; n * g.o * ho * wo];
        for ni in 0..n {
            for o in 0..g.o {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0f64;
                        for ci in 0..c {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xv = x[((ni * c + ci) * h + iy as usize) * w + ix as usize];
                                    let wv = signs[((o * c + ci) * g.kh + ky) * g.kw + kx];
                                    acc += s(xv) * wv as f64;
                                }
                            }
                        }
                        y[((ni * g.o + o) * ho + oy) * wo + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    /// Every inner loop this CPU has against the definition: odd channel
    /// counts (below, at and above a word), kernel sizes 1/3/5, strides 1
    /// and 2, padding 0-2, odd image sizes, exact zeros (sign +1).
    #[test]
    fn packed_conv_matches_the_float_definition() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut isas = vec![Isa::Portable];
        if isa() != Isa::Portable {
            isas.push(isa());
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("popcnt") && !isas.contains(&Isa::Popcnt) {
            isas.push(Isa::Popcnt);
        }
        let cases = [
            (1, 3, 1, 1, 0, 5, 5),
            (3, 9, 3, 1, 1, 7, 6),
            (16, 16, 3, 2, 1, 8, 8),
            (63, 5, 3, 1, 1, 5, 7),
            (64, 17, 3, 1, 0, 6, 6),
            (65, 8, 5, 1, 2, 7, 7),
            (32, 64, 5, 1, 2, 14, 14),
            (130, 3, 1, 1, 0, 2, 3),
            (7, 11, 5, 2, 2, 9, 9),
        ];
        for (c, o, k, stride, pad, h, w) in cases {
            let g = BitGeom {
                c,
                o,
                kh: k,
                kw: k,
                stride,
                pad,
            };
            let n = 3;
            let signs: Vec<f32> = (0..o * c * k * k)
                .map(|_| if rng.r#gen::<bool>() { 1.0 } else { -1.0 })
                .collect();
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| {
                    if i % 17 == 0 {
                        0.0
                    } else {
                        rng.r#gen::<f32>() - 0.5
                    }
                })
                .collect();
            let pw = PackedWeights::from_signs(&signs, g);
            assert_eq!(pw.rows.len(), o * g.words());
            let want = reference(&signs, g, &x, [n, c, h, w]);
            for &i in &isas {
                let got = conv_isa(&pw, &x, [n, c, h, w], i);
                assert_eq!(
                    got, want,
                    "{i:?}: c {c} o {o} k {k} s {stride} p {pad} {h}x{w}"
                );
            }
        }
    }

    /// put_bits across word boundaries.
    #[test]
    fn bits_land_at_their_offsets() {
        let mut d = vec![0u64; 3];
        put_bits(&mut d, 60, &[0b1011, 0], 4);
        assert_eq!(d[0], 0b1011 << 60);
        put_bits(&mut d, 62, &[u64::MAX, 0b1], 65);
        // Bits 62..=126: the top two of word 0, 63 of word 1.
        assert_eq!(d[0] >> 62, 0b11);
        assert_eq!(d[1], u64::MAX >> 1);
        assert_eq!(d[2], 0);
        let mut d = vec![0u64; 3];
        put_bits(&mut d, 100, &[u64::MAX], 64);
        assert_eq!(d, vec![0, u64::MAX << 36, (1 << 36) - 1]);
    }
}
