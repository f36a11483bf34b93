#!/bin/sh
# out-of-tree.sh - build the example plugin as a third party would, with only
# <submilter/plugin.h> and `pkg-config --cflags submilter`, check the header
# is clean C99 (-std=c99 -pedantic -Werror), and load the result with
# `submilter -t`.
#   out-of-tree.sh                        from make check: the source tree's header
#   out-of-tree.sh --installed PREFIX BIN after make install (installcheck)
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/subm-oot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }

if [ "${1:-}" = "--installed" ]; then
    prefix=$2 daemon=$3
    # a DESTDIR install keeps the configured prefix inside the .pc: point it home
    sed "s|^prefix=.*|prefix=$prefix|" "$prefix/lib/pkgconfig/submilter.pc" > "$tmp/submilter.pc"
else
    daemon=$SUBMILTER
    cat > "$tmp/submilter.pc" <<PC
includedir=$top_srcdir/include
Name: submilter
Description: submilter plugin API (source tree)
Version: 0
Cflags: -I\${includedir}
PC
fi
export PKG_CONFIG_PATH="$tmp"
cflags=$(pkg-config --cflags submilter) && ok "pkg-config --cflags submilter" || bad "pkg-config"

printf '#include <submilter/plugin.h>\nint main(void) { return SUBM_PLUGIN_ABI == 0; }\n' > "$tmp/h.c"
if cc -std=c99 -pedantic -Wall -Wextra -Werror $cflags -c "$tmp/h.c" -o "$tmp/h.o"; then
    ok "plugin.h compiles with -std=c99 -pedantic -Werror"
else
    bad "plugin.h is not clean C99"
fi
if cc -std=c99 -pedantic -Wall -Wextra -Werror -shared -fPIC $cflags \
      "$here/example.c" -o "$tmp/example.so"; then
    ok "example.c builds out of tree"
else
    bad "example.c does not build out of tree"
fi
# every exported symbol of the plugin is the descriptor
syms=$(nm -D --defined-only "$tmp/example.so" 2>/dev/null | awk '$2 ~ /[TDRB]/ {print $3}' | grep -v '^_' | sort -u)
[ "$syms" = "subm_plugin" ] && ok "only subm_plugin is exported" || bad "exports: $syms"

cat > "$tmp/s.conf" <<CONF
plugin example {
    path = "$tmp/example.so"
    reject_rcpt = { "nobody@example.com" }
}
CONF
if out=$("$daemon" -t -c "$tmp/s.conf" 2>&1) && echo "$out" | grep -q "chain: example"; then
    ok "submilter -t loads the out-of-tree plugin"
else
    bad "submilter -t: $out"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
