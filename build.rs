//! Gives every binary and test an rpath to libtorch, so `adgan` runs without LD_LIBRARY_PATH,
//! and records the folder so that `device::load_cuda` can find libtorch_cuda.so at run time.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=ADGAN_LIBTORCH_LIB={lib}");
    } else {
        println!("cargo:rustc-env=ADGAN_LIBTORCH_LIB=");
    }
}
