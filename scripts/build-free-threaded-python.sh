#!/usr/bin/env bash
# Build a free-threaded CPython 3.13 (PEP 703: ./configure --disable-gil) into PREFIX,
# default /opt/py313t, so that `gillab compare --python PREFIX/bin/python3` can show
# what changes when there is no GIL at all.
#
#   scripts/build-free-threaded-python.sh [PREFIX]
#
# The source is Debian trixie's python3.13 source package (its .orig tarball is the
# upstream CPython release), fetched through the mirror this machine's apt already
# uses: a throwaway sources list with one `deb-src MIRROR trixie main` line, its own
# lists and cache directories, and `apt-get source --download-only`. apt checks the
# signed index; this script checks the tarball's sha256 against the one Debian
# publishes in it once more before building. No host name is written here: the
# mirror is read from the machine's apt sources.
#
# Exit status: 0 built (or already there), 3 the source cannot be had here (no apt,
# no Debian mirror configured, the suite or package not found: the caller may skip),
# 1 anything else (a failed check or build). About 2.5 minutes on 2 cores; the build
# tree (~415 MB) lives in a temporary directory that is removed on exit.
set -euo pipefail

PREFIX=${1:-/opt/py313t}
SUITE=trixie
PACKAGE=python3.13
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "build-free-threaded-python: $*" >&2; }
cannot_have() { say "cannot get the source: $*"; exit 3; }

case "$PREFIX" in
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    /*) ;;
    *) PREFIX="$PWD/$PREFIX" ;;
esac

is_free_threaded() {  # is $1 a Python whose build disabled the GIL?
    [ -x "$1" ] && "$1" -c 'import sys, sysconfig
sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' 2>/dev/null
}

if is_free_threaded "$PREFIX/bin/python3"; then
    say "$PREFIX/bin/python3 is already a free-threaded build ($("$PREFIX/bin/python3" -VV | head -1)); remove $PREFIX to rebuild"
    exit 0
fi
if [ -e "$PREFIX/bin/python3" ]; then
    say "$PREFIX/bin/python3 exists and is not free-threaded; choose another PREFIX"
    exit 1
fi

command -v apt-get >/dev/null && command -v apt-config >/dev/null \
    || cannot_have "apt-get is not available (a Debian-family system is needed)"
for tool in cc make tar xz sha256sum; do
    command -v "$tool" >/dev/null || { say "$tool is missing (build dependencies not installed)"; exit 1; }
done

# The Debian mirror apt is configured with: the first `main` entry of a plain suite
# (bookworm, stable, ...), not the security archive. Both the one-line format
# (sources.list) and deb822 (*.sources) are read; disabled stanzas are skipped.
ONE_LINE_FORMAT='
/^[ \t]*deb(-src)?[ \t]/ {
    i = 2
    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
    comps = ""
    for (j = i + 2; j <= NF; j++) comps = comps " " $j
    print $i, $(i + 1), comps
}'
DEB822_FORMAT='
function flush(   n, m, a, b, x, y) {
    if (uris != "" && suites != "" && tolower(enabled) != "no") {
        n = split(uris, a, " "); m = split(suites, b, " ")
        for (x = 1; x <= n; x++) for (y = 1; y <= m; y++) print a[x], b[y], comps
    }
    uris = suites = comps = enabled = ""
}
/^[ \t]*#/ { next }
/^[ \t]*$/ { flush(); next }
{
    key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
    if (key == "uris") uris = $0
    else if (key == "suites") suites = $0
    else if (key == "components") comps = $0
    else if (key == "enabled") enabled = $0
}
END { flush() }'

debian_mirror() {  # prints "URI SUITE COMPONENTS..." per entry, then picks one
    local list parts f
    eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d)"
    {
        for f in "$list" "$parts"/*.list; do [ -f "$f" ] && awk "$ONE_LINE_FORMAT" "$f"; done
        for f in "$parts"/*.sources; do [ -f "$f" ] && awk "$DEB822_FORMAT" "$f"; done
    } 2>/dev/null | awk '$2 ~ /^[a-z]+$/ && $1 !~ /security/ && / main( |$)/ { print $1; exit }'
}

MIRROR=$(debian_mirror || true)
[ -n "$MIRROR" ] || cannot_have "no Debian mirror with a 'main' component in apt's sources"
say "mirror from this machine's apt sources: $MIRROR"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gillab-py313t.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
chmod 755 "$WORK"

signed_by=""
[ -f "$KEYRING" ] && signed_by="[signed-by=$KEYRING] "
echo "deb-src ${signed_by}${MIRROR} ${SUITE} main" > "$WORK/sources.list"
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/src"
# apt drops privileges to _apt for downloads; let it write where it downloads.
if id _apt >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    chown _apt "$WORK/src" "$WORK/lists/partial" "$WORK/cache/archives/partial"
fi
APT_OPTS=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache")

SECONDS=0
say "reading the $SUITE source index"
apt-get "${APT_OPTS[@]}" -q update >"$WORK/apt.log" 2>&1 \
    || cannot_have "apt-get update for $SUITE failed: $(grep -E '^(E|W):' "$WORK/apt.log" | head -1)"
# apt-get update only warns when a mirror cannot be reached: look for the index itself.
if ! compgen -G "$WORK/lists/*_Sources*" >/dev/null; then
    cannot_have "no $SUITE source index from $MIRROR: $(grep -E '^(E|W):' "$WORK/apt.log" | head -1)"
fi
showsrc=$(apt-cache "${APT_OPTS[@]}" showsrc "$PACKAGE" 2>/dev/null) \
    || cannot_have "$PACKAGE is not in $SUITE's sources"
[ -n "$showsrc" ] || cannot_have "$PACKAGE is not in $SUITE's sources"
# The newest version's record (showsrc lists each version; the first is the candidate).
record=$(printf '%s\n' "$showsrc" | awk 'NF == 0 { exit } { print }')
version=$(printf '%s\n' "$record" | awk '/^Version:/ { print $2; exit }')
upstream=${version%%-*}
upstream=${upstream#*:}
tarball="${PACKAGE}_${upstream}.orig.tar.xz"
# Debian's published sha256: from the Sources index, whose InRelease apt verified.
published=$(printf '%s\n' "$record" | awk -v f="$tarball" '
    /^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 } on && $3 == f { print $1; exit }')
[ -n "$published" ] || cannot_have "no sha256 for $tarball in $SUITE's index"
say "$PACKAGE $version: downloading $tarball"

(cd "$WORK/src" && apt-get "${APT_OPTS[@]}" -q source --download-only "$PACKAGE=$version") \
    >>"$WORK/apt.log" 2>&1 \
    || cannot_have "apt-get source failed: $(grep -E '^(E|W):' "$WORK/apt.log" | tail -1)"

actual=$(sha256sum "$WORK/src/$tarball" | awk '{ print $1 }')
if [ "$actual" != "$published" ]; then
    say "sha256 mismatch for $tarball: Debian publishes $published, got $actual"
    exit 1
fi
dsc_sum=$(awk -v f="$tarball" '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 }
                               on && $3 == f { print $1; exit }' "$WORK/src/"*.dsc)
if [ "$dsc_sum" != "$published" ]; then
    say "the .dsc's sha256 for $tarball ($dsc_sum) differs from the index's ($published)"
    exit 1
fi
say "sha256 $actual matches Debian's index and .dsc"

tar -xJf "$WORK/src/$tarball" -C "$WORK/src"
srcdir=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -1)
[ -n "$srcdir" ] || { say "$tarball holds no Python-* directory"; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
log="$WORK/build.log"
run_step() {  # run_step LABEL CMD...: quiet unless it fails
    say "$1"
    shift
    if ! (cd "$srcdir" && "$@") >>"$log" 2>&1; then
        say "failed: $*; the last lines of the log:"
        tail -n 25 "$log" >&2
        exit 1
    fi
}
run_step "configure --disable-gil --prefix=$PREFIX" \
    ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install
run_step "make -j$jobs (about 2 minutes on 2 cores)" make -j"$jobs"
run_step "make install" make install

if ! is_free_threaded "$PREFIX/bin/python3"; then
    say "$PREFIX/bin/python3 was installed but is not free-threaded"
    exit 1
fi
say "done in $((SECONDS / 60))m$((SECONDS % 60))s: $("$PREFIX/bin/python3" -VV | head -1)"
say "try: python -m gillab compare --python $PREFIX/bin/python3 --gil both --quick"
