// The natives invoker interface: one native call is begin(hash), push(arg)..., call().
// Script Hook V implements it in-game (win/dllmain.cpp); the simulator implements it in sim/.
#pragma once
#include <cstdint>

namespace wfgta {

class Invoker {
public:
    virtual ~Invoker() = default;
    // Starts a call of the native with this 64-bit hash.
    virtual void begin(uint64_t hash) = 0;
    // Pushes one argument slot (ints/bools/floats in the low 32 bits, pointers as addresses).
    virtual void push(uint64_t value) = 0;
    // Runs the call; the result slots stay valid until the next call.
    virtual const uint64_t* call() = 0;
};

}  // namespace wfgta
