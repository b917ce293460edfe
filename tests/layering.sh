#!/bin/sh
# The dependency direction of STYLE.md, checked on the #include lines:
#   tools -> live -> engine -> rules, adapters -> proto -> proto/base
# A module may include its own headers and those of modules below it.
set -u
top=$1
cd "$top" || exit 1
bad=0
# check MODULE FORBIDDEN-HEADER-PATTERN...
check() {
    dir=$1
    shift
    [ -d "$dir" ] || return 0
    for pat in "$@"; do
        hits=$(grep -rnE "#include \"($pat)\"" "$dir" --include='*.c' --include='*.h' || true)
        if [ -n "$hits" ]; then
            echo "layering: $dir must not include $pat:"
            echo "$hits"
            bad=1
        fi
    done
}
rules_h='vg_rules\.h|rulesInt\.h'
engine_h='vg_engine\.h|engineInt\.h'
adapters_h='vg_sink\.h|vg_adapters\.h'
live_h='vg_server\.h|vg_log\.h'
check proto/base 'vg_schema\.h|vg_schema_pb\.h|vigil\.pb-c\.h' "$rules_h" "$engine_h" "$adapters_h"
check proto "$rules_h" "$engine_h" "$adapters_h"
check rules "$engine_h" "$adapters_h" "$live_h" 'vigil\.pb-c\.h|vg_schema_pb\.h'
check adapters "$engine_h" "$rules_h"
check engine 'cli\.h' "$live_h"
check live 'cli\.h'
# protobuf-c types stay behind proto/: only proto/ and tests name them
hits=$(grep -rln 'protobuf-c/protobuf-c.h\|ProtobufC' rules engine adapters live 2>/dev/null || true)
if [ -n "$hits" ]; then
    echo "layering: protobuf-c types outside proto/: $hits"
    bad=1
fi
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad
