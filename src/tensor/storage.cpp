// Storage: allocation through the device's allocator.
#include "tensor/storage.h"

#include "backend/backend.h"

namespace kiln {

Storage::Storage(std::size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  data = backend::get(device).allocator().allocate(bytes);
}

Storage::~Storage() { backend::get(device).allocator().deallocate(data, bytes); }

}  // namespace kiln
