//! sifmount: SIF and OCI-SIF container images as plain files.
//!
//! Layers (see DESIGN.md §1): [`sif`] is the container format, [`oci`] the OCI image
//! layout stored in it.

pub mod oci;
pub mod sif;
