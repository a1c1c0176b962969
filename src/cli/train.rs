//! `symfeat train` and `symfeat bench`: arguments -> config -> call.

use crate::backend::{DeviceChoice, run_on, set_threads};
use crate::bench::{BenchJob, BenchModel};
use crate::heads::HeadKind;
use crate::train::TrainConfig;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `symfeat train`. Every option can also come from `--config`
/// (TOML, same names with `_`); flags override the file.
#[derive(Debug, Args)]
// Negative values are values, so that `--epochs -1` or `--lr -1e-3` is
// reported as a bad value of that option, not as an unknown argument
// (float options take any value: clap does not read `-1e-3` as a number).
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// TOML file with any of the options below (e.g. a run's config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in the output directory from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Dataset: fashion-mnist (default), mnist, cifar10, cifar100.
    #[arg(long)]
    dataset: Option<String>,
    /// Directory with the dataset's files (standard names).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Backbone: mlp, lenet, cnn (default), resnet20/32/44/56/110.
    #[arg(long)]
    net: Option<String>,
    /// Feature dimension of lenet (default 2).
    #[arg(long)]
    feature_dim: Option<usize>,
    /// What the head sees: relu (default: the net's final activation), linear
    /// (no final activation: signed features), bn (BatchNorm1d, no activation).
    #[arg(long)]
    feature_act: Option<String>,
    /// Head: softmax (default), normface, sphereface, cosface, arcface, combined, center,
    /// polygon, simplex, orthoplex, dcube, symmetrical (`symfeat heads list`).
    #[arg(long)]
    head: Option<String>,
    /// Head parameter as NAME=VALUE (repeatable), e.g. s=16, m=0.5, s=auto.
    #[arg(long = "head-param", value_name = "NAME=VALUE")]
    head_param: Vec<String>,
    /// Epochs (default 5).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (default 128).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (default 0.05).
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// SGD momentum, dampening 0 (default 0.9).
    #[arg(long, allow_hyphen_values = true)]
    momentum: Option<f64>,
    /// Weight decay (default 5e-4).
    #[arg(long, allow_hyphen_values = true)]
    weight_decay: Option<f64>,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// LR schedule: const (default), cosine, multistep.
    #[arg(long)]
    schedule: Option<String>,
    /// Multistep milestones, comma-separated epochs (e.g. 80,120).
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    /// Multistep factor (default 0.1).
    #[arg(long, allow_hyphen_values = true)]
    gamma: Option<f64>,
    /// Linear warm-up epochs (default 0).
    #[arg(long)]
    warmup_epochs: Option<usize>,
    /// Seed (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Random crop + flip: true or false (default: true for CIFAR only).
    #[arg(long)]
    augment: Option<bool>,
    /// Input normalisation: dataset (default) or half.
    #[arg(long)]
    normalize: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Device: cpu (default), cuda, cuda:N, vulkan, vulkan:N, vulkan:cpu (cargo feature `vulkan`), or libtorch (CPU through libtorch; cargo feature `tch`).
    #[arg(long)]
    device: Option<String>,
    /// Run directory (default runs/train).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Export test features, labels and class weights as NPY at the end.
    #[arg(long)]
    export_features: bool,
    /// Per-epoch geometry probe into probe.jsonl: true (default) or false.
    #[arg(long)]
    probe: Option<bool>,
    /// Size of the probe's fixed training subset (default 2000).
    #[arg(long)]
    probe_train_samples: Option<usize>,
    /// Evaluation batch size (default 1000).
    #[arg(long)]
    eval_batch: Option<usize>,
    /// Stop once the test accuracy has plateaued over the last N epochs
    /// (convergence test, see README); 0 (default): train every epoch.
    #[arg(long)]
    plateau_window: Option<usize>,
    /// Slope (accuracy fraction per epoch) under which a curve is flat (default 0.001).
    #[arg(long, allow_hyphen_values = true)]
    plateau_slope: Option<f64>,
    /// After the plateau, this many more epochs at lr x gamma, then stop (default 0).
    #[arg(long)]
    plateau_anneal_epochs: Option<usize>,
    /// Weight regulariser of the backbone: none, l1, compressibility (|w|_1/|w|_2 per layer).
    #[arg(long)]
    regularizer: Option<String>,
    /// Its weight (default 5e-5 for l1, 1e-3 for compressibility: measured on the reference CNN, README).
    #[arg(long, allow_hyphen_values = true)]
    reg_weight: Option<f64>,
    /// Binary layers (1-bit weights and activations; every layer but the
    /// first and the head): none (default), sign, recu; float-arch: the
    /// binary architecture with float layers (the control). For mlp, cnn, resnets.
    #[arg(long)]
    binary: Option<String>,
    /// ReCU's tau at the first epoch (default 0.85).
    #[arg(long, allow_hyphen_values = true)]
    tau_min: Option<f64>,
    /// ReCU's tau approached at the last epoch (default 0.99).
    #[arg(long, allow_hyphen_values = true)]
    tau_max: Option<f64>,
}

impl TrainArgs {
    /// Defaults < config file < flags.
    fn to_config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => TrainConfig::from_file(p)?,
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(
            dataset,
            net,
            feature_dim,
            head,
            epochs,
            batch,
            lr,
            momentum,
            weight_decay
        );
        set!(
            schedule,
            milestones,
            gamma,
            warmup_epochs,
            seed,
            normalize,
            device,
            out,
            eval_batch,
            feature_act,
            plateau_window,
            plateau_slope,
            plateau_anneal_epochs,
            regularizer,
            binary
        );
        if self.tau_min.is_some() {
            c.tau_min = self.tau_min;
        }
        if self.tau_max.is_some() {
            c.tau_max = self.tau_max;
        }
        if self.reg_weight.is_some() {
            c.reg_weight = self.reg_weight;
        }
        if self.data.is_some() {
            c.data = self.data.clone();
        }
        if self.train_limit.is_some() {
            c.train_limit = self.train_limit;
        }
        if self.test_limit.is_some() {
            c.test_limit = self.test_limit;
        }
        if self.augment.is_some() {
            c.augment = self.augment;
        }
        if self.threads.is_some() {
            c.threads = self.threads;
        }
        c.nesterov |= self.nesterov;
        c.export_features |= self.export_features;
        c.head_params.extend(crate::train::parse_head_params(
            &self.head_param,
            "--head-param",
        )?);
        Ok(c)
    }
}

pub(super) fn train(args: TrainArgs) -> Result<ExitCode> {
    let config = args.to_config()?;
    let valid = config.check()?;
    let outcome = crate::train::train(&valid, args.resume)?;
    if let Some(last) = outcome.history.last() {
        println!(
            "{}",
            serde_json::json!({
                "out": outcome.out,
                "epochs": last.epoch,
                "test_acc": last.test_acc,
                "test_loss": last.test_loss,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Options of `symfeat bench`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct BenchArgs {
    /// Model: cnn (1x28x28, softmax head by default) or resnet20 (3x32x32, symmetrical head by default).
    #[arg(long, default_value = "cnn")]
    model: String,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed steps (after warm-up steps).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Device: cpu, cuda, cuda:N, vulkan, vulkan:N, vulkan:cpu (cargo feature `vulkan`), or libtorch (CPU through libtorch; cargo feature `tch`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Head: softmax or symmetrical (default: the model's, as in the PyTorch peer).
    #[arg(long)]
    head: Option<String>,
    /// Measure a trained run's inference speed instead (on the CPU); for a
    /// pruned run, against the unpruned architecture in the same process.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "head", "device"])]
    run: Option<PathBuf>,
    /// With --run on a binary run: its bit-packed inference (XNOR +
    /// popcount) against the same model in float, and their agreement on
    /// the test set.
    #[arg(long, requires = "run")]
    packed: bool,
}

pub(super) fn bench(args: BenchArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.run {
        if args.batch == 0 || args.steps == 0 {
            bail!("--batch and --steps must be at least 1");
        }
        set_threads(args.threads);
        if args.packed {
            let r = crate::bench::bench_packed(dir, args.batch, args.steps, args.warmup)?;
            println!("packed_infer_img_s={:.1}", r.packed_img_s);
            println!("float_infer_img_s={:.1}", r.float_img_s);
            println!("simulated_infer_img_s={:.1}", r.simulated_img_s);
            println!("speedup={:.3}", r.packed_img_s / r.float_img_s);
            println!("kernel={:?}", r.isa);
            println!("binary_weight_bytes_f32={}", r.sizes.f32_bytes);
            println!("binary_weight_bytes_packed={}", r.sizes.packed_bytes);
            println!(
                "binary_memory_ratio={:.2}",
                r.sizes.f32_bytes as f64 / r.sizes.packed_bytes.max(1) as f64
            );
            println!("packed_file_bytes={}", r.files.0);
            println!("float_file_bytes={}", r.files.1);
            println!("argmax_agreement={}/{}", r.agree.0, r.agree.1);
            println!("max_logit_diff={:e}", r.max_logit_diff);
            return Ok(ExitCode::SUCCESS);
        }
        let r = crate::bench::bench_run(dir, args.batch, args.steps, args.warmup)?;
        println!("infer_img_s={:.1}", r.infer_img_s);
        println!("macs={}", r.macs);
        if let Some((full, full_macs)) = r.unpruned {
            println!("unpruned_infer_img_s={full:.1}");
            println!("unpruned_macs={full_macs}");
            println!("speedup={:.3}", r.infer_img_s / full);
            println!("macs_ratio={:.3}", full_macs as f64 / r.macs as f64);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(model) = BenchModel::parse(&args.model) else {
        bail!("--model {:?}: expected cnn or resnet20", args.model);
    };
    if args.batch == 0 || args.steps == 0 {
        bail!("--batch and --steps must be at least 1");
    }
    let head = match args.head.as_deref() {
        None => None,
        Some("softmax") => Some(HeadKind::Softmax),
        Some("symmetrical") => Some(HeadKind::Symmetrical),
        Some(other) => bail!("--head {other:?}: expected softmax or symmetrical"),
    };
    let device = DeviceChoice::parse(&args.device)?;
    set_threads(args.threads);
    let r = run_on(
        device,
        BenchJob {
            model,
            head,
            batch: args.batch,
            steps: args.steps,
            warmup: args.warmup,
        },
    )?;
    println!("train_img_s={:.1}", r.train_img_s);
    println!("infer_img_s={:.1}", r.infer_img_s);
    Ok(ExitCode::SUCCESS)
}
