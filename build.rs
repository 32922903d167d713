//! Gives every binary and test an rpath to libtorch, so `adgan` runs without LD_LIBRARY_PATH,
//! records the folder so that `device::load_cuda` can find libtorch_cuda.so at run time, and
//! builds the CUDA graph shim (csrc/cuda_graph.cpp) where libtorch has CUDA and the CUDA
//! headers are at hand.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    println!("cargo::rustc-check-cfg=cfg(adgan_cuda_graph)");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    if let Some(lib) = &lib {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=ADGAN_LIBTORCH_LIB={lib}");
    } else {
        println!("cargo:rustc-env=ADGAN_LIBTORCH_LIB=");
    }
    match lib
        .map(PathBuf::from)
        .ok_or("tch did not say where libtorch is".to_string())
        .and_then(|l| build_cuda_graph_shim(&l))
    {
        Ok(shim) => {
            println!("cargo:rustc-cfg=adgan_cuda_graph");
            println!("cargo:rustc-env=ADGAN_CUDA_GRAPH_SHIM={}", shim.display());
            println!("cargo:rustc-env=ADGAN_CUDA_GRAPH_MISSING=");
        }
        Err(why) => println!("cargo:rustc-env=ADGAN_CUDA_GRAPH_MISSING={why}"),
    }
}

/// Compiles csrc/cuda_graph.cpp into a shared library in OUT_DIR, or says what is missing.
/// It is a shared library of its own, not part of the binary, because it needs libtorch_cuda,
/// which the binary loads only when a GPU is asked for (src/device.rs).
fn build_cuda_graph_shim(libtorch_lib: &Path) -> Result<PathBuf, String> {
    if !libtorch_lib.join("libtorch_cuda.so").exists() {
        return Err(format!(
            "{} has no libtorch_cuda.so (a CPU-only libtorch)",
            libtorch_lib.display()
        ));
    }
    let torch_include = libtorch_lib.join("../include");
    let cuda_include = match std::env::var("CUDA_HOME") {
        Ok(home) => PathBuf::from(home).join("include"),
        // The layout of PyPI's CUDA wheels beside torch's (scripts/setup.sh installs them).
        Err(_) => libtorch_lib.join("../../nvidia/cu13/include"),
    };
    for needed in [
        torch_include.join("ATen/cuda/CUDAGraph.h"),
        cuda_include.join("cuda_runtime_api.h"),
        cuda_include.join("crt/host_config.h"),
    ] {
        if !needed.exists() {
            return Err(format!(
                "{} is missing (scripts/setup.sh installs the CUDA headers)",
                needed.display()
            ));
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?)
        .join("libadgan_cuda_graph.so");
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let status = Command::new(compiler.path())
        .args(["-std=c++17", "-O2", "-fPIC", "-shared", "-w"])
        .arg(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .arg("-I")
        .arg(&torch_include)
        .arg("-I")
        .arg(&cuda_include)
        .arg("csrc/cuda_graph.cpp")
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(libtorch_lib)
        .args(["-ltorch_cuda", "-lc10_cuda", "-ltorch_cpu", "-lc10"])
        .status()
        .map_err(|e| format!("could not run {}: {e}", compiler.path().display()))?;
    if !status.success() {
        return Err(format!("compiling csrc/cuda_graph.cpp failed ({status})"));
    }
    Ok(out)
}
