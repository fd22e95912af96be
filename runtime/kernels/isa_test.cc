#include "runtime/kernels/isa.h"

#include "gtest/gtest.h"

namespace qforge::kernels {
namespace {

TEST(Isa, NamesRoundTrip) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni, Isa::kAvx512Amx}) {
    absl::StatusOr<Isa> parsed = ParseIsa(IsaName(isa));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, isa);
  }
}

TEST(Isa, UnknownNameIsAnError) {
  absl::StatusOr<Isa> parsed = ParseIsa("avx1024");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("avx1024"), std::string::npos);
}

TEST(Isa, ResolveNeverExceedsTheRequestOrTheCpu) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni, Isa::kAvx512Amx}) {
    EXPECT_LE(ResolveIsa(isa), isa);
    EXPECT_LE(ResolveIsa(isa), DetectIsa());
  }
  EXPECT_EQ(ResolveIsa(Isa::kGeneric), Isa::kGeneric);
}

}  // namespace
}  // namespace qforge::kernels
