//! Device selection: CPU, or CUDA when libtorch_cuda loads and a GPU is visible.
//!
//! The linker drops libtorch_cuda from the binary (it is linked "as needed" and no symbol of
//! it is used directly), which keeps the binary runnable on the small CPU-only install. So CUDA
//! is loaded at run time, with `dlopen(RTLD_GLOBAL)`, when asked for; only then does libtorch
//! register its CUDA backend and `tch::Cuda::is_available()` mean anything.

use anyhow::{bail, Result};
use std::ffi::{CStr, CString};
use tch::Device;

/// Which device the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DeviceChoice {
    /// CUDA when it loads and a GPU is visible, else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU; an error when there is none.
    Cuda,
}

/// The folder of libtorch this binary was built against (from build.rs).
const BUILD_LIBTORCH_LIB: &str = env!("ADGAN_LIBTORCH_LIB");

/// Loads libtorch_cuda.so into the process; returns why it failed.
fn load_libtorch_cuda() -> std::result::Result<(), String> {
    let mut candidates = vec!["libtorch_cuda.so".to_string()];
    if !BUILD_LIBTORCH_LIB.is_empty() {
        candidates.push(format!("{BUILD_LIBTORCH_LIB}/libtorch_cuda.so"));
    }
    let mut errors = Vec::new();
    for name in candidates {
        let c_name = CString::new(name.clone()).map_err(|e| e.to_string())?;
        // SAFETY: dlopen with a valid C string; the handle is deliberately never closed, as the
        // library must stay loaded for the life of the process.
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if !handle.is_null() {
            return Ok(());
        }
        // SAFETY: dlerror returns a thread-local C string or null.
        let err = unsafe { libc::dlerror() };
        let msg = if err.is_null() {
            "unknown error".to_string()
        } else {
            unsafe { CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned()
        };
        errors.push(format!("{name}: {msg}"));
    }
    Err(errors.join("; "))
}

/// Resolves the user's choice to a device.
pub fn select(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(match load_libtorch_cuda() {
            Ok(()) if tch::Cuda::is_available() => Device::Cuda(0),
            _ => Device::Cpu,
        }),
        DeviceChoice::Cuda => {
            if let Err(why) = load_libtorch_cuda() {
                bail!(
                    "CUDA was asked for, but libtorch_cuda could not be loaded ({why}). Install the CUDA \
                     build of torch 2.11.0 with its CUDA libraries (scripts/setup.sh --full), \
                     or point LD_LIBRARY_PATH at a torch/lib folder that has them"
                );
            }
            if !tch::Cuda::is_available() {
                bail!("CUDA was asked for and libtorch_cuda loaded, but no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
            }
            Ok(Device::Cuda(0))
        }
    }
}

/// A short name for logs: `cpu` or `cuda:0`.
pub fn name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

/// Bytes of host memory free for new work (MemAvailable of /proc/meminfo), where the system
/// says; used to refuse, with an estimate, work that could not fit instead of aborting on a
/// failed allocation.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether `device` multiplies bfloat16 in hardware. On a CPU without bf16 instructions
/// libtorch's bf16 convolutions fall back to generic kernels, so `--precision bf16` there is
/// many times slower than f32 instead of faster (BENCHMARKS.md, "ADGAN scoring throughput").
pub fn bf16_is_native(device: Device) -> bool {
    match device {
        Device::Cpu => cpu_has_bf16(),
        _ => true,
    }
}

/// The CPU's bf16 dot-product instructions, as the running processor reports them. On x86,
/// AVX512-BF16 alone is checked: every processor with AMX-BF16 also has it, and Rust's AMX
/// detection is not stable.
fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("bf16")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_count_as_native_bf16() {
        assert!(bf16_is_native(Device::Cuda(0)));
    }

    /// The detection must agree with the flags the kernel reports for the same processor, so
    /// the warning appears exactly where bf16 would be emulated.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn cpu_bf16_detection_matches_proc_cpuinfo() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            eprintln!("skipped: /proc/cpuinfo is not readable");
            return;
        };
        let flags = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .expect("/proc/cpuinfo has a flags line");
        let kernel_says = flags.split_whitespace().any(|f| f == "avx512_bf16");
        assert_eq!(bf16_is_native(Device::Cpu), kernel_says);
    }
}
