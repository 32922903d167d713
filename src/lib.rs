//! adgan: image anomaly detection with generative adversarial networks.
//!
//! A reference implementation of ADGAN (Deecke, Vandermeulen, Ruff, Mandt, Kloft, "Image
//! Anomaly Detection with Generative Adversarial Networks", ECML-PKDD 2018) on libtorch.
//!
//! The modules follow the pipeline: [`data`] reads images and builds splits, [`model`] holds the
//! DCGAN generator and critic, [`train`] fits a Wasserstein GAN to normal images and writes
//! resumable checkpoints ([`checkpoint`]), and [`device`] picks CPU or CUDA.

pub mod alexnet;
pub mod autoencoder;
pub mod bench;
pub mod calibration;
pub mod cuda_graph;
pub mod data;
pub mod demo;
pub mod device;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod inverse;
pub mod io;
pub mod model;
pub mod optim;
pub mod output;
pub mod ranking_page;
pub mod report;
pub mod rng;
pub mod run;
pub mod score;
pub mod scorer;
pub mod selection;
pub mod setting;
pub mod train;
pub mod train_run;
pub mod visual;
