#ifndef PIANOLA_TRAINER_DEVICE_H_
#define PIANOLA_TRAINER_DEVICE_H_

// How the trainer and the transfer command name a torch device in logs,
// summaries and metrics: "cpu" or "cuda:N" (a CUDA device without an index
// is the current one, named cuda:0 as torch resolves it for a fresh process).

#include <string>

#include <c10/core/Device.h>

namespace pianola {

std::string DeviceName(const c10::Device& device);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_DEVICE_H_
