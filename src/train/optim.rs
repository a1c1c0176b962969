//! The optimiser of every run and of `symfeat bench`: SGD with PyTorch's
//! semantics (dampening 0, weight decay added to the gradient of every
//! parameter; burn's default dampening is 0.1).

use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;

/// SGD as PyTorch's `torch.optim.SGD(momentum, nesterov, weight_decay)`
/// (momentum 0: plain SGD; weight decay 0: none).
pub fn sgd(momentum: f64, nesterov: bool, weight_decay: f64) -> SgdConfig {
    let momentum = (momentum > 0.0).then_some(MomentumConfig {
        momentum,
        dampening: 0.0,
        nesterov,
    });
    let decay = (weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: weight_decay as f32,
    });
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(decay)
}
