//! Quantization cards (Garg, Jain, Lou, Nahmias, arXiv 2102.06366; field
//! notes §8.5): every design choice that can move a quantised network's
//! accuracy as much as the method, one field each, with the float baseline,
//! the measured result and the command that reproduces it; as JSON and
//! Markdown beside the results. A choice that does not apply says so.

use super::levels::Scheme;
use super::quantize::{Granularity, Loaded, Measured, QuantizeOptions, Quantized, Sizes};
use serde::Serialize;

/// One model's card.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// Which model (the run, scheme and bits).
    pub model: String,
    /// Bits per weight, the sign bit included.
    pub weight_bits: String,
    /// Activations.
    pub activation_bits: String,
    /// Granularity of the scales.
    pub granularity: String,
    /// Symmetric or asymmetric levels.
    pub symmetric: String,
    /// The level set.
    pub level_set: String,
    /// How the level parameters were chosen.
    pub level_parameters: String,
    /// How scales are stored.
    pub scale_format: String,
    /// BatchNorm folding.
    pub batchnorm_folding: String,
    /// Precision of the first layer.
    pub first_layer: String,
    /// Precision of the last (classification) layer.
    pub last_layer: String,
    /// Residual adds and other non-matmul operations.
    pub non_matmul_ops: String,
    /// Bias precision.
    pub bias_precision: String,
    /// Accumulator precision.
    pub accumulator_precision: String,
    /// Calibration data.
    pub calibration_data: String,
    /// Post-training or quantisation-aware.
    pub training: String,
    /// Tensors quantised and left in float.
    pub tensors: String,
    /// The float baseline.
    pub baseline: String,
    /// The measured result.
    pub result: String,
    /// Sizes.
    pub size: String,
    /// The command that reproduces it.
    pub command: String,
    /// symfeat's version.
    pub symfeat: String,
}

impl Card {
    /// Every field, in card order.
    pub fn fields(&self) -> [(&'static str, &str); 22] {
        [
            ("model", &self.model),
            ("weight_bits", &self.weight_bits),
            ("activation_bits", &self.activation_bits),
            ("granularity", &self.granularity),
            ("symmetric", &self.symmetric),
            ("level_set", &self.level_set),
            ("level_parameters", &self.level_parameters),
            ("scale_format", &self.scale_format),
            ("batchnorm_folding", &self.batchnorm_folding),
            ("first_layer", &self.first_layer),
            ("last_layer", &self.last_layer),
            ("non_matmul_ops", &self.non_matmul_ops),
            ("bias_precision", &self.bias_precision),
            ("accumulator_precision", &self.accumulator_precision),
            ("calibration_data", &self.calibration_data),
            ("training", &self.training),
            ("tensors", &self.tensors),
            ("baseline", &self.baseline),
            ("result", &self.result),
            ("size", &self.size),
            ("command", &self.command),
            ("symfeat", &self.symfeat),
        ]
    }

    /// The card as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Quantization card: {}\n\n| field | value |\n|---|---|\n",
            self.model
        );
        for (k, v) in self.fields() {
            out.push_str(&format!("| {k} | {} |\n", v.replace('|', "\\|")));
        }
        out
    }
}

fn pct(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

fn geometry(m: &Measured) -> String {
    match (m.angle_w_mean_deg, m.nc3) {
        (Some(a), Some(n)) => format!("mean angle(w_c, class mean) {a:.2} deg, NC3 {n:.4}"),
        _ => "geometry probe undefined".into(),
    }
}

/// The card of the discretised model `q` of run `l`.
pub fn card_for(
    opts: &QuantizeOptions,
    l: &Loaded,
    q: &Quantized,
    float: &Measured,
    measured: &Measured,
    sizes: &Sizes,
) -> Card {
    let lv = q.levels;
    let k = lv.magnitudes();
    let level_set = match lv.scheme {
        _ if lv.bits == 1 => "sign(w) M (1 bit: one magnitude)".to_string(),
        Scheme::Linear => format!(
            "linear: sign(w) x one of {k} magnitudes {}, M = max |w| of the group; nearest level",
            if lv.zero {
                "M j/(K-1), j = 0..K-1 (j = 0: the zero level)"
            } else {
                "M (j+1)/K, j = 0..K-1"
            }
        ),
        Scheme::Exponential => format!(
            "exponential: sign(w) x one of {k} magnitudes M q^j{}, M = max |w| of the group; nearest level",
            if lv.zero {
                " (j = 0..K-2) and 0"
            } else {
                " (j = 0..K-1)"
            }
        ),
    };
    let level_parameters = match lv.scheme {
        Scheme::Exponential if lv.has_q() => format!(
            "M = max |w| per group; q per group by a 64-point grid on [0.05, 0.995] refined by golden section, criterion {} (mean q {:.4})",
            opts.criterion.name(),
            q.mean_q()
        ),
        _ => "M = max |w| per group; no other parameter".into(),
    };
    let granularity = match q.granularity {
        Granularity::Layer => "per tensor (one M, and q, per layer)".into(),
        Granularity::Channel => "per output channel (one M, and q, per channel; for linear layers the columns of burn's [in, out] weight)".into(),
    };
    let quantized: Vec<&str> = q.tensors.iter().map(|t| t.name.as_str()).collect();
    let has_bn = l.cfg.raw.net.starts_with("resnet") || l.cfg.raw.feature_act == "bn";
    let last = if opts.float_last {
        "float32 (--float-last)".to_string()
    } else if quantized.iter().any(|n| n.starts_with("head.")) {
        format!(
            "quantised like the others ({} head's weight matrix)",
            l.cfg.raw.head
        )
    } else {
        format!(
            "float32: the {} head has no weight matrix to quantise (rank-1 parameters stay float)",
            l.cfg.raw.head
        )
    };
    Card {
        model: format!("{} / {} {}-bit", l.files.name(), lv.scheme.name(), lv.bits),
        weight_bits: format!("{} (sign bit included: {} magnitude codes)", lv.bits, k),
        activation_bits: "float32: activations are not quantised".into(),
        granularity,
        symmetric: "symmetric: sign-magnitude levels around 0, no zero point".into(),
        level_set,
        level_parameters,
        scale_format: "float32 per group (M, and q for the exponential scheme); codes chosen with the float32-rounded values".into(),
        batchnorm_folding: if has_bn {
            "not folded: BatchNorm (parameters and running statistics) stays float32 after the quantised convolution".into()
        } else {
            "not applicable: the network has no BatchNorm".into()
        },
        first_layer: if opts.float_first {
            "float32 (--float-first)".into()
        } else {
            "quantised like the others".into()
        },
        last_layer: last,
        non_matmul_ops: "float32: activations, pooling, residual adds, normalisation, softmax".into(),
        bias_precision: "float32 (biases are not quantised)".into(),
        accumulator_precision: "float32: simulated quantisation, the dequantised weights in float32 arithmetic".into(),
        calibration_data: "none: weight-only quantisation, no data is used to choose the levels".into(),
        training: "post-training, no retraining or fine-tuning".into(),
        tensors: format!(
            "{} quantised ({}); {} values left float32 (biases, normalisation, rank-1 parameters{}; the center loss's centers, not used at inference, are not counted)",
            quantized.len(),
            quantized.join(", "),
            q.float_values,
            if opts.float_first || opts.float_last { ", and the layers kept in float" } else { "" }
        ),
        baseline: format!(
            "{}: {} {} with the {} head, trained {} epoch(s) (config.toml); float32 test accuracy {}, loss {:.4}; {}",
            l.files.dir.display(),
            l.cfg.raw.dataset,
            l.cfg.raw.net,
            l.cfg.raw.head,
            l.files.history.len(),
            pct(float.test_acc),
            float.test_loss,
            geometry(float)
        ),
        result: format!(
            "test accuracy {} ({:+.2} points), loss {:.4}; {}",
            pct(measured.test_acc),
            100.0 * (measured.test_acc - float.test_acc),
            measured.test_loss,
            geometry(measured)
        ),
        size: format!(
            "{} quantised weights: {} bits of packed codes, {} after DEFLATE (flate2, level 9; code entropy {:.3} bits/weight), stored as the smaller ({} bits), {} bits of levels, {} bits float32; compression {:.2}x for the model, {:.2}x for the quantised weights, against float32",
            sizes.quantized_weights,
            sizes.code_bits,
            sizes.coded_bits,
            sizes.code_entropy,
            sizes.stored_bits,
            sizes.level_bits,
            sizes.float_bits,
            sizes.compression_ratio,
            sizes.weights_compression_ratio
        ),
        command: opts.command.clone(),
        symfeat: env!("CARGO_PKG_VERSION").into(),
    }
}
