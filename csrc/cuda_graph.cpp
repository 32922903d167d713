// A C interface over libtorch's at::cuda::CUDAGraph for src/cuda_graph.rs: tch 0.24 has no
// binding for CUDA graphs. build.rs compiles this into a small shared library that the binary
// embeds and loads only when a graph is asked for, after libtorch_cuda, so that the binary
// itself never needs the CUDA libraries (see src/device.rs).
//
// Every function returns 0 on success, or 1 with the reason written into `err` (at most `len`
// bytes, always terminated): no C++ exception crosses into Rust.

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <optional>

namespace {

// A graph with the side stream it is recorded on. Capture cannot run on the default stream,
// and the warm-up runs on the same side stream as the capture, so that what libtorch sets up
// lazily per stream (cuBLAS workspaces) exists before the capture begins.
struct Graph {
  explicit Graph(c10::DeviceIndex device)
      : device(device), stream(c10::cuda::getStreamFromPool(false, device)) {}
  c10::DeviceIndex device;
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream stream;
  std::optional<c10::cuda::CUDAStreamGuard> on_side_stream;
};

void write_error(char* err, size_t len, const char* what) {
  if (err == nullptr || len == 0) return;
  std::strncpy(err, what, len - 1);
  err[len - 1] = '\0';
}

template <class F>
int guarded(char* err, size_t len, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    write_error(err, len, e.what());
  } catch (...) {
    write_error(err, len, "unknown C++ exception");
  }
  return 1;
}

}  // namespace

extern "C" {

// A new, empty graph on CUDA device `device`, or null with the reason.
void* adgan_graph_new(int device, char* err, size_t len) {
  Graph* graph = nullptr;
  guarded(err, len, [&] { graph = new Graph(static_cast<c10::DeviceIndex>(device)); });
  return graph;
}

// Makes the graph's side stream current on this thread, once the device has finished the work
// queued before (the inputs copied on the default stream).
int adgan_graph_enter(void* handle, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Graph*>(handle);
    c10::cuda::device_synchronize();
    g->on_side_stream.emplace(g->stream);
  });
}

// Waits for the side stream and makes the previous stream current again.
int adgan_graph_leave(void* handle, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto* g = static_cast<Graph*>(handle);
    g->stream.synchronize();
    g->on_side_stream.reset();
  });
}

// Starts recording the work queued on the side stream (between enter and leave).
int adgan_graph_capture_begin(void* handle, char* err, size_t len) {
  return guarded(err, len, [&] { static_cast<Graph*>(handle)->graph.capture_begin(); });
}

// Stops recording and instantiates the graph.
int adgan_graph_capture_end(void* handle, char* err, size_t len) {
  return guarded(err, len, [&] { static_cast<Graph*>(handle)->graph.capture_end(); });
}

// Launches the recorded work on the current stream.
int adgan_graph_replay(void* handle, char* err, size_t len) {
  return guarded(err, len, [&] { static_cast<Graph*>(handle)->graph.replay(); });
}

// Frees the graph and the memory it kept.
void adgan_graph_free(void* handle) {
  try {
    delete static_cast<Graph*>(handle);
  } catch (...) {
  }
}

}  // extern "C"
