#ifndef PIANOLA_COMMON_STATUS_MACROS_H_
#define PIANOLA_COMMON_STATUS_MACROS_H_

// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
// Debian bookworm's Abseil (LTS 20220623) predates absl's own status macros.

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#define PIANOLA_CONCAT_INNER_(a, b) a##b
#define PIANOLA_CONCAT_(a, b) PIANOLA_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function if it is not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::absl::Status pianola_status_ = (expr);                    \
    if (!pianola_status_.ok()) return pianola_status_;          \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on
// error returns its status, otherwise moves the value into `lhs`, which may be
// a declaration (`auto x`) or an existing variable.
#define ASSIGN_OR_RETURN(lhs, expr) \
  PIANOLA_ASSIGN_OR_RETURN_IMPL_(PIANOLA_CONCAT_(pianola_statusor_, __LINE__), lhs, expr)

#define PIANOLA_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

namespace pianola {

// Prepends context to a status message, keeping its code:
// Annotate(NotFound("x"), "reading foo.mid") -> NotFound("reading foo.mid: x").
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace pianola

#endif  // PIANOLA_COMMON_STATUS_MACROS_H_
