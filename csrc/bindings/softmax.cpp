#include "bindings/common.h"

namespace fastnn::bindings {

void bind_softmax(py::module_&) {}

}  // namespace fastnn::bindings
