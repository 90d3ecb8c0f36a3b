#include "bindings/common.h"

namespace fastnn::bindings {

void bind_conv2d(py::module_&) {}

}  // namespace fastnn::bindings
