//! sifmount: SIF and OCI-SIF container images as plain files.
//!
//! Layers (see docs/ARCHITECTURE.md), each knowing only those before it: [`sif`] is the container
//! format, [`oci`] the OCI image layout stored in it, [`cosign`] cosign's conventions,
//! [`tree`] the files a mount shows, and [`mount`] the FUSE adapter.

// Unsafe code lives in `sys` alone; every other module forbids it.
#![deny(unsafe_code)]

pub mod cosign;
pub mod mount;
pub mod mountinfo;
pub mod oci;
pub mod sif;
pub mod sys;
pub mod tree;
pub mod volume;
