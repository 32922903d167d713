//! CUDA graphs: GPU work recorded once and replayed as one launch, so that a search of many small
//! kernels stops paying the CPU's launch cost for each of them (the GPU issue's profile: the
//! batched search and training are bound by launch overhead, BENCHMARKS.md "GPU").
//!
//! tch 0.24 has no binding for them, so build.rs compiles a small C++ shim over libtorch's
//! `at::cuda::CUDAGraph` (csrc/cuda_graph.cpp) into a shared library, which this binary embeds
//! and loads from memory only when a graph is asked for, after libtorch_cuda: the binary itself
//! keeps running where the CUDA libraries are absent.
//!
//! A recorded graph replays the same kernels on the same memory: whatever it reads must be
//! copied into the tensors it was recorded with, and what it writes is read from the tensors
//! it produced, which the next replay overwrites.

use anyhow::{bail, Context, Result};
use std::ffi::{c_char, c_int, c_void, CStr};
use tch::Device;

/// Why this build has no shim: empty when it has one.
pub const MISSING: &str = env!("ADGAN_CUDA_GRAPH_MISSING");

#[cfg(adgan_cuda_graph)]
const SHIM: &[u8] = include_bytes!(env!("ADGAN_CUDA_GRAPH_SHIM"));
#[cfg(not(adgan_cuda_graph))]
const SHIM: &[u8] = &[];

type Call = unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> c_int;
type New = unsafe extern "C" fn(c_int, *mut c_char, usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);

/// The shim's functions (csrc/cuda_graph.cpp documents each).
struct Shim {
    new: New,
    enter: Call,
    leave: Call,
    capture_begin: Call,
    capture_end: Call,
    replay: Call,
    free: Free,
}

/// The shim, loaded once per process: a library, once loaded, stays for the life of the
/// process, so loading it again could only fail or return the same functions.
fn shim() -> Result<&'static Shim> {
    static SHIM_LOADED: std::sync::OnceLock<std::result::Result<Shim, String>> =
        std::sync::OnceLock::new();
    SHIM_LOADED
        .get_or_init(load_shim)
        .as_ref()
        .map_err(|why| anyhow::anyhow!("CUDA graphs are not available: {why}"))
}

/// The last `dlerror`, as text.
fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    let err = unsafe { libc::dlerror() };
    if err.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated by dlerror's contract.
        unsafe { CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Writes the embedded shim into an anonymous in-memory file and loads it from there: no file
/// is left behind, and no folder needs to be writable.
fn load_shim() -> std::result::Result<Shim, String> {
    if SHIM.is_empty() {
        return Err(format!(
            "this build has no CUDA graph shim ({MISSING}); run scripts/setup.sh and rebuild"
        ));
    }
    // SAFETY: memfd_create with a valid C string; the descriptor is owned by `file` below.
    let fd = unsafe { libc::memfd_create(c"adgan-cuda-graph".as_ptr(), 0) };
    if fd < 0 {
        return Err(format!(
            "memfd_create failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::io::Write::write_all(&mut file, SHIM).map_err(|e| e.to_string())?;
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a path");
    // SAFETY: dlopen with a valid C string. The handle is never closed: the functions taken
    // from it live as long as the process.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    drop(file);
    if handle.is_null() {
        return Err(format!(
            "the CUDA graph shim did not load ({}); CUDA graphs need the CUDA build of libtorch",
            dl_error()
        ));
    }
    let symbol = |name: &CStr| {
        // SAFETY: a valid handle and C string.
        let f = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if f.is_null() {
            Err(format!("the CUDA graph shim lacks {name:?}"))
        } else {
            Ok(f)
        }
    };
    // SAFETY: each symbol is the extern "C" function of csrc/cuda_graph.cpp with this signature.
    unsafe {
        Ok(Shim {
            new: std::mem::transmute::<*mut c_void, New>(symbol(names::NEW)?),
            enter: std::mem::transmute::<*mut c_void, Call>(symbol(names::ENTER)?),
            leave: std::mem::transmute::<*mut c_void, Call>(symbol(names::LEAVE)?),
            capture_begin: std::mem::transmute::<*mut c_void, Call>(symbol(names::CAPTURE_BEGIN)?),
            capture_end: std::mem::transmute::<*mut c_void, Call>(symbol(names::CAPTURE_END)?),
            replay: std::mem::transmute::<*mut c_void, Call>(symbol(names::REPLAY)?),
            free: std::mem::transmute::<*mut c_void, Free>(symbol(names::FREE)?),
        })
    }
}

/// The names of the shim's functions (csrc/cuda_graph.cpp), as the loader looks them up.
mod names {
    use std::ffi::CStr;

    pub const NEW: &CStr = c"adgan_graph_new";
    pub const ENTER: &CStr = c"adgan_graph_enter";
    pub const LEAVE: &CStr = c"adgan_graph_leave";
    pub const CAPTURE_BEGIN: &CStr = c"adgan_graph_capture_begin";
    pub const CAPTURE_END: &CStr = c"adgan_graph_capture_end";
    pub const REPLAY: &CStr = c"adgan_graph_replay";
    pub const FREE: &CStr = c"adgan_graph_free";
    #[cfg(test)]
    pub const ALL: [&CStr; 7] = [NEW, ENTER, LEAVE, CAPTURE_BEGIN, CAPTURE_END, REPLAY, FREE];
}

/// Room for the shim's error messages.
const ERROR_BYTES: usize = 4096;

/// Calls one of the shim's functions on `handle`, turning its error text into an error.
fn call(f: Call, handle: *mut c_void, what: &str) -> Result<()> {
    let mut err = vec![0 as c_char; ERROR_BYTES];
    // SAFETY: a live handle from `new` and a buffer of the size given.
    if unsafe { f(handle, err.as_mut_ptr(), err.len()) } == 0 {
        return Ok(());
    }
    // SAFETY: the shim always NUL-terminates within the buffer.
    let why = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    bail!("{what} failed: {why}")
}

/// Whether this build can record CUDA graphs (it has the shim); a GPU is still needed.
pub fn built() -> bool {
    !SHIM.is_empty()
}

/// Refuses the `cuda_graph` setting ([`crate::setting::BadSetting`]) where graphs cannot run:
/// off a CUDA device, and in a build without the shim. Cheap: callers check before any work.
pub fn check_usable(device: Device) -> Result<()> {
    crate::setting::check(device.is_cuda(), "cuda_graph", || {
        format!(
            "CUDA graphs need a CUDA device, not {}",
            crate::device::name(device)
        )
    })?;
    crate::setting::check(built(), "cuda_graph", || {
        format!("this build has no CUDA graph shim ({MISSING}); run scripts/setup.sh and rebuild")
    })
}

/// A recorded piece of GPU work.
pub struct CudaGraph {
    shim: &'static Shim,
    handle: *mut c_void,
}

impl CudaGraph {
    /// Records `work` on `device`: runs it once on a side stream to warm up (what libtorch
    /// sets up lazily, such as cuBLAS workspaces and gradient buffers, must exist before the
    /// capture), then once under capture. The warm-up's results are real; the capture's are
    /// not until [`CudaGraph::replay`]. `work` must not read values back to the CPU.
    pub fn record(device: Device, work: &mut dyn FnMut() -> Result<()>) -> Result<Self> {
        let Device::Cuda(index) = device else {
            bail!(
                "CUDA graphs need a CUDA device, not {}",
                crate::device::name(device)
            );
        };
        let shim = shim()?;
        let mut err = vec![0 as c_char; ERROR_BYTES];
        // SAFETY: the buffer has the size given.
        let handle = unsafe { (shim.new)(index as c_int, err.as_mut_ptr(), err.len()) };
        if handle.is_null() {
            // SAFETY: NUL-terminated by the shim.
            let why = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
            bail!("creating a CUDA graph failed: {why}");
        }
        let graph = Self { shim, handle };
        call(shim.enter, handle, "switching to the graph's stream")?;
        let recorded = graph.warm_up_and_capture(work);
        let left = call(shim.leave, handle, "leaving the graph's stream");
        recorded.and(left)?;
        Ok(graph)
    }

    fn warm_up_and_capture(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        work().context("the warm-up before recording a CUDA graph")?;
        call(
            self.shim.capture_begin,
            self.handle,
            "beginning the capture",
        )?;
        let captured = work();
        let ended = call(self.shim.capture_end, self.handle, "ending the capture");
        captured.context("recording a CUDA graph")?;
        ended
    }

    /// Runs the recorded work again, on the current stream.
    pub fn replay(&self) -> Result<()> {
        call(self.shim.replay, self.handle, "replaying a CUDA graph")
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: a live handle from `new`, freed once.
        unsafe { (self.shim.free)(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_on_the_cpu_is_refused_with_the_reason() {
        let err = CudaGraph::record(Device::Cpu, &mut || Ok(()))
            .err()
            .expect("no graph on the CPU");
        assert!(
            err.to_string().contains("need a CUDA device, not cpu"),
            "{err}"
        );
    }

    /// Where scripts/setup.sh installed the headers, the shim is built and embedded, and it is
    /// a shared library (it loads only with libtorch_cuda, so a CPU machine cannot load it).
    #[test]
    fn the_shim_is_embedded_where_it_could_be_built() {
        if !built() {
            eprintln!("skipped: this build has no CUDA graph shim ({MISSING})");
            return;
        }
        assert_eq!(&SHIM[..4], b"\x7fELF", "an ELF shared library");
        // The loader finds its functions by name: each must be in the library's symbol table.
        for name in super::names::ALL {
            let symbol = name.to_bytes_with_nul();
            assert!(
                SHIM.windows(symbol.len()).any(|w| w == symbol),
                "the shim lacks {name:?}"
            );
        }
    }
}
