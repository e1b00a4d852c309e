// Whether this translation unit is built with AddressSanitizer (GCC's and Clang's spellings).
// Storage turns off recycling and huge pages under it, and fills unzeroed buffers with 0xff.
#pragma once

namespace sy {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif
#else
inline constexpr bool kSanitizerBuild = false;
#endif

}  // namespace sy
