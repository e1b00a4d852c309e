# Compile options shared by every target of ours.
# -Wno-missing-field-initializers: option structs are built with designated initializers
# ({.top_k = 2}) whose other fields keep their default member initializers on purpose.
set(SY_WARNINGS -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
    -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 at -O3 reports -Wrestrict inside libstdc++'s std::string operator+ (GCC bug 105329).
  list(APPEND SY_WARNINGS -Wno-restrict)
endif()
if(SY_WERROR)
  list(APPEND SY_WARNINGS -Werror)
endif()
set(SY_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)

function(sy_target_defaults target)
  target_compile_options(${target} PRIVATE ${SY_WARNINGS})
  # Highway: build AVX2, AVX-512 and the portable EMU128 fallback; pick among them at run time.
  # SSSE3/SSE4 are skipped to halve the compile time; machines without AVX2 use EMU128.
  target_compile_definitions(${target} PRIVATE "HWY_DISABLED_TARGETS=(HWY_SSSE3|HWY_SSE4)")
  if(SY_SANITIZE)
    target_compile_options(${target} PUBLIC ${SY_SANITIZE_FLAGS})
    target_link_options(${target} PUBLIC ${SY_SANITIZE_FLAGS})
  endif()
endfunction()
