#include "bindings/common.h"

namespace fastnn::bindings {

void bind_activation(py::module_&) {}

}  // namespace fastnn::bindings
