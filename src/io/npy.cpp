#include "io/npy.h"

#include <cstring>
#include <vector>

#include "io/atomic_file.h"

namespace sy::io {

namespace {
const char* descr_of(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "<f4";
    case DType::F16:
      return "<f2";
    case DType::I32:
      return "<i4";
    case DType::I64:
      return "<i8";
    case DType::U8:
      return "|u1";
    default:
      return nullptr;
  }
}

// Value of `key` in the header dict, as the raw text up to the next top-level comma.
std::string header_field(const std::string& header, const std::string& key,
                         const std::string& name) {
  const std::string quoted = "'" + key + "'";
  const auto at = header.find(quoted);
  SY_CHECK(at != std::string::npos, "{}: npy header has no '{}' field", name, key);
  auto colon = header.find(':', at + quoted.size());
  SY_CHECK(colon != std::string::npos, "{}: npy header field '{}' has no value", name, key);
  size_t i = colon + 1;
  while (i < header.size() && header[i] == ' ') ++i;
  size_t end = i;
  if (i < header.size() && header[i] == '(') {
    end = header.find(')', i);
    SY_CHECK(end != std::string::npos, "{}: npy header field 'shape' is not closed", name);
    return header.substr(i, end - i + 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  std::string v = header.substr(i, end - i);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
  return v;
}
}  // namespace

void write_npy(const std::string& path, const Tensor& tensor) {
  const char* descr = descr_of(tensor.dtype());
  SY_CHECK(descr != nullptr, "{}: cannot write dtype {} as npy", path, dtype_name(tensor.dtype()));
  std::string shape = "(";
  for (int64_t d : tensor.shape()) shape += std::to_string(d) + ",";
  if (tensor.rank() > 1) shape.pop_back();
  shape += ")";
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  const auto hlen = static_cast<uint16_t>(header.size());
  out += static_cast<char>(hlen & 0xff);
  out += static_cast<char>(hlen >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(tensor.bytes()), tensor.nbytes());
  write_file_atomic(path, out);
}

Tensor parse_npy(std::string_view bytes, const std::string& name) {
  SY_CHECK(bytes.size() >= 10 && bytes.substr(0, 6) == "\x93NUMPY",
           "{}: not an npy file (magic bytes missing)", name);
  const auto major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len =
        static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    SY_CHECK(bytes.size() >= 12, "{}: truncated npy header", name);
    for (int i = 0; i < 4; ++i)
      header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    fail("{}: npy version {}, expected 1, 2 or 3", name, major);
  }
  SY_CHECK(header_start + header_len <= bytes.size(), "{}: npy header of {} bytes is truncated",
           name, header_len);
  const std::string header(bytes.substr(header_start, header_len));
  const std::string descr = header_field(header, "descr", name);
  SY_CHECK(header_field(header, "fortran_order", name) == "False",
           "{}: npy field 'fortran_order' is True, expected False", name);
  const std::string shape_text = header_field(header, "shape", name);
  Shape shape;
  int64_t value = -1;
  for (char c : shape_text) {
    if (c >= '0' && c <= '9') {
      value = (value < 0 ? 0 : value * 10) + (c - '0');
      SY_CHECK(value < (int64_t{1} << 40), "{}: npy shape {} too large", name, shape_text);
    } else if (c == ',' || c == ')') {
      if (value >= 0) shape.push_back(value);
      value = -1;
    } else if (c != '(' && c != ' ' && c != 'L') {
      fail("{}: npy field 'shape' is '{}', expected a tuple of integers", name, shape_text);
    }
  }
  DType dtype;
  bool from_f64 = false;
  if (descr == "<f4")
    dtype = DType::F32;
  else if (descr == "<f8") {
    dtype = DType::F32;
    from_f64 = true;
  } else if (descr == "<f2")
    dtype = DType::F16;
  else if (descr == "<i4")
    dtype = DType::I32;
  else if (descr == "<i8")
    dtype = DType::I64;
  else if (descr == "|u1" || descr == "<u1")
    dtype = DType::U8;
  else
    fail("{}: npy field 'descr' is '{}', expected one of <f4 <f8 <f2 <i4 <i8 |u1", name, descr);
  Tensor t = Tensor::zeros(shape, dtype);
  const size_t elem = from_f64 ? 8 : dtype_size(dtype);
  const size_t need = static_cast<size_t>(t.numel()) * elem;
  const std::string_view payload = bytes.substr(header_start + header_len);
  SY_CHECK(payload.size() == need, "{}: npy data is {} bytes, expected {} for {} {}", name,
           payload.size(), need, descr, shape_str(shape));
  if (need == 0) return t;
  if (from_f64) {
    float* dst = t.mutable_data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      double v;
      std::memcpy(&v, payload.data() + i * 8, 8);
      dst[i] = static_cast<float>(v);
    }
  } else {
    std::memcpy(t.mutable_bytes(), payload.data(), need);
  }
  return t;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

}  // namespace sy::io
