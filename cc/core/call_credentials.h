// SPDX-License-Identifier: Apache-2.0
// What a call presents besides its tensors: non-secret headers, a bearer
// token named by an environment variable or a file and read when the call is
// made (so a graph, a SavedModel or a Keras file holds the name, never the
// token, and a rotated token is used by the next call), the TLS files of an
// https:// URL, and the W3C traceparent every call carries.
//
// Thread-safe: CredentialHeaders may run on many threads at once (the token
// file cache has its own lock). Messages name the variable or the file,
// never the token.
#ifndef TF_GRAPHPIPE_CC_CORE_CALL_CREDENTIALS_H_
#define TF_GRAPHPIPE_CC_CORE_CALL_CREDENTIALS_H_

#include <string>
#include <vector>

#include "cc/core/status.h"

namespace tf_graphpipe {

// PEM files for TLS; empty fields take libcurl's defaults (the system's CA
// store; no client certificate). Verification is never turned off.
struct TlsFiles {
  std::string ca_file;      // CA bundle the server's certificate must chain to
  std::string client_cert;  // client certificate, for mutual TLS
  std::string client_key;   // its key (empty: in client_cert)

  bool operator==(const TlsFiles& other) const {
    return ca_file == other.ca_file && client_cert == other.client_cert &&
           client_key == other.client_key;
  }
};

struct CallCredentials {
  std::vector<std::string> headers;  // "Name: value", checked by the Python API
  std::string auth_token_env;        // environment variable holding the token
  std::string auth_token_file;       // or a file: its first non-empty line
  TlsFiles tls;
};

// Appends the header lines of one call to `out`: `headers`, then
// "Authorization: Bearer <token>" with the token read now. kInvalidArgument
// when both token sources are set, the variable is unset or empty, the file
// cannot be read or holds no token, or the token holds whitespace or
// control characters. A file is re-read only when its size, mtime or inode
// changed since the last call that read it.
Status CredentialHeaders(const CallCredentials& credentials, std::vector<std::string>* out);

// Checks `traceparent` (00-<32 hex>-<16 hex>-<2 hex>, lowercase, ids not all
// zero), or makes a new one when it is empty: a new trace id and span id from
// a per-thread generator seeded by std::random_device, sampled flag set.
// kInvalidArgument for a malformed one.
Status Traceparent(const std::string& given, std::string* out);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_CALL_CREDENTIALS_H_
