// SPDX-License-Identifier: BSL-1.0
// USDT probes (provider "qorb"), for tracing a live pool with bpftrace, perf
// or SystemTap. Each probe has an is-enabled semaphore that tracers set when
// they attach (all of them one counter, see probes.cpp): the arguments of a
// probe (strings, JSON) are only built while someone listens, so an untraced
// pool pays one predictable branch per event.
// Built with -DQORB_PROBES=OFF, every probe compiles to nothing.
#pragma once

// Every probe, with its arguments:
#define QORB_PROBE_LIST(X)                                                 \
  X(claim_start)           /* pool, claim_id */                            \
  X(claim_done)            /* pool, claim_id, slot_id */                   \
  X(claim_failed)          /* pool, claim_id, reason */                    \
  X(claim_acquire_failed)  /* pool, claim_id, reason */                    \
  X(connect_start)         /* pool, slot_id, addr */                       \
  X(connect_done)          /* pool, slot_id, addr */                       \
  X(connect_failed)        /* pool, slot_id, addr, reason */               \
  X(pool_claim_start)      /* pool, claim_id */                            \
  X(pool_claim_done)       /* pool, claim_id, slot_id */                   \
  X(pool_claim_failed)     /* pool, claim_id */                            \
  X(slot_set_claim_start)  /* pool, claim_id, addr */                      \
  X(slot_set_claim_done)   /* pool, claim_id, slot_id */                   \
  X(slot_set_claim_failed) /* pool, claim_id, reason */                    \
  X(slot_set_online)       /* pool, addr, has_unclaimed */                 \
  X(slot_set_offline)      /* pool, addr */                                \
  X(slot_state_change)     /* pool, addr, slot_id, old, new, stats_json */ \
  X(handle_claimed)        /* pool, claim_id, slot_id, addr */             \
  X(handle_returned)       /* pool, slot_id */                             \
  X(health_check_start)    /* pool, slot_id, addr */                       \
  X(health_check_done)     /* pool, slot_id */                             \
  X(health_check_failed)   /* pool, slot_id, reason */                     \
  X(recycle_start)         /* pool, slot_id, addr */                       \
  X(recycle_done)          /* pool, slot_id */                             \
  X(recycle_failed)        /* pool, slot_id, reason */                     \
  X(rebalance_start)       /* pool */                                      \
  X(rebalance_done)        /* pool */                                      \
  X(pool_status_change)    /* pool, from, to */                            \
  X(connection_lost)       /* pool, slot_id, addr, reason */               \
  X(connection_discarded)  /* pool, slot_id, addr, reason */               \
  X(failure_reported)      /* pool, slot_id, addr, reason */               \
  X(hold_warning)          /* pool, slot_id, addr, age_ms, site */

#if QORB_PROBES

#define _SDT_HAS_SEMAPHORES 1
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>

#define QORB_DECLARE_SEMAPHORE(name) extern "C" unsigned short qorb_##name##_semaphore;
QORB_PROBE_LIST(QORB_DECLARE_SEMAPHORE)
#undef QORB_DECLARE_SEMAPHORE
extern "C" unsigned short qorb_semaphore;  // what every semaphore above aliases (probes.cpp)

/// Whether a tracer listens to any qorb probe.
#define QORB_ANY_PROBE_ENABLED() __builtin_expect(qorb_semaphore != 0, 0)

/// Whether a tracer listens to probe `name`.
#define QORB_PROBE_ENABLED(name) __builtin_expect(qorb_##name##_semaphore != 0, 0)

/// Fires probe `name`; the arguments are evaluated only if it is enabled.
#define QORB_PROBE(name, ...)                                           \
  do {                                                                  \
    if (QORB_PROBE_ENABLED(name)) STAP_PROBEV(qorb, name, __VA_ARGS__); \
  } while (0)

#else

#define QORB_PROBE_ENABLED(name) false
#define QORB_ANY_PROBE_ENABLED() false
#define QORB_PROBE(name, ...) \
  do {                        \
  } while (0)

#endif
