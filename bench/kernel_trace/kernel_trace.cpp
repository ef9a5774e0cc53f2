// A CUDA injection library that records every kernel, memcpy and memset a process runs on the GPU
// (CUPTI's activity API: start and end on the GPU's clock, the kernel's demangled name) and writes
// them as tab-separated lines when the process ends. The CUDA driver loads it into any program,
// kiln's or PyTorch's alike, when CUDA_INJECTION64_PATH names it; KILN_TRACE_OUT names the output
// file. bench/kernel_profile.py runs the zoo's two peers under it and sums the time per op family.
// Unlike a replaying profiler it changes no kernel's timing and so no timed algorithm choice, and it
// sees the idle gaps between kernels. Kernels replayed from a CUDA graph are recorded too.
#include <cupti.h>
#include <cxxabi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Record {
  uint64_t start = 0, end = 0;
  uint32_t stream = 0;
  std::string kind, name;
};

std::mutex records_mutex;
std::vector<Record>* records = nullptr;  // never freed: written at exit, after static destructors may have run

constexpr size_t kBufferBytes = size_t(8) << 20;

std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  std::string s = status == 0 && out ? out.get() : name;
  for (char& c : s)
    if (c == '\t' || c == '\n') c = ' ';
  return s;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::vector<Record> batch;
  CUpti_Activity* a = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &a) == CUPTI_SUCCESS) {
    if (a->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || a->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(a);
      batch.push_back({k->start, k->end, k->streamId, "kernel", demangle(k->name)});
    } else if (a->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(a);
      batch.push_back({m->start, m->end, m->streamId, "memcpy", "memcpy kind " + std::to_string(m->copyKind)});
    } else if (a->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(a);
      batch.push_back({m->start, m->end, m->streamId, "memset", "memset"});
    }
  }
  std::free(buffer);
  const std::lock_guard<std::mutex> lock(records_mutex);
  records->insert(records->end(), batch.begin(), batch.end());
}

void write_trace() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  const char* path = std::getenv("KILN_TRACE_OUT");
  FILE* f = std::fopen(path && *path ? path : "kernel_trace.tsv", "w");
  if (!f) {
    std::perror("kernel_trace: cannot write the trace");
    return;
  }
  const std::lock_guard<std::mutex> lock(records_mutex);
  for (const Record& r : *records)
    std::fprintf(f, "%llu\t%llu\t%u\t%s\t%s\n", static_cast<unsigned long long>(r.start),
                 static_cast<unsigned long long>(r.end), r.stream, r.kind.c_str(), r.name.c_str());
  std::fclose(f);
}

bool check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return true;
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "kernel_trace: %s failed: %s\n", what, msg ? msg : "?");
  return false;
}

}  // namespace

// The CUDA driver calls this once, at its initialization, in a process started with
// CUDA_INJECTION64_PATH pointing at this library.
extern "C" __attribute__((visibility("default"))) int InitializeInjection() {
  records = new std::vector<Record>();
  if (!check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks"))
    return 0;
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enabling kernel records");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "enabling memcpy records");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET), "enabling memset records");
  // Buffers are otherwise handed back only when full or at the final flush, and a process whose
  // CUDA context is torn down before that flush (PyTorch's) would lose the last ones.
  check(cuptiActivityFlushPeriod(200), "setting the flush period");
  std::atexit(write_trace);
  return 1;
}
