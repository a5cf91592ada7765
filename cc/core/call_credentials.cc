// SPDX-License-Identifier: Apache-2.0
#include "cc/core/call_credentials.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>

namespace tf_graphpipe {
namespace {

constexpr size_t kMaxTokenFileBytes = size_t{16} << 10;

bool IsTokenChar(unsigned char c) { return c > 0x20 && c < 0x7f; }

Status CheckToken(const std::string& token, const std::string& where) {
  for (unsigned char c : token) {
    if (!IsTokenChar(c)) {
      return Status(Code::kInvalidArgument,
                    "the token in " + where + " holds whitespace or non-printable characters");
    }
  }
  return Status();
}

std::string Trimmed(const std::string& text, size_t begin, size_t end) {
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

// The token files read so far, by path, with the file status they were read
// at: a call stats the file (one syscall) and reads it only when it changed.
class TokenFiles {
 public:
  Status Read(const std::string& path, std::string* token) {
    struct stat status {};
    const std::string where = "auth_token_file '" + path + "'";
    if (::stat(path.c_str(), &status) != 0) {
      return Status(Code::kInvalidArgument, where + " cannot be read: " + std::strerror(errno));
    }
    const Stamp stamp{static_cast<uint64_t>(status.st_ino), static_cast<int64_t>(status.st_size),
                      static_cast<int64_t>(status.st_mtim.tv_sec) * 1000000000 +
                          status.st_mtim.tv_nsec};
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto found = files_.find(path);
      if (found != files_.end() && found->second.stamp == stamp) {
        *token = found->second.token;
        return Status();
      }
    }
    if (status.st_size > static_cast<off_t>(kMaxTokenFileBytes)) {
      return Status(Code::kInvalidArgument,
                    where + " is larger than " + std::to_string(kMaxTokenFileBytes) + " bytes");
    }
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      return Status(Code::kInvalidArgument, where + " cannot be read: " + std::strerror(errno));
    }
    std::string data(kMaxTokenFileBytes, '\0');
    file.read(&data[0], static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<size_t>(file.gcount()));
    std::string first;
    for (size_t begin = 0; begin < data.size() && first.empty();) {
      size_t end = data.find('\n', begin);
      if (end == std::string::npos) end = data.size();
      first = Trimmed(data, begin, end);
      begin = end + 1;
    }
    if (first.empty()) return Status(Code::kInvalidArgument, where + " holds no token");
    TF_GRAPHPIPE_RETURN_IF_ERROR(CheckToken(first, where));
    std::lock_guard<std::mutex> lock(mu_);
    files_[path] = Entry{stamp, first};
    *token = std::move(first);
    return Status();
  }

 private:
  struct Stamp {
    uint64_t inode;
    int64_t size;
    int64_t mtime_ns;
    bool operator==(const Stamp& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  struct Entry {
    Stamp stamp;
    std::string token;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> files_;  // guarded by mu_
};

TokenFiles& SharedTokenFiles() {
  static TokenFiles* files = new TokenFiles();  // never destroyed: calls may outlive statics
  return *files;
}

bool IsLowerHex(const std::string& text, size_t begin, size_t count) {
  for (size_t i = begin; i < begin + count; ++i) {
    const char c = text[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(const std::string& text, size_t begin, size_t count) {
  return text.compare(begin, count, std::string(count, '0')) == 0;
}

void AppendHex(uint64_t value, std::string* out) {
  char digits[17];
  std::snprintf(digits, sizeof(digits), "%016llx", static_cast<unsigned long long>(value));
  out->append(digits, 16);
}

uint64_t NonZeroRandom() {
  // Ids need to be unique, not secret: a per-thread generator seeded once.
  thread_local std::mt19937_64 generator{(static_cast<uint64_t>(std::random_device{}()) << 32) ^
                                         std::random_device{}()};
  uint64_t value = 0;
  while (value == 0) value = generator();
  return value;
}

}  // namespace

Status CredentialHeaders(const CallCredentials& credentials, std::vector<std::string>* out) {
  out->insert(out->end(), credentials.headers.begin(), credentials.headers.end());
  const std::string& env = credentials.auth_token_env;
  const std::string& path = credentials.auth_token_file;
  if (env.empty() && path.empty()) return Status();
  if (!env.empty() && !path.empty()) {
    return Status(Code::kInvalidArgument, "give auth_token_env or auth_token_file, not both");
  }
  std::string token;
  if (!env.empty()) {
    const char* value = std::getenv(env.c_str());
    const std::string text = value == nullptr ? "" : value;
    token = Trimmed(text, 0, text.size());
    if (token.empty()) {
      return Status(Code::kInvalidArgument,
                    "auth_token_env: environment variable '" + env + "' is not set or empty");
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(CheckToken(token, "environment variable '" + env + "'"));
  } else {
    TF_GRAPHPIPE_RETURN_IF_ERROR(SharedTokenFiles().Read(path, &token));
  }
  out->push_back("Authorization: Bearer " + token);
  return Status();
}

Status Traceparent(const std::string& given, std::string* out) {
  if (given.empty()) {
    std::string header = "00-";
    AppendHex(NonZeroRandom(), &header);
    AppendHex(NonZeroRandom(), &header);
    header += '-';
    AppendHex(NonZeroRandom(), &header);
    header += "-01";
    *out = std::move(header);
    return Status();
  }
  const bool well_formed = given.size() == 55 && given[2] == '-' && given[35] == '-' &&
                           given[52] == '-' && IsLowerHex(given, 0, 2) && given.compare(0, 2, "ff") != 0 &&
                           IsLowerHex(given, 3, 32) && IsLowerHex(given, 36, 16) &&
                           IsLowerHex(given, 53, 2) && !AllZero(given, 3, 32) && !AllZero(given, 36, 16);
  if (!well_formed) {
    return Status(Code::kInvalidArgument, "traceparent '" + given +
                                              "' is not a W3C traceparent "
                                              "(00-<32 hex>-<16 hex>-<2 hex>, lowercase)");
  }
  *out = given;
  return Status();
}

}  // namespace tf_graphpipe
