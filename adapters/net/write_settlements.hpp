// adapters/net/write_settlements.hpp — the engine's write_settlements, under the name the
// sessions not yet on the engine use.
#pragma once

#include "adapters/engine/write_settlements.hpp"

namespace sb::net {

using engine::write_settlements;

}  // namespace sb::net
