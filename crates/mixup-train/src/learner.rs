//! The zoo's training step under burn-train's `Learner` (feature `learner`): [`Mixup`] wraps
//! any [`MixingPoints`] classifier and implements burn-train's [`TrainStep`] and
//! [`InferenceStep`], so that `SupervisedTraining` (its metrics, checkpointing, early
//! stopping, multi-device strategies) trains it with any classification method of the zoo.
//!
//! ```no_run
//! # use burn::{data::dataloader::DataLoaderBuilder, data::dataset::InMemDataset,
//! #     optim::lr_scheduler::constant::ConstantLr, tensor::Device,
//! #     train::{Learner, SupervisedTraining, metric::{AccuracyMetric, LossMetric}}};
//! # use mixup_core::{Layout, MixMethod};
//! # use mixup_data::EncodedExample;
//! # use mixup_train::{OptimConfig, StepConfig, learner::{Mixup, MixupBatcher}, optim::build_optimizer};
//! # fn data() -> Vec<EncodedExample> { Vec::new() }
//! let device = Device::flex().autodiff();
//! let model = mixup_models::TextCnnConfig::new(8000, 6).init(&device);
//! let step = StepConfig::new().with_method(MixMethod::Word).with_max_len(40);
//! let model = Mixup::new(model, &step, 6, Layout::PLAIN, 0).expect("a method this model has");
//! let optim = build_optimizer(&OptimConfig::new(), &model);
//! let batcher = MixupBatcher::new(MixMethod::Word);
//! let train = DataLoaderBuilder::new(batcher.clone()).batch_size(64).shuffle(0)
//!     .build(InMemDataset::new(data()));
//! let valid = DataLoaderBuilder::new(MixupBatcher::clean()).batch_size(256)
//!     .build(InMemDataset::new(data()));
//! let result = SupervisedTraining::new("runs/learner", train, valid)
//!     .metrics((AccuracyMetric::new(), LossMetric::new()))
//!     .num_epochs(10)
//!     .launch(Learner::new(model, optim, ConstantLr::new(1e-3)));
//! ```
//!
//! Differences from [`crate::train::train`]: burn-train drives the epochs, so `off_epoch` is
//! not applied; the training accuracy metric is against each row's dominant label (as the
//! loop's `train_acc_dominant`); mixing draws come from one RNG seeded by [`Mixup::new`], so a
//! run is repeatable but does not resume draw for draw. Methods that mix with a separate batch
//! (TMix) take it from the same loader: [`MixupBatcher`] splits each loaded batch in two
//! halves, so give that loader twice the batch size.

use std::sync::{Arc, Mutex};

use burn::{
    data::dataloader::batcher::Batcher,
    module::{Module, ModuleDisplay},
    optim::{
        GradientsParams, ModuleOptimizer, lr_scheduler::module_lr_scheduler::ModuleLearningRate,
    },
    tensor::Device,
    train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep},
};
use mixup_core::{Layout, MixMethod, soft_cross_entropy, soft_targets};
use mixup_data::{EncodedExample, TextBatch};
use mixup_models::MixingPoints;
use rand::{SeedableRng, rngs::StdRng};

use crate::{
    config::StepConfig,
    error::Result,
    optim::clip_grad_norm,
    step::{StepBatch, StepPlan, step_gradients},
};

/// A classifier with the zoo's training step, ready for burn-train's `Learner`.
#[derive(Module, Debug)]
pub struct Mixup<M> {
    /// The wrapped classifier.
    pub model: M,
    /// The step's plan (method, mixing, loss, clipping).
    #[module(skip)]
    plan: StepPlan,
    /// The mixing draws of every step (shared by clones of the module).
    #[module(skip)]
    rng: Arc<Mutex<StdRng>>,
}

impl<M: Module + MixingPoints> Mixup<M> {
    /// Wraps `model` (a classifier of `num_classes` classes whose rows are laid out as
    /// `layout`) with the step `config`; `seed` seeds the mixing draws.
    ///
    /// # Errors
    ///
    /// A bad config or a method without a mixing point in this model ([`StepPlan::new`]).
    pub fn new(
        model: M,
        config: &StepConfig,
        num_classes: usize,
        layout: Layout,
        seed: u64,
    ) -> Result<Self> {
        let plan = StepPlan::new(config, &model.points(), num_classes, layout)?;
        Ok(Self {
            model,
            plan,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        })
    }

    /// The plan every step follows.
    pub fn plan(&self) -> &StepPlan {
        &self.plan
    }
}

/// One batch of encoded rows for [`Mixup`], with the partner batch of methods that mix with a
/// separate batch.
#[derive(Clone, Debug)]
pub struct ExampleBatch {
    /// The rows.
    pub items: Vec<EncodedExample>,
    /// The separate partner rows (TMix); as many as `items`.
    pub partners: Option<Vec<EncodedExample>>,
    /// The device the batch is for.
    pub device: Device,
}

/// Batches [`EncodedExample`]s for [`Mixup`]: for methods that mix with a separate batch, the
/// loaded rows are split into the batch (first half) and its partners (second half).
#[derive(Clone, Copy, Debug)]
pub struct MixupBatcher {
    split: bool,
}

impl MixupBatcher {
    /// The batcher of `method`'s training loader.
    pub fn new(method: MixMethod) -> Self {
        Self {
            split: method.separate_batch(),
        }
    }

    /// The batcher of a validation loader (no partners).
    pub fn clean() -> Self {
        Self { split: false }
    }
}

impl Batcher<EncodedExample, ExampleBatch> for MixupBatcher {
    fn batch(&self, mut items: Vec<EncodedExample>, device: &Device) -> ExampleBatch {
        // A last odd row has no partner: it is dropped from a split batch.
        let partners = (self.split && items.len() >= 2).then(|| {
            let half = items.len() / 2;
            let partners = items.split_off(half);
            partners.into_iter().take(half).collect()
        });
        ExampleBatch {
            items,
            partners,
            device: device.clone(),
        }
    }
}

impl<M: Module + ModuleDisplay + MixingPoints + 'static> TrainStep for Mixup<M> {
    type Input = ExampleBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ExampleBatch) -> TrainOutput<ClassificationOutput> {
        let items: Vec<&EncodedExample> = batch.items.iter().collect();
        let partners: Option<Vec<&EncodedExample>> =
            batch.partners.as_ref().map(|p| p.iter().collect());
        let mixing =
            self.plan.mixes() && (!self.plan.method.separate_batch() || partners.is_some());
        let step = StepBatch {
            items: &items,
            partner_items: partners.as_deref(),
            mixing,
            unlabelled: None,
        };
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The only failure of a step is a method the model cannot run, which `Mixup::new`
        // has already refused; burn-train's step has no error channel.
        // The gradients are keyed by the parameters of `self.model`, which are this module's.
        let (grads, report) =
            step_gradients(&self.model, &self.plan, &step, &mut rng, &batch.device, 1.0)
                .unwrap_or_else(|e| panic!("mixup step: {e}"));
        TrainOutput {
            grads,
            item: ClassificationOutput::new(report.loss, report.logits, report.targets),
        }
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr_module: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let grads = match self.plan.clip_grad_norm {
            Some(max_norm) => clip_grad_norm(&self, grads, max_norm),
            None => grads,
        };
        optim.step(lr_module, self, grads)
    }
}

impl<M: Module + ModuleDisplay + MixingPoints + 'static> InferenceStep for Mixup<M> {
    type Input = ExampleBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ExampleBatch) -> ClassificationOutput {
        let items: Vec<&EncodedExample> = batch.items.iter().collect();
        let b = TextBatch::new(&items, self.plan.max_len, &batch.device);
        let logits = self.model.forward(b.ids, b.mask);
        let loss = soft_cross_entropy(
            logits.clone(),
            soft_targets(b.labels.clone(), self.plan.num_classes, 0.0),
            None,
        );
        ClassificationOutput::new(loss, logits, b.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<EncodedExample> {
        (0..n)
            .map(|i| EncodedExample {
                ids: vec![2 + i as u32],
                label: i % 2,
            })
            .collect()
    }

    #[test]
    fn the_batcher_splits_separate_batch_methods_in_halves() {
        let device = Device::flex();
        let b = MixupBatcher::new(MixMethod::Tmix).batch(rows(5), &device);
        let partners = b.partners.expect("tmix has partners");
        assert_eq!(
            (b.items.len(), partners.len()),
            (2, 2),
            "the odd row is dropped"
        );
        assert_eq!(partners[0].ids, vec![4]);
        let b = MixupBatcher::new(MixMethod::Word).batch(rows(5), &device);
        assert!(b.partners.is_none() && b.items.len() == 5);
        assert!(
            MixupBatcher::clean()
                .batch(rows(4), &device)
                .partners
                .is_none()
        );
    }

    #[test]
    fn a_learner_step_gives_the_library_step_gradients() {
        let device = Device::flex().autodiff();
        let model = crate::seeded_init(&device, 3, || {
            mixup_models::TextCnnConfig::new(20, 2)
                .with_d_embed(6)
                .with_n_filters(4)
                .with_dropout(0.0)
                .init(&device)
        });
        let step = StepConfig::new()
            .with_method(MixMethod::Word)
            .with_max_len(8);
        let wrapped = Mixup::new(model.clone(), &step, 2, Layout::PLAIN, 11).expect("plan");
        let batch = ExampleBatch {
            items: rows(4),
            partners: None,
            device: device.clone(),
        };
        let out = TrainStep::step(&wrapped, batch.clone());
        let refs: Vec<&EncodedExample> = batch.items.iter().collect();
        let (want, _) = step_gradients(
            &model,
            wrapped.plan(),
            &StepBatch {
                items: &refs,
                partner_items: None,
                mixing: true,
                unlabelled: None,
            },
            &mut StdRng::seed_from_u64(11),
            &device,
            1.0,
        )
        .expect("step");
        let read = |g: &GradientsParams| -> Vec<f32> {
            let t: burn::tensor::Tensor<2> = g.get(model.embedding.weight.id).expect("grad");
            t.into_data().convert::<f32>().try_to_vec().expect("f32")
        };
        let (a, b) = (read(&out.grads), read(&want));
        assert!(a.iter().any(|&v| v != 0.0));
        assert_eq!(a, b, "same draws, same gradients");
        let eval = InferenceStep::step(&wrapped, batch);
        assert_eq!(eval.output.dims(), [4, 2]);
    }
}
