//! What a checkpoint needs from the model: the path and shape of every
//! parameter, and the check that a checkpoint fits the model a resume
//! builds. The file format of `checkpoint.bin` is
//! [`crate::run_dir::checkpoint`].

use super::TrainConfig;
use crate::run_dir::{Checkpoint, CheckpointState};
use anyhow::{Result, anyhow, bail};
use burn::module::AutodiffModule;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use std::path::Path;

/// Collects the path (enum variants included) and shape of every parameter.
struct Shapes {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>)>,
}

impl Shapes {
    fn push(&mut self, shape: Vec<usize>) {
        self.out.push((self.path.join("."), shape));
    }
}

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.push(param.val().dims().to_vec());
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.push(param.val().dims().to_vec());
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.push(param.val().dims().to_vec());
    }
}

/// Path and shape of every parameter of `module`, in visiting order.
pub fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut v = Shapes {
        path: vec![],
        out: vec![],
    };
    module.visit(&mut v);
    v.out
}

/// Options that decide the model's structure: a resume may change the
/// others (epochs, lr, momentum, schedule...), not these.
fn structural_diffs(old: &TrainConfig, new: &TrainConfig) -> Vec<String> {
    let mut diffs = vec![];
    let mut cmp = |name: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{name} = {a} in the checkpoint, {b} now"));
        }
    };
    cmp(
        "dataset",
        format!("{:?}", old.dataset),
        format!("{:?}", new.dataset),
    );
    cmp("net", format!("{:?}", old.net), format!("{:?}", new.net));
    if old.net == "lenet" || new.net == "lenet" {
        cmp(
            "feature-dim",
            old.feature_dim.to_string(),
            new.feature_dim.to_string(),
        );
    }
    cmp(
        "feature-act",
        format!("{:?}", old.feature_act),
        format!("{:?}", new.feature_act),
    );
    cmp("head", format!("{:?}", old.head), format!("{:?}", new.head));
    cmp(
        "channels_kept",
        format!("{:?}", old.channels_kept),
        format!("{:?}", new.channels_kept),
    );
    cmp(
        "binary",
        format!("{:?}", old.binary),
        format!("{:?}", new.binary),
    );
    cmp(
        "head-param",
        format!("{:?}", old.head_params),
        format!("{:?}", new.head_params),
    );
    diffs
}

/// Check that a checkpoint written with `ck` fits the model built now (its
/// `shapes`) under `config`; `path` names the checkpoint in the error.
/// Loading a record into a model of another structure panics in burn or,
/// worse, silently trains the checkpoint's shapes under the new config.
pub fn check_fits(
    ck: &CheckpointState,
    shapes: &[(String, Vec<usize>)],
    config: &TrainConfig,
    path: &Path,
) -> Result<()> {
    let diffs = ck
        .config
        .as_ref()
        .map(|old| structural_diffs(old, config))
        .unwrap_or_default();
    let shape_diff = if ck.param_shapes.is_empty() {
        None
    } else {
        let first = ck.param_shapes.iter().zip(shapes).find(|(a, b)| a != b);
        match first {
            Some(((na, sa), (nb, sb))) if na == nb => Some(format!(
                "parameter {na} has shape {sa:?} in the checkpoint, {sb:?} here"
            )),
            Some(((na, _), (nb, _))) => Some(format!(
                "the checkpoint has parameter {na} where this model has {nb}"
            )),
            None if ck.param_shapes.len() != shapes.len() => Some(format!(
                "the checkpoint holds {} parameters, this model {}",
                ck.param_shapes.len(),
                shapes.len()
            )),
            None => None,
        }
    };
    // `feature_act` changes what the head sees without always changing a
    // shape (relu <-> linear), `binary` how the layers compute (sign <->
    // recu): refused on their own (they are in `diffs`).
    let act_changed = ck
        .config
        .as_ref()
        .is_some_and(|old| old.feature_act != config.feature_act || old.binary != config.binary);
    if shape_diff.is_none() && !act_changed {
        return Ok(());
    }
    let mut what: Vec<String> = diffs;
    what.extend(shape_diff);
    bail!(
        "checkpoint {} does not fit this configuration: {}. Resume with the run's own \
         settings (epochs and training options such as lr or schedule may change; what \
         shapes the model, i.e. image size, net, feature-dim, feature-act, binary, head \
         and learn_scale, may not), or start a new run with another --out",
        path.display(),
        what.join("; ")
    )
}

type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// The checkpoint of `model` and `optim` after the epochs of `state`.
pub(crate) fn capture<B, M, O>(state: &CheckpointState, model: &M, optim: &O) -> Result<Checkpoint>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let rec = Rec::default();
    Ok(Checkpoint {
        state: state.clone(),
        model: rec
            .record(model.clone().into_record(), ())
            .map_err(|e| anyhow!("cannot encode the model for the checkpoint: {e}"))?,
        optim: rec
            .record(optim.to_record(), ())
            .map_err(|e| anyhow!("cannot encode the optimizer for the checkpoint: {e}"))?,
    })
}

/// The model of checkpoint `ck` (read from `path`) loaded into `model`,
/// built for `config` (the fit is checked first), for inference.
pub fn load_model<B: Backend, M: Module<B>>(
    ck: Checkpoint,
    path: &Path,
    config: &TrainConfig,
    model: M,
    device: &B::Device,
) -> Result<M> {
    let shapes = param_shapes(&model);
    // Inference may use a model built without the center loss's centers:
    // compare what both have.
    check_fits(&ck.state, &shapes, config, path)?;
    let rec = Rec::default();
    let record = rec.load(ck.model, device).map_err(|e| {
        anyhow!(
            "checkpoint {}: the model record does not fit: {e}",
            path.display()
        )
    })?;
    Ok(model.load_record(record))
}

/// Resume from `ck` (read from `path`): check that it fits the model built
/// for `config` (its parameter shapes `shapes`) and was written with the
/// same seed, then load the model and optimiser records. Returns the
/// restored model and optimiser and the checkpoint's state (with today's
/// parameter shapes and configuration).
pub(crate) fn restore<B, M, O>(
    ck: Checkpoint,
    path: &Path,
    config: &TrainConfig,
    model: M,
    optim: O,
    device: &B::Device,
) -> Result<(M, O, CheckpointState)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let shapes = param_shapes(&model);
    check_fits(&ck.state, &shapes, config, path)?;
    if ck.state.seed != config.seed {
        bail!(
            "checkpoint {} was written with seed {}, the configuration has seed {}; \
             resume with --seed {}",
            path.display(),
            ck.state.seed,
            config.seed,
            ck.state.seed
        );
    }
    let rec = Rec::default();
    let model_rec = rec
        .load(ck.model, device)
        .map_err(|e| anyhow!("checkpoint model record does not fit this config: {e}"))?;
    let optim_rec = rec
        .load(ck.optim, device)
        .map_err(|e| anyhow!("checkpoint optimizer record does not fit this config: {e}"))?;
    let state = CheckpointState {
        param_shapes: shapes,
        config: Some(config.clone()),
        ..ck.state
    };
    Ok((
        model.load_record(model_rec),
        optim.load_record(optim_rec),
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample() -> CheckpointState {
        CheckpointState {
            epochs_done: 2,
            global_step: 20,
            seed: 7,
            history: vec![],
            probe: vec![],
            param_shapes: vec![("net.fc.weight".into(), vec![4, 2])],
            config: Some(TrainConfig::default()),
        }
    }

    /// Regression (issue #7): resuming with another head or net panicked in
    /// burn ("Can't parse record from a different variant"); another
    /// feature-dim silently trained the checkpoint's shapes.
    #[test]
    fn a_checkpoint_that_does_not_fit_is_an_error_naming_the_option() {
        let ck = sample();
        let p = Path::new("run/checkpoint.bin");
        let same = ck.param_shapes.clone();
        let cfg = TrainConfig::default();
        check_fits(&ck, &same, &cfg, p).unwrap();
        // Training options may change.
        let longer = TrainConfig {
            epochs: 50,
            lr: 0.001,
            ..TrainConfig::default()
        };
        check_fits(&ck, &same, &longer, p).unwrap();
        let other = vec![("net.fc.weight".to_string(), vec![4, 3])];
        let lenet = TrainConfig {
            net: "lenet".into(),
            feature_dim: 3,
            ..TrainConfig::default()
        };
        let e = check_fits(&ck, &other, &lenet, p).unwrap_err().to_string();
        for w in [
            "run/checkpoint.bin",
            "net = \"cnn\" in the checkpoint, \"lenet\" now",
            "feature-dim = 2 in the checkpoint, 3 now",
            "[4, 2] in the checkpoint, [4, 3] here",
        ] {
            assert!(e.contains(w), "{w:?} not in {e}");
        }
        // Older checkpoints carry neither list: nothing to compare.
        let old = CheckpointState {
            param_shapes: vec![],
            config: None,
            ..ck
        };
        check_fits(&old, &other, &lenet, p).unwrap();
    }
}
