// The README says the runtime "runs without allocating": everything an
// interpreter needs is allocated when it is created (the arena, packed weights,
// XNNPACK's operators and workspace), so an edge application can call Invoke in
// a loop without touching the heap. This test counts every heap allocation in
// the process (operator new and glibc's malloc family, on every thread) while
// MobileNetV2 runs on each backend and kernel level.
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/interpreter.h"
#include "tools/random_mobilenet_v2.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QFORGE_SANITIZED 1  // the sanitizers own malloc; nothing to count here
#else
#define QFORGE_SANITIZED 0
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

void Count() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
}
}  // namespace

#if !QFORGE_SANITIZED
// glibc's own entry points, so that XNNPACK's and the standard library's C
// allocations are seen too.
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);

void* malloc(size_t n) {
  Count();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  Count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  Count();
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  Count();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  Count();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  Count();
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#endif

namespace qforge {
namespace {

// Small enough to build fast, with every op kind of the full network.
const MobileNetV2Models& Models() {
  static const MobileNetV2Models* models = [] {
    RandomMobileNetV2Options options;
    options.config.input_size = 64;
    options.config.num_classes = 10;
    options.config.width_mult = 0.5f;
    options.seed = 3;
    absl::StatusOr<MobileNetV2Models> built = BuildRandomMobileNetV2(options);
    EXPECT_TRUE(built.ok()) << built.status();
    return new MobileNetV2Models(*std::move(built));
  }();
  return *models;
}

// Allocations made by `invokes` calls of Invoke, the first included.
long AllocationsInInvoke(const Model& model, const InterpreterOptions& options, int invokes) {
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled = CompiledModel::FromModel(model);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  if (!compiled.ok()) return -1;
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter = Interpreter::Create(*compiled, options);
  EXPECT_TRUE(interpreter.ok()) << interpreter.status();
  if (!interpreter.ok()) return -1;
  Interpreter& in = **interpreter;
  const std::vector<float> image(64 * 64 * 3, 0.25f);
  allocations = 0;
  counting = true;
  for (int i = 0; i < invokes; ++i) {
    std::memcpy(in.input_data(0), image.data(), image.size() * sizeof(float));
    EXPECT_TRUE(in.Invoke().ok());
  }
  counting = false;
  return allocations.load();
}

struct Case {
  std::string name;
  Backend backend;
  std::optional<kernels::Isa> isa;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class InvokeAllocations : public ::testing::TestWithParam<Case> {};

TEST_P(InvokeAllocations, InvokeNeverAllocates) {
  if (QFORGE_SANITIZED) GTEST_SKIP() << "allocations are not counted under sanitizers";
  const Case& c = GetParam();
  if (c.isa && kernels::ResolveIsa(*c.isa) != *c.isa) {
    GTEST_SKIP() << "this CPU (or QFORGE_ISA) does not allow " << kernels::IsaName(*c.isa);
  }
  for (int threads : {1, 2}) {
    InterpreterOptions options{c.backend, threads, c.isa};
    EXPECT_EQ(AllocationsInInvoke(Models().int8_model, options, 3), 0)
        << "int8, " << threads << " threads";
    EXPECT_EQ(AllocationsInInvoke(Models().float_model, options, 3), 0)
        << "float, " << threads << " threads";
  }
}

// The counter itself works: an allocation made while counting is seen.
TEST(InvokeAllocations, CounterSeesAllocations) {
  if (QFORGE_SANITIZED) GTEST_SKIP() << "allocations are not counted under sanitizers";
  allocations = 0;
  counting = true;
  // Through volatile pointers, so the compiler cannot drop the allocations.
  void* volatile p = std::malloc(100);
  auto* volatile q = new std::vector<int>(100);
  counting = false;
  std::free(p);
  delete q;
  EXPECT_GE(allocations.load(), 3);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, InvokeAllocations,
    ::testing::Values(Case{"reference", Backend::kReference, std::nullopt},
                      Case{"xnnpack", Backend::kXnnpackOnly, std::nullopt},
                      Case{"fast_generic", Backend::kFast, kernels::Isa::kGeneric},
                      Case{"fast_avx2", Backend::kFast, kernels::Isa::kAvx2},
                      Case{"fast_avxvnni", Backend::kFast, kernels::Isa::kAvxVnni},
                      Case{"fast_avx512vnni", Backend::kFast, kernels::Isa::kAvx512Vnni},
                      Case{"fast_avx512amx", Backend::kFast, kernels::Isa::kAvx512Amx}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace qforge
