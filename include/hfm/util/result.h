// Error and Result<T>: how every layer reports failure.
//
// An Error carries the errno a filesystem caller should see and a human-readable message
// written where the context is known ("GET /api/buckets/x: 404 BucketNotFound"). Layers
// propagate Errors unchanged or wrap them with more context; adapters (FUSE, NFS) only
// translate the errno. Exceptions are reserved for start-up and configuration.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace hfm {

class Error {
 public:
  Error(int err, std::string message) : errno_(err), message_(std::move(message)) {}

  int code() const { return errno_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>".
  Error withContext(const std::string& context) const {
    return {errno_, context + ": " + message_};
  }

  static Error invalid(std::string message) { return {EINVAL, std::move(message)}; }
  static Error io(std::string message) { return {EIO, std::move(message)}; }
  static Error notFound(std::string message) { return {ENOENT, std::move(message)}; }

 private:
  int errno_;
  std::string message_;
};

// Result<T> holds either a value or an Error. Result<void> is the status-only form.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{0, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status okStatus() { return {}; }

}  // namespace hfm

// Propagates an error from an expression returning Result/Status.
#define HFM_TRY(expr)                                                                    \
  do {                                                                                   \
    if (auto hfm_try_result_ = (expr); !hfm_try_result_) return hfm_try_result_.error(); \
  } while (0)

#define HFM_CONCAT_INNER_(a, b) a##b
#define HFM_CONCAT_(a, b) HFM_CONCAT_INNER_(a, b)
// HFM_ASSIGN_OR_RETURN(auto x, f()): binds the value or returns the error.
#define HFM_ASSIGN_OR_RETURN(decl, expr) \
  HFM_ASSIGN_OR_RETURN_IMPL_(HFM_CONCAT_(hfm_result_, __LINE__), decl, expr)
#define HFM_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr) \
  auto tmp = (expr);                                \
  if (!tmp) return tmp.error();                     \
  decl = std::move(tmp).value()
