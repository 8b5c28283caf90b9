#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds qorb's API reference with Doxygen from the public headers
# (include/qorb/, without include/qorb/detail/) into build/docs/html.
# Fails on any Doxygen warning (an undocumented public name, a broken
# reference) and on a public operation whose comment lacks one of the
# sections every operation documents (listed below).
#
#   scripts/docs.sh                  # -> build/docs/html/index.html
#   scripts/docs.sh --out DIR        # -> DIR/html
#   scripts/docs.sh --headers DIR    # document DIR instead of include/qorb
#
# Exit status: 0 built clean, 1 warnings or missing sections, 2 bad
# arguments, 77 doxygen is not installed (scripts/install-deps.sh
# installs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/docs"
headers="$root/include/qorb"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --headers) headers=${2:?--headers needs a directory}; shift 2 ;;
    -h|--help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "docs.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for tool in doxygen awk python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "docs.sh: $tool is not installed (scripts/install-deps.sh installs it)" >&2
    exit 77
  fi
done
headers=$(cd "$headers" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/html" "$out/xml" "$out/warnings.txt"

# The guide pages (docs/*.md) go into the reference too. Their links to a
# heading (GitHub's "#slug", or "page.md#slug") become Doxygen labels: the
# heading gets "{#page-slug}" in the copy Doxygen reads, so the pages stay
# clean on GitHub and every link resolves in the reference.
rm -rf "$out/pages"
mkdir -p "$out/pages"
python3 - "$root/docs" "$out/pages" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
pages = {f[:-3]: open(os.path.join(src, f), encoding="utf-8").read()
         for f in sorted(os.listdir(src)) if f.endswith(".md")}

def slug(title):
    title = re.sub(r"\{#[^}]*\}", "", title).strip().lower()
    title = re.sub(r"[^\w\- ]", "", title)
    return title.replace(" ", "-")

link = re.compile(r"\]\((?:([\w-]+)\.md)?#([\w-]+)\)")
wanted = {}
for page, text in pages.items():
    for m in link.finditer(text):
        wanted.setdefault(m.group(1) or page, set()).add(m.group(2))
for page, text in pages.items():
    def label(m, page=page):
        target = m.group(1) or page
        return "](#%s-%s)" % (target, m.group(2))
    lines = []
    fence = False
    for line in link.sub(label, text).split("\n"):
        if line.startswith("```"):
            fence = not fence
        h = None if fence else re.match(r"(#{1,6}) (.*)$", line)
        if h and "{#" not in line and slug(h.group(2)) in wanted.get(page, ()):
            line += " {#%s-%s}" % (page, slug(h.group(2)))
        lines.append(line)
    open(os.path.join(dst, page + ".md"), "w", encoding="utf-8").write("\n".join(lines))
PY

version=$(sed -n 's/^project(qorb VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
sed -e "s|@VERSION@|$version|g" -e "s|@OUT@|$out|g" -e "s|@HEADERS@|$headers|g" \
    -e "s|@ROOT@|$root|g" -e "s|@STRIP@|$(dirname "$headers")|g" \
    "$root/docs/Doxyfile.in" > "$out/Doxyfile"

status=0
(cd "$out" && doxygen Doxyfile) || status=1
if [ -s "$out/warnings.txt" ]; then
  cat "$out/warnings.txt" >&2
  echo "docs.sh: $(wc -l < "$out/warnings.txt") Doxygen warning line(s); the reference must build clean" >&2
  status=1
fi
[ -f "$out/html/index.html" ] || { echo "docs.sh: no $out/html/index.html" >&2; exit 1; }

# Every public operation says what there is to say of it. An asynchronous
# one (async_*, co_*, a connector hook, any function returning an awaitable
# or whose comment names a handler, as a resolver's start) says how it completes and fails, where it runs,
# how it is cancelled, what must outlive what, who may call it at once and
# what it throws. A synchronous one (claim, try_claim, terminate, reset,
# discard, attach, stop, or any other whose comment has a "Handler:"
# section) has no handler, runs in the caller and is not cancelled, so it
# needs only its errors, thread safety and exceptions (a comment may add
# the others). A comment may name several at once ("Lifetimes, thread
# safety and exceptions: as above.").
async_ops='^(async_.*|co_.*|connect|is_valid|on_acquire|on_recycle)$'
sync_ops='^(stop|claim|try_claim|terminate|reset|discard|attach)$'
missing=0
for xml in "$out"/xml/class*.xml "$out"/xml/struct*.xml; do
  [ -e "$xml" ] || continue
  awk -v async_ops="$async_ops" -v sync_ops="$sync_ops" '
    BEGIN {
      n_async = split("Handler|Errors|Executor|Cancellation|Lifetimes|Thread safety|Exceptions", async_sec, "|")
      n_sync = split("Errors|Thread safety|Exceptions", sync_sec, "|")
    }
    /<compoundname>/ && scope == "" { scope = $0; gsub(/.*<compoundname>|<\/compoundname>.*/, "", scope) }
    /<memberdef kind="function"/ { inside = ($0 ~ /prot="public"/); name = ""; type = ""; text = ""; next }
    !inside { next }
    /<type>/ && type == "" { type = $0 }
    /<name>/ && name == "" { name = $0; gsub(/.*<name>|<\/name>.*/, "", name) }
    /<location / {
      where = $0; sub(/.* file="/, "", where); sub(/".*/, "", where)
      line = $0; sub(/.* line="/, "", line); sub(/".*/, "", line)
    }
    { text = text " " $0 }
    /<\/memberdef>/ {
      inside = 0
      gsub(/<[^>]*>/, "", text); gsub(/[ \t\n]+/, " ", text)
      # A handler that is not "none" (as the start of a resolver).
      is_async = (name ~ async_ops || type ~ /awaitable/ || (text ~ /Handler:/ && text !~ /Handler: none/))
      if (!is_async && name !~ sync_ops && text !~ /Handler:/) next
      low = tolower(text)
      lacking = ""
      n = is_async ? n_async : n_sync
      for (i = 1; i <= n; i++) {
        s = is_async ? async_sec[i] : sync_sec[i]
        if (index(text, s ":") == 0 && low !~ (tolower(s) "[a-z ,]*:"))
          lacking = lacking (lacking == "" ? "" : ", ") s
      }
      if (lacking != "") { printf "%s:%s: %s::%s: no section(s): %s\n", where, line, scope, name, lacking; bad = 1 }
    }
    END { exit bad }
  ' "$xml" >&2 || missing=1
done
if [ $missing -ne 0 ]; then
  echo "docs.sh: public operations lack documentation sections" >&2
  status=1
fi
[ $status -eq 0 ] && echo "docs.sh: $out/html/index.html"
exit $status
