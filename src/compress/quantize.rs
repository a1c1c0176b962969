//! Post-training discretisation of a trained run (`symfeat quantize`):
//! every scheme x bits on the run's test set, against the float baseline,
//! with the geometry probe, the sizes, a quantization card per model, and
//! optionally the discretised model itself.

use super::card::{Card, card_for};
use super::coder;
use super::levels::{Criterion, GroupLevels, Levels, Scheme, quantize_group, unpack};
use crate::report::plot::{Band, CurvesFigure, png_and_svg};
use crate::run_dir;
use crate::tensors::{NamedTensor, collect, replace};
pub use crate::train::{Loaded, Measured, load_run, measure};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Scale groups: one per tensor, or one per output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One `M` (and `q`) per tensor.
    Layer,
    /// One per output channel.
    Channel,
}

impl Granularity {
    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "layer" | "tensor" => Some(Self::Layer),
            "channel" => Some(Self::Channel),
            _ => None,
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Layer => "layer",
            Self::Channel => "channel",
        }
    }
}

/// What `symfeat quantize` does.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// The run directory.
    pub run: PathBuf,
    /// Where the results go (default `RUN/quantize`).
    pub out: PathBuf,
    /// Schemes to try.
    pub schemes: Vec<Scheme>,
    /// Bit widths to try (sign bit included).
    pub bits: Vec<u32>,
    /// Scale groups.
    pub granularity: Granularity,
    /// One magnitude code is 0.
    pub zero: bool,
    /// How `q` is chosen.
    pub criterion: Criterion,
    /// Keep the first layer in float.
    pub float_first: bool,
    /// Keep the classification layer (the head's weights) in float.
    pub float_last: bool,
    /// Write every discretised model as safetensors.
    pub save: bool,
    /// The command line, for the cards.
    pub command: String,
}

/// One quantised tensor: its codes (in stored order) and its groups' levels.
#[derive(Debug, Clone)]
pub struct QTensor {
    /// Parameter path.
    pub name: String,
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Packed sign-magnitude codes, one per weight.
    pub codes: Vec<u8>,
    /// Levels per group.
    pub groups: Vec<GroupLevels>,
    /// The group of each weight.
    pub group_of: Vec<u32>,
}

/// A discretised model: the level set, its tensors, and the float rest.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// Level set.
    pub levels: Levels,
    /// Scale groups.
    pub granularity: Granularity,
    /// The quantised tensors.
    pub tensors: Vec<QTensor>,
    /// Values left in float32 (count).
    pub float_values: usize,
}

impl QTensor {
    /// The dequantised values (f32, as the network computes with them).
    pub fn values(&self, levels: &Levels) -> Vec<f32> {
        let tables: Vec<Vec<f64>> = self.groups.iter().map(|g| levels.table(*g)).collect();
        self.codes
            .iter()
            .zip(&self.group_of)
            .map(|(&c, &g)| unpack(&tables[g as usize], c) as f32)
            .collect()
    }
}

/// Quantise one tensor.
pub fn quantize_tensor(
    t: &NamedTensor,
    levels: &Levels,
    granularity: Granularity,
    criterion: Criterion,
) -> QTensor {
    let groups: Vec<Vec<usize>> = match granularity {
        Granularity::Layer => vec![(0..t.values.len()).collect()],
        Granularity::Channel => t.channels(),
    };
    let mut codes = vec![0u8; t.values.len()];
    let mut group_of = vec![0u32; t.values.len()];
    let mut levels_of = Vec::with_capacity(groups.len());
    for (gi, idx) in groups.iter().enumerate() {
        let w: Vec<f64> = idx.iter().map(|&i| t.values[i] as f64).collect();
        let (g, c) = quantize_group(&w, levels, criterion);
        for (&i, &code) in idx.iter().zip(&c) {
            codes[i] = code;
            group_of[i] = gi as u32;
        }
        levels_of.push(g);
    }
    QTensor {
        name: t.name.clone(),
        shape: t.shape.clone(),
        codes,
        groups: levels_of,
        group_of,
    }
}

/// Which of `tensors` are quantised under the options: the weights, less
/// the first layer's and the head's when kept in float.
pub fn selected<'a>(tensors: &'a [NamedTensor], opts: &QuantizeOptions) -> Vec<&'a NamedTensor> {
    let first = tensors
        .iter()
        .find(|t| t.weight && t.name.starts_with("net."))
        .map(|t| t.name.clone());
    tensors
        .iter()
        .filter(|t| t.weight)
        .filter(|t| !(opts.float_first && Some(&t.name) == first.as_ref()))
        .filter(|t| !(opts.float_last && t.name.starts_with("head.")))
        .collect()
}

/// Sizes of a discretised model, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sizes {
    /// Quantised weights.
    pub quantized_weights: usize,
    /// Bits of their codes (`bits` each).
    pub code_bits: usize,
    /// Bits of their codes after DEFLATE (level 9, `flate2`).
    pub coded_bits: usize,
    /// Zeroth-order entropy of the codes, bits per weight.
    pub code_entropy: f64,
    /// Bits the codes are stored in: the smaller of the packed codes
    /// (`code_bits`) and the DEFLATE stream (`coded_bits`; DEFLATE spends at
    /// least a bit per literal, so for 1-2 bit codes packing wins).
    pub stored_bits: usize,
    /// Bits of the level parameters (`M`, and `q` for the exponential
    /// scheme, float32 per group).
    pub level_bits: usize,
    /// Bits of the values left in float32.
    pub float_bits: usize,
    /// float32 size of the whole model over its stored size
    /// (`stored_bits + level_bits + float_bits`).
    pub compression_ratio: f64,
    /// float32 size of the quantised weights over `stored_bits + level_bits`.
    pub weights_compression_ratio: f64,
}

impl Quantized {
    /// The sizes (encodes the codes to measure them).
    pub fn sizes(&self) -> Result<Sizes> {
        let codes: Vec<u8> = self
            .tensors
            .iter()
            .flat_map(|t| t.codes.iter().copied())
            .collect();
        let coded_bits = 8 * coder::encode(&codes)?.len();
        let per_group = if self.levels.has_q() { 2 } else { 1 };
        let groups: usize = self.tensors.iter().map(|t| t.groups.len()).sum();
        let level_bits = 32 * per_group * groups;
        let n = codes.len();
        let float_bits = 32 * self.float_values;
        let total = 32 * (n + self.float_values);
        let code_bits = self.levels.bits as usize * n;
        let stored_bits = code_bits.min(coded_bits);
        Ok(Sizes {
            quantized_weights: n,
            code_bits,
            coded_bits,
            code_entropy: coder::entropy_bits(&codes),
            stored_bits,
            level_bits,
            float_bits,
            compression_ratio: total as f64 / (stored_bits + level_bits + float_bits).max(1) as f64,
            weights_compression_ratio: (32 * n) as f64 / (stored_bits + level_bits).max(1) as f64,
        })
    }

    /// The mean base `q` over groups (1 without one).
    pub fn mean_q(&self) -> f64 {
        let qs: Vec<f64> = self
            .tensors
            .iter()
            .flat_map(|t| t.groups.iter().map(|g| g.q))
            .collect();
        qs.iter().sum::<f64>() / qs.len().max(1) as f64
    }

    /// The dequantised values by tensor name.
    pub fn values(&self) -> BTreeMap<String, Vec<f32>> {
        self.tensors
            .iter()
            .map(|t| (t.name.clone(), t.values(&self.levels)))
            .collect()
    }
}

/// Quantise the selected tensors of `tensors`.
pub fn quantize(
    tensors: &[NamedTensor],
    opts: &QuantizeOptions,
    levels: Levels,
) -> Result<Quantized> {
    let chosen = selected(tensors, opts);
    if chosen.is_empty() {
        bail!(
            "{}: no tensor to quantise (the model has no conv or linear weight left after \
             keeping the first and last layers in float)",
            opts.run.display()
        );
    }
    let names: Vec<&str> = chosen.iter().map(|t| t.name.as_str()).collect();
    let qt: Vec<QTensor> = chosen
        .iter()
        .map(|t| quantize_tensor(t, &levels, opts.granularity, opts.criterion))
        .collect();
    // The center loss's centers are a training device, not part of the
    // model at inference: not counted.
    let float_values = tensors
        .iter()
        .filter(|t| !names.contains(&t.name.as_str()) && !t.name.starts_with("center"))
        .map(|t| t.values.len())
        .sum();
    Ok(Quantized {
        levels,
        granularity: opts.granularity,
        tensors: qt,
        float_values,
    })
}

/// One row of `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scheme.
    pub scheme: Scheme,
    /// Bits per weight, sign included.
    pub bits: u32,
    /// Test accuracy, loss and geometry of the discretised model.
    #[serde(flatten)]
    pub measured: Measured,
    /// Accuracy minus the float baseline's, in points.
    pub acc_drop_pts: f64,
    /// Sizes.
    #[serde(flatten)]
    pub sizes: Sizes,
    /// Mean `q` over groups (exponential; 1 for linear).
    pub mean_q: f64,
    /// The card (Markdown; the JSON beside it), relative to the output directory.
    pub card: String,
    /// The saved model, relative to the output directory (with `--save`).
    pub model: Option<String>,
}

/// `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The run.
    pub run: String,
    /// The float baseline.
    pub float: Measured,
    /// Share of the float weights below 1 % of their tensor's max |w|.
    pub float_sparsity: f64,
    /// Options.
    pub granularity: Granularity,
    /// Zero level.
    pub zero_level: bool,
    /// Criterion for q.
    pub criterion: Criterion,
    /// Rows, scheme by scheme, bits ascending.
    pub results: Vec<Row>,
    /// Seconds for the whole command.
    pub seconds: f64,
}

/// Share of the weights of `tensors` below `1 %` of their tensor's largest
/// magnitude.
pub fn sparsity(tensors: &[&NamedTensor]) -> f64 {
    let (mut small, mut n) = (0usize, 0usize);
    for t in tensors {
        let m = t.values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        small += t.values.iter().filter(|v| v.abs() < 0.01 * m).count();
        n += t.values.len();
    }
    small as f64 / n.max(1) as f64
}

/// Check every value is finite; the error names the tensor.
fn check_finite(tensors: &[NamedTensor], dir: &Path) -> Result<()> {
    for t in tensors {
        if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: tensor {} holds a non-finite value ({}) at index {i}",
                dir.display(),
                t.name,
                t.values[i]
            );
        }
    }
    Ok(())
}

/// `symfeat quantize`: every scheme x bits; writes `results.json`, the
/// figure, the cards (and with `save` the models) into `opts.out`.
pub fn run_quantize(opts: &QuantizeOptions) -> Result<Results> {
    let start = Instant::now();
    for &b in &opts.bits {
        Levels {
            scheme: Scheme::Linear,
            bits: b,
            zero: opts.zero,
        }
        .check()
        .map_err(|e| anyhow::anyhow!("--bits: {e}"))?;
    }
    let l = load_run(&opts.run)?;
    if l.cfg.binary.binarizes() {
        anyhow::bail!(
            "{}: a binary run (binary = {}): its binary layers compute with 1-bit weights already (their latent float weights are not what the model uses); quantize float runs",
            opts.run.display(),
            l.cfg.binary.name()
        );
    }
    let tensors = collect(&l.model)?;
    check_finite(&tensors, &opts.run)?;
    if selected(&tensors, opts).is_empty() {
        quantize(
            &tensors,
            opts,
            Levels {
                scheme: Scheme::Linear,
                bits: 8,
                zero: false,
            },
        )?;
    }
    std::fs::create_dir_all(opts.out.join("cards"))
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let _lock = run_dir::lock(&opts.out, "quantize")?;
    eprintln!(
        "symfeat quantize: {} ({} test images), {} schemes x {} bit widths",
        opts.run.display(),
        l.test.n,
        opts.schemes.len(),
        opts.bits.len()
    );
    let float = measure(&l, &l.model)?;
    eprintln!("float: test accuracy {:.2}%", 100.0 * float.test_acc);
    let float_sparsity = sparsity(&tensors.iter().filter(|t| t.weight).collect::<Vec<_>>());
    let mut rows = vec![];
    let device = Default::default();
    for &scheme in &opts.schemes {
        for &bits in &opts.bits {
            let levels = Levels {
                scheme,
                bits,
                zero: opts.zero,
            };
            let q = quantize(&tensors, opts, levels)?;
            let model = replace(l.model.clone(), &q.values(), &device)?;
            let measured = measure(&l, &model)?;
            let sizes = q.sizes()?;
            let stem = format!("{}-{bits}bit", scheme.name());
            let saved = if opts.save {
                let name = format!("model-{stem}.safetensors");
                super::saved::save(&opts.out.join(&name), &q, &tensors)?;
                Some(name)
            } else {
                None
            };
            let mean_q = q.mean_q();
            let card: Card = card_for(opts, &l, &q, &float, &measured, &sizes);
            let card_path = format!("cards/{stem}.md");
            crate::atomic::write(&opts.out.join(&card_path), card.markdown().as_bytes())?;
            crate::atomic::write(
                &opts.out.join(format!("cards/{stem}.json")),
                serde_json::to_string_pretty(&card)?.as_bytes(),
            )?;
            eprintln!(
                "{:<12} {bits} bits: test accuracy {:.2}% ({:+.2} pts), {:.1}x smaller",
                scheme.name(),
                100.0 * measured.test_acc,
                100.0 * (measured.test_acc - float.test_acc),
                sizes.compression_ratio
            );
            rows.push(Row {
                scheme,
                bits,
                acc_drop_pts: 100.0 * (measured.test_acc - float.test_acc),
                measured,
                sizes,
                mean_q,
                card: card_path,
                model: saved,
            });
        }
    }
    let results = Results {
        run: opts.run.display().to_string(),
        float,
        float_sparsity,
        granularity: opts.granularity,
        zero_level: opts.zero,
        criterion: opts.criterion,
        results: rows,
        seconds: start.elapsed().as_secs_f64(),
    };
    figure(&results, &opts.out)?;
    crate::atomic::write(
        &opts.out.join("results.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    Ok(results)
}

/// Accuracy vs bits, one line per scheme and the float baseline.
fn figure(r: &Results, out: &Path) -> Result<()> {
    let mut series: Vec<Band> = vec![];
    for scheme in Scheme::ALL {
        let points: Vec<(f64, f64, f64, f64)> = r
            .results
            .iter()
            .filter(|x| x.scheme == scheme)
            .map(|x| {
                (
                    x.bits as f64,
                    x.measured.test_acc,
                    x.measured.test_acc,
                    x.measured.test_acc,
                )
            })
            .collect();
        if !points.is_empty() {
            series.push(Band {
                label: scheme.name().into(),
                points,
            });
        }
    }
    let bits: Vec<f64> = r.results.iter().map(|x| x.bits as f64).collect();
    let (lo, hi) = (
        bits.iter().cloned().fold(f64::INFINITY, f64::min),
        bits.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let a = r.float.test_acc;
    series.push(Band {
        label: "float32".into(),
        points: vec![(lo, a, a, a), (hi, a, a, a)],
    });
    let fig = CurvesFigure {
        title: format!(
            "Test accuracy vs bits per weight ({})",
            r.granularity.name()
        ),
        x_label: "bits per weight (sign included)".into(),
        y_label: "test accuracy".into(),
        series,
    };
    png_and_svg(&out.join("accuracy_vs_bits"), (760, 460), &fig)
}

/// Evaluate the discretised model `file` (`--save`) on the run in `dir`:
/// the run's model with every tensor of the file in place.
pub fn evaluate_saved(dir: &Path, file: &Path) -> Result<Measured> {
    let l = load_run(dir)?;
    let saved = super::saved::load(file)?;
    // Every tensor of the model must come from the file (the center loss's
    // centers aside): a partial file would evaluate a mixed model.
    let names: Vec<String> = collect(&l.model)?
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !n.starts_with("center"))
        .collect();
    if let Some(missing) = names.iter().find(|n| !saved.values.contains_key(*n)) {
        bail!(
            "{} has no tensor {missing}: not a whole model of {}",
            file.display(),
            dir.display()
        );
    }
    let model =
        replace(l.model.clone(), &saved.values, &Default::default()).with_context(|| {
            format!(
                "{} does not fit the model of {}",
                file.display(),
                dir.display()
            )
        })?;
    measure(&l, &model)
}

/// The default output directory of a run.
pub fn default_out(run: &Path) -> PathBuf {
    run.join("quantize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, shape: Vec<usize>, values: Vec<f32>, weight: bool) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            shape,
            values,
            weight,
            column_channels: false,
        }
    }

    fn opts() -> QuantizeOptions {
        QuantizeOptions {
            run: "run".into(),
            out: "out".into(),
            schemes: vec![Scheme::Linear],
            bits: vec![4],
            granularity: Granularity::Layer,
            zero: false,
            criterion: Criterion::Mse,
            float_first: false,
            float_last: false,
            save: false,
            command: String::new(),
        }
    }

    #[test]
    fn the_first_and_last_layers_can_stay_float_and_none_left_is_an_error() {
        let ts = vec![
            tensor(
                "net.Mlp.fc1.weight",
                vec![2, 2],
                vec![0.1, -0.2, 0.3, 0.4],
                true,
            ),
            tensor("net.Mlp.fc1.bias", vec![2], vec![0.0, 0.1], false),
            tensor(
                "head.Softmax.linear.weight",
                vec![2, 2],
                vec![1.0, 0.5, -0.5, 0.2],
                true,
            ),
        ];
        let lv = Levels {
            scheme: Scheme::Linear,
            bits: 4,
            zero: false,
        };
        let q = quantize(&ts, &opts(), lv).unwrap();
        assert_eq!(q.tensors.len(), 2);
        assert_eq!(q.float_values, 2);
        let o = QuantizeOptions {
            float_first: true,
            float_last: true,
            ..opts()
        };
        let e = quantize(&ts, &o, lv).unwrap_err().to_string();
        assert!(e.contains("no tensor to quantise"), "{e}");
        let only_last = QuantizeOptions {
            float_first: true,
            ..opts()
        };
        let q = quantize(&ts, &only_last, lv).unwrap();
        assert_eq!(q.tensors[0].name, "head.Softmax.linear.weight");
    }

    #[test]
    fn a_non_finite_weight_is_an_error_naming_the_tensor() {
        let ts = vec![tensor(
            "net.Cnn.conv1.weight",
            vec![1, 2],
            vec![0.1, f32::NAN],
            true,
        )];
        let e = check_finite(&ts, Path::new("runs/x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("net.Cnn.conv1.weight") && e.contains("index 1"),
            "{e}"
        );
    }

    /// Per-channel scales: each output channel gets its own M (columns of a
    /// linear layer's `[in, out]`).
    #[test]
    fn channel_groups_follow_the_storage_layout() {
        let mut t = tensor(
            "fc.weight",
            vec![2, 3],
            vec![1.0, 2.0, 3.0, -4.0, 5.0, 6.0],
            true,
        );
        t.column_channels = true;
        let lv = Levels {
            scheme: Scheme::Linear,
            bits: 8,
            zero: false,
        };
        let q = quantize_tensor(&t, &lv, Granularity::Channel, Criterion::Mse);
        let scales: Vec<f64> = q.groups.iter().map(|g| g.scale).collect();
        assert_eq!(scales, vec![4.0, 5.0, 6.0]);
        // Each channel's largest weight is its level M exactly (sign kept).
        let v = q.values(&lv);
        assert_eq!((v[3], v[4], v[5]), (-4.0, 5.0, 6.0));
        t.column_channels = false;
        let q = quantize_tensor(&t, &lv, Granularity::Channel, Criterion::Mse);
        let scales: Vec<f64> = q.groups.iter().map(|g| g.scale).collect();
        assert_eq!(scales, vec![3.0, 6.0]);
    }
}
