#!/bin/sh
# xcluster on this node, installed over SSH by xcluster itself: the current release, run by the
# Node.js runtime it was built with. Switching `current` switches both at once.
exec "{{current}}/runtime/bin/node" "{{current}}/bin/run.js" "$@"
