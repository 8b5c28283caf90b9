#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# docs/components.md is the one list of resolvers, connectors, tools and
# examples. Fails when:
#   - a public header under include/qorb/resolvers or include/qorb/connectors,
#     a tool (tools/CMakeLists.txt) or an example (examples/*/CMakeLists.txt)
#     is missing from it, or it names one that does not exist;
#   - a page that enumerates them (between <!-- components --> and
#     <!-- /components --> markers) leaves one out or names one that does
#     not exist, or does not point at docs/components.md;
#   - any page names a header <qorb/resolvers/X.hpp> or <qorb/connectors/X.hpp>
#     that does not exist.
#
#   components_test.sh ROOT            # check the tree at ROOT
#   components_test.sh --self-test     # prove each check can fail
set -euo pipefail

check() {
  local root=$1 failed=0 list="$1/docs/components.md"
  fail() { echo "components_test: $*" >&2; failed=1; }
  [ -f "$list" ] || { echo "components_test: $list is missing" >&2; return 1; }

  # Headers: the tree against the list, both ways.
  local h
  for h in "$root"/include/qorb/resolvers/*.hpp "$root"/include/qorb/connectors/*.hpp; do
    h=${h#"$root/include/"}
    grep -qF "<$h>" "$list" || fail "docs/components.md does not name <$h>"
  done
  for h in $(grep -oE '<qorb/(resolvers|connectors)/[a-z_]+\.hpp>' "$list" | tr -d '<>' | sort -u); do
    [ -f "$root/include/$h" ] || fail "docs/components.md names <$h>, which does not exist"
  done
  # Tools and examples: their executables.
  local exe names
  names=$(cat "$root"/tools/CMakeLists.txt "$root"/examples/*/CMakeLists.txt |
          grep -oE 'add_executable\([A-Za-z0-9_-]+' | sed 's/add_executable(//' | sort -u)
  for exe in $names; do
    grep -qE "^\| \`$exe\` " "$list" || fail "docs/components.md does not name the program $exe"
  done
  for exe in $(sed -n '/^## Tools/,$p' "$list" | grep -oE '^\| `[A-Za-z0-9_-]+`' | tr -d '|` '); do
    grep -qx "$exe" <<<"$names" || fail "docs/components.md names the program $exe, which is not built"
  done

  # Short names every enumeration must hold: fixed dns etcd tcp tls http
  # postgres (resolvers and connectors).
  local short=() f
  for f in "$root"/include/qorb/resolvers/*.hpp "$root"/include/qorb/connectors/*.hpp; do
    f=$(basename "$f" .hpp)
    [ "$f" = etcd_registration ] || short+=("$f")
  done
  local page pages=(README.md docs/behaviour.md docs/connectors.md examples/README.md docs/reference.dox)
  for page in "${pages[@]}"; do
    [ -f "$root/$page" ] || { fail "$page is missing"; continue; }
    grep -q 'components\.md\|@ref components' "$root/$page" ||
      fail "$page does not point at docs/components.md"
    local block
    block=$(sed -n '/<!-- components -->/,/<!-- \/components -->/p' "$root/$page")
    if [ -z "$block" ]; then
      fail "$page has no <!-- components --> ... <!-- /components --> enumeration"
      continue
    fi
    if [ "$page" = examples/README.md ]; then
      # The examples' page enumerates the example programs.
      for f in $(cat "$root"/examples/*/CMakeLists.txt |
                 grep -oE 'add_executable\([A-Za-z0-9_-]+' | sed 's/add_executable(//'); do
        grep -qE "\b$f\b" <<<"$block" || fail "$page's enumeration leaves out $f"
      done
    else
      for f in "${short[@]}"; do
        grep -qiE "(\b|_)$f(\b|_)" <<<"$block" || fail "$page's enumeration leaves out $f"
      done
    fi
    for f in $(grep -oE '\b(fixed|dns|etcd|consul|zookeeper|tcp|tls|http|https|postgres|mysql|redis|grpc)(_resolver|_connector)\b' <<<"$block" | sort -u); do
      [ -f "$root/include/qorb/resolvers/${f%_resolver}.hpp" ] ||
        [ -f "$root/include/qorb/connectors/${f%_connector}.hpp" ] ||
        fail "$page names $f, which does not exist"
    done
  done
  # No page names a header that is not there.
  for page in "$root"/README.md "$root"/docs/*.md "$root"/docs/*.dox "$root"/examples/README.md; do
    for h in $(grep -oE 'qorb/(resolvers|connectors)/[a-z_]+\.hpp' "$page" | sort -u); do
      [ -f "$root/include/$h" ] || fail "${page#"$root/"} names $h, which does not exist"
    done
  done
  return $failed
}

if [ "${1:-}" = --self-test ]; then
  here=$(cd "$(dirname "$0")/../.." && pwd)
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  copy() {
    rm -rf "$scratch/t"
    mkdir -p "$scratch/t"
    (cd "$here" && tar cf - --exclude='*.cpp' --exclude='*.svg' \
        README.md docs examples include tools) | (cd "$scratch/t" && tar xf -)
  }
  expect_failure() {
    local what=$1
    if check "$scratch/t" 2>/dev/null; then
      echo "components_test --self-test: not caught: $what" >&2
      exit 1
    fi
  }
  copy; check "$scratch/t" || { echo "components_test --self-test: the tree itself fails" >&2; exit 1; }
  copy; touch "$scratch/t/include/qorb/connectors/redis.hpp"; expect_failure "a new connector header"
  copy; sed -i '/etcd_resolver/d' "$scratch/t/docs/components.md"; expect_failure "a resolver left out"
  copy; echo '| `qorb::x` | `<qorb/connectors/mysql.hpp>` | x | x |' >> "$scratch/t/docs/components.md"
  expect_failure "a header that does not exist"
  copy; sed -i 's/add_executable(qtop/add_executable(qtop2/' "$scratch/t/tools/CMakeLists.txt"
  expect_failure "a tool renamed"
  copy; sed -i '/<!-- components -->/,/<!-- \/components -->/s/etcd/ETCX/Ig' "$scratch/t/README.md"
  expect_failure "README's enumeration without etcd"
  copy; sed -i 's/<!-- components -->/&\nthe mysql_connector /' "$scratch/t/docs/behaviour.md"
  expect_failure "a page naming a connector that does not exist"
  echo "components_test --self-test: every check can fail"
  exit 0
fi

check "${1:?usage: components_test.sh ROOT | --self-test}"
echo "components_test: docs/components.md and the pages agree with the tree"
