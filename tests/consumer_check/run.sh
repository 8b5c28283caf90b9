#!/usr/bin/env bash
# run.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/qorb-consumer-XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
echo "--- find_package(qorb CONFIG)"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer"

echo "--- pkg-config"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
pkg-config --exists qorb
# shellcheck disable=SC2046
c++ $(pkg-config --cflags qorb) "$src/main.cpp" -o "$work/consumer_pc" $(pkg-config --libs qorb)
"$work/consumer_pc"
