//! Which optional test inputs this machine has, as cfgs for the tests:
//! `has_fashion_mnist` (Debian's `dataset-fashion-mnist`) and
//! `has_chromium` (Debian's `chromium`). A test that needs one is
//! `#[ignore]`d with the reason where it is missing, so `cargo test` reports
//! it as ignored instead of passing it silently.

use std::path::Path;

/// `path` if it exists, else its nearest existing ancestor: cargo reruns
/// this script when it changes (e.g. the package gets installed).
fn watch(path: &str) {
    let mut p = Path::new(path);
    while !p.exists() {
        match p.parent() {
            Some(up) => p = up,
            None => return,
        }
    }
    println!("cargo::rerun-if-changed={}", p.display());
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(has_fashion_mnist)");
    println!("cargo::rustc-check-cfg=cfg(has_chromium)");
    let fmnist = "/usr/share/datasets/fashion-mnist";
    watch(fmnist);
    if Path::new(fmnist)
        .join("train-images-idx3-ubyte.gz")
        .exists()
    {
        println!("cargo::rustc-cfg=has_fashion_mnist");
    }
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        watch(c);
        if Path::new(c).exists() {
            println!("cargo::rustc-cfg=has_chromium");
            break;
        }
    }
}
