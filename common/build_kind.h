#ifndef QFORGE_COMMON_BUILD_KIND_H_
#define QFORGE_COMMON_BUILD_KIND_H_

// What kind of build a timing test runs in, so that it skips or widens its bar
// where timings mean little: under a sanitizer, or without optimization (CI
// runs the tests in both).
namespace qforge {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

#ifdef NDEBUG
inline constexpr bool kOptimizedBuild = !kSanitized;
#else
inline constexpr bool kOptimizedBuild = false;
#endif

}  // namespace qforge

#endif  // QFORGE_COMMON_BUILD_KIND_H_
