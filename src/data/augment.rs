//! Training augmentation of the CIFAR recipe: random crop with zero
//! padding, then horizontal flip with probability 0.5.
//!
//! Matches torchvision's `RandomCrop(32, padding=4)` +
//! `RandomHorizontalFlip()`: the padding is zeros on the raw image (black),
//! so after normalisation a padded pixel is `(0 - mean) / std`, not 0.
//! `fill_batch` applies the transform while normalising; this file only
//! draws it and maps output pixels to source pixels.

use rand::Rng;

/// Augmentation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding on each side before the random crop back to the
    /// original size (4 for CIFAR; 0 disables cropping).
    pub crop_pad: usize,
    /// Mirror left-right with probability 0.5.
    pub flip: bool,
}

impl Default for Augment {
    /// The standard CIFAR recipe: pad 4, flip.
    fn default() -> Self {
        Augment {
            crop_pad: 4,
            flip: true,
        }
    }
}

/// One drawn transform: crop offset in the padded image, and flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropFlip {
    /// Padding the offsets refer to.
    pub pad: usize,
    /// Row offset of the crop in the padded image, `0..=2 * pad`.
    pub dy: usize,
    /// Column offset of the crop in the padded image, `0..=2 * pad`.
    pub dx: usize,
    /// Whether the crop is mirrored left-right.
    pub flip: bool,
}

impl Augment {
    /// Draws one transform: `dy`, then `dx` (uniform in `0..=2 * crop_pad`;
    /// no draw when `crop_pad` is 0), then the flip (no draw when `flip`
    /// is off). The draw order is part of run reproducibility.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> CropFlip {
        let pad = self.crop_pad;
        let span = pad.saturating_mul(2);
        let (dy, dx) = if pad == 0 {
            (0, 0)
        } else {
            (rng.gen_range(0..=span), rng.gen_range(0..=span))
        };
        let flip = self.flip && rng.gen_bool(0.5);
        CropFlip { pad, dy, dx, flip }
    }
}

impl CropFlip {
    /// The identity transform.
    pub const IDENTITY: CropFlip = CropFlip {
        pad: 0,
        dy: 0,
        dx: 0,
        flip: false,
    };

    /// Source pixel `(row, col)` in an `h x w` image for output pixel
    /// `(y, x)`, or `None` where the output shows padding.
    ///
    /// Output `(y, x)` is padded pixel `(y + dy, x' + dx)` with
    /// `x' = w - 1 - x` when flipped (crop first, then flip), i.e. original
    /// pixel `(y + dy - pad, x' + dx - pad)`.
    pub fn source(&self, y: usize, x: usize, h: usize, w: usize) -> Option<(usize, usize)> {
        let x = if self.flip { w.checked_sub(1 + x)? } else { x };
        let sy = y.checked_add(self.dy)?.checked_sub(self.pad)?;
        let sx = x.checked_add(self.dx)?.checked_sub(self.pad)?;
        (sy < h && sx < w).then_some((sy, sx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn identity_maps_every_pixel_to_itself() {
        for y in 0..3 {
            for x in 0..4 {
                assert_eq!(CropFlip::IDENTITY.source(y, x, 3, 4), Some((y, x)));
            }
        }
    }

    #[test]
    fn centred_crop_with_flip_mirrors() {
        let t = CropFlip {
            pad: 2,
            dy: 2,
            dx: 2,
            flip: true,
        };
        assert_eq!(t.source(0, 0, 3, 4), Some((0, 3)));
        assert_eq!(t.source(1, 3, 3, 4), Some((1, 0)));
    }

    #[test]
    fn corner_crop_shows_padding() {
        // Offset (0, 0): the image moves down-right by `pad`.
        let t = CropFlip {
            pad: 1,
            dy: 0,
            dx: 0,
            flip: false,
        };
        assert_eq!(t.source(0, 0, 3, 3), None);
        assert_eq!(t.source(0, 2, 3, 3), None);
        assert_eq!(t.source(1, 1, 3, 3), Some((0, 0)));
        assert_eq!(t.source(2, 2, 3, 3), Some((1, 1)));
        // Offset (2, 2) with pad 1: it moves up-left.
        let t = CropFlip { dy: 2, dx: 2, ..t };
        assert_eq!(t.source(0, 0, 3, 3), Some((1, 1)));
        assert_eq!(t.source(2, 0, 3, 3), None);
    }

    #[test]
    fn draws_cover_the_range_and_flip_half_the_time() {
        let aug = Augment::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = [[false; 9]; 2];
        let mut flips = 0;
        for _ in 0..4000 {
            let t = aug.draw(&mut rng);
            assert!(t.dy <= 8 && t.dx <= 8 && t.pad == 4);
            seen[0][t.dy] = true;
            seen[1][t.dx] = true;
            flips += usize::from(t.flip);
        }
        assert!(seen.iter().flatten().all(|&s| s));
        assert!((1800..2200).contains(&flips), "{flips}");
        let none = Augment {
            crop_pad: 0,
            flip: false,
        };
        assert_eq!(none.draw(&mut rng), CropFlip::IDENTITY);
    }
}
