//! The search on buffers that outlive a batch, so that a CUDA graph can record it once and
//! replay it for every batch of the same size.
//!
//! A graph replays the same kernels on the same memory. So the images and initial latents are
//! copied into buffers it was recorded with, every search starts by resetting the latents,
//! theta and both Adam states in place, and the k steps take the Adam step counts 1..k as
//! constants, which they are for every image. The outcome is read from the tensors the
//! recorded work produced, and copied out before the next batch overwrites them.

use super::{Adgan, AdganConfig, Search, SearchState};
use crate::cuda_graph::CudaGraph;
use crate::model::Generator;
use anyhow::Result;
use tch::Tensor;

/// Losses [k + 1, B], final latents and best reconstructions, as [`SearchState::steps`]
/// returns them.
type Outcome = (Tensor, Tensor, Tensor);

/// Buffers for one batch size, and the graph recorded on them.
pub(super) struct Replay {
    state: SearchState,
    images: Tensor,
    initial: Tensor,
    outcome: Option<Outcome>,
    graph: Option<CudaGraph>,
}

/// One whole search on the buffers: reset, k steps, final forward.
fn search_once(
    state: &mut SearchState,
    generator: &Generator,
    images: &Tensor,
    initial: &Tensor,
    config: &AdganConfig,
) -> Outcome {
    state.reset(generator, initial);
    state.steps(images, config)
}

impl Replay {
    /// Buffers shaped like `images` and `initial` (holding copies of them), and, when
    /// `record`, the search recorded on them as a CUDA graph.
    pub(super) fn new(
        adgan: &Adgan,
        images: &Tensor,
        initial: &Tensor,
        record: bool,
    ) -> Result<Self> {
        let mut replay = Self {
            state: adgan.start_batch(initial.copy(), images.size()[0]),
            images: images.copy(),
            initial: initial.copy(),
            outcome: None,
            graph: None,
        };
        if record {
            let (state, images, initial, outcome) = (
                &mut replay.state,
                &replay.images,
                &replay.initial,
                &mut replay.outcome,
            );
            let mut work = || {
                *outcome = Some(search_once(
                    state,
                    adgan.generator,
                    images,
                    initial,
                    &adgan.config,
                ));
                Ok(())
            };
            replay.graph = Some(CudaGraph::record(images.device(), &mut work)?);
        }
        Ok(replay)
    }

    /// Whether `images` has the batch's shape.
    pub(super) fn fits(&self, images: &Tensor) -> bool {
        self.images.size() == images.size()
    }

    /// The search of `images` from `initial`: the recorded graph replayed, or the same work run
    /// on the buffers.
    pub(super) fn search(
        &mut self,
        generator: &Generator,
        config: &AdganConfig,
        images: &Tensor,
        initial: &Tensor,
    ) -> Result<Search> {
        tch::no_grad(|| {
            self.images.copy_(images);
            self.initial.copy_(initial);
        });
        match &self.graph {
            Some(graph) => graph.replay()?,
            None => {
                self.outcome = Some(search_once(
                    &mut self.state,
                    generator,
                    &self.images,
                    &self.initial,
                    config,
                ))
            }
        }
        let (losses, latents, best) = self.outcome.as_ref().expect("a search ran");
        Search::checked(losses.copy(), latents.copy(), best.copy())
    }
}
