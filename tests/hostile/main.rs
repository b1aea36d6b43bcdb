//! Hostile images, alone in a test binary of their own: `hostile_images` installs a
//! counting global allocator and measures each case's peak heap, which only means
//! something when no test of another file allocates in the same process at the same time
//! (and its hard ceiling must not abort other tests). `cargo test --test hostile`.

#[path = "../common/mod.rs"]
mod common;

mod hostile_images;
