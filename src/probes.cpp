// SPDX-License-Identifier: BSL-1.0
// The is-enabled semaphore of the probes in probes.hpp, in the .probes
// section where tracers look for it. Every probe's semaphore symbol is an
// alias of one counter: a tracer attached to any qorb probe turns argument
// building on for all of them, and the pool asks "is anyone listening?" with
// one load per event instead of one per probe.
#include "probes.hpp"

#if QORB_PROBES
extern "C" {
__attribute__((section(".probes"), used)) unsigned short qorb_semaphore = 0;
#define QORB_DEFINE_SEMAPHORE(name) \
  extern unsigned short qorb_##name##_semaphore __attribute__((alias("qorb_semaphore")));
QORB_PROBE_LIST(QORB_DEFINE_SEMAPHORE)
#undef QORB_DEFINE_SEMAPHORE
}
#endif
