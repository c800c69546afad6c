// SHA-256 against the FIPS 180-4 example vectors, plus chunked updates and file hashing.
#include <cstdio>
#include <fstream>
#include <string>

#include "check.h"
#include "core/common.h"
#include "core/sha256.h"

int main() {
  CHECK(ifrt::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(ifrt::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the length no longer fits in the first padded block.
  CHECK(ifrt::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(ifrt::sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");

  // One million 'a', fed in uneven chunks.
  ifrt::Sha256 hasher;
  const std::string chunk(997, 'a');
  size_t left = 1000000;
  while (left > 0) {
    const size_t n = left < chunk.size() ? left : chunk.size();
    hasher.update(chunk.data(), n);
    left -= n;
  }
  CHECK(hasher.hex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  const std::string path = "test_sha256_input.bin";
  { std::ofstream(path, std::ios::binary) << "abc"; }
  CHECK(ifrt::sha256_file_hex(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::remove(path.c_str());

  bool threw_io = false;
  try {
    ifrt::sha256_file_hex("no/such/model.onnx");
  } catch (const ifrt::Error& e) {
    threw_io = e.code() == ifrt::ErrorCode::Io && std::string(e.what()).find("no/such/model.onnx") != std::string::npos;
  }
  CHECK(threw_io);
  return TEST_MAIN_RESULT();
}
