//! Speed measurement on random data: the same model, batch and optimizer as
//! the PyTorch peer `bench/torch_bench.py`.

use crate::backend::BackendJob;
use crate::heads::{HeadKind, HeadSpec, cross_entropy};
use crate::nets::{Identity, NetKind, NetSpec, WeightTransform};
use crate::train::Model;
use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::backend::AutodiffBackend;
use std::time::Instant;

/// The benchmarked models.
#[derive(Debug, Clone, Copy)]
pub enum BenchModel {
    /// Reference CNN, 1x28x28, softmax head, C = 10.
    Cnn,
    /// ResNet-20, 3x32x32, symmetrical head, C = 10.
    Resnet20,
}

impl BenchModel {
    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cnn" => Some(Self::Cnn),
            "resnet20" => Some(Self::Resnet20),
            _ => None,
        }
    }
}

/// A benchmark run.
pub struct BenchJob {
    /// Model.
    pub model: BenchModel,
    /// Head (`None`: the model's own, softmax for the CNN, symmetrical for ResNet-20).
    pub head: Option<HeadKind>,
    /// Batch size.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Warm-up steps.
    pub warmup: usize,
}

/// Throughputs in images per second.
pub struct BenchResult {
    /// Training (forward, backward, SGD step).
    pub train_img_s: f64,
    /// Inference (forward only, no autodiff).
    pub infer_img_s: f64,
}

impl BackendJob for BenchJob {
    type Output = BenchResult;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<BenchResult> {
        B::seed(&device, 0);
        let (spec, head) = match self.model {
            BenchModel::Cnn => (
                NetSpec {
                    kind: NetKind::Cnn,
                    channels: 1,
                    height: 28,
                    width: 28,
                    lenet_dim: 2,
                    feature_act: Default::default(),
                    kept: None,
                    binary: crate::nets::Binarize::None,
                },
                HeadKind::Softmax,
            ),
            BenchModel::Resnet20 => (
                NetSpec {
                    kind: NetKind::Resnet20,
                    channels: 3,
                    height: 32,
                    width: 32,
                    lenet_dim: 2,
                    feature_act: Default::default(),
                    kept: None,
                    binary: crate::nets::Binarize::None,
                },
                HeadKind::Symmetrical,
            ),
        };
        let head = HeadSpec {
            kind: self.head.unwrap_or(head),
            params: Default::default(),
        }
        .init::<B>(spec.feature_dim(), 10, &device)?;
        let mut model = Model {
            net: spec.init::<B>(&device),
            feature_bn: None,
            head,
            center: None,
        };
        // The peer's torch.optim.SGD(lr, momentum=0.9, weight_decay=5e-4).
        let mut optim = crate::train::sgd(0.9, false, 5e-4).init::<B, Model<B>>();
        let shape = [self.batch, spec.channels, spec.height, spec.width];
        let x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let labels: Vec<i64> = (0..self.batch as i64).map(|i| i % 10).collect();
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [self.batch]), &device);

        let mut train_step = |model: Model<B>| {
            let (_, logits) = model.forward(x.clone());
            let loss = cross_entropy(logits, y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = optim.step(0.01, model, grads);
            // Read one value back so that asynchronous backends finish the step.
            let _: f32 = model.head.class_weights_sum();
            model
        };
        for _ in 0..self.warmup {
            model = train_step(model);
        }
        let start = Instant::now();
        for _ in 0..self.steps {
            model = train_step(model);
        }
        let train_img_s = (self.steps * self.batch) as f64 / start.elapsed().as_secs_f64();

        let valid = model.valid();
        let xi = x.inner();
        let infer = |xi: &Tensor<B::InnerBackend, 4>| -> f32 {
            let (_, logits) = valid.forward(xi.clone());
            logits.sum().into_scalar().elem()
        };
        for _ in 0..self.warmup {
            infer(&xi);
        }
        let start = Instant::now();
        for _ in 0..self.steps {
            infer(&xi);
        }
        let infer_img_s = (self.steps * self.batch) as f64 / start.elapsed().as_secs_f64();
        Ok(BenchResult {
            train_img_s,
            infer_img_s,
        })
    }
}

trait SyncValue {
    fn class_weights_sum(&self) -> f32;
}

impl<B: Backend> SyncValue for crate::heads::Head<B> {
    fn class_weights_sum(&self) -> f32 {
        use crate::heads::HeadOps;
        self.class_weights().sum().into_scalar().elem()
    }
}

/// Inference throughputs (images per second) of `models` on one batch of
/// random `[batch, Ch, H, W]` images, measured in alternation (`rounds`
/// rounds of `steps` timed forward passes each after `warmup` untimed
/// ones): the median over rounds, per model. Alternating keeps the models'
/// conditions (frequency, cache) alike.
pub fn infer_img_s<B: Backend>(
    models: &[(&Model<B>, &dyn WeightTransform<B>)],
    shape: [usize; 4],
    steps: usize,
    warmup: usize,
    rounds: usize,
    device: &B::Device,
) -> Vec<f64> {
    let x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let pass = |(m, t): &(&Model<B>, &dyn WeightTransform<B>)| {
        let (_, logits) = m.forward_with(x.clone(), *t);
        let _: f32 = logits.sum().into_scalar().elem();
    };
    let mut rates: Vec<Vec<f64>> = vec![vec![]; models.len()];
    for m in models {
        for _ in 0..warmup {
            pass(m);
        }
    }
    for _ in 0..rounds.max(1) {
        for (i, m) in models.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..steps.max(1) {
                pass(m);
            }
            rates[i].push((steps.max(1) * shape[0]) as f64 / start.elapsed().as_secs_f64());
        }
    }
    rates
        .into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect()
}

/// `symfeat bench --run DIR`: a trained run's inference speed and, for a
/// pruned run, the unpruned architecture's beside it.
#[derive(Debug, Clone)]
pub struct RunBench {
    /// The run's model.
    pub infer_img_s: f64,
    /// Multiply-accumulates per image of the run's model.
    pub macs: u64,
    /// The unpruned architecture (random weights), for a pruned run.
    pub unpruned: Option<(f64, u64)>,
}

/// Measure the run in `dir` (its last checkpoint) on the CPU.
pub fn bench_run(
    dir: &std::path::Path,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<RunBench> {
    let (l, prepared) = crate::train::load_run_prepared(dir)?;
    let device = Default::default();
    let spec = prepared.spec;
    let shape = [batch, spec.channels, spec.height, spec.width];
    let macs = l.model.net.macs(spec.height, spec.width);
    if spec.kept.is_none() {
        let r = infer_img_s(&[(&l.model, &Identity)], shape, steps, warmup, 5, &device);
        return Ok(RunBench {
            infer_img_s: r[0],
            macs,
            unpruned: None,
        });
    }
    let mut full_spec = spec.clone();
    full_spec.kept = None;
    let full =
        crate::train::model::build::<crate::backend::Cpu>(&l.cfg, &full_spec, l.classes, &device)?;
    let full_macs = full.net.macs(spec.height, spec.width);
    let r = infer_img_s(
        &[(&l.model, &Identity), (&full, &Identity)],
        shape,
        steps,
        warmup,
        5,
        &device,
    );
    Ok(RunBench {
        infer_img_s: r[0],
        macs,
        unpruned: Some((r[1], full_macs)),
    })
}

/// `symfeat bench --run DIR --packed`: a binary run's bit-packed inference
/// against the float simulation of the same model.
#[derive(Debug, Clone)]
pub struct PackedBench {
    /// Images per second, binary layers bit-packed.
    pub packed_img_s: f64,
    /// Images per second, the float model of the same architecture
    /// (binary layers as float layers on the latent weights, no sign).
    pub float_img_s: f64,
    /// Images per second, the simulated binary model (float convolutions
    /// of +-1 tensors, as in training and evaluation).
    pub simulated_img_s: f64,
    /// The inner loop the kernel ran.
    pub isa: crate::kernels::bitconv::Isa,
    /// Binary layers' weight sizes.
    pub sizes: crate::binary::packed::BinarySizes,
    /// Bytes of `packed.safetensors` and `model.safetensors`.
    pub files: (u64, u64),
    /// Test images whose packed and float argmax agree, of all.
    pub agree: (usize, usize),
    /// Largest |packed - float| logit over the test set.
    pub max_logit_diff: f32,
}

/// Measure the binary run in `dir` packed against float, and check that
/// both predict the same class for every test image (argmax ties: the
/// first maximal class, `count_correct`'s rule, for both).
pub fn bench_packed(
    dir: &std::path::Path,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<PackedBench> {
    use crate::run_dir;
    let (l, prepared) = crate::train::load_run_prepared(dir)?;
    if !l.cfg.binary.binarizes() {
        anyhow::bail!(
            "--packed: {} is not a binary run (binary = {} in its config.toml); train with --binary sign or recu",
            dir.display(),
            l.cfg.binary.name()
        );
    }
    let path = dir.join(run_dir::PACKED);
    if !path.exists() {
        anyhow::bail!(
            "--packed: {} has no {} (a binary run writes it when training ends: finish the run first)",
            dir.display(),
            run_dir::PACKED
        );
    }
    let layers = crate::binary::packed::read(&path)?;
    let packed = crate::binary::packed::PackedTransform::new(layers);
    packed
        .check(&l.model.net)
        .with_context(|| format!("{} does not fit the run's model", path.display()))?;
    let device = Default::default();
    let spec = prepared.spec;
    // Agreement on the test set.
    let (mut agree, mut max_diff) = (0usize, 0f32);
    let all: Vec<usize> = (0..l.test.n).collect();
    let mut buf = Vec::new();
    for idx in all.chunks(l.cfg.raw.eval_batch) {
        let (x, _) = crate::train::eval::batch_tensors::<crate::backend::Cpu>(
            &l.test, idx, &l.norm, None, &mut buf, &device,
        );
        let (_, a) = l.model.forward_with(x.clone(), &Identity);
        let (_, b) = l.model.forward_with(x, &packed);
        let d: f32 = (a.clone() - b.clone()).abs().max().into_scalar().elem();
        max_diff = max_diff.max(d);
        let same: i64 = a
            .argmax(1)
            .equal(b.argmax(1))
            .int()
            .sum()
            .into_scalar()
            .elem();
        agree += same as usize;
    }
    let shape = [batch, spec.channels, spec.height, spec.width];
    let float = crate::binary::packed::FloatLayers;
    let r = infer_img_s(
        &[
            (&l.model, &packed),
            (&l.model, &float),
            (&l.model, &Identity),
        ],
        shape,
        steps,
        warmup,
        5,
        &device,
    );
    let sizes = crate::binary::packed::sizes(&crate::binary::packed::pack(&l.model.net)?);
    let len = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(PackedBench {
        packed_img_s: r[0],
        float_img_s: r[1],
        simulated_img_s: r[2],
        isa: crate::kernels::bitconv::isa(),
        sizes,
        files: (len(path), len(dir.join(run_dir::WEIGHTS))),
        agree: (agree, l.test.n),
        max_logit_diff: max_diff,
    })
}
