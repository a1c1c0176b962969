//! From bytes to network input: per-channel `Normalizer`, `fill_batch`
//! (normalise + optional augmentation into a reused buffer) and the
//! deterministic `epoch_order`.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::{Augment, CropFlip};
use super::set::ImageSet;

/// Per-channel normalisation `(p / 255 - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    /// Mean of each channel, in `[0, 1]` units.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel, in `[0, 1]` units.
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Mean and population standard deviation (divide by N) of each
    /// channel over all pixels of `set`, after scaling to `[0, 1]`.
    ///
    /// Sums are exact integers (u64/u128), so the result does not depend on
    /// summation order. A constant channel (std 0) gets std 1, so it is
    /// only centred; an empty set gives mean 0, std 1.
    pub fn fit(set: &ImageSet) -> Normalizer {
        let plane = set.height * set.width;
        let mut sums = vec![(0u64, 0u64); set.channels];
        if set.image_len() > 0 {
            for image in set.images.chunks_exact(set.image_len()) {
                for (c, pixels) in image.chunks_exact(plane).enumerate() {
                    let (s1, s2) = &mut sums[c];
                    for &p in pixels {
                        *s1 += u64::from(p);
                        *s2 += u64::from(p) * u64::from(p);
                    }
                }
            }
        }
        let count = u128::from((set.n * plane) as u64);
        let mut norm = Normalizer::half(set.channels);
        for (c, &(s1, s2)) in sums.iter().enumerate() {
            if count == 0 {
                norm.mean[c] = 0.0;
                norm.std[c] = 1.0;
                continue;
            }
            let (s1, s2) = (u128::from(s1), u128::from(s2));
            // var * 255^2 * count^2 = count * s2 - s1^2, exact and >= 0.
            let num = count * s2 - s1 * s1;
            let scale = 255.0 * count as f64;
            norm.mean[c] = (s1 as f64 / scale) as f32;
            norm.std[c] = if num == 0 {
                1.0
            } else {
                ((num as f64).sqrt() / scale) as f32
            };
        }
        norm
    }

    /// Mean 0.5 and std 0.5 for every channel (maps `[0, 1]` to `[-1, 1]`).
    pub fn half(channels: usize) -> Normalizer {
        Normalizer {
            mean: vec![0.5; channels],
            std: vec![0.5; channels],
        }
    }

    /// Normalised value of every byte, per channel.
    fn table(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| std::array::from_fn(|p| (p as f32 / 255.0 - m) / s))
            .collect()
    }
}

/// Fills `out` (cleared first; `idx.len() * set.image_len()` values after)
/// with the normalised pixels `(p / 255 - mean) / std` of images `idx`, in
/// order, CHW per image, and returns their labels.
///
/// With `augment`, each image gets its own random crop and flip drawn from
/// the rng (see `Augment::draw`). Crop padding is black on the raw image,
/// as in torchvision's `RandomCrop(32, padding=4)`, so padded values are
/// `(0 - mean) / std`.
///
/// # Panics
/// If an index is `>= set.n` or `norm` has not `set.channels` channels
/// (caller bugs, not input errors).
pub fn fill_batch(
    set: &ImageSet,
    idx: &[usize],
    norm: &Normalizer,
    mut augment: Option<(&Augment, &mut ChaCha8Rng)>,
    out: &mut Vec<f32>,
) -> Vec<i64> {
    assert!(
        norm.mean.len() == set.channels && norm.std.len() == set.channels,
        "normalizer has {} means and {} stds for {} channels",
        norm.mean.len(),
        norm.std.len(),
        set.channels
    );
    let table = norm.table();
    let (h, w) = (set.height, set.width);
    let plane = h * w;
    out.clear();
    out.reserve(idx.len() * set.image_len());
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        assert!(i < set.n, "image index {i} out of range 0..{}", set.n);
        let image = set.image(i);
        let t = match augment.as_mut() {
            Some((aug, rng)) => aug.draw(&mut **rng),
            None => CropFlip::IDENTITY,
        };
        for (c, lut) in table.iter().enumerate() {
            let pixels = &image[c * plane..(c + 1) * plane];
            if t == CropFlip::IDENTITY {
                out.extend(pixels.iter().map(|&p| lut[usize::from(p)]));
                continue;
            }
            for y in 0..h {
                for x in 0..w {
                    let p = t
                        .source(y, x, h, w)
                        .map_or(0, |(sy, sx)| pixels[sy * w + sx]);
                    out.push(lut[usize::from(p)]);
                }
            }
        }
        labels.push(i64::from(set.labels[i]));
    }
    labels
}

/// Order of the images in epoch `epoch`: a permutation of `0..n` that
/// depends only on `(seed, epoch)`, so a resumed run replays it.
///
/// The rng is `ChaCha8Rng::seed_from_u64(seed ^ epoch * 0x9E37_79B9_7F4A_7C15)`
/// (wrapping; the golden-ratio constant spreads consecutive epochs), and
/// the shuffle is rand's Fisher-Yates `SliceRandom::shuffle`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mixed = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = ChaCha8Rng::seed_from_u64(mixed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(channels: usize, h: usize, w: usize, images: Vec<u8>, labels: Vec<u16>) -> ImageSet {
        assert_eq!(images.len(), labels.len() * channels * h * w);
        ImageSet {
            n: labels.len(),
            images,
            labels,
            channels,
            height: h,
            width: w,
            num_classes: 10,
        }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn fit_matches_hand_computation() {
        // Channel 0 pixels: 0, 255, 51, 102 -> 0, 1, 0.2, 0.4: mean 0.4,
        // var (0.16 + 0.36 + 0.04 + 0) / 4 = 0.14.
        // Channel 1 pixels: 255 everywhere -> constant -> std 1.
        let s = set(
            2,
            1,
            2,
            vec![0, 255, 255, 255, 51, 102, 255, 255],
            vec![0, 1],
        );
        let n = Normalizer::fit(&s);
        assert!(close(n.mean[0], 0.4), "{:?}", n.mean);
        assert!(close(n.std[0], 0.14f32.sqrt()), "{:?}", n.std);
        assert!(close(n.mean[1], 1.0) && n.std[1] == 1.0, "{n:?}");

        let empty = set(1, 2, 2, vec![], vec![]);
        assert_eq!(
            Normalizer::fit(&empty),
            Normalizer {
                mean: vec![0.0],
                std: vec![1.0]
            }
        );
        assert_eq!(Normalizer::half(3).std, [0.5; 3]);
    }

    #[test]
    fn fill_batch_normalises_in_order() {
        // Two 1x2 images with 3 channels; batch [1, 0].
        let s = set(
            3,
            1,
            2,
            vec![0, 255, 0, 0, 51, 51, 255, 255, 102, 0, 0, 0],
            vec![3, 7],
        );
        let norm = Normalizer {
            mean: vec![0.5, 0.0, 0.2],
            std: vec![0.5, 1.0, 0.1],
        };
        let mut out = vec![99.0; 3];
        let labels = fill_batch(&s, &[1, 0], &norm, None, &mut out);
        assert_eq!(labels, [7, 3]);
        let expected = [
            1.0, 1.0, 0.4, 0.0, -2.0, -2.0, // image 1
            -1.0, 1.0, 0.0, 0.0, 0.0, 0.0, // image 0
        ];
        assert_eq!(out.len(), expected.len());
        for (a, b) in out.iter().zip(expected) {
            assert!(close(*a, b), "{out:?}");
        }
    }

    /// Reference augmentation by hand: build the zero-padded image, crop at
    /// (dy, dx), mirror if asked. Independent of `CropFlip::source`.
    fn reference(image: &[u8], h: usize, w: usize, t: CropFlip) -> Vec<u8> {
        let (ph, pw) = (h + 2 * t.pad, w + 2 * t.pad);
        let mut padded = vec![0u8; ph * pw];
        for y in 0..h {
            for x in 0..w {
                padded[(y + t.pad) * pw + x + t.pad] = image[y * w + x];
            }
        }
        let mut out = Vec::new();
        for y in 0..h {
            let row: Vec<u8> = (0..w).map(|x| padded[(y + t.dy) * pw + x + t.dx]).collect();
            if t.flip {
                out.extend(row.iter().rev());
            } else {
                out.extend(row);
            }
        }
        out
    }

    #[test]
    fn flip_mirrors_rows() {
        let s = set(1, 2, 3, vec![1, 2, 3, 4, 5, 6], vec![0]);
        let norm = Normalizer {
            mean: vec![0.0],
            std: vec![1.0 / 255.0],
        }; // value = byte
        let aug = Augment {
            crop_pad: 0,
            flip: true,
        };
        let (mut flipped, mut kept) = (0, 0);
        for seed in 0..32 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut out = Vec::new();
            fill_batch(&s, &[0], &norm, Some((&aug, &mut rng)), &mut out);
            let bytes: Vec<u8> = out.iter().map(|v| v.round() as u8).collect();
            if bytes == [3, 2, 1, 6, 5, 4] {
                flipped += 1;
            } else {
                assert_eq!(bytes, [1, 2, 3, 4, 5, 6]);
                kept += 1;
            }
        }
        assert!(flipped > 0 && kept > 0, "flipped {flipped}, kept {kept}");
    }

    #[test]
    fn crop_shifts_and_pads_with_normalised_black() {
        let (h, w) = (3, 4);
        let image: Vec<u8> = (1..=12).map(|v| v * 20).collect();
        let s = set(1, h, w, image.clone(), vec![0]);
        let norm = Normalizer {
            mean: vec![0.25],
            std: vec![0.5],
        };
        let pad_value = (0.0 - 0.25) / 0.5;
        let aug = Augment {
            crop_pad: 2,
            flip: true,
        };
        let mut shifted = 0;
        let mut saw_pad = false;
        for seed in 0..64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            // The draw fill_batch will make.
            let t = aug.draw(&mut rng.clone());
            let mut out = Vec::new();
            fill_batch(&s, &[0], &norm, Some((&aug, &mut rng)), &mut out);
            let expected = reference(&image, h, w, t);
            for (k, (&v, &e)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    close(v, (f32::from(e) / 255.0 - 0.25) / 0.5),
                    "seed {seed} pixel {k}"
                );
                if e == 0 {
                    assert!(close(v, pad_value));
                    saw_pad = true;
                }
            }
            shifted += usize::from(t.dy != 2 || t.dx != 2);
        }
        assert!(shifted > 32 && saw_pad);
    }

    #[test]
    fn augment_draws_one_transform_per_image() {
        // Same image twice in the batch: the two copies differ for some seed.
        let s = set(1, 2, 2, vec![10, 20, 30, 40], vec![0]);
        let aug = Augment::default();
        let norm = Normalizer::half(1);
        let differs = (0..16).any(|seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut out = Vec::new();
            fill_batch(&s, &[0, 0], &norm, Some((&aug, &mut rng)), &mut out);
            out[..4] != out[4..]
        });
        assert!(differs);
    }

    #[test]
    fn epoch_order_is_deterministic_and_varies() {
        let a = epoch_order(1000, 7, 3);
        assert_eq!(a, epoch_order(1000, 7, 3));
        assert_ne!(a, epoch_order(1000, 7, 4));
        assert_ne!(a, epoch_order(1000, 8, 3));
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        // The documented recipe, spelled out.
        let mut rng = ChaCha8Rng::seed_from_u64(7 ^ 3u64.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut b: Vec<usize> = (0..1000).collect();
        b.shuffle(&mut rng);
        assert_eq!(a, b);
        assert!(epoch_order(0, 1, 1).is_empty());
    }

    proptest! {
        #[test]
        fn epoch_order_is_a_permutation(n in 0usize..500, seed in any::<u64>(), epoch in any::<usize>()) {
            let mut order = epoch_order(n, seed, epoch);
            prop_assert_eq!(order.len(), n);
            order.sort_unstable();
            prop_assert!(order.iter().enumerate().all(|(i, &v)| i == v));
        }

        #[test]
        fn identity_augment_equals_none(
            pixels in proptest::collection::vec(any::<u8>(), 2 * 3 * 4 * 5),
            seed in any::<u64>(),
        ) {
            let s = set(3, 4, 5, pixels, vec![1, 2]);
            let norm = Normalizer::fit(&s);
            let aug = Augment { crop_pad: 0, flip: false };
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let la = fill_batch(&s, &[1, 0, 1], &norm, Some((&aug, &mut rng)), &mut a);
            let lb = fill_batch(&s, &[1, 0, 1], &norm, None, &mut b);
            prop_assert_eq!(la, lb);
            prop_assert_eq!(a, b);
        }
    }
}
