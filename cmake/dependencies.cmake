# Every dependency is a Debian package installed by tools/setup.sh.
find_package(fmt REQUIRED)
find_package(OpenMP REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(hwy REQUIRED)
find_package(PkgConfig REQUIRED)
# Tokenizers: SentencePiece .model files, ICU for Unicode letter/number/space classes.
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(ICU_UC REQUIRED IMPORTED_TARGET icu-uc)
# Trainer and study configuration files (TOML).
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)

# OpenBLAS: prefer the OpenMP build so BLAS calls share our OpenMP thread pool instead of
# leaving a second set of spinning pthreads that steal the cores from our own kernels.
find_library(SY_OPENBLAS_LIB NAMES openblas
  PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp NO_DEFAULT_PATH)
if(NOT SY_OPENBLAS_LIB)
  find_library(SY_OPENBLAS_LIB NAMES openblas REQUIRED)
endif()
find_path(SY_CBLAS_INCLUDE NAMES cblas.h
  PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp /usr/include/openblas
  REQUIRED)
add_library(sy_openblas INTERFACE)
target_link_libraries(sy_openblas INTERFACE ${SY_OPENBLAS_LIB})
target_include_directories(sy_openblas INTERFACE ${SY_CBLAS_INCLUDE})
