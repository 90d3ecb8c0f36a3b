#include "bindings/common.h"

namespace fastnn::bindings {

void bind_pool(py::module_&) {}

}  // namespace fastnn::bindings
