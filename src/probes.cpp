// The is-enabled semaphores of the probes in probes.hpp: one per probe, in
// the .probes section where tracers look for them.
#include "probes.hpp"

#if QORB_PROBES
extern "C" {
#define QORB_DEFINE_SEMAPHORE(name) \
  __attribute__((section(".probes"), used)) unsigned short qorb_##name##_semaphore = 0;
QORB_PROBE_LIST(QORB_DEFINE_SEMAPHORE)
#undef QORB_DEFINE_SEMAPHORE
}
#endif
