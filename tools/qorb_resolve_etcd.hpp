// SPDX-License-Identifier: BSL-1.0
// qorb-resolve's etcd mode (--etcd), kept apart from its DNS mode.
#pragma once

/// Whether the arguments ask for the etcd mode.
bool qorb_resolve_wants_etcd(int argc, char** argv);

/// Runs the etcd mode: prints the backends under a prefix once, or at every
/// change with --watch; returns the exit status (`usage` on bad arguments).
int qorb_resolve_etcd(int argc, char** argv, const char* usage);
